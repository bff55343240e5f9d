"""Values: what can be stored, how it reads back, and that stored values are snapshots."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from sharedctx import (
    SerializationError,
    SharedContext,
)


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Struct(msgspec.Struct):
    a: int
    b: list[str]


@pytest.mark.parametrize(
    ("value", "read_back"),
    [
        (None, None),
        (True, True),
        (0, 0),
        (-(2**63), -(2**63)),
        (2**64 - 1, 2**64 - 1),
        (1.5, 1.5),
        ("text ✓", "text ✓"),
        (b"\x00\xff", b"\x00\xff"),
        ([1, "a", None], [1, "a", None]),
        ((1, 2), [1, 2]),
        ({"a": {"b": [1, 2.5]}}, {"a": {"b": [1, 2.5]}}),
        (date(2026, 1, 2), "2026-01-02"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Decimal("1.10"), "1.10"),
        (Colour.RED, "red"),
        (Point(1, 2), {"x": 1, "y": 2}),
        (Struct(1, ["x"]), {"a": 1, "b": ["x"]}),
    ],
)
def test_supported_values_read_back_as_builtins(
    ctx: SharedContext, value: Any, read_back: Any
) -> None:
    ctx.set("k", value)
    assert ctx.get("k") == read_back
    assert type(ctx.get("k")) is type(read_back)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (object(), "builtins.object"),
        ({"nested": [{1, 2}, object()]}, "builtins.object"),
        (2**64, "64-bit"),
        (-(2**63) - 1, "64-bit"),
    ],
)
def test_unencodable_values_raise_serialization_error_and_keep_the_old_value(
    ctx: SharedContext, value: Any, named: str
) -> None:
    ctx.set("k", "old")
    with pytest.raises(SerializationError, match=named) as caught:
        ctx.set("k", value)
    assert isinstance(caught.value, TypeError)
    assert "'k'" in str(caught.value)
    assert ctx.get("k") == "old"
    assert ctx.get_entry("k").metadata.version == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value", [{"flat": 1, "dict": "yes"}, [1, 2, 3], {"nested": {"a": [1]}}, [[1], [2]]]
)
def test_mutating_a_value_returned_by_get_does_not_change_the_context(
    ctx: SharedContext, value: Any
) -> None:
    ctx.set("k", value)
    first = ctx.get("k")
    if isinstance(first, dict):
        first.clear()
    else:
        first.append("x")
        first[0] = "changed"
    assert ctx.get("k") == value
    entry = ctx.get_entry("k")
    assert entry is not None
    copy = entry.value
    copy.clear()
    assert entry.value == value
