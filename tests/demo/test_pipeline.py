"""The demo pipeline run in-process: its options, its result, and how it fails."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharedctx import CheckpointDecision, InvalidArgumentError, PipelineContext, SharedContext
from sharedctx.demo import _persona, _pipeline
from sharedctx.demo._pipeline import MAX_TTL, DemoError, DemoOptions, run_pipeline

FAST = DemoOptions(pace=0.0)


@pytest.fixture
def context() -> Iterator[SharedContext]:
    with SharedContext(f"demo-{uuid.uuid4().hex[:8]}", default_ttl=3600) as context:
        yield context


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"minds": 0}, "--minds must be between 1 and 6, not 0"),
        ({"minds": 7}, "--minds"),
        ({"ttl": 0.0}, "--ttl must be > 0"),
        ({"ttl": float("nan")}, "--ttl"),
        ({"ttl": MAX_TTL * 1.01}, "10 years"),
        ({"timeout": 0.0}, "--timeout must be > 0"),
        ({"timeout": float("inf")}, "--timeout"),
        ({"pace": -0.1}, "--pace must be >= 0"),
        ({"pace": 61.0}, "at most 60"),
        ({"workers": -1}, "--workers"),
        ({"workers": 2}, "only on Redis"),
    ],
)
def test_bad_options_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message.replace("(", r"\(")):
        dataclasses.replace(FAST, **change).check()


def test_the_longest_ttl_is_accepted() -> None:
    dataclasses.replace(FAST, ttl=MAX_TTL).check()


async def test_the_pipeline_produces_a_profile_checks_and_a_decision(
    context: SharedContext,
) -> None:
    outcome = await run_pipeline(context, FAST)
    assert outcome.profile.persona == "Maren Holt"
    assert [check.task_id for check in outcome.checks] == list(_persona.VALIDATION_TASKS)
    assert outcome.validation.total == 5
    assert outcome.decision.decision == "approve"
    pipeline = PipelineContext(context)
    assert pipeline.get_checkpoint_decision("cp-1") == outcome.decision
    assert pipeline.get_dna_profile() == outcome.profile
    status = pipeline.get_pipeline_status()
    assert status is not None
    assert (status.phase, status.state) == ("done", "done")


async def test_the_checkpoint_decision_is_asked_with_the_proposal(
    context: SharedContext,
) -> None:
    proposals = []

    async def decide(proposal: CheckpointDecision) -> CheckpointDecision:
        proposals.append(proposal)
        return proposal.model_copy(update={"decision": "revise", "decided_by": "ana"})

    outcome = await run_pipeline(context, FAST, decide)
    assert [proposal.decision for proposal in proposals] == ["approve"]
    assert (outcome.decision.decision, outcome.decision.decided_by) == ("revise", "ana")
    stored = PipelineContext(context).get_checkpoint_decision("cp-1")
    assert stored is not None
    assert stored.decided_by == "ana"


async def test_an_entry_expiring_during_the_run_fails_it_at_once() -> None:
    # With a timeout this long, only failing at the first expiry ends the run in time.
    options = dataclasses.replace(FAST, ttl=0.01, timeout=3600)
    expiry = r"expired .* --ttl 0\.01 s is shorter than the run"
    with (
        SharedContext("short-lived", default_ttl=0.01) as context,
        pytest.raises(DemoError, match=expiry),
    ):
        await run_pipeline(context, options)


async def test_late_minds_fail_the_run_naming_them(context: SharedContext) -> None:
    # Paced, the minds deliver one by one over a second; the timeout is far shorter.
    options = dataclasses.replace(FAST, timeout=0.001, pace=0.5)
    with pytest.raises(DemoError, match=r"--timeout 0\.001 s from the minds \['lexicon'"):
        await run_pipeline(context, options)


async def test_a_failing_mind_fails_the_run_at_once(
    context: SharedContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(extracted: Any) -> Any:
        raise RuntimeError("the voice mind broke")

    monkeypatch.setattr(_persona, "MINDS", {**_persona.MINDS, "voice": broken})
    with pytest.raises(RuntimeError, match="the voice mind broke"):
        await run_pipeline(context, dataclasses.replace(FAST, timeout=3600))


def _workers() -> set[int]:
    """The demo's worker processes that this process started and that still run."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if parent == os.getpid() and b"sharedctx.demo._worker" in command:
                found.add(int(entry.name))
    return found


async def test_a_failing_worker_process_fails_the_run_and_ends_the_others() -> None:
    # Worker processes of a server that is not there: each fails at once, in one line
    # that names what failed; the run stops and no worker is left running.
    options = dataclasses.replace(FAST, backend="redis://:hunter2@127.0.0.1:1/0", workers=3)
    delays = {mind_id: 30.0 for mind_id in _persona.MINDS}
    with pytest.raises(
        DemoError, match=r"a mind worker failed: Redis at .* is unavailable"
    ) as failed:
        await _pipeline._in_processes(options, "s", delays)
    assert "hunter2" not in str(failed.value)
    assert _workers() == set()
