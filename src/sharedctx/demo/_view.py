"""What ``sharedctx demo`` shows: the run as a timeline of its phases, then its result.

The :class:`Timeline` follows the run through the context's events only, as a view
in another process would: each phase pending, running (or waiting) or done, with
its time, its events and what it has produced so far. It is drawn live on a
terminal, or printed a row per finished phase elsewhere. Every line fits 80 columns
(or the terminal, if narrower). Whatever comes from the session goes through
:func:`~sharedctx.terminal.printable`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.constrain import Constrain
from rich.table import Table
from rich.text import Text

from sharedctx import ContextEvent
from sharedctx.backends import Glob, compile_glob
from sharedctx.demo._pipeline import DemoOutcome
from sharedctx.pipeline import StandardKeys
from sharedctx.terminal import printable

__all__ = ["PHASES", "WIDTH", "Timeline", "result_view"]

PHASES = ("extraction", "analysis", "synthesis", "validation", "checkpoint", "generation")
WIDTH = 80
"""The widest the demo draws, whatever the terminal's width."""

_STATE_STYLES = {
    "pending": "dim",
    "running": "bold cyan",
    "waiting": "bold yellow",
    "done": "green",
}


@dataclass
class _Phase:
    name: str
    state: str = "pending"
    started: float | None = None
    ended: float | None = None
    detail: str = ""


