"""The README's LangGraph example runs, in memory and on Redis with nodes' work in
separate processes, and its last node gets every parallel node's result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "langgraph_parallel.py"


def test_the_example_graph_runs_on_each_backend(backend: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--backend", backend],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    where = "in memory" if backend == "memory" else "on Redis, analyses in separate processes"
    assert lines == [f"report ({where}):", "longest: Sharpen", "vowels: 0.352", "words: 32"]
