"""Every error says what was wrong and, where there is one, what to do next: the
option or argument that fixes it, on every backend. (The command line's messages are
tested in tests/cli/.)"""

from __future__ import annotations

import pytest

from sharedctx import (
    BackendUnavailableError,
    CapacityError,
    ContextClosedError,
    ContextError,
    SharedContext,
    ValueTooLargeError,
    VersionConflictError,
    WatchOverflowError,
)
from sharedctx.testing import ContextFactory


def test_a_value_too_large_names_max_entry_bytes(make_context: ContextFactory) -> None:
    ctx = make_context(max_entry_bytes=100)
    with pytest.raises(ValueTooLargeError, match=r"larger max_entry_bytes=") as refused:
        ctx.set("big", "x" * 200)
    assert "'big'" in str(refused.value)
    assert "over the limit of 100 bytes" in str(refused.value)


def test_a_full_context_names_max_entries(make_context: ContextFactory) -> None:
    ctx = make_context(max_entries=1, eviction="reject")
    ctx.set("a", 1)
    with pytest.raises(CapacityError, match=r"at most 1 entries.*larger max_entries="):
        ctx.set("b", 2)


def test_an_import_conflict_names_overwrite(ctx: SharedContext) -> None:
    ctx.set("a", 1)
    with pytest.raises(VersionConflictError, match=r"overwrite=True"):
        ctx.import_records([{"key": "a", "value": 2}])


def test_a_closed_context_says_to_open_a_new_one(make_context: ContextFactory) -> None:
    ctx = make_context()
    ctx.close()
    with pytest.raises(ContextClosedError, match=r"is closed: open a new SharedContext"):
        ctx.get("a")


def test_a_watch_that_fell_behind_names_max_pending(ctx: SharedContext) -> None:
    with ctx.watch("*", max_pending=2) as watch:
        for n in range(5):
            ctx.set(f"k{n}", n)
        with pytest.raises(WatchOverflowError, match=r"larger max_pending="):
            [watch.get(timeout=5) for _ in range(5)]


def test_disabled_notifications_say_how_to_have_them(make_context: ContextFactory) -> None:
    ctx = make_context(notifications=False)
    with pytest.raises(ContextError, match=r"without notifications=False"):
        ctx.watch("*")


def test_an_unreachable_server_says_what_to_check() -> None:
    with pytest.raises(BackendUnavailableError) as refused:
        SharedContext("s", backend="redis://127.0.0.1:1/0")
    message = str(refused.value)
    assert "check that the server is running and reachable" in message
    assert ".)" not in message  # redis-py's sentence, inside ours