class Timeline:
    """The phases of one run, fed by ``on_event`` (a context subscriber; thread-safe).

    ``on_done(line)`` is called with each phase's row when it finishes, for output
    that cannot be redrawn; ``__rich_console__`` draws the whole timeline, live.
    """

    def __init__(
        self,
        title: str,
        *,
        minds: int,
        checks: int,
        pace: float = 0.0,
        on_done: Callable[[Text], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.title = title
        self.pace = pace
        self.events = 0
        self.last = ""
        self._phases = {name: _Phase(name) for name in PHASES}
        self._events: Counter[str] = Counter()  # by the first part of their keys
        self._deliveries = {"analysis": (0, minds), "validation": (0, checks)}
        self._on_done = on_done
        self._clock = clock
        self._lock = threading.Lock()

    def events_by_phase(self) -> dict[str, int]:
        """The events seen, by the first part of their keys (a phase, or ``pipeline``
        and ``session`` for the run's own bookkeeping)."""
        with self._lock:
            return dict(sorted(self._events.items()))

    # -- fed by events -------------------------------------------------------------

    def on_event(self, event: ContextEvent) -> None:
        """Count the event in its phase, and follow the run's status and results."""
        now = self._clock()
        with self._lock:
            self.events += 1
            self.last = f"{event.action} {event.key}"
            self._events[event.key.split(":", 1)[0]] += 1
            finished = self._follow(event, now) if event.action == "set" else []
            lines = [self._line(done, now) for done in finished]
        if self._on_done is not None:
            for line in lines:
                self._on_done(line)

    def _follow(self, event: ContextEvent, now: float) -> list[_Phase]:
        """Apply a write; return the phases it finished."""
        value = event.entry.value
        try:
            if event.key == "pipeline:status":
                return self._status(value["phase"], value["state"], now)
            self._note_result(event.key, value)
        except (KeyError, TypeError, ValueError):  # not what the pipeline writes: ignore it
            pass
        return []

    def _status(self, name: str, state: str, now: float) -> list[_Phase]:
        if name not in self._phases and name != "done":
            return []  # not a phase of this pipeline
        finished = []
        for phase in self._phases.values():
            if phase.name == name:
                phase.state = state
                phase.started = now if phase.started is None else phase.started
                break
            if phase.state != "done":  # every phase before the current one is over
                phase.state, phase.ended = "done", now
                finished.append(phase)
        return finished

    def _note_result(self, key: str, value: Any) -> None:
        for pattern, (phase, noun) in _DELIVERIES.items():
            if pattern.match(key):
                delivered, expected = self._deliveries[phase]
                self._deliveries[phase] = (delivered + 1, expected)
                self._phases[phase].detail = f"{delivered + 1}/{expected} {noun}"
                return
        for pattern, (phase, detail) in _DETAILS.items():
            if pattern.match(key):
                self._phases[phase].detail = detail(value)
                return

    # -- drawn -----------------------------------------------------------------------

    def _line(self, phase: _Phase, now: float) -> Text:
        seconds = ""
        if phase.started is not None:
            seconds = f"{(phase.ended or now) - phase.started:.2f} s"
        count = self._events[phase.name]
        events = f"{count} event{'' if count == 1 else 's'}" if count else ""
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"  {phase.name:<11}")
        line.append(f"{phase.state:<8}", style=_STATE_STYLES.get(phase.state, ""))
        line.append(f"{seconds:>8}  {events:>10}  ", style="dim")
        line.append(printable(phase.detail))
        return line

    def header(self) -> Text:
        """The line above the timeline: what runs, where."""
        return Text(printable(self.title), style="bold", no_wrap=True, overflow="ellipsis")

    def footer(self) -> Text:
        """The line below the timeline: the events so far, and the last one."""
        text = f"{self.events} events; last: {self.last}" if self.events else "starting..."
        return Text(printable(text), style="dim", no_wrap=True, overflow="ellipsis")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        now = self._clock()
        with self._lock:
            rows = [self._line(phase, now) for phase in self._phases.values()]
        lines = [self.header(), *rows, self.footer()]
        if self.pace:
            note = f"paced: a phase lasts {self.pace:g} s at least (--pace 0: full speed)"
            lines.append(Text(note, style="dim", no_wrap=True, overflow="ellipsis"))
        yield Constrain(Group(*lines), width=WIDTH)


def _count(value: Mapping[str, Any], field: str) -> int:
    return len(value[field])


# Results counted as they come: the phase they belong to, and what they are.
_DELIVERIES = {
    compile_glob(StandardKeys.MIND_RESULTS): ("analysis", "minds"),
    compile_glob(StandardKeys.VALIDATION_RESULTS): ("validation", "checks"),
}
# What a phase has produced, from the value written under one of its standard keys.
_DETAILS: dict[Glob, tuple[str, Callable[[Any], str]]] = {
    compile_glob(pattern): detail
    for pattern, detail in {
        StandardKeys.SOURCE_METADATA: (
            "extraction",
            lambda v: f"{v['source_count']} sources, {v['total_words']:,} words",
        ),
        StandardKeys.DNA_PROFILE: (
            "synthesis",
            lambda v: f"{_count(v, 'traits')} traits, {_count(v, 'signature_phrases')} phrases",
        ),
        StandardKeys.VALIDATION_SUMMARY: (
            "validation",
            lambda v: f"{v['passed']}/{v['total']} passed, score {float(v['score']):.2f}",
        ),
        StandardKeys.CHECKPOINT_DECISION: (
            "checkpoint",
            lambda v: f"{v['decision']}, by {v['decided_by']}",
        ),
        StandardKeys.MANIFEST_CONTENT: (
            "generation",
            lambda v: f"manifest of {_count(v, 'sections')} sections",
        ),
    }.items()
}


# -- the result --------------------------------------------------------------------


def result_view(outcome: DemoOutcome) -> Constrain:
    """The pipeline's result for people: the DNA profile, the checks and the decision."""
    profile, validation, decision = outcome.profile, outcome.validation, outcome.decision
    traits = sorted(profile.traits.items(), key=lambda item: (-item[1], item[0]))
    style = ", ".join(f"{name} {value:.2f}" for name, value in profile.style_markers.items())
    facts = _facts(
        {
            "traits": ", ".join(f"{name} {score:.2f}" for name, score in traits),
            "phrases": ", ".join(f'"{phrase}"' for phrase in profile.signature_phrases),
            "vocabulary": ", ".join(profile.vocabulary),
            "style": style,
        }
    )
    checks = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    checks.add_column(no_wrap=True)
    checks.add_column(no_wrap=True)
    checks.add_column(justify="right", no_wrap=True)
    checks.add_column(overflow="fold")
    for check in outcome.checks:
        checks.add_row(
            Text(f"  {printable(check.task_id)}"),
            Text("passed", "green") if check.passed else Text("failed", "bold red"),
            Text(f"{check.score:.2f}"),
            Text(printable(check.name)),
        )
    verdict = "passed" if validation.all_passed else "did not all pass"
    return Constrain(
        Group(
            _heading(f"DNA profile of {profile.persona} (version {profile.version})"),
            facts,
            _heading(
                f"Validation: {validation.passed} of {validation.total} checks {verdict}, "
                f"score {validation.score:.2f} (threshold {validation.threshold:.2f})"
            ),
            checks,
            _heading(
                f"Checkpoint {decision.checkpoint_id}: {decision.decision}, by "
                f"{decision.decided_by}" + (f" ({decision.notes})" if decision.notes else "")
            ),
        ),
        width=WIDTH,
    )


def _heading(text: str) -> Text:
    return Text(printable(text), style="bold")


def _facts(facts: Mapping[str, str]) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in facts.items():
        table.add_row(Text(f"  {label}"), Text(printable(value)))
    return table
