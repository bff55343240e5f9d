"""The Redis Cluster workloads: a local cluster against one server, and a failover.

- **Latency** (:func:`run_cluster`): ``get`` and ``set`` of one session, every call
  timed, on a 3-master cluster (no replicas) and on one server, interleaved.
- **Spread**: operations per second of ``SESSIONS`` sessions, spread by their hash
  slots over the 3 masters, against the same sessions on one server, driven by
  ``SPREAD_CLIENTS`` client processes (each with a share of the sessions).
- **Failover** (:func:`run_failover`): a writer process makes acknowledged ``set``s
  of ``w:<n>`` (n = 0, 1, 2...) to one session; its master is killed (SIGKILL)
  mid-run; once a replica took over, every acknowledged ``n`` is looked up. What is
  missing was acknowledged by the old master but had not reached the replica. With
  ``durability="primary"`` (the default) on a cluster of 1 replica per master, then
  with ``durability="replicated"`` on one of 2 replicas per master (the promoted
  replica still has one to acknowledge to). A measurement, never a pass or fail.

A note on what this machine can show: every node of the cluster, the single server
and the client processes share the same cores. Spreading sessions over 3 masters
cannot add CPU here, so the cluster's operations per second show what the routing
costs (a slot lookup and a pool per node) and that the load is really spread, not
the throughput that 3 machines would give.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis
from harness import CallSettings, Latency, Log, per_call, sample_calls, summarize
from processes import workers
from redis_workloads import ThroughputSettings, run_clients
from servers import SHAREDCTX_COMMAND, cluster, command_stats, redis_server
from workloads import VALUE

from sharedctx import RedisBackend, SharedContext
from sharedctx.backends.redis.keys import session_keys

if TYPE_CHECKING:
    from tests._cluster import LocalCluster

__all__ = [
    "SESSIONS",
    "SPREAD_CLIENTS",
    "ClusterResults",
    "FailoverResults",
    "FailoverRun",
    "FailoverSettings",
    "run_cluster",
    "run_failover",
]

MASTERS = 3
SESSIONS = 64
SPREAD_CLIENTS = 4
"""Client processes of the spread workload. On 2 cores, 4 processes that each wait
for one call at a time already ask for more CPU than there is (a call costs the
client more CPU than the server), so both setups run saturated; more processes would
only add context switches, fewer would leave a master idle while its client runs."""
KEYS_PER_SESSION = 100
KEYS = 1000
_NAMESPACE = "sharedctx"


@dataclass
class ClusterResults:
    """What the cluster workloads measured."""

    masters: int
    latency: dict[str, dict[str, Latency]] = field(default_factory=dict)
    """Operation -> ``cluster`` / ``one node`` -> µs per call."""
    sessions: int = SESSIONS
    clients: int = SPREAD_CLIENTS
    sessions_per_master: list[int] = field(default_factory=list)
    calls_per_master: list[int] = field(default_factory=list)
    """Script calls each master served during the spread workload."""
    ops_per_s: dict[str, float] = field(default_factory=dict)
    """``cluster`` / ``one node`` -> operations per second (median of the rounds)."""


def slot_of(session: str) -> int:
    from redis.crc import key_slot

    return key_slot(session_keys(_NAMESPACE, session)[0])


def run_cluster(calls: CallSettings, throughput: ThroughputSettings, log: Log) -> ClusterResults:
    """Latency and spread on a local 3-master cluster against one server."""
    results = ClusterResults(MASTERS)
    with cluster(MASTERS, 0) as nodes, redis_server() as single:
        log(f"cluster of {MASTERS} masters up in {nodes.startup_seconds:.1f} s")
        targets = {"cluster": nodes.url, "one node": single}
        contexts = {
            name: SharedContext("bench-cluster", backend=url) for name, url in targets.items()
        }
        try:
            keys = [f"bench:{i:04d}" for i in range(KEYS)]
            for context in contexts.values():
                context.set_multiple(dict.fromkeys(keys, VALUE))

            def setter(context: SharedContext) -> Callable[[str], object]:
                return lambda key: context.set(key, VALUE)

            operations = {
                "get": {name: per_call(context.get, keys) for name, context in contexts.items()},
                "set": {
                    name: per_call(setter(context), keys) for name, context in contexts.items()
                },
            }
            for operation, cases in operations.items():
                durations = sample_calls(cases, calls)
                results.latency[operation] = {name: summarize(d) for name, d in durations.items()}
            log("cluster latency done")
        finally:
            for context in contexts.values():
                context.destroy()

        sessions = [f"bench-spread-{index}" for index in range(SESSIONS)]
        masters = nodes.masters()
        owners = [nodes.node_for_slot(slot_of(session)) for session in sessions]
        results.sessions_per_master = [owners.count(master) for master in masters]
        configs = [
            {
                "value": VALUE,
                "keys": KEYS_PER_SESSION,
                "seed": index,
                "systems": {
                    name: {
                        "kind": "sharedctx",
                        "url": url,
                        "sessions": sessions[index::SPREAD_CLIENTS],
                    }
                    for name, url in targets.items()
                },
            }
            for index in range(SPREAD_CLIENTS)
        ]
        with workers("clients", configs) as clients:
            for master in masters:
                nodes.admin(master).config_resetstat()
            results.ops_per_s = {
                name: by_count[SPREAD_CLIENTS]
                for name, by_count in run_clients(
                    clients, list(targets), (SPREAD_CLIENTS,), throughput
                ).items()
            }
            results.calls_per_master = [
                int(command_stats(nodes.admin(master), SHAREDCTX_COMMAND).get("calls", 0))
                for master in masters
            ]
        log("cluster spread done")
    return results


# -- failover --------------------------------------------------------------------------


@dataclass(frozen=True)
class FailoverSettings:
    """How many kills, and how long the writer runs around each."""

    runs: int
    """Kills per durability."""
    before_kill_s: float = 1.5
    """How long the writer runs before its master is killed."""
    after_failover_s: float = 0.5
    """How long it goes on once a replica took over."""


@dataclass(frozen=True)
class FailoverRun:
    """One kill of a session's master under a writer."""

    acked: int
    """Writes acknowledged to the writer."""
    lost: int
    """Acknowledged writes missing after the failover."""
    writes_per_s: float
    """Acknowledged writes per second in the second before the kill."""
    failover_s: float
    """From the kill until the cluster was whole again with a promoted replica."""
    stalled_s: float
    """The writer's longest wait for an acknowledgement after the kill."""
    failed: dict[str, int]
    """Writes that raised, by error (not acknowledged; tried again with the next n)."""
    replication_lag_us: list[float] = field(repr=False)
    """Before the kill, under the writer's load: from a raw ``SET``'s reply (on the
    session's master, in its slot) until a replica returns the value."""


