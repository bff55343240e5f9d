"""Many threads at once: no lost update, no stampede, no half-seen batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from sharedctx import ContextEvent, SharedContext
from sharedctx.testing._base import SuiteBase

THREADS = 8


def _run_threads(target: Callable[[int], Any], count: int = THREADS) -> list[Any]:
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = target(n)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results


class ConcurrencyTests(SuiteBase):
    """Many threads at once: no lost update, no stampede, no half-seen batch."""

    def test_concurrent_updates_lose_nothing(self, ctx: SharedContext) -> None:
        increments = 500

        def work(n: int) -> None:
            for _ in range(increments):
                ctx.update("counter", lambda value: value + 1, default=0)

        _run_threads(work)
        entry = ctx.get_entry("counter")
        assert entry is not None
        assert entry.value == THREADS * increments
        assert entry.metadata.version == THREADS * increments

    def test_update_keeps_source_and_tags_unless_given(self, ctx: SharedContext) -> None:
        ctx.set("k", 1, source="origin", tags=["t"])
        entry = ctx.update("k", lambda value: value + 1)
        assert (entry.value, entry.metadata.source, entry.metadata.tags) == (2, "origin", ("t",))
        entry = ctx.update("k", lambda value: value + 1, source="other", tags=[])
        assert (entry.metadata.source, entry.metadata.tags) == ("other", ())

    def test_update_starts_from_the_default_and_gets_a_copy(self, ctx: SharedContext) -> None:
        assert ctx.update("list", lambda value: [*value, 1], default=[]).value == [1]

        def mutate_in_place(value: list[int]) -> list[int]:
            value.append(2)
            return value

        assert ctx.update("list", mutate_in_place).value == [1, 2]

    def test_update_that_raises_stores_nothing(self, ctx: SharedContext) -> None:
        ctx.set("k", 1)

        def fail(value: int) -> int:
            raise ValueError("no")

        with pytest.raises(ValueError, match="no"):
            ctx.update("k", fail)
        assert ctx.get_entry("k").metadata.version == 1  # type: ignore[union-attr]

    def test_get_or_set_runs_the_factory_once_for_concurrent_callers(
        self, ctx: SharedContext
    ) -> None:
        calls = []
        release = threading.Event()

        def factory() -> dict[str, int]:
            calls.append(1)
            release.wait(5)  # keep the others waiting on this one
            return {"computed": 42}

        def work(n: int) -> Any:
            if n == 0:
                threading.Timer(0.1, release.set).start()
            return ctx.get_or_set("expensive", factory, source="cache")

        results = _run_threads(work)
        assert len(calls) == 1
        assert results == [{"computed": 42}] * THREADS
        results[1]["computed"] = 0  # each caller got its own copy
        assert results[2] == {"computed": 42}
        entry = ctx.get_entry("expensive")
        assert entry is not None
        assert entry.metadata.source == "cache"

    def test_get_or_set_returns_the_stored_value_without_calling(self, ctx: SharedContext) -> None:
        ctx.set("k", "stored")
        assert ctx.get_or_set("k", lambda: pytest.fail("factory called")) == "stored"

    def test_a_failing_factory_stores_nothing_and_waiters_see_the_error(
        self, ctx: SharedContext
    ) -> None:
        started = threading.Event()
        calls: list[int] = []

        def factory() -> int:
            calls.append(1)
            started.set()
            time.sleep(0.3)  # the others join its flight meanwhile
            raise RuntimeError("factory failed")

        def work(n: int) -> str:
            if n > 0:
                started.wait(5)
            try:
                ctx.get_or_set("k", factory)
            except RuntimeError as exc:
                return str(exc)
            return "no error"

        results = _run_threads(work, count=4)
        assert results == ["factory failed"] * 4
        assert len(calls) == 1  # the waiters got the leader's error, not their own
        assert not ctx.has("k")
        assert ctx.get_or_set("k", lambda: "second try") == "second try"

    def test_a_reader_never_sees_half_of_a_set_multiple(self, ctx: SharedContext) -> None:
        keys = [f"batch:{n}" for n in range(20)]
        ctx.set_multiple(dict.fromkeys(keys, 0))
        stop = threading.Event()
        torn: list[dict[str, Any]] = []

        def writer(n: int) -> None:
            if n == 0:
                for round_ in range(1, 300):
                    ctx.set_multiple(dict.fromkeys(keys, round_))
                stop.set()
                return
            while not stop.is_set():
                seen = ctx.get_multiple(keys)
                if len(set(seen.values())) != 1:
                    torn.append(seen)
                found = ctx.find_by_pattern("batch:*")
                if len({entry.value for entry in found}) != 1:
                    torn.append({entry.key: entry.value for entry in found})

        _run_threads(writer, count=4)
        assert torn == []

    def test_stress_mixed_operations_keep_events_and_state_consistent(
        self, ctx: SharedContext
    ) -> None:
        events: list[ContextEvent] = []
        ctx.subscribe("*", events.append)

        def work(n: int) -> None:
            for i in range(300):
                key = f"k{(n + i) % 10}"
                match i % 4:
                    case 0:
                        ctx.set(key, i, tags=[f"t{n}"])
                    case 1:
                        ctx.update(key, lambda value: (value or 0) + 1)
                    case 2:
                        ctx.delete(key)
                    case _:
                        ctx.get(key)

        _run_threads(work)
        revisions = [event.revision for event in events]
        assert revisions == sorted(revisions)
        assert len(set(revisions)) == len(revisions)
        # Replaying the events gives exactly the final state.
        state: dict[str, Any] = {}
        for event in events:
            if event.action == "set":
                state[event.key] = event.entry.value
            else:
                state.pop(event.key, None)
        final_keys = ctx.keys()
        assert state == {key: ctx.get(key) for key in final_keys}
