"""What mypy infers from typed keys: ``make lint`` checks this file with mypy --strict.

Each ``assert_type`` is a claim about the static types, checked by mypy (at run time
it returns its argument); the tests also run, so each claim is about a real call.
"""

from __future__ import annotations

import dataclasses
from typing import TypedDict, assert_type

import msgspec
import pydantic
import pytest

from sharedctx import (
    BoundKey,
    ContextEntry,
    DNAProfile,
    MindResult,
    PipelineContext,
    Schema,
    SchemaError,
    SharedContext,
    TypedEvent,
    TypedKey,
    TypedWatch,
)


class Plan(pydantic.BaseModel):
    steps: int


@dataclasses.dataclass
class Finding:
    file: str
    line: int


class Score(msgspec.Struct):
    value: float


class Note(TypedDict):
    text: str


class Review(Schema):
    plan = TypedKey("review:plan", Plan)
    findings = TypedKey("review:finding:{file}", Finding, id_field="file")
    scores = TypedKey("review:score:{name}", Score)
    notes = TypedKey("review:note:{name}", Note)
    tallies = TypedKey("review:tally", list[int])


def test_a_typed_key_has_its_models_type() -> None:
    assert_type(TypedKey("synthesis:dna", DNAProfile), TypedKey[DNAProfile])
    assert_type(Review.plan, TypedKey[Plan])
    assert_type(Review.findings, TypedKey[Finding])
    assert_type(Review.scores, TypedKey[Score])
    assert_type(Review.notes, TypedKey[Note])
    assert_type(Review.tallies, TypedKey[list[int]])
    assert_type(PipelineContext.mind_results, TypedKey[MindResult])
    assert Review.tallies.key() == "review:tally"


def test_bound_keys_return_their_models() -> None:
    with SharedContext("typing") as ctx:
        review = Review(ctx)
        assert_type(review.plan, BoundKey[Plan])
        assert_type(Review.plan.on(ctx), BoundKey[Plan])
        assert_type(review.plan.set(Plan(steps=3)), ContextEntry)
        assert_type(review.plan.get(), Plan | None)
        assert_type(review.plan.get(default=Plan(steps=0)), Plan)
        assert_type(review.findings.set("a.py", Finding("a.py", 3)), ContextEntry)
        assert_type(review.findings.get("a.py"), Finding | None)
        assert_type(review.findings.all(), dict[str, Finding])
        assert_type(review.findings.wait_for(["a.py"], timeout=1), dict[str, Finding])
        assert_type(review.plan.wait_for_value(timeout=1), Plan)
        assert_type(review.plan.update(lambda plan: Plan(steps=plan.steps + 1)), ContextEntry)
        assert_type(review.scores.update("x", lambda s: s, default=Score(1.0)), ContextEntry)
        assert_type(review.notes.set("n", {"text": "hi"}), ContextEntry)
        assert_type(review.notes.get("n"), Note | None)
        assert_type(review.tallies.get(default=[]), list[int])
        assert_type(Review.check(ctx), list[SchemaError])
        with review.findings.watch() as watch:
            assert_type(watch, TypedWatch[Finding])
            review.findings.set("b.py", Finding("b.py", 1))
            event = watch.get(timeout=1)
            assert_type(event, TypedEvent[Finding])
            assert_type(event.value, Finding | None)
            assert_type(event.id, str | None)
        assert review.plan.get() == Plan(steps=4)
        assert event.value == Finding("b.py", 1)


async def test_the_awaitable_twins_return_their_models() -> None:
    async with SharedContext("typing") as ctx:
        review = Review(ctx)
        assert_type(await review.plan.aset(Plan(steps=1)), ContextEntry)
        assert_type(await review.plan.aget(), Plan | None)
        assert_type(await review.scores.aset("x", Score(0.5)), ContextEntry)
        assert_type(await review.scores.aall(), dict[str, Score])
        assert_type(await review.scores.await_for(count=1, timeout=1), dict[str, Score])
        assert_type(await review.scores.await_for_value("x", timeout=1), Score)
        assert_type(await Review.acheck(ctx), list[SchemaError])
        with review.scores.watch(since=0) as watch:
            event = await watch.aget(timeout=1)
            assert_type(event, TypedEvent[Score])
        assert event.value == Score(0.5)


def test_mypy_refuses_a_value_of_another_model() -> None:
    with SharedContext("typing") as ctx:
        review = Review(ctx)
        with pytest.raises(SchemaError) as refused:  # and so does the typed key, at run time
            review.plan.set(Finding("a.py", 1))  # type: ignore[call-overload]
        assert refused.value.key == "review:plan"
