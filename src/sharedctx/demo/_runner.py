"""``sharedctx demo``: a small persona-cloning pipeline, run end to end on one context.

extraction -> minds analysing concurrently (asyncio tasks and threads, or worker
processes on Redis) -> an orchestrator that waits for every mind -> synthesis of a
DNA profile -> validation tasks in parallel -> a checkpoint decision (automatic, or
asked on the terminal) -> a manifest. The analysis is real text statistics over the
sample sources shipped with the package (``_persona``); every hand-over between
components goes through the shared context, and a live view shows the events.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.prompt import Prompt
from rich.table import Table
from rich.text import Text

from sharedctx._context import SharedContext
from sharedctx._errors import InvalidArgumentError
from sharedctx._types import ContextEntry, ContextEvent
from sharedctx.cli._views import entries_table, entry_row
from sharedctx.demo import _persona
from sharedctx.pipeline._context import PipelineContext
from sharedctx.pipeline._models import (
    CheckpointDecision,
    CheckpointStatus,
    PipelineStatus,
    SessionInfo,
)

__all__ = ["DemoOptions", "DemoResult", "print_summary", "run_demo"]

PERSONA = "Maren Holt"
PHASES = ("extraction", "analysis", "synthesis", "validation", "checkpoint", "generation")
_PHASE_OF_PREFIX = {phase: phase for phase in PHASES} | {
    "session": "pipeline",
    "pipeline": "pipeline",
}


@dataclass(frozen=True)
class DemoOptions:
    """What ``sharedctx demo`` was asked for."""

    minds: int = len(_persona.MINDS)
    seed: int = 0
    ttl: float = 3600.0
    interactive: bool = False
    backend: str = "memory"
    workers: int = 0
    timeout: float = 60.0
    pace: float = 0.0
    """Seconds to pause before each phase, so that people can follow the live view."""

    def check(self) -> None:
        """Raise ``InvalidArgumentError`` naming the first bad option."""
        if not 1 <= self.minds <= len(_persona.MINDS):
            raise InvalidArgumentError(
                f"--minds must be between 1 and {len(_persona.MINDS)}, not {self.minds}"
            )
        if self.ttl <= 0:
            raise InvalidArgumentError(f"--ttl must be > 0 seconds, not {self.ttl}")
        if self.pace < 0:
            raise InvalidArgumentError(f"--pace must be >= 0 seconds, not {self.pace}")
        if self.workers < 0:
            raise InvalidArgumentError(f"--workers must be >= 0, not {self.workers}")
        if self.workers and self.backend == "memory":
            raise InvalidArgumentError(
                "--workers runs the minds as separate processes, which share a session "
                "only on Redis: add --backend redis://..."
            )


class DemoResult(NamedTuple):
    """The summary of a run (what ``--json`` prints) and the entries at its end."""

    summary: dict[str, Any]
    entries: list[ContextEntry]


class _Dashboard:
    """The live view: pipeline status and events per phase, fed by a subscription."""

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.status: PipelineStatus | None = None
        self.last = ""
        self._lock = threading.Lock()

    def on_event(self, event: ContextEvent) -> None:
        phase = _PHASE_OF_PREFIX.get(event.key.split(":", 1)[0], "other")
        with self._lock:
            self.events[phase] += 1
            self.last = f"{event.action} {event.key}"
            if event.key == "pipeline:status" and event.action == "set":
                self.status = PipelineStatus.model_validate(event.entry.value)

    def __rich__(self) -> Group:
        with self._lock:
            status, events, last = self.status, dict(self.events), self.last
        table = Table(box=None, show_header=True, pad_edge=False)
        table.add_column("phase")
        table.add_column("events", justify="right")
        for phase in (*PHASES, "pipeline"):
            current = status is not None and status.phase == phase
            table.add_row(Text(phase, style="bold" if current else ""), str(events.get(phase, 0)))
        if status is None:
            return Group(Text("starting..."), table)
        headline = Text.assemble(
            (f"{status.phase} ", "bold cyan"), (f"{status.state}  ", "cyan"), status.message
        )
        bar = ProgressBar(total=1.0, completed=status.progress, width=40)
        return Group(headline, bar, table, Text(f"last event: {last}", style="dim"))


def run_demo(options: DemoOptions, console: Console, *, live: bool, quiet: bool) -> DemoResult:
    """Run the pipeline once; with ``live``, show the live view on ``console``."""
    options.check()
    return asyncio.run(_run(options, console, live=live, quiet=quiet))


async def _run(options: DemoOptions, console: Console, *, live: bool, quiet: bool) -> DemoResult:
    session_id = f"demo-{options.seed}-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    context = SharedContext(session_id, default_ttl=options.ttl, backend=options.backend)
    dashboard = _Dashboard()
    context.subscribe("*", dashboard.on_event)
    if not live and not quiet:
        context.subscribe("pipeline:status", lambda event: _print_status(console, event))
    pipeline = PipelineContext(context)
    view = Live(dashboard, console=console, refresh_per_second=8) if live else None
    try:
        if view is not None:
            view.start()
        decision = await _pipeline(pipeline, options, session_id, view, console)
    finally:
        if view is not None:
            view.stop()
    entries = context.find_by_pattern("*")
    summary = _summary(pipeline, options, decision, dashboard, entries, started)
    if options.backend == "memory":
        context.destroy()
    else:
        context.close()  # the session stays on Redis (until its TTL) for `sharedctx inspect`
    return DemoResult(summary, entries)


async def _pipeline(
    pipeline: PipelineContext,
    options: DemoOptions,
    session_id: str,
    view: Live | None,
    console: Console,
) -> CheckpointDecision:
    mind_ids = list(_persona.MINDS)[: options.minds]
    status = _status_writer(pipeline, options.pace)
    await pipeline.aset_session_info(
        SessionInfo(
            session_id=session_id,
            persona=PERSONA,
            started_at=datetime.now(UTC),
            seed=options.seed,
            minds=mind_ids,
            options={"backend": _safe(options.backend), "workers": options.workers},
        )
    )
    await status("extraction", "running", 0.0, "reading the sample sources")
    extracted = _persona.extract(_persona.load_sources(), seed=options.seed)
    await pipeline.aset_extracted_data(extracted)
    await pipeline.aset_source_metadata(_persona.source_metadata(extracted))

    await status("analysis", "running", 0.15, f"{len(mind_ids)} minds analysing")
    workers = _start_minds(pipeline, options, mind_ids, session_id)
    results = await pipeline.await_for_mind_results(mind_ids, timeout=options.timeout)
    await workers()
    orchestrated = _persona.orchestrate(results)
    await pipeline.aset_orchestrator_result(orchestrated)

    await status("synthesis", "running", 0.5, "synthesizing the DNA profile")
    dna, synthesis = _persona.synthesize(PERSONA, extracted, orchestrated)
    await pipeline.aset_dna_profile(dna)
    await pipeline.aset_synthesis_result(synthesis)

    await status("validation", "running", 0.65, f"{len(_persona.VALIDATION_TASKS)} checks")
    await asyncio.gather(
        *(asyncio.to_thread(_validate, pipeline, task_id) for task_id in _persona.VALIDATION_TASKS)
    )
    validation = _persona.summarize_validation(await pipeline.aget_validation_results())
    await pipeline.aset_validation_summary(validation)

    await status("checkpoint", "waiting", 0.8, "waiting for the checkpoint decision")
    checkpoint = CheckpointStatus(
        checkpoint_id="cp-1",
        state="waiting",
        score=validation.score,
        threshold=validation.threshold,
    )
    await pipeline.aset_checkpoint_status("cp-1", checkpoint)
    decision = _persona.auto_decision(validation, "cp-1")
    if options.interactive:
        decision = await _ask(console, view, decision)
    await pipeline.aset_checkpoint_decision("cp-1", decision)
    decided = checkpoint.model_copy(update={"state": "decided", "updated_at": datetime.now(UTC)})
    await pipeline.aset_checkpoint_status("cp-1", decided)

    await status("generation", "running", 0.9, "writing the manifest")
    await pipeline.aset_manifest_content(
        _persona.build_manifest(dna, synthesis, validation, decision)
    )
    await status("done", "done", 1.0, f"decision: {decision.decision}")
    return decision


def _status_writer(pipeline: PipelineContext, pace: float) -> Callable[..., Any]:
    async def write(phase: Any, state: Any, progress: float, message: str) -> None:
        if pace and progress > 0:
            await asyncio.sleep(pace)
        await pipeline.aset_pipeline_status(
            PipelineStatus(phase=phase, state=state, progress=progress, message=message)
        )

    return write


def _start_minds(
    pipeline: PipelineContext, options: DemoOptions, mind_ids: list[str], session_id: str
) -> Callable[[], Any]:
    """Start the minds; return a coroutine function that waits for them to finish.

    With workers, each worker process runs some of the minds; otherwise every other
    mind runs as an asyncio task, the others on threads.
    """
    if options.workers:
        spawn = multiprocessing.get_context("spawn")
        processes = [
            spawn.Process(
                target=mind_worker,
                args=(options.backend, session_id, mind_ids[n :: options.workers], options.ttl),
                name=f"sharedctx-mind-{n}",
            )
            for n in range(min(options.workers, len(mind_ids)))
        ]
        for process in processes:
            process.start()

        async def join_processes() -> None:
            for process in processes:
                await asyncio.to_thread(process.join)
                if process.exitcode != 0:
                    raise RuntimeError(f"{process.name} failed (exit code {process.exitcode})")

        return join_processes

    tasks = [asyncio.create_task(_amind(pipeline, mind_id)) for mind_id in mind_ids[::2]]
    threads = [
        threading.Thread(target=_mind, args=(pipeline, mind_id), name=f"mind-{mind_id}")
        for mind_id in mind_ids[1::2]
    ]
    for thread in threads:
        thread.start()

    async def join_all() -> None:
        await asyncio.gather(*tasks)
        for thread in threads:
            await asyncio.to_thread(thread.join)

    return join_all


def _mind(pipeline: PipelineContext, mind_id: str) -> None:
    extracted = pipeline.get_extracted_data() or []
    pipeline.set_mind_result(mind_id, _persona.MINDS[mind_id](extracted))


async def _amind(pipeline: PipelineContext, mind_id: str) -> None:
    extracted = await pipeline.aget_extracted_data() or []
    await pipeline.aset_mind_result(mind_id, _persona.MINDS[mind_id](extracted))


def mind_worker(backend: str, session_id: str, mind_ids: list[str], ttl: float) -> None:
    """A worker process: open the shared session and deliver some minds' results."""
    with SharedContext(session_id, backend=backend, default_ttl=ttl) as context:
        pipeline = PipelineContext(context)
        for mind_id in mind_ids:
            _mind(pipeline, mind_id)


