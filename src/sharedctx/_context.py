"""``SharedContext``: the public API of one pipeline session's shared state.

The context checks arguments, encodes and decodes values and applies defaults; the
store (``backends``) keeps the data and does each call atomically. Every call that
reads or writes has an awaitable ``a``-prefixed twin on the same object. A twin is
the same few lines around the store call as its sync method, with the store call
awaited; the logic around it (checks, encoding, decoding) is shared by both.
The calls that take several steps (``update``, ``get_or_set``, ``wait_for``) are
written once, as generators that yield what they need done, and are driven by
:meth:`SharedContext._run` or :meth:`SharedContext._arun`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import inspect
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from datetime import timedelta
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from sharedctx._checks import (
    check_key,
    check_keys,
    check_positive_int,
    check_session_id,
    check_source,
    check_tags,
    check_timeout,
    check_ttl,
    check_version,
)
from sharedctx._codec import convert, encode
from sharedctx._errors import (
    ContextClosedError,
    ContextError,
    InvalidArgumentError,
    VersionConflictError,
)
from sharedctx._events import EventHub, Subscription, Watch
from sharedctx._glob import compile_glob
from sharedctx._types import ContextEntry, ContextEvent, ContextStats, KeepTTL
from sharedctx.backends import open_store
from sharedctx.backends.base import AsyncStore, Store, TTLArg
from sharedctx.backends.memory import Eviction

if TYPE_CHECKING:
    from sharedctx.backends.redis import RedisBackend

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


# What a multi-step call (a generator) yields for its driver to do:
class _StoreCall(tuple[str, tuple[Any, ...]]):
    """Run ``store.<name>(*args)`` (awaited on the async store)."""


class _UserCall(tuple[Callable[[], Any]]):
    """Call user code (a factory, an update function); awaited if it returns an awaitable."""


class _Join(tuple[concurrent.futures.Future[Any]]):
    """Wait for another caller's result."""


class _Pause(tuple["_Signal", float | None]):
    """Wait until the signal is set or the timeout passes; gives True if it was set."""


_Step = _StoreCall | _UserCall | _Join | _Pause


