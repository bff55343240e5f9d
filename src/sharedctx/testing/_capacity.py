"""max_entries: never exceeded after a call returns; expired first, then the policy."""

from __future__ import annotations

import pytest

from sharedctx import CapacityError, ContextEvent, SharedContext
from sharedctx.testing._base import ContextFactory, SuiteBase


def _events(ctx: SharedContext) -> list[ContextEvent]:
    events: list[ContextEvent] = []
    ctx.subscribe("*", events.append)
    return events


class CapacityTests(SuiteBase):
    """max_entries: never exceeded after a call returns; expired first, then the policy."""

    def test_lru_evicts_the_least_recently_read_or_written(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(max_entries=3, eviction="lru")
        events = _events(ctx)
        ctx.set_multiple({"a": 1, "b": 2, "c": 3})
        ctx.get("a")  # a is now more recent than b and c
        ctx.set("d", 4)
        assert ctx.keys() == ["a", "c", "d"]
        evicted = [event for event in events if event.action == "evict"]
        assert [(event.key, event.entry.version, event.entry.value) for event in evicted] == [
            ("b", 1, None)  # an evicted value is gone, from events too
        ]
        assert ctx.stats().evicted == 1

    def test_oldest_evicts_the_least_recently_written(self, make_context: ContextFactory) -> None:
        ctx = make_context(max_entries=3, eviction="oldest")
        ctx.set_multiple({"a": 1, "b": 2, "c": 3})
        ctx.get("a")  # reads do not count
        ctx.set("b", 20)  # writes do
        ctx.set("d", 4)
        assert ctx.keys() == ["b", "c", "d"]

    def test_reject_raises_capacity_error_and_stores_nothing(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(max_entries=2, eviction="reject")
        ctx.set_multiple({"a": 1, "b": 2})
        with pytest.raises(CapacityError, match="2"):
            ctx.set("c", 3)
        with pytest.raises(CapacityError):
            ctx.set_multiple({"a": 10, "c": 3})
        assert ctx.get_multiple(["a", "b", "c"]) == {"a": 1, "b": 2}
        with pytest.raises(CapacityError):
            ctx.get_or_set("c", lambda: 3)
        assert not ctx.has("c")

    def test_updating_an_existing_key_never_evicts(self, make_context: ContextFactory) -> None:
        ctx = make_context(max_entries=2, eviction="reject")
        ctx.set_multiple({"a": 1, "b": 2})
        ctx.set("a", 10)
        ctx.update("b", lambda value: value + 1)
        assert ctx.get_multiple(["a", "b"]) == {"a": 10, "b": 3}
        assert ctx.stats().evicted == 0

    def test_set_multiple_evicts_enough_for_all_new_keys(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(max_entries=3)
        ctx.set_multiple({"a": 1, "b": 2, "c": 3})
        ctx.set_multiple({"c": 30, "d": 4, "e": 5})
        assert ctx.keys() == ["c", "d", "e"]
        assert ctx.get("c") == 30

    def test_a_batch_larger_than_the_limit_is_refused_whole(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(max_entries=2)
        ctx.set("keep", 1)
        with pytest.raises(CapacityError):
            ctx.set_multiple({"a": 1, "b": 2, "c": 3})
        assert ctx.keys() == ["keep"]

    def test_a_batch_of_existing_and_new_keys_over_the_limit_is_refused(
        self,
        make_context: ContextFactory,
    ) -> None:
        ctx = make_context(max_entries=2)
        ctx.set_multiple({"a": 1, "b": 2})
        with pytest.raises(CapacityError):
            ctx.set_multiple({"a": 10, "b": 20, "c": 3})  # 3 keys can never fit in 2
        assert ctx.get_multiple(["a", "b", "c"]) == {"a": 1, "b": 2}

    def test_keys_written_without_a_limit_can_still_be_evicted(
        self, make_context: ContextFactory
    ) -> None:
        session = f"mixed-{id(object())}"
        unlimited = make_context(session)
        for n in range(5):
            unlimited.set(f"k{n}", n)
        limited = make_context(session, max_entries=3)
        limited.set("new", 1)
        assert len(limited) <= 3
        assert limited.has("new")

    def test_live_entries_never_exceed_max_entries(self, make_context: ContextFactory) -> None:
        ctx = make_context(max_entries=10)
        for n in range(200):
            ctx.set(f"k{n}", n)
            assert len(ctx) <= 10
        assert ctx.keys() == sorted(f"k{n}" for n in range(190, 200))
        assert ctx.stats().evicted == 190
