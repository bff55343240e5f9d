"""Redis glob patterns over whole keys, matched in O(len(key) * len(pattern)) time.

The syntax is Redis's (``KEYS``/``SCAN MATCH``): ``*`` any run of characters, ``?``
one character, ``[abc]``, ``[a-z]`` (a reversed range counts too), ``[^a]``, and
``\\`` to escape the next character. Every other character, regex metacharacters
included, stands for itself. A class is parsed exactly as Redis parses it; where
Redis would silently accept a malformed pattern (an unclosed ``[``, an empty
``[]``, a trailing ``\\``), :func:`compile_glob` raises ``InvalidPatternError``.

Matching splits the pattern at its stars into fixed-length segments and finds each
segment leftmost after the previous one. That is exact for globs and never
backtracks across stars, so no pattern can take exponential time (Redis's own glob
once could: CVE-2022-36021). A segment of plain characters is found with ``str``
methods, one with ``?`` or classes with a regex that has no quantifier.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from sharedctx._errors import InvalidPatternError

__all__ = ["Glob", "compile_glob", "escape"]

# A segment is the text between two stars: either plain characters (str) or, if it
# holds ``?`` or a class, a compiled regex of fixed length with its length.
_Segment = str | tuple["re.Pattern[str]", int]


class Glob:
    """A compiled glob pattern. Create with :func:`compile_glob`."""

    __slots__ = ("_match", "is_literal", "pattern", "prefix", "selects_prefix")

    pattern: str
    prefix: str
    """Literal text that every matching key starts with (may be empty)."""
    is_literal: bool
    """The pattern has no wildcard: it matches exactly the key ``prefix``."""
    selects_prefix: bool
    """The pattern is ``prefix`` then ``*``: every key starting with ``prefix`` matches."""

    def __init__(self, pattern: str, prefix: str, segments: list[_Segment], starred: bool) -> None:
        self.pattern = pattern
        self.prefix = prefix
        plain_start = isinstance(segments[0], str)
        self.is_literal = not starred and plain_start
        self.selects_prefix = starred and plain_start and segments[1:] == [""]
        self._match = _matcher(segments, starred)

    def match(self, key: str) -> bool:
        """Whether ``key`` matches the whole pattern."""
        return self._match(key)

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"


def compile_glob(pattern: str) -> Glob:
    """Parse ``pattern`` (cached); raise ``InvalidPatternError`` if it is malformed."""
    if not isinstance(pattern, str):  # before the cache, which needs a hashable pattern
        raise InvalidPatternError(f"a pattern must be a str, not {type(pattern).__name__}")
    return _compile(pattern)


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> Glob:
    segments: list[_Segment] = []
    parts: list[str] = []  # regex source of the current segment
    literal: list[str] = []  # its plain text, while it has no wildcard
    plain = True
    starred = False
    prefix: str | None = None  # set when the first wildcard is seen

    def close_segment() -> None:
        if plain:
            segments.append("".join(literal))
        else:
            segments.append((re.compile("".join(parts), re.DOTALL), len(parts)))

    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char in "*?[" and prefix is None:
            prefix = "".join(literal)
        if char == "*":
            while i < n and pattern[i] == "*":
                i += 1
            close_segment()
            parts, literal, plain, starred = [], [], True, True
            continue
        if char == "?":
            parts.append(".")
            plain = False
            i += 1
        elif char == "[":
            source, i = _parse_class(pattern, i + 1)
            parts.append(source)
            plain = False
        else:
            if char == "\\":
                if i + 1 == n:
                    raise InvalidPatternError(
                        f"pattern {pattern!r} ends with an escape character '\\'"
                    )
                i += 1
                char = pattern[i]
            parts.append(re.escape(char))
            literal.append(char)
            i += 1
    close_segment()
    return Glob(pattern, "".join(literal) if prefix is None else prefix, segments, starred)


def escape(text: str) -> str:
    """A pattern that matches exactly ``text`` (its ``*?[]\\`` escaped)."""
    return "".join("\\" + char if char in _SPECIAL else char for char in text)


_SPECIAL = frozenset("*?[]\\")


def _parse_class(pattern: str, i: int) -> tuple[str, int]:
    """Parse a class whose ``[`` is at ``i - 1``, as Redis's ``stringmatchlen`` does.

    Return the regex source of the class and the index after its ``]``.
    """
    start, n = i - 1, len(pattern)
    negated = i < n and pattern[i] == "^"
    if negated:
        i += 1
    items: list[str] = []
    while True:
        if i >= n:
            raise InvalidPatternError(
                f"pattern {pattern!r} has a '[' at position {start} that is never closed"
            )
        char = pattern[i]
        if char == "\\" and n - i >= 2:
            items.append(_char(pattern[i + 1]))
            i += 2
        elif char == "]":
            break
        elif n - i >= 3 and pattern[i + 1] == "-":
            low, high = sorted((pattern[i], pattern[i + 2]))
            items.append(f"{_char(low)}-{_char(high)}")
            i += 3
        else:
            items.append(_char(char))
            i += 1
    if not items:
        if not negated:
            raise InvalidPatternError(
                f"pattern {pattern!r} has an empty class '[]' at position {start}"
            )
        return ".", i + 1  # Redis: '[^]' matches any one character
    return f"[{'^' if negated else ''}{''.join(items)}]", i + 1


def _char(char: str) -> str:
    return f"\\U{ord(char):08x}"


def _matcher(segments: list[_Segment], starred: bool) -> Callable[[str], bool]:
    if not starred:
        (only,) = segments
        if isinstance(only, str):
            return only.__eq__
        regex, length = only
        return lambda key: len(key) == length and regex.match(key) is not None

    first, *middle, last = segments
    first_len = _length(first)
    last_len = _length(last)
    fixed = first_len + last_len

    def match(key: str) -> bool:
        end = len(key) - last_len  # where the last segment must start
        if end < first_len or not _at(first, key, 0) or not _at(last, key, end):
            return False
        position = first_len
        for segment in middle:
            if isinstance(segment, str):
                found = key.find(segment, position, end)
                if found < 0:
                    return False
                position = found + len(segment)
            else:
                regex, length = segment
                hit = regex.search(key, position, end)
                if hit is None:
                    return False
                position = hit.start() + length
        return True

    if not middle and fixed == 0:
        return lambda key: True
    return match


def _length(segment: _Segment) -> int:
    return len(segment) if isinstance(segment, str) else segment[1]


def _at(segment: _Segment, key: str, position: int) -> bool:
    if isinstance(segment, str):
        return key.startswith(segment, position)
    return segment[0].match(key, position) is not None
