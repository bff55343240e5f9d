"""The values sharedctx hands out: entries, their metadata, change events and stats.

All of them are immutable. An entry keeps its value encoded (or, for an immutable
scalar, as it is); ``entry.value`` decodes a new, independent copy on every access,
so no reader, subscriber or watcher can change what another one sees.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from sharedctx._codec import decode, encode_plain
from sharedctx._errors import SerializationError

__all__ = ["KEEP_TTL", "Action", "ContextEntry", "ContextEvent", "ContextStats", "EntryMetadata"]

Action = Literal["set", "delete", "expire", "evict"]


class KeepTTL(enum.Enum):
    """Type of :data:`KEEP_TTL`."""

    KEEP_TTL = "KEEP_TTL"

    def __repr__(self) -> str:
        return "KEEP_TTL"


KEEP_TTL = KeepTTL.KEEP_TTL
"""Pass as ``ttl=`` to keep a key's current expiry when writing it."""


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class EntryMetadata(msgspec.Struct, frozen=True, gc=False):
    """Who wrote an entry, how often it was written, and its tags."""

    source: str
    """The component that wrote the entry last (``"unknown"`` if none was given)."""
    version: int
    """1 for a new key, +1 per write; a key deleted or expired starts again at 1."""
    tags: tuple[str, ...]
    """The tags given with the last write that set them."""


class ContextEntry(msgspec.Struct, frozen=True, gc=False):
    """One stored key with its value and metadata (immutable).

    ``value`` returns a new copy on every access: mutate it freely, the context does
    not change. Times are timezone-aware UTC datetimes; ``ttl`` is in seconds.
    """

    key: str
    """The entry's key."""
    ttl: float | None
    """Seconds the entry lives after its last write (or ``expire``); None: forever."""
    _source: str  # the metadata's fields, kept here: one object less per entry
    _version: int
    _tags: tuple[str, ...]
    _data: bytes | None  # None when _plain holds the value (memory backend)
    _plain: Any
    _created: float
    _updated: float
    _expires: float | None
    _deadline: float | None = None  # the store's own clock; not part of the public view

    @property
    def value(self) -> Any:
        """A new copy of the stored value."""
        plain = self._plain
        if plain is not None:  # an immutable scalar, kept as it is
            return plain
        try:
            return decode(self._data)  # type: ignore[arg-type]
        except msgspec.DecodeError:
            raise SerializationError(
                f"the stored value of key {self.key!r} is not msgpack written by "
                "sharedctx; it is left as it is and not decoded any other way"
            ) from None

    @property
    def metadata(self) -> EntryMetadata:
        """Source, version and tags."""
        return EntryMetadata(self._source, self._version, self._tags)

    @property
    def size(self) -> int:
        """Encoded size of the value in bytes (what ``max_entry_bytes`` limits)."""
        data = self._data
        return len(data if data is not None else encode_plain(self._plain))

    @property
    def created_at(self) -> datetime:
        """When the key was first written (kept across updates)."""
        return _utc(self._created)

    @property
    def updated_at(self) -> datetime:
        """When the key was last written."""
        return _utc(self._updated)

    @property
    def expires_at(self) -> datetime | None:
        """When the entry expires, or None if it never does."""
        return None if self._expires is None else _utc(self._expires)

    def __repr__(self) -> str:
        return (
            f"ContextEntry(key={self.key!r}, value={self.value!r}, "
            f"version={self._version}, source={self._source!r}, "
            f"tags={self._tags!r}, ttl={self.ttl!r})"
        )


class ContextEvent(msgspec.Struct, frozen=True, gc=False):
    """A change to a context, as delivered to subscribers and watchers.

    ``entry`` is the entry after a ``set``, or the last entry before a removal
    (``delete``, ``expire``, ``evict``). ``revision`` grows by at least 1 with every
    change in the session, so events can be ordered and gaps detected.
    """

    action: Action
    key: str
    entry: ContextEntry
    session_id: str
    revision: int


class ContextStats(msgspec.Struct, frozen=True):
    """Counters of a context at one moment (``SharedContext.stats()``)."""

    entries: int
    """Live (unexpired) entries."""
    hits: int
    """Reads (``get``, ``get_entry``, ``get_multiple``...) that found their key."""
    misses: int
    """Reads that did not find their key."""
    expired: int
    """Entries removed because their TTL ran out."""
    evicted: int
    """Entries removed to stay within ``max_entries``."""
    subscriptions: int
    """Active subscriptions and watches of this context object."""
    revision: int
    """The session's current revision (the last event's)."""
