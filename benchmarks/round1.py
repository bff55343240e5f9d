"""The first round's code, measured again on this machine: the baseline of "nothing
measured in the first round gets slower".

The first round's figures were published by commit ``ROUND1_COMMIT`` (its
``docs/benchmark-results.json``, kept here as ``round1-results.json``), on another
machine. Figures from two machines do not compare, even as ratios: a faster loopback
makes every Redis ratio worse, another CPU favours other code. So a run takes that
commit's ``src/`` and ``benchmarks/`` out of git (``git archive``) into a temporary
directory and runs its own harness there, on this machine, minutes before or after
this run's workloads (``--quick`` with ``--quick``). Without git or that commit, the
published figures are used, and the report says so.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from harness import Log

__all__ = ["ROUND1_COMMIT", "Round1", "run_round1"]

ROUND1_COMMIT = "747ac28"
"""'Benchmark figures and chart from a run of the current code' (the first round)."""
ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = Path(__file__).resolve().parent / "round1-results.json"


class Round1:
    """The first round's results (``results.json`` of its harness) and their source."""

    def __init__(self, figures: dict[str, Any], source: str) -> None:
        self.figures = figures
        self.source = source


def run_round1(quick: bool, log: Log) -> Round1:
    """Run the first round's harness on its own code here; fall back on the published
    figures if that cannot be done (the reason is in ``source``)."""
    try:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", ROUND1_COMMIT, "src", "benchmarks"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        log(f"round 1: its code is not available ({error}); using its published figures")
        return _published(f"git archive {ROUND1_COMMIT} failed")
    with tempfile.TemporaryDirectory(prefix="sharedctx-round1-") as directory:
        root = Path(directory)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(root, filter="data")
        command = [sys.executable, str(root / "benchmarks" / "run.py"), "--out", str(root / "out")]
        if quick:
            command.append("--quick")
        environment = {**os.environ, "PYTHONPATH": str(root / "src")}
        done = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            log(f"round 1: its harness failed:\n{done.stderr[-2000:]}")
            return _published("its harness failed on this machine")
        figures = json.loads((root / "out" / "results.json").read_text())
    log("round 1: its code measured on this machine")
    return Round1(
        figures,
        f"the first round's code and harness (commit {ROUND1_COMMIT}), run on this machine "
        "in this run",
    )


def _published(reason: str) -> Round1:
    return Round1(
        json.loads(PUBLISHED.read_text()),
        f"the first round's published figures (commit {ROUND1_COMMIT}, another machine; {reason})",
    )
