"""Argument checks shared by every backend: keys, tags, TTLs, limits, timeouts.

Each check returns the normalized value or raises an ``InvalidArgumentError``
subclass whose message names the argument and what was wrong with it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sharedctx._errors import ContextError, InvalidArgumentError, InvalidKeyError, InvalidTTLError
from sharedctx._types import KEEP_TTL, KeepTTL

__all__ = [
    "MAX_HISTORY_VERSIONS",
    "MAX_KEY_LENGTH",
    "MAX_TTL",
    "check_history_retention",
    "check_history_versions",
    "check_revision",
    "check_version",
    "check_key",
    "check_keys",
    "check_positive_int",
    "check_session_id",
    "check_source",
    "check_tags",
    "check_timeout",
    "check_ttl",
    "refuse_on_event_loop",
]

MAX_KEY_LENGTH = 1024

MAX_TTL = 10 * 365.25 * 24 * 3600.0
"""The longest TTL, in seconds: ten years."""


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


def check_tags(tags: Any, key: str | None = None) -> tuple[str, ...]:
    """Tags: a collection of tag strings, deduplicated, in their given order."""
    if isinstance(tags, str | bytes) or not isinstance(tags, Iterable):
        raise InvalidKeyError(
            f"{_of('tags', key)} must be a collection of str (a list, tuple or set), not "
            f"{type(tags).__name__}: {tags!r}"
        )
    checked = [check_key(tag, _of("tag", key)) for tag in tags]
    if isinstance(tags, set | frozenset):
        checked.sort()
    return tuple(dict.fromkeys(checked))


def check_source(source: Any, key: str | None = None) -> str:
    """A source: a non-empty ``str`` naming the component that writes."""
    if not isinstance(source, str) or not source:
        raise InvalidArgumentError(f"{_of('source', key)} must be a non-empty str, not {source!r}")
    return str.__str__(source)


def check_ttl(
    ttl: Any, key: str | None = None, *, what: str = "ttl", allow_keep: bool = False
) -> float | KeepTTL | None:
    """A TTL: seconds (finite, > 0, at most :data:`MAX_TTL`), a ``timedelta``, None, or
    (if allowed) KEEP_TTL. Errors name ``key`` when given."""
    if ttl is None:
        return None
    if ttl is KEEP_TTL and allow_keep:
        return KeepTTL.KEEP_TTL
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        try:
            seconds = float(ttl)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
    else:
        accepted = "seconds (int or float), a timedelta" + (", KEEP_TTL" if allow_keep else "")
        raise InvalidTTLError(f"{_of(what, key)} must be {accepted} or None, not {ttl!r}")
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TTL):
        raise InvalidTTLError(
            f"{_of(what, key)} must be finite, > 0 and at most {MAX_TTL:.0f} seconds "
            f"(10 years), not {ttl!r}"
        )
    return seconds


def check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> Any:
    """An int >= 1 (or None when allowed)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidArgumentError(f"{name} must be an int >= 1, not {value!r}")
    return value


def check_version(value: Any, key: str | None = None) -> int:
    """A version number for ``if_version``: an int >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgumentError(f"{_of('if_version', key)} must be an int >= 0, not {value!r}")
    return value


MAX_HISTORY_VERSIONS = 10_000
"""The most past versions of a key a session keeps (``history_versions``)."""


def check_history_versions(value: Any) -> int:
    """How many past versions of each key to keep: an int from 0 (none) to
    :data:`MAX_HISTORY_VERSIONS`."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 0 <= value <= MAX_HISTORY_VERSIONS
    ):
        raise InvalidArgumentError(
            f"history_versions must be an int from 0 (keep no past version) to "
            f"{MAX_HISTORY_VERSIONS}, not {value!r}"
        )
    return value


def check_history_retention(value: Any) -> float:
    """Seconds a past version is kept: as a TTL (a number > 0 or a ``timedelta``), not
    None."""
    if value is None:
        raise InvalidTTLError(
            "history_retention must be seconds (int or float) or a timedelta, not None "
            "(to keep no past version, set history_versions=0)"
        )
    seconds = check_ttl(value, what="history_retention")
    assert isinstance(seconds, float)
    return seconds


def check_revision(value: Any, what: str = "revision") -> int:
    """A revision: an int >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgumentError(f"{what} must be a revision (an int >= 0), not {value!r}")
    return value


def _of(what: str, key: str | None) -> str:
    return what if key is None else f"{what} for key {key!r}"


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


def refuse_on_event_loop(twin: str) -> None:
    """Raise ``ContextError`` if this thread runs an asyncio event loop: a blocking
    wait here would freeze all of its tasks. ``twin`` names what to use instead."""
    asyncio = sys.modules.get("asyncio")  # no event loop runs before asyncio is imported
    if asyncio is None:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise ContextError(
        f"a blocking wait was called on a thread that runs an asyncio event loop, which "
        f"it would freeze: use `await ...{twin}(...)` instead"
    )
