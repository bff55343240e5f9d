"""Argument checks shared by every backend: keys, tags, TTLs, limits, timeouts.

Each check returns the normalized value or raises an ``InvalidArgumentError``
subclass whose message names the argument and what was wrong with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sharedctx._errors import InvalidArgumentError, InvalidKeyError, InvalidTTLError
from sharedctx._types import KEEP_TTL, KeepTTL

__all__ = [
    "MAX_KEY_LENGTH",
    "check_version",
    "check_key",
    "check_keys",
    "check_positive_int",
    "check_session_id",
    "check_source",
    "check_tags",
    "check_timeout",
    "check_ttl",
]

MAX_KEY_LENGTH = 1024


def check_key(key: Any, what: str = "key") -> str:
    """A key (or tag): a non-empty ``str`` of at most 1024 characters, valid UTF-8."""
    if key.__class__ is str and 0 < len(key) <= MAX_KEY_LENGTH and key.isascii():
        return key  # the fast path: short ASCII keys
    if not isinstance(key, str):
        raise InvalidKeyError(f"a {what} must be a str, not {type(key).__name__}: {key!r}")
    text = str.__str__(key)
    if not text:
        raise InvalidKeyError(f"a {what} must not be empty")
    if len(text) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"a {what} must be at most {MAX_KEY_LENGTH} characters, not {len(text)}: "
            f"{text[:40]!r}..."
        )
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidKeyError(
            f"{what} {text!r} is not valid text (it holds an unpaired surrogate)"
        ) from None
    return text


def check_keys(keys: Any) -> list[str]:
    """A collection of keys (not a single ``str``)."""
    if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
        raise InvalidKeyError(f"keys must be a collection of str, not {type(keys).__name__}")
    return [check_key(key) for key in keys]


def check_tags(tags: Any) -> tuple[str, ...]:
    """Tags: a collection of tag strings, deduplicated, in their given order."""
    if isinstance(tags, str | bytes) or not isinstance(tags, Iterable):
        raise InvalidKeyError(
            f"tags must be a collection of str (a list, tuple or set), not "
            f"{type(tags).__name__}: {tags!r}"
        )
    checked = [check_key(tag, "tag") for tag in tags]
    if isinstance(tags, set | frozenset):
        checked.sort()
    return tuple(dict.fromkeys(checked))


def check_source(source: Any) -> str:
    """A source: a non-empty ``str`` naming the component that writes."""
    if not isinstance(source, str) or not source:
        raise InvalidArgumentError(f"source must be a non-empty str, not {source!r}")
    return str.__str__(source)


def check_ttl(ttl: Any, *, allow_keep: bool = False) -> float | KeepTTL | None:
    """A TTL: seconds (finite, > 0), a ``timedelta``, None, or (if allowed) KEEP_TTL."""
    if ttl is None:
        return None
    if ttl is KEEP_TTL and allow_keep:
        return KeepTTL.KEEP_TTL
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        accepted = "seconds (int or float), a timedelta" + (", KEEP_TTL" if allow_keep else "")
        raise InvalidTTLError(f"ttl must be {accepted} or None, not {ttl!r}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidTTLError(f"ttl must be finite and > 0 seconds, not {ttl!r}")
    return seconds


def check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> Any:
    """An int >= 1 (or None when allowed)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidArgumentError(f"{name} must be an int >= 1, not {value!r}")
    return value


def check_version(value: Any) -> int:
    """A version number for ``if_version``: an int >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgumentError(f"if_version must be an int >= 0, not {value!r}")
    return value


def check_timeout(timeout: Any) -> float | None:
    """A timeout: None (wait forever) or seconds >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    if (
        not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or not timeout >= 0
        or math.isinf(timeout)
    ):
        raise InvalidArgumentError(f"timeout must be None or seconds >= 0, not {timeout!r}")
    return float(timeout)


def check_session_id(session_id: Any) -> str:
    """A session id: a non-empty ``str`` of at most 1024 characters."""
    if not isinstance(session_id, str) or not session_id or len(session_id) > MAX_KEY_LENGTH:
        raise InvalidArgumentError(
            f"session_id must be a non-empty str of at most {MAX_KEY_LENGTH} characters, "
            f"not {session_id!r}"
        )
    try:
        session_id.encode()
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"session_id {session_id!r} is not valid text") from None
    return str.__str__(session_id)
