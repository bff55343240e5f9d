"""Run the sharedctx benchmarks and report them against the issue's targets.

    python benchmarks/run.py [--quick] [--out DIR] [--only WORKLOAD ...]

``make bench`` runs the full set (a few minutes, sizes up to 1e6 entries);
``--quick`` (also ``python -m sharedctx bench --quick``, which calls :func:`main`)
stops at 1e5 entries and takes fewer samples. The machine is printed first,
progress goes to stderr, then come the tables of medians and the targets with
PASS or MISS. ``results.json`` and ``benchmark.png`` are written to ``--out``
(``benchmarks/results/`` by default, which git ignores). Timings are reported,
never asserted: the exit status is 0 whatever they are.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Run as a script or loaded by path (``sharedctx bench``): its sibling modules must import.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Log, Settings, machine
from redis_workloads import run_redis
from report import Results, draw_chart, format_machine, format_report, targets, write_json
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
    run_threads,
)

__all__ = ["main"]

WORKLOADS = (
    *SIZED_WORKLOADS,
    "purge",
    "subscriptions",
    "memory",
    "expiry",
    "threads",
    "redis",
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


FULL = Mode(
    "full",
    (10**3, 10**4, 10**5, 10**6),
    Settings(rounds=9, sample_ns=20_000_000),
    Settings(rounds=9, sample_ns=100_000_000),
    memory_entries=100_000,
    expiry_keys=100_000,
)
QUICK = Mode(
    "quick",
    (10**3, 10**4, 10**5),
    Settings(rounds=3, sample_ns=5_000_000),
    Settings(rounds=3, sample_ns=25_000_000),
    memory_entries=10_000,
    expiry_keys=10_000,
)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (options as on the command line); return the exit status."""
    options = _parse(argv)
    mode = QUICK if options.quick else FULL
    selected = set(options.only or WORKLOADS)
    started = time.perf_counter()
    results = Results(machine(), _config(mode))
    print(format_machine(results.machine))
    print(
        f"Mode: {mode.name}; N up to {mode.sizes[-1]:,}; medians of {mode.settings.rounds} "
        f"interleaved samples of ~{mode.settings.sample_ns / 1e6:g} ms per case "
        f"(~{mode.thread_settings.sample_ns / 1e6:g} ms with threads)",
        flush=True,
    )
    _measure(mode, selected, results, _logger(started))
    results.targets = targets(results)
    results.seconds = time.perf_counter() - started
    print(format_report(results))
    options.out.mkdir(parents=True, exist_ok=True)
    write_json(results, options.out / "results.json")
    written = [options.out / "results.json"]
    chart = options.out / "benchmark.png"
    if draw_chart(results, chart):
        written.append(chart)
    else:
        chart.unlink(missing_ok=True)  # an older run's chart would not match results.json
    print(f"\nWrote {', '.join(map(str, written))}; the run took {results.seconds:.0f} s")
    return 0


def _measure(mode: Mode, selected: set[str], results: Results, log: Log) -> None:
    # The latency-sensitive expiry run goes first, while the process is small.
    if "expiry" in selected:
        results.expiry = run_expiry(mode.expiry_keys, log)
    if "memory" in selected:
        results.memory_bytes = run_memory(mode.memory_entries, log)
        results.memory_entries = mode.memory_entries
    if "subscriptions" in selected:
        results.subscriptions = run_subscriptions(mode.settings, log)
    if "threads" in selected:
        results.threads_ops_per_s = run_threads(mode.thread_settings, log)
    if selected.intersection(SIZED_WORKLOADS):
        results.sized = run_sized(mode.sizes, selected, mode.settings, log)
    if "purge" in selected:
        results.purge_us = run_purge(mode.sizes, mode.settings, log)
    if "redis" in selected:
        redis = run_redis(mode.settings, mode.thread_settings, log)
        if isinstance(redis, str):
            results.skipped["redis"] = redis
        else:
            results.redis = redis


def _config(mode: Mode) -> dict[str, object]:
    return {
        "mode": mode.name,
        "sizes": list(mode.sizes),
        "rounds": mode.settings.rounds,
        "sample_ms": mode.settings.sample_ns / 1e6,
        "thread_sample_ms": mode.thread_settings.sample_ns / 1e6,
        "expiry_keys": mode.expiry_keys,
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
        "--quick", action="store_true", help="smaller sizes and fewer samples (under a minute)"
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
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