@dataclass
class FailoverResults:
    """Runs by durability (``primary``, ``replicated``) and the replicas per master."""

    replicas: dict[str, int] = field(default_factory=dict)
    runs: dict[str, list[FailoverRun]] = field(default_factory=dict)


def run_failover(settings: FailoverSettings, log: Log) -> FailoverResults:
    """Kill the master of a writer's session; count the acknowledged writes lost."""
    results = FailoverResults()
    for durability, replicas in (("primary", 1), ("replicated", 2)):
        results.replicas[durability] = replicas
        runs = results.runs[durability] = []
        for index in range(settings.runs):
            run = _failover_once(durability, replicas, f"bench-failover-{index}", settings)
            runs.append(run)
            log(
                f"failover {durability} {index + 1}/{settings.runs}: {run.lost} of "
                f"{run.acked} acknowledged writes lost, failover {run.failover_s:.1f} s"
            )
    return results


def _failover_once(
    durability: str, replicas: int, session: str, settings: FailoverSettings
) -> FailoverRun:
    with cluster(MASTERS, replicas, node_timeout_ms=1000) as nodes:
        config = {"url": nodes.url, "session": session, "durability": durability}
        with workers("writer", [{**config, "socket_timeout": 15.0}]) as (writer,):
            lag = _replication_lag(nodes, session, time.monotonic() + settings.before_kill_s)
            killed_at = time.monotonic_ns()
            nodes.kill_master_of_slot(slot_of(session))
            nodes.wait_for_failover(slot_of(session))
            recovered_at = time.monotonic_ns()
            time.sleep(settings.after_failover_s)
            writer.send({"stop": True})
            written = writer.receive(60)
        acked: list[int] = written["acked"]
        acked_at: list[int] = written["acked_at"]
        present = _present(nodes.url, session, acked)
    before = [at for at in acked_at if killed_at - 1_000_000_000 <= at < killed_at]
    after = [at for at in acked_at if at >= killed_at]
    stalls = [b - a for a, b in zip([killed_at, *after], after, strict=False)]
    return FailoverRun(
        acked=len(acked),
        lost=len(acked) - present,
        writes_per_s=float(len(before)),
        failover_s=(recovered_at - killed_at) / 1e9,
        stalled_s=max(stalls, default=0) / 1e9,
        failed=written["failed"],
        replication_lag_us=[value / 1000 for value in lag],
    )


def _replication_lag(nodes: LocalCluster, session: str, until: float) -> list[int]:
    """Nanoseconds from the acknowledgement of a raw ``SET`` on the session's master to
    the value's visibility on its replica (polled as fast as it answers), until
    ``until`` (monotonic)."""
    key = f"{{{session}}}:lag-probe"
    master = nodes.node_for_key(key)
    replica = nodes.replicas_of(master)[0]
    lags: list[int] = []
    with (
        redis.Redis(*master.address) as writer,
        redis.Redis(*replica.address, single_connection_client=True) as reader,
    ):
        reader.execute_command("READONLY")
        probe = 0
        while time.monotonic() < until:
            probe += 1
            writer.set(key, probe)
            acknowledged = time.perf_counter_ns()
            while int(reader.get(key) or 0) != probe:
                pass
            lags.append(time.perf_counter_ns() - acknowledged)
            time.sleep(0.005)
    return lags


def _present(url: str, session: str, acked: list[int]) -> int:
    """How many of the acknowledged writes the session holds (with their value)."""
    backend = RedisBackend(url, socket_timeout=15.0)
    try:
        with SharedContext(session, backend=backend) as context:
            found = 0
            for start in range(0, len(acked), 1000):
                wanted = {f"w:{n:08d}": n for n in acked[start : start + 1000]}
                values = context.get_multiple(wanted)
                found += sum(values.get(key) == n for key, n in wanted.items())
            return found
    finally:
        backend.close()
