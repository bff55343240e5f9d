"""History on the memory backend, with a fake clock: the model with time (TTLs expire
and past versions age out mid-run), the retention rules, the timer, the defaults of
a backend, and the soak that bounds what a session keeps (the conformance kit,
``sharedctx.testing``, runs the rest on every backend)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from sharedctx import (
    ContextEvent,
    HistoryCompactedError,
    MemoryBackend,
    SessionExistsError,
    SharedContext,
)
from sharedctx.testing import FakeClock, HistoryMachine


class MemoryHistoryMachine(HistoryMachine):
    """The history model with a clock the machine moves: entries expire (with their
    history) and past versions and removal records age out after ``retention``."""

    history_versions = 2
    retention = 6

    def open(self, **options: Any) -> SharedContext:
        backend = MemoryBackend(clock=self.clock, history_retention=self.retention)
        return SharedContext(
            "model", backend=backend, history_versions=self.history_versions, **options
        )

    @rule(seconds=st.sampled_from([0.5, 1, 3, 10]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.due()

    @rule()
    def purge_expired(self) -> None:
        assert self.ctx.purge_expired() == self.purge()


class RetentionMachine(MemoryHistoryMachine):
    """The same, with TTLs too long to expire during a run and room for every
    version: what goes is what ages out."""

    ttl_scale = 1000
    history_versions = 50


MemoryHistoryMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None
)
RetentionMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None
)
test_memory_history_matches_the_model_with_time = MemoryHistoryMachine.TestCase
test_memory_history_matches_the_model_as_versions_age = RetentionMachine.TestCase


def test_past_versions_go_after_the_retention_time(clock: FakeClock) -> None:
    backend = MemoryBackend(clock=clock)
    ctx = SharedContext("s", backend=backend, history_versions=8, history_retention=10)
    first = ctx.set("k", "one").revision
    clock.advance(4)
    second = ctx.set("k", "two").revision  # "one" is past from now: kept 10 s
    clock.advance(4)
    ctx.set("k", "three")  # "two" is past from now
    assert [entry.value for entry in ctx.history("k")] == ["three", "two", "one"]
    clock.advance(6)  # 10 s after "one" was replaced, 6 after "two" was
    assert [entry.value for entry in ctx.history("k")] == ["three", "two"]
    with pytest.raises(HistoryCompactedError) as raised:
        ctx.get("k", revision=first)
    assert raised.value.oldest == second
    assert ctx.stats().past_bytes == len(msgspec.msgpack.encode("two"))
    clock.advance(4)
    assert [entry.value for entry in ctx.history("k")] == ["three"]
    assert ctx.stats().past_versions == 0


def test_a_version_that_ages_out_takes_the_older_ones_with_it(clock: FakeClock) -> None:
    backend = MemoryBackend(clock=clock)
    long = SharedContext("s", backend=backend, history_versions=8, history_retention=100)
    short = SharedContext("s", backend=backend, history_versions=8, history_retention=1)
    long.set("k", 1)
    long.set("k", 2)  # 1 is kept 100 s
    short.set("k", 3)  # 2 is kept 1 s: when it goes, 1 (older) goes too
    clock.advance(2)
    assert [entry.value for entry in long.history("k")] == [3]


def test_the_record_of_a_removal_goes_after_the_retention_and_the_floor_rises(
    clock: FakeClock,
) -> None:
    backend = MemoryBackend(clock=clock)
    ctx = SharedContext("s", backend=backend, history_versions=2, history_retention=10)
    ctx.set("gone", 1)
    before = ctx.revision
    ctx.delete("gone")
    removed_at = ctx.revision
    assert ctx.get("gone", revision=removed_at) is None
    with pytest.raises(HistoryCompactedError):
        ctx.get("gone", revision=before)
    assert ctx.get("never", revision=before) is None  # nothing kept, and nothing was
    clock.advance(10)
    # The removal is forgotten: a key of which nothing is kept is unknown before it.
    with pytest.raises(HistoryCompactedError) as raised:
        ctx.get("never", revision=before)
    assert raised.value.oldest == removed_at
    assert ctx.get("never", revision=removed_at) is None


def test_an_expired_keys_history_goes_with_it(clock: FakeClock) -> None:
    ctx = SharedContext("s", clock=clock, history_versions=4)
    ctx.set("k", "one", ttl=5)
    ctx.set("k", "two", ttl=5)
    assert ctx.stats().past_versions == 1
    clock.advance(5)
    assert ctx.history("k") == []
    assert ctx.stats().past_versions == 0
    assert ctx.stats().expired == 1


def test_the_timer_drops_what_ages_out_without_any_call() -> None:
    ctx = SharedContext("s", backend=MemoryBackend(), history_versions=4, history_retention=0.05)
    ctx.set("k", "x" * 1000)
    ctx.set("k", "y")
    assert ctx.stats().past_bytes > 1000
    backend = ctx.backend
    assert isinstance(backend, MemoryBackend)
    summary = backend.session_summary("s")
    assert summary is not None
    assert summary.past_bytes > 1000
    deadline = time.monotonic() + 5
    while backend.session_summary("s").past_bytes and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.02)
    assert backend.session_summary("s").past_bytes == 0  # type: ignore[union-attr]
    ctx.close()


def test_a_backends_defaults_apply_to_contexts_without_their_own(clock: FakeClock) -> None:
    backend = MemoryBackend(clock=clock, history_versions=3, history_retention=30)
    ctx = SharedContext("s", backend=backend)
    for value in range(6):
        ctx.set("k", value)
    assert [entry.value for entry in ctx.history("k")] == [5, 4, 3, 2]
    clock.advance(30)
    assert [entry.value for entry in ctx.history("k")] == [5]
    off = SharedContext("t", backend=backend, history_versions=0)
    off.set("k", 1)
    off.set("k", 2)
    assert off.history("k") == [off.get_entry("k")]


def test_a_context_without_history_drops_the_past_versions_of_what_it_overwrites() -> None:
    keeper = SharedContext("s", history_versions=4)
    other = SharedContext("s")  # history_versions 0: the writer's setting applies
    keeper.set("k", 1)
    keeper.set("k", 2)
    assert len(keeper.history("k")) == 2
    other.set("k", 3)
    assert [entry.value for entry in keeper.history("k")] == [3]
    with pytest.raises(HistoryCompactedError) as raised:
        keeper.get("k", revision=2)
    assert raised.value.oldest == 3


def test_history_off_keeps_nothing_and_tracks_nothing() -> None:
    ctx = SharedContext("s")
    for value in range(100):
        ctx.set(f"k{value % 3}", value)
    ctx.delete("k0")
    stats = ctx.stats()
    assert (stats.past_versions, stats.past_bytes) == (0, 0)
    assert ctx.history("k1") == [ctx.get_entry("k1")]
    backend = ctx.backend
    assert isinstance(backend, MemoryBackend)
    assert backend.session_summary("s").past_bytes == 0  # type: ignore[union-attr]


def test_a_fork_on_a_clocked_backend_lives_on_that_backend(clock: FakeClock) -> None:
    ctx = SharedContext("s", clock=clock, history_versions=2, default_ttl=100)
    ctx.set("k", 1)
    forked = ctx.fork("f")
    assert forked.backend is ctx.backend
    clock.advance(50)
    assert forked.get_entry("k").expires == ctx.get_entry("k").expires  # type: ignore[union-attr]
    clock.advance(50)
    assert forked.get("k") is None  # its TTL ran on, on the same clock
    with pytest.raises(SessionExistsError):
        ctx.fork("f")


def test_only_the_events_of_a_fork_say_where_it_came_from() -> None:
    ctx = SharedContext("s", history_versions=2)
    ctx.set("k", 1)
    forked = ctx.fork("f")
    events: list[ContextEvent] = []
    forked.subscribe("*", events.append)
    forked.set("k", 2)
    assert (events[0].forked_from, events[0].forked_at) == (None, None)
    replayed = forked.watch(since=0)
    first, second = replayed.get(timeout=1), replayed.get(timeout=1)
    replayed.close()
    assert (first.forked_from, first.forked_at) == ("s", 1)
    assert second.forked_from is None


def test_an_empty_fork_makes_a_session_all_the_same() -> None:
    ctx = SharedContext("s", history_versions=2)
    forked = ctx.fork("f")
    assert len(forked) == 0
    with pytest.raises(SessionExistsError):
        ctx.fork("f")


# -- the soak: what a session keeps is bounded -----------------------------------------------


@pytest.mark.slow
def test_a_soak_of_overwrites_keeps_at_most_history_versions_per_key() -> None:
    """100,000 overwrites of 100 keys with history_versions=8: at most 8 past versions
    of each key are kept, and their bytes are those of the last 8 values."""
    ctx = SharedContext("soak", history_versions=8)
    values = [msgspec.msgpack.encode(n) for n in range(100_000)]
    for number in range(100_000):
        ctx.set(f"key:{number % 100}", number)
        if number % 20_000 == 19_999:
            stats = ctx.stats()
            assert stats.past_versions == 800
    stats = ctx.stats()
    assert stats.past_versions == 800
    kept = [number for number in range(100_000 - 900, 100_000 - 100)]
    assert stats.past_bytes == sum(len(values[number]) for number in kept)
    for key in (f"key:{n}" for n in range(100)):
        assert len(ctx.history(key)) == 9  # the live entry and 8 past versions
    session = ctx._store._session  # type: ignore[attr-defined]
    assert sum(map(len, session.past.values())) == 800
    assert len(session.aging) <= 2 * 800 + 1024 + 1  # the heap of deadlines is bounded too
    ctx.close()
