"""Timing: medians of interleaved samples, each many operations long; the machine.

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
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sharedctx

__all__ = ["Case", "Log", "Settings", "compare", "machine", "measure"]

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
