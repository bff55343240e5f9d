"""The phase models: what each accepts, what it rejects (naming the field), and
that a pipeline's own extra fields are kept."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from sharedctx.pipeline import _models
from sharedctx.pipeline._models import (
    CheckpointDecision,
    CheckpointStatus,
    DNAProfile,
    ExtractedData,
    ManifestContent,
    MindResult,
    OrchestratorResult,
    PipelineStatus,
    SessionInfo,
    SourceMetadata,
    SynthesisResult,
    TaskResult,
    ValidationSummary,
)

NOW = datetime(2026, 2, 20, 12, 0, tzinfo=UTC)
NAIVE = datetime(2026, 2, 20, 12, 0)

GOOD: dict[type[BaseModel], dict[str, Any]] = {
    ExtractedData: {
        "source_id": "post-first-spoon",
        "kind": "post",
        "title": "The first spoon",
        "text": "Follow the grain.",
        "word_count": 3,
        "extracted_at": NOW,
    },
    SourceMetadata: {
        "source_count": 3,
        "total_words": 600,
        "kinds": {"email": 1, "post": 2},
        "extracted_at": NOW,
        "extractor": "test",
    },
    MindResult: {
        "mind_id": "voice",
        "traits": {"questioning": 0.25, "informality": 1.0},
        "findings": ["8 questions in 182 sentences"],
        "confidence": 0.8,
        "started_at": NOW,
        "finished_at": NOW + timedelta(seconds=1),
        "duration_ms": 1000.0,
    },
    OrchestratorResult: {
        "mind_ids": ["rhythm", "voice"],
        "traits": {"informality": 0.6},
        "agreement": 0.9,
        "conflicts": [],
        "completed_at": NOW,
    },
    DNAProfile: {
        "persona": "Maren Holt",
        "traits": {"informality": 0.6},
        "signature_phrases": ["follow the grain"],
        "vocabulary": ["grain", "spoon"],
        "style_markers": {"mean_sentence_words": 8.4},
        "version": 2,
        "created_at": NOW,
    },
    SynthesisResult: {
        "summary": "Short sentences, many contractions.",
        "coverage": 1.0,
        "sources_used": ["post-first-spoon"],
        "mind_ids": ["voice"],
        "created_at": NOW,
    },
    TaskResult: {
        "task_id": "EX-001",
        "name": "traits are scores",
        "passed": True,
        "score": 1.0,
        "details": "15 traits",
        "duration_ms": 0.4,
    },
    ValidationSummary: {
        "total": 5,
        "passed": 4,
        "failed": 1,
        "score": 0.8,
        "threshold": 0.8,
        "all_passed": False,
    },
    CheckpointStatus: {
        "checkpoint_id": "cp-1",
        "state": "waiting",
        "score": 0.9,
        "threshold": 0.8,
        "updated_at": NOW,
    },
    CheckpointDecision: {
        "checkpoint_id": "cp-1",
        "decision": "revise",
        "decided_by": "auto",
        "notes": "close to the threshold",
        "decided_at": NOW,
    },
    ManifestContent: {
        "persona": "Maren Holt",
        "version": 1,
        "sections": {"profile": "# Maren Holt"},
        "generated_at": NOW,
    },
    SessionInfo: {
        "session_id": "session-1",
        "persona": "Maren Holt",
        "started_at": NOW,
        "seed": 7,
        "minds": ["lexicon", "voice"],
        "options": {"limit": 5},
    },
    PipelineStatus: {
        "phase": "analysis",
        "state": "running",
        "progress": 0.25,
        "message": "6 minds running",
        "updated_at": NOW,
    },
}
MODELS = list(GOOD)


def test_all_lists_every_model() -> None:
    assert sorted(_models.__all__) == sorted(model.__name__ for model in MODELS)


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_a_good_value_is_accepted_and_round_trips(model: type[BaseModel]) -> None:
    value = model(**GOOD[model])

    for name, given in GOOD[model].items():
        assert getattr(value, name) == given
    assert model.model_validate(value.model_dump()) == value
    assert model.model_validate_json(value.model_dump_json()) == value


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_extra_fields_are_kept(model: type[BaseModel]) -> None:
    value = model.model_validate({**GOOD[model], "pipeline_note": "added by the pipeline"})

    assert value.model_extra == {"pipeline_note": "added by the pipeline"}
    assert value.model_dump()["pipeline_note"] == "added by the pipeline"


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_field_is_documented(model: type[BaseModel]) -> None:
    assert model.__doc__
    undocumented = [name for name, field in model.model_fields.items() if not field.description]
    assert undocumented == []


BAD_FIELDS: list[tuple[type[BaseModel], str, Any, tuple[str | int, ...]]] = [
    (ExtractedData, "source_id", "", ("source_id",)),
    (ExtractedData, "kind", "tweet", ("kind",)),
    (ExtractedData, "word_count", -1, ("word_count",)),
    (ExtractedData, "extracted_at", NAIVE, ("extracted_at",)),
    (SourceMetadata, "total_words", -5, ("total_words",)),
    (SourceMetadata, "kinds", {"post": -1}, ("kinds", "post")),
    (SourceMetadata, "extractor", "", ("extractor",)),
    (MindResult, "traits", {"questioning": 1.5}, ("traits", "questioning")),
    (MindResult, "traits", {"questioning": -0.01}, ("traits", "questioning")),
    (MindResult, "confidence", 1.01, ("confidence",)),
    (MindResult, "duration_ms", -1.0, ("duration_ms",)),
    (MindResult, "started_at", NAIVE, ("started_at",)),
    (MindResult, "mind_id", "", ("mind_id",)),
    (OrchestratorResult, "agreement", 1.2, ("agreement",)),
    (OrchestratorResult, "mind_ids", [], ("mind_ids",)),
    (OrchestratorResult, "mind_ids", ["voice", ""], ("mind_ids", 1)),
    (DNAProfile, "persona", "", ("persona",)),
    (DNAProfile, "version", 0, ("version",)),
    (DNAProfile, "traits", {"warmth": 2.0}, ("traits", "warmth")),
    (
        DNAProfile,
        "style_markers",
        {"mean_sentence_words": float("inf")},
        ("style_markers", "mean_sentence_words"),
    ),
    (DNAProfile, "created_at", NAIVE, ("created_at",)),
    (SynthesisResult, "summary", "", ("summary",)),
    (SynthesisResult, "coverage", 1.5, ("coverage",)),
    (TaskResult, "score", float("nan"), ("score",)),
    (TaskResult, "task_id", "", ("task_id",)),
    (TaskResult, "duration_ms", -0.1, ("duration_ms",)),
    (ValidationSummary, "total", -1, ("total",)),
    (ValidationSummary, "threshold", -0.1, ("threshold",)),
    (CheckpointStatus, "state", "done", ("state",)),
    (CheckpointStatus, "score", 1.2, ("score",)),
    (CheckpointDecision, "decision", "maybe", ("decision",)),
    (CheckpointDecision, "decided_by", "", ("decided_by",)),
    (CheckpointDecision, "decided_at", NAIVE, ("decided_at",)),
    (ManifestContent, "checksum", "not-a-sha256", ("checksum",)),
    (ManifestContent, "version", 0, ("version",)),
    (SessionInfo, "session_id", "", ("session_id",)),
    (SessionInfo, "seed", "seven", ("seed",)),
    (SessionInfo, "minds", ["voice", ""], ("minds", 1)),
    (PipelineStatus, "phase", "deploy", ("phase",)),
    (PipelineStatus, "state", "stuck", ("state",)),
    (PipelineStatus, "progress", 1.5, ("progress",)),
    (PipelineStatus, "updated_at", NAIVE, ("updated_at",)),
]


@pytest.mark.parametrize(
    ("model", "field", "bad", "loc"),
    BAD_FIELDS,
    ids=[f"{model.__name__}.{field}={bad!r}" for model, field, bad, _ in BAD_FIELDS],
)
def test_a_bad_field_is_rejected_by_name(
    model: type[BaseModel], field: str, bad: Any, loc: tuple[str | int, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        model(**{**GOOD[model], field: bad})

    assert [error["loc"] for error in caught.value.errors()] == [loc]


def test_a_naive_datetime_is_rejected_as_such() -> None:
    with pytest.raises(ValidationError) as caught:
        CheckpointDecision(**{**GOOD[CheckpointDecision], "decided_at": NAIVE})

    assert caught.value.errors()[0]["type"] == "timezone_aware"


INCONSISTENT: list[tuple[type[BaseModel], dict[str, Any], list[str]]] = [
    (SourceMetadata, {"source_count": 4}, ["kinds", "source_count"]),
    (MindResult, {"finished_at": NOW - timedelta(seconds=1)}, ["finished_at", "started_at"]),
    (OrchestratorResult, {"mind_ids": ["voice", "rhythm", "voice"]}, ["mind_ids", "'voice'"]),
    (ValidationSummary, {"passed": 5}, ["passed", "failed", "total"]),
    (ValidationSummary, {"all_passed": True}, ["all_passed", "1 tasks failed"]),
    (ValidationSummary, {"failed": 0, "passed": 5, "all_passed": False}, ["all_passed"]),
    (ManifestContent, {"checksum": "0" * 64}, ["checksum", "does not match"]),
    (SessionInfo, {"minds": ["voice", "voice"]}, ["minds", "'voice'"]),
    (PipelineStatus, {"phase": "done", "state": "done", "progress": 0.5}, ["progress"]),
    (PipelineStatus, {"phase": "done", "state": "running", "progress": 1.0}, ["state"]),
]


@pytest.mark.parametrize(
    ("model", "changes", "words"),
    INCONSISTENT,
    ids=[f"{model.__name__}-{sorted(changes)}" for model, changes, _ in INCONSISTENT],
)
def test_inconsistent_fields_are_rejected_naming_them(
    model: type[BaseModel], changes: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        model(**{**GOOD[model], **changes})

    message = caught.value.errors()[0]["msg"]
    assert all(word in message for word in words), message


def test_a_finished_pipeline_is_accepted() -> None:
    status = PipelineStatus(phase="done", state="done", progress=1.0)

    assert status.phase == "done"


def test_empty_kinds_mean_unknown_and_are_not_checked() -> None:
    metadata = SourceMetadata(source_count=3, total_words=10, extractor="test")

    assert metadata.kinds == {}


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (ExtractedData, "extracted_at"),
        (SourceMetadata, "extracted_at"),
        (OrchestratorResult, "completed_at"),
        (DNAProfile, "created_at"),
        (SynthesisResult, "created_at"),
        (CheckpointStatus, "updated_at"),
        (CheckpointDecision, "decided_at"),
        (ManifestContent, "generated_at"),
        (SessionInfo, "started_at"),
        (PipelineStatus, "updated_at"),
    ],
)
def test_times_default_to_now_in_utc(model: type[BaseModel], field: str) -> None:
    given = {name: value for name, value in GOOD[model].items() if name != field}
    before = datetime.now(UTC)

    stamp = getattr(model(**given), field)

    assert stamp.tzinfo is not None
    assert stamp.utcoffset() == timedelta(0)
    assert before <= stamp <= datetime.now(UTC)


def test_manifest_checksum_is_computed_from_the_canonical_content() -> None:
    manifest = ManifestContent(**GOOD[ManifestContent])

    assert manifest.checksum == hashlib.sha256(manifest.canonical()).hexdigest()
    assert manifest.canonical() == (
        b'{"persona":"Maren Holt","sections":{"profile":"# Maren Holt"},"version":1}'
    )


def test_manifest_checksum_does_not_depend_on_the_generation_time() -> None:
    earlier = ManifestContent(**GOOD[ManifestContent])
    later = ManifestContent(**{**GOOD[ManifestContent], "generated_at": NOW + timedelta(days=1)})

    assert earlier.checksum == later.checksum


def test_a_manifest_changed_after_generation_fails_validation() -> None:
    stored = ManifestContent(**GOOD[ManifestContent]).model_dump()
    stored["sections"]["profile"] = "# Someone else"

    with pytest.raises(ValidationError, match="checksum"):
        ManifestContent.model_validate(stored)


def test_a_manifest_with_its_own_correct_checksum_is_accepted() -> None:
    manifest = ManifestContent(**GOOD[ManifestContent])

    again = ManifestContent(**GOOD[ManifestContent], checksum=manifest.checksum)

    assert again.checksum == manifest.checksum
