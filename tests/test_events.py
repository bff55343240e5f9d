"""Subscriptions and watches: every matching change, once, in order, outside the lock."""

from __future__ import annotations

import logging

import pytest

from sharedctx import (
    ContextEvent,
    SharedContext,
    WatchOverflowError,
)
from sharedctx._events import EventHub, Subscription
from sharedctx._glob import compile_glob


def test_a_raising_callback_is_logged_and_harms_nobody(
    ctx: SharedContext, caplog: pytest.LogCaptureFixture
) -> None:
    healthy: list[ContextEvent] = []

    def broken(event: ContextEvent) -> None:
        raise RuntimeError(f"subscriber bug on {event.key}")

    ctx.subscribe("*", broken)
    ctx.subscribe("*", healthy.append)
    with caplog.at_level(logging.ERROR, logger="sharedctx"):
        entry = ctx.set("k", 1)
    assert entry.value == 1
    assert len(healthy) == 1
    [record] = [r for r in caplog.records if "failed on the set of revision" in r.getMessage()]
    assert record.name == "sharedctx"
    # Named by its type and where it was raised; its message may name a key, which is
    # logged only with Telemetry(record_keys=True) (tests/test_logging.py).
    assert "RuntimeError" in record.getMessage()
    assert "in broken" in record.getMessage()
    assert "subscriber bug on k" not in record.getMessage()


# -- watches ---------------------------------------------------------------------------


def test_a_failing_error_handler_does_not_keep_the_others_from_hearing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # fail_all tells every subscription that events were lost; one whose on_error
    # raises (an asyncio waiter whose loop has closed) is logged like a failing callback.
    hub = EventHub()
    heard: list[str] = []

    def broken(error: Exception) -> None:
        raise RuntimeError("Event loop is closed")

    hub.add(Subscription(compile_glob("a*"), heard.append, broken), 0)
    hub.add(Subscription(compile_glob("b*"), heard.append, lambda e: heard.append(str(e))), 0)
    with caplog.at_level(logging.ERROR, logger="sharedctx"):
        hub.fail_all(WatchOverflowError("events 1 to 5 were trimmed"))
    assert heard == ["events 1 to 5 were trimmed"]
    assert "Event loop is closed" in caplog.text
