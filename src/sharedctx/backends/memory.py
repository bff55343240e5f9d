"""The in-memory store: the default backend, for threads and tasks of one process.

Data structures, all guarded by one lock that is held only for dict and index
updates (never while encoding, decoding or running callbacks):

- ``_entries``: key -> immutable ``ContextEntry``, an ``OrderedDict`` whose order is
  the eviction order (moved to the end on write, and on read for ``"lru"``);
- ``_index``: a ``SortedList`` of keys, so a pattern with a literal prefix reads only
  the keys in that prefix's range: O(log n + k);
- ``_tags``: tag -> set of keys;
- ``_deadlines``: a heap of ``(deadline, key)`` holding, for every key with a TTL,
  at least one item no later than its deadline. A write that moves a deadline later
  (the common case: each write restarts the TTL) pushes nothing; the item is pushed
  again with the new deadline when it comes up. Stale items are skipped when
  popped, and the heap is rebuilt if they ever pile up. Every call first removes
  the entries that are due, so no read ever sees an expired entry; one shared
  timer (``_scheduler``) does the same when nothing calls.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from msgspec.structs import replace
from sortedcontainers import SortedList

from sharedctx import _scheduler
from sharedctx._errors import CapacityError, ContextClosedError, VersionConflictError
from sharedctx._events import EventHub, Subscription
from sharedctx._glob import Glob
from sharedctx._types import (
    Action,
    ContextEntry,
    ContextEvent,
    ContextStats,
)
from sharedctx.backends.base import Item, TTLArg

__all__ = ["Eviction", "MemoryStore"]

_wall = time.time

Eviction = Literal["lru", "oldest", "reject"]


class MemoryStore:
    """One session's data in this process (see the module docstring)."""

    def __init__(
        self,
        session_id: str,
        hub: EventHub,
        *,
        max_entries: int | None,
        eviction: Eviction,
        clock: Callable[[], float] | None,
    ) -> None:
        self.session_id = session_id
        self._hub = hub
        self._pending = hub._pending  # events waiting for delivery
        self._max_entries = max_entries
        self._eviction = eviction
        bounded = max_entries is not None
        self._touch_on_read = bounded and eviction == "lru"
        self._touch_on_write = bounded and eviction != "reject"
        # Active expiry needs deadlines on the scheduler's clock; an injected clock
        # (tests) moves only when told to, so then expiry happens on calls only.
        self._clock = clock or time.monotonic
        self._active_expiry = clock is None
        self._timer: _scheduler.Timer | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._entries: OrderedDict[str, ContextEntry] = OrderedDict()
        self._index = SortedList()
        self._tags: dict[str, set[str]] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._revision = 0
        self._hits = self._misses = self._expired = self._evicted = 0
        self._calls = 0  # every call that reads or writes; for idle detection

    # -- reads -------------------------------------------------------------------

    def get(self, key: str) -> ContextEntry | None:
        # The hot path: _begin() inlined (it counts as activity through hits/misses).
        with self._lock:
            if self._closed:
                self._check_open()
            deadlines = self._deadlines
            if deadlines and deadlines[0][0] <= self._clock():
                self._purge_due(self._clock())
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
            else:
                self._hits += 1
                if self._touch_on_read:
                    self._entries.move_to_end(key)
        if self._pending:
            self._hub.deliver()
        return entry

    def get_many(self, keys: Sequence[str]) -> dict[str, ContextEntry]:
        found: dict[str, ContextEntry] = {}
        with self._lock:
            self._begin()
            entries = self._entries
            for key in keys:
                entry = entries.get(key)
                if entry is None:
                    self._misses += 1
                    continue
                self._hits += 1
                found[key] = entry
                if self._touch_on_read:
                    entries.move_to_end(key)
        self._hub.deliver()
        return found

    def contains(self, key: str) -> bool:
        with self._lock:
            self._begin()
            found = key in self._entries
        self._hub.deliver()
        return found

    def find(self, glob: Glob) -> list[ContextEntry]:
        with self._lock:
            self._begin()
            entries = self._entries
            found = [entries[key] for key in self._matching(glob)]
        self._hub.deliver()
        return found

    def find_tag(self, tag: str) -> list[ContextEntry]:
        with self._lock:
            self._begin()
            entries = self._entries
            found = [entries[key] for key in sorted(self._tags.get(tag, ()))]
        self._hub.deliver()
        return found

    def keys(self, glob: Glob) -> list[str]:
        with self._lock:
            self._begin()
            found = list(self._matching(glob))
        self._hub.deliver()
        return found

    def count(self) -> int:
        with self._lock:
            self._begin()
            size = len(self._entries)
        self._hub.deliver()
        return size

    def stats(self, subscriptions: int) -> ContextStats:
        with self._lock:
            self._begin()
            stats = ContextStats(
                entries=len(self._entries),
                hits=self._hits,
                misses=self._misses,
                expired=self._expired,
                evicted=self._evicted,
                subscriptions=subscriptions,
                revision=self._revision,
            )
        self._hub.deliver()
        return stats

    def _matching(self, glob: Glob) -> Iterable[str]:
        if glob.is_literal:
            return (glob.prefix,) if glob.prefix in self._entries else ()
        prefix = glob.prefix
        keys = self._index.irange(minimum=prefix) if prefix else iter(self._index)
        if glob.selects_prefix:
            return _while_prefixed(keys, prefix)
        return filter(glob.match, _while_prefixed(keys, prefix))

    # -- writes ------------------------------------------------------------------

    def write(
        self,
        key: str,
        data: bytes,
        plain: Any,
        ttl: TTLArg,
        source: str | None,
        tags: tuple[str, ...] | None,
        if_version: int | None,
    ) -> ContextEntry:
        try:
            with self._lock:  # _begin() inlined: this is the hot path of set
                if self._closed:
                    self._check_open()
                now = self._clock()
                deadlines = self._deadlines
                if deadlines and deadlines[0][0] <= now:
                    self._purge_due(now)
                old = self._entries.get(key)
                if if_version is not None:
                    version = 0 if old is None else old._version
                    if version != if_version:
                        raise VersionConflictError(key, if_version, version)
                if old is None:
                    self._make_room(1, ())
                return self._put(key, old, data, plain, ttl, source, tags, now, _wall())
        finally:
            if self._pending:
                self._hub.deliver()

    def write_many(
        self, items: Sequence[Item], ttl: TTLArg, source: str, tags: tuple[str, ...]
    ) -> list[ContextEntry]:
        try:
            with self._lock:
                now = self._begin()
                entries = self._entries
                batch = {key for key, _, _ in items}
                self._make_room(sum(key not in entries for key in batch), batch)
                wall = time.time()
                return [
                    self._put(key, entries.get(key), data, plain, ttl, source, tags, now, wall)
                    for key, data, plain in items
                ]
        finally:
            self._hub.deliver()

    def _put(
        self,
        key: str,
        old: ContextEntry | None,
        data: bytes,
        plain: Any,
        ttl: TTLArg,
        source: str | None,
        tags: tuple[str, ...] | None,
        now: float,
        wall: float,
    ) -> ContextEntry:
        # The one place an entry is written; the caller holds the lock and has made room.
        if plain is not None:
            data = None  # type: ignore[assignment]  # the plain copy is the snapshot
        expires: float | None
        deadline: float | None
        if ttl.__class__ is float:  # the usual case first
            expires, deadline = wall + ttl, now + ttl
        elif ttl is None:
            expires = deadline = None
        elif old is None:  # KEEP_TTL of a new key: nothing to keep
            ttl = expires = deadline = None
        else:  # KEEP_TTL
            ttl, expires, deadline = old.ttl, old._expires, old._deadline
        if old is None:
            if source is None:
                source = "unknown"
            if tags is None:
                tags = ()
            entry = ContextEntry(
                key, ttl, source, 1, tags, data, plain, wall, wall, expires, deadline
            )
            self._index.add(key)
            self._tag(key, tags)
        else:
            if source is None:
                source = old._source
            if tags is None:
                tags = old._tags
            elif tags != old._tags:
                self._untag(key, old._tags)
                self._tag(key, tags)
            entry = ContextEntry(
                key, ttl, source, old._version + 1, tags, data, plain, old._created, wall,
                expires, deadline,
            )  # fmt: skip
        entries = self._entries
        entries[key] = entry
        if old is not None and self._touch_on_write:
            entries.move_to_end(key)
        if deadline is not None and (
            old is None or old._deadline is None or deadline < old._deadline
        ):
            self._add_deadline(deadline, key)
        self._revision += 1
        if self._hub._by_prefix:  # _changed("set", entry), inlined for the hot path
            self._enqueue("set", entry)
        return entry

    def delete(self, key: str) -> bool:
        with self._lock:
            self._begin()
            entry = self._entries.get(key)
            if entry is not None:
                self._remove(entry, "delete")
        self._hub.deliver()
        return entry is not None

    def expire(self, key: str, ttl: float | None) -> bool:
        with self._lock:
            now = self._begin()
            entry = self._entries.get(key)
            if entry is not None and ttl is None:
                self._entries[key] = replace(entry, ttl=None, _expires=None, _deadline=None)
            elif entry is not None and ttl is not None:
                deadline = now + ttl
                self._entries[key] = replace(
                    entry, ttl=ttl, _expires=time.time() + ttl, _deadline=deadline
                )
                if entry._deadline is None or deadline < entry._deadline:
                    self._add_deadline(deadline, key)
        self._hub.deliver()
        return entry is not None

    def purge_expired(self) -> int:
        with self._lock:
            self._check_open()
            purged = self._purge_due(self._clock())
        self._hub.deliver()
        return purged

    def clear(self) -> int:
        with self._lock:
            self._begin()
            removed = list(self._entries.values())
            for entry in removed:
                self._changed("delete", entry)
            self._reset()
        self._hub.deliver()
        return len(removed)

    # -- events and lifecycle ----------------------------------------------------

    def activity(self) -> int:
        # get and write count through hits, misses and the revision; the rest in _calls.
        return self._calls + self._hits + self._misses + self._revision

    def subscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._check_open()
            self._hub.add(subscription, self._revision)

    def unsubscribe(self, subscription_id: str) -> bool:
        return self._hub.remove(subscription_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._reset()
        self._hub.remove_all()

    def destroy(self) -> None:
        self.close()  # the data lives in this object only

    # -- internals (the caller holds the lock) -------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ContextClosedError(f"context {self.session_id!r} is closed")

    def _begin(self) -> float:
        """Check the store is open and drop what is due; return the clock's time."""
        if self._closed:
            self._check_open()
        self._calls += 1
        now = self._clock()
        deadlines = self._deadlines
        if deadlines and deadlines[0][0] <= now:
            self._purge_due(now)
        return now

    def _purge_due(self, now: float) -> int:
        deadlines, entries = self._deadlines, self._entries
        purged = 0
        while deadlines and deadlines[0][0] <= now:
            _, key = heapq.heappop(deadlines)
            entry = entries.get(key)
            if entry is None or entry._deadline is None:
                continue  # stale: the key is gone or lives forever now
            if entry._deadline <= now:
                self._remove(entry, "expire")
                purged += 1
            else:  # its deadline moved later: come back then
                heapq.heappush(deadlines, (entry._deadline, key))
        return purged

    def _add_deadline(self, deadline: float, key: str) -> None:
        deadlines = self._deadlines
        if len(deadlines) > 2 * len(self._entries) + 1024:  # mostly stale: rebuild
            deadlines[:] = [
                (entry._deadline, entry.key)
                for entry in self._entries.values()
                if entry._deadline is not None
            ]
            heapq.heapify(deadlines)
        heapq.heappush(deadlines, (deadline, key))
        if self._active_expiry and (self._timer is None or deadline < self._timer.when):
            self._schedule(deadline)

    def _schedule(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = _scheduler.call_method_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._timer = None
            self._purge_due(self._clock())
            if self._deadlines:
                self._schedule(self._deadlines[0][0])
        if self._pending:  # subscribers may be slow: not on the timer thread
            _scheduler.run_soon(self._hub.deliver)

    def _make_room(self, new_keys: int, keep: set[str] | tuple[()]) -> None:
        limit = self._max_entries
        if limit is None:
            return
        overflow = len(self._entries) + new_keys - limit
        if overflow <= 0:
            return
        if self._eviction == "reject" or len(keep) > limit or new_keys > limit:
            raise CapacityError(
                f"context {self.session_id!r} holds {len(self._entries)} of at most "
                f"{limit} entries: no room for {new_keys} new key(s)"
            )
        victims = []
        for key, entry in self._entries.items():
            if key not in keep:
                victims.append(entry)
                if len(victims) == overflow:
                    break
        for entry in victims:
            self._remove(entry, "evict")

    def _remove(self, entry: ContextEntry, action: Action) -> None:
        key = entry.key
        del self._entries[key]
        self._index.remove(key)
        self._untag(key, entry._tags)
        if action == "expire":
            self._expired += 1
        elif action == "evict":
            self._evicted += 1
        self._changed(action, entry)

    def _changed(self, action: Action, entry: ContextEntry) -> None:
        self._revision += 1
        self._enqueue(action, entry)

    def _enqueue(self, action: Action, entry: ContextEntry) -> None:
        if self._hub.wants(entry.key):
            self._hub.enqueue(
                ContextEvent(action, entry.key, entry, self.session_id, self._revision)
            )

    def _tag(self, key: str, tags: tuple[str, ...]) -> None:
        for tag in tags:
            self._tags.setdefault(tag, set()).add(key)

    def _untag(self, key: str, tags: tuple[str, ...]) -> None:
        for tag in tags:
            keys = self._tags[tag]
            keys.discard(key)
            if not keys:
                del self._tags[tag]

    def _reset(self) -> None:
        self._entries = OrderedDict()
        self._index = SortedList()
        self._tags = {}
        self._deadlines = []


def _while_prefixed(keys: Iterable[str], prefix: str) -> Iterable[str]:
    for key in keys:
        if not key.startswith(prefix):
            return
        yield key
