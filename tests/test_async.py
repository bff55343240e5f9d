"""The awaitable twins: same behaviour as the sync API, shared with threads."""

from __future__ import annotations

import asyncio

from sharedctx import (
    SharedContext,
)

TWINS = [
    "get",
    "get_entry",
    "set",
    "get_or_set",
    "update",
    "delete",
    "has",
    "get_multiple",
    "set_multiple",
    "expire",
    "find_by_pattern",
    "find_by_tag",
    "keys",
    "purge_expired",
    "clear",
    "stats",
]


def test_every_read_or_write_has_an_awaitable_twin() -> None:
    for name in TWINS:
        twin = getattr(SharedContext, f"a{name}")
        assert asyncio.iscoroutinefunction(twin), name
        assert twin.__doc__, name
    assert asyncio.iscoroutinefunction(SharedContext.await_for)
