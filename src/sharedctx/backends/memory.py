"""The in-memory backend: sessions kept in this process, for its threads and tasks.

A :class:`MemoryBackend` holds its sessions by id; each ``open`` of an id gives a
:class:`MemoryStore`, a handle on that session's one :class:`_Session` for one
context (its hub, its settings, its read counters). Every handle of a session sees
the same data and hears of every change; the session goes when its last handle is
closed while it holds no entry, or when one of them destroys it (the others then
raise ``SessionLostError`` once). See ``docs/architecture.md``.

A session's structures, all guarded by one lock that is held only for dict and
index updates (never while encoding, decoding or running callbacks):

- ``entries``: key -> immutable ``ContextEntry``, an ``OrderedDict`` whose order is
  the eviction order (moved to the end on write, and on read for ``"lru"``);
- ``index``: a ``SortedList`` of keys, so a pattern with a literal prefix reads only
  the keys in that prefix's range: O(log n + k);
- ``tags``: tag -> sorted list of keys (a :class:`_TagIndex`; a key that loses a
  tag is set aside in O(1) and leaves the sorted list at the next compaction);
- ``deadlines``: a heap of ``(deadline, key)`` holding, for every key with a TTL,
  at least one item no later than its deadline. A write that moves a deadline later
  (the common case: each write restarts the TTL) pushes nothing; the item is pushed
  again with the new deadline when it comes up. Stale items are skipped when
  popped, and the heap is rebuilt if they ever pile up. Every call first removes
  the entries that are due, so no read ever sees an expired entry; one shared
  timer (``_scheduler``) does the same when nothing calls;
- ``history``: the last changes, for watches that start from a revision;
- the past versions of keys (``ctx.history``, reads at a revision, ``fork``), kept
  only once a context with ``history_versions`` has opened it: ``past``, key -> its
  past versions oldest first (at most ``history_versions`` each, each until its
  deadline); ``removed``, key -> the revision of its last removal, for as long; a
  heap ``aging`` of their deadlines; and two floors: below ``history_floor`` a key
  of which nothing is kept is unknown, below ``snapshot_floor`` some key is. See
  ``docs/guides/history.md`` for the rules (they are the same on Redis).
"""

from __future__ import annotations

import heapq
import itertools
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec.structs import replace
from sortedcontainers import SortedList

from sharedctx import _scheduler
from sharedctx._checks import check_history_retention, check_history_versions
from sharedctx._codec import Codec
from sharedctx._errors import (
    CapacityError,
    ContextClosedError,
    ContextError,
    HistoryCompactedError,
    InvalidArgumentError,
    KeyUnavailableError,
    SessionExistsError,
    SessionLostError,
    VersionConflictError,
    WatchOverflowError,
)
from sharedctx._events import EventHub, Subscription
from sharedctx._glob import Glob
from sharedctx._sealed import KeyProvider, LockedCodec, SealedCodec, SessionKeys, record_key_id
from sharedctx._types import Action, ContextEntry, ContextEvent, ContextStats
from sharedctx.backends import ops
from sharedctx.backends.base import InProcessStore, SessionSummary, StoreOptions, handles
from sharedctx.backends.ops import Lease, Page

__all__ = ["MemoryBackend", "MemoryStore"]

_wall = time.time


class MemoryBackend:
    """Sessions kept in this process: every context that opens an id on one backend
    shares that session (another ``MemoryBackend`` is another place, like another
    Redis server).

    ``clock``: zero-argument callable giving monotonic seconds (default
    ``time.monotonic``). With another clock, entries expire when a call notices (or
    on ``purge_expired()``), not on a timer: that is for tests, which then never
    sleep. ``history``: how many of its last changes a session keeps, for watches
    that start from a revision (``watch(since=...)``). ``history_versions`` and
    ``history_retention`` are the defaults of the contexts that do not set their own:
    how many past versions of each key to keep (0: none) and for how many seconds (of
    ``clock``). One backend serves any number of contexts; ``close()`` drops every
    session it holds.

    ``keyring``: a :class:`~sharedctx.KeyRing` (or another ``KeyProvider``): the
    sessions it opens are sealed (see ``docs/guides/sealed.md``). A session is sealed
    by its first write from a context with a key ring (opening it creates nothing); a
    context without the keys to a sealed session reads its metadata, and gets
    ``KeyUnavailableError`` for its values.
    """

    kind = "memory"
    """The backend's name in spans and metrics."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        history: int = 10_000,
        history_versions: int = 0,
        history_retention: float = 60.0,
        keyring: KeyProvider | None = None,
    ) -> None:
        if clock is not None and not callable(clock):
            raise InvalidArgumentError(f"clock must be a callable, not {clock!r}")
        if not isinstance(history, int) or isinstance(history, bool) or history < 0:
            raise InvalidArgumentError(f"history must be an int >= 0, not {history!r}")
        if keyring is not None and not isinstance(keyring, KeyProvider):
            raise InvalidArgumentError(
                f"keyring must be a KeyRing, not {keyring!r}: KeyRing({{'2026-12': key}}) "
                "with a key from KeyRing.generate_key(), or another KeyProvider"
            )
        self.clock = clock
        self.history = history
        self.history_versions = check_history_versions(history_versions)
        self.history_retention = check_history_retention(history_retention)
        self.keyring = keyring
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._origin = self

    def with_keyring(self, keyring: KeyProvider | None) -> MemoryBackend:
        """This backend's sessions (the same ones), opened with ``keyring``: how
        ``SharedContext("s", keyring=ring)`` seals a session of the process-wide
        memory backend. Closing it closes this backend."""
        if keyring is self.keyring:
            return self
        view = MemoryBackend(
            clock=self.clock,
            history=self.history,
            history_versions=self.history_versions,
            history_retention=self.history_retention,
            keyring=keyring,
        )
        view._sessions, view._lock, view._origin = self._sessions, self._lock, self._origin
        return view

    def open(
        self, session_id: str, hub: EventHub, options: StoreOptions, codec: Codec
    ) -> MemoryStore:
        """A handle on session ``session_id`` for one context (see the class doc)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = self._sessions[session_id] = _Session(self, session_id)
            with session.lock:
                return MemoryStore(session, hub, options, codec, self.keyring)

    @classmethod
    def shared(cls) -> MemoryBackend:
        """The process-wide memory backend: the one ``backend="memory"`` (the default)
        names, so that every context of a session id in this process shares that
        session. Contexts never close it; ``close()`` on it drops every session."""
        return _SHARED

    # -- admin: what `sharedctx sessions`, `delete` and `prune` ask of a backend -----

    def sessions(self) -> list[str]:
        """The ids of the sessions that hold data or have changed, sorted."""
        with self._lock:
            found = list(self._sessions.values())
        return sorted(session.session_id for session in found if session.exists)

    def has_session(self, session_id: str) -> bool:
        """Whether the session exists (without creating it)."""
        with self._lock:
            session = self._sessions.get(session_id)
        return session is not None and session.exists

    def session_summary(self, session_id: str) -> SessionSummary | None:
        """A session's size and lifetime (None if it does not exist)."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            return None
        with session.lock:
            if not session.exists:
                return None
            session.purge_due(session.clock())
            return session.summary()

    def session_summaries(self) -> list[SessionSummary]:
        """Every session with its size and lifetime, sorted by id."""
        found = (self.session_summary(session) for session in self.sessions())
        return [summary for summary in found if summary is not None]

    def drop_session(self, session_id: str) -> bool:
        """Delete a session's data for everyone; False if it did not exist. Its open
        contexts raise ``SessionLostError`` from their next call."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            return False
        with session.lock:
            existed = session.exists
            handles = list(session.handles)
            session.restart()
        for handle in handles:
            handle.lose()
        self.forget(session)
        return existed

    def rekey_session(self, session_id: str) -> bool:
        """Rewrap a sealed session's data key by the key ring's first key (see
        ``SharedContext.rekey``); False if it already was, or the session is not
        sealed or does not exist."""
        if self.keyring is None:
            raise InvalidArgumentError("rekey needs a backend with a keyring")
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            return False
        with session.lock:
            return bool(session.records) and session.rekey(self.keyring)

    def forget(self, session: _Session) -> None:
        """Drop ``session`` if it is unused: no handle, no entry (nothing grows without
        bound in a process that opens a session per request)."""
        with self._lock, session.lock:
            if session.handles or session.entries:
                return
            session.drop()
            if self._sessions.get(session.session_id) is session:
                del self._sessions[session.session_id]

    def close(self) -> None:
        """Drop every session (their data and timers). Idempotent."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            with session.lock:
                session.drop()

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close`."""
        self.close()

    def __repr__(self) -> str:
        sealed = "" if self.keyring is None else f"keyring={self.keyring!r}"
        if self._origin is _SHARED:
            return "memory" if not sealed else f"memory({sealed})"
        clock = "" if self.clock is None else f"clock={self.clock!r}"
        return f"MemoryBackend({', '.join(part for part in (clock, sealed) if part)})"


