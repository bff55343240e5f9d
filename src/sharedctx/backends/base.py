"""The backend protocol: what a place to keep sessions must provide.

A :class:`Backend` (``MemoryBackend``, ``RedisBackend``, or one of your own) opens the
:class:`Store` of one session for one ``SharedContext``, together with its
:class:`AsyncStore`: the awaitable twins of the store's calls. The context checks
arguments, encodes and decodes values and applies defaults (the default TTL,
``source="unknown"``); a store only keeps what it is given, and does each call
atomically (linearizably). A store must:

- build entries with ``ContextEntry``'s keyword constructor (``sharedctx``'s public
  value types are the whole vocabulary between a context and its store);
- raise ``ContextClosedError`` from every call once it is closed;
- give every change the session's next revision (+1 per change), and report each
  change that :meth:`EventHub.wants` to the context's hub in revision order with
  :meth:`EventHub.enqueue`, then call :meth:`EventHub.deliver` once its own lock (if
  any) is released; a removal's event carries ``entry.without_value()``;
- raise ``BackendUnavailableError`` for a call that did not reach the data (nothing
  was changed) and ``OutcomeUnknownError`` for a write whose outcome it could not
  learn.

The memory store shows the smallest complete implementation; ``tests/backends``
holds a third backend, written against this module alone, that passes the whole
behavioural suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, Protocol

import msgspec

from sharedctx._events import EventHub, Subscription
from sharedctx._glob import Glob
from sharedctx._types import ContextEntry, ContextStats, KeepTTL

__all__ = [
    "AsyncStore",
    "Backend",
    "Eviction",
    "Lease",
    "Page",
    "Store",
    "StoreOptions",
    "TTLArg",
    "Write",
]

Eviction = Literal["lru", "oldest", "reject"]
"""What a full context does for a new key: evict the least recently used (read or
written) entry, the least recently written one, or raise ``CapacityError``."""

TTLArg = float | None | KeepTTL
"""A resolved TTL for a store: seconds, None for no expiry, or KEEP_TTL."""


class Write(msgspec.Struct, frozen=True, gc=False):
    """A value to store under one key, as a context hands it to ``Store.write``."""

    key: str
    data: bytes
    """The value, encoded (what ``ContextEntry.encoded`` holds)."""
    plain: Any
    """The value itself when it is an immutable scalar (else None): a store may keep it
    as ``ContextEntry.plain`` instead of ``data``."""
    ttl: TTLArg
    source: str | None
    """None: keep the entry's current source (``"unknown"`` for a new key)."""
    tags: tuple[str, ...] | None
    """None: keep the entry's current tags (none for a new key)."""
    if_version: int | None = None
    """Store only if the key is at this version (0: absent)."""
    holder: str | None = None
    """Also release this holder's ``get_or_set`` lease on the key (see ``Store.lease``)."""


class Page(NamedTuple):
    """Which part of a sorted result a query wants: keys after ``after``, at most
    ``limit`` of them (None: no bound)."""

    after: str | None = None
    limit: int | None = None


ALL = Page()


class StoreOptions(NamedTuple):
    """The settings of a context that its store enforces."""

    max_entries: int | None = None
    """Most live entries (None: no limit)."""
    eviction: Eviction = "lru"


class Lease(NamedTuple):
    """The answer to :meth:`Store.lease`: the key's live entry, or who computes it.

    ``state`` is ``"value"`` (``entry`` holds the live entry), ``"lead"`` (the caller
    holds the lease and computes the value; the store keeps the lease alive until a
    :meth:`Store.write` with ``holder`` or a :meth:`Store.release`), or ``"wait"``
    (another holder computes it: look again within ``wait`` seconds, or as soon as
    the key changes).
    """

    state: Literal["value", "lead", "wait"]
    entry: ContextEntry | None = None
    wait: float = 0.0


