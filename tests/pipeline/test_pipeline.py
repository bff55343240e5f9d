"""PipelineContext: typed, validated accessors that write exactly the standard keys."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, get_type_hints

import pydantic
import pytest

from sharedctx import (
    CheckpointDecision,
    CheckpointStatus,
    ContextEntry,
    ContextManager,
    DNAProfile,
    ExtractedData,
    ManifestContent,
    MindResult,
    OrchestratorResult,
    PipelineContext,
    PipelineStatus,
    SchemaError,
    SessionInfo,
    SharedContext,
    SourceMetadata,
    StandardKeys,
    SynthesisResult,
    TaskResult,
    ValidationSummary,
    WaitTimeoutError,
)
from sharedctx._glob import compile_glob

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def mind(mind_id: str, openness: float = 0.5) -> MindResult:
    return MindResult(
        mind_id=mind_id,
        traits={"openness": openness},
        findings=["finding"],
        confidence=0.9,
        started_at=NOW,
        finished_at=NOW + timedelta(milliseconds=5),
        duration_ms=5,
    )


def task(task_id: str, passed: bool = True) -> TaskResult:
    return TaskResult(task_id=task_id, name="check", passed=passed, score=1.0 if passed else 0.0)


# (accessor suffix, per-id?, a valid value, the key it must be stored under)
SINGLE = [
    (
        "extracted_data",
        [ExtractedData(source_id="s1", kind="email", text="hello there", word_count=2)],
        StandardKeys.EXTRACTED_DATA,
    ),
    (
        "source_metadata",
        SourceMetadata(source_count=1, total_words=2, kinds={"email": 1}, extractor="x"),
        StandardKeys.SOURCE_METADATA,
    ),
    (
        "orchestrator_result",
        OrchestratorResult(mind_ids=["a"], traits={"t": 0.5}, agreement=1.0, conflicts=[]),
        StandardKeys.ORCHESTRATOR_RESULT,
    ),
    (
        "dna_profile",
        DNAProfile(
            persona="p", traits={"t": 0.5}, signature_phrases=[], vocabulary=[], style_markers={}
        ),
        StandardKeys.DNA_PROFILE,
    ),
    (
        "synthesis_result",
        SynthesisResult(summary="s", coverage=1.0),
        StandardKeys.SYNTHESIS_RESULT,
    ),
    (
        "validation_summary",
        ValidationSummary(total=2, passed=2, failed=0, score=1, threshold=0.8, all_passed=True),
        StandardKeys.VALIDATION_SUMMARY,
    ),
    (
        "manifest_content",
        ManifestContent(persona="p", sections={"profile": "# P"}),
        StandardKeys.MANIFEST_CONTENT,
    ),
    (
        "session_info",
        SessionInfo(session_id="s", persona="p", started_at=NOW, seed=1, minds=["a"], options={}),
        StandardKeys.SESSION_INFO,
    ),
    (
        "pipeline_status",
        PipelineStatus(phase="analysis", state="running", progress=0.5, message="minds"),
        StandardKeys.PIPELINE_STATUS,
    ),
]


class PerId(NamedTuple):
    setter: str
    getter: str
    make: Callable[[str], Any]  # a valid value for an id
    field: str  # the value's own id field
    pattern: str  # of the keys it is stored under


PER_ID = [
    PerId("set_mind_result", "get_mind_result", mind, "mind_id", StandardKeys.MIND_RESULTS),
    PerId(
        "add_validation_result",
        "get_validation_result",
        task,
        "task_id",
        StandardKeys.VALIDATION_RESULTS,
    ),
    PerId(
        "set_checkpoint_status",
        "get_checkpoint_status",
        lambda id_: CheckpointStatus(checkpoint_id=id_, state="waiting", score=0.9, threshold=0.8),
        "checkpoint_id",
        StandardKeys.CHECKPOINT_STATUS,
    ),
    PerId(
        "set_checkpoint_decision",
        "get_checkpoint_decision",
        lambda id_: CheckpointDecision(checkpoint_id=id_, decision="approve", decided_by="auto"),
        "checkpoint_id",
        StandardKeys.CHECKPOINT_DECISION,
    ),
]


per_id = pytest.mark.parametrize("slot", PER_ID, ids=[slot.setter for slot in PER_ID])


@pytest.fixture
def pipeline(ctx: SharedContext) -> PipelineContext:
    return PipelineContext(ctx)


@pytest.mark.parametrize(("name", "value", "key"), SINGLE, ids=[row[0] for row in SINGLE])
def test_single_accessors_round_trip_under_the_standard_key(
    pipeline: PipelineContext, name: str, value: Any, key: str
) -> None:
    assert getattr(pipeline, f"get_{name}")() is None
    entry = getattr(pipeline, f"set_{name}")(value)
    assert entry.key == key
    assert getattr(pipeline, f"get_{name}")() == value
    assert pipeline.context.get_entry(key) is not None


@per_id
def test_per_id_accessors_write_keys_that_the_standard_pattern_matches(
    pipeline: PipelineContext, slot: PerId
) -> None:
    value = slot.make("x:1")
    assert getattr(pipeline, slot.getter)("x:1") is None
    entry = getattr(pipeline, slot.setter)("x:1", value)
    assert compile_glob(slot.pattern).match(entry.key)
    assert entry.key == StandardKeys.for_id(slot.pattern, "x:1")
    assert getattr(pipeline, slot.getter)("x:1") == value
    assert [e.key for e in pipeline.context.find_by_pattern(slot.pattern)] == [entry.key]


@per_id
async def test_a_per_id_write_under_another_id_than_the_models_stores_nothing(
    pipeline: PipelineContext, slot: PerId
) -> None:
    async def write(name: str, value: Any) -> Any:
        result = getattr(pipeline, name)("tim", value)
        return await result if inspect.isawaitable(result) else result

    for name in (slot.setter, "a" + slot.setter):
        for value in (slot.make("ana"), slot.make("ana").model_dump()):  # a model, or a dict
            with pytest.raises(SchemaError) as caught:
                await write(name, value)
            assert caught.value.key == StandardKeys.for_id(slot.pattern, "tim")
            assert caught.value.errors == [
                (slot.field, "is 'ana', but the value is written under the id 'tim'")
            ]
            assert "'tim'" in str(caught.value)
            assert "'ana'" in str(caught.value)
    assert getattr(pipeline, slot.getter)("tim") is None
    assert getattr(pipeline, slot.getter)("ana") is None
    assert pipeline.context.keys() == []


async def test_async_accessors_round_trip(pipeline: PipelineContext) -> None:
    status = PipelineStatus(phase="synthesis", state="done", progress=1.0, message="")
    await pipeline.aset_pipeline_status(status)
    assert await pipeline.aget_pipeline_status() == status
    await pipeline.aset_mind_result("tim", mind("tim"))
    assert await pipeline.aget_mind_result("tim") == mind("tim")
    await pipeline.aadd_validation_result("EX-002", task("EX-002"))
    assert await pipeline.aget_validation_results() == [task("EX-002")]
    assert await pipeline.aget_all_mind_results() == {"tim": mind("tim")}


def test_every_accessor_has_its_async_twin_a_name_and_a_docstring() -> None:
    names = [name for name in dir(PipelineContext) if name.startswith(("get_", "set_", "add_"))]
    assert len(names) >= 28
    for name in names:
        for accessor in (getattr(PipelineContext, name), getattr(PipelineContext, "a" + name)):
            assert accessor.__name__ in (name, "a" + name)
            assert accessor.__doc__
    assert "list[ExtractedData]" in (PipelineContext.set_extracted_data.__doc__ or "")


# The model each slot's accessors take and return, by the name of its reader.
MODELS: dict[str, Any] = {
    "get_extracted_data": list[ExtractedData],
    "get_source_metadata": SourceMetadata,
    "get_mind_result": MindResult,
    "get_orchestrator_result": OrchestratorResult,
    "get_dna_profile": DNAProfile,
    "get_synthesis_result": SynthesisResult,
    "get_validation_result": TaskResult,
    "get_validation_summary": ValidationSummary,
    "get_checkpoint_status": CheckpointStatus,
    "get_checkpoint_decision": CheckpointDecision,
    "get_manifest_content": ManifestContent,
    "get_session_info": SessionInfo,
    "get_pipeline_status": PipelineStatus,
}


def writer_of(getter: str) -> str:
    return next(
        name
        for name in (getter.replace("get_", "set_", 1), getter.replace("get_", "add_", 1))
        if hasattr(PipelineContext, name)
    )


@pytest.mark.parametrize(("getter", "model"), MODELS.items(), ids=list(MODELS))
def test_each_accessor_is_an_annotated_documented_method_with_its_twin(
    getter: str, model: Any
) -> None:
    is_per_id = getter in {slot.getter for slot in PER_ID}
    id_hint = {"id_": str} if is_per_id else {}
    hints = {
        writer_of(getter): {**id_hint, "value": model, "return": ContextEntry},
        getter: {**id_hint, "return": model | None},
    }
    for name, expected in hints.items():
        method, twin = getattr(PipelineContext, name), getattr(PipelineContext, "a" + name)
        assert not inspect.iscoroutinefunction(method)
        assert inspect.iscoroutinefunction(twin)
        assert (method.__qualname__, twin.__qualname__) == (
            f"PipelineContext.{name}",
            f"PipelineContext.a{name}",
        )
        assert inspect.signature(method) == inspect.signature(twin)
        assert get_type_hints(method) == get_type_hints(twin) == expected
        assert len(inspect.getdoc(method) or "") > 80
        assert twin.__doc__ == f"Awaitable twin of :meth:`{name}`."


# A write of each slot: the writer and its arguments. A per-id slot is written under
# the id "*", so that its key, source and tags read as its docstrings write them.
WRITES = [(f"set_{name}", (value,)) for name, value, _ in SINGLE] + [
    (slot.setter, ("*", slot.make("*"))) for slot in PER_ID
]


@pytest.mark.parametrize(("writer", "args"), WRITES, ids=[writer for writer, _ in WRITES])
def test_each_accessors_docstring_names_the_key_source_and_tags_it_writes(
    pipeline: PipelineContext, writer: str, args: tuple[Any, ...]
) -> None:
    entry = getattr(pipeline, writer)(*args)
    getter = "get_" + writer.partition("_")[2]
    for name in (writer, getter):
        assert f"Key ``{entry.key}``" in (getattr(PipelineContext, name).__doc__ or "")
    doc = " ".join((getattr(PipelineContext, writer).__doc__ or "").split())
    assert f"source ``{entry.metadata.source}``" in doc
    tags = ", ".join(f"``{tag}``" for tag in entry.metadata.tags)
    assert f"tags {tags}." in doc or f"tag {tags}." in doc or (not tags and "no tags" in doc)


def test_writes_record_the_phase_source_and_tags(pipeline: PipelineContext) -> None:
    entry = pipeline.set_mind_result("tim", mind("tim"))
    assert entry.metadata.source == "mind:tim"
    assert entry.metadata.tags == ("phase:analysis", "mind", "tim")
    entry = pipeline.set_dna_profile(SINGLE[3][1])
    assert (entry.metadata.source, entry.metadata.tags) == (
        "dna-synthesizer",
        ("phase:synthesis", "dna"),
    )
    entry = pipeline.add_validation_result("EX-001", task("EX-001"))
    assert (entry.metadata.source, entry.metadata.tags) == (
        "validation",
        ("phase:validation", "EX-001"),
    )
    assert [e.key for e in pipeline.context.find_by_tag("mind")] == ["analysis:mind:tim"]


def test_a_wrongly_typed_write_raises_schema_error_and_stores_nothing(
    pipeline: PipelineContext,
) -> None:
    pipeline.set_pipeline_status(
        PipelineStatus(phase="analysis", state="running", progress=0.2, message="")
    )
    bad_values = [
        {"phase": "analysis", "state": "running", "progress": 1.5, "message": ""},
        {"phase": "nowhere", "state": "running", "progress": 0.1, "message": ""},
        "not a status",
    ]
    for bad in bad_values:
        with pytest.raises(SchemaError) as caught:
            pipeline.set_pipeline_status(bad)  # type: ignore[arg-type]
        assert caught.value.key == "pipeline:status"
    status = pipeline.get_pipeline_status()
    assert status is not None
    assert status.progress == 0.2
    with pytest.raises(SchemaError, match="confidence"):
        pipeline.set_mind_result("tim", {**mind("tim").model_dump(), "confidence": 7})  # type: ignore[arg-type]
    assert pipeline.get_mind_result("tim") is None


def test_a_model_mutated_after_construction_is_still_checked(pipeline: PipelineContext) -> None:
    result = mind("tim")
    result.confidence = 42.0  # pydantic does not check assignments by default
    with pytest.raises(SchemaError, match="confidence"):
        pipeline.set_mind_result("tim", result)
    assert pipeline.get_mind_result("tim") is None


def test_dicts_that_fit_the_model_are_accepted(pipeline: PipelineContext) -> None:
    pipeline.set_checkpoint_decision(
        "cp-1",
        {"checkpoint_id": "cp-1", "decision": "revise", "decided_by": "ana", "notes": "x"},  # type: ignore[arg-type]
    )
    decision = pipeline.get_checkpoint_decision("cp-1")
    assert isinstance(decision, CheckpointDecision)
    assert decision.decision == "revise"


def test_extra_fields_are_kept(pipeline: PipelineContext) -> None:
    pipeline.set_mind_result("tim", MindResult(**mind("tim").model_dump(), model="v2"))
    stored = pipeline.get_mind_result("tim")
    assert stored is not None
    assert stored.model_extra == {"model": "v2"}


def test_a_read_of_data_that_does_not_fit_raises_schema_error(pipeline: PipelineContext) -> None:
    pipeline.context.set(StandardKeys.for_id(StandardKeys.MIND_RESULTS, "tim"), {"mind_id": 5})
    with pytest.raises(SchemaError) as caught:
        pipeline.get_mind_result("tim")
    assert caught.value.key == "analysis:mind:tim"
    with pytest.raises(SchemaError):
        pipeline.get_all_mind_results()


def test_all_mind_results_are_keyed_by_id_even_with_colons(pipeline: PipelineContext) -> None:
    assert pipeline.get_all_mind_results() == {}
    for mind_id in ["b", "a:1", "ns:deep:id"]:
        pipeline.set_mind_result(mind_id, mind(mind_id))
    pipeline.context.set("analysis:orchestrator:x", 1)  # not a mind result
    results = pipeline.get_all_mind_results()
    assert sorted(results) == ["a:1", "b", "ns:deep:id"]
    assert results["ns:deep:id"].mind_id == "ns:deep:id"


def test_validation_results_are_sorted_by_task_id(pipeline: PipelineContext) -> None:
    assert pipeline.get_validation_results() == []
    for task_id in ["EX-003", "EX-001", "EX-002"]:
        pipeline.add_validation_result(task_id, task(task_id))
    assert [r.task_id for r in pipeline.get_validation_results()] == ["EX-001", "EX-002", "EX-003"]


def test_bad_ids_are_rejected(pipeline: PipelineContext) -> None:
    with pytest.raises(ValueError, match="id"):
        pipeline.set_mind_result("", mind("x"))
    with pytest.raises(ValueError, match="id"):
        pipeline.get_mind_result(3)  # type: ignore[arg-type]


def test_wait_for_mind_results_returns_when_every_mind_delivered(
    pipeline: PipelineContext,
) -> None:
    pipeline.set_mind_result("a", mind("a"))

    def deliver() -> None:
        pipeline.set_mind_result("other", mind("other"))
        pipeline.set_mind_result("b*", mind("b*"))  # glob characters in an id
        pipeline.set_mind_result("c", mind("c"))

    timer = threading.Timer(0.05, deliver)
    timer.start()
    results = pipeline.wait_for_mind_results(["a", "b*", "c"], timeout=10)
    timer.join()  # the wait may end on hearing "c" before the writer's set returns
    assert sorted(results) == ["a", "b*", "c"]
    assert results["b*"] == mind("b*")


def test_wait_for_mind_results_timeout_names_the_missing_minds(
    pipeline: PipelineContext,
) -> None:
    pipeline.set_mind_result("a", mind("a"))
    message = r"^no result after 0.05 s from the minds \['b', 'c'\]$"
    with pytest.raises(WaitTimeoutError, match=message) as e:
        pipeline.wait_for_mind_results(["a", "b", "c"], timeout=0.05)
    assert e.value.missing == ("b", "c")


async def test_await_for_mind_results(pipeline: PipelineContext) -> None:
    timer = threading.Timer(0.05, lambda: pipeline.set_mind_result("late", mind("late")))
    timer.start()
    results = await pipeline.await_for_mind_results(["late"], timeout=10)
    await asyncio.to_thread(timer.join)  # as above
    assert results == {"late": mind("late")}


def test_a_session_id_is_looked_up_or_created_in_the_manager() -> None:
    with ContextManager() as manager:
        first = PipelineContext("session-7", manager=manager)
        second = PipelineContext("session-7", manager=manager)
        assert first.context is second.context
        assert manager.sessions() == ["session-7"]
        assert first.session_id == "session-7"


def test_standard_keys_match_what_the_pipeline_writes() -> None:
    patterns = [value for name, value in vars(StandardKeys).items() if name.isupper()]
    assert len(patterns) == 13
    assert "validation:task:*" in patterns
    assert StandardKeys.id_of(StandardKeys.CHECKPOINT_STATUS, "checkpoint:a:b:status") == "a:b"
    with pytest.raises(ValueError, match="per-id"):
        StandardKeys.for_id(StandardKeys.DNA_PROFILE, "x")


def test_models_are_exported_and_strict(pipeline: PipelineContext) -> None:
    with pytest.raises(pydantic.ValidationError):
        MindResult(mind_id="", traits={}, findings=[], confidence=0.5, started_at=NOW,
                   finished_at=NOW, duration_ms=0)  # fmt: skip
