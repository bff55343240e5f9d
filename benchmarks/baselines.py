"""The baselines sharedctx is measured against, in the shape the workloads use.

Every system in the in-memory workloads is a :class:`Store`. The reference port
(``reference_design.ReferenceSharedContext``) and ``sharedctx.SharedContext`` have
that shape already and are used as they are, so no adapter adds a call to their
timings. The two adapters here are what a careful user would write instead: one
lock around a plain store, and queries that scan every key.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cachetools import TTLCache

__all__ = ["LockedDict", "LockedTTLCache", "Store"]


class Store(Protocol):
    """What the workloads call: reads, writes with tags, and the two queries."""

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any, *, tags: list[str] = ...) -> object: ...

    def find_by_pattern(self, pattern: str) -> Sequence[object]: ...

    def find_by_tag(self, tag: str) -> Sequence[object]: ...


@functools.lru_cache(maxsize=256)
def _matcher(pattern: str) -> Callable[[str], object]:
    """The compiled ``fnmatch`` test for ``pattern`` (compiled once, as a user would)."""
    return re.compile(fnmatch.translate(pattern)).match


class LockedDict:
    """A ``dict`` of ``key -> (value, tags)`` behind one lock; values are not copied.

    ``find_by_pattern`` and ``find_by_tag`` scan every entry: O(n).
    """

    def __init__(self) -> None:
        self._items: dict[str, tuple[Any, Sequence[str]]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            item = self._items.get(key)
        return None if item is None else item[0]

    def set(self, key: str, value: Any, *, tags: Sequence[str] = ()) -> None:
        with self._lock:
            self._items[key] = (value, tags)

    def find_by_pattern(self, pattern: str) -> list[tuple[str, Any]]:
        match = _matcher(pattern)
        with self._lock:
            return [(key, item[0]) for key, item in self._items.items() if match(key)]

    def find_by_tag(self, tag: str) -> list[tuple[str, Any]]:
        with self._lock:
            return [(key, value) for key, (value, tags) in self._items.items() if tag in tags]


class LockedTTLCache:
    """A ``cachetools.TTLCache`` of ``key -> (value, tags)`` behind one lock.

    ``cachetools`` is not thread-safe, so every call takes the lock. The queries
    scan every live key: O(n).
    """

    def __init__(self, maxsize: int, ttl: float) -> None:
        self._cache: TTLCache[str, tuple[Any, Sequence[str]]] = TTLCache(maxsize, ttl)
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            item = self._cache.get(key)
        return None if item is None else item[0]

    def set(self, key: str, value: Any, *, tags: Sequence[str] = ()) -> None:
        with self._lock:
            self._cache[key] = (value, tags)

    def find_by_pattern(self, pattern: str) -> list[tuple[str, Any]]:
        match = _matcher(pattern)
        with self._lock:
            cache = self._cache
            return [(key, cache[key][0]) for key in cache if match(key)]

    def find_by_tag(self, tag: str) -> list[tuple[str, Any]]:
        with self._lock:
            return [(key, value) for key, (value, tags) in self._cache.items() if tag in tags]
