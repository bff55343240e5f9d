"""How long ``import sharedctx`` takes, beside the reference design's port.

    python benchmarks/import_time.py [--rounds N]

Each sample is a fresh interpreter (this one's executable) that runs ``import
<module>`` under ``python -X importtime``; the sample is the cumulative time that
Python reports for the module's own top-level import line, so the interpreter's start
is not counted, and what the module imports is. The two systems are sampled in turn,
``rounds`` times each, so that a busy moment of the machine hits both alike:
``sharedctx`` (what every user pays, the extras not imported: see ``sharedctx/__init__``)
and ``reference_design`` (the port of the reference design, a one-module store: the
baseline). ``run.py --only import`` runs it as a workload of the harness.

Each module is imported once first, untimed, with bytecode caching on (the
interpreters run without ``PYTHONDONTWRITEBYTECODE``), so that every sample reads the
compiled modules an installed package has (pip compiles them when it installs), not
the cost of compiling sharedctx's sources again in each interpreter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import Log

__all__ = ["IMPORTED", "ImportResults", "import_ms", "run_import"]

HERE = Path(__file__).resolve().parent
IMPORTED = {"sharedctx": "sharedctx", "reference": "reference_design"}
"""System -> the module whose import is timed."""


@dataclass
class ImportResults:
    """Milliseconds per fresh interpreter, by system."""

    samples_ms: dict[str, list[float]]

    def median(self, system: str) -> float:
        return statistics.median(self.samples_ms[system])

    def best(self, system: str) -> float:
        return min(self.samples_ms[system])


_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
"""The interpreters' environment: bytecode caches written and read, as installed."""


def import_ms(module: str) -> float:
    """Milliseconds that ``import <module>`` took in a fresh interpreter, as
    ``-X importtime`` reports it (cumulative, the module's top-level line)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=HERE,  # the reference design's port is a module of this directory
        env=_ENV,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for line in done.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package", nested names indented
        fields = line.split("|")
        if len(fields) == 3 and fields[2] == f" {module}":
            return int(fields[1]) / 1000
    raise RuntimeError(f"python -X importtime printed no line for {module!r}")


def run_import(rounds: int, log: Log) -> ImportResults:
    """``rounds`` fresh imports of each system, in turn."""
    samples: dict[str, list[float]] = {system: [] for system in IMPORTED}
    log(f"import time: {rounds} fresh interpreters per system")
    for module in IMPORTED.values():
        import_ms(module)  # compiles and caches the bytecode, untimed
    for _ in range(rounds):
        for system, module in IMPORTED.items():
            samples[system].append(import_ms(module))
    return ImportResults(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="interpreters per system")
    rounds = parser.parse_args().rounds
    results = run_import(rounds, lambda message: print(message, file=sys.stderr))
    print(f"ms per fresh interpreter, python -X importtime, {rounds} rounds")
    print(f"{'system':<12} {'median':>8} {'best':>8}")
    for system in IMPORTED:
        print(f"{system:<12} {results.median(system):>8.1f} {results.best(system):>8.1f}")


if __name__ == "__main__":
    main()
