"""``sharedctx demo``: the pipeline (``_pipeline``) run once, shown, and summed up.

On a terminal the run is drawn live as a timeline of its phases (``_view``) and is
paced so that people can follow it; elsewhere a row is printed per finished phase.
Then comes what the pipeline produced (the DNA profile, the checks, the decision),
the entries left in the context and a summary line; ``--json`` prints the summary
as JSON instead, ``--quiet`` only its line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from rich.console import Console
from rich.live import Live
from rich.prompt import Prompt
from rich.text import Text

from sharedctx import CheckpointDecision, ContextEntry, SharedContext
from sharedctx.demo import _persona
from sharedctx.demo._pipeline import (
    CHECKPOINT,
    PERSONA,
    Decide,
    DemoError,
    DemoOptions,
    DemoOutcome,
    backend_name,
    is_memory,
    run_pipeline,
)
from sharedctx.demo._view import Timeline, result_view
from sharedctx.terminal import entries_table, entry_row, print_unsqueezed, printable

if TYPE_CHECKING:
    from sharedctx.demo._web import WebView

__all__ = ["DEFAULT_PACE", "Output", "run_demo"]

DEFAULT_PACE = 1.25
"""Seconds a phase lasts at least on a terminal: about 10 s for the whole run."""

Output = Literal["live", "lines", "quiet", "json"]
"""live: a timeline redrawn on a terminal; lines: a row per finished phase; quiet: the
summary line only; json: nothing (the caller prints the summary)."""

T = TypeVar("T")


def run_demo(
    options: DemoOptions, console: Console, *, output: Output, web: int | None = None
) -> dict[str, Any]:
    """Run the pipeline once, show it on ``console`` as ``output`` says, and return its
    summary (what ``--json`` prints). Raises ``DemoError`` if the run fails. With
    ``web`` (a port; 0: any), the session's page is served too (``_web``), and the run
    waits for Enter before it ends."""
    options.check()
    if web is None:
        return asyncio.run(_run(options, console, output))
    from sharedctx.demo._web import WebView

    with WebView(options.backend, web, decide_on_page=options.interactive) as view:
        return asyncio.run(_run(options, console, output, view))


async def _run(
    options: DemoOptions, console: Console, output: Output, view: WebView | None = None
) -> dict[str, Any]:
    session_id = f"demo-{options.seed}-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    timeline = Timeline(
        f"sharedctx demo: {PERSONA}, session {session_id} ({backend_name(options.backend)})",
        minds=options.minds,
        checks=len(_persona.VALIDATION_TASKS),
        pace=options.pace,
        on_done=console.print if output == "lines" else None,
    )
    context = SharedContext(session_id, default_ttl=options.ttl, backend=options.backend)
    try:
        context.subscribe("*", timeline.on_event)
        if view is not None:
            _note(f"the run, live in the browser: {view.page_url(session_id)}")
        with _shown(timeline, console, output) as live:
            decide = _asker(live) if options.interactive else None
            if view is not None and options.interactive:
                from sharedctx.demo._web import page_decider

                decide = page_decider(context, _note)
            outcome = await run_pipeline(context, options, decide)
        entries = context.find_by_pattern("*")
        summary = _summary(context, options, timeline, outcome, entries, started)
        if view is not None:
            _note(f"done: press Enter to end (the page stays until then): {summary['decision']}")
            await _on_daemon_thread(sys.stdin.readline)
    finally:
        if is_memory(options.backend):
            context.destroy()
        else:
            context.close()  # the session stays on Redis (until its TTL) for `sharedctx inspect`
    if output in ("live", "lines"):
        print_unsqueezed(console, entries_table(entries, title="Shared context at the end"))
        console.print(result_view(outcome))
    if output != "json":
        # One line for scripts that read it; wrapped only to fit a terminal.
        console.print(Text(_summary_line(summary)), soft_wrap=not console.is_terminal)
    return summary


@contextmanager
def _shown(timeline: Timeline, console: Console, output: Output) -> Iterator[Live | None]:
    """Draw the timeline live while the run lasts, or print its first and last lines."""
    if output == "live":
        with Live(timeline, console=console, refresh_per_second=8) as live:
            yield live
        return
    if output == "lines":
        console.print(timeline.header())
    yield None
    if output == "lines":
        console.print(timeline.footer())


def _note(message: str) -> None:
    """A line for the person, beside the run's output: on stderr."""
    print(printable(message), file=sys.stderr, flush=True)


