"""max_entries: never exceeded after a call returns; expired first, then the policy."""

from __future__ import annotations

from sharedctx import ContextEvent, SharedContext

from .conftest import FakeClock


def _events(ctx: SharedContext) -> list[ContextEvent]:
    events: list[ContextEvent] = []
    ctx.subscribe("*", events.append)
    return events


def test_expired_entries_are_dropped_before_anything_is_evicted(clock: FakeClock) -> None:
    with SharedContext("s", max_entries=2, eviction="reject", clock=clock) as ctx:
        events = _events(ctx)
        ctx.set("short", 1, ttl=1)
        ctx.set("long", 2)
        clock.advance(1)
        ctx.set("new", 3)  # no CapacityError: the expired entry made room
        assert ctx.keys() == ["long", "new"]
        assert [event.action for event in events] == ["set", "set", "expire", "set"]
