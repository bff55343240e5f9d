"""Export and import: a session to JSON-able records and back, on every backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from sharedctx import (
    SharedContext,
    VersionConflictError,
)
from sharedctx.testing._base import ContextFactory, SuiteBase


class Profile(BaseModel):
    persona: str
    traits: dict[str, float]
    phrases: list[str]
    created_at: datetime


PROFILE = Profile(
    persona="Maren Holt",
    traits={"warmth": 0.8},
    phrases=["sharp knives"],
    created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
)


class ExportTests(SuiteBase):
    """Export and import: a session to JSON-able records and back, on every backend."""

    def test_a_round_trip_keeps_values_tags_sources_and_ttls(
        self, make_context: ContextFactory
    ) -> None:
        source = make_context()
        source.set(
            "synthesis:dna", PROFILE, source="dna-synthesizer", tags=["dna", "final"], ttl=300
        )
        source.set("analysis:mind:tim", {"openness": 0.8, "when": datetime.now(UTC)})
        source.set("plain", "text", ttl=None)
        records = list(source.export())
        text = "\n".join(json.dumps(record) for record in records)  # JSON-able as they are
        copy = make_context()
        copy.import_records(json.loads(line) for line in text.splitlines())
        keys = source.keys()
        assert copy.keys() == keys
        for key in keys:
            original, imported = source.get_entry(key), copy.get_entry(key)
            assert original is not None
            assert imported is not None
            assert (imported.source, imported.tags) == (original.source, original.tags)
            if original.ttl is None:
                assert imported.ttl is None
            else:
                assert imported.ttl == pytest.approx(original.ttl, abs=2)
        assert copy.get("synthesis:dna", type=Profile) == PROFILE  # the typed value, equal

    def test_export_takes_a_pattern_and_goes_in_key_order(self, ctx: SharedContext) -> None:
        ctx.set_multiple({f"a:{n:04}": n for n in range(1203)})  # more than one page
        ctx.set("b", 0)
        records = list(ctx.export("a:*"))
        assert [record["key"] for record in records] == [f"a:{n:04}" for n in range(1203)]
        assert records[5] == {
            "key": "a:0005", "value": 5, "source": "unknown", "tags": [], "version": 1, "ttl": None
        }  # fmt: skip

    @pytest.mark.asyncio
    async def test_export_and_import_have_awaitable_twins(
        self, make_context: ContextFactory
    ) -> None:
        source, copy = make_context(), make_context()
        await source.aset("k", [1, 2], tags=["t"])
        records = [record async for record in source.aexport()]
        await copy.aimport_records(records)
        assert await copy.aget("k") == [1, 2]

    def test_import_is_all_or_nothing(self, make_context: ContextFactory) -> None:
        ctx = make_context()
        ctx.set("taken", "mine")
        records: list[dict[str, Any]] = [
            {"key": "new", "value": 1},
            {"key": "taken", "value": "theirs"},
        ]
        with pytest.raises(VersionConflictError, match="'taken'"):
            ctx.import_records(records)
        assert ctx.keys() == ["taken"]  # "new" was not stored either
        ctx.import_records(records, overwrite=True)
        assert ctx.get_multiple(["new", "taken"]) == {"new": 1, "taken": "theirs"}
