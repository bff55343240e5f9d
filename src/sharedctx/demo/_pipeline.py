"""The demo's persona-cloning pipeline, run end to end on one shared context.

extraction -> minds analysing concurrently (asyncio tasks and threads, or worker
processes on Redis) -> an orchestrator that waits for every mind -> synthesis of a
DNA profile -> validation checks in parallel -> a checkpoint decision (automatic, or
asked through ``decide``) -> a manifest. The analysis is real text statistics over
the sample sources shipped with the package (``_persona``). Every hand-over between
components goes through the shared context, and the ``pipeline:status`` entry says
which phase runs: views follow the run through the context's events.

No terminal here: the worker processes import this module, which needs neither rich
nor the command line.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from sharedctx import (
    MAX_TTL,
    ContextError,
    ContextEvent,
    InvalidArgumentError,
    KeyRing,
    SharedContext,
)
from sharedctx.backends import Backend, MemoryBackend
from sharedctx.demo import _persona
from sharedctx.pipeline import (
    CheckpointDecision,
    CheckpointStatus,
    DNAProfile,
    ExtractedData,
    MindResult,
    PipelineContext,
    PipelineStatus,
    SessionInfo,
    StandardKeys,
    TaskResult,
    ValidationSummary,
)

__all__ = [
    "CHECKPOINT",
    "MAX_PACE",
    "MAX_TTL",
    "PERSONA",
    "Decide",
    "DemoError",
    "DemoOptions",
    "DemoOutcome",
    "WorkerRing",
    "backend_name",
    "is_memory",
    "mind_worker",
    "run_pipeline",
]

PERSONA = "Maren Holt"
CHECKPOINT = "cp-1"
MAX_PACE = 60.0
"""The longest ``--pace``: a minute a phase is slow enough to follow anything."""
_KEYS_VARIABLE = "SHAREDCTX_KEYS"  # where the CLI, and so the workers, find a key ring

T = TypeVar("T")


class DemoError(ContextError):
    """A demo run failed: the minds were late, an entry expired, nobody decided."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``sharedctx demo`` was asked for."""

    minds: int = len(_persona.MINDS)
    seed: int = 0
    ttl: float = 3600.0
    interactive: bool = False
    backend: str | Backend = "memory"
    """``"memory"``, a Redis URL, or a backend (worker processes open a Redis one's URL)."""
    workers: int = 0
    timeout: float = 60.0
    pace: float = 0.0
    """Seconds each phase lasts at least, so that people can follow the run (the minds
    and the checks deliver one by one over twice that); 0: full speed."""
    keys_file: str | None = None
    """With ``workers`` and a sealed backend: the file the worker processes read the
    key ring from (``--keys-file``); None: ``$SHAREDCTX_KEYS``. A key ring is never
    pickled, so each worker reads it where the command did, and checks that it holds
    the same key ids as the backend's."""

    def check(self) -> None:
        """Raise ``InvalidArgumentError`` naming the first bad option."""
        if not 1 <= self.minds <= len(_persona.MINDS):
            raise InvalidArgumentError(
                f"--minds must be between 1 and {len(_persona.MINDS)}, not {self.minds}"
            )
        _check_seconds("--ttl", self.ttl, positive=True, most=MAX_TTL, most_text=" (10 years)")
        _check_seconds("--timeout", self.timeout, positive=True)
        _check_seconds("--pace", self.pace, positive=False, most=MAX_PACE)
        if self.workers < 0:
            raise InvalidArgumentError(f"--workers must be >= 0, not {self.workers}")
        if self.workers and is_memory(self.backend):
            raise InvalidArgumentError(
                "--workers runs the minds as separate processes, which share a session "
                "only on Redis: add --backend redis://..."
            )
        keyring = _keyring_of(self.backend)
        if self.workers and keyring is not None:
            if not isinstance(keyring, KeyRing):
                raise InvalidArgumentError(
                    "--workers with a sealed backend needs a KeyRing, which the worker "
                    f"processes read from --keys-file or ${_KEYS_VARIABLE}, not {keyring!r}"
                )
            if self.keys_file is None and not os.environ.get(_KEYS_VARIABLE):
                raise InvalidArgumentError(
                    "--workers with a sealed backend: the worker processes read the key "
                    f"ring from --keys-file PATH or ${_KEYS_VARIABLE}, and neither is given"
                )


def _check_seconds(
    option: str, value: float, *, positive: bool, most: float = math.inf, most_text: str = ""
) -> None:
    if math.isfinite(value) and (value > 0 if positive else value >= 0) and value <= most:
        return
    bounds = "> 0" if positive else ">= 0"
    if most < math.inf:
        bounds += f" and at most {most:.0f}{most_text}"
    raise InvalidArgumentError(f"{option} must be {bounds} seconds, not {value:g}")


