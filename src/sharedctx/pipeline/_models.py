"""The data of each pipeline phase, as pydantic models.

One small model per standard key of the Clone Lab pipeline: extraction, analysis
(one result per mind, then the orchestrator's merge), synthesis, validation,
checkpoints, generation, and the session's own bookkeeping. ``PipelineContext``
validates every write and read against them.

Every model keeps fields it does not know (``extra="allow"``), so a pipeline can add
its own without a new schema; the known fields are checked. Scores are floats in
``0..1``, ids are non-empty strings, and times are timezone-aware datetimes that
default to the current UTC time (a naive datetime is rejected).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CheckpointDecision",
    "CheckpointStatus",
    "DNAProfile",
    "ExtractedData",
    "ManifestContent",
    "MindResult",
    "OrchestratorResult",
    "PipelineStatus",
    "SessionInfo",
    "SourceMetadata",
    "SynthesisResult",
    "TaskResult",
    "ValidationSummary",
]

Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
"""A finite float in ``0..1``."""
Id = Annotated[str, Field(min_length=1)]
"""A non-empty string naming a source, a mind, a task or a checkpoint."""
Millis = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
"""A duration in milliseconds, ``>= 0``."""

SourceKind = Literal["interview", "article", "email", "post", "talk", "other"]
Phase = Literal[
    "extraction", "analysis", "synthesis", "validation", "checkpoint", "generation", "done"
]


def _now() -> datetime:
    return datetime.now(UTC)


def _now_field(description: str) -> Any:
    return Field(default_factory=_now, description=description)


def _check_unique(field: str, ids: list[str]) -> None:
    duplicates = sorted({id_ for id_ in ids if ids.count(id_) > 1})
    if duplicates:
        raise ValueError(f"{field} lists {duplicates} more than once")


class _PhaseModel(BaseModel):
    """Base of the phase models: unknown fields are kept, known ones validated."""

    # Instances are validated again wherever they are checked (a PipelineContext write):
    # a field assigned a bad value after construction is caught there too.
    model_config = ConfigDict(extra="allow", revalidate_instances="always")


# -- extraction --------------------------------------------------------------------


class ExtractedData(_PhaseModel):
    """One source after extraction: the persona's own words, ready for analysis."""

    source_id: Id = Field(description="Stable id of the source, unique within a session.")
    kind: SourceKind = Field(description="What the source is: an interview, an email, ...")
    title: str = Field(default="", description="The source's title, for people to read.")
    text: str = Field(description="The extracted text: only words written or said by the persona.")
    word_count: int = Field(ge=0, description="Number of words in ``text``.")
    extracted_at: AwareDatetime = _now_field("When the source was extracted.")


class SourceMetadata(_PhaseModel):
    """What one extraction produced, over all of its sources."""

    source_count: int = Field(ge=0, description="Number of sources extracted.")
    total_words: int = Field(ge=0, description="Sum of the sources' word counts.")
    kinds: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Number of sources of each kind; sums to source_count (empty: unknown).",
    )
    extracted_at: AwareDatetime = _now_field("When the extraction finished.")
    extractor: Id = Field(description="Name of the component that extracted the sources.")

    @model_validator(mode="after")
    def _kinds_add_up(self) -> Self:
        if self.kinds and sum(self.kinds.values()) != self.source_count:
            raise ValueError(
                f"kinds count {sum(self.kinds.values())} sources, not source_count "
                f"{self.source_count}"
            )
        return self


# -- analysis ----------------------------------------------------------------------


class MindResult(_PhaseModel):
    """What one analysis mind measured in the extracted sources."""

    mind_id: Id = Field(description="The mind's id, e.g. ``lexicon``.")
    traits: dict[str, Score] = Field(
        default_factory=dict, description="Trait name to score in 0..1."
    )
    findings: list[str] = Field(
        default_factory=list, description="What the mind found, as short sentences."
    )
    confidence: Score = Field(description="How much text backed the traits: 0 none, 1 plenty.")
    started_at: AwareDatetime = Field(description="When the mind started.")
    finished_at: AwareDatetime = Field(description="When the mind finished; >= started_at.")
    duration_ms: Millis = Field(description="Time the mind worked, in milliseconds.")

    @model_validator(mode="after")
    def _finished_after_start(self) -> Self:
        if self.finished_at < self.started_at:
            raise ValueError(
                f"finished_at {self.finished_at.isoformat()} is before started_at "
                f"{self.started_at.isoformat()}"
            )
        return self


