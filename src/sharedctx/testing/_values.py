"""Values: what can be stored, how it reads back, and that stored values are snapshots."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest

from sharedctx import (
    ContextEvent,
    SchemaError,
    SerializationError,
    SharedContext,
    ValueTooLargeError,
)
from sharedctx.testing._base import SuiteBase


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Model(pydantic.BaseModel):
    name: str
    score: float
    when: datetime


class Struct(msgspec.Struct):
    a: int
    b: list[str]


class Mind(TypedDict):
    mind_id: str
    confidence: float


class ValueTests(SuiteBase):
    """Values: what can be stored, how it reads back, and that stored values are snapshots."""

    def test_aware_datetimes_stay_aware(self, ctx: SharedContext) -> None:
        moment = datetime(2026, 11, 25, 12, 0, tzinfo=timezone(timedelta(hours=-3)))
        ctx.set("k", {"at": moment})
        read = ctx.get("k")["at"]
        assert read == moment
        assert read.tzinfo is not None

    def test_pydantic_models_are_stored_as_dicts_and_read_back_typed(
        self, ctx: SharedContext
    ) -> None:
        model = Model(name="tim", score=0.5, when=datetime(2026, 1, 1, tzinfo=UTC))
        ctx.set("k", model)
        assert ctx.get("k") == {"name": "tim", "score": 0.5, "when": model.when}
        assert ctx.get("k", type=Model) == model

    def test_typed_get_converts_dataclasses_typeddicts_and_structs(
        self, ctx: SharedContext
    ) -> None:
        ctx.set("point", Point(3, 4))
        ctx.set("struct", Struct(1, ["x"]))
        ctx.set("mind", {"mind_id": "tim", "confidence": 0.9})
        ctx.set("day", date(2026, 1, 2))
        assert ctx.get("point", type=Point) == Point(3, 4)
        assert ctx.get("struct", type=Struct) == Struct(1, ["x"])
        assert ctx.get("mind", type=Mind) == {"mind_id": "tim", "confidence": 0.9}
        assert ctx.get("day", type=date) == date(2026, 1, 2)
        assert ctx.get("missing", type=Point) is None
        assert ctx.get("missing", "fallback", type=Point) == "fallback"

    def test_typed_get_mismatch_raises_schema_error_naming_key_and_field(
        self, ctx: SharedContext
    ) -> None:
        ctx.set("k", {"name": "tim", "score": "high", "when": "2026-01-01T00:00:00Z"})
        with pytest.raises(SchemaError) as caught:
            ctx.get("k", type=Model)
        error = caught.value
        assert isinstance(error, ValueError)
        assert error.key == "k"
        assert error.expected == "Model"
        assert [path for path, _ in error.errors] == ["score"]
        assert "'k'" in str(error)
        assert "score" in str(error)

    def test_struct_mismatch_names_the_nested_field(self, ctx: SharedContext) -> None:
        ctx.set("k", {"a": 1, "b": ["x", 2]})
        with pytest.raises(SchemaError) as caught:
            ctx.get("k", type=Struct)
        assert caught.value.errors[0][0] == "b[1]"

    def test_self_referencing_value_is_refused(self, ctx: SharedContext) -> None:
        loop: list[Any] = []
        loop.append(loop)
        with pytest.raises(SerializationError, match="nested too deeply"):
            ctx.set("k", loop)

    def test_values_over_max_entry_bytes_are_refused(self, make_context: Any) -> None:
        ctx = make_context(max_entry_bytes=100)
        ctx.set("k", "x" * 50)
        with pytest.raises(ValueTooLargeError) as caught:
            ctx.set("k", "x" * 200)
        assert (caught.value.key, caught.value.limit) == ("k", 100)
        assert caught.value.size > 100
        assert isinstance(caught.value, ValueError)
        assert ctx.get("k") == "x" * 50
        with pytest.raises(ValueTooLargeError):
            ctx.set_multiple({"a": 1, "b": "y" * 500})
        assert not ctx.has("a")

    def test_default_limit_is_100_kib(self, ctx: SharedContext) -> None:
        ctx.set("fits", b"x" * 102_000)
        with pytest.raises(ValueTooLargeError):
            ctx.set("too-big", b"x" * 102_400)

    def test_mutating_a_value_after_set_does_not_change_the_context(
        self, ctx: SharedContext
    ) -> None:
        value: dict[str, Any] = {"traits": ["curious"], "scores": {"openness": 0.8}}
        entry = ctx.set("k", value)
        value["traits"].append("changed")
        value["scores"]["openness"] = 0.0
        value["new"] = True
        assert ctx.get("k") == {"traits": ["curious"], "scores": {"openness": 0.8}}
        assert entry.value == ctx.get("k")

    def test_each_subscriber_gets_its_own_copy(self, ctx: SharedContext) -> None:
        seen: list[Any] = []

        def vandal(event: ContextEvent) -> None:
            event.entry.value["scores"].append(666)
            seen.append(event.entry.value)

        def reader(event: ContextEvent) -> None:
            seen.append(event.entry.value)

        ctx.subscribe("*", vandal)
        ctx.subscribe("*", reader)
        with ctx.watch() as watch:
            ctx.set("k", {"scores": [1]})
            assert watch.get(timeout=5).entry.value == {"scores": [1]}
        assert seen == [{"scores": [1]}, {"scores": [1]}]
        assert ctx.get("k") == {"scores": [1]}
