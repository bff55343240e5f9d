"""What the web view sends, without a server: values as exact JSON, previews, event
times, rates."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sharedctx import ContextEvent, SharedContext
from sharedctx.backends import compile_glob
from sharedctx.testing import FakeClock
from sharedctx.web._data import (
    PREVIEW_ITEMS,
    PREVIEW_TEXT,
    EventMatcher,
    WriteRates,
    entry_row,
    event_row,
    plain,
)

SAFE = 2**53 - 1
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(), children, max_size=8)
    ),
    max_leaves=40,
)
any_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=60)
        | st.dictionaries(st.integers() | st.text(), children, max_size=60)
    ),
    max_leaves=80,
)


@given(json_values)
def test_a_json_value_is_sent_whole_and_exact(value: Any) -> None:
    assert plain(value, limit=False) == (value, False)


@given(any_values)
def test_any_value_becomes_json_a_browser_parses_exactly(value: Any) -> None:
    for limit in (True, False):
        shown, _ = plain(value, limit=limit)
        text = json.dumps(shown, allow_nan=False)  # no NaN, no bytes, str keys only
        assert json.loads(text) == shown


def _fits_a_preview(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= PREVIEW_TEXT
    if isinstance(value, list):
        return len(value) <= PREVIEW_ITEMS and all(map(_fits_a_preview, value))
    if isinstance(value, dict):
        return len(value) <= PREVIEW_ITEMS and all(map(_fits_a_preview, value.values()))
    return True


@given(json_values)
def test_a_preview_is_cut_only_when_the_value_is_large(value: Any) -> None:
    shown, truncated = plain(value)
    assert truncated is not _fits_a_preview(value)
    if not truncated:
        assert shown == value


def test_a_preview_says_what_it_cut() -> None:
    shown, truncated = plain({"text": "é" * 1000, "items": list(range(120)), "deep": [[[[1]]]]})
    assert truncated
    assert shown["text"] == "é" * PREVIEW_TEXT + "… (1000 characters)"
    assert shown["items"][-1] == f"… {120 - PREVIEW_ITEMS} more items"
    assert shown["deep"] == [[[[1]]]]
    assert plain(b"\x00\x01")[0] == "b'\\x00\\x01'"
    assert plain([math.inf, -math.inf, 2**64])[0] == ["inf", "-inf", str(2**64)]
    assert plain({1: "a", (1, 2): "b"}, limit=False)[0] == {"1": "a", "(1, 2)": "b"}
    huge, cut = plain([[i] * 10 for i in range(49)] * 5)  # more values than a preview holds
    assert cut
    assert len(json.dumps(huge)) < 20_000


def test_an_event_is_placed_at_its_time() -> None:
    clock = FakeClock()
    with SharedContext("times", clock=clock) as context:
        events: list[ContextEvent] = []
        context.subscribe("*", events.append)
        context.set("a", {"v": 1}, ttl=5, tags=["t"])
        context.set("b", 2)
        context.delete("b")
        clock.advance(6)
        context.purge_expired()
    set_a, _, delete_b, expire_a = events
    row = event_row(set_a, seen=None, matches=True)
    assert row["time"] == set_a.entry.updated
    assert row["value"] == {"v": 1}
    assert row["tags"] == ["t"]
    assert (row["revision"], row["action"], row["version"]) == (1, "set", 1)
    assert event_row(delete_b, seen=123.0, matches=True)["time"] == 123.0  # received live
    assert event_row(delete_b, seen=None, matches=True)["time"] is None  # replayed: unknown
    assert event_row(delete_b, seen=None, matches=True)["has_value"] is False
    assert event_row(expire_a, seen=999.0, matches=False)["time"] == expire_a.entry.expires
    assert entry_row(set_a.entry)["expires"] == set_a.entry.expires


def test_an_event_matches_the_filter_of_its_page() -> None:
    with SharedContext("filters") as context:
        events: list[ContextEvent] = []
        context.subscribe("*", events.append)
        context.set("mind:tim", 1, tags=["analysis"])
        context.set("plan", 2)
        context.destroy()
    tim, plan = events
    assert EventMatcher(None, None)(plan)
    assert EventMatcher(compile_glob("mind:*"), None)(tim)
    assert not EventMatcher(compile_glob("mind:*"), None)(plan)
    assert EventMatcher(None, "analysis")(tim)
    assert not EventMatcher(compile_glob("mind:*"), "other")(tim)


def test_the_rate_of_changes_over_the_last_minute() -> None:
    clock = FakeClock()
    rates = WriteRates(clock=clock)
    assert rates.record("s", 10) is None  # one reading
    clock.advance(0.5)
    assert rates.record("s", 11) is None  # too close to measure
    clock.advance(29.5)
    assert rates.record("s", 40) == (60.0, 30.0)  # 30 changes in 30 s
    for _ in range(10):
        clock.advance(10)
        rate = rates.record("s", 40)
    assert rate == (0.0, 60.0)  # nothing over the last minute
    clock.advance(10)
    assert rates.record("s", 100) == (60.0, 60.0)  # 60 in the last 60 s
    assert rates.record("s", 3) is None  # the session was made anew: readings start again
    rates.forget(["other"])
    clock.advance(5)
    assert rates.record("s", 3) is None