class Store(Protocol):
    """One session's data, for one context (see the module docstring).

    Queries return live entries sorted by key, from ``page.after`` (exclusive) on,
    at most ``page.limit`` of them.
    """

    def get(self, key: str) -> ContextEntry | None:
        """The live entry (a read: counts a hit or miss, refreshes LRU recency)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, ContextEntry]:
        """The live entries among ``keys`` (reads, as ``get``), seen at one instant."""

    def contains(self, key: str) -> bool:
        """Whether ``key`` is live (not a read: no stats, no recency)."""

    def write(self, write: Write) -> ContextEntry:
        """Store a value (see :class:`Write`).

        Raises ``VersionConflictError`` if ``if_version`` is not the current version
        (0: absent) and ``CapacityError`` if a new key does not fit.
        """

    def write_many(self, writes: Sequence[Write]) -> list[ContextEntry]:
        """Store several values (distinct keys) at once: all of them or none. Raises
        ``VersionConflictError`` for the first write whose ``if_version`` does not hold
        and ``CapacityError`` if the new keys do not fit."""

    def delete(self, key: str) -> bool:
        """Remove a key; False if it was not there."""

    def expire(self, key: str, ttl: float | None) -> bool:
        """Set a live key's TTL from now, without a new version or an event."""

    def find(self, glob: Glob, page: Page = ALL) -> list[ContextEntry]:
        """Live entries whose key matches."""

    def find_tag(self, tag: str, page: Page = ALL) -> list[ContextEntry]:
        """Live entries carrying ``tag``."""

    def keys(self, glob: Glob, page: Page = ALL) -> list[str]:
        """Live keys that match."""

    def count(self) -> int:
        """Number of live entries."""

    def revision(self) -> int:
        """The session's current revision (that of its last change; 0 if none)."""

    def purge_expired(self) -> int:
        """Remove expired entries now, with their ``expire`` events; return how many."""

    def clear(self) -> int:
        """Remove every entry, with ``delete`` events; return how many."""

    def stats(self, subscriptions: int) -> ContextStats:
        """Counters as of now."""

    def lease(self, key: str, holder: str) -> Lease:
        """For ``get_or_set`` across processes: the live entry of ``key``, or a lease to
        compute it. A store whose sessions live in one process may always answer
        ``"lead"`` for an absent key (the context runs one factory per process)."""

    def release(self, key: str, holder: str) -> None:
        """Give up ``holder``'s lease on ``key`` (its factory failed)."""

    def activity(self) -> int:
        """A number that changes whenever a call reads or writes (for idle checks)."""

    def subscribe(self, subscription: Subscription) -> None:
        """Deliver to ``subscription`` every event after the current revision.

        With ``subscription.since``, first queue for it alone (``hub.enqueue(event,
        only=subscription)``) the kept changes after that revision, in order (a set
        whose key was removed since without its value), and raise
        ``WatchOverflowError`` if some are no longer kept (``InvalidArgumentError``
        if ``since`` is after the current revision).
        """

    def unsubscribe(self, subscription_id: str) -> bool:
        """Stop a subscription; False if unknown."""

    def close(self) -> None:
        """Release this object's resources (the data stays if others can see it)."""

    def destroy(self) -> None:
        """Delete the session's data for everyone, then close."""


class AsyncStore(Protocol):
    """The awaitable twins of the :class:`Store` calls that may wait for I/O."""

    async def get(self, key: str) -> ContextEntry | None: ...
    async def get_many(self, keys: Sequence[str]) -> dict[str, ContextEntry]: ...
    async def contains(self, key: str) -> bool: ...
    async def write(self, write: Write) -> ContextEntry: ...
    async def write_many(self, writes: Sequence[Write]) -> list[ContextEntry]: ...
    async def delete(self, key: str) -> bool: ...
    async def expire(self, key: str, ttl: float | None) -> bool: ...
    async def find(self, glob: Glob, page: Page = ALL) -> list[ContextEntry]: ...
    async def find_tag(self, tag: str, page: Page = ALL) -> list[ContextEntry]: ...
    async def keys(self, glob: Glob, page: Page = ALL) -> list[str]: ...
    async def count(self) -> int: ...
    async def revision(self) -> int: ...
    async def purge_expired(self) -> int: ...
    async def clear(self) -> int: ...
    async def stats(self, subscriptions: int) -> ContextStats: ...
    async def lease(self, key: str, holder: str) -> Lease: ...
    async def release(self, key: str, holder: str) -> None: ...
    async def subscribe(self, subscription: Subscription) -> None: ...
    async def close(self) -> None: ...
    async def destroy(self) -> None: ...


class Backend(Protocol):
    """Where sessions live. ``SharedContext(backend=...)`` takes one, or a URL that
    :func:`sharedctx.backends.open_backend` turns into one."""

    def open(
        self, session_id: str, hub: EventHub, options: StoreOptions
    ) -> tuple[Store, AsyncStore]:
        """The store of ``session_id`` for one context, and its awaitable twin.

        ``hub`` is that context's; the store reports the session's changes to it.
        """

    def close(self) -> None:
        """Release the backend's resources (connections, threads)."""

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close` (closes this event loop's connections)."""
