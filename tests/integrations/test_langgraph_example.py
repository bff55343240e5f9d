"""The LangGraph examples run, in memory and on Redis (the runnable one with its nodes'
work in separate processes), and their last node gets every parallel node's result."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sharedctx import SharedContext

EXAMPLE = Path(__file__).parents[2] / "examples" / "langgraph_parallel.py"


def test_the_example_graph_runs_on_each_backend(backend_url: str) -> None:
    backend = backend_url
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


def test_the_guides_graph_runs_on_each_backend(
    backend_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = backend_url
    guide = (Path(__file__).parents[2] / "docs" / "guides" / "langgraph.md").read_text()
    section = guide[guide.index("## A graph whose nodes wait for each other") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("```", start)]
    session = f"readme-{uuid.uuid4().hex[:8]}"
    code = code.replace('"redis://localhost:6379/0"', repr(backend))
    exec(compile(code.replace('"session-42"', repr(session)), "langgraph.md", "exec"), {})
    report = {name: {"length": 3} for name in ["longest", "vowels", "words"]}
    assert capsys.readouterr().out == f"{report}\n"
    if backend != "memory":
        SharedContext(session, backend=backend).destroy()
