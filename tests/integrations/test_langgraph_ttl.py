"""TTLs as LangGraph defines them, in minutes, on sharedctx's expiry.

``InMemoryStore`` has no TTL to compare with, so these state the rules directly: on
the memory backend with a fake clock, and on both backends by the expiry an entry
carries (Redis expires by the server's clock, which a test cannot move).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from langgraph.store.base import GetOp, SearchOp

from sharedctx import InvalidArgumentError, MemoryBackend, SharedContext
from sharedctx.integrations.langgraph import SharedContextStore

from ..conftest import FakeClock

NS = ("memories", "u1")


@pytest.fixture
def clocked_store(clock: FakeClock) -> Iterator[SharedContextStore]:
    """A store of its own session, on a memory backend that runs on the fake clock."""
    with SharedContextStore("ttl-session", backend=MemoryBackend(clock=clock)) as store:
        yield store


def test_an_item_expires_its_ttl_minutes_after_the_put(
    clocked_store: SharedContextStore, clock: FakeClock
) -> None:
    clocked_store.put(NS, "k", {"v": 1}, ttl=1)
    clock.advance(59.9)
    assert clocked_store.get(NS, "k", refresh_ttl=False) is not None
    clock.advance(0.1)
    assert clocked_store.get(NS, "k") is None
    assert clocked_store.search(NS) == []
    assert clocked_store.list_namespaces() == []


def test_a_read_with_refresh_restarts_the_ttl(
    clocked_store: SharedContextStore, clock: FakeClock
) -> None:
    clocked_store.put(NS, "k", {"v": 1}, ttl=1)
    clock.advance(50)
    assert clocked_store.get(NS, "k") is not None  # refresh_ttl defaults to True
    clock.advance(50)
    assert [item.key for item in clocked_store.search(NS)] == ["k"]  # refreshes too
    clock.advance(59)
    assert clocked_store.get(NS, "k", refresh_ttl=False) is not None
    clock.advance(1)
    assert clocked_store.get(NS, "k") is None


def test_a_read_without_refresh_changes_nothing(
    clocked_store: SharedContextStore, clock: FakeClock
) -> None:
    clocked_store.put(NS, "k", {"v": 1}, ttl=1)
    before = clocked_store.context.get_entry(clocked_store.key_for(NS, "k"))
    clock.advance(50)
    clocked_store.get(NS, "k", refresh_ttl=False)
    clocked_store.search(NS, refresh_ttl=False)
    clocked_store.batch([GetOp(NS, "k", refresh_ttl=False), SearchOp(NS, refresh_ttl=False)])
    assert clocked_store.context.get_entry(clocked_store.key_for(NS, "k")) == before
    clock.advance(10)
    assert clocked_store.get(NS, "k") is None


def test_refresh_on_read_false_makes_reads_leave_ttls_alone(
    clocked: SharedContext, clock: FakeClock
) -> None:
    store = SharedContextStore(clocked, ttl={"default_ttl": 1, "refresh_on_read": False})
    store.put(NS, "k", {"v": 1})  # default_ttl: 1 minute
    clock.advance(50)
    assert store.get(NS, "k") is not None
    assert store.search(NS) != []
    clock.advance(10)
    assert store.get(NS, "k") is None
    store.put(NS, "k", {"v": 1})
    clock.advance(50)
    assert store.get(NS, "k", refresh_ttl=True) is not None  # asked for explicitly
    clock.advance(50)
    assert store.get(NS, "k") is not None


def test_a_search_refreshes_only_the_items_it_returns(
    clocked_store: SharedContextStore, clock: FakeClock
) -> None:
    for key in "abc":
        clocked_store.put(NS, key, {"key": key}, ttl=1)
    clock.advance(50)
    assert [item.key for item in clocked_store.search(NS, limit=1, offset=1)] == ["b"]
    clock.advance(10)
    assert [item.key for item in clocked_store.search(NS)] == ["b"]


def test_default_ttl_applies_to_puts_that_give_none_and_none_means_forever(
    clocked: SharedContext, clock: FakeClock
) -> None:
    clocked_with_default = SharedContext("with-default", default_ttl=5, clock=clock)
    for context in (clocked, clocked_with_default):
        store = SharedContextStore(context, ttl={"default_ttl": 2})
        store.put(NS, "default", {})
        store.put(NS, "forever", {}, ttl=None)  # whatever the context's default_ttl
        store.put(NS, "short", {}, ttl=0.5)
        assert store.context.get_entry(store.key_for(NS, "default")).ttl == 120  # type: ignore[union-attr]
        clock.advance(30)
        assert [item.key for item in store.search(NS, refresh_ttl=False)] == ["default", "forever"]
        clock.advance(90)
        assert [item.key for item in store.search(NS)] == ["forever"]
        clock.advance(10**6)
        assert [item.key for item in store.search(NS)] == ["forever"]
    clocked_with_default.close()


def test_expiry_is_active_and_emits_events(
    clocked_store: SharedContextStore, clock: FakeClock
) -> None:
    with clocked_store.context.watch(clocked_store.pattern_for(NS)) as watch:
        clocked_store.put(NS, "k", {"v": 1}, ttl=1)
        clock.advance(60)
        assert clocked_store.context.purge_expired() == 1  # what the timer does, on time
        events = [watch.get(timeout=5) for _ in range(2)]
    assert [event.action for event in events] == ["set", "expire"]
    assert clocked_store.to_item(events[0].entry).value == {"v": 1}
    with pytest.raises(InvalidArgumentError, match="no value"):
        clocked_store.to_item(events[1].entry)  # an expired value is gone


# -- on every backend, by the expiry an entry carries ------------------------------------


def test_refresh_moves_the_expiry_and_keeps_the_version(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    key = store.key_for(NS, "k")
    store.put(NS, "k", {"v": 1}, ttl=10)
    first = ctx.get_entry(key)
    assert first is not None
    assert first.ttl == 600
    time.sleep(0.01)  # let the clock move
    store.get(NS, "k", refresh_ttl=False)
    assert ctx.get_entry(key) == first
    store.get(NS, "k")
    refreshed = ctx.get_entry(key)
    assert refreshed is not None
    assert refreshed.expires_at > first.expires_at  # type: ignore[operator]
    assert (refreshed.metadata.version, refreshed.updated_at) == (1, first.updated_at)
    time.sleep(0.01)
    store.search(NS)
    assert ctx.get_entry(key).expires_at > refreshed.expires_at  # type: ignore[operator, union-attr]


def test_a_ttl_may_be_ten_years(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    store.put(NS, "k", {"v": 1}, ttl=10 * 365.25 * 24 * 60)  # minutes: sharedctx's longest
    assert ctx.get_entry(store.key_for(NS, "k")).ttl == 10 * 365.25 * 24 * 3600  # type: ignore[union-attr]


def test_a_put_without_ttl_removes_the_ttl(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    store.put(NS, "k", {"v": 1}, ttl=10)
    store.put(NS, "k", {"v": 2})
    assert ctx.get_entry(store.key_for(NS, "k")).expires_at is None  # type: ignore[union-attr]


async def test_an_item_expires_on_every_backend(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    await store.aput(NS, "k", {"v": 1}, ttl=0.005)  # 0.3 s
    await store.aput(NS, "kept", {"v": 1})
    await asyncio.sleep(0.5)
    assert await store.aget(NS, "k") is None
    assert [item.key for item in await store.asearch(NS)] == ["kept"]
