"""What the demo draws: its timeline, fed by events, and its result; escaped and narrow."""

from __future__ import annotations

import io
import uuid

import pytest
from rich.console import Console, RenderableType
from rich.text import Text

from sharedctx import SharedContext
from sharedctx.demo._pipeline import DemoOptions, run_pipeline
from sharedctx.demo._view import PHASES, Timeline, result_view
from sharedctx.pipeline._models import PipelineStatus
from sharedctx.terminal import printable


def drawn(renderable: RenderableType, width: int = 200) -> list[str]:
    """The lines a terminal of ``width`` columns would show (colour codes included)."""
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=True, color_system="standard").print(renderable)
    return out.getvalue().splitlines()


def plain(renderable: RenderableType, width: int = 200) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return [line.rstrip() for line in out.getvalue().splitlines()]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def status(phase: str, state: str = "running") -> PipelineStatus:
    progress = 1.0 if phase == "done" else 0.5
    return PipelineStatus(phase=phase, state=state, progress=progress)  # type: ignore[arg-type]


def test_the_timeline_follows_the_phases_with_their_times_and_events() -> None:
    clock = Clock()
    finished: list[str] = []
    timeline = Timeline(
        "title", minds=2, checks=5, clock=clock, on_done=lambda line: finished.append(line.plain)
    )
    with SharedContext("timeline") as context:
        context.subscribe("*", timeline.on_event)
        context.set("pipeline:status", status("extraction").model_dump())
        context.set("extraction:metadata", {"source_count": 7, "total_words": 1535})
        clock.now += 1.5
        context.set("pipeline:status", status("analysis").model_dump())
        context.set("analysis:mind:a", {})
        clock.now += 0.25
        rows = {line.split()[0]: line for line in plain(timeline)[1:7]}
        assert rows["extraction"].split() == [
            *("extraction", "done", "1.50", "s", "1", "event"),
            *("7", "sources,", "1,535", "words"),
        ]
        assert rows["analysis"].split() == [
            *("analysis", "running", "0.25", "s", "1", "event"),
            *("1/2", "minds"),
        ]
        assert rows["synthesis"].split() == ["synthesis", "pending"]
        assert finished == [rows["extraction"]]
        context.set("pipeline:status", status("done", "done").model_dump())
        assert [line.split()[:2] for line in finished[1:]] == [
            [phase, "done"] for phase in PHASES[1:]
        ]
    assert timeline.events_by_phase() == {"analysis": 1, "extraction": 1, "pipeline": 3}


@pytest.mark.parametrize("width", [40, 80, 200])
async def test_the_timeline_and_the_result_fit_80_columns_or_the_terminal(width: int) -> None:
    timeline = Timeline("sharedctx demo: " + "x" * 100, minds=6, checks=5, pace=1.25)
    with SharedContext(f"fit-{uuid.uuid4().hex[:6]}") as context:
        context.subscribe("*", timeline.on_event)
        outcome = await run_pipeline(context, DemoOptions())
    for renderable in (timeline, result_view(outcome)):
        lines = plain(renderable, width)
        assert max(len(line) for line in lines) <= min(width, 80)
    assert [line.split()[1] for line in plain(timeline)[1:7]] == ["done"] * 6


HOSTILE = "[bold]x\x1b[2J\x1b]0;t\x07\u202e:warning:"


def test_hostile_events_are_shown_escaped() -> None:
    timeline = Timeline(f"demo {HOSTILE}", minds=1, checks=1)
    with SharedContext("hostile") as context:
        context.subscribe("*", timeline.on_event)
        context.set("pipeline:status", {"phase": HOSTILE, "state": HOSTILE})  # not a status
        context.set("synthesis:dna", {"traits": {}, "signature_phrases": []})
        context.set("checkpoint:cp-1:decision", {"decision": "ok\a", "decided_by": "\x1bc"})
        context.set(f"analysis:{HOSTILE}", 1)
    output = "\n".join(drawn(timeline))
    for raw in ("\x1b[2J", "\x1b]", "\x07", "\u202e", "\x1bc"):
        assert raw not in output
    shown = "\n".join(plain(timeline))
    assert "demo [bold]x\\x1b[2J\\x1b]0;t\\x07\\u202e:warning:" in shown
    assert f"last: set analysis:{printable(HOSTILE)}" in shown
    assert "ok\\x07, by \\x1bc" in shown
    assert [line.split()[1] for line in plain(timeline)[1:7]] == ["pending"] * 6


def test_rows_are_text_never_markup() -> None:
    timeline = Timeline("[red]title[/red]", minds=1, checks=1)
    assert isinstance(timeline.header(), Text)
    assert plain(timeline)[0] == "[red]title[/red]"