def _asker(live: Live | None) -> Decide:
    """Ask for the checkpoint decision on the terminal (its prompts on stderr, so that
    stdout stays the run's output), with the automatic proposal as the default."""
    prompts = Console(stderr=True, markup=False, emoji=False, highlight=False)

    async def decide(proposal: CheckpointDecision) -> CheckpointDecision:
        if live is not None:
            live.stop()
        prompts.print(
            Text.assemble(
                (f"Checkpoint {CHECKPOINT}", "bold"),
                printable(f": automatic proposal {proposal.decision} ({proposal.notes})"),
            )
        )
        try:
            choice, notes = await _on_daemon_thread(lambda: _ask(prompts, proposal.decision))
        except EOFError:
            # Ctrl-D: nobody decided, and taking the proposal (or any choice) would
            # record a decision by the terminal that no one made. The run stops here.
            prompts.print()
            raise DemoError(
                f"no decision at checkpoint {CHECKPOINT}: the input ended (Ctrl-D), so the "
                "run stops before it"
            ) from None
        if live is not None:
            live.start()
        return CheckpointDecision.model_validate(
            {
                "checkpoint_id": CHECKPOINT,
                "decision": choice,
                "decided_by": "terminal",
                "notes": notes,
            }
        )

    return decide


def _ask(prompts: Console, proposed: str) -> tuple[str, str]:
    choice = Prompt.ask(
        "Decision", choices=["approve", "reject", "revise"], default=proposed, console=prompts
    )
    return choice, Prompt.ask("Notes", default="", console=prompts)


async def _on_daemon_thread(function: Callable[[], T]) -> T:
    """``function()`` on a daemon thread. A thread that waits for the terminal must not
    keep the process alive after Ctrl-C, as ``asyncio.to_thread``'s (joined at exit)
    would."""
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def target() -> None:
        try:
            done.set_result(function())
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=target, name="sharedctx-prompt", daemon=True).start()
    return await asyncio.wrap_future(done)


def _summary(
    context: SharedContext,
    options: DemoOptions,
    timeline: Timeline,
    outcome: DemoOutcome,
    entries: list[ContextEntry],
    started: float,
) -> dict[str, Any]:
    validation, profile = outcome.validation, outcome.profile
    return {
        "session_id": context.session_id,
        "backend": backend_name(options.backend),
        "persona": PERSONA,
        "minds": list(_persona.MINDS)[: options.minds],
        "workers": options.workers,
        "decision": outcome.decision.decision,
        "validation": {
            "passed": validation.passed,
            "failed": validation.failed,
            "score": round(validation.score, 4),
        },
        "checks": [
            {"task_id": check.task_id, "passed": check.passed, "score": round(check.score, 4)}
            for check in outcome.checks
        ],
        "profile": {
            "traits": {name: round(score, 4) for name, score in profile.traits.items()},
            "signature_phrases": profile.signature_phrases,
            "vocabulary": profile.vocabulary,
        },
        "events": context.stats().revision,
        "events_by_phase": timeline.events_by_phase(),
        "entries": len(entries),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "table": [entry_row(entry) for entry in entries],
    }


def _summary_line(summary: dict[str, Any]) -> str:
    validation = summary["validation"]
    checks = validation["passed"] + validation["failed"]
    return (
        f"{summary['entries']} entries, {summary['events']} events, "
        f"{summary['wall_time_s']:.2f} s; decision: {summary['decision']} (checks "
        f"{validation['passed']}/{checks}, score {validation['score']:.2f}); "
        f"session {summary['session_id']}"
    )
