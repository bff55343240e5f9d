"""Redis Cluster: sessions spread over the masters, and survive a resharding and a
failover, with writers in separate processes and a watcher checking every event.

The behavioural suite runs on the session's cluster as on every backend (the
``backend`` fixture); these tests add what only a cluster can do. The ones that move
slots or kill nodes use a cluster of their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from sharedctx import (
    BackendUnavailableError,
    ContextEvent,
    RedisBackend,
    SessionLostError,
    SharedContext,
    WatchOverflowError,
)
from sharedctx.backends.redis.keys import session_keys

from ..._cluster import LocalCluster, MigrationStep, Node, PrivateClusterFactory
from ...conftest import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

ROOT = Path(__file__).parents[3]


def new_session() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


def slot_of(session: str) -> int:
    return LocalCluster.slot_of(session_keys("sharedctx", session)[0])


def test_sessions_spread_over_every_master(redis_cluster: LocalCluster) -> None:
    backend = RedisBackend(redis_cluster.url)
    sessions = [new_session() for _ in range(300)]
    for session in sessions:
        with SharedContext(session, backend=backend) as ctx:
            ctx.set("k", session, tags=["t"], ttl=60)
    owners = {redis_cluster.node_for_slot(slot_of(session)).name for session in sessions}
    assert owners == {master.name for master in redis_cluster.masters()}
    for master in redis_cluster.masters():  # and the keys really are there
        assert redis_cluster.admin(master).dbsize() > 0
    listed = set(backend.sessions())
    assert set(sessions) <= listed
    for session in sessions:
        backend.drop_session(session)
    backend.close()


def test_every_key_of_a_session_lies_in_its_slot(redis_cluster: LocalCluster) -> None:
    for session in ["plain", "a{b}c", "}{", "%7B", "é"]:
        slots = {LocalCluster.slot_of(key) for key in session_keys("sharedctx", session)}
        assert len(slots) == 1


def _spawn_incrementers(
    url: str, session: str, processes: int, times: int, durability: str
) -> list[subprocess.Popen[str]]:
    code = (
        "from tests._workers import increment_steadily; "
        f"increment_steadily({url!r}, {session!r}, {times}, 15.0, {durability!r})"
    )
    return [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(processes)
    ]


def _finish(workers: list[subprocess.Popen[str]]) -> int:
    """Wait for the workers; how many of their calls raised (and were repeated)."""
    raised = 0
    for worker in workers:
        out, _ = worker.communicate(timeout=180)
        assert worker.returncode == 0, out
        raised += json.loads(out.splitlines()[-1])["raised"]
    return raised


class Watcher:
    """Watches the counter from another backend: every event, in order, or an error."""

    def __init__(self, url: str, session: str) -> None:
        self.context = SharedContext(session, backend=url)
        self.watch = self.context.watch("counter", max_pending=100_000)
        self.values: list[int] = []
        self.revisions: list[int] = []
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.watch:
                self._take(event)
        except (SessionLostError, WatchOverflowError) as exc:
            self.error = exc

    def _take(self, event: ContextEvent) -> None:
        self.revisions.append(event.revision)
        self.values.append(event.entry.value)

    def wait_for(self, value: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (not self.values or self.values[-1] < value) and time.monotonic() < deadline:
            if self.error is not None:
                return
            time.sleep(0.02)

    def close(self) -> None:
        self.watch.close()
        self.thread.join(10)
        self.context.close()


class Impatient:
    """Reads the session in a loop with a short deadline, and keeps what it raised."""

    def __init__(self, url: str, session: str) -> None:
        self.context = SharedContext(session, backend=RedisBackend(url, socket_timeout=0.3))
        self.raised: list[Exception] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.context.get("counter")
            except Exception as exc:
                self.raised.append(exc)
            time.sleep(0.01)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "a call hung"


def _errors(cluster: LocalCluster, node: Node) -> set[str]:
    """The kinds of error replies a node has sent (INFO errorstats)."""
    stats = cluster.admin(node).info("errorstats")
    return {name.removeprefix("errorstat_") for name in stats}


def _check_complete(watcher: Watcher, total: int) -> None:
    """Every increment seen once, in order: values 1..total, revisions increasing."""
    watcher.wait_for(total)
    assert watcher.error is None, watcher.error
    assert watcher.values == list(range(1, total + 1))
    assert watcher.revisions == sorted(set(watcher.revisions))


@pytest.mark.slow
def test_resharding_a_live_session_loses_and_duplicates_nothing(
    private_cluster: PrivateClusterFactory,
) -> None:
    cluster = private_cluster(masters=3, replicas=0)
    session = new_session()
    slot = slot_of(session)
    with SharedContext(session, backend=cluster.url) as ctx:
        ctx.set("counter", 0)
        watcher = Watcher(cluster.url, session)
        processes, times = 4, 300
        workers = _spawn_incrementers(cluster.url, session, processes, times, "primary")
        watcher.wait_for(50)
        source = cluster.node_for_slot(slot)
        target = next(master for master in cluster.masters() if master is not source)
        steps: list[MigrationStep] = []

        def half_way(step: MigrationStep) -> None:
            steps.append(step)
            time.sleep(0.3)  # the writers meet the slot half-moved: TRYAGAIN, ASK

        progress = watcher.values[-1]
        moved = cluster.migrate_slot(slot, target, keys_batch=4, between_steps=half_way)
        assert moved >= 5  # the session's keys went over, in several batches...
        assert len(steps) >= 3
        assert progress < processes * times  # ... while the writers ran
        redirected = _errors(cluster, source) | _errors(cluster, target)
        assert redirected & {"TRYAGAIN", "ASK", "MOVED"}, redirected
        assert cluster.node_for_slot(slot) is target
        raised = _finish(workers)
        total = processes * times
        entry = ctx.get_entry("counter")
        assert entry is not None
        assert (entry.value, entry.version) == (total, total + 1)
        _check_complete(watcher, total)
        watcher.close()
        assert raised == 0  # a slot on the move is waited for, not reported
        ctx.destroy()


@pytest.mark.slow
def test_a_failover_loses_no_acknowledged_replicated_write(
    private_cluster: PrivateClusterFactory,
) -> None:
    cluster = private_cluster(masters=3, replicas=2)
    session = new_session()
    slot = slot_of(session)
    backend = RedisBackend(cluster.url, durability="replicated", socket_timeout=15.0)
    with SharedContext(session, backend=backend) as ctx:
        ctx.set("counter", 0)
        watcher = Watcher(cluster.url, session)
        processes, times = 3, 400
        workers = _spawn_incrementers(cluster.url, session, processes, times, "replicated")
        watcher.wait_for(30)
        killed = cluster.kill_master_of_slot(slot)
        progress = watcher.values[-1]
        promoted = cluster.wait_for_failover(slot)
        assert progress < processes * times  # killed while the writers ran
        assert promoted is not killed
        _finish(workers)
        total = processes * times
        entry = ctx.get_entry("counter")
        assert entry is not None
        assert entry.value == total  # every increment acknowledged is there, once
        _check_complete(watcher, total)
        watcher.close()
    backend.close()


@pytest.mark.slow
def test_the_cli_and_the_demo_take_a_cluster_url(redis_cluster: LocalCluster) -> None:
    def sharedctx(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sharedctx", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            check=False,
        )

    demo = sharedctx("demo", "--json", "--backend", redis_cluster.url, "--workers", "2")
    assert demo.returncode == 0, demo.stderr
    session = json.loads(demo.stdout)["session_id"]
    listed = sharedctx("sessions", "--backend", redis_cluster.url, "--json")
    assert session in [row["session"] for row in json.loads(listed.stdout)]
    inspected = sharedctx(
        "inspect", session, "analysis:*", "--backend", redis_cluster.url, "--json"
    )
    assert len(json.loads(inspected.stdout)) == 7  # six minds and the orchestrator
    deleted = sharedctx("delete", session, "--backend", redis_cluster.url, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert session not in RedisBackend(redis_cluster.url).sessions()


@pytest.mark.redis
def test_a_cluster_that_cannot_connect_is_backend_unavailable(redis_server: RedisServer) -> None:
    # A plain server: the message says what to use instead.
    with pytest.raises(BackendUnavailableError, match=r"not a cluster.*use a redis:// URL"):
        SharedContext("x", backend=f"redis+cluster://127.0.0.1:{redis_server.port}")
    # Nothing listening: a sharedctx error, not redis-py's.
    with pytest.raises(BackendUnavailableError, match=r"Redis Cluster at .* is unavailable"):
        RedisBackend("redis+cluster://127.0.0.1:1")
