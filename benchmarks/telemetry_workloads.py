"""What telemetry costs a call: ``get`` and ``set``, in process and on Redis, with
OpenTelemetry's API absent, imported with no provider, and with a provider (and its
in-memory exporter), side by side with the code before telemetry existed.

Each configuration runs in a worker process of its own (``telemetry_worker.py``): one
interpreter can hold only one tracer provider and one set of imports. ``before`` is
commit ``BEFORE_COMMIT``'s ``src/``, taken out of git (``git archive``) into a
temporary directory and put first on the worker's ``PYTHONPATH``; the others run this
checkout. Every worker calibrates each case to about ``sample_ns`` per sample, then
the parent takes ``rounds`` samples of each case from every worker, interleaved in a
rotating order (as ``harness.compare`` does in one process), and reports the median
microseconds per call. In process: of the samples' CPU time (the worker thread's,
``time.thread_time_ns``: on a shared machine, the time a worker spends waiting for
a core is not its code's, and it moved wall-clock ratios by 10% from run to run). On
Redis: of every call's wall-clock duration (the round trip is the point; it is long
enough to time alone, and one slow moment of the server or the machine must not move
a whole sample). The goal: absent, and present with no provider, within 2% of
``before``.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import Log, Settings

__all__ = ["BEFORE_COMMIT", "CONFIGS", "TelemetryResults", "run_telemetry"]

BEFORE_COMMIT = "afd4a0c"
"""The last commit before telemetry ('Tests: asyncio connections close when their
event loop shuts down')."""
CONFIGS = ("before", "absent", "no provider", "provider", "provider+metrics")
ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "telemetry_worker.py"


@dataclass
class TelemetryResults:
    """Case (``memory get``...) -> configuration -> median µs per call."""

    us: dict[str, dict[str, float]] = field(default_factory=dict)
    before_source: str = ""
    """Where ``before`` came from (or why it is missing)."""


class _Worker:
    def __init__(self, mode: str, redis_url: str | None, pythonpath: str | None) -> None:
        env = dict(os.environ)
        if pythonpath is not None:
            env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
        self.mode = mode
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps({"mode": mode, "redis": redis_url})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        self.ready = self._receive()

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.mode!r} worker exited ({self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def sample(self, case: str, repeat: int) -> int:
        """Nanoseconds ``repeat`` calls of ``case`` took."""
        ns: int = self._ask({"case": case, "repeat": repeat})["ns"]
        return ns

    def cpu(self, case: str, repeat: int) -> int:
        """Nanoseconds of CPU time the worker's thread spent on ``repeat`` calls."""
        ns: int = self._ask({"case": case, "repeat": repeat})["cpu_ns"]
        return ns

    def each(self, case: str, repeat: int) -> list[int]:
        """Nanoseconds each of ``repeat`` calls of ``case`` took."""
        durations: list[int] = self._ask({"case": case, "repeat": repeat, "each": True})["each"]
        return durations

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._receive()

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _calibrate(worker: _Worker, case: str, sample_ns: int) -> int:
    repeat = 1
    while True:
        elapsed = max(worker.sample(case, repeat), 1)
        if elapsed >= sample_ns // 2:
            return max(1, round(repeat * sample_ns / elapsed))
        repeat = min(repeat * 100, max(repeat * 2, round(repeat * sample_ns / elapsed)))


def _before(directory: Path, log: Log) -> tuple[str | None, str]:
    """The code before telemetry, as a PYTHONPATH entry, and where it came from."""
    try:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", BEFORE_COMMIT, "src"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        log(f"telemetry: the code before telemetry is not available ({error})")
        return None, f"git archive {BEFORE_COMMIT} failed"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return str(directory / "src"), f"the code before telemetry ({BEFORE_COMMIT})"


def run_telemetry(redis_url: str | None, settings: Settings, log: Log) -> TelemetryResults:
    """Measure every case in every configuration (see the module docstring)."""
    results = TelemetryResults()
    with tempfile.TemporaryDirectory(prefix="sharedctx-before-") as directory, ExitStack() as stack:
        before, results.before_source = _before(Path(directory), log)
        workers = []
        for mode in CONFIGS:
            if mode == "before" and before is None:
                continue
            worker = _Worker(mode, redis_url, before if mode == "before" else None)
            stack.callback(worker.stop)
            workers.append(worker)
            log(f"telemetry: {mode!r} runs {worker.ready['sharedctx']}")
        cases = ["memory get", "memory set"] + (["redis get", "redis set"] if redis_url else [])
        for case in cases:
            repeats = {w.mode: _calibrate(w, case, settings.sample_ns) for w in workers}
            samples: dict[str, list[float]] = {w.mode: [] for w in workers}
            for round_ in range(settings.rounds):
                turn = round_ % len(workers)
                for worker in workers[turn:] + workers[:turn]:
                    repeat = repeats[worker.mode]
                    if case.startswith("redis"):  # every round trip, for their median
                        samples[worker.mode] += [ns / 1000 for ns in worker.each(case, repeat)]
                    else:  # too short to time one by one: the CPU time of a sample
                        samples[worker.mode].append(worker.cpu(case, repeat) / repeat / 1000)
            results.us[case] = {mode: statistics.median(values) for mode, values in samples.items()}
            shown = ", ".join(f"{mode} {us:.2f}" for mode, us in results.us[case].items())
            log(f"telemetry: {case}: {shown} µs")
    return results
