"""ContextManager: one context per session, never replaced, idle sessions reclaimed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from sharedctx import (
    ContextClosedError,
    ContextManager,
    SessionExistsError,
    SharedContext,
    context_manager,
)

from .conftest import FakeClock


@pytest.fixture
def manager() -> ContextManager:
    with ContextManager() as manager:
        yield manager


def test_create_get_destroy(manager: ContextManager) -> None:
    ctx = manager.create_context("s1")
    assert isinstance(ctx, SharedContext)
    assert manager.get_context("s1") is ctx
    assert manager.get_context("nope") is None
    assert manager.sessions() == ["s1"]
    assert manager.destroy_context("s1") is True
    assert manager.destroy_context("s1") is False
    assert ctx.closed
    assert manager.sessions() == []


def test_contexts_get_the_manager_defaults_and_overrides(manager: ContextManager) -> None:
    # The manager's defaults are SharedContext's: a context is the same however made.
    ctx = manager.create_context("s1")
    plain = SharedContext("plain")
    assert (ctx.default_ttl, ctx._max_entries) == (plain.default_ttl, plain._max_entries)
    assert (ctx.default_ttl, ctx._max_entries) == (None, None)
    plain.close()
    other = manager.create_context("s2", default_ttl=5, max_entries=10)
    assert other.default_ttl == 5
    assert other._max_entries == 10
    with ContextManager(default_ttl=60, max_entries=100) as bounded:
        ctx = bounded.create_context("s3")
        assert (ctx.default_ttl, ctx._max_entries) == (60, 100)


def test_create_context_never_replaces_a_live_session(manager: ContextManager) -> None:
    ctx = manager.create_context("s1")
    ctx.set("k", "precious")
    with pytest.raises(SessionExistsError, match="s1"):
        manager.create_context("s1")
    assert manager.get_context("s1") is ctx
    assert ctx.get("k") == "precious"


def test_a_context_closed_by_its_user_is_forgotten(manager: ContextManager) -> None:
    ctx = manager.create_context("s1")
    ctx.close()
    assert manager.get_context("s1") is None
    assert manager.get_or_create("s1") is not ctx


def test_get_or_create_makes_exactly_one_context_under_concurrency(
    manager: ContextManager,
) -> None:
    results: list[SharedContext] = []
    start = threading.Barrier(16)

    def work() -> None:
        start.wait()
        results.append(manager.get_or_create("shared"))

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 16
    assert len({id(ctx) for ctx in results}) == 1
    assert manager.sessions() == ["shared"]


def test_close_closes_every_session() -> None:
    manager = ContextManager()
    contexts = [manager.create_context(f"s{n}") for n in range(3)]
    manager.close()
    manager.close()
    assert all(ctx.closed for ctx in contexts)
    with pytest.raises(ContextClosedError):
        manager.get_or_create("s0")


def test_bad_session_ids_and_options_are_rejected(manager: ContextManager) -> None:
    with pytest.raises(ValueError, match="session_id"):
        manager.create_context("")
    with pytest.raises(ValueError, match="max_entries"):
        manager.create_context("s", max_entries=-1)
    assert manager.sessions() == []
    with pytest.raises(ValueError, match="ttl"):
        ContextManager(session_idle_ttl=0)
    with pytest.raises(ValueError, match="max_entries"):
        ContextManager(max_entries=-5)  # at once, not at the first create_context
    with pytest.raises(ValueError, match="ttl"):
        ContextManager(default_ttl="x")  # type: ignore[arg-type]


def test_idle_sessions_are_closed_and_used_ones_kept(clock: FakeClock) -> None:
    with ContextManager(session_idle_ttl=60, clock=clock) as manager:
        idle = manager.create_context("idle")
        busy = manager.create_context("busy")
        closed = []
        for _ in range(3):
            busy.set("heartbeat", clock.now)  # keeps "busy" in use
            clock.advance(30)
            closed.append(manager.close_idle())
        assert closed == [[], ["idle"], []]  # idle for 60 s at the second check
        assert idle.closed
        assert not busy.closed
        assert manager.sessions() == ["busy"]
        busy.get("heartbeat")
        clock.advance(60)
        assert manager.close_idle() == []  # "busy" was used since the last check
        clock.advance(60)
        assert manager.close_idle() == ["busy"]  # and not since


def test_a_manager_with_a_clock_gives_its_contexts_that_clock(clock: FakeClock) -> None:
    with ContextManager(clock=clock, default_ttl=10) as manager:
        ctx = manager.create_context("s")
        ctx.set("k", 1)
        clock.advance(10)
        assert ctx.get("k") is None  # expired by the manager's clock, without sleeping


def test_the_idle_check_runs_on_its_own_with_the_real_clock() -> None:
    with ContextManager(session_idle_ttl=0.1) as manager:
        idle = manager.create_context("idle")
        deadline = time.monotonic() + 10
        while not idle.closed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert idle.closed


def test_the_default_manager_is_a_context_manager() -> None:
    assert isinstance(context_manager, ContextManager)


@pytest.mark.redis
def test_a_manager_on_redis_shares_one_backend_across_its_sessions(redis_server: Any) -> None:
    manager = ContextManager(backend=redis_server.url)
    first = manager.create_context("m-1")
    second = manager.get_or_create("m-2")
    assert first.backend is second.backend
    first.set("k", 1)
    with SharedContext("m-1", backend=redis_server.url) as elsewhere:
        assert elsewhere.get("k") == 1  # the data is on the server, for every process
    manager.close()
    assert first.closed
    assert second.closed
    with SharedContext("m-1", backend=redis_server.url) as elsewhere:
        assert elsewhere.get("k") == 1  # closing is local: other processes keep the data
        elsewhere.destroy()


@pytest.mark.redis
def test_an_idle_redis_session_is_closed_here_and_kept_for_others(redis_server: Any) -> None:
    with ContextManager(backend=redis_server.url, session_idle_ttl=0.2) as manager:
        idle = manager.create_context("idle-shared")
        idle.set("k", "kept")
        deadline = time.monotonic() + 10
        while not idle.closed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert idle.closed
        with SharedContext("idle-shared", backend=redis_server.url) as other:
            assert other.get("k") == "kept"
            other.destroy()


FREED_UNDER_A_LOCK = """
import gc, sys, time
import concurrent.futures.thread
from sharedctx import SharedContext
from sharedctx import _scheduler
from sharedctx.backends import open_backend

warm = SharedContext("warm")
warm.subscribe("*", lambda event: None)
warm.set("k", 1)  # the events' pool exists
for name, lock in [
    ("thread pools' shutdown", concurrent.futures.thread._global_shutdown_lock),
    ("events pool", _scheduler._pool_lock),
]:
    ctx = SharedContext("dropped-" + name)
    with lock:  # as while any ThreadPoolExecutor.submit, when the collector ran
        del ctx
        gc.collect()
backend, _ = open_backend("memory")
deadline = time.monotonic() + 10
while any(s.startswith("dropped-") for s in backend.sessions()) and time.monotonic() < deadline:
    time.sleep(0.01)
print(sorted(backend.sessions()))
"""


def test_a_context_freed_where_a_lock_is_held_frees_its_session_without_a_deadlock() -> None:
    """The collector frees a context dropped without close() on whichever thread runs,
    holding that thread's locks (it once hung in a LangGraph node, inside its thread
    pool's submit): the finalizer takes none, and the session is still forgotten."""
    done = subprocess.run(
        [sys.executable, "-c", FREED_UNDER_A_LOCK],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['warm']\n"
