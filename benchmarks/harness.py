"""Timing: medians of interleaved samples, or every call's own duration; the machine.

A *case* runs its operation ``repeat`` times and returns how many operations it
did. :func:`compare` first calibrates each case so that one sample lasts about
``Settings.sample_ns`` (a slow case gets few repeats, a fast one many), then takes
``Settings.rounds`` samples of every case, interleaved and in a rotating order
(A B C, then B C A, ...), so that drifts in the machine's speed hit every case
alike. It reports the median microseconds per operation. Samples are timed with
``time.perf_counter_ns`` around the whole case, loop included: that overhead (a few
tens of ns per operation) is the same for every system.

The cyclic garbage collector is paused while a sample runs, as ``timeit`` does. The
systems share one heap, so a collection is triggered by all of their objects and
would be charged to whichever system happens to run (at 1e5 entries that moved
single medians by up to 4x). This leaves out a cost that the baselines, whose entries
are tracked objects, pay more than sharedctx, whose entries are not.

Calls that take tens of microseconds or more (a Redis round trip) are timed one by
one instead: :func:`sample_calls` runs each case's calls in blocks, interleaved and
rotated as above, and keeps every call's duration, so that a run reports the whole
distribution (:class:`Latency`: p50, p90, p99, max and a histogram), not only a
median. ``time.perf_counter_ns`` around one call costs well under a microsecond.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import cycle, islice
from pathlib import Path
from typing import TypeVar

import sharedctx

__all__ = [
    "CallCase",
    "CallSettings",
    "Case",
    "CpuShare",
    "CpuSnapshot",
    "Histogram",
    "Latency",
    "Log",
    "Settings",
    "compare",
    "cpu_share",
    "cpu_snapshot",
    "machine",
    "measure",
    "per_call",
    "sample_calls",
    "summarize",
]

T = TypeVar("T")

Case = Callable[[int], int]
"""Runs an operation ``repeat`` times; returns the number of operations done."""

Log = Callable[[str], None]
"""Prints a progress line."""


@dataclass(frozen=True)
class Settings:
    """How long and how often to sample."""

    rounds: int
    """Samples per case; the median is reported."""
    sample_ns: int
    """Aimed-at duration of one sample of a per-operation case."""


def compare(cases: Mapping[str, Case], settings: Settings) -> dict[str, float]:
    """Median µs per operation of each case, sampled in interleaved rounds."""
    repeats = {name: _calibrate(case, settings.sample_ns) for name, case in cases.items()}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(settings.rounds):
        turn = round_ % len(names)
        for name in names[turn:] + names[:turn]:
            elapsed, operations = _sample(cases[name], repeats[name])
            samples[name].append(elapsed / operations / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def measure(call: Callable[[], T]) -> tuple[int, T]:
    """Nanoseconds ``call()`` takes with the garbage collector paused, and its result."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        result = call()
        return time.perf_counter_ns() - start, result
    finally:
        if was_enabled:
            gc.enable()


def _sample(case: Case, repeat: int) -> tuple[int, int]:
    return measure(lambda: case(repeat))


def _calibrate(case: Case, sample_ns: int) -> int:
    """The repeat count that makes one sample last about ``sample_ns`` (at least 1).

    The first runs also warm the case up (caches, compiled patterns, lazy imports).
    """
    repeat = 1
    while True:
        elapsed = max(_sample(case, repeat)[0], 1)
        if elapsed >= sample_ns // 2:
            return max(1, round(repeat * sample_ns / elapsed))
        repeat = min(repeat * 100, max(repeat * 2, round(repeat * sample_ns / elapsed)))


# -- one call at a time ------------------------------------------------------------------


CallCase = Callable[[int], list[int]]
"""Makes ``calls`` calls; returns the duration of each, in nanoseconds."""


@dataclass(frozen=True)
class CallSettings:
    """How many calls to time, one by one."""

    rounds: int
    """Blocks of calls per case, interleaved with the other cases' blocks."""
    calls: int
    """Calls per block (``rounds * calls`` durations per case)."""
    warmup: int = 20
    """Untimed calls per case before the first round."""


def per_call(
    call: Callable[[str], object],
    keys: Sequence[str],
    *,
    before: Callable[[str], object] | None = None,
) -> CallCase:
    """Time ``call(key)`` for keys cycling through ``keys``; ``before(key)``, if
    given, runs first for each key, outside the timed part (to re-create what the
    call removes)."""
    endless = cycle(keys)
    clock = time.perf_counter_ns

    def run(calls: int) -> list[int]:
        durations = []
        for key in islice(endless, calls):
            if before is not None:
                before(key)
            start = clock()
            call(key)
            durations.append(clock() - start)
        return durations

    return run