class _Signal:
    """A flag a subscription callback sets from any thread; sync or async waiters."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._async_event = asyncio.Event()

    def set(self, _event: object = None) -> None:
        self._event.set()
        if self._loop is not None and self._async_event is not None:
            self._loop.call_soon_threadsafe(self._async_event.set)

    def clear(self) -> None:
        self._event.clear()
        if self._async_event is not None:
            self._async_event.clear()


class SharedContext:
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
        clock: zero-argument callable giving monotonic seconds (default
            ``time.monotonic``). With another clock, entries expire when a call
            notices (or on ``purge_expired()``), not on a timer: that is for tests.
            Memory backend only.
        backend: ``"memory"`` (this process only), a ``redis://``/``rediss://``/
            ``unix://`` URL, or a ``RedisBackend`` shared by several contexts. On
            Redis the session is shared by every process that opens it.
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
        clock: Callable[[], float] | None = None,
        backend: str | RedisBackend = "memory",
    ) -> None:
        self._session_id = check_session_id(session_id)
        default = check_ttl(default_ttl)
        assert not isinstance(default, KeepTTL)
        self._default_ttl: float | None = default
        self._max_entries = check_positive_int(max_entries, "max_entries", allow_none=True)
        self._max_entry_bytes: int = check_positive_int(max_entry_bytes, "max_entry_bytes")
        if eviction not in _EVICTIONS:
            raise InvalidArgumentError(f"eviction must be one of {_EVICTIONS}, not {eviction!r}")
        if clock is not None and not callable(clock):
            raise InvalidArgumentError(f"clock must be a callable, not {clock!r}")
        self._notifications = bool(notifications)
        self._hub = EventHub()
        self._store: Store
        self._astore: AsyncStore
        self._store, self._astore, self._backend = open_store(
            backend,
            self._session_id,
            self._hub,
            max_entries=self._max_entries,
            eviction=eviction,
            clock=clock,
        )
        self._watches: set[Watch] = set()
        self._flights: dict[str, concurrent.futures.Future[ContextEntry | None]] = {}
        self._lock = threading.Lock()  # guards _watches, _flights and _closed
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
    def closed(self) -> bool:
        """Whether ``close()`` or ``destroy()`` was called."""
        return self._closed

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<SharedContext {self._session_id!r} backend={self._backend}{state}>"

    # -- reads ---------------------------------------------------------------------

    @overload
    def get(self, key: str, default: Any = None) -> Any: ...
    @overload
    def get(self, key: str, default: D, *, type: type[T]) -> T | D: ...
    @overload
    def get(self, key: str, *, type: type[T]) -> T | None: ...

    def get(self, key: str, default: Any = None, *, type: Any = None) -> Any:
        """The value stored under ``key`` (a new copy), or ``default`` if absent.

        With ``type`` (a pydantic model, dataclass, TypedDict, msgspec Struct or any
        type pydantic accepts) the value is converted into it; a value that does not
        fit raises ``SchemaError`` naming the key and the bad field.
        """
        entry = self._store.get(check_key(key))
        if entry is None:
            return default
        value = entry.value
        return value if type is None else convert(key, value, type)

    @overload
    async def aget(self, key: str, default: Any = None) -> Any: ...
    @overload
    async def aget(self, key: str, default: D, *, type: type[T]) -> T | D: ...
    @overload
    async def aget(self, key: str, *, type: type[T]) -> T | None: ...

    async def aget(self, key: str, default: Any = None, *, type: Any = None) -> Any:
        """Awaitable twin of :meth:`get`."""
        entry = await self._astore.get(check_key(key))
        if entry is None:
            return default
        value = entry.value
        return value if type is None else convert(key, value, type)

    def get_entry(self, key: str) -> ContextEntry | None:
        """The entry stored under ``key`` (value and metadata), or None."""
        return self._store.get(check_key(key))

    async def aget_entry(self, key: str) -> ContextEntry | None:
        """Awaitable twin of :meth:`get_entry`."""
        return await self._astore.get(check_key(key))

    def has(self, key: str) -> bool:
        """Whether ``key`` holds a live value (does not count as a read for LRU)."""
        return self._store.contains(check_key(key))

    async def ahas(self, key: str) -> bool:
        """Awaitable twin of :meth:`has`."""
        return await self._astore.contains(check_key(key))

    def __contains__(self, key: object) -> bool:
        return self.has(key)  # type: ignore[arg-type]

    def __len__(self) -> int:
        """Number of live (unexpired) entries."""
        return self._store.count()

    def get_multiple(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of those ``keys`` that are present, read at one instant."""
        return _values(self._store.get_many(check_keys(keys)))

    async def aget_multiple(self, keys: Iterable[str]) -> dict[str, Any]:
        """Awaitable twin of :meth:`get_multiple`."""
        return _values(await self._astore.get_many(check_keys(keys)))

    def find_by_pattern(self, pattern: str) -> list[ContextEntry]:
        """Live entries whose key matches the Redis glob ``pattern``, sorted by key.

        A pattern with a literal prefix (``analysis:mind:*``) reads only that prefix's
        range of keys: O(log n + k).
        """
        return self._store.find(compile_glob(pattern))

    async def afind_by_pattern(self, pattern: str) -> list[ContextEntry]:
        """Awaitable twin of :meth:`find_by_pattern`."""
        return await self._astore.find(compile_glob(pattern))

    def find_by_tag(self, tag: str) -> list[ContextEntry]:
        """Live entries carrying ``tag``, sorted by key."""
        return self._store.find_tag(check_key(tag, "tag"))

    async def afind_by_tag(self, tag: str) -> list[ContextEntry]:
        """Awaitable twin of :meth:`find_by_tag`."""
        return await self._astore.find_tag(check_key(tag, "tag"))

    def keys(self, pattern: str = "*") -> list[str]:
        """Live keys matching the Redis glob ``pattern``, sorted."""
        return self._store.keys(compile_glob(pattern))

    async def akeys(self, pattern: str = "*") -> list[str]:
        """Awaitable twin of :meth:`keys`."""
        return await self._astore.keys(compile_glob(pattern))

    def stats(self) -> ContextStats:
        """Counters of this context as of now."""
        return self._store.stats(len(self._hub))

    async def astats(self) -> ContextStats:
        """Awaitable twin of :meth:`stats`."""
        return await self._astore.stats(len(self._hub))

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

        ``ttl``: seconds or ``timedelta`` from now, None (never expires), KEEP_TTL (keep
        the key's current expiry), or omitted (``default_ttl``). ``source`` defaults to
        ``"unknown"``; ``tags`` replace the previous tags. ``if_version=n`` stores only
        if the key is at version ``n`` (0: absent), else raises
        ``VersionConflictError``. Raises ``ValueTooLargeError``,
        ``SerializationError`` or ``CapacityError`` without storing anything.
        """
        return self._write(self._store.write, key, value, ttl, source, tags, if_version)

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
        return await self._write(self._astore.write, key, value, ttl, source, tags, if_version)

    def _write(
        self,
        write: Callable[..., T],
        key: str,
        value: Any,
        ttl: TTL | KeepTTL | _Default,
        source: str | None,
        tags: Iterable[str] | None,
        if_version: int | None,
    ) -> T:
        """Check and encode a set, then call ``write`` (the store's, or its async twin's,
        whose coroutine the caller awaits)."""
        key = check_key(key)
        data, plain = encode(key, value, self._max_entry_bytes)
        return write(
            key,
            data,
            plain,
            self._default_ttl if ttl is _DEFAULT else check_ttl(ttl, allow_keep=True),
            "unknown" if source is None else check_source(source),
            () if tags is None else check_tags(tags),
            None if if_version is None else check_version(if_version),
        )

    def _ttl(self, ttl: TTL | KeepTTL | _Default) -> TTLArg:
        return self._default_ttl if ttl is _DEFAULT else check_ttl(ttl, allow_keep=True)

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
        return self._write_many(self._store.write_many, mapping, ttl, source, tags)

    async def aset_multiple(
        self,
        mapping: Mapping[str, Any],
        *,
        ttl: TTL | KeepTTL | _Default = _DEFAULT,
        source: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> list[ContextEntry]:
        """Awaitable twin of :meth:`set_multiple`."""
        return await self._write_many(self._astore.write_many, mapping, ttl, source, tags)

    def _write_many(
        self,
        write_many: Callable[..., T],
        mapping: Mapping[str, Any],
        ttl: TTL | KeepTTL | _Default,
        source: str | None,
        tags: Iterable[str] | None,
    ) -> T:
        """Check and encode a set_multiple, then call ``write_many`` (as ``_write``)."""
        if not isinstance(mapping, Mapping):
            raise InvalidArgumentError(
                f"set_multiple takes a mapping of keys to values, not {type(mapping).__name__}"
            )
        items = []
        for key, value in mapping.items():
            key = check_key(key)
            items.append((key, *encode(key, value, self._max_entry_bytes)))
        return write_many(
            items,
            self._ttl(ttl),
            "unknown" if source is None else check_source(source),
            () if tags is None else check_tags(tags),
        )

    def delete(self, key: str) -> bool:
        """Remove ``key``; False if it was not there."""
        return self._store.delete(check_key(key))

    async def adelete(self, key: str) -> bool:
        """Awaitable twin of :meth:`delete`."""
        return await self._astore.delete(check_key(key))

    def expire(self, key: str, ttl: TTL) -> bool:
        """Give an existing key a new TTL from now (None: no expiry).

        The value, version and metadata stay; no event is emitted. False if absent.
        """
        return self._store.expire(check_key(key), check_ttl(ttl))  # type: ignore[arg-type]

    async def aexpire(self, key: str, ttl: TTL) -> bool:
        """Awaitable twin of :meth:`expire`."""
        return await self._astore.expire(check_key(key), check_ttl(ttl))  # type: ignore[arg-type]

    def purge_expired(self) -> int:
        """Remove the entries expired by now (per ``clock``), emitting ``expire`` events."""
        return self._store.purge_expired()

    async def apurge_expired(self) -> int:
        """Awaitable twin of :meth:`purge_expired`."""
        return await self._astore.purge_expired()

    def clear(self) -> int:
        """Remove every entry (emitting ``delete`` events); return how many."""
        return self._store.clear()

    async def aclear(self) -> int:
        """Awaitable twin of :meth:`clear`."""
        return await self._astore.clear()

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
        on a fresh value), so it should have no side effects. ``source``/``tags``
        omitted keep the entry's current ones.
        """
        return self._run(self._update(key, fn, default, ttl, source, tags))

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
        return await self._arun(self._update(key, fn, default, ttl, source, tags))

    def _update(
        self,
        key: str,
        fn: Callable[[Any], Any],
        default: Any,
        ttl: TTL | KeepTTL | _Default,
        source: str | None,
        tags: Iterable[str] | None,
    ) -> Generator[_Step, Any, ContextEntry]:
        key = check_key(key)
        ttl_arg = self._ttl(ttl)
        source = None if source is None else check_source(source)
        tag_tuple = None if tags is None else check_tags(tags)
        while True:
            entry = yield _StoreCall(("get", (key,)))
            current = default if entry is None else entry.value
            value = yield _UserCall((partial(fn, current),))
            data, plain = encode(key, value, self._max_entry_bytes)
            version = 0 if entry is None else entry._version
            try:
                written: ContextEntry = yield _StoreCall(
                    ("write", (key, data, plain, ttl_arg, source, tag_tuple, version))
                )
            except VersionConflictError:
                continue  # another writer got in between: start again from its value
            return written

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

        Of concurrent callers for one absent key (threads and tasks of this context),
        exactly one runs ``factory``; the others wait for its result. If ``factory``
        raises, nothing is stored and the waiting callers get the same exception.
        """
        return self._run(self._get_or_set(key, factory, ttl, source, tags))

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
        return await self._arun(self._get_or_set(key, factory, ttl, source, tags))

    def _get_or_set(
        self,
        key: str,
        factory: Callable[[], Any],
        ttl: TTL | KeepTTL | _Default,
        source: str | None,
        tags: Iterable[str] | None,
    ) -> Generator[_Step, Any, Any]:
        key = check_key(key)
        if not callable(factory):
            raise InvalidArgumentError(f"factory must be callable, not {factory!r}")
        ttl_arg = self._ttl(ttl)
        source = "unknown" if source is None else check_source(source)
        tag_tuple = () if tags is None else check_tags(tags)
        while True:
            entry = yield _StoreCall(("get", (key,)))
            if entry is not None:
                return entry.value
            with self._lock:
                flight = self._flights.get(key)
                leading = flight is None
                if flight is None:
                    flight = self._flights[key] = concurrent.futures.Future()
            if not leading:
                entry = yield _Join((flight,))
                if entry is None:
                    continue  # the leader was interrupted: try again
                return entry.value
            try:
                # A leader that finished just before we took the lock has stored it.
                entry = yield _StoreCall(("get", (key,)))
                if entry is not None:
                    self._land(key, flight, result=entry)
                    return entry.value
                value = yield _UserCall((factory,))
                data, plain = encode(key, value, self._max_entry_bytes)
                try:
                    entry = yield _StoreCall(
                        ("write", (key, data, plain, ttl_arg, source, tag_tuple, 0))
                    )
                except VersionConflictError:
                    # Written meanwhile by someone else (another process, a set):
                    # theirs wins, as if it had been there when we looked.
                    entry = yield _StoreCall(("get", (key,)))
                    value = None if entry is None else entry.value
            except Exception as exc:
                self._land(key, flight, exception=exc)
                raise
            except BaseException:
                self._land(key, flight, result=None)  # cancelled: the waiters retry
                raise
            self._land(key, flight, result=entry)
            return value

    def _land(
        self,
        key: str,
        flight: concurrent.futures.Future[ContextEntry | None],
        *,
        result: ContextEntry | None = None,
        exception: Exception | None = None,
    ) -> None:
        with self._lock:
            del self._flights[key]
        if exception is not None:
            flight.set_exception(exception)
        else:
            flight.set_result(result)

    def wait_for(
        self, pattern: str, *, count: int = 1, timeout: float | None = None
    ) -> list[ContextEntry]:
        """Block until at least ``count`` live keys match ``pattern``; return their
        entries sorted by key.

        Returns at once if they are already there; raises ``TimeoutError`` when
        ``timeout`` seconds pass first. Woken by change events, it never polls.
        """
        return self._run(self._wait_for(pattern, count, timeout))

    async def await_for(
        self, pattern: str, *, count: int = 1, timeout: float | None = None
    ) -> list[ContextEntry]:
        """Awaitable twin of :meth:`wait_for`; never blocks the event loop."""
        return await self._arun(self._wait_for(pattern, count, timeout))

    def _wait_for(
        self, pattern: str, count: int, timeout: float | None
    ) -> Generator[_Step, Any, list[ContextEntry]]:
        glob = compile_glob(pattern)
        count = check_positive_int(count, "count")
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        signal = _Signal()
        subscription = Subscription(glob, signal.set)
        yield _StoreCall(("subscribe", (subscription,)))  # awaited on the async path
        try:
            while True:
                signal.clear()
                found: list[ContextEntry] = yield _StoreCall(("find", (glob,)))
                if len(found) >= count:
                    return found
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"{len(found)} of {count} keys matching {pattern!r} were there "
                        f"after {timeout} s"
                    )
                yield _Pause((signal, remaining))
        finally:
            self._store.unsubscribe(subscription.id)

    def _run(self, steps: Generator[_Step, Any, T]) -> T:
        """Drive a multi-step call on this thread."""
        result: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            result, error = None, None
            try:
                if isinstance(step, _StoreCall):
                    name, args = step
                    result = getattr(self._store, name)(*args)
                elif isinstance(step, _UserCall):
                    result = step[0]()
                elif isinstance(step, _Join):
                    result = step[0].result()
                else:
                    signal, timeout = step
                    result = signal._event.wait(timeout)
            except BaseException as exc:
                error = exc

    async def _arun(self, steps: Generator[_Step, Any, T]) -> T:
        """Drive a multi-step call as a coroutine; it awaits instead of blocking."""
        result: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            result, error = None, None
            try:
                if isinstance(step, _StoreCall):
                    name, args = step
                    result = await getattr(self._astore, name)(*args)
                elif isinstance(step, _UserCall):
                    result = step[0]()
                    if inspect.isawaitable(result):
                        result = await result
                elif isinstance(step, _Join):
                    result = await asyncio.wrap_future(step[0])
                else:
                    signal, timeout = step
                    if signal._async_event is None:
                        signal.bind(asyncio.get_running_loop())
                        if signal._event.is_set():
                            continue  # set before we could listen: look again
                    assert signal._async_event is not None
                    try:
                        result = await asyncio.wait_for(signal._async_event.wait(), timeout)
                    except TimeoutError:
                        result = False
            except BaseException as exc:
                error = exc

    # -- notifications ---------------------------------------------------------------

    def subscribe(self, pattern: str, callback: Callable[[ContextEvent], object]) -> str:
        """Call ``callback(event)`` for every later change to a key matching ``pattern``.

        Returns the subscription id for :meth:`unsubscribe`. Callbacks run after the
        change is visible, outside the context's lock, one event at a time in revision
        order, on the thread that made the change (or the expiry timer's thread). A
        callback may use the context; an exception it raises is logged to the
        ``"sharedctx"`` logger and affects nobody else. Keep callbacks short.
        """
        self._check_notifications()
        if not callable(callback):
            raise InvalidArgumentError(f"callback must be callable, not {callback!r}")
        subscription = Subscription(compile_glob(pattern), callback)
        self._store.subscribe(subscription)
        return subscription.id

    def unsubscribe(self, subscription_id: str) -> bool:
        """Stop a subscription; False if the id is unknown (or already stopped)."""
        self._check_open()
        return self._store.unsubscribe(subscription_id)

    def watch(self, pattern: str = "*", *, max_pending: int = 1000) -> Watch:
        """A stream of the changes to keys matching ``pattern`` from now on.

        Iterate it (``for``/``async for``), or call ``get(timeout)``/``aget``; use it
        as a context manager to close it. It holds at most ``max_pending`` unread
        events: a watch that falls further behind is closed, and after its buffered
        events its next read raises ``WatchOverflowError``. Writers never wait for it.
        """
        self._check_notifications()
        glob = compile_glob(pattern)
        max_pending = check_positive_int(max_pending, "max_pending")
        subscription_id = ""

        def cancel() -> None:
            self._store.unsubscribe(subscription_id)
            with self._lock:
                self._watches.discard(watch)

        watch = Watch(pattern, max_pending, cancel)
        subscription = Subscription(glob, watch.push, watch.on_error)
        subscription_id = subscription.id
        with self._lock:
            self._check_open()
            self._watches.add(watch)
        try:
            self._store.subscribe(subscription)
        except BaseException:
            watch.close()
            raise
        return watch

    def _activity(self) -> int:
        return self._store.activity()

    def _check_notifications(self) -> None:
        if not self._notifications:
            raise ContextError(
                f"notifications are disabled for context {self._session_id!r} "
                "(notifications=False): subscribe and watch are not available"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise ContextClosedError(f"context {self._session_id!r} is closed")

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Release this object's resources: subscriptions, watches, timers, and the
        connections it opened.

        The memory backend keeps the data in this object, so it is dropped too; on
        Redis the data stays for the other processes. Idempotent; afterwards every
        other call raises ``ContextClosedError``.
        """
        self._shut(self._store.close)

    def destroy(self) -> None:
        """Remove the session's data for everyone, then close. Idempotent."""
        self._shut(self._store.destroy)

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close`; it also closes the asyncio connection that
        this event loop used (Redis). Use it in asyncio code."""
        if self._mark_closed():
            await self._astore.close()

    def _shut(self, release: Callable[[], None]) -> None:
        if self._mark_closed():
            release()

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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _values(entries: Mapping[str, ContextEntry]) -> dict[str, Any]:
    return {key: entry.value for key, entry in entries.items()}