def is_memory(backend: str | Backend) -> bool:
    """Whether ``backend`` keeps sessions in this process only."""
    return backend == "memory" or isinstance(backend, MemoryBackend)


def backend_name(backend: str | Backend) -> str:
    """``"memory"``, or the Redis URL without its password."""
    if is_memory(backend):
        return "memory"
    from sharedctx.backends.redis import redact

    return redact(_url(backend))


class WorkerRing(NamedTuple):
    """Where a worker process reads the key ring (never the keys themselves)."""

    keys_file: str | None
    """None: ``$SHAREDCTX_KEYS``."""
    key_ids: tuple[str, ...]
    """The backend's ring's: the worker's must be the same."""

    def open(self) -> KeyRing:
        if self.keys_file is not None:
            ring = KeyRing.from_file(self.keys_file)
        else:
            ring = KeyRing.from_env(_KEYS_VARIABLE)
        if ring.key_ids != self.key_ids:
            raise InvalidArgumentError(
                f"the worker's key ring holds keys {', '.join(ring.key_ids)}, not the "
                f"demo's {', '.join(self.key_ids)}"
            )
        return ring


def _keyring_of(backend: str | Backend) -> object:
    """The key ring a backend seals with (None: a URL, or a plain backend)."""
    return None if isinstance(backend, str) else getattr(backend, "keyring", None)


def _worker_ring(options: DemoOptions) -> WorkerRing | None:
    """Where the worker processes read the sealed backend's key ring; None: plain."""
    keyring = _keyring_of(options.backend)
    if not isinstance(keyring, KeyRing):
        return None
    return WorkerRing(options.keys_file, keyring.key_ids)


def _url(backend: str | Backend) -> str:
    url = backend if isinstance(backend, str) else getattr(backend, "url", None)
    if not isinstance(url, str):
        raise InvalidArgumentError(f"the demo's worker processes need a Redis URL, not {backend!r}")
    return url


class DemoOutcome(NamedTuple):
    """What the pipeline produced: the profile, the checks and their verdict, the decision."""

    profile: DNAProfile
    checks: list[TaskResult]
    validation: ValidationSummary
    decision: CheckpointDecision


Decide = Callable[[CheckpointDecision], Awaitable[CheckpointDecision]]
"""Asked at the checkpoint with the automatic proposal; returns the decision taken."""


async def run_pipeline(
    context: SharedContext, options: DemoOptions, decide: Decide | None = None
) -> DemoOutcome:
    """Run the pipeline once in ``context``'s session.

    Fails fast with ``DemoError`` when an entry expires during the run (``--ttl`` is
    shorter than the run: no fixed minimum could know how long the run takes, with
    its pace, its worker processes and a person deciding), or when the minds have not
    all delivered within ``options.timeout``.
    """
    options.check()
    loop = asyncio.get_running_loop()
    run = asyncio.ensure_future(_phases(PipelineContext(context), options, decide))
    expired: list[str] = []

    def on_event(event: ContextEvent) -> None:
        if event.action == "expire" and not expired:
            expired.append(event.key)
            with suppress(RuntimeError):  # the run is over and its loop closed
                loop.call_soon_threadsafe(run.cancel)

    subscription = context.subscribe("*", on_event)
    try:
        return await run
    except (Exception, asyncio.CancelledError):
        if expired:  # what failed next, failed for want of the expired entry
            raise DemoError(
                f"{expired[0]!r} expired before the pipeline was done with it: "
                f"--ttl {options.ttl:g} s is shorter than the run"
            ) from None
        raise
    finally:
        context.unsubscribe(subscription)


async def _phases(
    pipeline: PipelineContext, options: DemoOptions, decide: Decide | None
) -> DemoOutcome:
    mind_ids = list(_persona.MINDS)[: options.minds]
    begin = _phase_starter(pipeline, options.pace)
    await pipeline.aset_session_info(
        SessionInfo(
            session_id=pipeline.session_id,
            persona=PERSONA,
            started_at=datetime.now(UTC),
            seed=options.seed,
            minds=mind_ids,
            options={"backend": backend_name(options.backend), "workers": options.workers},
        )
    )
    await begin("extraction", 0.0, "reading the sample sources")
    extracted = _persona.extract(_persona.load_sources(), seed=options.seed)
    await pipeline.aset_extracted_data(extracted)
    await pipeline.aset_source_metadata(_persona.source_metadata(extracted))

    await begin("analysis", 0.15, f"{len(mind_ids)} minds analysing")
    orchestrated = _persona.orchestrate(await _analysis(pipeline, options, mind_ids))
    await pipeline.aset_orchestrator_result(orchestrated)

    await begin("synthesis", 0.5, "synthesizing the DNA profile")
    profile, synthesis = _persona.synthesize(PERSONA, extracted, orchestrated)
    await pipeline.aset_dna_profile(profile)
    await pipeline.aset_synthesis_result(synthesis)

    await begin("validation", 0.65, f"{len(_persona.VALIDATION_TASKS)} checks")
    checks = await _validation(pipeline, options.pace)
    validation = _persona.summarize_validation(checks)
    await pipeline.aset_validation_summary(validation)

    await begin("checkpoint", 0.8, "waiting for the checkpoint decision", "waiting")
    decision = await _checkpoint(pipeline, validation, decide)

    await begin("generation", 0.9, "writing the manifest")
    manifest = _persona.build_manifest(profile, synthesis, validation, decision)
    await pipeline.aset_manifest_content(manifest)
    await begin("done", 1.0, f"decision: {decision.decision}", "done")
    return DemoOutcome(profile, checks, validation, decision)


