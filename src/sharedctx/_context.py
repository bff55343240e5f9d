"""``SharedContext``: the public API of one pipeline session's shared state.

The context checks arguments, encodes values with its codec and applies defaults;
each public call becomes one operation (``sharedctx.backends.ops``) that the store
(see ``sharedctx.backends``) does atomically. A call and its awaitable twin build the
same operation: the sync method gives it to ``self._execute`` (the store's
``execute``), the twin awaits ``self._aexecute``; a multi-step call (``update``,
``get_or_set``, the waits) is a generator of steps from ``_multistep``, run by
``steps.run`` / ``steps.arun`` on the same two. Those two attributes are the one place
every call goes through. See ``docs/architecture.md`` ("How a twin is written").
"""

from __future__ import annotations

import enum
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any, TypeVar, overload

import msgspec

from sharedctx import _multistep, _telemetry, steps
from sharedctx._checks import (
    MAX_KEY_LENGTH,
    check_history_retention,
    check_history_versions,
    check_key,
    check_keys,
    check_positive_int,
    check_revision,
    check_session_id,
    check_source,
    check_tags,
    check_timeout,
    check_ttl,
    check_version,
)
from sharedctx._closeable import Closeable
from sharedctx._codec import Codec, MsgpackCodec, convert
from sharedctx._errors import (
    ContextClosedError,
    ContextError,
    InvalidArgumentError,
    VersionConflictError,
)
from sharedctx._events import EventHub, Subscription, Watch
from sharedctx._glob import compile_glob
from sharedctx._sealed import KeyProvider, SealedCodec
from sharedctx._snapshot import EXPORT_PAGE, Snapshot, page_of, record_of
from sharedctx._types import ContextEntry, ContextEvent, ContextStats, KeepTTL
from sharedctx.backends import open_backend
from sharedctx.backends.base import Backend, Eviction, Store, StoreOptions
from sharedctx.backends.ops import (
    Activity,
    Clear,
    Close,
    Contains,
    Count,
    Delete,
    Destroy,
    Expire,
    Find,
    FindAt,
    FindTag,
    Fork,
    Get,
    GetAt,
    GetMany,
    History,
    Keys,
    Operation,
    Page,
    PurgeExpired,
    Rekey,
    Revision,
    RotateDataKey,
    Stats,
    Subscribe,
    Tags,
    TTLArg,
    Unsubscribe,
    Write,
    WriteMany,
)
from sharedctx.telemetry import Telemetry

__all__ = ["TTL", "SharedContext"]

T = TypeVar("T")
D = TypeVar("D")

_EVICTIONS = ("lru", "oldest", "reject")


class _Default(enum.Enum):
    DEFAULT = "the context's default_ttl"

    def __repr__(self) -> str:
        return "<default_ttl>"


_DEFAULT = _Default.DEFAULT
TTL = float | timedelta | None
"""Seconds, a ``timedelta``, or None for no expiry."""


_COUNT, _REVISION, _TAGS, _ACTIVITY = Count(), Revision(), Tags(), Activity()
_PURGE, _CLEAR = PurgeExpired(), Clear()
_ALL_KEYS = compile_glob("*")
_REKEY, _ROTATE = Rekey(), RotateDataKey()


