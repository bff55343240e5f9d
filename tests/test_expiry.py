"""TTLs: expired entries are never seen, and they expire by themselves."""

from __future__ import annotations

import gc
import logging
import math
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from datetime import timedelta
from typing import Any

import pytest

from sharedctx import (
    KEEP_TTL,
    ContextEvent,
    InvalidTTLError,
    MemoryBackend,
    SharedContext,
    _scheduler,
)

from .conftest import FakeClock


def test_expired_entry_is_never_returned_by_any_read(
    clocked: SharedContext, clock: FakeClock
) -> None:
    clocked.set("analysis:mind:tim", 1, ttl=10, tags=["mind"])
    clocked.set("analysis:mind:forever", 2, ttl=None, tags=["mind"])
    clock.advance(9.999)
    assert clocked.get("analysis:mind:tim") == 1
    clock.advance(0.001)
    assert clocked.get("analysis:mind:tim") is None
    assert clocked.get_entry("analysis:mind:tim") is None
    assert not clocked.has("analysis:mind:tim")
    assert "analysis:mind:tim" not in clocked
    assert len(clocked) == 1
    assert clocked.keys() == ["analysis:mind:forever"]
    assert [e.key for e in clocked.find_by_pattern("analysis:*")] == ["analysis:mind:forever"]
    assert [e.key for e in clocked.find_by_tag("mind")] == ["analysis:mind:forever"]
    assert clocked.get_multiple(["analysis:mind:tim"]) == {}
    assert clocked.stats().entries == 1


def test_each_set_restarts_the_expiry(clocked: SharedContext, clock: FakeClock) -> None:
    clocked.set("k", 1, ttl=10)
    clock.advance(8)
    clocked.set("k", 2, ttl=10)
    clock.advance(8)
    assert clocked.get("k") == 2


def test_keep_ttl_keeps_the_current_expiry(clocked: SharedContext, clock: FakeClock) -> None:
    first = clocked.set("k", 1, ttl=10)
    clock.advance(8)
    kept = clocked.set("k", 2, ttl=KEEP_TTL)
    assert kept.expires_at == first.expires_at
    assert kept.ttl == 10
    clock.advance(2)
    assert clocked.get("k") is None
    assert clocked.set("new", 1, ttl=KEEP_TTL).expires_at is None  # nothing to keep


def test_default_ttl_applies_when_set_gives_none(clock: FakeClock) -> None:
    with SharedContext("s", default_ttl=timedelta(seconds=5), clock=clock) as ctx:
        assert ctx.default_ttl == 5
        assert ctx.set("default", 1).ttl == 5
        assert ctx.set("forever", 1, ttl=None).ttl is None
        clock.advance(5)
        assert ctx.keys() == ["forever"]


def test_an_expired_key_counts_as_absent_for_versions(
    clocked: SharedContext, clock: FakeClock
) -> None:
    clocked.set("k", 1, ttl=1)
    clocked.set("k", 2, ttl=1)
    clock.advance(1)
    assert clocked.set("k", 3, if_version=0).metadata.version == 1


def test_purge_expired_removes_and_reports_expire_events(
    clocked: SharedContext, clock: FakeClock
) -> None:
    events: list[ContextEvent] = []
    clocked.subscribe("*", events.append)
    clocked.set_multiple({"a": 1, "b": 2}, ttl=5)
    clocked.set("c", 3, ttl=50)
    clock.advance(5)
    assert clocked.purge_expired() == 2
    assert clocked.purge_expired() == 0
    expired = [(event.action, event.key, event.entry.version) for event in events[3:]]
    assert expired == [("expire", "a", 1), ("expire", "b", 1)]
    assert not any(event.entry.has_value for event in events[3:])  # the values are gone
    assert clocked.stats().expired == 2


def test_expiry_found_by_a_read_is_reported_as_expire_not_delete(
    clocked: SharedContext, clock: FakeClock
) -> None:
    events: list[ContextEvent] = []
    clocked.subscribe("*", events.append)
    clocked.set("k", 1, ttl=1)
    clock.advance(2)
    assert clocked.get("k") is None
    assert [event.action for event in events] == ["set", "expire"]
    assert clocked.delete("k") is False


def test_a_key_rewritten_with_a_later_ttl_does_not_expire_early(
    clocked: SharedContext, clock: FakeClock
) -> None:
    clocked.set("k", 1, ttl=1)
    clocked.set("k", 2, ttl=100)
    clock.advance(50)
    assert clocked.purge_expired() == 0
    assert clocked.get("k") == 2


def test_many_rewrites_do_not_grow_the_deadline_heap_without_bound(
    clocked: SharedContext, clock: FakeClock
) -> None:
    for n in range(20_000):
        clocked.set("k", n, ttl=10 + n)
    store: Any = clocked._store
    assert len(store._deadlines) <= 2 * len(clocked) + 1025


TEN_YEARS = 10 * 365.25 * 24 * 3600


