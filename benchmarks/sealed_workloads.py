"""Sealed sessions against plain ones: ``get`` and ``set`` of a 1 KiB value, in
process (memory) and on Redis, all four side by side in one run (interleaved blocks
of calls, timed one by one), and the CPU time of one seal and one open.

The issue's goal: sealed at most 1.1x plain on Redis, p50.
"""

from __future__ import annotations

import os
import string
import time
from dataclasses import dataclass, field

from harness import CallSettings, Latency, Log, per_call, sample_calls, summarize

from sharedctx import KeyRing, MemoryBackend, MsgpackCodec, RedisBackend, SharedContext
from sharedctx._sealed import SessionKeys

__all__ = ["SealedResults", "format_sealed", "run_sealed"]

KEYS = 200
SEAL_CALLS = 20_000


@dataclass
class SealedResults:
    """Latencies of ``get`` and ``set`` (case -> distribution), and the CPU cost of
    sealing and opening one 1 KiB value (µs)."""

    get: dict[str, Latency] = field(default_factory=dict)
    set: dict[str, Latency] = field(default_factory=dict)
    seal_cpu_us: float = 0.0
    open_cpu_us: float = 0.0


def _value() -> str:
    """A 1 KiB value (text, as a pipeline's results mostly are); 1024 bytes encoded."""
    letters = string.ascii_letters + string.digits + " "
    return "".join(letters[byte % len(letters)] for byte in os.urandom(1021))


def run_sealed(url: str, settings: CallSettings, log: Log) -> SealedResults:
    """Measure (see the module docstring)."""
    value = _value()
    assert len(MsgpackCodec().encode("k", value)) == 1024
    ring = KeyRing({"bench": KeyRing.generate_key()})
    backends = {
        "memory plain": MemoryBackend(),
        "memory sealed": MemoryBackend(keyring=ring),
        "redis plain": RedisBackend(url, namespace="bench-plain"),
        "redis sealed": RedisBackend(url, namespace="bench-sealed", keyring=ring),
    }
    keys = [f"bench:{i:04d}" for i in range(KEYS)]
    contexts = {name: SharedContext("sealed-bench", backend=b) for name, b in backends.items()}
    results = SealedResults()
    try:
        for context in contexts.values():
            context.set_multiple(dict.fromkeys(keys, value))
        results.get = {
            name: summarize(durations)
            for name, durations in sample_calls(
                {name: per_call(context.get, keys) for name, context in contexts.items()}, settings
            ).items()
        }
        log("sealed: get done")

        def setter(context: SharedContext):  # type: ignore[no-untyped-def]
            return lambda key: context.set(key, value)

        results.set = {
            name: summarize(durations)
            for name, durations in sample_calls(
                {name: per_call(setter(context), keys) for name, context in contexts.items()},
                settings,
            ).items()
        }
        log("sealed: set done")
    finally:
        for context in contexts.values():
            context.destroy()
        for backend in backends.values():
            backend.close()
    results.seal_cpu_us, results.open_cpu_us = _crypto_cpu(ring, value)
    log("sealed: seal and open done")
    return results


def _crypto_cpu(ring: KeyRing, value: str) -> tuple[float, float]:
    """CPU µs of sealing, then of opening, one encoded 1 KiB value (the median of 5
    runs of ``SEAL_CALLS`` each)."""
    keys = SessionKeys(ring, "bench", "session")
    keys.learn([keys.new_record()[1]])
    data = MsgpackCodec().encode("k", value)
    sealed = keys.seal("k", data)
    seal_runs, open_runs = [], []
    for _ in range(5):
        start = time.process_time_ns()
        for _ in range(SEAL_CALLS):
            keys.seal("k", data)
        seal_runs.append((time.process_time_ns() - start) / SEAL_CALLS / 1000)
        start = time.process_time_ns()
        for _ in range(SEAL_CALLS):
            keys.open("k", sealed)
        open_runs.append((time.process_time_ns() - start) / SEAL_CALLS / 1000)
    return sorted(seal_runs)[2], sorted(open_runs)[2]


def format_sealed(results: SealedResults) -> str:
    """The side-by-side table and the seal/open CPU figures."""
    lines = [
        "",
        "Sealed sessions: get and set of a 1 KiB value, µs per call (one run, interleaved)",
        f"{'call':<5} {'where':<8} {'plain p50':>10} {'sealed p50':>11} {'ratio':>6} "
        f"{'plain p99':>10} {'sealed p99':>11}",
    ]
    for call, found in (("get", results.get), ("set", results.set)):
        for where in ("memory", "redis"):
            plain, sealed = found[f"{where} plain"], found[f"{where} sealed"]
            lines.append(
                f"{call:<5} {where:<8} {plain.p50:>10.1f} {sealed.p50:>11.1f} "
                f"{sealed.p50 / plain.p50:>5.2f}x {plain.p99:>10.1f} {sealed.p99:>11.1f}"
            )
    lines.append(
        f"CPU per 1 KiB value: seal {results.seal_cpu_us:.2f} µs, open "
        f"{results.open_cpu_us:.2f} µs (goal: sealed at most 1.1x plain on Redis, p50)"
    )
    return "\n".join(lines)
