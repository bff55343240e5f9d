"""Run the sharedctx benchmarks and report them against the issues' targets.

    python benchmarks/run.py [--quick] [--out DIR] [--only WORKLOAD ...] [--publish]

``make bench`` runs the full set with ``--publish`` (about 10 minutes on a 2-core
VM); ``--quick`` takes fewer samples, smaller sizes and one failover per setting
(about a minute and a half), for development. The machine is printed first, progress
goes to stderr, then come the tables, the first round's figures then and now, and
every target with what was measured and whether it was met. ``results.json`` and
``benchmark.png`` are written to ``--out`` (``benchmarks/results/`` by default,
which git ignores); ``--publish`` then copies them to ``docs/`` and rewrites the
benchmarks page's figures (``docs/benchmarks.md``) from the same run (``publish.py``).
Timings are reported, never asserted: the exit status is 0 whatever they are.

Every server (a ``redis-server``, local Redis Clusters) and every worker process is
started by the run, on loopback, and stopped before it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Run as a script: its sibling modules must import.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chart import draw_chart
from cluster_workloads import FailoverSettings, run_cluster, run_failover
from harness import CallSettings, Log, Settings, cpu_share, cpu_snapshot, machine
from history_workloads import run_history
from import_time import run_import
from load_workloads import run_load
from peer_workloads import PeerSettings, run_peers
from publish import publish, source_revision
from redis_workloads import (
    NotificationSettings,
    RedisResults,
    ThroughputSettings,
    run_latency,
    run_notifications,
    run_processes,
    run_threads,
    server_version,
)
from report import format_machine, format_report
from results import Results, WorkloadRun, write_json
from round1 import run_round1
from sealed_workloads import format_sealed, run_sealed
from servers import missing_cluster_tools, missing_server, redis_server
from targets import regressions, targets
from telemetry_workloads import run_telemetry
from web_workloads import WebSettings, missing_browser, run_web
from workloads import (
    PATTERN,
    SIZED_WORKLOADS,
    TAG,
    TTL,
    VALUE,
    run_expiry,
    run_memory,
    run_purge,
    run_sized,
    run_subscriptions,
)
from workloads import run_threads as run_memory_threads

__all__ = ["main"]

REDIS_WORKLOADS = (
    "redis", "sealed", "notifications", "redis-processes", "redis-threads", "load", "web",
    "telemetry", "history",
)  # fmt: skip
"""The workloads that share one ``redis-server`` (history: in process too)."""
CLUSTER_WORKLOADS = ("cluster", "failover")
WORKLOADS = (
    "import",
    *SIZED_WORKLOADS,
    "purge",
    "subscriptions",
    "memory",
    "expiry",
    "threads",
    *REDIS_WORKLOADS,
    *CLUSTER_WORKLOADS,
    "peers",
    "round1",
)


@dataclass(frozen=True)
class Mode:
    """How big and how long a run is."""

    name: str
    sizes: tuple[int, ...]
    """Entries of the sized workloads and of the purge workload."""
    settings: Settings
    thread_settings: Settings
    """For the workloads with threads: longer samples, as each starts its threads."""
    memory_entries: int
    expiry_keys: int
    redis_calls: CallSettings
    redis_batch_calls: CallSettings
    """For ``set_multiple``/``get_multiple`` of 1000 keys (milliseconds per call)."""
    notifications: NotificationSettings
    throughput: ThroughputSettings
    cluster_calls: CallSettings
    cluster_throughput: ThroughputSettings
    failover: FailoverSettings
    idle_seconds: float
    web: WebSettings
    import_rounds: int
    """Fresh interpreters that import sharedctx (and the reference), each."""
    telemetry: Settings
    """For the telemetry workload: samples per configuration of each case."""
    peers: PeerSettings
    """For the LangGraph stores: calls in process, seconds with client processes."""


FULL = Mode(
    "full",
    (10**3, 10**4, 10**5, 10**6),
    Settings(rounds=9, sample_ns=20_000_000),
    Settings(rounds=9, sample_ns=100_000_000),
    memory_entries=100_000,
    expiry_keys=100_000,
    redis_calls=CallSettings(rounds=15, calls=400),
    redis_batch_calls=CallSettings(rounds=15, calls=8, warmup=3),
    notifications=NotificationSettings(samples=1500, seconds=60),
    throughput=ThroughputSettings(rounds=3, seconds=2.0),
    cluster_calls=CallSettings(rounds=10, calls=300),
    cluster_throughput=ThroughputSettings(rounds=3, seconds=2.0),
    failover=FailoverSettings(runs=5),
    idle_seconds=3.0,
    web=WebSettings(loads=7, seconds=10.0),
    import_rounds=21,
    telemetry=Settings(rounds=31, sample_ns=20_000_000),
    peers=PeerSettings(
        CallSettings(rounds=15, calls=1000, warmup=200), ThroughputSettings(rounds=3, seconds=3.0)
    ),
)
QUICK = Mode(
    "quick",
    (10**3, 10**4, 10**5),
    Settings(rounds=3, sample_ns=5_000_000),
    Settings(rounds=3, sample_ns=25_000_000),
    memory_entries=10_000,
    expiry_keys=10_000,
    redis_calls=CallSettings(rounds=5, calls=100),
    redis_batch_calls=CallSettings(rounds=3, calls=4, warmup=2),
    notifications=NotificationSettings(samples=300, seconds=10),
    throughput=ThroughputSettings(rounds=2, seconds=0.5),
    cluster_calls=CallSettings(rounds=5, calls=100),
    cluster_throughput=ThroughputSettings(rounds=2, seconds=0.5),
    failover=FailoverSettings(runs=1),
    idle_seconds=1.0,
    web=WebSettings(loads=3, seconds=3.0),
    import_rounds=5,
    telemetry=Settings(rounds=5, sample_ns=10_000_000),
    peers=PeerSettings(
        CallSettings(rounds=3, calls=300, warmup=100), ThroughputSettings(rounds=1, seconds=1.0)
    ),
)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (options as on the command line); return the exit status."""
    options = _parse(argv)
    mode = QUICK if options.quick else FULL
    selected = set(options.only or WORKLOADS)
    started = time.perf_counter()
    results = Results(machine(), _config(mode, source_revision()))
    print(f"Machine: {format_machine(results.machine)}")
    print(
        f"Mode: {mode.name}; N up to {mode.sizes[-1]:,}; in process, medians of "
        f"{mode.settings.rounds} interleaved samples per case; Redis calls timed one by one "
        f"({mode.redis_calls.rounds} x {mode.redis_calls.calls} per case)",
        flush=True,
    )
    log = _logger(started)
    _measure(mode, selected, results, log)
    if "round1" in selected:
        with _timer(results, log)("round1"):
            round1 = run_round1(options.quick, log)
        results.round1_source = round1.source
        results.regressions = regressions(results, round1.figures)
    results.targets = targets(results)
    results.seconds = time.perf_counter() - started
    results.config["when"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(format_report(results))
    if results.sealed is not None:
        print(format_sealed(results.sealed))
    options.out.mkdir(parents=True, exist_ok=True)
    write_json(results, options.out / "results.json")
    written = [options.out / "results.json"]
    chart = options.out / "benchmark.png"
    if draw_chart(results, chart):
        written.append(chart)
    else:
        chart.unlink(missing_ok=True)  # an older run's chart would not match results.json
    if options.publish:
        written += publish(results, options.out)
    print(f"\nWrote {', '.join(map(str, written))}; the run took {results.seconds:.0f} s")
    return 0


def _measure(mode: Mode, selected: set[str], results: Results, log: Log) -> None:
    timed = _timer(results, log)
    if "import" in selected:  # fresh interpreters: whatever this process holds
        with timed("import"):
            results.import_time = run_import(mode.import_rounds, log)
    # The latency-sensitive expiry run goes first, while the process is small.
    if "expiry" in selected:
        with timed("expiry"):
            results.expiry = run_expiry(mode.expiry_keys, log)
    if "memory" in selected:
        with timed("memory"):
            results.memory_bytes = run_memory(mode.memory_entries, log)
            results.memory_entries = mode.memory_entries
    if "subscriptions" in selected:
        with timed("subscriptions"):
            results.subscriptions = run_subscriptions(mode.settings, log)
    if "threads" in selected:
        with timed("threads"):
            results.threads_ops_per_s = run_memory_threads(mode.thread_settings, log)
    if selected.intersection(SIZED_WORKLOADS):
        with timed("sized"):
            results.sized = run_sized(mode.sizes, selected, mode.settings, log)
    if "purge" in selected:
        with timed("purge"):
            results.purge_us = run_purge(mode.sizes, mode.settings, log)
    if selected.intersection(REDIS_WORKLOADS):
        _measure_redis(mode, selected, results, log)
    if selected.intersection(CLUSTER_WORKLOADS):
        _measure_cluster(mode, selected, results, log)
    if "peers" in selected:  # its own servers: a redis-server and a PostgreSQL
        with timed("peers"):
            results.peers = run_peers(mode.peers, log)


def _measure_redis(mode: Mode, selected: set[str], results: Results, log: Log) -> None:
    missing = missing_server()
    if missing is not None:
        for workload in selected.intersection(REDIS_WORKLOADS):
            results.skipped[workload] = missing
        return
    timed = _timer(results, log)
    with redis_server() as url:
        redis = results.redis = RedisResults(server_version(url))
        if "redis" in selected:
            with timed("redis"):
                run_latency(url, mode.redis_calls, mode.redis_batch_calls, redis, log)
        if "sealed" in selected:
            with timed("sealed"):
                results.sealed = run_sealed(url, mode.redis_calls, log)
        if "notifications" in selected:
            with timed("notifications"):
                run_notifications(url, mode.notifications, redis, log)
        if "redis-processes" in selected:
            with timed("redis-processes"):
                run_processes(url, mode.throughput, redis, log)
        if "redis-threads" in selected:
            with timed("redis-threads"):
                run_threads(url, mode.thread_settings, redis, log)
        if "load" in selected:
            with timed("load"):
                results.load = run_load(url, mode.idle_seconds, log)
        if "history" in selected:
            with timed("history"):
                results.history = run_history(url, mode.settings, mode.redis_calls, log)
        if "web" in selected:
            missing = missing_browser()
            if missing is not None:
                results.skipped["web"] = missing
            else:
                with timed("web"):
                    results.web = run_web(url, mode.web, log)
        if "telemetry" in selected:
            with timed("telemetry"):
                results.telemetry = run_telemetry(url, mode.telemetry, log)


def _measure_cluster(mode: Mode, selected: set[str], results: Results, log: Log) -> None:
    missing = missing_cluster_tools()
    if missing is not None:
        for workload in selected.intersection(CLUSTER_WORKLOADS):
            results.skipped[workload] = missing
        return
    timed = _timer(results, log)
    if "cluster" in selected:
        with timed("cluster"):
            results.cluster = run_cluster(mode.cluster_calls, mode.cluster_throughput, log)
    if "failover" in selected:
        with timed("failover"):
            results.failover = run_failover(mode.failover, log)


def _timer(results: Results, log: Log) -> Callable[[str], contextlib.AbstractContextManager[None]]:
    """``with timed(workload):`` records how long it took and who else used the machine."""

    @contextlib.contextmanager
    def timed(workload: str) -> Iterator[None]:
        started, before = time.perf_counter(), cpu_snapshot()
        yield
        seconds, share = time.perf_counter() - started, cpu_share(before, cpu_snapshot())
        run = WorkloadRun(
            seconds,
            None if share is None else share.others,
            None if share is None else share.steal,
        )
        results.workloads[workload] = run
        others = "" if run.others_cpu is None else f" ({run.others_cpu:.0%} of the CPU to others)"
        log(f"{workload}: {seconds:.0f} s{others}")

    return timed


def _config(mode: Mode, source: str) -> dict[str, object]:
    return {
        "mode": mode.name,
        "source": source,
        "sizes": list(mode.sizes),
        "rounds": mode.settings.rounds,
        "sample_ms": mode.settings.sample_ns / 1e6,
        "thread_sample_ms": mode.thread_settings.sample_ns / 1e6,
        "expiry_keys": mode.expiry_keys,
        "redis_calls": f"{mode.redis_calls.rounds} x {mode.redis_calls.calls}",
        "redis_batch_calls": f"{mode.redis_batch_calls.rounds} x {mode.redis_batch_calls.calls}",
        "notifications": mode.notifications.samples,
        "throughput_s": f"{mode.throughput.rounds} x {mode.throughput.seconds:g}",
        "failover_runs": mode.failover.runs,
        "peer_calls": f"{mode.peers.calls.rounds} x {mode.peers.calls.calls}",
        "peer_throughput_s": f"{mode.peers.throughput.rounds} x {mode.peers.throughput.seconds:g}",
        "value": VALUE,
        "ttl_s": TTL,
        "pattern": PATTERN,
        "tag": TAG,
    }


def _logger(started: float) -> Log:
    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    return log


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description="Run the sharedctx benchmarks."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes, fewer samples, one failover per setting (about 1.5 minutes)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results",
        help="directory for results.json and benchmark.png (default: benchmarks/results)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=WORKLOADS,
        metavar="WORKLOAD",
        help=f"any of: {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="copy the chart and the JSON to docs/ and rewrite docs/benchmarks.md's figures",
    )
    options = parser.parse_args(argv)
    if options.publish and options.only:
        parser.error("--publish needs every workload: the benchmarks page shows them all")
    return options


if __name__ == "__main__":
    sys.exit(main())