class OrchestratorResult(_PhaseModel):
    """The minds' results merged into one set of traits."""

    mind_ids: list[Id] = Field(
        min_length=1, description="The minds whose results were merged, each once."
    )
    traits: dict[str, Score] = Field(
        default_factory=dict, description="Merged trait name to score in 0..1."
    )
    agreement: Score = Field(
        description="How well minds agree on the traits they share: 1 fully, 0 not at all."
    )
    conflicts: list[str] = Field(
        default_factory=list, description="Names of traits on which the minds disagree."
    )
    completed_at: AwareDatetime = _now_field("When the merge completed.")

    @model_validator(mode="after")
    def _minds_once(self) -> Self:
        _check_unique("mind_ids", self.mind_ids)
        return self


# -- synthesis ---------------------------------------------------------------------


class DNAProfile(_PhaseModel):
    """The persona's profile: traits, signature phrases, vocabulary and style."""

    persona: Id = Field(description="The persona's name.")
    traits: dict[str, Score] = Field(
        default_factory=dict, description="Trait name to score in 0..1."
    )
    signature_phrases: list[str] = Field(
        default_factory=list, description="Phrases the persona uses again and again."
    )
    vocabulary: list[str] = Field(
        default_factory=list, description="Words characteristic of the persona."
    )
    style_markers: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="Measured style statistics in their own units, e.g. mean sentence words.",
    )
    version: int = Field(default=1, ge=1, description="Version of the profile, from 1.")
    created_at: AwareDatetime = _now_field("When the profile was created.")


class SynthesisResult(_PhaseModel):
    """How the profile was synthesised, and from what."""

    summary: str = Field(min_length=1, description="The profile in a few sentences.")
    coverage: Score = Field(description="Share of the sources the profile accounts for.")
    sources_used: list[Id] = Field(default_factory=list, description="Ids of the sources used.")
    mind_ids: list[Id] = Field(default_factory=list, description="Ids of the minds used.")
    created_at: AwareDatetime = _now_field("When the synthesis finished.")


# -- validation --------------------------------------------------------------------


class TaskResult(_PhaseModel):
    """The outcome of one validation task."""

    task_id: Id = Field(description="The task's id, e.g. ``EX-001``.")
    name: Id = Field(description="What the task checks, for people to read.")
    passed: bool = Field(description="Whether the check passed.")
    score: Score = Field(description="How well the check passed: 1 fully, 0 not at all.")
    details: str = Field(default="", description="What was measured, and why it failed if so.")
    duration_ms: Millis = Field(default=0.0, description="Time the task took, in milliseconds.")


class ValidationSummary(_PhaseModel):
    """All validation tasks in one verdict."""

    total: int = Field(ge=0, description="Number of tasks run.")
    passed: int = Field(ge=0, description="Number of tasks that passed.")
    failed: int = Field(ge=0, description="Number of tasks that failed; passed + failed = total.")
    score: Score = Field(description="Mean of the tasks' scores (0 when no task ran).")
    threshold: Score = Field(description="The score the profile needs to be approved.")
    all_passed: bool = Field(description="True when no task failed.")

    @model_validator(mode="after")
    def _counts_add_up(self) -> Self:
        if self.passed + self.failed != self.total:
            raise ValueError(
                f"passed ({self.passed}) + failed ({self.failed}) is not total ({self.total})"
            )
        if self.all_passed != (self.failed == 0):
            raise ValueError(f"all_passed is {self.all_passed} but {self.failed} tasks failed")
        return self


# -- checkpoints -------------------------------------------------------------------