@pytest.mark.parametrize(
    "bad",
    [
        0, -1, -3, math.nan, math.inf, True, "10", timedelta(0), timedelta(seconds=-1),
        TEN_YEARS + 1, 1e10, 1e30, 10**400, timedelta(days=365 * 11),
    ],
)  # fmt: skip
def test_bad_ttls_raise_invalid_ttl_error_naming_the_key(ctx: SharedContext, bad: object) -> None:
    with pytest.raises(InvalidTTLError, match="'plan:x'") as caught:
        ctx.set("plan:x", 1, ttl=bad)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    with pytest.raises(InvalidTTLError, match="'plan:x'"):
        ctx.expire("plan:x", bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidTTLError, match="'plan:x'"):
        ctx.update("plan:x", lambda value: 1, ttl=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidTTLError, match="'plan:x'"):
        ctx.get_or_set("plan:x", lambda: 1, ttl=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidTTLError, match="default_ttl"):
        SharedContext("s", default_ttl=bad)  # type: ignore[arg-type]
    assert not ctx.has("plan:x")


def test_a_failing_timer_callback_and_a_far_deadline_do_not_stop_expiry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise RuntimeError("a broken timer callback")

    # Further than a timed wait can take (threading.TIMEOUT_MAX): waited for in steps.
    too_far = _scheduler.call_at(time.monotonic() + 2 * threading.TIMEOUT_MAX, broken)
    time.sleep(0.1)  # the timer thread now waits for it (the earliest timer)
    with caplog.at_level(logging.ERROR, logger="sharedctx"):
        _scheduler.call_at(time.monotonic(), broken)
        expired = threading.Event()
        with SharedContext("other") as other:
            other.subscribe("*", lambda event: event.action == "expire" and expired.set())
            other.set("short", 1, ttl=0.05)
            assert expired.wait(5), "expiry stopped after a bad timer callback"
    assert "a broken timer callback" in caplog.text
    too_far.cancel()


def test_one_timer_thread_serves_every_context() -> None:
    contexts = [SharedContext(f"s{n}") for n in range(20)]
    before = len(threading.enumerate())
    expired = threading.Semaphore(0)
    for ctx in contexts:
        ctx.subscribe("*", lambda event: event.action == "expire" and expired.release())
        ctx.set("k", 1, ttl=0.02)
    for _ in contexts:
        assert expired.acquire(timeout=10)
    schedulers = [t for t in threading.enumerate() if t.name == "sharedctx-scheduler"]
    assert len(schedulers) == 1
    assert schedulers[0].daemon
    pool = [t for t in threading.enumerate() if t.name.startswith("sharedctx-events")]
    assert len(pool) <= 4  # the shared pool that delivers expire events
    assert len(threading.enumerate()) <= before + 1 + len(pool)
    for ctx in contexts:
        ctx.close()


def test_the_timer_outlives_the_last_context_until_the_session_is_gone() -> None:
    # The session outlives its contexts (as on Redis), so its timer keeps removing
    # what expires; destroying the session, or closing the backend, cancels it.
    ctx = SharedContext("s")
    ctx.set("k", 1, ttl=30)
    store: Any = ctx._store
    timer = store._session.timer
    assert timer is not None
    ctx.close()
    assert not timer.cancelled
    with SharedContext("s") as again:
        assert again.get("k") == 1
        again.destroy()
    assert timer.cancelled
    own = MemoryBackend()
    with SharedContext("t", backend=own) as ctx:
        ctx.set("k", 1, ttl=30)
        timer = ctx._store._session.timer  # type: ignore[attr-defined]
    own.close()
    assert timer.cancelled


def test_with_an_injected_clock_expiry_waits_for_a_call(clock: FakeClock) -> None:
    with SharedContext("s", clock=clock) as ctx:
        ctx.set("k", 1, ttl=0.01)
        store: Any = ctx._store
        assert store._session.timer is None  # the fake clock is not the timer's clock
        clock.advance(1)
        assert ctx.purge_expired() == 1


def test_a_context_dropped_without_close_is_freed_despite_its_timer() -> None:
    ctx = SharedContext("dropped")
    ctx.set("k", 1, ttl=30)  # schedules the shared timer
    store = weakref.ref(ctx._store)
    del ctx
    gc.collect()
    assert store() is None  # the timer held the store weakly


def test_a_context_dropped_while_an_executor_submits_is_freed_without_a_deadlock() -> None:
    # The collector may free a dropped context anywhere: here inside
    # ThreadPoolExecutor.submit, which holds the executors' global lock (creating an
    # OpenTelemetry TracerProvider does that). Its finalizer must not submit work
    # itself, or the process hangs for good: so it runs in a process of its own.
    code = textwrap.dedent("""
        import concurrent.futures.thread as executors
        import gc
        from sharedctx import SharedContext
        ctx = SharedContext("dropped")
        ctx.set("k", 1)
        with executors._global_shutdown_lock:  # as inside another executor's submit()
            del ctx
            gc.collect()  # freed here (its store is in a cycle): its finalizer runs
        print("freed")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "freed", done.stderr


def test_a_slow_subscriber_does_not_hold_up_another_contexts_expiry() -> None:
    slow, fast = SharedContext("slow"), SharedContext("fast")
    release, fast_expired = threading.Event(), threading.Event()
    slow.subscribe("*", lambda event: event.action == "expire" and release.wait(10))
    fast.subscribe("*", lambda event: event.action == "expire" and fast_expired.set())
    try:
        slow.set("k", 1, ttl=0.01)
        time.sleep(0.1)  # slow's subscriber now blocks, for up to 10 s
        fast.set("k", 1, ttl=0.01)
        assert fast_expired.wait(5)  # the timer thread was not stuck in slow's callback
    finally:
        release.set()
        slow.close()
        fast.close()
