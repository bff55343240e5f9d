"""The in-memory store: the default backend, for threads and tasks of one process.

Data structures, all guarded by one lock that is held only for dict and index
updates (never while encoding, decoding or running callbacks):

- ``_entries``: key -> immutable ``ContextEntry``, an ``OrderedDict`` whose order is
  the eviction order (moved to the end on write, and on read for ``"lru"``);
- ``_index``: a ``SortedList`` of keys, so a pattern with a literal prefix reads only
  the keys in that prefix's range: O(log n + k);
- ``_tags``: tag -> sorted list of keys (a :class:`_TagIndex`; a key that loses a
  tag is set aside in O(1) and leaves the sorted list at the next compaction);
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
import itertools
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence

from msgspec.structs import replace
from sortedcontainers import SortedList

from sharedctx import _scheduler
from sharedctx._errors import (
    CapacityError,
    ContextClosedError,
    InvalidArgumentError,
    VersionConflictError,
    WatchOverflowError,
)
from sharedctx._events import EventHub, Subscription
from sharedctx._glob import Glob
from sharedctx._types import Action, ContextEntry, ContextEvent, ContextStats
from sharedctx.backends.base import ALL, Lease, Page, StoreOptions, Write

__all__ = ["MemoryAsyncStore", "MemoryBackend", "MemoryStore"]

_wall = time.time


class MemoryBackend:
    """Sessions kept in this process, in the context object that opens them.

    ``clock``: zero-argument callable giving monotonic seconds (default
    ``time.monotonic``). With another clock, entries expire when a call notices (or
    on ``purge_expired()``), not on a timer: that is for tests, which then never
    sleep. ``history``: how many of its last changes a session keeps, for watches
    that start from a revision (``watch(since=...)``). Nothing to close; one backend
    can serve any number of contexts.
    """

    def __init__(self, *, clock: Callable[[], float] | None = None, history: int = 10_000) -> None:
        if clock is not None and not callable(clock):
            raise InvalidArgumentError(f"clock must be a callable, not {clock!r}")
        if not isinstance(history, int) or isinstance(history, bool) or history < 0:
            raise InvalidArgumentError(f"history must be an int >= 0, not {history!r}")
        self.clock = clock
        self.history = history

    def open(
        self, session_id: str, hub: EventHub, options: StoreOptions
    ) -> tuple[MemoryStore, MemoryAsyncStore]:
        """A new, empty store of ``session_id`` for one context (see the class doc)."""
        store = MemoryStore(session_id, hub, options, clock=self.clock, history=self.history)
        return store, MemoryAsyncStore(store)

    def close(self) -> None:
        """Nothing to release: each store's data goes with its context."""

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close`."""

    def __repr__(self) -> str:
        return "memory" if self.clock is None else f"MemoryBackend(clock={self.clock!r})"


class MemoryStore:
    """One session's data in this process (see the module docstring)."""

    def __init__(
        self,
        session_id: str,
        hub: EventHub,
        options: StoreOptions,
        *,
        clock: Callable[[], float] | None = None,
        history: int = 10_000,
    ) -> None:
        self.session_id = session_id
        self._hub = hub
        self._pending = hub.pending  # events waiting for delivery
        max_entries, eviction = options
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
        self._tags = _TagIndex()
        self._deadlines: list[tuple[float, str]] = []
        self._revision = 0
        # The last changes, for watches from a revision: (revision, action, entry).
        self._history: deque[tuple[int, Action, ContextEntry]] = deque(maxlen=history)
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

    def find(self, glob: Glob, page: Page = ALL) -> list[ContextEntry]:
        with self._lock:
            self._begin()
            entries = self._entries
            found = [entries[key] for key in _paged(self._matching(glob, page.after), page)]
        self._hub.deliver()
        return found

    def find_tag(self, tag: str, page: Page = ALL) -> list[ContextEntry]:
        with self._lock:
            self._begin()
            keys = self._tags.keys(tag, page.after)
            entries = self._entries
            found = [entries[key] for key in _paged(keys, page)]
        self._hub.deliver()
        return found

    def keys(self, glob: Glob, page: Page = ALL) -> list[str]:
        with self._lock:
            self._begin()
            found = list(_paged(self._matching(glob, page.after), page))
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

    def _matching(self, glob: Glob, after: str | None) -> Iterable[str]:
        prefix = glob.prefix
        if glob.is_literal:
            found = prefix in self._entries and (after is None or prefix > after)
            return (prefix,) if found else ()
        end = _prefix_end(prefix)  # the keys that start with prefix are below it
        if after is not None and after >= prefix:
            keys = self._index.irange(after, end, inclusive=(False, False))
        elif prefix:
            keys = self._index.irange(prefix, end, inclusive=(True, False))
        else:
            keys = iter(self._index)
        return keys if glob.selects_prefix else filter(glob.match, keys)

    # -- writes ------------------------------------------------------------------

    def write(self, write: Write) -> ContextEntry:
        key = write.key
        try:
            with self._lock:  # _begin() inlined: this is the hot path of set
                if self._closed:
                    self._check_open()
                now = self._clock()
                deadlines = self._deadlines
                if deadlines and deadlines[0][0] <= now:
                    self._purge_due(now)
                old = self._entries.get(key)
                if_version = write.if_version
                if if_version is not None:
                    version = 0 if old is None else old.version
                    if version != if_version:
                        raise VersionConflictError(key, if_version, version)
                if old is None:
                    self._make_room(1, ())
                return self._put(write, old, now, _wall())
        finally:
            if self._pending:
                self._hub.deliver()

    def write_many(self, writes: Sequence[Write]) -> list[ContextEntry]:
        try:
            with self._lock:
                now = self._begin()
                entries = self._entries
                for write in writes:
                    if write.if_version is not None:
                        old = entries.get(write.key)
                        version = 0 if old is None else old.version
                        if version != write.if_version:
                            raise VersionConflictError(write.key, write.if_version, version)
                batch = {write.key for write in writes}
                self._make_room(sum(key not in entries for key in batch), batch)
                wall = time.time()
                return [self._put(write, entries.get(write.key), now, wall) for write in writes]
        finally:
            self._hub.deliver()

    def _put(self, write: Write, old: ContextEntry | None, now: float, wall: float) -> ContextEntry:
        # The one place an entry is written; the caller holds the lock and has made room.
        self._revision = revision = self._revision + 1
        key, ttl, source, tags, plain = write.key, write.ttl, write.source, write.tags, write.plain
        data = None if plain is not None else write.data  # the plain copy is the snapshot
        expires: float | None
        deadline: float | None
        if ttl.__class__ is float:  # the usual case first
            expires, deadline = wall + ttl, now + ttl
        elif ttl is None:
            expires = deadline = None
        elif old is None:  # KEEP_TTL of a new key: nothing to keep
            ttl = expires = deadline = None
        else:  # KEEP_TTL
            ttl, expires, deadline = old.ttl, old.expires, old.deadline
        if old is None:
            if source is None:
                source = "unknown"
            if tags is None:
                tags = ()
            entry = ContextEntry(
                key, 1, revision, source, tags, data, plain, wall, wall, ttl, expires, deadline
            )
            self._index.add(key)
            self._tags.add(key, tags)
        else:
            if source is None:
                source = old.source
            if tags is None:
                tags = old.tags
            elif tags != old.tags:
                self._tags.remove(key, old.tags)
                self._tags.add(key, tags)
            entry = ContextEntry(
                key, old.version + 1, revision, source, tags, data, plain, old.created, wall,
                ttl, expires, deadline,
            )  # fmt: skip
        entries = self._entries
        entries[key] = entry
        if old is not None and self._touch_on_write:
            entries.move_to_end(key)
        if deadline is not None and (
            old is None or old.deadline is None or deadline < old.deadline
        ):
            self._add_deadline(deadline, key)
        self._history.append((revision, "set", entry))
        hub = self._hub
        if hub.active and hub.wants(key):
            hub.enqueue(ContextEvent("set", key, entry, self.session_id, revision))
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
                self._entries[key] = replace(entry, ttl=None, expires=None, deadline=None)
            elif entry is not None and ttl is not None:
                deadline = now + ttl
                self._entries[key] = replace(
                    entry, ttl=ttl, expires=time.time() + ttl, deadline=deadline
                )
                if entry.deadline is None or deadline < entry.deadline:
                    self._add_deadline(deadline, key)
        self._hub.deliver()
        return entry is not None

    def revision(self) -> int:
        with self._lock:
            self._begin()
            return self._revision

    def lease(self, key: str, holder: str) -> Lease:
        # The context already runs one factory per process: nothing to lease here.
        entry = self.get(key)
        return Lease("lead") if entry is None else Lease("value", entry)

    def release(self, key: str, holder: str) -> None:
        self._check_open()

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
            since = subscription.since
            if since is not None:
                self._replay(subscription, since)
            self._hub.add(subscription, self._revision)
        self._hub.deliver()

    def _replay(self, subscription: Subscription, since: int) -> None:
        """Queue for ``subscription`` alone the kept changes after ``since``."""
        if since > self._revision:
            raise InvalidArgumentError(
                f"since={since} is after session {self.session_id!r}'s last change, "
                f"revision {self._revision}"
            )
        history = self._history
        oldest = history[0][0] if history else self._revision + 1
        if since + 1 < oldest:
            raise WatchOverflowError(
                f"changes {since + 1} to {oldest - 1} of session {self.session_id!r} are "
                f"no longer kept (the backend keeps the last {history.maxlen})"
            )
        replayed = []
        removed: set[str] = set()  # keys removed later: their earlier values are gone
        for revision, action, entry in reversed(history):
            if revision <= since:
                break
            if action != "set":
                removed.add(entry.key)
            elif entry.key in removed:
                entry = entry.without_value()
            replayed.append(ContextEvent(action, entry.key, entry, self.session_id, revision))
        for event in reversed(replayed):
            self._hub.enqueue(event, only=subscription)

    def unsubscribe(self, subscription_id: str) -> bool:
        return self._hub.remove(subscription_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._history.clear()
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
            if entry is None or entry.deadline is None:
                continue  # stale: the key is gone or lives forever now
            if entry.deadline <= now:
                self._remove(entry, "expire")
                purged += 1
            else:  # its deadline moved later: come back then
                heapq.heappush(deadlines, (entry.deadline, key))
        return purged

    def _add_deadline(self, deadline: float, key: str) -> None:
        deadlines = self._deadlines
        if len(deadlines) > 2 * len(self._entries) + 1024:  # mostly stale: rebuild
            deadlines[:] = [
                (entry.deadline, entry.key)
                for entry in self._entries.values()
                if entry.deadline is not None
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
        self._tags.remove(key, entry.tags)
        if action == "expire":
            self._expired += 1
        elif action == "evict":
            self._evicted += 1
        self._changed(action, entry)

    def _changed(self, action: Action, entry: ContextEntry) -> None:
        self._revision = revision = self._revision + 1
        removed = entry.without_value()
        self._history.append((revision, action, removed))
        if self._hub.wants(entry.key):
            self._hub.enqueue(ContextEvent(action, entry.key, removed, self.session_id, revision))

    def _reset(self) -> None:
        self._entries = OrderedDict()
        self._index = SortedList()
        self._tags = _TagIndex()
        self._deadlines = []


class _TagIndex:
    """Tag -> its keys in order. A key that loses a tag is only set aside (a set per
    tag), so that rewriting an entry without its tags costs O(1), not a sorted-list
    removal; reads skip the keys set aside, and a tag's list is compacted once they
    are half of it (amortized O(1) per removal)."""

    def __init__(self) -> None:
        self._sorted: dict[str, SortedList] = {}
        self._removed: dict[str, set[str]] = {}

    def add(self, key: str, tags: tuple[str, ...]) -> None:
        for tag in tags:
            removed = self._removed.get(tag)
            if removed is not None and key in removed:
                removed.discard(key)  # it is still in the sorted list
                continue
            tagged = self._sorted.get(tag)
            if tagged is None:
                self._sorted[tag] = SortedList((key,))
            else:
                tagged.add(key)

    def remove(self, key: str, tags: tuple[str, ...]) -> None:
        for tag in tags:
            removed = self._removed.setdefault(tag, set())
            removed.add(key)
            tagged = self._sorted[tag]
            if 2 * len(removed) >= len(tagged):
                kept = [member for member in tagged if member not in removed]
                del self._removed[tag]
                if kept:
                    self._sorted[tag] = SortedList(kept)
                else:
                    del self._sorted[tag]

    def keys(self, tag: str, after: str | None) -> Iterable[str]:
        """The keys tagged ``tag``, in order, after ``after`` if given."""
        tagged = self._sorted.get(tag)
        if tagged is None:
            return ()
        keys = _after(tagged, after)
        removed = self._removed.get(tag)
        return keys if not removed else (key for key in keys if key not in removed)


def _after(keys: SortedList, after: str | None) -> Iterable[str]:
    found: Iterable[str] = (
        iter(keys) if after is None else keys.irange(minimum=after, inclusive=(False, True))
    )
    return found


def _paged(keys: Iterable[str], page: Page) -> Iterable[str]:
    return keys if page.limit is None else itertools.islice(keys, page.limit)


def _prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no such
    string, or no prefix)."""
    stripped = prefix.rstrip(chr(sys.maxunicode))
    if not stripped:
        return None
    return stripped[:-1] + chr(ord(stripped[-1]) + 1)


class MemoryAsyncStore:
    """The awaitable twins of a :class:`MemoryStore`'s calls. Its calls never wait for
    I/O (they hold a lock for microseconds), so each twin runs on the event loop."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def get(self, key: str) -> ContextEntry | None:
        return self._store.get(key)

    async def get_many(self, keys: Sequence[str]) -> dict[str, ContextEntry]:
        return self._store.get_many(keys)

    async def contains(self, key: str) -> bool:
        return self._store.contains(key)

    async def write(self, write: Write) -> ContextEntry:
        return self._store.write(write)

    async def write_many(self, writes: Sequence[Write]) -> list[ContextEntry]:
        return self._store.write_many(writes)

    async def delete(self, key: str) -> bool:
        return self._store.delete(key)

    async def expire(self, key: str, ttl: float | None) -> bool:
        return self._store.expire(key, ttl)

    async def find(self, glob: Glob, page: Page = ALL) -> list[ContextEntry]:
        return self._store.find(glob, page)

    async def find_tag(self, tag: str, page: Page = ALL) -> list[ContextEntry]:
        return self._store.find_tag(tag, page)

    async def keys(self, glob: Glob, page: Page = ALL) -> list[str]:
        return self._store.keys(glob, page)

    async def count(self) -> int:
        return self._store.count()

    async def revision(self) -> int:
        return self._store.revision()

    async def purge_expired(self) -> int:
        return self._store.purge_expired()

    async def clear(self) -> int:
        return self._store.clear()

    async def stats(self, subscriptions: int) -> ContextStats:
        return self._store.stats(subscriptions)

    async def lease(self, key: str, holder: str) -> Lease:
        return self._store.lease(key, holder)

    async def release(self, key: str, holder: str) -> None:
        self._store.release(key, holder)

    async def subscribe(self, subscription: Subscription) -> None:
        self._store.subscribe(subscription)

    async def close(self) -> None:
        self._store.close()

    async def destroy(self) -> None:
        self._store.destroy()