class CheckpointStatus(_PhaseModel):
    """Where a checkpoint stands: not reached yet, waiting for a decision, or decided."""

    checkpoint_id: Id = Field(description="The checkpoint's id, e.g. ``cp-1``.")
    state: Literal["pending", "waiting", "decided"] = Field(
        description="pending: not reached; waiting: needs a decision; decided: has one."
    )
    score: Score | None = Field(
        default=None, description="The validation score under review, if known."
    )
    threshold: Score = Field(description="The score needed to approve.")
    updated_at: AwareDatetime = _now_field("When the state last changed.")


class CheckpointDecision(_PhaseModel):
    """A decision taken at a checkpoint, by a person or automatically."""

    checkpoint_id: Id = Field(description="The checkpoint decided.")
    decision: Literal["approve", "reject", "revise"] = Field(
        description="approve: go on; revise: redo the work; reject: stop."
    )
    decided_by: Id = Field(description='Who decided: a person\'s name, or ``"auto"``.')
    notes: str = Field(default="", description="Why, in a few words.")
    decided_at: AwareDatetime = _now_field("When the decision was taken.")


# -- generation --------------------------------------------------------------------


class ManifestContent(_PhaseModel):
    """The generated manifest: named markdown sections and their checksum.

    ``checksum`` is the SHA-256 of :meth:`canonical` (persona, version and sections,
    as sorted compact JSON). Left out, it is computed; given, it must match, so a
    manifest changed after generation fails validation.
    """

    persona: Id = Field(description="The persona the manifest describes.")
    version: int = Field(default=1, ge=1, description="Version of the manifest, from 1.")
    sections: dict[str, str] = Field(
        default_factory=dict, description="Section name to its markdown text."
    )
    generated_at: AwareDatetime = _now_field("When the manifest was generated.")
    checksum: str = Field(
        default="",
        pattern=r"^([0-9a-f]{64})?$",
        description="Hex SHA-256 of the canonical content; computed when left out.",
    )

    def canonical(self) -> bytes:
        """The bytes the checksum covers: persona, version and sections as sorted JSON."""
        content = {"persona": self.persona, "version": self.version, "sections": self.sections}
        return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()

    @model_validator(mode="after")
    def _checksum_matches(self) -> Self:
        actual = hashlib.sha256(self.canonical()).hexdigest()
        if not self.checksum:
            self.checksum = actual
        elif self.checksum != actual:
            raise ValueError(f"checksum {self.checksum} does not match the content ({actual})")
        return self


# -- session -----------------------------------------------------------------------


class SessionInfo(_PhaseModel):
    """What a pipeline session was started with."""

    session_id: Id = Field(description="The session's id.")
    persona: Id = Field(description="The persona being cloned.")
    started_at: AwareDatetime = _now_field("When the session started.")
    seed: int = Field(description="Seed choosing the order of work and the sources used.")
    minds: list[Id] = Field(default_factory=list, description="Ids of the minds to run, each once.")
    options: dict[str, Any] = Field(default_factory=dict, description="Any further options.")

    @model_validator(mode="after")
    def _minds_once(self) -> Self:
        _check_unique("minds", self.minds)
        return self


class PipelineStatus(_PhaseModel):
    """The pipeline's current phase, its state and overall progress."""

    phase: Phase = Field(description="The phase running now, or ``done``.")
    state: Literal["pending", "running", "waiting", "done", "failed"] = Field(
        description="The state of that phase."
    )
    progress: Score = Field(default=0.0, description="Progress of the whole pipeline, 0..1.")
    message: str = Field(default="", description="A line for people to read.")
    updated_at: AwareDatetime = _now_field("When the status last changed.")

    @model_validator(mode="after")
    def _done_is_complete(self) -> Self:
        if self.phase == "done" and (self.state != "done" or self.progress != 1.0):
            raise ValueError(
                f"phase 'done' needs state 'done' and progress 1.0, not state {self.state!r} "
                f"and progress {self.progress}"
            )
        return self
