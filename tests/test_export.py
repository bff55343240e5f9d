"""Export and import: a session to JSON-able records and back, on every backend."""

from __future__ import annotations

import pytest

from sharedctx import (
    InvalidArgumentError,
    SharedContext,
    VersionConflictError,
)
from sharedctx.backends import SessionAdmin
from sharedctx.testing import ContextFactory


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        ([{"value": 1}], "record 0 has no key"),
        ([{"key": "a"}], "record 0 has no value"),
        ([{"key": "a", "value": 1}, "x"], "record 1 must be a mapping"),
        ([{"key": "", "value": 1}], "record 0: .*must not be empty"),
        ([{"key": "a", "value": 1, "ttl": -5}], "record 0: ttl for key 'a'"),
        ([{"key": "a", "value": 1, "tags": "t"}], "record 0: tags for key 'a'"),
        ([{"key": "a", "value": 1}, {"key": "a", "value": 2}], "record 1: key 'a' comes twice"),
        ([{"key": "a", "value": object()}], "record 0: cannot store"),
        ({"key": "a", "value": 1}, "iterable of records"),
    ],
)
def test_a_bad_record_is_refused_by_number_and_nothing_is_stored(
    ctx: SharedContext, records: object, problem: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=problem):
        ctx.import_records(records)  # type: ignore[arg-type]
    assert ctx.keys() == []


def test_a_failed_or_empty_import_creates_no_session(
    make_context: ContextFactory, admin: SessionAdmin
) -> None:
    ctx = make_context()
    assert ctx.import_records([]) == []
    with pytest.raises(InvalidArgumentError):
        ctx.import_records([{"key": "a", "value": 1}, {"key": "", "value": 2}])
    with pytest.raises(VersionConflictError):  # a refused write creates nothing either
        ctx.set("a", 1, if_version=3)
    assert not admin.has_session(ctx.session_id)
    assert ctx.session_id not in admin.sessions()
    ctx.import_records([{"key": "a", "value": 1}])
    assert admin.has_session(ctx.session_id)


def test_opening_and_reading_a_session_creates_none(
    make_context: ContextFactory, admin: SessionAdmin
) -> None:
    ctx = make_context()
    ctx.get("a")
    ctx.find_by_pattern("*")
    ctx.stats()
    ctx.delete("a")
    ctx.clear()
    ctx.purge_expired()
    assert not admin.has_session(ctx.session_id)
    assert admin.session_summary(ctx.session_id) is None


def test_an_import_conflict_names_overwrite(ctx: SharedContext) -> None:
    ctx.set("a", 1)
    with pytest.raises(VersionConflictError, match=r"overwrite=True") as refused:
        ctx.import_records([{"key": "b", "value": 2}, {"key": "a", "value": 3}])
    assert refused.value.key == "a"
    assert "nothing was imported" in str(refused.value)
    assert ctx.keys() == ["a"]
    ctx.import_records([{"key": "a", "value": 3}], overwrite=True)
    assert ctx.get("a") == 3