_SHARED: MemoryBackend


class _Session:
    """One session's data, shared by its handles (see the module docstring)."""

    def __init__(self, backend: MemoryBackend, session_id: str) -> None:
        self.backend = backend
        self.session_id = session_id
        # Active expiry needs deadlines on the scheduler's clock; an injected clock
        # (tests) moves only when told to, so then expiry happens on calls only.
        self.clock = backend.clock or time.monotonic
        self.active_expiry = backend.clock is None
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, ContextEntry] = OrderedDict()
        self.index = SortedList()
        self.tags = _TagIndex()
        self.deadlines: list[tuple[float, str]] = []
        self.revision = 0
        # The last changes, for watches from a revision: (revision, action, entry,
        # traceparent of the call that made it).
        self.history: deque[tuple[int, Action, ContextEntry, str | None]] = deque(
            maxlen=backend.history
        )
        self.expired = self.evicted = 0
        self.written: float | None = None  # wall time of the last write by a caller
        # Held weakly: a context dropped without close() is freed, and then pruned.
        self.handles: weakref.WeakSet[MemoryStore] = weakref.WeakSet()
        self.hubs: tuple[EventHub, ...] = ()  # the handles' hubs, replaced whole
        self.timer: _scheduler.Timer | None = None
        self.dropped = False
        # History (see the module docstring); nothing is kept until `tracking`.
        self.tracking = False
        self.past: dict[str, deque[_Past]] = {}
        self.removed: dict[str, tuple[int, float]] = {}  # key -> (revision, deadline)
        self.aging: list[tuple[float, int, str]] = []  # heap: (deadline, revision, key)
        self.aging_limit = 1024  # its length above which it is rebuilt without stale items
        self.history_floor = self.snapshot_floor = 0
        self.past_count = self.past_bytes = 0
        self.retention = backend.history_retention  # for removals made by the timer
        # A fork's origin: (forked_from, forked_at, revision of its last event).
        self.origin: tuple[str, int, int] | None = None
        # Sealed sessions: the data keys, wrapped (the sealing one first); none when
        # plain. What each key provider's handles know of them, shared by those.
        self.records: tuple[bytes, ...] = ()
        self.keys: dict[int, tuple[KeyProvider, SessionKeys]] = {}
        self.mixed = False  # each handle reads values with its own codec (see regroup)
        self.codecs: tuple[Codec, ...] = ()  # each hub's handle's codec, if mixed

    # -- handles (the caller holds the lock) ------------------------------------------

    @property
    def exists(self) -> bool:
        """Whether the session holds data, has changed since it began, or was forked."""
        return bool(self.entries) or self.revision > 0 or self.origin is not None

    def summary(self) -> SessionSummary:
        """Its size and lifetime (the caller holds the lock)."""
        size = sum(len(key) + len(entry.encoded or b"") for key, entry in self.entries.items())
        written = None if self.written is None else datetime.fromtimestamp(self.written, UTC)
        self.drop_due_history(self.clock())
        return SessionSummary(
            self.session_id, len(self.entries), size, written, None, self.past_bytes
        )

    @property
    def unused(self) -> bool:
        """Whether no handle and no entry are left (the backend may forget it)."""
        return not self.handles and not self.entries

    def attach(self, handle: MemoryStore) -> None:
        self.handles.add(handle)
        self.regroup()
        # Not in the collector's callback, which may run where any lock is held.
        _scheduler.run_when_freed(handle, self.prune)

    def prune(self) -> None:
        """A handle was freed without close(): stop delivering to it, and let the
        backend forget the session if nothing is left."""
        with self.lock:
            self.regroup()
            unused = self.unused
        if unused:
            self.backend.forget(self)

    def detach(self, handle: MemoryStore) -> None:
        self.handles.discard(handle)
        self.regroup()

    def regroup(self) -> None:
        """Note the handles' hubs, and whether each must read entries through its own
        codec: when their codecs differ, and always in a sealed session, whose entries
        keep the codec of the handle that wrote them, which may be gone (a context
        without the keys, or with other keys, never reads through another's)."""
        handles = list(self.handles)
        self.hubs = tuple(handle.hub for handle in handles)
        self.codecs = tuple(handle.codec for handle in handles)
        self.mixed = bool(self.records) or len(set(self.codecs)) > 1

    # -- sealing (the caller holds the lock) ------------------------------------------

    def keys_for(self, provider: KeyProvider) -> SessionKeys:
        """What ``provider``'s handles know of the session's data keys, brought up to
        date. A session has none until its first sealed write (see :meth:`adopt`):
        opening or reading it makes none, as on Redis."""
        self.check_sealable()
        known = self.keys.get(id(provider))
        keys = known[1] if known is not None else SessionKeys(provider, "", self.session_id)
        self.keys[id(provider)] = (provider, keys)
        if keys.records != self.records:
            keys.learn(self.records)
        return keys

    def check_sealable(self) -> None:
        """``ContextError`` if the session holds values written without a key ring."""
        if not self.records and self.entries:
            raise ContextError(
                f"session {self.session_id!r} holds values that are not sealed (it was "
                "written without a key ring); it is not sealed now: export it and "
                "import it into a new session with the key ring"
            )

    def adopt(self, keys: SessionKeys) -> None:
        """The first sealed write (its values sealed by the data key ``keys`` proposed,
        and about to be stored): that key becomes the session's."""
        _, proposed = keys.sealing()
        assert proposed, "a session without a data key was written by a known one"
        self.records = (proposed,)
        self.mixed = True  # (see regroup)
        keys.settle(proposed)
        self.alert()

    def alert(self) -> None:
        """The data keys changed: every handle looks again before its next call."""
        for handle in self.handles:
            handle.alert()

    def rekey(self, provider: KeyProvider) -> bool:
        """Rewrap the data keys by ``provider``'s first key; False if they were."""
        keys = self.keys_for(provider)
        records = tuple(keys.rewrapped(record) for record in self.records)
        if records == self.records:
            return False
        self.records = records
        keys.learn(records)
        return True

    def rotate(self, provider: KeyProvider) -> int:
        """A new data key, every kept value sealed again under it; how many (0, and
        nothing done, for a session without a data key: no sealed value to replace)."""
        keys = self.keys_for(provider)
        if not self.records:
            return 0
        _, record = keys.new_record()
        keys.learn((record, *self.records))
        resealed: dict[int, ContextEntry] = {}

        def again(entry: ContextEntry) -> ContextEntry:
            if entry.encoded is None:
                return entry
            done = resealed.get(id(entry))
            if done is None:
                done = resealed[id(entry)] = replace(
                    entry, encoded=keys.reseal(entry.key, entry.encoded)
                )
            return done

        entries = {key: again(entry) for key, entry in self.entries.items()}
        history = [
            (revision, action, again(entry), traceparent)
            for revision, action, entry, traceparent in self.history
        ]
        # The past versions too (the objects of the change log, mostly: sealed once).
        past = {
            key: deque(_Past(again(kept.entry), kept.deadline) for kept in versions)
            for key, versions in self.past.items()
        }
        for key, entry in entries.items():  # (all computed first: nothing half done)
            self.entries[key] = entry
        self.history.clear()
        self.history.extend(history)
        for key, versions in past.items():
            self.past_bytes += sum(kept.entry.size for kept in versions) - sum(
                kept.entry.size for kept in self.past[key]
            )
            self.past[key] = versions
        self.records = (record,)
        keys.learn(self.records)
        self.alert()
        return len(entries)

    def deliver(self) -> None:
        """Deliver every hub's queued events (call without the lock)."""
        for hub in self.hubs:
            if hub.pending:
                hub.deliver()

    # -- changes (the caller holds the lock) ------------------------------------------

    def changed(self, action: Action, entry: ContextEntry, traceparent: str | None = None) -> None:
        """Record a removal: the next revision, the history, the events."""
        self.revision = revision = self.revision + 1
        if action != "expire":  # "last write": a caller's change, not the clock's
            self.written = _wall()
        removed = entry.without_value()
        self.history.append((revision, action, removed, traceparent))
        key = entry.key
        if self.tracking:
            self.forget_past(key, revision)
        for hub in self.hubs:
            if hub.active and hub.wants(key):
                event = ContextEvent(action, key, removed, self.session_id, revision, traceparent)
                hub.enqueue(event)

    def remove(self, entry: ContextEntry, action: Action, traceparent: str | None = None) -> None:
        key = entry.key
        del self.entries[key]
        self.index.remove(key)
        self.tags.remove(key, entry.tags)
        if action == "expire":
            self.expired += 1
        elif action == "evict":
            self.evicted += 1
        self.changed(action, entry, traceparent)

    def purge_due(self, now: float) -> int:
        deadlines, entries = self.deadlines, self.entries
        purged = 0
        while deadlines and deadlines[0][0] <= now:
            deadline, key = heapq.heappop(deadlines)
            entry = entries.get(key)
            if entry is None or entry.deadline is None:
                continue  # stale: the key is gone or lives forever now
            if entry.deadline == deadline:
                self.remove(entry, "expire")
                purged += 1
            elif entry.deadline > deadline:
                # Its deadline moved later: come back then, so that expiries happen in
                # the order of their deadlines (then keys), whatever the heap held.
                heapq.heappush(deadlines, (entry.deadline, key))
        return purged

    def add_deadline(self, deadline: float, key: str) -> None:
        deadlines = self.deadlines
        if len(deadlines) > 2 * len(self.entries) + 1024:  # mostly stale: rebuild
            deadlines[:] = [
                (entry.deadline, entry.key)
                for entry in self.entries.values()
                if entry.deadline is not None
            ]
            heapq.heapify(deadlines)
        heapq.heappush(deadlines, (deadline, key))
        self.wake_at(deadline)

    def wake_at(self, deadline: float) -> None:
        """Have the timer come by ``deadline`` (with active expiry)."""
        if self.active_expiry and (self.timer is None or deadline < self.timer.when):
            self.schedule(deadline)

    def schedule(self, deadline: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = _scheduler.call_method_at(deadline, self.on_timer)

    def on_timer(self) -> None:
        with self.lock:
            if self.dropped:
                return
            self.timer = None
            now = self.clock()
            self.purge_due(now)
            self.drop_due_history(now)
            heads = [items[0][0] for items in (self.deadlines, self.aging) if items]
            if heads:
                self.schedule(min(heads))
            hubs = [hub for hub in self.hubs if hub.pending]
            unused = self.unused
        for hub in hubs:  # subscribers may be slow: not on the timer thread
            _scheduler.run_soon(hub.deliver)
        if unused:
            self.backend.forget(self)

    def make_room(self, limit: int | None, reject: bool, new_keys: int, keep: set[str]) -> None:
        if limit is None:
            return
        overflow = len(self.entries) + new_keys - limit
        if overflow <= 0:
            return
        if reject or len(keep) > limit or new_keys > limit:
            raise CapacityError(
                f"context {self.session_id!r} holds {len(self.entries)} of at most "
                f"{limit} entries: no room for {new_keys} new key(s); delete some, or "
                "open the context with a larger max_entries="
            )
        victims = []
        for key, entry in self.entries.items():
            if key not in keep:
                victims.append(entry)
                if len(victims) == overflow:
                    break
        for entry in victims:
            self.remove(entry, "evict")

    def reset(self) -> None:
        """Forget every entry (not the revision: it only grows)."""
        self.entries.clear()
        self.index.clear()
        self.tags = _TagIndex()
        self.deadlines.clear()

    def restart(self) -> None:
        """Start the session again from nothing (it was destroyed): no entry, no
        history, revision 0."""
        self.reset()
        self.history.clear()
        self.revision = self.expired = self.evicted = 0
        self.written = None
        self.tracking = False
        for handle in self.handles:
            handle.keep_history(False)
        self.past.clear()
        self.removed.clear()
        self.aging.clear()
        self.aging_limit = 1024
        self.history_floor = self.snapshot_floor = 0
        self.past_count = self.past_bytes = 0
        self.origin = None
        self.records = ()  # the data key goes with the data: what was sealed is shredded
        self.mixed = len(set(self.codecs)) > 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def drop(self) -> None:
        """Forget the session's data and its timer for good (the backend forgets it)."""
        self.dropped = True
        self.restart()

    # -- history (the caller holds the lock) --------------------------------------------

    def track(self, retention: float) -> None:
        """Keep history from now on (a context with ``history_versions`` opened the
        session): the session as it is now is known, its earlier states are not."""
        self.tracking = True
        self.history_floor = self.snapshot_floor = self.revision
        self.retention = retention
        for handle in self.handles:
            handle.keep_history(True)

    def retire(self, old: ContextEntry, revision: int, versions: int, deadline: float) -> None:
        """``old`` was replaced at ``revision``: keep it as a past version until
        ``deadline``, and at most ``versions`` of the key's."""
        key = old.key
        past = self.past.get(key)
        if versions:
            if past is None:
                past = self.past[key] = deque()
            past.append(_Past(old, deadline))
            self.past_count += 1
            self.past_bytes += old.size
            self.age(deadline, old.revision, key)
            if len(past) <= versions:
                return  # nothing dropped
        if past is not None:
            while len(past) > versions:
                dropped = past.popleft()
                self.past_count -= 1
                self.past_bytes -= dropped.entry.size
            if not past:
                del self.past[key]
        # The key's oldest known state moved up: a snapshot below it is unknown.
        oldest = past[0].entry.revision if past else revision
        if oldest > self.snapshot_floor:
            self.snapshot_floor = oldest

    def forget_past(self, key: str, revision: int) -> None:
        """``key`` was removed at ``revision``: its past versions go with it; the
        removal itself is remembered for the retention time (so that the key reads as
        absent after it, and as unknown before it)."""
        now = self.clock()
        if self.aging and self.aging[0][0] <= now:
            self.drop_due_history(now)  # (a record of an earlier removal may be due)
        past = self.past.pop(key, None)
        if past is not None:
            for kept in past:
                self.dropped_past(kept)
        deadline = now + self.retention
        self.removed[key] = (revision, deadline)
        self.age(deadline, revision, key)
        self.snapshot_floor = max(self.snapshot_floor, revision)

    def dropped_past(self, kept: _Past) -> None:
        self.past_count -= 1
        self.past_bytes -= kept.entry.size

    def age(self, deadline: float, revision: int, key: str) -> None:
        aging = self.aging
        if len(aging) > self.aging_limit:  # mostly stale items: rebuild it
            aging[:] = [
                (kept.deadline, kept.entry.revision, name)
                for name, past in self.past.items()
                for kept in past
            ] + [(dropped, removal, name) for name, (removal, dropped) in self.removed.items()]
            heapq.heapify(aging)
            self.aging_limit = 2 * len(aging) + 1024
        heapq.heappush(aging, (deadline, revision, key))
        if self.active_expiry and (self.timer is None or deadline < self.timer.when):
            self.schedule(deadline)

    def drop_due_history(self, now: float) -> None:
        """Drop the past versions and removal records whose time is up (a version
        goes with every older one of its key)."""
        aging = self.aging
        while aging and aging[0][0] <= now:
            _, revision, key = heapq.heappop(aging)
            removal = self.removed.get(key)
            if removal is not None and removal[0] == revision:
                del self.removed[key]
                self.history_floor = max(self.history_floor, revision)
                continue
            past = self.past.get(key)
            if not past or past[0].entry.revision > revision:
                continue  # stale: dropped already
            while past and past[0].entry.revision <= revision:
                self.dropped_past(past.popleft())
            live = self.entries.get(key)  # (None: it is being removed)
            oldest = past[0].entry.revision if past else 0 if live is None else live.revision
            self.snapshot_floor = max(self.snapshot_floor, oldest)
            if not past:
                del self.past[key]

    def floor_of(self, key: str) -> int:
        """The oldest revision at which the state of ``key`` is known."""
        if not self.tracking:
            return self.revision
        past = self.past.get(key)
        oldest = past[0].entry if past else self.entries.get(key)
        removal = self.removed.get(key)
        floor = self.history_floor if removal is None else max(self.history_floor, removal[0])
        if oldest is None:
            return floor
        if oldest.version > 1:  # its earlier versions were dropped
            return oldest.revision
        return min(oldest.revision, floor)  # created then: absent before, back to floor

    def entry_at(self, key: str, revision: int) -> ContextEntry | None:
        """The entry of ``key`` just after ``revision`` (known: see :meth:`floor_of`)."""
        entry = self.entries.get(key)
        if entry is not None and entry.revision <= revision:
            return entry
        for kept in reversed(self.past.get(key, ())):
            if kept.entry.revision <= revision:
                return kept.entry
        return None

    def check_revision(self, revision: int) -> None:
        if revision > self.revision:
            raise InvalidArgumentError(
                f"revision={revision} is after session {self.session_id!r}'s last change, "
                f"revision {self.revision}"
            )


class _Past(msgspec.Struct, frozen=True, gc=False):
    """A past version of a key, kept until ``deadline`` (of the session's clock)."""

    entry: ContextEntry
    deadline: float


class MemoryStore(InProcessStore):
    """One context's handle on a session of a :class:`MemoryBackend` (see the module
    docstring): its hub, its settings and read counters, over the session's data."""

    def __init__(
        self,
        session: _Session,
        hub: EventHub,
        options: StoreOptions,
        codec: Codec,
        provider: KeyProvider | None = None,
    ) -> None:
        self.session_id = session.session_id
        self.hub = hub
        self._session = session
        self._provider = provider
        self._inner = codec
        self._sealing_keys: SessionKeys | None = None
        self.codec = self._codec_now()
        # A write looks at its value first: a plain handle on a sealed session, or a
        # value sealed before the data key changed.
        self._guard = provider is not None or bool(session.records)
        self.handlers = self.bind_handlers()
        max_entries, eviction = options.max_entries, options.eviction
        backend = session.backend
        versions, retention = options.history_versions, options.history_retention
        self._history_versions = backend.history_versions if versions is None else versions
        self._history_retention = backend.history_retention if retention is None else retention
        self._max_entries = max_entries
        self._reject = eviction == "reject"
        bounded = max_entries is not None
        self._touch_on_read = bounded and eviction == "lru"
        self._touch_on_write = bounded and eviction != "reject"
        self._lock = session.lock
        self._clock = self.clock = session.clock
        """The session's monotonic clock: the one ``entry.deadline`` is on (read by the
        telemetry's expiry lateness)."""
        self._entries = session.entries
        self._deadlines = session.deadlines
        self._pending = hub.pending  # events waiting for delivery
        self._alert = False  # closed, or the session was lost: look before any call
        self._closed = False
        self._lost = False
        self._rekeyed = False  # the session's data keys changed: learn them (alert)
        self._hits = self._misses = 0
        self._calls = 0  # every call that reads or writes; for idle detection
        session.attach(self)  # the backend holds the session's lock
        if session.tracking:
            self.keep_history(True)
        elif self._history_versions:
            session.track(self._history_retention)

    def _codec_now(self) -> Codec:
        """The codec of this handle on the session as it is (the caller holds the lock)."""
        session = self._session
        if self._provider is not None:
            self._sealing_keys = session.keys_for(self._provider)
            return SealedCodec(self._inner, self._sealing_keys)
        if session.records:
            return LockedCodec(self.session_id, record_key_id(session.records[0]))
        return self._inner

    def alert(self) -> None:
        """The session's data keys changed: look again before the next call."""
        self._rekeyed = self._alert = True

    def _own(self, entry: ContextEntry) -> ContextEntry:
        """``entry`` read through this handle's codec (the session's handles differ)."""
        return entry if entry.codec == self.codec else replace(entry, codec=self.codec)

    def _guarded(self, write: ops.Write) -> ops.Write:
        """``write`` as it may be stored: sealed by the current data key (the one its
        handles propose, for a session that has none: see ``_Session.adopt``)."""
        keys = self._sealing_keys
        if keys is None:
            raise KeyUnavailableError(
                f"session {self.session_id!r} is sealed: a context without its key ring "
                f"cannot write key {write.key!r} (keyring=...)",
                self.session_id,
                record_key_id(self._session.records[0]) if self._session.records else None,
            )
        if self._session.records:
            sealing = keys.current  # the session's (learned when the handle looked)
        else:
            self._session.check_sealable()  # (a plain handle may have written)
            sealing = keys.sealing()[0]
        data = keys.reseal(write.key, write.data, sealing)
        return write if data is write.data else replace(write, data=data)

    # -- reads -------------------------------------------------------------------

    @handles(ops.Get)
    def _get(self, operation: ops.Get) -> ContextEntry | None:
        # The hot path: _begin() inlined (it counts as activity through hits/misses).
        with self._lock:
            if self._alert:
                self._check()
            deadlines = self._deadlines
            if deadlines and deadlines[0][0] <= self._clock():
                self._session.purge_due(self._clock())
            entry = self._entries.get(operation.key)
            if entry is None:
                self._misses += 1
            else:
                self._hits += 1
                if self._touch_on_read:
                    self._entries.move_to_end(operation.key)
                if self._session.mixed:
                    entry = self._own(entry)
        if self._pending or len(self._session.hubs) > 1:
            self._session.deliver()
        return entry

    @handles(ops.GetMany)
    def _get_many(self, operation: ops.GetMany) -> dict[str, ContextEntry]:
        with self._lock:
            self._begin()
            found = self._read_many(operation)
        self._session.deliver()
        return found

    def _read_many(self, operation: ops.GetMany) -> dict[str, ContextEntry]:
        """:class:`ops.GetMany`'s entries (the lock held)."""
        found: dict[str, ContextEntry] = {}
        entries = self._entries
        for key in operation.keys:
            entry = entries.get(key)
            if entry is None:
                self._misses += 1
                continue
            self._hits += 1
            found[key] = entry
            if self._touch_on_read:
                entries.move_to_end(key)
        if self._session.mixed:
            found = {key: self._own(entry) for key, entry in found.items()}
        return found

    @handles(ops.Contains)
    def _contains(self, operation: ops.Contains) -> bool:
        with self._lock:
            self._begin()
            found = operation.key in self._entries
        self._session.deliver()
        return found

    @handles(ops.Find)
    def _find(self, operation: ops.Find) -> list[ContextEntry]:
        with self._lock:
            self._begin()
            found = self._read_found(operation)
        self._session.deliver()
        return found

    def _read_found(self, operation: ops.Find) -> list[ContextEntry]:
        """:class:`ops.Find`'s entries (the lock held)."""
        page, entries = operation.page, self._entries
        keys = self._matching(operation.glob, page.after)
        found = [entries[key] for key in _paged(keys, page)]
        if self._session.mixed:
            found = [self._own(entry) for entry in found]
        return found

    @handles(ops.ReadWithRevision)
    def _read_with_revision(self, operation: ops.ReadWithRevision) -> tuple[Any, int | None]:
        read = operation.read
        with self._lock:
            self._begin()
            if isinstance(read, ops.GetMany):
                found: Any = self._read_many(read)
            else:
                found = self._read_found(read)
            revision = self._session.revision
        self._session.deliver()
        return found, revision

    @handles(ops.FindTag)
    def _find_tag(self, operation: ops.FindTag) -> list[ContextEntry]:
        page = operation.page
        with self._lock:
            self._begin()
            keys = self._session.tags.keys(operation.tag, page.after)
            entries = self._entries
            found = [entries[key] for key in _paged(keys, page)]
            if self._session.mixed:
                found = [self._own(entry) for entry in found]
        self._session.deliver()
        return found

    @handles(ops.Keys)
    def _keys(self, operation: ops.Keys) -> list[str]:
        page = operation.page
        with self._lock:
            self._begin()
            found = list(_paged(self._matching(operation.glob, page.after), page))
        self._session.deliver()
        return found

    @handles(ops.Tags)
    def _tag_counts(self, operation: ops.Tags) -> dict[str, int]:
        with self._lock:
            self._begin()
            counts = self._session.tags.counts()
        self._session.deliver()
        return counts

    @handles(ops.Count)
    def _count(self, operation: ops.Count) -> int:
        with self._lock:
            self._begin()
            size = len(self._entries)
        self._session.deliver()
        return size

    @handles(ops.Revision)
    def _revision(self, operation: ops.Revision) -> int:
        with self._lock:
            self._begin()
            revision = self._session.revision
        self._session.deliver()
        return revision

    @handles(ops.Stats)
    def _stats(self, operation: ops.Stats) -> ContextStats:
        session = self._session
        with self._lock:
            session.drop_due_history(self._begin())
            stats = ContextStats(
                entries=len(self._entries),
                hits=self._hits,
                misses=self._misses,
                expired=session.expired,
                evicted=session.evicted,
                subscriptions=operation.subscriptions,
                revision=session.revision,
                past_versions=session.past_count,
                past_bytes=session.past_bytes,
            )
        session.deliver()
        return stats

    @handles(ops.Activity)
    def _activity(self, operation: ops.Activity) -> int:
        # get and write count through hits, misses and the revision; the rest in _calls.
        return self._calls + self._hits + self._misses + self._session.revision

    def _matching(self, glob: Glob, after: str | None) -> Iterable[str]:
        prefix = glob.prefix
        if glob.is_literal:
            found = prefix in self._entries and (after is None or prefix > after)
            return (prefix,) if found else ()
        end = _prefix_end(prefix)  # the keys that start with prefix are below it
        index = self._session.index
        if after is not None and after >= prefix:
            keys = index.irange(after, end, inclusive=(False, False))
        elif prefix:
            keys = index.irange(prefix, end, inclusive=(True, False))
        else:
            keys = iter(index)
        return keys if glob.selects_prefix else filter(glob.match, keys)

    # -- writes ------------------------------------------------------------------

    @handles(ops.Write)
    def _write(self, write: ops.Write) -> ContextEntry:
        key = write.key
        try:
            with self._lock:  # _begin() inlined: this is the hot path of set
                if self._alert:
                    self._check()
                if self._guard:
                    write = self._guarded(write)
                now = self._clock()
                deadlines = self._deadlines
                if deadlines and deadlines[0][0] <= now:
                    self._session.purge_due(now)
                old = self._entries.get(key)
                if_version = write.if_version
                if if_version is not None:
                    version = 0 if old is None else old.version
                    if version != if_version:
                        raise VersionConflictError(key, if_version, version)
                if old is None and self._max_entries is not None:
                    self._session.make_room(self._max_entries, self._reject, 1, set())
                if self._guard and not self._session.records and self._sealing_keys:
                    self._session.adopt(self._sealing_keys)
                return self._put(write, old, now, _wall())
        finally:
            if self._pending or len(self._session.hubs) > 1:
                self._session.deliver()

    @handles(ops.WriteMany)
    def _write_many(self, operation: ops.WriteMany) -> list[ContextEntry]:
        writes = operation.items
        try:
            with self._lock:
                now = self._begin()
                if self._guard:
                    writes = tuple(self._guarded(write) for write in writes)
                entries = self._entries
                for write in writes:
                    if write.if_version is not None:
                        old = entries.get(write.key)
                        version = 0 if old is None else old.version
                        if version != write.if_version:
                            raise VersionConflictError(write.key, write.if_version, version)
                batch = {write.key for write in writes}
                new_keys = sum(key not in entries for key in batch)
                self._session.make_room(self._max_entries, self._reject, new_keys, batch)
                if writes and self._guard and not self._session.records and self._sealing_keys:
                    self._session.adopt(self._sealing_keys)
                wall = _wall()
                traced = operation.traceparent
                return [
                    self._put(write, entries.get(write.key), now, wall, traced) for write in writes
                ]
        finally:
            self._session.deliver()

    def _put(
        self,
        write: ops.Write,
        old: ContextEntry | None,
        now: float,
        wall: float,
        traced: str | None = None,
    ) -> ContextEntry:
        # The one place an entry is written; the caller holds the lock and made room.
        # `traced`: the trace context of a set_multiple (else the write's own).
        session = self._session
        session.revision = revision = session.revision + 1
        session.written = wall
        key, ttl, source, tags = write.key, write.ttl, write.source, write.tags
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
                key, 1, revision, source, tags, write.data, wall, wall, ttl, expires,
                deadline, self.codec,
            )  # fmt: skip
            session.index.add(key)
            session.tags.add(key, tags)
        else:
            if source is None:
                source = old.source
            if tags is None:
                tags = old.tags
            elif tags != old.tags:
                session.tags.remove(key, old.tags)
                session.tags.add(key, tags)
            entry = ContextEntry(
                key, old.version + 1, revision, source, tags, write.data, old.created, wall,
                ttl, expires, deadline, self.codec,
            )  # fmt: skip
        entries = self._entries
        entries[key] = entry
        if old is not None and self._touch_on_write:
            entries.move_to_end(key)
        if deadline is not None and (
            old is None or old.deadline is None or deadline < old.deadline
        ):
            session.add_deadline(deadline, key)
        traceparent = write.traceparent if traced is None else traced
        session.history.append((revision, "set", entry, traceparent))
        if session.mixed:  # each hub's entry decodes through its own handle's codec
            for hub, codec in zip(session.hubs, session.codecs, strict=True):
                if hub.active and hub.wants(key):
                    own = entry if entry.codec == codec else replace(entry, codec=codec)
                    event = ContextEvent("set", key, own, self.session_id, revision, traceparent)
                    hub.enqueue(event)
            return entry
        for hub in session.hubs:
            if hub.active and hub.wants(key):
                event = ContextEvent("set", key, entry, self.session_id, revision, traceparent)
                hub.enqueue(event)
        return entry

    @handles(ops.Delete)
    def _delete(self, operation: ops.Delete) -> bool:
        with self._lock:
            self._begin()
            entry = self._entries.get(operation.key)
            if entry is not None:
                self._session.remove(entry, "delete", operation.traceparent)
        self._session.deliver()
        return entry is not None

    @handles(ops.Expire)
    def _expire(self, operation: ops.Expire) -> bool:
        key, ttl = operation.key, operation.ttl
        with self._lock:
            now = self._begin()
            entry = self._entries.get(key)
            if entry is not None:
                self._session.written = _wall()  # a new TTL is a write, as on Redis
            if entry is not None and ttl is None:
                self._entries[key] = replace(entry, ttl=None, expires=None, deadline=None)
            elif entry is not None and ttl is not None:
                deadline = now + ttl
                self._entries[key] = replace(
                    entry, ttl=ttl, expires=_wall() + ttl, deadline=deadline
                )
                if entry.deadline is None or deadline < entry.deadline:
                    self._session.add_deadline(deadline, key)
        self._session.deliver()
        return entry is not None

    @handles(ops.PurgeExpired)
    def _purge_expired(self, operation: ops.PurgeExpired) -> int:
        with self._lock:
            if self._alert:
                self._check()
            self._calls += 1
            now = self._clock()
            purged = self._session.purge_due(now)
            self._session.drop_due_history(now)
        self._session.deliver()
        return purged

    @handles(ops.Clear)
    def _clear(self, operation: ops.Clear) -> int:
        session = self._session
        with self._lock:
            self._begin()
            entries = self._entries
            removed = [entries[key] for key in session.index]  # in key order, as on Redis
            for entry in removed:
                session.changed("delete", entry, operation.traceparent)
            session.reset()
        session.deliver()
        return len(removed)

    @handles(ops.TakeLease)
    def _lease(self, operation: ops.TakeLease) -> Lease:
        # The context already runs one factory per process: nothing to lease here.
        entry = self._get(ops.Get(operation.key))
        return Lease("lead") if entry is None else Lease("value", entry)

    @handles(ops.Release)
    def _release(self, operation: ops.Release) -> None:
        with self._lock:
            self._begin()

    # -- history -------------------------------------------------------------------

    def keep_history(self, keeping: bool) -> None:
        """Make this handle's writes keep what they replace, or not: the session
        starts or stops keeping history (it holds the lock). The handle becomes a
        :class:`_KeepingStore`, whose ``_put`` does; so a write in a session without
        history costs what it did before history existed."""
        self.__class__ = _KeepingStore if keeping else MemoryStore

    def _retire(self, old: ContextEntry, revision: int, now: float) -> None:
        session = self._session
        if session.aging and session.aging[0][0] <= now:
            session.drop_due_history(now)
        session.retention = self._history_retention
        session.retire(old, revision, self._history_versions, now + self._history_retention)

    @handles(ops.History)
    def _history(self, operation: ops.History) -> list[ContextEntry]:
        key, session = operation.key, self._session
        with self._lock:
            session.drop_due_history(self._begin())
            live = self._entries.get(key)
            found = [] if live is None else [live]
            found += [kept.entry for kept in reversed(session.past.get(key, ()))]
            found = found[: operation.limit]
            if session.mixed:
                found = [self._own(entry) for entry in found]
        session.deliver()
        return found

    @handles(ops.GetAt)
    def _get_at(self, operation: ops.GetAt) -> ContextEntry | None:
        key, revision, session = operation.key, operation.revision, self._session
        with self._lock:
            session.drop_due_history(self._begin())
            session.check_revision(revision)
            floor = session.floor_of(key)
            if revision < floor:
                raise HistoryCompactedError(self.session_id, revision, floor, key)
            entry = session.entry_at(key, revision)
            if entry is not None and session.mixed:
                entry = self._own(entry)
        session.deliver()
        return entry

    @handles(ops.FindAt)
    def _find_at(self, operation: ops.FindAt) -> tuple[int, list[ContextEntry]]:
        session, tag, limit = self._session, operation.tag, operation.page.limit
        with self._lock:
            session.drop_due_history(self._begin())
            revision = session.revision if operation.revision is None else operation.revision
            session.check_revision(revision)
            floor = session.snapshot_floor if session.tracking else session.revision
            if revision < floor:
                raise HistoryCompactedError(self.session_id, revision, floor)
            found: list[ContextEntry] = []
            # Every key of the session then is live now: a removal since would have
            # raised the floor above `revision`.
            for key in self._matching(operation.glob, operation.page.after):
                entry = session.entry_at(key, revision)
                if entry is None or (tag is not None and tag not in entry.tags):
                    continue
                found.append(entry)
                if len(found) == limit:
                    break
            if session.mixed:
                found = [self._own(entry) for entry in found]
        session.deliver()
        return revision, found

    @handles(ops.Fork)
    def _fork(self, operation: ops.Fork) -> int:
        session = self._session
        with self._lock:
            now = self._begin()
            if session.exists:
                raise SessionExistsError(
                    f"session {self.session_id!r} already exists: a fork needs a new id"
                )
            wall = _wall()
            entries = [
                entry
                for entry in operation.entries
                if entry.expires is None or entry.expires > wall
            ]
            if self._max_entries is not None and len(entries) > self._max_entries:
                raise CapacityError(
                    f"context {self.session_id!r} holds at most {self._max_entries} entries: "
                    f"no room for the {len(entries)} of the fork"
                )
            if entries and self._guard:
                entries = self._sealed_fork(entries)
            origin = operation.forked_from, operation.forked_at
            for given in entries:
                self._put_forked(given, now, wall, origin)
            session.origin = (*origin, session.revision)
            session.written = wall
        session.deliver()
        return session.revision

    def _sealed_fork(self, entries: list[ContextEntry]) -> list[ContextEntry]:
        """The entries of a fork into a sealed session, sealed by the data key its
        handle proposes, which the new session takes with them (as a first write's)."""
        keys = self._sealing_keys
        assert keys is not None, "a session that does not exist has no data key to guard"
        sealing = keys.sealing()[0]
        sealed = []
        for entry in entries:
            assert entry.encoded is not None
            data = keys.reseal(entry.key, entry.encoded, sealing)
            sealed.append(entry if data is entry.encoded else replace(entry, encoded=data))
        self._session.adopt(keys)
        return sealed

    def _put_forked(
        self, given: ContextEntry, now: float, wall: float, origin: tuple[str, int]
    ) -> None:
        session = self._session
        session.revision = revision = session.revision + 1
        key = given.key
        deadline = None if given.expires is None else now + (given.expires - wall)
        entry = replace(given, revision=revision, deadline=deadline, codec=self.codec)
        self._entries[key] = entry
        session.index.add(key)
        session.tags.add(key, entry.tags)
        if deadline is not None:
            session.add_deadline(deadline, key)
        session.history.append((revision, "set", entry, None))
        forked_from, forked_at = origin
        for hub in session.hubs:
            if hub.active and hub.wants(key):
                event = ContextEvent(
                    "set",
                    key,
                    entry,
                    self.session_id,
                    revision,
                    forked_from=forked_from,
                    forked_at=forked_at,
                )
                hub.enqueue(event)

    # -- sealed sessions ---------------------------------------------------------

    @handles(ops.Rekey)
    def _rekey(self, operation: ops.Rekey) -> bool:
        with self._lock:
            self._begin()
            return self._session.rekey(self._sealing())

    @handles(ops.RotateDataKey)
    def _rotate(self, operation: ops.RotateDataKey) -> int:
        with self._lock:
            self._begin()
            return self._session.rotate(self._sealing())

    def _sealing(self) -> KeyProvider:
        if self._provider is None:
            raise KeyUnavailableError(
                f"session {self.session_id!r} was opened without a key ring: rekey and "
                "rotate_data_key need one (keyring=...)",
                self.session_id,
            )
        return self._provider

    # -- events and lifecycle ----------------------------------------------------

    @handles(ops.Subscribe)
    def _subscribe(self, operation: ops.Subscribe) -> None:
        subscription = operation.subscription
        with self._lock:
            self._begin()
            since = subscription.since
            if since is not None:
                self._replay(subscription, since)
            self.hub.add(subscription, self._session.revision)
        self._session.deliver()

    def _replay(self, subscription: Subscription, since: int) -> None:
        """Queue for ``subscription`` alone the kept changes after ``since``."""
        session = self._session
        if since > session.revision:
            raise InvalidArgumentError(
                f"since={since} is after session {self.session_id!r}'s last change, "
                f"revision {session.revision}"
            )
        history = session.history
        oldest = history[0][0] if history else session.revision + 1
        if since + 1 < oldest:
            raise WatchOverflowError(
                f"changes {since + 1} to {oldest - 1} of session {self.session_id!r} are "
                f"no longer kept (the backend keeps the last {history.maxlen})"
            )
        replayed = []
        removed: set[str] = set()  # keys removed later: their earlier values are gone
        for revision, action, entry, traceparent in reversed(history):
            if revision <= since:
                break
            if action != "set":
                removed.add(entry.key)
            elif entry.key in removed:
                entry = entry.without_value()
            elif session.mixed:
                entry = self._own(entry)
            replayed.append(self._replayed(action, entry, revision, traceparent))
        for event in reversed(replayed):
            self.hub.enqueue(event, only=subscription)

    def _replayed(
        self, action: Action, entry: ContextEntry, revision: int, traceparent: str | None
    ) -> ContextEvent:
        origin = self._session.origin
        if origin is not None and revision <= origin[2]:  # an event of the fork
            return ContextEvent(
                action,
                entry.key,
                entry,
                self.session_id,
                revision,
                traceparent,
                forked_from=origin[0],
                forked_at=origin[1],
            )
        return ContextEvent(action, entry.key, entry, self.session_id, revision, traceparent)

    @handles(ops.Unsubscribe)
    def _unsubscribe(self, operation: ops.Unsubscribe) -> bool:
        return self.hub.remove(operation.subscription_id)

    @handles(ops.Close)
    def _close(self, operation: ops.Close) -> None:
        session = self._session
        with self._lock:
            if self._closed:
                return
            self._closed = self._alert = True
            session.detach(self)
            unused = session.unused
        if unused:
            session.backend.forget(session)
        self.hub.remove_all()

    @handles(ops.Destroy)
    def _destroy(self, operation: ops.Destroy) -> None:
        session = self._session
        with self._lock:
            if self._closed:
                return
            others = [handle for handle in session.handles if handle is not self]
            session.restart()
        for handle in others:
            handle.lose()
        self._close(ops.Close())

    def lose(self) -> None:
        """Another handle destroyed the session: tell this one's subscriptions, and
        make its next call raise ``SessionLostError`` (once; it goes on empty)."""
        error = self._lost_error()
        with self._lock:  # it goes on with the session empty: and keeps its history
            if self._history_versions and not self._session.tracking:
                self._session.track(self._history_retention)
        self._lost = self._alert = True
        self.hub.restart()
        self.hub.fail_all(error)

    def _lost_error(self) -> SessionLostError:
        return SessionLostError(
            f"session {self.session_id!r} was destroyed by another context; it goes on empty"
        )

    # -- internals (the caller holds the lock) -------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise ContextClosedError(
                f"context {self.session_id!r} is closed: open a new SharedContext for the "
                "session to go on using it"
            )
        if self._rekeyed or self._lost:  # (a destroyed session is sealed anew)
            self._rekeyed = False
            codec = self._codec_now()
            if codec != self.codec:
                self.codec = codec
                self._session.regroup()
            self._guard = self._provider is not None or bool(self._session.records)
        self._alert = False
        if self._lost:
            self._lost = False
            raise self._lost_error()

    def _begin(self) -> float:
        """Check the store is open and drop what is due; return the clock's time."""
        if self._alert:
            self._check()
        self._calls += 1
        now = self._clock()
        deadlines = self._deadlines
        if deadlines and deadlines[0][0] <= now:
            self._session.purge_due(now)
        return now


class _KeepingStore(MemoryStore):
    """A handle on a session that keeps history (see :meth:`MemoryStore.keep_history`)."""

    def _put(
        self,
        write: ops.Write,
        old: ContextEntry | None,
        now: float,
        wall: float,
        traced: str | None = None,
    ) -> ContextEntry:
        if old is not None:  # it becomes a past version, before the entry replaces it
            self._retire(old, self._session.revision + 1, now)
        return super()._put(write, old, now, wall, traced)


_SHARED = MemoryBackend()


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

    def counts(self) -> dict[str, int]:
        """Each tag with the number of keys that carry it, sorted by tag."""
        counts = {
            tag: len(keys) - len(self._removed.get(tag, ())) for tag, keys in self._sorted.items()
        }
        return {tag: counts[tag] for tag in sorted(counts) if counts[tag]}

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
