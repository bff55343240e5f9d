"""Export and import: a session to JSON-able records and back, on every backend."""

from __future__ import annotations

import pytest

from sharedctx import (
    InvalidArgumentError,
    SharedContext,
)


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
