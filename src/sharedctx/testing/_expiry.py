"""TTLs: expired entries are never seen, and they expire by themselves."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from sharedctx import ContextEvent, SharedContext
from sharedctx.testing._base import ContextFactory, SuiteBase

TEN_YEARS = 10 * 365.25 * 24 * 3600


class ExpiryTests(SuiteBase):
    """TTLs: expired entries are never seen, and they expire by themselves."""

    def test_the_longest_ttl_is_ten_years(self, ctx: SharedContext) -> None:
        entry = ctx.set("k", 1, ttl=TEN_YEARS)
        assert entry.expires_at is not None
        assert entry.expires_at.year >= 2030
        assert ctx.get("k") == 1
        assert ctx.expire("k", timedelta(days=3652)) is True

    def test_other_per_key_errors_name_the_key_too(self, ctx: SharedContext) -> None:
        with pytest.raises(ValueError, match="source for key 'k'"):
            ctx.set("k", 1, source="")
        with pytest.raises(ValueError, match="tags for key 'k'"):
            ctx.set("k", 1, tags="t")
        with pytest.raises(ValueError, match="tag for key 'k'"):
            ctx.set("k", 1, tags=[""])
        with pytest.raises(ValueError, match="if_version for key 'k'"):
            ctx.set("k", 1, if_version=-1)
        with pytest.raises(ValueError, match="key 'k'"):
            ctx.update("k", "not callable")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="key 'k'"):
            ctx.get_or_set("k", "not callable")  # type: ignore[arg-type]
        assert not ctx.has("k")

    def test_expiry_is_active_without_any_call_touching_the_key(
        self,
        make_context: ContextFactory,
    ) -> None:
        ctx = make_context()
        expired = threading.Event()
        received: list[ContextEvent] = []

        def on_event(event: ContextEvent) -> None:
            if event.action == "expire":
                received.append(event)
                expired.set()

        ctx.subscribe("*", on_event)
        ctx.set("short", {"v": 1}, ttl=0.05)
        # Nothing reads the context while we wait: only the shared timer can expire it.
        assert expired.wait(timeout=5), "no expire event arrived"
        assert received[0].key == "short"
        assert received[0].entry.ttl == 0.05
        assert received[0].entry.value is None  # an expired value is gone, from events too
