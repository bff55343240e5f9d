"""Queries in pages: ``limit`` bounds what comes back, ``after`` continues after a key,
in key order, on every backend."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharedctx import InvalidArgumentError, MemoryBackend, SharedContext
from sharedctx._glob import compile_glob, escape


@pytest.fixture
def filled(ctx: SharedContext) -> SharedContext:
    ctx.set_multiple({f"item:{n:03}": n for n in range(25)}, tags=["all"])
    ctx.set_multiple({f"other:{n}": n for n in range(5)})
    return ctx


def pages(fetch, size: int) -> list[list[str]]:  # type: ignore[no-untyped-def]
    found, after = [], None
    while True:
        page = fetch(limit=size, after=after)
        keys = [item if isinstance(item, str) else item.key for item in page]
        if keys:
            found.append(keys)
        if len(keys) < size:
            return found
        after = keys[-1]


@pytest.mark.parametrize("size", [1, 7, 25, 100])
def test_pages_of_a_pattern_cover_it_once_in_key_order(filled: SharedContext, size: int) -> None:
    expected = [f"item:{n:03}" for n in range(25)]
    for fetch in (
        lambda **page: filled.find_by_pattern("item:*", **page),
        lambda **page: filled.keys("item:*", **page),
        lambda **page: filled.find_by_tag("all", **page),
    ):
        got = pages(fetch, size)
        assert [key for page in got for key in page] == expected
        assert all(len(page) <= size for page in got)


def test_a_general_pattern_is_paged_after_filtering(filled: SharedContext) -> None:
    got = pages(lambda **page: filled.find_by_pattern("*:00?", **page), 4)
    assert [key for page in got for key in page] == [f"item:00{n}" for n in range(10)]


def test_after_may_name_any_key_not_only_a_stored_one(filled: SharedContext) -> None:
    assert filled.keys("item:*", after="item:0095", limit=2) == ["item:010", "item:011"]
    assert filled.keys("item:*", after="zzz") == []
    assert filled.keys("item:*", after="a", limit=1) == ["item:000"]
    assert filled.keys("item:005", after="item:004") == ["item:005"]
    assert filled.keys("item:005", after="item:005") == []


async def test_paging_has_awaitable_twins(filled: SharedContext) -> None:
    first = await filled.afind_by_pattern("item:*", limit=3)
    rest = await filled.akeys("item:*", after=first[-1].key, limit=2)
    assert [entry.key for entry in first] + rest == [f"item:{n:03}" for n in range(5)]
    assert [e.key for e in await filled.afind_by_tag("all", limit=1, after="item:023")] == [
        "item:024"
    ]


def test_bad_pages_are_refused(filled: SharedContext) -> None:
    for bad in (0, -1, 1.5, "3", True):
        with pytest.raises(InvalidArgumentError, match="limit"):
            filled.keys("*", limit=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="after key"):
        filled.keys("*", after="")
    with pytest.raises(ValueError, match="after key"):
        filled.find_by_tag("all", after=3)  # type: ignore[arg-type]


# Keys near the edges of a prefix's range: the characters just below and above a
# prefix's last one, the least and the greatest code point.
EDGE_CHARS = st.sampled_from(["a", "b", "`", "\x00", "\x7f", "é", chr(sys.maxunicode)])
EDGE_KEYS = st.text(alphabet=EDGE_CHARS, min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    stored=st.sets(EDGE_KEYS, max_size=12),
    prefix=st.text(alphabet=EDGE_CHARS, max_size=3),
    tail=st.sampled_from(["*", "?*", "*a", "?"]),
    after=st.none() | EDGE_KEYS,
    limit=st.none() | st.integers(1, 5),
)
def test_a_pattern_s_page_is_the_model_s_at_the_edges_of_its_prefix(
    stored: set[str], prefix: str, tail: str, after: str | None, limit: int | None
) -> None:
    pattern = escape(prefix) + tail
    glob = compile_glob(pattern)
    expected = sorted(key for key in stored if glob.match(key) and (after is None or key > after))
    expected = expected[:limit]
    with SharedContext("edges", backend=MemoryBackend()) as ctx:  # a store per example
        ctx.set_multiple(dict.fromkeys(stored, 0))
        assert ctx.keys(pattern, limit=limit, after=after) == expected
        assert [entry.key for entry in ctx.find_by_pattern(pattern, limit=limit, after=after)] == (
            expected
        )