def _phase_starter(pipeline: PipelineContext, pace: float) -> Callable[..., Awaitable[None]]:
    """``begin(phase, progress, message, state="running")``: hold the phase before for
    at least ``pace`` seconds, then write the pipeline's status."""
    started: list[float] = []

    async def begin(phase: Any, progress: float, message: str, state: Any = "running") -> None:
        if started:
            await asyncio.sleep(max(0.0, started[-1] + pace - time.monotonic()))
        started.append(time.monotonic())
        await pipeline.aset_pipeline_status(
            PipelineStatus(phase=phase, state=state, progress=progress, message=message)
        )

    return begin


def _spread(ids: list[str], pace: float) -> dict[str, float]:
    """When each of ``ids`` delivers: one by one over twice ``pace`` seconds."""
    return {id_: 2 * pace * (n + 1) / len(ids) for n, id_ in enumerate(ids)}


def _present(value: T | None, key: str) -> T:
    if value is None:
        raise DemoError(f"{key!r} is gone before the pipeline was done with it")
    return value


# -- analysis ----------------------------------------------------------------------


async def _analysis(
    pipeline: PipelineContext, options: DemoOptions, mind_ids: list[str]
) -> dict[str, MindResult]:
    """Start the minds, and wait for their results through the context, as an
    orchestrator elsewhere would. The first failure (a mind's, or the timeout) ends
    the phase."""
    minds = _start_minds(pipeline, options, mind_ids)
    waiting = asyncio.ensure_future(_results(pipeline, mind_ids, options.timeout))
    try:
        await asyncio.wait({minds, waiting}, return_when=asyncio.FIRST_EXCEPTION)
        failure = minds.exception() if minds.done() else None
        if failure is not None:
            raise failure
        return waiting.result()
    finally:
        minds.cancel()
        waiting.cancel()
        await asyncio.gather(minds, waiting, return_exceptions=True)  # retrieve their errors


async def _results(
    pipeline: PipelineContext, mind_ids: list[str], timeout: float
) -> dict[str, MindResult]:
    # The timeout is around the wait rather than given to it: on Python 3.11 a wait
    # with a timeout (asyncio.wait_for) can miss its cancellation, and a failed run
    # must stop at once. For the same reason the deadline is checked once more after
    # the wait: redis-py's asyncio connections write through asyncio.wait_for, which
    # on 3.11 swallows a cancellation that comes as the write completes, so the wait
    # may come back with the results after the deadline instead of raising.
    deadline = asyncio.timeout(timeout)
    results: dict[str, MindResult] = {}
    try:
        async with deadline:
            results = await pipeline.await_for_mind_results(mind_ids)
    except TimeoutError:
        pass
    if not deadline.expired():
        return results
    missing = sorted(set(mind_ids) - set(await pipeline.aget_all_mind_results()))
    if not missing:
        raise DemoError(
            f"the minds took longer than --timeout {timeout:g} s to deliver: give them "
            "more time (a larger --timeout)"
        )
    raise DemoError(
        f"no result within --timeout {timeout:g} s from the minds {missing}: give them "
        "more time (a larger --timeout)"
    )


def _start_minds(
    pipeline: PipelineContext, options: DemoOptions, mind_ids: list[str]
) -> asyncio.Future[Any]:
    """Start the minds; return a future done when all have delivered, or failed.

    With workers, worker processes run some of the minds each; otherwise every other
    mind runs as an asyncio task, the others on threads.
    """
    delays = _spread(mind_ids, options.pace)
    if options.workers:
        return asyncio.ensure_future(_in_processes(options, pipeline.session_id, delays))
    return asyncio.gather(
        *(_task_mind(pipeline, mind_id, delays[mind_id]) for mind_id in mind_ids[::2]),
        *(_thread_mind(pipeline, mind_id, delays[mind_id]) for mind_id in mind_ids[1::2]),
    )


async def _task_mind(pipeline: PipelineContext, mind_id: str, delay: float) -> None:
    await asyncio.sleep(delay)
    extracted = _present(await pipeline.aget_extracted_data(), StandardKeys.EXTRACTED_DATA)
    await pipeline.aset_mind_result(mind_id, _persona.MINDS[mind_id](extracted))