class SharedContext(Closeable):
    """The shared state of one pipeline session: a thread-safe key-value store with
    TTLs, versions, glob and tag queries, and change notifications.

    Every method is safe to call from many threads, and every operation is atomic
    (linearizable). Each method that reads or writes has an awaitable twin named
    with an ``a`` prefix (``aget``, ``aset``, ...), so threads and asyncio tasks can
    share one context. Values are stored as encoded snapshots: what ``get`` returns
    is an independent copy.

    Args:
        session_id: names the session (non-empty ``str``).
        default_ttl: seconds (or ``timedelta``) an entry lives when ``set`` gives no
            ``ttl``; None: forever.
        max_entries: most live entries; a new key in a full context first drops
            expired entries, then evicts by ``eviction``. None: no limit.
        max_entry_bytes: largest encoded value (``ValueTooLargeError`` above it).
        eviction: ``"lru"`` (least recently read or written), ``"oldest"`` (least
            recently written) or ``"reject"`` (raise ``CapacityError``).
        notifications: False disables ``subscribe`` and ``watch``.
        history_versions: how many past versions of each key to keep when this context
            overwrites it (for :meth:`history`, reads at a revision, :meth:`snapshot`
            and :meth:`fork`); 0 keeps none. None: the backend's default (0).
        history_retention: seconds (or ``timedelta``) a past version is kept at most.
            None: the backend's default (Redis: its ``event_retention``; memory: 60).
            Past versions go with their key when it is deleted, evicted or expires.
        clock: a shortcut for ``backend=MemoryBackend(clock=clock)``: a monotonic
            clock for tests, which then move time instead of sleeping.
        backend: ``"memory"`` (the default: this process's one memory backend), a
            ``redis://``, ``rediss://``, ``unix://`` or ``redis+cluster://`` URL, or a
            ``Backend`` (``MemoryBackend``, ``RedisBackend``...). A context is a handle
            on its session: every context of one session id on one backend shares it
            (every ``SharedContext("s")`` of a process; every process, on Redis).
        keyring: with a backend URL (``"memory"`` included), a ``KeyRing``: the session
            is sealed, its values encrypted before they leave the process (see
            ``docs/guides/sealed.md``). A ``Backend`` object takes its own
            (``RedisBackend(url, keyring=...)``).
        telemetry: what the context reports as spans and metrics (``Telemetry``;
            None: the process's default, ``sharedctx.telemetry.set_default``). Looked
            at once, when the context opens: see ``docs/guides/telemetry.md``.

    The defaults are those of every way of opening a context (``ContextManager`` and
    ``context_manager``, a ``PipelineContext`` or other ``Schema`` made from a session
    id, the LangGraph ``SharedContextStore`` made from a session id): entries live
    until deleted (no ``default_ttl``), no limit on their number (``max_entries``),
    values up to 100 KiB encoded (``max_entry_bytes=102400``), ``"lru"`` eviction when
    a limit is given, notifications on, and the process-wide memory backend.

    A context is a handle: ``close()`` releases it and keeps the data for the other
    handles (a memory session with no entry and no open handle is dropped, so a
    process that opens a session per request does not grow); ``destroy()`` deletes the
    session for all of them. To free what a session holds without deleting it by
    hand, give its entries a TTL.
    """

    def __init__(
        self,
        session_id: str,
        *,
        default_ttl: TTL = None,
        max_entries: int | None = None,
        max_entry_bytes: int = 102400,
        eviction: Eviction = "lru",
        notifications: bool = True,
        history_versions: int | None = None,
        history_retention: TTL = None,
        clock: Callable[[], float] | None = None,
        backend: str | Backend = "memory",
        keyring: KeyProvider | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._session_id = check_session_id(session_id)
        settings = _telemetry.resolve(telemetry)
        default = check_ttl(default_ttl, what="default_ttl")
        assert not isinstance(default, KeepTTL)
        self._default_ttl: float | None = default
        self._max_entries = check_positive_int(max_entries, "max_entries", allow_none=True)
        self._max_entry_bytes: int = check_positive_int(max_entry_bytes, "max_entry_bytes")
        if eviction not in _EVICTIONS:
            raise InvalidArgumentError(f"eviction must be one of {_EVICTIONS}, not {eviction!r}")
        self._notifications = bool(notifications)
        self._store_options = StoreOptions(
            self._max_entries,
            eviction,
            None if history_versions is None else check_history_versions(history_versions),
            None if history_retention is None else check_history_retention(history_retention),
        )
        # A fork opens its context as this one was opened: from the URL again (a
        # backend of its own), or on the very backend object; with the same key ring.
        self._backend_spec = backend if isinstance(backend, str) and clock is None else None
        self._keyring = keyring
        self._telemetry = telemetry
        self._backend, self._owns_backend = open_backend(backend, clock=clock, keyring=keyring)
        self._hub = EventHub(record_keys=settings.record_keys)
        self._store: Store
        try:
            instrumenting = _telemetry.plan(settings)
            self._store = self._backend.open(
                self._session_id,
                self._hub,
                self._store_options,
                MsgpackCodec(self._max_entry_bytes),
            )
        except BaseException:
            if self._owns_backend:
                self._backend.close()
            raise
        self._codec = self._store.codec  # the session's: the backend may wrap ours
        # The one place every call goes through (see the module docstring): the
        # store's executors, and its direct ones for the hottest calls if it has them;
        # or, with telemetry, the instruments' around them.
        store = self._store
        self._instruments: _telemetry.Instruments | None = None
        if instrumenting is None:
            self._execute = store.execute
            self._aexecute = store.aexecute
            direct = getattr(store, "executor", None)
            self._get = self._execute if direct is None else direct(Get)
            self._write = self._execute if direct is None else direct(Write)
        else:
            try:
                instruments = instrumenting.bind(store, self._backend, self._session_id)
            except BaseException:
                store.execute(Close())
                if self._owns_backend:
                    self._backend.close()
                raise
            self._instruments = instruments
            # Dropped without close(): stop following its session (not at exit).
            weakref.finalize(self, instruments.close).atexit = False
            self._execute = self._get = self._write = instruments.execute
            self._aexecute = instruments.aexecute
        self._watches: set[Watch] = set()
        self._flights = _multistep.Flights()
        self._lock = threading.Lock()  # guards _watches and _closed
        self._closed = False

    # -- properties ----------------------------------------------------------------

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self._session_id

    @property
    def default_ttl(self) -> float | None:
        """Seconds an entry lives when ``set`` gives no ``ttl`` (None: forever)."""
        return self._default_ttl

    @property
    def backend(self) -> Backend:
        """Where the session lives."""
        return self._backend

    @property
    def closed(self) -> bool:
        """Whether ``close()`` or ``destroy()`` was called."""
        return self._closed

    @property
    def activity(self) -> int:
        """A number that changes whenever this object reads or writes: compare two
        readings to tell whether the context was used in between (idle checks); no
        span or metric (bookkeeping, not a call to the session)."""
        return self._store.execute(_ACTIVITY)

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<SharedContext {self._session_id!r} backend={self._backend!r}{state}>"

    # -- reads ---------------------------------------------------------------------

    @overload
    def get(self, key: str, default: Any = None, *, revision: int | None = None) -> Any: ...
    @overload
    def get(self, key: str, default: D, *, type: type[T], revision: int | None = None) -> T | D: ...
    @overload
    def get(self, key: str, *, type: type[T], revision: int | None = None) -> T | None: ...

    def get(
        self, key: str, default: Any = None, *, type: Any = None, revision: int | None = None
    ) -> Any:
        """The value stored under ``key`` (a new copy), or ``default`` if absent.

        With ``type`` (a pydantic model, dataclass, TypedDict, msgspec Struct or any
        type pydantic accepts) the value is converted into it; a value that does not
        fit raises ``SchemaError`` naming the key and the bad field. With ``revision``,
        the value as it was just after that revision (see :meth:`get_entry`).
        """
        if key.__class__ is not str or not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii():
            key = check_key(key)  # the usual key needs no call to be checked
        if revision is None:
            entry = self._get(Get(key))
        else:
            entry = self._execute(GetAt(key, check_revision(revision)))
        if entry is None:
            return default
        return entry.value if type is None else convert(key, entry.value, type)

    @overload
    async def aget(self, key: str, default: Any = None, *, revision: int | None = None) -> Any: ...
    @overload
    async def aget(
        self, key: str, default: D, *, type: type[T], revision: int | None = None
    ) -> T | D: ...
    @overload
    async def aget(self, key: str, *, type: type[T], revision: int | None = None) -> T | None: ...

    async def aget(
        self, key: str, default: Any = None, *, type: Any = None, revision: int | None = None
    ) -> Any:
        """Awaitable twin of :meth:`get`."""
        return _value(key, await self._aexecute(_read(key, revision)), default, type)

    def get_entry(self, key: str, *, revision: int | None = None) -> ContextEntry | None:
        """The entry stored under ``key`` (value and metadata), or None.

        With ``revision`` (a :attr:`revision` of this session), the entry as it was just
        after that revision, or None if the key was absent then; a past version is
        read from the session's kept history (``history_versions``). Raises
        ``HistoryCompactedError`` naming the oldest revision still readable for the key
        if that state is no longer kept, and ``InvalidArgumentError`` if ``revision`` is
        after the session's last change. A read at a revision is not a read for the
        stats or LRU.
        """
        if revision is not None:
            return self._execute(GetAt(check_key(key), check_revision(revision)))
        if key.__class__ is not str or not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii():
            key = check_key(key)  # as in get
        return self._get(Get(key))

    async def aget_entry(self, key: str, *, revision: int | None = None) -> ContextEntry | None:
        """Awaitable twin of :meth:`get_entry`."""
        return await self._aexecute(_read(key, revision))

    # -- history ---------------------------------------------------------------------

    def history(self, key: str, *, limit: int | None = None) -> list[ContextEntry]:
        """The kept versions of ``key``, newest first: the live entry (if any), then
        the past versions the session keeps (``history_versions``, for
        ``history_retention``), each with its value, version, revision and times; at
        most ``limit``. Empty for a key that is absent: a deleted, evicted or expired
        key's past versions went with it. One call on every backend.
        """
        return self._execute(History(check_key(key), _limit(limit)))

    async def ahistory(self, key: str, *, limit: int | None = None) -> list[ContextEntry]:
        """Awaitable twin of :meth:`history`."""
        return await self._aexecute(History(check_key(key), _limit(limit)))

    def snapshot(self, revision: int | None = None) -> Snapshot:
        """The session as it was just after ``revision`` (None: its current revision):
        a read-only mapping of key to entry with ``find_by_pattern``, ``find_by_tag``
        and paging, read page by page (see :class:`Snapshot`).

        Each page raises ``HistoryCompactedError`` naming the oldest revision at which
        the whole session is still readable if ``revision`` is below it (a key that
        changed since has dropped the version it had then, or was removed since), and
        ``InvalidArgumentError`` if ``revision`` is after the session's last change.
        """
        at = self.revision if revision is None else check_revision(revision)
        return Snapshot(self._session_id, at, self._execute, self._aexecute)

    async def asnapshot(self, revision: int | None = None) -> Snapshot:
        """Awaitable twin of :meth:`snapshot`."""
        at = await self.arevision() if revision is None else check_revision(revision)
        return Snapshot(self._session_id, at, self._execute, self._aexecute)

    def fork(self, new_session_id: str, *, revision: int | None = None) -> SharedContext:
        """A new session on the same backend whose entries are this session's just
        after ``revision`` (None: as it is now), and a context on it (with this
        context's options; close it when done).

        The entries keep their values, versions, sources, tags, times and expiry (the
        TTL left runs on; an entry expired by now is not copied). The new session is
        made in one atomic step: it holds every entry or none, and raises
        ``SessionExistsError``, changing nothing, if ``new_session_id`` exists. It
        starts its own revisions, and its first events (a ``set`` per entry) carry
        ``forked_from`` and ``forked_at``; ``fork(...).export()`` equals
        ``snapshot(revision).export()``. A past revision is read as :meth:`snapshot`
        reads it (``HistoryCompactedError``); ``revision=None`` reads the session as it
        is in one call, so it needs no history. On a Redis Cluster the new session is
        in another slot: the copy is read first, then written in one call.
        """
        return self._run("fork", self._fork(new_session_id, revision))

    async def afork(self, new_session_id: str, *, revision: int | None = None) -> SharedContext:
        """Awaitable twin of :meth:`fork`."""
        return await self._arun("fork", self._fork(new_session_id, revision))

    def _fork(self, new_session_id: str, revision: int | None) -> steps.Steps[SharedContext]:
        new_session_id = check_session_id(new_session_id)
        if new_session_id == self._session_id:
            raise InvalidArgumentError(
                f"a fork of session {new_session_id!r} needs another session id"
            )
        # The entries: in one call if the session as it is now, else page by page
        # (the state at a past revision does not change between pages).
        if revision is None:
            at, entries = yield FindAt(None, _ALL_KEYS)
        else:
            at, entries, after = check_revision(revision), [], None
            while True:
                _, page = yield FindAt(at, _ALL_KEYS, None, Page(after, EXPORT_PAGE))
                entries += page
                if len(page) < EXPORT_PAGE:
                    break
                after = page[-1].key
        forked = SharedContext(
            new_session_id,
            default_ttl=self._default_ttl,
            max_entries=self._max_entries,
            max_entry_bytes=self._max_entry_bytes,
            eviction=self._store_options.eviction,
            notifications=self._notifications,
            history_versions=self._store_options.history_versions,
            history_retention=self._store_options.history_retention,
            backend=self._backend if self._backend_spec is None else self._backend_spec,
            keyring=None if self._backend_spec is None else self._keyring,
            telemetry=self._telemetry,
        )
        try:
            # Written by a store of the fork's own, whose codec (a sealed session's is
            # its own) encodes the values; the context on the fork is the caller's.
            store = self._backend.open(
                new_session_id,
                EventHub(),
                self._store_options,
                MsgpackCodec(self._max_entry_bytes),
            )
            try:
                copied = tuple(_encoded_for(entry, store.codec) for entry in entries)
                fork = Fork(copied, self._session_id, at)
                yield steps.Twin(store.execute, store.aexecute, fork)
            finally:
                store.execute(Close())  # no I/O on any backend
        except BaseException:
            forked.close()
            raise
        return forked

    def has(self, key: str) -> bool:
        """Whether ``key`` holds a live value (does not count as a read for LRU)."""
        return self._execute(Contains(check_key(key)))

    async def ahas(self, key: str) -> bool:
        """Awaitable twin of :meth:`has`."""
        return await self._aexecute(Contains(check_key(key)))

    def __contains__(self, key: object) -> bool:
        return self.has(key)  # type: ignore[arg-type]

    def __len__(self) -> int:
        """Number of live (unexpired) entries."""
        return self._execute(_COUNT)

    def count(self) -> int:
        """Number of live (unexpired) entries (``len(ctx)``)."""
        return self._execute(_COUNT)

    async def acount(self) -> int:
        """Awaitable twin of :meth:`count`."""
        return await self._aexecute(_COUNT)

    def get_multiple(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of those ``keys`` that are present, read at one instant."""
        return _values(self._execute(GetMany(tuple(check_keys(keys)))))

    async def aget_multiple(self, keys: Iterable[str]) -> dict[str, Any]:
        """Awaitable twin of :meth:`get_multiple`."""
        return _values(await self._aexecute(GetMany(tuple(check_keys(keys)))))

    def find_by_pattern(
        self, pattern: str, *, limit: int | None = None, after: str | None = None
    ) -> list[ContextEntry]:
        """Live entries whose key matches the Redis glob ``pattern``, sorted by key.

        A pattern with a literal prefix (``analysis:mind:*``) reads only that prefix's
        range of keys: O(log n + k). For pages, ``limit`` bounds how many come back and
        ``after`` continues after that key (give the last key of the previous page).
        """
        return self._execute(Find(compile_glob(pattern), _page(limit, after)))

    async def afind_by_pattern(
        self, pattern: str, *, limit: int | None = None, after: str | None = None
    ) -> list[ContextEntry]:
        """Awaitable twin of :meth:`find_by_pattern`."""
        return await self._aexecute(Find(compile_glob(pattern), _page(limit, after)))

    def find_by_tag(
        self, tag: str, *, limit: int | None = None, after: str | None = None
    ) -> list[ContextEntry]:
        """Live entries carrying ``tag``, sorted by key (paged as :meth:`find_by_pattern`)."""
        return self._execute(FindTag(check_key(tag, "tag"), _page(limit, after)))

    async def afind_by_tag(
        self, tag: str, *, limit: int | None = None, after: str | None = None
    ) -> list[ContextEntry]:
        """Awaitable twin of :meth:`find_by_tag`."""
        return await self._aexecute(FindTag(check_key(tag, "tag"), _page(limit, after)))

    def keys(
        self, pattern: str = "*", *, limit: int | None = None, after: str | None = None
    ) -> list[str]:
        """Live keys matching the Redis glob ``pattern``, sorted (paged as
        :meth:`find_by_pattern`)."""
        return self._execute(Keys(compile_glob(pattern), _page(limit, after)))

    async def akeys(
        self, pattern: str = "*", *, limit: int | None = None, after: str | None = None
    ) -> list[str]:
        """Awaitable twin of :meth:`keys`."""
        return await self._aexecute(Keys(compile_glob(pattern), _page(limit, after)))

    def tags(self) -> dict[str, int]:
        """Each tag that live entries carry, with how many carry it, sorted by tag (for
        a view's tag filter). Reads every tagged key on Redis: O(n)."""
        return self._execute(_TAGS)

    async def atags(self) -> dict[str, int]:
        """Awaitable twin of :meth:`tags`."""
        return await self._aexecute(_TAGS)

    @property
    def revision(self) -> int:
        """The session's current revision: that of its last change (0 before any).

        Give it as ``since=`` to a wait or a watch to count only the changes made after
        this point. On a shared backend this asks the server.
        """
        return self._execute(_REVISION)

    async def arevision(self) -> int:
        """Awaitable twin of :attr:`revision`."""
        return await self._aexecute(_REVISION)

    def stats(self) -> ContextStats:
        """Counters of this context as of now."""
        return self._execute(Stats(self._subscriptions()))

    async def astats(self) -> ContextStats:
        """Awaitable twin of :meth:`stats`."""
        return await self._aexecute(Stats(self._subscriptions()))

    def _subscriptions(self) -> int:
        # The user's: without the one telemetry's metrics follow the session with.
        instruments = self._instruments
        return len(self._hub) - (0 if instruments is None else instruments.hidden)

    # -- writes --------------------------------------------------------------------

    def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: TTL | KeepTTL | _Default = _DEFAULT,
        source: str | None = None,
        tags: Iterable[str] | None = None,
        if_version: int | None = None,
    ) -> ContextEntry:
        """Store ``value`` under ``key``; return the stored entry.

        ``ttl``: seconds or ``timedelta`` from now (at most ten years), None (never
        expires), KEEP_TTL (keep the key's current expiry), or omitted
        (``default_ttl``). ``source`` defaults to ``"unknown"``; ``tags`` replace the
        previous tags. ``if_version=n`` stores only if the key is at version ``n``
        (0: absent), else raises ``VersionConflictError``. Raises
        ``ValueTooLargeError``, ``SerializationError`` or ``CapacityError`` without
        storing anything.
        """
        return self._write(self._checked_write(key, value, ttl, source, tags, if_version))

    async def aset(
        self,
        key: str,
        value: Any,
        *,
        ttl: TTL | KeepTTL | _Default = _DEFAULT,
        source: str | None = None,
        tags: Iterable[str] | None = None,
        if_version: int | None = None,
    ) -> ContextEntry:
        """Awaitable twin of :meth:`set`."""
        return await self._aexecute(self._checked_write(key, value, ttl, source, tags, if_version))

    def _checked_write(
        self,
        key: str,
        value: Any,
        ttl: TTL | KeepTTL | _Default,
        source: str | None,
        tags: Iterable[str] | None,
        if_version: int | None,
    ) -> Write:
        """The ``Write`` of a ``set``: checked and encoded."""
        if key.__class__ is not str or not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii():
            key = check_key(key)  # as in get
        data = self._codec.encode(key, value)
        if ttl is _DEFAULT and source is None and tags is None and if_version is None:
            return Write(key, data, self._default_ttl, "unknown", ())  # the usual set
        return Write(
            key,
            data,
            self._ttl(ttl, key),
            "unknown" if source is None else check_source(source, key),
            () if tags is None else check_tags(tags, key),
            None if if_version is None else check_version(if_version, key),
        )

    def _ttl(self, ttl: TTL | KeepTTL | _Default, key: str | None = None) -> TTLArg:
        return self._default_ttl if ttl is _DEFAULT else check_ttl(ttl, key, allow_keep=True)

    def set_multiple(
        self,
        mapping: Mapping[str, Any],
        *,
        ttl: TTL | KeepTTL | _Default = _DEFAULT,
        source: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> list[ContextEntry]:
        """Store several values at once: all or none, and no reader sees half of them.

        Options as for :meth:`set`. If any value is rejected nothing is stored.
        """
        return self._execute(self._checked_batch(mapping, ttl, source, tags))

    async def aset_multiple(
        self,
        mapping: Mapping[str, Any],
        *,
        ttl: TTL | KeepTTL | _Default = _DEFAULT,
        source: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> list[ContextEntry]:
        """Awaitable twin of :meth:`set_multiple`."""
        return await self._aexecute(self._checked_batch(mapping, ttl, source, tags))

    def _checked_batch(
        self,
        mapping: Mapping[str, Any],
        ttl: TTL | KeepTTL | _Default,
        source: str | None,
        tags: Iterable[str] | None,
    ) -> WriteMany:
        """The ``WriteMany`` of a ``set_multiple``: every value checked and encoded."""
        if not isinstance(mapping, Mapping):
            raise InvalidArgumentError(
                f"set_multiple takes a mapping of keys to values, not {type(mapping).__name__}"
            )
        ttl_arg = self._ttl(ttl)
        source = "unknown" if source is None else check_source(source)
        tag_tuple = () if tags is None else check_tags(tags)
        encode = self._codec.encode
        writes = []
        for key, value in mapping.items():
            key = check_key(key)
            writes.append(Write(key, encode(key, value), ttl_arg, source, tag_tuple))
        return WriteMany(tuple(writes))

    def export(self, pattern: str = "*") -> Iterator[dict[str, Any]]:
        """The entries matching ``pattern``, as JSON-able records in key order: ``key``,
        ``value``, ``source``, ``tags``, ``version`` and ``ttl`` (the seconds left, or
        None). For archiving a run, comparing two, or moving one (:meth:`import_records`).

        Values are given as JSON has them (``msgspec.to_builtins``: a datetime becomes an
        ISO string, bytes base64), which typed reads (``get(..., type=...)``) turn back.
        The session is read in pages of ``EXPORT_PAGE`` entries as the iterator goes, so
        a session that changes meanwhile is exported as it is page by page.
        """
        glob = compile_glob(pattern)
        after: str | None = None
        while True:
            entries = self._call("export", Find(glob, Page(after, EXPORT_PAGE)))
            yield from map(record_of, entries)
            if len(entries) < EXPORT_PAGE:
                return
            after = entries[-1].key

    async def aexport(self, pattern: str = "*") -> AsyncIterator[dict[str, Any]]:
        """Awaitable twin of :meth:`export` (``async for record in ctx.aexport()``)."""
        glob = compile_glob(pattern)
        after: str | None = None
        while True:
            entries = await self._acall("export", Find(glob, Page(after, EXPORT_PAGE)))
            for record in map(record_of, entries):
                yield record
            if len(entries) < EXPORT_PAGE:
                return
            after = entries[-1].key

    def import_records(
        self, records: Iterable[Mapping[str, Any]], *, overwrite: bool = False
    ) -> list[ContextEntry]:
        """Store records as :meth:`export` gives them, in one atomic batch: all or none.

        Each record needs ``key`` and ``value``; ``source``, ``tags`` and ``ttl``
        (seconds left; None or absent: no expiry) are kept, ``version`` is not (a new
        key starts at 1). Without ``overwrite``, a key that exists raises
        ``VersionConflictError`` and nothing is stored. A bad record raises
        ``InvalidArgumentError`` naming it. A failed or empty import creates nothing
        (no empty session is left behind).
        """
        batch = self._checked_records(records, overwrite)
        if not batch.items:
            return []  # nothing to do: no session is made for it
        try:
            return self._call("import_records", batch)
        except VersionConflictError as conflict:
            raise _import_conflict(conflict) from None

    async def aimport_records(
        self, records: Iterable[Mapping[str, Any]], *, overwrite: bool = False
    ) -> list[ContextEntry]:
        """Awaitable twin of :meth:`import_records`."""
        batch = self._checked_records(records, overwrite)
        if not batch.items:
            return []  # nothing to do: no session is made for it
        try:
            return await self._acall("import_records", batch)
        except VersionConflictError as conflict:
            raise _import_conflict(conflict) from None

    def _checked_records(self, records: Iterable[Mapping[str, Any]], overwrite: bool) -> WriteMany:
        if isinstance(records, Mapping | str | bytes) or not isinstance(records, Iterable):
            raise InvalidArgumentError(
                f"records must be an iterable of records (mappings), not {type(records).__name__}"
            )
        writes: dict[str, Write] = {}
        for number, record in enumerate(records):
            write = self._checked_record(number, record, None if overwrite else 0)
            if write.key in writes:
                raise InvalidArgumentError(f"record {number}: key {write.key!r} comes twice")
            writes[write.key] = write
        return WriteMany(tuple(writes.values()))

    def _checked_record(self, number: int, record: Any, if_version: int | None) -> Write:
        if not isinstance(record, Mapping):
            raise InvalidArgumentError(
                f"record {number} must be a mapping, not {type(record).__name__}"
            )
        missing = [field for field in ("key", "value") if field not in record]
        if missing:
            raise InvalidArgumentError(f"record {number} has no {' or '.join(missing)}")
        try:
            key = check_key(record["key"])
            ttl = record.get("ttl")
            source, tags = record.get("source"), record.get("tags")
            return Write(
                key,
                self._codec.encode(key, record["value"]),
                None if ttl is None else check_ttl(ttl, key),
                "unknown" if source is None else check_source(source, key),
                () if tags is None else check_tags(tags, key),
                if_version,
            )
        except ContextError as exc:  # a bad key, ttl, source, tags, or value
            raise InvalidArgumentError(f"record {number}: {exc}") from exc

    def delete(self, key: str) -> bool:
        """Remove ``key``; False if it was not there."""
        return self._execute(Delete(check_key(key)))

    async def adelete(self, key: str) -> bool:
        """Awaitable twin of :meth:`delete`."""
        return await self._aexecute(Delete(check_key(key)))

    def expire(self, key: str, ttl: TTL) -> bool:
        """Give an existing key a new TTL from now (None: no expiry).

        The value, version and metadata stay; no event is emitted. False if absent.
        """
        return self._execute(Expire(*_checked_expire(key, ttl)))

    async def aexpire(self, key: str, ttl: TTL) -> bool:
        """Awaitable twin of :meth:`expire`."""
        return await self._aexecute(Expire(*_checked_expire(key, ttl)))

    def purge_expired(self) -> int:
        """Remove the entries expired by now, emitting ``expire`` events."""
        return self._execute(_PURGE)

    async def apurge_expired(self) -> int:
        """Awaitable twin of :meth:`purge_expired`."""
        return await self._aexecute(_PURGE)

    def clear(self) -> int:
        """Remove every entry (emitting ``delete`` events); return how many."""
        return self._execute(_CLEAR)

    async def aclear(self) -> int:
        """Awaitable twin of :meth:`clear`."""
        return await self._aexecute(_CLEAR)

    # -- multi-step calls ------------------------------------------------------------

    def update(
        self,
        key: str,
        fn: Callable[[Any], Any],
        *,
        default: Any = None,
        ttl: TTL | KeepTTL | _Default = _DEFAULT,
        source: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> ContextEntry:
        """Atomically replace the value with ``fn(current)``; return the new entry.

        ``current`` is a copy of the stored value, or ``default`` if the key is absent.
        ``fn`` may run more than once if other writers get in between (it is retried
        on a fresh value), so it should have no side effects; its result is written
        once. ``source``/``tags`` omitted keep the entry's current ones.
        """
        return self._run("update", self._update(key, fn, default, ttl, source, tags), key=key)

    async def aupdate(
        self,
        key: str,
        fn: Callable[[Any], Any],
        *,
        default: Any = None,
        ttl: TTL | KeepTTL | _Default = _DEFAULT,
        source: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> ContextEntry:
        """Awaitable twin of :meth:`update`; ``fn`` may also be a coroutine function."""
        calls = self._update(key, fn, default, ttl, source, tags)
        return await self._arun("update", calls, key=key)

    def _update(
        self,
        key: str,
        fn: Callable[[Any], Any],
        default: Any,
        ttl: TTL | KeepTTL | _Default,
        source: str | None,
        tags: Iterable[str] | None,
    ) -> steps.Steps[ContextEntry]:
        key = check_key(key)
        if not callable(fn):
            raise InvalidArgumentError(f"the update function for key {key!r} is not callable")
        return _multistep.update(
            key,
            fn,
            default,
            self._codec,
            self._ttl(ttl, key),
            None if source is None else check_source(source, key),
            None if tags is None else check_tags(tags, key),
        )

    def get_or_set(
        self,
        key: str,
        factory: Callable[[], Any],
        *,
        ttl: TTL | KeepTTL | _Default = _DEFAULT,
        source: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> Any:
        """The value under ``key``; if absent, store ``factory()`` and return it.

        Of concurrent callers for one absent key, exactly one runs ``factory``; the
        others wait for its result: threads and tasks of this context, and on a shared
        backend every process of the session (the first takes a lease, which another
        caller takes over if its holder dies). If ``factory`` raises, nothing is
        stored and the callers waiting in this process get the same exception.
        """
        return self._run("get_or_set", self._get_or_set(key, factory, ttl, source, tags), key=key)

    async def aget_or_set(
        self,
        key: str,
        factory: Callable[[], Any],
        *,
        ttl: TTL | KeepTTL | _Default = _DEFAULT,
        source: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> Any:
        """Awaitable twin of :meth:`get_or_set`; ``factory`` may be a coroutine function."""
        calls = self._get_or_set(key, factory, ttl, source, tags)
        return await self._arun("get_or_set", calls, key=key)

    def _get_or_set(
        self,
        key: str,
        factory: Callable[[], Any],
        ttl: TTL | KeepTTL | _Default,
        source: str | None,
        tags: Iterable[str] | None,
    ) -> steps.Steps[Any]:
        key = check_key(key)
        if not callable(factory):
            raise InvalidArgumentError(f"the factory for key {key!r} must be callable")
        return _multistep.get_or_set(
            key,
            factory,
            self._flights,
            self._unsubscribe,
            self._codec,
            self._ttl(ttl, key),
            "unknown" if source is None else check_source(source, key),
            () if tags is None else check_tags(tags, key),
        )

    def wait_for(
        self,
        pattern: str,
        *,
        count: int = 1,
        timeout: float | None = None,
        since: int | None = None,
    ) -> list[ContextEntry]:
        """Block until at least ``count`` live keys match ``pattern``; return their
        entries sorted by key.

        With ``since`` (a :attr:`revision`), only keys written after that revision
        count: a pipeline run again on the same session waits for its own results,
        not the last run's. Returns at once if they are already there; raises
        ``WaitTimeoutError`` when ``timeout`` seconds pass first. Woken by change events,
        it never polls. Raises ``ContextError`` if called on a thread that runs an
        asyncio event loop (use :meth:`await_for` there).
        """
        heard = self._heard()
        calls = self._wait_for(pattern, count, timeout, since, heard)
        return self._run("wait_for", calls, heard, pattern=pattern)

    async def await_for(
        self,
        pattern: str,
        *,
        count: int = 1,
        timeout: float | None = None,
        since: int | None = None,
    ) -> list[ContextEntry]:
        """Awaitable twin of :meth:`wait_for`; never blocks the event loop."""
        heard = self._heard()
        calls = self._wait_for(pattern, count, timeout, since, heard)
        return await self._arun("wait_for", calls, heard, pattern=pattern)

    def _wait_for(
        self, pattern: str, count: int, timeout: float | None, since: int | None, heard: Any
    ) -> steps.Steps[list[ContextEntry]]:
        glob = compile_glob(pattern)
        return _multistep.wait_for(
            glob,
            check_positive_int(count, "count"),
            check_timeout(timeout),
            self._unsubscribe,
            _since(since),
            None if heard is None else heard.hear,
        )

    def wait_for_keys(
        self, keys: Iterable[str], *, timeout: float | None = None, since: int | None = None
    ) -> dict[str, ContextEntry]:
        """Block until every key of ``keys`` is live (written after revision ``since``,
        if given); return their entries by key.

        Raises ``WaitTimeoutError`` naming the missing keys when ``timeout`` passes, and
        ``ContextError`` on a thread that runs an event loop (use :meth:`await_for_keys`).
        """
        keys = list(keys) if isinstance(keys, Iterator) else keys  # read twice
        heard = self._heard()
        calls = self._wait_for_keys(keys, timeout, since, heard)
        return self._run("wait_for_keys", calls, heard, keys=keys)

    async def await_for_keys(
        self, keys: Iterable[str], *, timeout: float | None = None, since: int | None = None
    ) -> dict[str, ContextEntry]:
        """Awaitable twin of :meth:`wait_for_keys`."""
        keys = list(keys) if isinstance(keys, Iterator) else keys  # read twice
        heard = self._heard()
        calls = self._wait_for_keys(keys, timeout, since, heard)
        return await self._arun("wait_for_keys", calls, heard, keys=keys)

    def _wait_for_keys(
        self, keys: Iterable[str], timeout: float | None, since: int | None, heard: Any
    ) -> steps.Steps[dict[str, ContextEntry]]:
        wanted = list(dict.fromkeys(check_keys(keys)))
        hear = None if heard is None else heard.hear
        return _multistep.wait_for_keys(
            wanted, check_timeout(timeout), self._unsubscribe, _since(since), hear
        )

    # -- the executors, with telemetry ---------------------------------------------------

    def _run(self, name: str, calls: steps.Steps[T], heard: Any = None, **subject: Any) -> T:
        """Perform a multi-step call named ``name`` (``subject``: its key, keys or
        pattern, for a span)."""
        instruments = self._instruments
        if instruments is None:
            return steps.run(calls, self._execute)
        return instruments.run(name, calls, heard, **subject)

    async def _arun(self, name: str, calls: steps.Steps[T], heard: Any = None, **subject: Any) -> T:
        """Awaitable twin of :meth:`_run`."""
        instruments = self._instruments
        if instruments is None:
            return await steps.arun(calls, self._aexecute)
        return await instruments.arun(name, calls, heard, **subject)

    def _call(self, name: str, operation: Operation[T]) -> T:
        """Do ``operation`` as the public call ``name`` (its span's and metric's name)."""
        instruments = self._instruments
        if instruments is None:
            return self._execute(operation)
        return instruments.execute(operation, name)

    async def _acall(self, name: str, operation: Operation[T]) -> T:
        """Awaitable twin of :meth:`_call`."""
        instruments = self._instruments
        if instruments is None:
            return await self._aexecute(operation)
        return await instruments.aexecute(operation, name)

    def _heard(self) -> Any:
        """What a wait tells of the events that wake it (a traced context's), or None."""
        instruments = self._instruments
        return None if instruments is None else instruments.heard()

    # -- notifications ---------------------------------------------------------------

    def subscribe(
        self,
        pattern: str,
        callback: Callable[[ContextEvent], object],
        *,
        since: int | None = None,
    ) -> str:
        """Call ``callback(event)`` for every later change to a key matching ``pattern``.

        Returns the subscription id for :meth:`unsubscribe`. Callbacks run after the
        change is visible, outside the context's lock, one event at a time in revision
        order, on the thread that made the change (or the expiry timer's thread). A
        callback may use the context; an exception it raises is logged to the
        ``"sharedctx"`` logger and affects nobody else. Keep callbacks short. With
        ``since`` (a :attr:`revision`), it first gets the kept changes after that
        revision, in order (``WatchOverflowError`` if they are no longer all kept).
        """
        self._check_notifications()
        if not callable(callback):
            raise InvalidArgumentError(f"callback must be callable, not {callback!r}")
        if self._instruments is not None:
            callback = self._instruments.subscriber(callback)
        subscription = Subscription(compile_glob(pattern), callback, since=_since(since))
        self._execute(Subscribe(subscription))
        return subscription.id

    def unsubscribe(self, subscription_id: str) -> bool:
        """Stop a subscription; False if the id is unknown (or already stopped)."""
        self._check_open()
        return self._execute(Unsubscribe(subscription_id))

    def _unsubscribe(self, subscription_id: str) -> bool:
        # Immediate on every backend, so that asyncio code calls it directly too; a
        # step of a wait or a watch's closing, not a call of its own (no span).
        return self._store.execute(Unsubscribe(subscription_id))

    def watch(
        self, pattern: str = "*", *, max_pending: int = 1000, since: int | None = None
    ) -> Watch:
        """A stream of the changes to keys matching ``pattern`` from now on, or, with
        ``since`` (a :attr:`revision`), from just after that revision: the changes the
        backend still keeps are replayed in order, then it goes live. Raises
        ``WatchOverflowError`` if some of them are no longer kept (memory keeps the
        last ``history`` changes, Redis ``stream_max_len`` for ``event_retention``).

        Iterate it (``for``/``async for``), or call ``get(timeout)``/``aget``; use it
        as a context manager to close it. It holds at most ``max_pending`` unread
        events: a watch that falls further behind is closed, and after its buffered
        events its next read raises ``WatchOverflowError``. Writers never wait for it.
        A replayed set of a key removed since comes without its value.
        """
        self._check_notifications()
        glob = compile_glob(pattern)
        max_pending = check_positive_int(max_pending, "max_pending")
        subscription_id = ""

        def cancel() -> None:
            self._unsubscribe(subscription_id)
            with self._lock:
                self._watches.discard(watch)

        instruments = self._instruments
        if instruments is None:
            watch = Watch(pattern, max_pending, cancel)
        else:
            watch = Watch(
                pattern,
                max_pending,
                cancel,
                on_read=instruments.on_read,
                on_overflow=instruments.on_overflow,
            )
        subscription = Subscription(glob, watch.push, watch.on_error, since=_since(since))
        subscription_id = subscription.id
        with self._lock:
            self._check_open()
            self._watches.add(watch)
        try:
            self._call("watch", Subscribe(subscription))
        except BaseException:
            watch.close()
            raise
        return watch

    def _check_notifications(self) -> None:
        if not self._notifications:
            raise ContextError(
                f"notifications are disabled for context {self._session_id!r} "
                "(notifications=False): subscribe and watch are not available; open "
                "the context without notifications=False to use them"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise ContextClosedError(
                f"context {self._session_id!r} is closed: open a new SharedContext for the "
                "session to go on using it"
            )

    # -- sealed sessions -------------------------------------------------------------

    def rekey(self) -> bool:
        """Rewrap the session's data key by the key ring's first key (a compare and
        set of the wrapped key: safe while others read and write; no value is sealed
        again); False if it already was. After a new key is put first in every ring,
        rekey every session (``sharedctx rekey``); then the old key can go. Raises
        ``KeyUnavailableError`` without a key ring, or if no key of the ring opens the
        data key."""
        return self._execute(_REKEY)

    async def arekey(self) -> bool:
        """Awaitable twin of :meth:`rekey`."""
        return await self._aexecute(_REKEY)

    def rotate_data_key(self) -> int:
        """Give the session a new data key and seal every value it keeps again under it
        (its entries and the values kept beside its events, for watchers): for a
        suspected leak of this session's data key. Returns how many entries were sealed
        again. Writes made meanwhile land sealed by the new key; when it returns, no
        value on the backend needs the old data key, whose wrapped copy is deleted.
        Copies made before (backups, replicas' old files) still hold both."""
        return self._execute(_ROTATE)

    async def arotate_data_key(self) -> int:
        """Awaitable twin of :meth:`rotate_data_key`."""
        return await self._aexecute(_ROTATE)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Release this handle: its subscriptions, watches, and the connections it
        opened. The session's data stays for the other contexts of the session (on
        every backend; a memory session with no entry and no open context is dropped).
        Idempotent; afterwards every other call raises ``ContextClosedError``.
        """
        if self._mark_closed():
            try:
                self._execute(Close())
            finally:
                self._closed_instruments()
                if self._owns_backend:
                    self._backend.close()

    def destroy(self) -> None:
        """Remove the session's data for everyone, then close. Idempotent. The other
        open contexts of the session raise ``SessionLostError`` from their next call
        (once; they go on with the session empty)."""
        if self._mark_closed():
            try:
                self._execute(Destroy())
            finally:
                self._closed_instruments()
                if self._owns_backend:
                    self._backend.close()

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close`; it also closes the connections that this
        event loop used (Redis). Use it in asyncio code."""
        if self._mark_closed():
            try:
                await self._aexecute(Close())
            finally:
                self._closed_instruments()
                if self._owns_backend:
                    await self._backend.aclose()

    async def adestroy(self) -> None:
        """Awaitable twin of :meth:`destroy`."""
        if self._mark_closed():
            try:
                await self._aexecute(Destroy())
            finally:
                self._closed_instruments()
                if self._owns_backend:
                    await self._backend.aclose()

    def _closed_instruments(self) -> None:
        if self._instruments is not None:
            self._instruments.close()

    def _mark_closed(self) -> bool:
        """Mark the context closed and end its watches; False if it already was."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            watches = list(self._watches)
        for watch in watches:
            watch.close()
        return True


def _import_conflict(conflict: VersionConflictError) -> VersionConflictError:
    """The conflict of an import without ``overwrite``, saying what to do about it."""
    return VersionConflictError(
        conflict.key,
        conflict.expected,
        conflict.actual,
        f"key {conflict.key!r} exists (version {conflict.actual}): nothing was imported; "
        "import_records(..., overwrite=True) replaces the entries that exist",
    )


def _value(key: str, entry: ContextEntry | None, default: Any, type_: Any) -> Any:
    if entry is None:
        return default
    value = entry.value
    return value if type_ is None else convert(key, value, type_)


def _values(entries: dict[str, ContextEntry]) -> dict[str, Any]:
    return {key: entry.value for key, entry in entries.items()}


def _checked_expire(key: str, ttl: TTL) -> tuple[str, float | None]:
    key = check_key(key)
    seconds = check_ttl(ttl, key)
    assert not isinstance(seconds, KeepTTL)
    return key, seconds


_page = page_of


def _read(key: str, revision: int | None) -> Get | GetAt:
    """The operation of a read of ``key``, now or at ``revision``."""
    key = check_key(key)
    return Get(key) if revision is None else GetAt(key, check_revision(revision))


def _limit(limit: int | None) -> int | None:
    checked: int | None = check_positive_int(limit, "limit", allow_none=True)
    return checked


def _encoded_for(entry: ContextEntry, codec: Codec) -> ContextEntry:
    """``entry`` with its value in ``codec`` (the same bytes if both are msgpack's; a
    sealed value opened and sealed again for a sealed session, as the data keys and
    the session id it is bound to differ; else decoded and encoded again)."""
    source = entry.codec
    if source.__class__ is MsgpackCodec and codec.__class__ is MsgpackCodec:
        return msgspec.structs.replace(entry, codec=codec)
    if (
        isinstance(source, SealedCodec)
        and isinstance(codec, SealedCodec)
        and source.inner == codec.inner
        and entry.encoded is not None
    ):
        sealed = codec.keys.seal(entry.key, source.keys.open(entry.key, entry.encoded))
        return msgspec.structs.replace(entry, encoded=sealed, codec=codec)
    return msgspec.structs.replace(entry, encoded=codec.encode(entry.key, entry.value), codec=codec)


def _since(since: int | None) -> int | None:
    if since is None:
        return None
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        raise InvalidArgumentError(f"since must be a revision (an int >= 0), not {since!r}")
    return since
