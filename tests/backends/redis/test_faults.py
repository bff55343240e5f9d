"""Exactly-once writes on Redis under real faults, and one factory run per session.

A TCP proxy (``tests/_proxy.py``) sits between the client and a real redis-server:
it drops the reply of a request after the server ran it, stalls traffic past the
client's deadline, or resets connections. Multi-process tests use real OS processes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from sharedctx import (
    BackendUnavailableError,
    OutcomeUnknownError,
    RedisBackend,
    SessionLostError,
    SharedContext,
    VersionConflictError,
)
from sharedctx.backends.redis.keys import session_keys

from ... import _workers
from ..._proxy import FaultProxy
from ...conftest import RedisServer

pytestmark = pytest.mark.redis

SPAWN = multiprocessing.get_context("spawn")
ROOT = Path(__file__).parents[3]


def new_session() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def direct(redis_server: RedisServer) -> SharedContext:
    """Reads the session straight from the server, not through the proxy."""
    return SharedContext(new_session(), backend=redis_server.url)


def through(proxy: FaultProxy, session: str, **options: float) -> SharedContext:
    backend = RedisBackend(proxy.url, **options)
    return SharedContext(session, backend=backend)


# -- a lost reply: the library sends the call again, and it is applied once ---------------


def test_update_whose_reply_is_lost_is_applied_once(
    fault_proxy: FaultProxy, direct: SharedContext
) -> None:
    direct.set("n", 0)
    with through(fault_proxy, direct.session_id) as ctx:
        fault_proxy.drop_replies(b"write")
        entry = ctx.update("n", lambda n: n + 1)
        assert fault_proxy.dropped == 1  # the server ran it, the client lost the reply
    assert (entry.value, entry.version) == (1, 2)
    found = direct.get_entry("n")
    assert found is not None
    assert (found.value, found.version) == (1, 2)


def test_conditional_set_whose_reply_is_lost_reports_no_conflict(
    fault_proxy: FaultProxy, direct: SharedContext
) -> None:
    with through(fault_proxy, direct.session_id) as ctx:
        fault_proxy.drop_replies(b"write")
        entry = ctx.set("plan", "v1", if_version=0)  # landed: no VersionConflictError
        assert fault_proxy.dropped == 1
        assert entry.version == 1
        with pytest.raises(VersionConflictError):  # a real conflict is still one
            ctx.set("plan", "v2", if_version=0)
    assert direct.get("plan") == "v1"


def test_set_multiple_and_delete_whose_replies_are_lost_are_applied_once(
    fault_proxy: FaultProxy, direct: SharedContext
) -> None:
    with through(fault_proxy, direct.session_id) as ctx:
        fault_proxy.drop_replies(b"write_many")
        entries = ctx.set_multiple({"a": 1, "b": 2})
        assert [entry.version for entry in entries] == [1, 1]
        fault_proxy.drop_replies(b"delete")
        assert ctx.delete("a") is True  # its first outcome, not "it was not there"
        assert fault_proxy.dropped == 2
    assert direct.get_multiple(["a", "b"]) == {"b": 2}
    entry = direct.get_entry("b")
    assert entry is not None
    assert entry.version == 1


async def test_async_writes_whose_replies_are_lost_are_applied_once(
    fault_proxy: FaultProxy, direct: SharedContext
) -> None:
    await direct.aset("n", 0)
    ctx = through(fault_proxy, direct.session_id)
    try:
        fault_proxy.drop_replies(b"write")
        entry = await ctx.aupdate("n", lambda n: n + 1)
        assert fault_proxy.dropped == 1
        assert entry.version == 2
    finally:
        await ctx.aclose()
    assert await direct.aget("n") == 1


def test_a_stall_past_the_deadline_gives_outcome_unknown_and_the_outcome_is_readable(
    fault_proxy: FaultProxy, direct: SharedContext
) -> None:
    direct.set("n", 0)

    def increment_then_stall(n: int) -> int:
        fault_proxy.stall(1.5)  # after update's read, before its write
        return n + 1

    with through(fault_proxy, direct.session_id, socket_timeout=0.5) as ctx:
        with pytest.raises(OutcomeUnknownError) as caught:
            ctx.update("n", increment_then_stall)
        assert isinstance(caught.value, BackendUnavailableError)
        assert caught.value.key == "n"
        message = str(caught.value)
        assert "may or may not have been applied" in message
        assert "version" in message
        # The stalled call and its re-sends reach the server when the stall ends:
        # the write is applied once.
        found = direct.wait_for_keys(["n"], timeout=10, since=1)["n"]
    assert (found.value, found.version) == (1, 2)
    time.sleep(0.5)  # anything still queued in the proxy has reached the server
    assert direct.get_entry("n").version == 2  # type: ignore[union-attr]


def test_a_read_that_cannot_get_through_is_backend_unavailable_not_outcome_unknown(
    fault_proxy: FaultProxy, direct: SharedContext
) -> None:
    with through(fault_proxy, direct.session_id, socket_timeout=0.3) as ctx:
        fault_proxy.stall(1.0)
        with pytest.raises(BackendUnavailableError) as caught:
            ctx.get("n")
        assert not isinstance(caught.value, OutcomeUnknownError)


def test_connections_reset_under_a_writer_lose_and_duplicate_nothing(
    fault_proxy: FaultProxy, direct: SharedContext
) -> None:
    with through(fault_proxy, direct.session_id) as ctx:
        for n in range(200):
            if n % 20 == 10:
                fault_proxy.reset()
            ctx.update("n", lambda value: value + 1, default=0)
    assert direct.get("n") == 200
    assert direct.get_entry("n").version == 200  # type: ignore[union-attr]


@pytest.mark.slow
def test_processes_updating_while_one_reply_in_ten_is_lost_end_at_exactly_n_times_k(
    fault_proxy: FaultProxy, direct: SharedContext
) -> None:
    fault_proxy.drop_replies(b"write", every=10)
    processes, times = 4, 50
    workers = [
        SPAWN.Process(
            target=_workers.increment_through,
            args=(fault_proxy.url, direct.session_id, times, 5.0),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert fault_proxy.dropped >= processes * times // 10
    assert direct.get("counter") == processes * times
    assert direct.get_entry("counter").version == processes * times  # type: ignore[union-attr]


# -- a lost session, told by a reply that comes late ------------------------------------


@pytest.mark.parametrize("answered", ["after the loss", "before the loss"])
def test_a_lost_session_is_reported_once_when_a_call_sent_before_answers_last(
    fault_proxy: FaultProxy, redis_server: RedisServer, answered: str
) -> None:
    """A call sent before the loss was handled, whose reply comes after the session
    was written again, tells nothing new. If the server answered it after the loss
    (the session is gone), it is sent again; if before, its answer stands, and the
    epoch it carries, the lost session's, is not taken back. Either way neither the
    caller nor the watchers are told of the loss a second time."""
    session = new_session()
    admin = redis.Redis(port=redis_server.port)
    with through(fault_proxy, session, purge_interval=3600) as ctx, ctx.watch() as watch:
        ctx.set("k", "precious")
        assert watch.get(timeout=5).key == "k"
        data = session_keys("sharedctx", session)[:-1]
        if answered == "after the loss":
            admin.delete(*data)  # the data gone, as a flush
        fault_proxy.hold_reply(b"held-key")
        late: list[object] = []
        caller = threading.Thread(target=lambda: late.append(_outcome(ctx.get, "held-key")))
        caller.start()
        deadline = time.monotonic() + 5
        while not fault_proxy.holding:  # the server has answered
            assert time.monotonic() < deadline, "the call never reached the server"
            time.sleep(0.01)
        if answered == "before the loss":
            admin.delete(*data)
        with pytest.raises(SessionLostError):
            ctx.get("k")
        ctx.set("k", "fresh")  # the session again
        fault_proxy.release()
        caller.join(10)
        assert late == [None]  # no such key, and no second loss
        entry = ctx.get_entry("k")
        assert entry is not None
        assert (entry.value, entry.version) == ("fresh", 1)
        with pytest.raises(SessionLostError):
            watch.get(timeout=5)
        event = watch.get(timeout=5)
        assert (event.action, event.key, event.entry.value) == ("set", "k", "fresh")
        ctx.set("k", "again")
        assert watch.get(timeout=5).entry.value == "again"  # no second loss in between
        ctx.destroy()
    admin.close()


def _outcome(call: Callable[..., object], *args: object) -> object:
    """What ``call(*args)`` returned, or the exception it raised."""
    try:
        return call(*args)
    except Exception as error:
        return error


# -- one factory run per session, across processes -------------------------------------------


def _spawn_get_or_set(
    url: str, session: str, seconds: float, lease: float
) -> subprocess.Popen[str]:
    code = (
        "from tests._workers import get_or_set_once; "
        f"get_or_set_once({url!r}, {session!r}, 'started', {seconds}, {lease})"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )


@pytest.mark.slow
def test_eight_processes_asking_for_one_missing_key_run_its_factory_once(
    redis_server: RedisServer, direct: SharedContext
) -> None:
    workers = [_spawn_get_or_set(redis_server.url, direct.session_id, 0.5, 10.0) for _ in range(8)]
    values = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        values.append(json.loads(out))
    assert direct.get("factory-runs") == 1
    assert len(set(values)) == 1
    assert values[0] == direct.get("result")


@pytest.mark.slow
def test_when_the_lease_holder_dies_another_process_completes_the_value(
    redis_server: RedisServer, direct: SharedContext
) -> None:
    holder = _spawn_get_or_set(redis_server.url, direct.session_id, 60.0, 1.0)
    started = direct.wait_for_keys(["started"], timeout=60)["started"]
    assert started.value == holder.pid
    waiter = _spawn_get_or_set(redis_server.url, direct.session_id, 0.1, 1.0)
    time.sleep(0.5)  # the waiter finds the lease held and waits
    os.kill(holder.pid, signal.SIGKILL)  # mid-factory: its lease is no longer renewed
    holder.communicate(timeout=30)  # reaped, and its pipe closed
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0
    assert json.loads(out) == f"made by {waiter.pid}"
    assert direct.get("result") == f"made by {waiter.pid}"
    assert direct.get("factory-runs") == 2  # the dead holder's run, and the waiter's
