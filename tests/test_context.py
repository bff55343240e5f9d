"""The core API of SharedContext: reads, writes, versions, queries, lifecycle."""

from __future__ import annotations

import pytest

from sharedctx import (
    ContextClosedError,
    InvalidArgumentError,
    InvalidKeyError,
    SharedContext,
)

from .conftest import FakeClock


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True])
def test_if_version_must_be_a_non_negative_int(ctx: SharedContext, bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="if_version"):
        ctx.set("k", 1, if_version=bad)  # type: ignore[arg-type]
    assert not ctx.has("k")


@pytest.mark.parametrize(
    "bad_key", ["", "x" * 1025, None, 42, b"bytes", ("tuple",), "\udcff surrogate"]
)
def test_bad_keys_raise_invalid_key_error_everywhere(ctx: SharedContext, bad_key: object) -> None:
    calls = [
        lambda: ctx.get(bad_key),  # type: ignore[arg-type]
        lambda: ctx.set(bad_key, 1),  # type: ignore[arg-type]
        lambda: ctx.delete(bad_key),  # type: ignore[arg-type]
        lambda: ctx.has(bad_key),  # type: ignore[arg-type]
        lambda: ctx.get_entry(bad_key),  # type: ignore[arg-type]
        lambda: ctx.expire(bad_key, 5),  # type: ignore[arg-type]
        lambda: ctx.update(bad_key, lambda value: value),  # type: ignore[arg-type]
        lambda: ctx.set_multiple({bad_key: 1}),  # type: ignore[dict-item]
        lambda: ctx.get_multiple([bad_key]),  # type: ignore[list-item]
    ]
    for call in calls:
        with pytest.raises(InvalidKeyError) as caught:
            call()
        assert isinstance(caught.value, ValueError)
    assert len(ctx) == 0


@pytest.mark.parametrize("bad_tags", ["single-string", [""], [1], ["ok", None], 5])
def test_bad_tags_raise_invalid_key_error(ctx: SharedContext, bad_tags: object) -> None:
    with pytest.raises(InvalidKeyError):
        ctx.set("k", 1, tags=bad_tags)  # type: ignore[arg-type]
    assert not ctx.has("k")


@pytest.mark.parametrize("bad_tag", ["", 1, None, ["a"]])
def test_find_by_tag_rejects_a_bad_tag(ctx: SharedContext, bad_tag: object) -> None:
    with pytest.raises(InvalidKeyError, match="tag"):
        ctx.find_by_tag(bad_tag)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_source", ["", 5, b"x"])
def test_bad_source_is_rejected(ctx: SharedContext, bad_source: object) -> None:
    with pytest.raises(InvalidArgumentError, match="source"):
        ctx.set("k", 1, source=bad_source)  # type: ignore[arg-type]
    assert not ctx.has("k")


def test_expire_changes_the_ttl_without_a_new_version(
    clocked: SharedContext, clock: FakeClock
) -> None:
    entry = clocked.set("k", 1, ttl=10)
    assert clocked.expire("k", 100) is True
    after = clocked.get_entry("k")
    assert after is not None
    assert after.metadata.version == entry.metadata.version
    assert after.ttl == 100
    clock.advance(50)
    assert clocked.get("k") == 1
    assert clocked.expire("k", None) is True
    clock.advance(1000)
    assert clocked.get("k") == 1
    assert clocked.get_entry("k").expires_at is None  # type: ignore[union-attr]
    assert clocked.expire("missing", 5) is False


def test_with_block_closes_the_context() -> None:
    with SharedContext("s") as ctx:
        ctx.set("k", 1)
    assert ctx.closed
    with pytest.raises(ContextClosedError):
        ctx.get("k")


def test_memory_destroy_drops_the_data() -> None:
    ctx = SharedContext("s")
    ctx.set("k", 1)
    ctx.destroy()
    with pytest.raises(ContextClosedError):
        ctx.get("k")
    assert SharedContext("s").get("k") is None  # gone for every handle of the session


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"session_id": ""}, "session_id"),
        ({"session_id": 5}, "session_id"),
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": 1.5}, "max_entries"),
        ({"max_entry_bytes": -1}, "max_entry_bytes"),
        ({"eviction": "random"}, "eviction"),
        ({"default_ttl": 0}, "ttl"),
        ({"clock": 5}, "clock"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, object], problem: str) -> None:
    arguments: dict[str, object] = {"session_id": "s", **options}
    with pytest.raises(InvalidArgumentError, match=problem):
        SharedContext(**arguments)  # type: ignore[arg-type]