async def _thread_mind(pipeline: PipelineContext, mind_id: str, delay: float) -> None:
    await asyncio.sleep(delay)
    await asyncio.to_thread(_mind, pipeline, mind_id)


def _mind(pipeline: PipelineContext, mind_id: str) -> None:
    extracted = _present(pipeline.get_extracted_data(), StandardKeys.EXTRACTED_DATA)
    pipeline.set_mind_result(mind_id, _persona.MINDS[mind_id](extracted))


async def _in_processes(options: DemoOptions, session_id: str, delays: dict[str, float]) -> None:
    mind_ids = list(delays)
    count = min(options.workers, len(mind_ids))
    url, ring = _url(options.backend), _worker_ring(options)
    try:
        async with asyncio.TaskGroup() as workers:  # the first failure stops the others
            for n in range(count):
                mine = {mind_id: delays[mind_id] for mind_id in mind_ids[n::count]}
                workers.create_task(_worker(url, session_id, mine, options.ttl, ring))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def _worker(
    url: str, session_id: str, delays: dict[str, float], ttl: float, ring: WorkerRing | None
) -> None:
    """Run some minds in a worker process (``_worker``) until they have delivered; on a
    sealed backend it reads the key ring where ``ring`` says (never given the keys).

    The process runs in a process group of its own: Ctrl-C, which a terminal sends
    to every process of its foreground job, reaches the parent alone (a worker
    interrupted while Python starts would print a traceback), and the parent ends
    the worker on every way out: done, failed, cancelled by Ctrl-C or a timeout.
    """
    where = None if ring is None else ring._asdict()
    task = {"url": url, "session_id": session_id, "delays": delays, "ttl": ttl, "ring": where}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sharedctx.demo._worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        process_group=0,
    )
    try:
        _, errors = await process.communicate(json.dumps(task).encode())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        said = errors.decode(errors="replace").strip().splitlines()
        raise DemoError(
            said[-1] if said else f"a mind worker failed with status {process.returncode}"
        )


def mind_worker(
    url: str,
    session_id: str,
    delays: dict[str, float],
    ttl: float,
    ring: WorkerRing | None = None,
) -> None:
    """The work of a worker process (``_worker``): open the shared session (sealed,
    with the key ring read where ``ring`` says) and deliver some minds' results, each
    ``delays[mind_id]`` seconds after the start. Raises ``DemoError`` (one line, which
    the parent shows) if that fails."""
    started = time.monotonic()
    try:
        keyring = None if ring is None else ring.open()
        with SharedContext(session_id, backend=url, default_ttl=ttl, keyring=keyring) as context:
            pipeline = PipelineContext(context)
            for mind_id, delay in delays.items():
                time.sleep(max(0.0, started + delay - time.monotonic()))
                _mind(pipeline, mind_id)
    except Exception as exc:
        raise DemoError(f"a mind worker failed: {' '.join(str(exc).split())}") from None


# -- validation and checkpoint -----------------------------------------------------


async def _validation(pipeline: PipelineContext, pace: float) -> list[TaskResult]:
    delays = _spread(list(_persona.VALIDATION_TASKS), pace)
    await asyncio.gather(*(_check(pipeline, task_id, delay) for task_id, delay in delays.items()))
    return await pipeline.aget_validation_results()


async def _check(pipeline: PipelineContext, task_id: str, delay: float) -> None:
    await asyncio.sleep(delay)
    await asyncio.to_thread(_validate, pipeline, task_id)


def _validate(pipeline: PipelineContext, task_id: str) -> None:
    profile = _present(pipeline.get_dna_profile(), StandardKeys.DNA_PROFILE)
    extracted: list[ExtractedData] = _present(
        pipeline.get_extracted_data(), StandardKeys.EXTRACTED_DATA
    )
    pipeline.add_validation_result(task_id, _persona.VALIDATION_TASKS[task_id](profile, extracted))


async def _checkpoint(
    pipeline: PipelineContext, validation: ValidationSummary, decide: Decide | None
) -> CheckpointDecision:
    status = CheckpointStatus(
        checkpoint_id=CHECKPOINT,
        state="waiting",
        score=validation.score,
        threshold=validation.threshold,
    )
    await pipeline.aset_checkpoint_status(CHECKPOINT, status)
    decision = _persona.auto_decision(validation, CHECKPOINT)
    if decide is not None:
        decision = await decide(decision)
    await pipeline.aset_checkpoint_decision(CHECKPOINT, decision)
    decided = status.model_copy(update={"state": "decided", "updated_at": datetime.now(UTC)})
    await pipeline.aset_checkpoint_status(CHECKPOINT, decided)
    return decision
