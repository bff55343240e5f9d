"""What the web view sends: entries, events and sessions as JSON-ready data (no I/O).

Values are shown, never trusted: a value becomes plain JSON data (``preview``) that a
browser can parse exactly (no ``NaN``, no integer beyond what a JavaScript number holds
exactly, no ``bytes``), cut to a budget so that a large value costs the page little;
``truncated`` says when it was cut and ``size`` how large the stored value is. The page
inserts all of it as text. A sealed session's value that the app has no key for is
not there: ``"sealed": true``, and the page shows ``(sealed)``.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from sharedctx import ContextEntry, ContextError, ContextEvent, KeyUnavailableError
from sharedctx.backends import Glob, SessionSummary

__all__ = [
    "PREVIEW_ITEMS",
    "PREVIEW_TEXT",
    "EventMatcher",
    "WriteRates",
    "entry_row",
    "event_row",
    "plain",
    "summary_row",
]

PREVIEW_TEXT = 300
"""Characters of a string a preview keeps."""
PREVIEW_ITEMS = 50
"""Items of a list or mapping a preview keeps (at each level)."""
_PREVIEW_DEPTH = 12
_PREVIEW_NODES = 2000  # values in one preview, all levels together
_SAFE_INTEGER = 2**53 - 1  # beyond it a JavaScript number is not exact


class _Budget:
    __slots__ = ("cut", "nodes")

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.cut = False


def plain(value: Any, *, limit: bool = True) -> tuple[Any, bool]:
    """``value`` as JSON data a browser parses exactly, and whether it was cut.

    With ``limit`` (a preview) strings keep ``PREVIEW_TEXT`` characters, lists and
    mappings ``PREVIEW_ITEMS`` items, and the whole at most 2000 values, 12 levels
    deep; what is cut is replaced by a string saying how much (``"… 950 more
    items"``). Without it the value is whole. Either way, what JSON cannot carry
    exactly is written as a string: ``bytes`` (as Python writes them), ``NaN`` and
    the infinities, integers beyond 2**53, and any other type (its ``repr``);
    mapping keys become strings.
    """
    budget = _Budget(_PREVIEW_NODES if limit else sys.maxsize)
    result = _plain(value, budget, 0, limit)
    return result, budget.cut


def _plain(value: Any, budget: _Budget, depth: int, limit: bool) -> Any:
    budget.nodes -= 1
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if limit and len(value) > PREVIEW_TEXT:
            budget.cut = True
            return f"{value[:PREVIEW_TEXT]}… ({len(value)} characters)"
        return value
    if isinstance(value, int):
        return value if -_SAFE_INTEGER <= value <= _SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple | dict):
        if limit and (depth >= _PREVIEW_DEPTH or budget.nodes <= 0):
            budget.cut = True
            kind = "mapping" if isinstance(value, dict) else "list"
            return f"… ({kind} of {len(value)} items)"
        items = list(value.items()) if isinstance(value, dict) else list(value)
        kept = items[:PREVIEW_ITEMS] if limit else items
        if isinstance(value, dict):
            mapping: dict[str, Any] = {}
            taken = 0
            for key, item in kept:
                if limit and budget.nodes <= 0:
                    break
                mapping[_key(key)] = _plain(item, budget, depth + 1, limit)
                taken += 1
            if taken < len(items):
                budget.cut = True
                mapping["…"] = f"{len(items) - taken} more items"
            return mapping
        listed = []
        for item in kept:
            if limit and budget.nodes <= 0:
                break
            listed.append(_plain(item, budget, depth + 1, limit))
        left = len(items) - len(listed)
        if left:
            budget.cut = True
            listed.append(f"… {left} more items")
        return listed
    if isinstance(value, bytes | bytearray | memoryview):
        shown = repr(bytes(value[: PREVIEW_TEXT if limit else None]))
        if limit and len(value) > PREVIEW_TEXT:
            budget.cut = True
            return f"{shown}… ({len(value)} bytes)"
        return shown
    return repr(value)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else repr(key)


def _value_fields(entry: ContextEntry, full: bool) -> dict[str, Any]:
    if not entry.has_value:
        return {"value": None, "truncated": False, "has_value": False}
    try:
        value, truncated = plain(entry.value, limit=not full)
    except KeyUnavailableError:  # a sealed session's, and the app has not its key
        return {"value": None, "truncated": False, "has_value": True, "sealed": True}
    except ContextError as exc:  # a value that does not open (IntegrityError) or decode
        return {"value": None, "truncated": False, "has_value": False, "value_error": str(exc)}
    return {"value": value, "truncated": truncated, "has_value": True}


def entry_row(entry: ContextEntry, *, full: bool = False) -> dict[str, Any]:
    """One entry: its metadata, its times (POSIX seconds) and its value (a preview,
    or whole with ``full``)."""
    return {
        "key": entry.key,
        "version": entry.version,
        "revision": entry.revision,
        "source": entry.source,
        "tags": list(entry.tags),
        "size": entry.size,
        "created": entry.created,
        "updated": entry.updated,
        "ttl": entry.ttl,
        "expires": entry.expires,
        **_value_fields(entry, full),
    }


def event_row(event: ContextEvent, *, seen: float | None, matches: bool) -> dict[str, Any]:
    """One change, with the entry it left (a set's, with the value's preview).

    ``time`` is when the change happened if the event says it (a set: the write's
    time; an expiry: the deadline that ran out), else ``seen``: when the server
    received it live (a delete, an eviction), or None for one replayed from the
    kept history. ``matches`` says whether the key fits the page's filter.
    """
    entry = event.entry
    action = event.action
    if action == "set":
        moment: float | None = entry.updated
    elif action == "expire" and entry.expires is not None:
        moment = entry.expires
    else:
        moment = seen
    row = entry_row(entry)
    row.update(
        revision=event.revision,
        action=action,
        time=moment,
        seen=seen,
        matches=matches,
        entry_revision=entry.revision,
    )
    return row


class EventMatcher:
    """Whether an event's key fits a page's filter: a glob pattern and a tag."""

    def __init__(self, glob: Glob | None, tag: str | None) -> None:
        self._glob = glob
        self._tag = tag

    def __call__(self, event: ContextEvent) -> bool:
        if self._glob is not None and not self._glob.match(event.key):
            return False
        return self._tag is None or self._tag in event.entry.tags


def summary_row(
    summary: SessionSummary, revision: int | None, rate: tuple[float, float] | None
) -> dict[str, Any]:
    """A session: live entries, bytes, revision, last write and when the server drops
    it (POSIX seconds or None), and changes per minute over the window it was
    measured on (``rate``, ``rate_window`` seconds; None before two readings)."""
    return {
        "session": summary.session_id,
        "entries": summary.entries,
        "bytes": summary.bytes,
        "revision": revision,
        "last_write": None if summary.last_write is None else summary.last_write.timestamp(),
        "drops_at": None if summary.drops_at is None else summary.drops_at.timestamp(),
        "rate": None if rate is None else rate[0],
        "rate_window": None if rate is None else rate[1],
    }


class WriteRates:
    """Each session's changes per minute over the last minute, from its revision read
    at different times (every reading of the sessions list adds one).

    A session's rate is measured from the newest reading at or before the start of
    the last ``window`` seconds (else the oldest after it) to now, so over a little
    more than the window when readings are sparse: the second number returned says
    over how long. None until two readings are ``min_window`` seconds apart. A revision that
    goes back (the session was deleted and made anew) starts its readings again.
    Not thread-safe: the app calls it from its event loop only.
    """

    def __init__(
        self,
        *,
        window: float = 60.0,
        min_window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.min_window = min_window
        self._clock = clock
        self._readings: dict[str, deque[tuple[float, int]]] = {}

    def record(self, session_id: str, revision: int) -> tuple[float, float] | None:
        """Add a reading of ``session_id``'s revision; return (changes per minute,
        seconds measured over), or None."""
        now = self._clock()
        readings = self._readings.setdefault(session_id, deque())
        if readings and revision < readings[-1][1]:
            readings.clear()
        readings.append((now, revision))
        start = now - self.window
        while len(readings) > 2 and readings[1][0] <= start:
            readings.popleft()  # keep the newest reading at or before the window's start
        first_time, first_revision = readings[0]
        elapsed = now - first_time
        if elapsed < self.min_window:
            return None
        return (revision - first_revision) * 60.0 / elapsed, elapsed

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the readings of every session not in ``keep`` (gone sessions)."""
        kept = set(keep)
        for session_id in [session for session in self._readings if session not in kept]:
            del self._readings[session_id]
