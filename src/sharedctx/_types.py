"""The values sharedctx hands out: entries, their metadata, change events and stats.

All of them are immutable. An entry keeps its value encoded, with the codec that
encoded it; ``entry.value`` decodes a new, independent copy on every access, so no
reader, subscriber or watcher can change what another one sees.

Backends build entries with the public keyword constructor of :class:`ContextEntry`
(see ``sharedctx.backends``); everything else here is read-only for them too.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from sharedctx._codec import MSGPACK, Codec, MsgpackCodec

__all__ = [
    "KEEP_TTL",
    "Action",
    "ContextEntry",
    "ContextEvent",
    "ContextStats",
    "EntryMetadata",
    "KeepTTL",
]

_decode = msgspec.msgpack.Decoder().decode

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
    not change. Times are POSIX seconds (``created``, ``updated``, ``expires``) or,
    through the ``..._at`` properties, timezone-aware UTC datetimes; ``ttl`` is in
    seconds.

    A backend constructs entries by keyword: ``ContextEntry(key=..., version=...,
    revision=..., source=..., tags=..., encoded=..., created=..., updated=...,
    ttl=..., expires=..., codec=...)``. ``encoded`` is the value as the session's
    codec wrote it (the bytes a store keeps), ``codec`` that codec (the one the store
    was opened with). An entry whose ``encoded`` is None has no value: the entry of a
    removal event, whose value is gone.
    """

    key: str
    """The entry's key."""
    version: int
    """1 for a new key, +1 per write; a key deleted or expired starts again at 1."""
    revision: int
    """The session's revision at the entry's last write (its ``set`` event's)."""
    source: str
    """The component that wrote the entry last (``"unknown"`` if none was given)."""
    tags: tuple[str, ...]
    """The tags given with the last write that set them."""
    encoded: bytes | None
    """The value as ``codec`` encoded it; None for the entry of a removal event."""
    created: float
    """When the key was first written (POSIX seconds; kept across updates)."""
    updated: float
    """When the key was last written (POSIX seconds)."""
    ttl: float | None
    """Seconds the entry lives after its last write (or ``expire``); None: forever."""
    expires: float | None
    """When the entry expires (POSIX seconds), or None if it never does."""
    deadline: float | None = None
    """The expiry on the store's own clock, for the store's use (not compared across
    stores)."""
    codec: Codec = MSGPACK
    """The codec that wrote ``encoded``, through which ``value`` decodes it."""

    @property
    def value(self) -> Any:
        """A new copy of the stored value (None for the entry of a removal event)."""
        encoded = self.encoded
        if encoded is None:
            return None
        codec = self.codec
        if codec.__class__ is MsgpackCodec:  # the default codec, without a call
            try:
                return _decode(encoded)
            except msgspec.DecodeError:
                pass  # the codec's own error, below
        return codec.decode(self.key, encoded)

    @property
    def has_value(self) -> bool:
        """False for the entry of a removal event (its value is gone)."""
        return self.encoded is not None

    @property
    def metadata(self) -> EntryMetadata:
        """Source, version and tags."""
        return EntryMetadata(self.source, self.version, self.tags)

    @property
    def size(self) -> int:
        """Size of the value as stored, in bytes (0 without a value)."""
        return 0 if self.encoded is None else len(self.encoded)

    @property
    def created_at(self) -> datetime:
        """When the key was first written (kept across updates)."""
        return _utc(self.created)

    @property
    def updated_at(self) -> datetime:
        """When the key was last written."""
        return _utc(self.updated)

    @property
    def expires_at(self) -> datetime | None:
        """When the entry expires, or None if it never does."""
        return None if self.expires is None else _utc(self.expires)

    def without_value(self) -> ContextEntry:
        """This entry's metadata without its value: what a removal event carries."""
        return msgspec.structs.replace(self, encoded=None)

    def __repr__(self) -> str:
        value = f"value={self.value!r}, " if self.has_value else ""
        return (
            f"ContextEntry(key={self.key!r}, {value}version={self.version}, "
            f"source={self.source!r}, tags={self.tags!r}, ttl={self.ttl!r})"
        )


class ContextEvent(msgspec.Struct, frozen=True, gc=False):
    """A change to a context, as delivered to subscribers and watchers.

    ``entry`` is the entry after a ``set``. After a removal (``delete``, ``expire``,
    ``evict``) it is the removed entry's metadata without its value: a removed
    value is gone, from the events too. ``revision`` grows by 1 with every change
    in the session, so events can be ordered and resumed from.

    The events of the step that made a session by ``fork`` (its first events, one
    ``set`` per entry copied) say where it came from: ``forked_from`` is the session
    it was forked from and ``forked_at`` that session's revision it copies; both are
    None for every other event.
    """

    action: Action
    key: str
    entry: ContextEntry
    session_id: str
    revision: int
    traceparent: str | None = None
    """The W3C ``traceparent`` of the call that made a ``set`` or ``delete``, when that
    call was traced (see ``sharedctx.telemetry``), in any process; None otherwise (and
    for ``expire`` and ``evict``, which no call asked for)."""
    forked_from: str | None = None
    """The session this one was forked from, on the events of the fork (else None)."""
    forked_at: int | None = None
    """The revision of ``forked_from`` that the fork copies (else None)."""


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
    past_versions: int = 0
    """Past versions of its keys that the session keeps (see ``history_versions``)."""
    past_bytes: int = 0
    """Bytes of the values of those past versions."""