def _validate(pipeline: PipelineContext, task_id: str) -> None:
    dna = pipeline.get_dna_profile()
    extracted = pipeline.get_extracted_data()
    if dna is None or extracted is None:
        raise RuntimeError("validation started before the synthesis phase wrote its profile")
    pipeline.add_validation_result(task_id, _persona.VALIDATION_TASKS[task_id](dna, extracted))


async def _ask(
    console: Console, view: Live | None, proposed: CheckpointDecision
) -> CheckpointDecision:
    if view is not None:
        view.stop()
    console.print(
        f"[bold]Checkpoint cp-1[/]: automatic proposal {proposed.decision} ({proposed.notes})"
    )
    choice = await asyncio.to_thread(
        Prompt.ask,
        "Decision",
        choices=["approve", "reject", "revise"],
        default=proposed.decision,
        console=console,
    )
    notes = await asyncio.to_thread(Prompt.ask, "Notes", default="", console=console)
    if view is not None:
        view.start()
    # The model validates the choice (Prompt.ask already kept it to the three).
    return CheckpointDecision.model_validate(
        {"checkpoint_id": "cp-1", "decision": choice, "decided_by": "terminal", "notes": notes}
    )


def _summary(
    pipeline: PipelineContext,
    options: DemoOptions,
    decision: CheckpointDecision,
    dashboard: _Dashboard,
    entries: list[ContextEntry],
    started: float,
) -> dict[str, Any]:
    context = pipeline.context
    validation = pipeline.get_validation_summary()
    if validation is None:
        raise RuntimeError("the pipeline ended without a validation summary")
    return {
        "session_id": context.session_id,
        "backend": _safe(options.backend),
        "persona": PERSONA,
        "minds": sorted(pipeline.get_all_mind_results()),
        "workers": options.workers,
        "decision": decision.decision,
        "validation": {
            "passed": validation.passed,
            "failed": validation.failed,
            "score": round(validation.score, 4),
        },
        "events": context.stats().revision,
        "events_by_phase": dict(sorted(dashboard.events.items())),
        "entries": len(entries),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "table": [entry_row(entry) for entry in entries],
    }


def print_summary(console: Console, result: DemoResult, *, quiet: bool) -> None:
    """The end of the demo for people: the table of entries and a one-line summary."""
    summary = result.summary
    if not quiet:
        console.print(entries_table(result.entries, title="Shared context at the end"))
    validation = summary["validation"]
    console.print(
        f"{summary['events']} events, {summary['entries']} entries, "
        f"{summary['wall_time_s']:.2f} s wall time; decision: {summary['decision']} "
        f"(validation {validation['passed']}/{validation['passed'] + validation['failed']}, "
        f"score {validation['score']:.2f}); session {summary['session_id']}",
        soft_wrap=True,
    )


def _print_status(console: Console, event: ContextEvent) -> None:
    if event.action == "set":
        status = PipelineStatus.model_validate(event.entry.value)
        console.print(
            f"[{status.progress:4.0%}] {status.phase}: {status.state} - {status.message}",
            markup=False,
            soft_wrap=True,
        )


def _safe(backend: str) -> str:
    if backend == "memory":
        return backend
    from sharedctx.backends.redis import redact

    return redact(backend)