def sample_calls(cases: Mapping[str, CallCase], settings: CallSettings) -> dict[str, list[int]]:
    """Every call's duration (ns) of each case: ``settings.rounds`` blocks of
    ``settings.calls`` calls per case, interleaved in a rotating order, with the
    garbage collector paused during a block."""
    for case in cases.values():
        measure(partial(case, settings.warmup))
    samples: dict[str, list[int]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(settings.rounds):
        turn = round_ % len(names)
        for name in names[turn:] + names[:turn]:
            samples[name] += measure(partial(cases[name], settings.calls))[1]
    return samples


@dataclass(frozen=True)
class Histogram:
    """Counts of durations in logarithmic bins: ``counts[i]`` fell in
    ``[edges_us[i], edges_us[i + 1])``. Bins are ``BINS_PER_DECADE`` to a decade, at
    the same edges for every series (only the range with counts is kept)."""

    edges_us: list[float]
    counts: list[int]


BINS_PER_DECADE = 20


@dataclass(frozen=True)
class Latency:
    """The distribution of one case's call durations, in microseconds."""

    count: int
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    histogram: Histogram = field(repr=False)


def summarize(durations_ns: Sequence[int | float]) -> Latency:
    """Percentiles (nearest rank), mean and histogram of durations given in ns."""
    if not durations_ns:
        raise ValueError("no durations to summarize")
    ordered = sorted(value / 1000 for value in durations_ns)

    def rank(fraction: float) -> float:
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    return Latency(
        count=len(ordered),
        min=ordered[0],
        p50=rank(0.50),
        p90=rank(0.90),
        p99=rank(0.99),
        max=ordered[-1],
        mean=statistics.fmean(ordered),
        histogram=_histogram(ordered),
    )


def _histogram(ordered_us: list[float]) -> Histogram:
    def bin_of(value: float) -> int:
        return math.floor(math.log10(max(value, 1e-3)) * BINS_PER_DECADE)

    first, last = bin_of(ordered_us[0]), bin_of(ordered_us[-1])
    counts = [0] * (last - first + 1)
    for value in ordered_us:
        counts[bin_of(value) - first] += 1
    edges = [10 ** (index / BINS_PER_DECADE) for index in range(first, last + 2)]
    return Histogram(edges, counts)


# -- who else used the machine ---------------------------------------------------------


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds spent so far by the whole machine and by this run (Linux)."""

    at: float
    """``time.monotonic()`` when taken."""
    machine_busy_s: float
    """All cores, since boot, not idle (``/proc/stat``: user, nice, system, irq, softirq)."""
    steal_s: float
    """Taken from this VM by the hypervisor, since boot."""
    ours_s: float
    """This process and all its descendants, alive or reaped."""


@dataclass(frozen=True)
class CpuShare:
    """Who used the machine between two snapshots, as shares of all its cores."""

    seconds: float
    others: float
    """Processes that are not this run's (other users, another test suite...)."""
    steal: float
    """The hypervisor (other VMs)."""


def cpu_snapshot() -> CpuSnapshot | None:
    """Now's :class:`CpuSnapshot`; None where ``/proc`` cannot tell (not Linux)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    ours += sum(_descendant_ticks(os.getpid())) / tick
    return CpuSnapshot(
        time.monotonic(), (user + nice + system + irq + softirq) / tick, steal / tick, ours
    )


def _descendant_ticks(root: int) -> Iterator[int]:
    """CPU ticks of the live descendants of ``root`` (with their reaped children)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(rest[1])
        ticks[pid] = sum(int(value) for value in rest[11:15])  # utime stime cutime cstime
    for pid, total in ticks.items():
        ancestor = parents.get(pid)
        while ancestor is not None and ancestor > 1:
            if ancestor == root:
                yield total
                break
            ancestor = parents.get(ancestor)


def cpu_share(before: CpuSnapshot | None, after: CpuSnapshot | None) -> CpuShare | None:
    """Who used the machine between two snapshots (None if either is unknown)."""
    if before is None or after is None or after.at <= before.at:
        return None
    capacity = (after.at - before.at) * (os.cpu_count() or 1)
    busy = after.machine_busy_s - before.machine_busy_s
    ours = after.ours_s - before.ours_s
    return CpuShare(
        after.at - before.at,
        max(0.0, busy - ours) / capacity,
        (after.steal_s - before.steal_s) / capacity,
    )


def machine() -> dict[str, str | int]:
    """The machine the numbers come from: CPU model, cores, Python, OS."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "gil": "disabled" if not getattr(sys, "_is_gil_enabled", lambda: True)() else "enabled",
        "platform": platform.platform(),
        "sharedctx": sharedctx.__version__,
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() in ("model name", "Model", "cpu model"):
            return value.strip()
    return platform.processor() or "unknown"
