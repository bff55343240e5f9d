"""Glob patterns mean exactly what they mean to Redis, in linear time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharedctx import InvalidPatternError
from sharedctx._glob import compile_glob


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("analysis:mind:*", "analysis:mind:tim", True),
        ("analysis:mind:*", "analysis:minds", False),
        ("a*b*c", "axxbyyc", True),
        ("a*b*c", "axxbyy", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("[a-c]x", "bx", True),
        ("[c-a]x", "bx", True),  # a reversed range counts, as in Redis
        ("[^a]x", "ax", False),
        ("[^a]x", "bx", True),
        ("[abc]", "d", False),
        ("h\\*llo", "h*llo", True),
        ("h\\*llo", "hello", False),
        ("[\\]]", "]", True),
        ("", "a", False),
        ("checkpoint:*:status", "checkpoint:cp-1:status", True),
        ("checkpoint:*:status", "checkpoint:cp-1:decision", False),
    ],
)
def test_glob_matches_like_redis(pattern: str, key: str, expected: bool) -> None:
    assert compile_glob(pattern).match(key) is expected


@pytest.mark.parametrize(
    ("pattern", "key"),
    [("a.b", "axb"), ("a+", "aa"), ("(a|b)", "a"), ("a$", "a"), ("^a", "a"), ("a{2}", "aa")],
)
def test_regex_metacharacters_are_plain_characters(pattern: str, key: str) -> None:
    assert not compile_glob(pattern).match(key)
    assert compile_glob(pattern).match(pattern)


def test_question_mark_matches_one_character_of_non_ascii_keys() -> None:
    assert compile_glob("caf?").match("café")
    assert compile_glob("?").match("日")
    assert not compile_glob("??").match("日")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("[abc", "never closed"),
        ("x[", "never closed"),
        ("[a-]", "never closed"),  # Redis reads 'a-]' as a range and runs off the end
        ("[]", "empty class"),
        ("a[]b", "empty class"),
        ("abc\\", "escape"),
        ("[abc\\", "never closed"),
        ("[\\]", "never closed"),  # the ']' is escaped: Redis runs off the end too
    ],
)
def test_malformed_pattern_raises_naming_the_problem(pattern: str, problem: str) -> None:
    with pytest.raises(InvalidPatternError, match=problem) as caught:
        compile_glob(pattern)
    assert isinstance(caught.value, ValueError)
    assert repr(pattern) in str(caught.value)


def test_non_str_pattern_raises() -> None:
    with pytest.raises(InvalidPatternError, match="must be a str"):
        compile_glob(b"a*")  # type: ignore[arg-type]


def test_literal_prefix_is_the_text_before_the_first_wildcard() -> None:
    assert compile_glob("analysis:mind:*").prefix == "analysis:mind:"
    assert compile_glob("analysis:mind:*").selects_prefix
    assert compile_glob("ab?d*").prefix == "ab"
    assert not compile_glob("ab?d*").selects_prefix
    assert compile_glob("a\\*b*").prefix == "a*b"
    assert compile_glob("exact:key").is_literal
    assert compile_glob("*x").prefix == ""


def test_pathological_pattern_does_not_backtrack() -> None:
    # Exponential in a backtracking matcher (CVE-2022-36021); here one linear pass
    # per star. pytest-timeout fails the test if this hangs.
    pattern = "*a" * 40 + "*b"
    assert not compile_glob(pattern).match("a" * 20000)
    assert compile_glob(pattern).match("a" * 20000 + "b")


# -- the same answers as a real Redis server ------------------------------------------

# Patterns are built from glob tokens (classes with ranges in either order, negations,
# escapes) and also from raw characters, so that odd parses are tried too.
SPECIALS = "abc:.-^]\\(|[*?"
CHAR = st.sampled_from(SPECIALS)
CLASS_ITEM = st.one_of(
    CHAR,
    st.tuples(CHAR, CHAR).map("-".join),
    CHAR.map(lambda char: "\\" + char),
)
CLASS = st.tuples(st.booleans(), st.lists(CLASS_ITEM, max_size=3)).map(
    lambda parts: "[" + ("^" if parts[0] else "") + "".join(parts[1]) + "]"
)
TOKEN = st.one_of(CHAR, CHAR.map(lambda char: "\\" + char), CLASS)
patterns = st.lists(TOKEN, max_size=6).map("".join) | st.text(alphabet=CHAR, max_size=8)

# Keys are never empty (and Redis's glob never matches an empty string except for a
# lone "*", which SCAN short-cuts).
keys = st.text(alphabet=CHAR, min_size=1, max_size=8) | st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=127), min_size=1, max_size=8
)


def _well_formed(pattern: str) -> bool:
    try:
        compile_glob(pattern)
    except InvalidPatternError:
        return False
    return True


@pytest.fixture(scope="module")
def redis_client(redis_server) -> Iterator[redis.Redis]:  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def _redis_matches(client: redis.Redis, pattern: str, candidates: list[str]) -> set[str]:
    # SSCAN MATCH runs Redis's own glob over the members of a set.
    name = "sharedctx-test:glob"
    with client.pipeline() as pipe:
        pipe.delete(name)
        pipe.sadd(name, *candidates)
        pipe.execute()
    matched: set[str] = set()
    cursor = 0
    while True:
        cursor, members = client.sscan(name, cursor, match=pattern, count=1000)
        matched.update(member.decode() for member in members)
        if cursor == 0:
            return matched


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(pattern=patterns.filter(_well_formed), candidates=st.lists(keys, min_size=1, max_size=12))
def test_glob_agrees_with_redis(
    redis_client: redis.Redis, pattern: str, candidates: list[str]
) -> None:
    ours = {key for key in candidates if compile_glob(pattern).match(key)}
    assert ours == _redis_matches(redis_client, pattern, candidates)


@settings(max_examples=100, deadline=None)
@given(literal=st.text(alphabet=CHAR, min_size=1, max_size=8), suffix=st.text(max_size=4))
def test_escaped_text_matches_itself_like_redis(
    redis_client: redis.Redis, literal: str, suffix: str
) -> None:
    pattern = "".join("\\" + char for char in literal) + "*"
    candidates = [literal, literal + suffix.encode("ascii", "replace").decode()]
    assert {key for key in candidates if compile_glob(pattern).match(key)} == _redis_matches(
        redis_client, pattern, candidates
    )
