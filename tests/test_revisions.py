"""Revisions: every change takes the session's next one, and waits and watches can
start from one, so that a pipeline run again on a session counts only its own results.
"""

from __future__ import annotations

import pytest

from sharedctx import (
    MemoryBackend,
    SharedContext,
    WatchOverflowError,
)


def test_a_watch_from_before_what_is_kept_overflows_at_once() -> None:
    with SharedContext("s", backend=MemoryBackend(history=3)) as ctx:
        for n in range(5):
            ctx.set("k", n)
        with pytest.raises(WatchOverflowError, match="no longer kept"):
            ctx.watch(since=1)
        with ctx.watch(since=2) as watch:  # 3, 4, 5 are kept
            assert [watch.get(timeout=1).revision for _ in range(3)] == [3, 4, 5]
