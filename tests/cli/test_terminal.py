"""The demo on a terminal (a pseudo-terminal): what is drawn, and what people type."""

from __future__ import annotations

import pytest

from ._run import ENV, Terminal, on_terminal, replies

PHASES = ("extraction", "analysis", "synthesis", "validation", "checkpoint", "generation")
DUMB = {**ENV, "TERM": "dumb"}  # a terminal that cannot redraw: no live view


@pytest.mark.parametrize("columns", [80, 120])
def test_the_live_demo_fits_the_terminal_and_ends_with_its_result(columns: int) -> None:
    demo = on_terminal("demo", "--pace", "0.02", columns=columns)
    assert demo.status == 0, demo.output
    lines = demo.lines()
    too_wide = [line for line in lines if len(line) > columns]
    assert not too_wide, too_wide
    assert "sharedctx demo: Maren Holt" in demo.output
    for phase in PHASES:  # its own row, in every redraw, and done at the end
        rows = [line for line in lines if line.startswith(f"  {phase} ")]
        assert rows, phase
        assert rows[-1].split()[1] == "done", rows[-1]
    assert "paced: a phase lasts 0.02 s at least" in demo.output
    for section in ("DNA profile of Maren Holt", "Validation: 5 of 5", "Checkpoint cp-1:"):
        assert any(line.startswith(section) for line in lines), section
    assert any(line.lstrip().startswith("traits ") for line in lines)
    assert any(line.startswith("validation:task:EX-005") for line in lines)
    assert "decision: approve" in demo.output


def interactive_demo(*typed: tuple[str, bytes]) -> Terminal:
    """``sharedctx demo --interactive`` on a terminal, typing each reply at its prompt."""
    return on_terminal("demo", "--interactive", "--pace", "0", env=DUMB, answer=replies(*typed))


def test_the_interactive_demo_asks_for_the_checkpoint_decision() -> None:
    demo = interactive_demo(("Decision [", b"reject\n"), ("Notes (", b"too early\n"))
    assert demo.status == 0, demo.output
    assert "automatic proposal approve" in demo.output
    assert "Checkpoint cp-1: reject, by terminal (too early)" in demo.output
    assert "decision: reject" in demo.output


def test_ctrl_d_at_the_prompt_stops_the_run_with_one_line() -> None:
    demo = interactive_demo(("Decision [", b"\x04"))
    assert demo.status == 2, demo.output
    assert "Traceback" not in demo.output
    errors = [line for line in demo.lines() if "error" in line]
    assert errors == [
        "sharedctx: error: no decision at checkpoint cp-1: the input ended (Ctrl-D), so the "
        "run stops before it"
    ]
    assert "DNA profile" not in demo.output


def test_ctrl_c_at_the_prompt_stops_the_run_at_once() -> None:
    # The prompt's thread waiting for input must not keep the process alive.
    demo = interactive_demo(("Decision [", b"\x03"))
    assert demo.status == 130, demo.output
    assert "Traceback" not in demo.output
