"""The small interface between ``SharedContext`` and the place its data lives.

``SharedContext`` checks arguments, encodes and decodes values, and decides defaults
(the default TTL, ``source="unknown"``); a store only keeps what it is given, and
does each call atomically. Every call raises ``ContextClosedError`` once the store
is closed. A store reports changes to the context's ``EventHub`` in revision order.

Each call has an awaitable twin in :class:`AsyncStore`. A store whose calls never
block (the memory store) gets its twins from :class:`NonBlockingAsync`; a network
store implements them with an asyncio client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sharedctx._events import Subscription
from sharedctx._glob import Glob
from sharedctx._types import ContextEntry, ContextStats, KeepTTL

__all__ = ["AsyncStore", "NonBlockingAsync", "Store", "TTLArg"]

TTLArg = float | None | KeepTTL
"""A resolved TTL for a store: seconds, None for no expiry, or KEEP_TTL."""

Item = tuple[str, bytes, Any]
"""A key with its encoded value and its plain copy (see ``_codec.encode``)."""


class Store(Protocol):
    """What a backend provides for one session (see the module docstring)."""

    def get(self, key: str) -> ContextEntry | None:
        """The live entry (a read: counts a hit or miss, refreshes LRU recency)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, ContextEntry]:
        """The live entries among ``keys`` (reads, as ``get``), seen at one instant."""

    def contains(self, key: str) -> bool:
        """Whether ``key`` is live (not a read: no stats, no recency)."""

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
        """Store a value; ``source``/``tags`` None keep the current ones.

        Raises ``VersionConflictError`` if ``if_version`` is not the current version
        (0: absent) and ``CapacityError`` if a new key does not fit.
        """

    def write_many(
        self, items: Sequence[Item], ttl: TTLArg, source: str, tags: tuple[str, ...]
    ) -> list[ContextEntry]:
        """Store several values at once: all of them or (``CapacityError``) none."""

    def delete(self, key: str) -> bool:
        """Remove a key; False if it was not there."""

    def expire(self, key: str, ttl: float | None) -> bool:
        """Set a live key's TTL from now, without a new version or an event."""

    def find(self, glob: Glob) -> list[ContextEntry]:
        """Live entries whose key matches, sorted by key."""

    def find_tag(self, tag: str) -> list[ContextEntry]:
        """Live entries carrying ``tag``, sorted by key."""

    def keys(self, glob: Glob) -> list[str]:
        """Live keys that match, sorted."""

    def count(self) -> int:
        """Number of live entries."""

    def purge_expired(self) -> int:
        """Remove expired entries now, with their ``expire`` events; return how many."""

    def clear(self) -> int:
        """Remove every entry, with ``delete`` events; return how many."""

    def stats(self, subscriptions: int) -> ContextStats:
        """Counters as of now."""

    def activity(self) -> int:
        """A number that changes whenever a call reads or writes (for idle checks)."""

    def subscribe(self, subscription: Subscription) -> None:
        """Deliver to ``subscription`` every event after the current revision."""

    def unsubscribe(self, subscription_id: str) -> bool:
        """Stop a subscription; False if unknown."""

    def close(self) -> None:
        """Release this object's resources (the data stays if others can see it)."""

    def destroy(self) -> None:
        """Delete the session's data for everyone, then close."""


class AsyncStore(Protocol):
    """The awaitable twins of the :class:`Store` calls that touch data."""

    async def get(self, key: str) -> ContextEntry | None: ...
    async def get_many(self, keys: Sequence[str]) -> dict[str, ContextEntry]: ...
    async def contains(self, key: str) -> bool: ...
    async def write(
        self,
        key: str,
        data: bytes,
        plain: Any,
        ttl: TTLArg,
        source: str | None,
        tags: tuple[str, ...] | None,
        if_version: int | None,
    ) -> ContextEntry: ...
    async def write_many(
        self, items: Sequence[Item], ttl: TTLArg, source: str, tags: tuple[str, ...]
    ) -> list[ContextEntry]: ...
    async def delete(self, key: str) -> bool: ...
    async def expire(self, key: str, ttl: float | None) -> bool: ...
    async def find(self, glob: Glob) -> list[ContextEntry]: ...
    async def find_tag(self, tag: str) -> list[ContextEntry]: ...
    async def keys(self, glob: Glob) -> list[str]: ...
    async def count(self) -> int: ...
    async def purge_expired(self) -> int: ...
    async def clear(self) -> int: ...
    async def stats(self, subscriptions: int) -> ContextStats: ...
    async def subscribe(self, subscription: Subscription) -> None: ...
    async def close(self) -> None: ...


class NonBlockingAsync:
    """The async face of a store whose calls never wait for I/O: each twin runs the
    sync call directly on the event loop (they hold a lock for microseconds only).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._store, name)

        async def twin(*args: Any) -> Any:
            return method(*args)

        twin.__name__ = name
        setattr(self, name, twin)  # found directly from now on
        return twin
