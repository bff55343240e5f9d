"""Revisions: every change takes the session's next one, and waits and watches can
start from one, so that a pipeline run again on a session counts only its own results."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sharedctx import (
    ContextError,
    InvalidArgumentError,
    SharedContext,
    WaitTimeoutError,
)
from sharedctx.testing._base import ContextFactory, SuiteBase


class RevisionTests(SuiteBase):
    """Revisions: every change takes the session's next one, and waits and watches can"""

    def test_the_revision_is_that_of_the_last_change(self, ctx: SharedContext) -> None:
        assert ctx.revision == 0
        first = ctx.set("a", 1)
        assert (first.revision, ctx.revision) == (1, 1)
        ctx.set_multiple({"b": 2, "c": 3})
        ctx.delete("a")
        assert ctx.revision == 4
        entry = ctx.get_entry("b")
        assert entry is not None
        assert entry.revision == 2  # the revision of its last write
        ctx.expire("b", 30)  # no change: no revision
        assert ctx.revision == 4

    @pytest.mark.asyncio
    async def test_the_revision_has_an_awaitable_twin(self, ctx: SharedContext) -> None:
        await ctx.aset("a", 1)
        assert await ctx.arevision() == 1

    def test_wait_for_since_counts_only_what_was_written_after(self, ctx: SharedContext) -> None:
        ctx.set_multiple({f"analysis:mind:{n}": "last run" for n in range(3)})
        start = ctx.revision
        # The message counts what the wait counts: none written since, not the three.
        with pytest.raises(
            WaitTimeoutError, match=f"^0 of 1 keys matching .* written after revision {start}"
        ):
            ctx.wait_for("analysis:mind:*", count=1, since=start, timeout=0.05)
        with pytest.raises(WaitTimeoutError, match=r"^keys \['analysis:mind:0'\] written after"):
            ctx.wait_for_keys(["analysis:mind:0"], since=start, timeout=0.05)
        ctx.set("analysis:mind:1", "this run")

        def later() -> None:
            ctx.set("analysis:mind:2", "this run")

        timer = threading.Timer(0.05, later)
        timer.start()
        found = ctx.wait_for("analysis:mind:*", count=2, since=start, timeout=10)
        timer.join()  # the write may still read its reply: not cut off by the teardown
        assert [entry.key for entry in found] == ["analysis:mind:1", "analysis:mind:2"]
        assert all(entry.revision > start for entry in found)

    def test_wait_for_keys_since_waits_for_fresh_values(self, ctx: SharedContext) -> None:
        ctx.set("a", "old")
        start = ctx.revision
        timer = threading.Timer(0.05, lambda: ctx.set("a", "new"))
        timer.start()
        assert ctx.wait_for_keys(["a"], since=start, timeout=10)["a"].value == "new"
        timer.join()

    @pytest.mark.asyncio
    async def test_await_for_since(self, ctx: SharedContext) -> None:
        await ctx.aset("k:1", 0)
        start = await ctx.arevision()
        waiting = asyncio.create_task(ctx.await_for("k:*", since=start, timeout=10))
        await asyncio.sleep(0.01)
        await ctx.aset("k:2", 0)
        assert [entry.key for entry in await waiting] == ["k:2"]

    def test_a_watch_from_a_revision_replays_then_goes_live(self, ctx: SharedContext) -> None:
        ctx.set("a", 1)
        start = ctx.revision
        ctx.set("a", 2)
        ctx.set("skip:x", 0)  # not matched by the pattern
        ctx.delete("a")
        with ctx.watch("a*", since=start) as watch:
            ctx.set("ab", 3)
            seen = [watch.get(timeout=5) for _ in range(3)]
        assert [(event.action, event.key, event.revision) for event in seen] == [
            ("set", "a", start + 1),
            ("delete", "a", start + 3),
            ("set", "ab", start + 4),
        ]
        # "a" was removed since: its replayed set keeps no value, as the server keeps none.
        assert not seen[0].entry.has_value
        assert seen[2].entry.value == 3

    def test_a_watch_from_now_equals_one_without_since(self, ctx: SharedContext) -> None:
        ctx.set("a", 1)
        with ctx.watch("*", since=ctx.revision) as watch:
            ctx.set("b", 2)
            assert watch.get(timeout=5).key == "b"
            with pytest.raises(TimeoutError):
                watch.get(timeout=0.05)

    def test_replayed_events_reach_only_the_new_watch(self, ctx: SharedContext) -> None:
        ctx.set("a", 1)
        with ctx.watch("*") as live:
            ctx.set("b", 2)
            with ctx.watch("*", since=0) as replaying:
                assert [replaying.get(timeout=5).key for _ in range(2)] == ["a", "b"]
            assert live.get(timeout=5).key == "b"
            with pytest.raises(TimeoutError):
                live.get(timeout=0.05)  # no replay reached the live watch

    def test_a_subscription_from_a_revision(self, ctx: SharedContext) -> None:
        ctx.set("a", 1)
        ctx.set("b", 2)
        seen: list[str] = []
        ctx.subscribe("*", lambda event: seen.append(event.key), since=1)
        ctx.set("c", 3)
        ctx.wait_for("c", timeout=5)
        assert seen == ["b", "c"]

    def test_bad_revisions_are_refused(self, ctx: SharedContext) -> None:
        ctx.set("a", 1)
        for bad in (-1, "1", 1.5, True):
            with pytest.raises(InvalidArgumentError, match="since"):
                ctx.watch(since=bad)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError, match="since"):
                ctx.wait_for("a", since=bad, timeout=0)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="after session"):
            ctx.watch(since=ctx.revision + 5)

    def test_a_blocking_watch_read_on_an_event_loop_thread_is_refused(
        self, ctx: SharedContext
    ) -> None:
        async def main() -> None:
            with ctx.watch("*") as watch:
                with pytest.raises(ContextError, match="aget"):
                    watch.get(timeout=5)
                await ctx.aset("k", 1)
                assert (await watch.aget(timeout=5)).key == "k"

        asyncio.run(main())

    def test_a_get_or_set_that_would_wait_on_an_event_loop_thread_is_refused(
        self,
        make_context: ContextFactory,
    ) -> None:
        ctx = make_context()
        started, release = threading.Event(), threading.Event()

        def slow() -> int:
            started.set()
            release.wait(10)
            return 1

        leader = threading.Thread(target=ctx.get_or_set, args=("k", slow))
        leader.start()
        assert started.wait(5)

        async def main() -> None:
            with pytest.raises(ContextError, match="aget_or_set"):
                ctx.get_or_set("k", lambda: 2)
            release.set()

        asyncio.run(main())
        leader.join(10)
        assert ctx.get("k") == 1
