"""The core API of SharedContext: reads, writes, versions, queries, lifecycle."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from sharedctx import (
    KEEP_TTL,
    ContextClosedError,
    ContextEntry,
    ContextError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidPatternError,
    SessionLostError,
    SharedContext,
    VersionConflictError,
)
from sharedctx.testing._base import ContextFactory, SuiteBase


class ContextTests(SuiteBase):
    """The core API of SharedContext: reads, writes, versions, queries, lifecycle."""

    def test_a_value_set_by_one_component_is_read_by_another(self, ctx: SharedContext) -> None:
        ctx.set("extraction:data", {"sources": 3}, source="extraction")
        assert ctx.get("extraction:data") == {"sources": 3}

    def test_get_of_a_missing_key_returns_the_default(self, ctx: SharedContext) -> None:
        assert ctx.get("missing") is None
        assert ctx.get("missing", "fallback") == "fallback"
        assert ctx.get_entry("missing") is None

    def test_set_returns_the_stored_entry_with_metadata(self, ctx: SharedContext) -> None:
        before = datetime.now(UTC)
        entry = ctx.set("k", [1, 2], source="mind:tim", tags=["mind", "phase:analysis"], ttl=60)
        assert isinstance(entry, ContextEntry)
        assert entry.key == "k"
        assert entry.value == [1, 2]
        assert entry.metadata.source == "mind:tim"
        assert entry.metadata.version == 1
        assert entry.metadata.tags == ("mind", "phase:analysis")
        assert entry.ttl == 60
        assert entry.created_at.tzinfo is UTC
        assert before - timedelta(seconds=1) <= entry.created_at <= datetime.now(UTC)
        assert entry.updated_at == entry.created_at
        assert entry.expires_at is not None
        assert entry.expires_at - entry.updated_at == timedelta(seconds=60)
        assert entry.size > 0
        assert ctx.get_entry("k") == entry

    def test_entries_are_immutable(self, ctx: SharedContext) -> None:
        entry = ctx.set("k", 1)
        with pytest.raises(AttributeError):
            entry.key = "other"  # type: ignore[misc]
        with pytest.raises(AttributeError):
            entry.metadata.version = 7  # type: ignore[misc]

    def test_version_starts_at_one_and_grows_by_one_per_write(self, ctx: SharedContext) -> None:
        versions = [ctx.set("k", n).metadata.version for n in range(4)]
        assert versions == [1, 2, 3, 4]

    def test_created_at_is_kept_across_updates(self, ctx: SharedContext) -> None:
        first = ctx.set("k", 1)
        second = ctx.set("k", 2)
        assert second.created_at == first.created_at
        assert second.updated_at >= first.updated_at

    def test_after_a_delete_the_key_starts_again_at_version_one(self, ctx: SharedContext) -> None:
        ctx.set("k", 1)
        ctx.set("k", 2)
        assert ctx.delete("k") is True
        assert ctx.set("k", 3).metadata.version == 1

    def test_source_defaults_to_unknown_and_tags_are_replaced(self, ctx: SharedContext) -> None:
        ctx.set("k", 1, source="a", tags=["x", "y"])
        entry = ctx.set("k", 2)
        assert entry.metadata.source == "unknown"
        assert entry.metadata.tags == ()
        assert ctx.find_by_tag("x") == []

    def test_tags_are_deduplicated_in_order(self, ctx: SharedContext) -> None:
        assert ctx.set("k", 1, tags=["b", "a", "b"]).metadata.tags == ("b", "a")
        assert ctx.set("k", 1, tags={"b", "a"}).metadata.tags == ("a", "b")

    def test_if_version_stores_only_at_the_expected_version(self, ctx: SharedContext) -> None:
        assert ctx.set("k", "a", if_version=0).metadata.version == 1
        assert ctx.set("k", "b", if_version=1).metadata.version == 2
        with pytest.raises(VersionConflictError) as caught:
            ctx.set("k", "c", if_version=1)
        assert (caught.value.key, caught.value.expected, caught.value.actual) == ("k", 1, 2)
        assert "'k'" in str(caught.value)
        assert ctx.get("k") == "b"
        assert ctx.get_entry("k").metadata.version == 2  # type: ignore[union-attr]

    def test_if_version_zero_means_only_if_absent(self, ctx: SharedContext) -> None:
        ctx.set("k", "first")
        with pytest.raises(VersionConflictError) as caught:
            ctx.set("k", "second", if_version=0)
        assert caught.value.actual == 1
        with pytest.raises(VersionConflictError) as missing:
            ctx.set("absent", 1, if_version=3)
        assert missing.value.actual == 0
        assert not ctx.has("absent")

    def test_a_key_of_1024_characters_is_fine(self, ctx: SharedContext) -> None:
        key = "k" * 1024
        ctx.set(key, 1)
        assert ctx.get(key) == 1

    def test_has_contains_and_len_count_live_entries(self, ctx: SharedContext) -> None:
        assert len(ctx) == 0
        ctx.set("a", 1)
        ctx.set("b", None)
        assert ctx.has("a")
        assert "b" in ctx
        assert "c" not in ctx
        assert len(ctx) == 2
        assert ctx.delete("a") is True
        assert ctx.delete("a") is False
        assert len(ctx) == 1

    def test_none_is_a_value_distinct_from_absence(self, ctx: SharedContext) -> None:
        ctx.set("k", None)
        assert ctx.has("k")
        assert ctx.get("k", "default") is None

    def test_get_multiple_returns_the_present_keys(self, ctx: SharedContext) -> None:
        ctx.set("a", 1)
        ctx.set("b", {"x": [1]})
        assert ctx.get_multiple(["a", "b", "c"]) == {"a": 1, "b": {"x": [1]}}
        assert ctx.get_multiple([]) == {}
        with pytest.raises(InvalidKeyError):
            ctx.get_multiple("ab")  # a str is not a collection of keys here

    def test_set_multiple_stores_all_with_shared_options(self, ctx: SharedContext) -> None:
        entries = ctx.set_multiple({"a": 1, "b": 2}, source="bulk", tags=["t"], ttl=30)
        assert [entry.key for entry in entries] == ["a", "b"]
        assert all(entry.metadata.source == "bulk" and entry.ttl == 30 for entry in entries)
        assert [entry.key for entry in ctx.find_by_tag("t")] == ["a", "b"]
        assert ctx.set_multiple({}) == []

    def test_set_multiple_is_all_or_nothing(self, ctx: SharedContext) -> None:
        ctx.set("a", "old")
        with pytest.raises(TypeError):
            ctx.set_multiple({"a": "new", "b": 2, "c": object()})
        assert ctx.get("a") == "old"
        assert not ctx.has("b")
        with pytest.raises(InvalidArgumentError):
            ctx.set_multiple([("a", 1)])  # type: ignore[arg-type]

    def test_expire_rejects_keep_ttl(self, ctx: SharedContext) -> None:
        ctx.set("k", 1)
        with pytest.raises(ContextError):
            ctx.expire("k", KEEP_TTL)  # type: ignore[arg-type]

    def test_find_by_pattern_returns_matching_entries_sorted_by_key(
        self, ctx: SharedContext
    ) -> None:
        for mind in ["zeta", "alpha", "mid:dle"]:
            ctx.set(f"analysis:mind:{mind}", {"mind": mind})
        ctx.set("analysis:orchestrator", 1)
        ctx.set("analysis:minds", 1)
        found = ctx.find_by_pattern("analysis:mind:*")
        assert [entry.key for entry in found] == [
            "analysis:mind:alpha",
            "analysis:mind:mid:dle",
            "analysis:mind:zeta",
        ]
        assert found[0].value == {"mind": "alpha"}
        assert ctx.keys("analysis:mind:?????") == ["analysis:mind:alpha"]
        assert ctx.keys("*:orchestrator") == ["analysis:orchestrator"]
        assert ctx.keys("analysis:orchestrator") == ["analysis:orchestrator"]
        assert ctx.keys("nothing*") == []
        assert ctx.keys() == sorted(ctx.keys())
        assert len(ctx.keys()) == 5

    def test_patterns_treat_regex_metacharacters_as_text(self, ctx: SharedContext) -> None:
        ctx.set("a.b", 1)
        ctx.set("axb", 2)
        ctx.set("(x)", 3)
        assert ctx.keys("a.b") == ["a.b"]
        assert ctx.keys("(*") == ["(x)"]

    def test_malformed_patterns_raise(self, ctx: SharedContext) -> None:
        for call in (
            ctx.find_by_pattern,
            ctx.keys,
            ctx.watch,
            lambda pattern: ctx.subscribe(pattern, print),
        ):
            for bad in ("analysis:[mind", ["a*"], None, 5):
                with pytest.raises(InvalidPatternError):
                    call(bad)  # type: ignore[arg-type]

    def test_find_by_tag_returns_entries_sorted_by_key(self, ctx: SharedContext) -> None:
        ctx.set("b", 1, tags=["mind"])
        ctx.set("a", 2, tags=["mind", "x"])
        ctx.set("c", 3, tags=["x"])
        assert [entry.key for entry in ctx.find_by_tag("mind")] == ["a", "b"]
        ctx.delete("a")
        assert [entry.key for entry in ctx.find_by_tag("mind")] == ["b"]
        assert ctx.find_by_tag("nope") == []

    def test_clear_removes_everything_and_returns_the_count(self, ctx: SharedContext) -> None:
        ctx.set_multiple({"a": 1, "b": 2}, tags=["t"])
        assert ctx.clear() == 2
        assert len(ctx) == 0
        assert ctx.keys() == []
        assert ctx.find_by_tag("t") == []
        assert ctx.set("a", 1).metadata.version == 1

    def test_stats_count_reads_and_changes(self, ctx: SharedContext) -> None:
        ctx.set("a", 1)
        ctx.get("a")
        ctx.get("missing")
        ctx.get_multiple(["a", "b"])
        stats = ctx.stats()
        assert (stats.entries, stats.hits, stats.misses) == (1, 2, 2)
        assert stats.revision >= 1
        subscription = ctx.subscribe("*", lambda event: None)
        assert ctx.stats().subscriptions == 1
        ctx.unsubscribe(subscription)
        assert ctx.stats().subscriptions == 0
        with pytest.raises(AttributeError):
            stats.hits = 5  # type: ignore[misc]

    def test_revision_grows_with_every_change(self, ctx: SharedContext) -> None:
        first = ctx.stats().revision
        ctx.set("a", 1)
        ctx.set("a", 2)
        ctx.delete("a")
        assert ctx.stats().revision >= first + 3

    def test_closed_context_refuses_every_call(self, make_context: ContextFactory) -> None:
        ctx = make_context()
        ctx.set("k", 1)
        subscription = ctx.subscribe("*", lambda event: None)
        ctx.close()
        ctx.close()  # idempotent
        ctx.destroy()  # idempotent after close too
        assert ctx.closed
        calls = [
            lambda: ctx.get("k"),
            lambda: ctx.set("k", 2),
            lambda: ctx.get_entry("k"),
            lambda: ctx.has("k"),
            lambda: "k" in ctx,
            lambda: len(ctx),
            lambda: ctx.delete("k"),
            lambda: ctx.update("k", lambda value: value),
            lambda: ctx.get_or_set("k", lambda: 1),
            lambda: ctx.get_multiple(["k"]),
            lambda: ctx.set_multiple({"k": 1}),
            lambda: ctx.expire("k", 1),
            lambda: ctx.find_by_pattern("*"),
            lambda: ctx.find_by_tag("t"),
            lambda: ctx.keys(),
            lambda: ctx.subscribe("*", print),
            lambda: ctx.unsubscribe(subscription),
            lambda: ctx.watch(),
            lambda: ctx.wait_for("k", timeout=0),
            lambda: ctx.purge_expired(),
            lambda: ctx.clear(),
            lambda: ctx.stats(),
        ]
        for call in calls:
            with pytest.raises(ContextClosedError):
                call()  # type: ignore[no-untyped-call]

    # -- handles: every context of a session id shares the session ------------------

    def test_two_contexts_of_one_session_id_share_it(self, make_context: ContextFactory) -> None:
        writer = make_context()
        reader = make_context(writer.session_id)
        writer.set("k", 1)
        assert reader.get("k") == 1
        reader.set("k", 2)
        assert writer.get("k") == 2

    def test_close_releases_a_handle_and_keeps_the_data(self, make_context: ContextFactory) -> None:
        first = make_context()
        first.set("k", 1)
        first.close()
        assert make_context(first.session_id).get("k") == 1

    def test_destroy_deletes_for_every_handle_and_each_is_told_once(
        self, make_context: ContextFactory
    ) -> None:
        doomed = make_context()
        other = make_context(doomed.session_id)
        doomed.set("k", 1)
        assert other.get("k") == 1
        doomed.destroy()
        with pytest.raises(SessionLostError, match="destroy"):
            other.get("k")
        assert other.get("k") is None  # once: it goes on with the session empty
        other.set("k", 2)
        assert make_context(doomed.session_id).get("k") == 2

    def test_repr_names_the_session(self, ctx: SharedContext) -> None:
        assert ctx.session_id in repr(ctx)

    def test_tags_counts_the_live_entries_that_carry_each_tag(self, ctx: SharedContext) -> None:
        assert ctx.tags() == {}
        ctx.set("a", 1, tags=["mind", "phase:analysis"])
        ctx.set("b", 2, tags=["mind"])
        ctx.set("c", 3, tags=["zz", "é"])
        ctx.set("c", 4, tags=["zz"])  # a rewrite drops the tags it no longer has
        ctx.delete("b")
        assert ctx.tags() == {"mind": 1, "phase:analysis": 1, "zz": 1}
        assert list(ctx.tags()) == sorted(ctx.tags())
        ctx.set("d", 5, tags=["mind"], ttl=0.05)
        assert ctx.tags()["mind"] == 2
        time.sleep(0.1)
        assert ctx.tags()["mind"] == 1  # an expired entry is not counted
