"""History: what keeping past versions costs a write, and what a read at a revision
costs against a plain ``get``, in process and on Redis.

Every case works on 1,000 keys, each written ``WRITES`` times first, so that a
session with history keeps 8 past versions of each: ``set`` overwrites keys of a
session without history and of one with ``history_versions=8`` (which then drops
its oldest version each time); ``get`` and ``get at a revision`` read keys of a third
session, with history and not written meanwhile, the latter at a revision in the
middle of their kept versions; ``history`` gives a key's 9 versions there. In process
the cases are sampled in interleaved rounds (median µs per call); on Redis each call
is timed (percentiles).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from harness import CallSettings, Case, Latency, Log, Settings, compare, per_call, sample_calls
from harness import summarize as summarize_calls
from workloads import VALUE

from sharedctx import MemoryBackend, SharedContext

__all__ = ["CASES", "HistoryResults", "run_history"]

KEYS = 1000
WRITES = 12
"""Writes of each key before the measurement (more than the 9 versions kept)."""
VERSIONS = 8

CASES = ("set, history off", "set, history on", "get", "get at a revision", "history")


@dataclass
class HistoryResults:
    """Case -> median µs per call in process; case -> latency per call on Redis."""

    in_process: dict[str, float] = field(default_factory=dict)
    redis: dict[str, Latency] = field(default_factory=dict)


def run_history(
    url: str | None, settings: Settings, calls: CallSettings, log: Log
) -> HistoryResults:
    """Both parts: in process, and on the Redis server at ``url`` (None: skipped)."""
    results = HistoryResults()
    log("history: in process")
    with _Sessions(MemoryBackend()) as sessions:
        results.in_process = compare(_cases(sessions.calls()), settings)
    if url is not None:
        log("history: on Redis")
        with _Sessions(url) as sessions:
            timed = {name: per_call(call, _keys()) for name, call in sessions.calls()}
            samples = sample_calls(timed, calls)
        results.redis = {name: summarize_calls(durations) for name, durations in samples.items()}
    return results


def _keys() -> list[str]:
    return [f"bench:{n:04d}" for n in range(KEYS)]


Call = Callable[[str], object]


class _Sessions:
    """The sessions written (without history, with) and the one read, filled."""

    def __init__(self, backend: str | MemoryBackend) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.off = SharedContext(f"bench-history-off-{suffix}", backend=backend)
        self.on = SharedContext(
            f"bench-history-on-{suffix}", backend=backend, history_versions=VERSIONS
        )
        self.read = SharedContext(
            f"bench-history-read-{suffix}", backend=backend, history_versions=VERSIONS
        )
        self.revision = 0

    def __enter__(self) -> _Sessions:
        keys = _keys()
        for write in range(WRITES):
            for context in (self.off, self.on, self.read):
                context.set_multiple(dict.fromkeys(keys, VALUE))
            if write == WRITES - VERSIONS // 2:
                self.revision = self.read.revision  # in the middle of the kept versions
        return self

    def __exit__(self, *exc_info: object) -> None:
        for context in (self.off, self.on, self.read):
            context.destroy()

    def calls(self) -> list[tuple[str, Call]]:
        off, on, read, revision = self.off, self.on, self.read, self.revision
        return [
            ("set, history off", lambda key: off.set(key, VALUE)),
            ("set, history on", lambda key: on.set(key, VALUE)),
            ("get", read.get),
            ("get at a revision", lambda key: read.get(key, revision=revision)),
            ("history", read.history),
        ]


def _cases(calls: list[tuple[str, Call]]) -> dict[str, Case]:
    keys = _keys()

    def case(call: Call) -> Case:
        def run(repeat: int) -> int:
            for number in range(repeat):
                call(keys[number % KEYS])
            return repeat

        return run

    return {name: case(call) for name, call in calls}
