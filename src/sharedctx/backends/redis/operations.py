"""The function's operations and replies, without I/O: the arguments of each call of
``script.lua`` and the meaning of its reply.

A store call (an operation of ``sharedctx.backends.ops``) becomes one or a few of
the :class:`Operation` here: ``arguments()`` for the function and ``parse(reply,
reader)`` for the result, with entries and events rebuilt from the stored blobs
(their values decode through the session's codec). ``writes`` marks the operations
that change the session: they carry a request id, and the function answers a request
id it has seen with its first outcome, so sending one again never applies it twice.
A query that takes several calls (``find``, ``replay``) is a generator of them, run
by ``sharedctx.steps``. Unit-tested without a server.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from sharedctx._codec import Codec
from sharedctx._errors import (
    CapacityError,
    HistoryCompactedError,
    InvalidArgumentError,
    SessionExistsError,
    VersionConflictError,
)
from sharedctx._glob import Glob
from sharedctx._sealed import SessionKeys, sealed_key_id
from sharedctx._types import ContextEntry, ContextEvent, ContextStats, KeepTTL
from sharedctx.backends.ops import ALL, Lease, Page, TTLArg
from sharedctx.backends.ops import Write as StoreWrite

__all__ = [
    "EVENT_BATCH",
    "Change",
    "Operation",
    "Prefix",
    "Reader",
    "Reply",
    "Settings",
    "change_of_reply",
    "changes_of_message",
    "event_of",
    "find",
    "find_at",
    "find_with_revision",
    "matching_keys",
    "pack",
    "prefix",
    "read_with_revision",
    "replay",
]

T = TypeVar("T")

_decode_meta = msgspec.msgpack.Decoder().decode

KEEP = b"\0keep"
"""A source or tags argument that keeps the entry's own."""

FIND_ATTEMPTS = 3
"""Tries to read a pattern's keys and then their entries at one revision."""

KEYS_BATCH = 500
"""Keys read per call while filtering a general pattern."""

EVENT_BATCH = 1000
"""Most events one reply brings back (``EVENT_BATCH`` in the script)."""


class Settings(NamedTuple):
    """What a store tells the function on every call (see the header of ``script.lua``)."""

    stream_max_len: int
    max_entries: int | None
    eviction: str
    session_ttl: float | None
    event_retention: float
    request_window: float
    history_versions: int = 0
    history_retention: float = 60.0
    listeners_counted: bool = False
    """Whether the server counts every process that listens to a session: a single
    server does; a cluster's node does not count those on the replicas of its slots.
    Where it does, a change is published only when a process listens (one that starts
    to listen reads what it missed from the stream)."""

    def arguments(self) -> list[bytes]:
        """Arguments 1 to 9 of every call."""
        return [
            b"%d" % self.stream_max_len,
            b"%d" % (-1 if self.max_entries is None else self.max_entries),
            self.eviction.encode(),
            b"%d" % (-1 if self.session_ttl is None else _ms(self.session_ttl)),
            b"%d" % _ms(self.event_retention),
            b"%d" % _ms(self.request_window),
            b"%d" % self.history_versions,
            b"%d" % _ms(self.history_retention),
            b"1" if self.listeners_counted else b"0",
        ]


def pack(*arguments: Any) -> bytes:
    """One command in the Redis protocol (RESP): bytes, str or int arguments."""
    return b"*%d\r\n" % len(arguments) + b"".join(map(_bulk, arguments))


def _bulk(argument: Any) -> bytes:
    if isinstance(argument, str):
        argument = argument.encode()
    elif isinstance(argument, int):
        argument = b"%d" % argument
    return b"$%d\r\n%b\r\n" % (len(argument), argument)


class Packed(NamedTuple):
    """Arguments already in the Redis protocol: ``length`` of them, in ``data`` (a
    batch of writes is packed at once, not argument by argument)."""

    length: int
    data: bytes


class Prefix(NamedTuple):
    """The beginning of every call of one store, packed once: ``FCALL``, the function,
    the session's keys, the store's settings."""

    packed: bytes
    length: int
    """How many arguments it holds."""
    route: bytes
    """A key of the session (its slot is the session's)."""

    def command(self, arguments: list[Any]) -> bytes:
        """The whole command of a call with these further arguments (a
        :class:`Packed` among them stands for its own)."""
        count, parts = self.length, [self.packed]
        for argument in arguments:
            if isinstance(argument, Packed):
                count += argument.length
                parts.append(argument.data)
            else:
                count += 1
                parts.append(_bulk(argument))
        return b"*%d\r\n" % count + b"".join(parts)


def prefix(function: bytes, keys: list[bytes], settings: Settings) -> Prefix:
    """The :class:`Prefix` of a store's calls."""
    head = [b"FCALL", function, len(keys), *keys, *settings.arguments()]
    return Prefix(b"".join(map(_bulk, head)), len(head), keys[0])


def arguments(
    operation: Operation[Any], epoch: str, since: int, request: bytes, key_id: bytes = b""
) -> list[Any]:
    """The arguments of one call after the store's prefix (10 on in ``ARGV``: the
    operation, the epoch, ``since``, the request id, the data key, then the operation's
    own, from 15 on): a traced write's request id is followed by a space and its
    traceparent; ``key_id``: the data key the client seals with (b"": none)."""
    traceparent = operation.traceparent
    if traceparent is not None:
        request += b" " + traceparent.encode()
    return [operation.name, epoch, since, request, key_id, *operation.arguments()]


def new_request_id() -> bytes:
    """A request id for a write: 16 random bytes, hex."""
    return os.urandom(16).hex().encode()


class Reply(NamedTuple):
    """The script's reply: ``status``, the session's ``epoch``, the ``events`` after the
    caller's revision, the ``floor`` below which events may have been trimmed, and
    the operation's ``result``."""

    status: bytes
    epoch: str
    events: list[Any]
    floor: int
    result: list[Any]


def reply_of(raw: list[Any]) -> Reply:
    """The :class:`Reply` of a raw script reply."""
    status, epoch, events, floor, *result = raw
    return Reply(status, epoch.decode(), events, int(floor), result)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _ttl_ms(ttl: TTLArg) -> int:
    if isinstance(ttl, KeepTTL):
        return -2
    return -1 if ttl is None else _ms(ttl)


def _tags(tags: tuple[str, ...] | None) -> list[Any]:
    return [KEEP] if tags is None else [len(tags), *tags]


# -- entries and events ------------------------------------------------------------------------


def entry_of(key: str, value: bytes, packed: bytes, codec: Codec) -> ContextEntry:
    """The entry of ``key`` from its value (as ``codec`` encoded it) and packed
    metadata."""
    version, revision, created, updated, ttl, expires, source, tags = _decode_meta(packed)
    return ContextEntry(
        key=key,
        version=version,
        revision=revision,
        source=source,
        tags=tuple(tags),
        encoded=value or None,  # no value: the entry of a removal event
        created=created / 1000,
        updated=updated / 1000,
        ttl=None if ttl < 0 else ttl / 1000,
        expires=None if expires < 0 else expires / 1000,
        codec=codec,
    )


def entry_of_blob(key: str, blob: bytes, codec: Codec) -> ContextEntry:
    """The entry of ``key`` from a stored blob: 8 digits of metadata length, metadata,
    value."""
    size = int(blob[:8])
    return entry_of(key, blob[8 + size :], blob[8 : 8 + size], codec)


def entries_of(flat: list[bytes], codec: Codec) -> list[ContextEntry]:
    """Entries from the script's ``{key, blob, key, blob...}``."""
    return [entry_of_blob(flat[i].decode(), flat[i + 1], codec) for i in range(0, len(flat), 2)]


Change = tuple[int, bytes, bytes, bytes, bytes, str | None]
"""A change as the script reports it: revision, action, key, packed metadata, value
(empty for a removal, or for a set whose value was removed since), and the
traceparent of the traced call that made it (None if none)."""


class _Published(msgspec.Struct, array_like=True, gc=False):
    # One change of a channel message; a traced set or delete has a sixth field.
    revision: int
    action: msgspec.Raw
    key: msgspec.Raw
    packed: msgspec.Raw
    value: msgspec.Raw
    traceparent: str | None = None


_MESSAGE = msgspec.msgpack.Decoder(list[_Published])
_STRING_HEADER = {0xD9: 2, 0xDA: 3, 0xDB: 5, 0xC4: 2, 0xC5: 3, 0xC6: 5}
"""Lengths of the msgpack headers of strings (str 8/16/32) and bytes (bin 8/16/32)."""


def _string_bytes(raw: msgspec.Raw) -> bytes:
    """The bytes of a packed msgpack string (the script's cmsgpack packs every Lua
    string, binary or not, as a msgpack str, which only raw decoding keeps intact)."""
    data = memoryview(raw)
    first = data[0]
    return bytes(data[1 if 0xA0 <= first <= 0xBF else _STRING_HEADER[first] :])


def changes_of_message(payload: bytes) -> list[Change]:
    """The changes a message on the session's channel carries, in order: those of one
    call, a msgpack array of [revision, action, key, metadata, value] and, for a traced
    set or delete, its traceparent (see ``emit`` in the script)."""
    return [
        (
            change.revision,
            _string_bytes(change.action),
            _string_bytes(change.key),
            _string_bytes(change.packed),
            _string_bytes(change.value),
            change.traceparent,
        )
        for change in _MESSAGE.decode(payload)
    ]


def change_of_reply(event: list[bytes]) -> Change:
    """A change of a reply's ``events`` (a sixth field: its traceparent)."""
    if len(event) == 5:
        revision, action, key, packed, value = event
        return int(revision), action, key, packed, value, None
    revision, action, key, packed, value, traceparent = event
    return int(revision), action, key, packed, value, traceparent.decode()


_FORKED = 0x9A
"""The first byte of a fork's event metadata: a msgpack array of 10 (the entry's 8,
then the session forked from and its revision)."""


def event_of(session_id: str, change: Change, codec: Codec) -> ContextEvent:
    """The event of a change."""
    revision, action, raw_key, packed, value, traceparent = change
    key = raw_key.decode()
    if packed[0] == _FORKED:
        meta = _decode_meta(packed)
        entry = entry_of(key, value, msgspec.msgpack.encode(meta[:8]), codec)
        return ContextEvent(
            action.decode(),  # type: ignore[arg-type]
            key,
            entry,
            session_id,
            revision,
            traceparent,
            forked_from=_text(meta[8]),
            forked_at=int(meta[9]),
        )
    entry = entry_of(key, value, packed, codec)
    return ContextEvent(action.decode(), key, entry, session_id, revision, traceparent)  # type: ignore[arg-type]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- operations ---------------------------------------------------------------------------------


class Reader:
    """What a store's replies are read with: the session's ``codec`` (entries decode
    their values through it), and the hits and misses of the store's reads (counted
    here: counting them on the server would make every read a write)."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.hits = 0
        self.misses = 0


class Operation(Generic[T]):
    """One operation of the script: its name, arguments, and the meaning of its reply."""

    name: bytes = b""
    writes = False
    """Whether it changes the session (it then carries a request id)."""
    since: int | None = None
    """Bring back the changes after this revision, for the caller itself (a replay),
    rather than those after the last one the store delivered."""
    key: str | None = None
    """The key it writes, for error messages."""
    values = False
    """Whether it carries values (sealed ones are sealed again if the data key changed)."""
    traceparent: str | None = None
    """The trace context of a traced write, carried with its changes (see ``arguments``)."""

    def arguments(self) -> list[Any]:
        return []

    def reseal(self, keys: SessionKeys, data_key_id: bytes) -> None:
        """Seal its values again by ``keys``' data key ``data_key_id`` (where they are
        not): the one the call names to the server."""

    def parse(self, reply: Reply, reader: Reader) -> T:
        raise NotImplementedError

    def __iter__(self) -> Generator[Operation[T], Any, T]:
        """Yield this operation and return its result: ``result = yield from op``."""
        result: T = yield self
        return result


class Get(Operation[ContextEntry | None]):
    name = b"get"

    def __init__(self, key: str) -> None:
        self.key = key

    def arguments(self) -> list[Any]:
        return [self.key]

    def parse(self, reply: Reply, reader: Reader) -> ContextEntry | None:
        blob = reply.result[0]
        if not blob:
            reader.misses += 1
            return None
        reader.hits += 1
        assert self.key is not None
        return entry_of_blob(self.key, blob, reader.codec)


class GetMany(Operation[dict[str, ContextEntry]]):
    name = b"get_many"

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = keys

    def arguments(self) -> list[Any]:
        return list(self.keys)

    def parse(self, reply: Reply, reader: Reader) -> dict[str, ContextEntry]:
        found = {entry.key: entry for entry in entries_of(reply.result[0], reader.codec)}
        reader.hits += len(found)
        reader.misses += len(self.keys) - len(found)
        return found


class KeyFlag(Operation[bool]):
    """An operation on one key whose result is yes or no (``contains``, ``delete``)."""

    def __init__(
        self, name: bytes, key: str, *, writes: bool = False, traceparent: str | None = None
    ) -> None:
        self.name, self.key, self.writes = name, key, writes
        self.traceparent = traceparent

    def arguments(self) -> list[Any]:
        return [self.key]

    def parse(self, reply: Reply, reader: Reader) -> bool:
        return bool(reply.result[0])


class Write(Operation[ContextEntry]):
    name = b"write"
    writes = True
    values = True

    def __init__(self, write: StoreWrite, max_entries: int | None, session_id: str) -> None:
        self.key, self.data, self.if_version = write.key, write.data, write.if_version
        self.write = write
        self.max_entries, self.session_id = max_entries, session_id
        self.traceparent = write.traceparent
        self._arguments = [_write_arguments([write])]

    def reseal(self, keys: SessionKeys, data_key_id: bytes) -> None:
        if sealed_key_id(self.data) != data_key_id:
            assert self.key is not None
            self.data = keys.reseal(self.key, self.data, data_key_id)
            self.write = msgspec.structs.replace(self.write, data=self.data)
            self._arguments = [_write_arguments([self.write])]

    def arguments(self) -> list[Any]:
        return self._arguments

    def parse(self, reply: Reply, reader: Reader) -> ContextEntry:
        assert self.key is not None
        if reply.status == b"conflict":
            raise VersionConflictError(self.key, self.if_version or 0, int(reply.result[0]))
        if reply.status == b"full":
            raise full(self.session_id, self.max_entries, int(reply.result[0]), 1)
        return entry_of(self.key, self.data, reply.result[0], reader.codec)


class WriteMany(Operation[list[ContextEntry]]):
    name = b"write_many"
    writes = True
    values = True

    def __init__(
        self,
        writes: Sequence[StoreWrite],
        max_entries: int | None,
        session_id: str,
        traceparent: str | None = None,
    ) -> None:
        self.items, self.max_entries, self.session_id = writes, max_entries, session_id
        self.values = bool(writes)  # none: nothing to seal, and no data key is taken
        self.traceparent = traceparent
        self._arguments = [_write_arguments(writes)]

    def reseal(self, keys: SessionKeys, data_key_id: bytes) -> None:
        if any(sealed_key_id(write.data) != data_key_id for write in self.items):
            self.items = [
                msgspec.structs.replace(write, data=keys.reseal(write.key, write.data, data_key_id))
                for write in self.items
            ]
            self._arguments = [_write_arguments(self.items)]

    def arguments(self) -> list[Any]:
        return self._arguments

    def parse(self, reply: Reply, reader: Reader) -> list[ContextEntry]:
        if reply.status == b"conflict":
            key, expected, actual = reply.result
            raise VersionConflictError(key.decode(), int(expected), int(actual))
        if reply.status == b"full":
            raise full(self.session_id, self.max_entries, int(reply.result[0]), len(self.items))
        return [
            entry_of(write.key, write.data, packed, reader.codec)
            for write, packed in zip(self.items, reply.result[0], strict=True)
        ]


_WRITE_HEAD = b"$%d\r\n%b\r\n" * 6


def _write_arguments(writes: Sequence[StoreWrite]) -> Packed:
    """Each value's arguments to the script: key, value, ttl, if_version, source,
    holder, then its tags (a count and the tags) or KEEP."""
    count, parts = 0, []
    for write in writes:
        key, data = write.key.encode(), write.data
        ttl = b"%d" % _ttl_ms(write.ttl)
        if_version = b"-1" if write.if_version is None else b"%d" % write.if_version
        source = KEEP if write.source is None else write.source.encode()
        holder = write.holder.encode() if write.holder else b""
        parts.append(
            _WRITE_HEAD
            % (len(key), key, len(data), data, len(ttl), ttl, len(if_version), if_version,
               len(source), source, len(holder), holder)
        )  # fmt: skip
        tags = _tags(write.tags)
        parts.extend(map(_bulk, tags))
        count += 6 + len(tags)
    return Packed(count, b"".join(parts))


def full(session_id: str, limit: int | None, held: int, new_keys: int) -> CapacityError:
    """The error for a write that found no room."""
    return CapacityError(
        f"context {session_id!r} holds {held} of at most {limit} entries: no room for "
        f"{new_keys} new key(s); delete some, or open the context with a larger max_entries="
    )


class Expire(Operation[bool]):
    name = b"expire"
    writes = True

    def __init__(self, key: str, ttl: float | None) -> None:
        self.key, self.ttl = key, ttl

    def arguments(self) -> list[Any]:
        return [self.key, _ttl_ms(self.ttl)]

    def parse(self, reply: Reply, reader: Reader) -> bool:
        return bool(reply.result[0])


class TagCounts(Operation[dict[str, int]]):
    """Each tag of the live entries, with how many carry it."""

    name = b"tags"

    def parse(self, reply: Reply, reader: Reader) -> dict[str, int]:
        flat = reply.result[0]
        counts = {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        return dict(sorted(counts.items()))  # the zset orders tags by length first


class Count(Operation[int]):
    """An operation without arguments whose result is a number."""

    def __init__(self, name: bytes, writes: bool = False, traceparent: str | None = None) -> None:
        self.name, self.writes, self.traceparent = name, writes, traceparent

    def parse(self, reply: Reply, reader: Reader) -> int:
        return int(reply.result[0] or 0)


class Revision(Operation[tuple[int, int]]):
    """The session's revision and its floor (events up to it may be trimmed)."""

    name = b"revision"

    def parse(self, reply: Reply, reader: Reader) -> tuple[int, int]:
        return int(reply.result[0] or 0), int(reply.result[1] or 0)


class Replay(Operation[tuple[list[Change], int, int]]):
    """The changes after ``since`` (at most ``EVENT_BATCH``), the session's revision,
    and the floor below which changes may have been trimmed."""

    name = b"revision"

    def __init__(self, since: int) -> None:
        self.since = since

    def parse(self, reply: Reply, reader: Reader) -> tuple[list[Change], int, int]:
        changes = [change_of_reply(event) for event in reply.events]
        return changes, int(reply.result[0] or 0), reply.floor


def replay(since: int) -> Generator[Operation[Any], Any, tuple[list[Change], int, int]]:
    """Every kept change after ``since``, as operations to run in turn; with the
    revision of the last call, and the floor of the first."""
    changes: list[Change] = []
    found, revision, floor = yield Replay(since)
    while True:
        changes += found
        if len(found) < EVENT_BATCH:
            return changes, revision, floor
        found, revision, _ = yield Replay(found[-1][0])


class Stats(Operation[ContextStats]):
    name = b"stats"

    def __init__(self, subscriptions: int) -> None:
        self.subscriptions = subscriptions

    def parse(self, reply: Reply, reader: Reader) -> ContextStats:
        count, counters = reply.result
        expired, evicted, revision, past_versions, past_bytes = (
            int(value or 0) for value in counters
        )
        return ContextStats(
            count,
            reader.hits,
            reader.misses,
            expired,
            evicted,
            self.subscriptions,
            revision,
            past_versions,
            past_bytes,
        )


class _Range(Operation[T]):
    """An operation on the index range ``[lo, hi]``, at most ``limit`` live keys."""

    def __init__(self, lo: bytes, hi: bytes, limit: int | None) -> None:
        self.lo, self.hi, self.limit = lo, hi, limit

    def arguments(self) -> list[Any]:
        return [self.lo, self.hi, -1 if self.limit is None else self.limit]


class Keys(_Range[tuple[list[str], bytes]]):
    """The live keys of an index range, and the revision."""

    name = b"keys"

    def parse(self, reply: Reply, reader: Reader) -> tuple[list[str], bytes]:
        keys, revision = reply.result
        return [key.decode() for key in keys], revision


class FindRange(_Range[list[ContextEntry]]):
    """The live entries of an index range."""

    name = b"find_range"

    def parse(self, reply: Reply, reader: Reader) -> list[ContextEntry]:
        return entries_of(reply.result[0], reader.codec)


class FindKeys(Operation[list[ContextEntry] | None]):
    """The live entries of ``keys``, or None if the session changed since ``revision``."""

    name = b"find_keys"

    def __init__(self, revision: bytes, keys: list[str]) -> None:
        self.revision, self.keys = revision, keys

    def arguments(self) -> list[Any]:
        return [self.revision, *self.keys]

    def parse(self, reply: Reply, reader: Reader) -> list[ContextEntry] | None:
        return entries_of(reply.result[0], reader.codec) if reply.status == b"ok" else None


class FindTag(Operation[list[ContextEntry]]):
    name = b"find_tag"

    def __init__(self, tag: str, page: Page) -> None:
        self.tag, self.page = tag, page

    def arguments(self) -> list[Any]:
        limit = -1 if self.page.limit is None else self.page.limit
        return [self.tag, self.page.after or "", limit]

    def parse(self, reply: Reply, reader: Reader) -> list[ContextEntry]:
        return entries_of(reply.result[0], reader.codec)


class TakeLease(Operation[Lease]):
    name = b"lease"

    def __init__(self, key: str, holder: str, seconds: float) -> None:
        self.key, self.holder, self.seconds = key, holder, seconds

    def arguments(self) -> list[Any]:
        return [self.key, self.holder, _ms(self.seconds)]

    def parse(self, reply: Reply, reader: Reader) -> Lease:
        assert self.key is not None
        if reply.status == b"ok":
            reader.hits += 1
            return Lease("value", entry_of_blob(self.key, reply.result[0], reader.codec))
        if reply.status == b"wait":
            return Lease("wait", wait=int(reply.result[0]) / 1000)
        return Lease("lead")


class Renew(Operation[list[str]]):
    """Extend this process's leases; the keys whose lease it still held."""

    name = b"renew"

    def __init__(self, leases: Sequence[tuple[str, str]], seconds: float) -> None:
        self.leases, self.seconds = leases, seconds

    def arguments(self) -> list[Any]:
        return [_ms(self.seconds), *(part for lease in self.leases for part in lease)]

    def parse(self, reply: Reply, reader: Reader) -> list[str]:
        return [key.decode() for key in reply.result[0]]


class Release(Operation[None]):
    name = b"release"

    def __init__(self, key: str, holder: str) -> None:
        self.key, self.holder = key, holder

    def arguments(self) -> list[Any]:
        return [self.key, self.holder]

    def parse(self, reply: Reply, reader: Reader) -> None:
        return None


# -- history --------------------------------------------------------------------------------------


def _check_history(reply: Reply, session_id: str, revision: int, key: str | None) -> None:
    """Raise what a read at ``revision`` was answered, if it was refused."""
    if reply.status == b"future":
        raise InvalidArgumentError(
            f"revision={revision} is after session {session_id!r}'s last change, "
            f"revision {int(reply.result[0])}"
        )
    if reply.status == b"compacted":
        raise HistoryCompactedError(session_id, revision, int(reply.result[0]), key)


class GetAt(Operation[ContextEntry | None]):
    """The entry of ``key`` just after ``revision`` (None: absent then)."""

    name = b"get_at"

    def __init__(self, key: str, revision: int, session_id: str) -> None:
        self.key, self.revision, self.session_id = key, revision, session_id

    def arguments(self) -> list[Any]:
        return [self.key, self.revision]

    def parse(self, reply: Reply, reader: Reader) -> ContextEntry | None:
        assert self.key is not None
        _check_history(reply, self.session_id, self.revision, self.key)
        blob = reply.result[0]
        return entry_of_blob(self.key, blob, reader.codec) if blob else None


class History(Operation[list[ContextEntry]]):
    """The kept versions of ``key``, newest first (at most ``limit``)."""

    name = b"history"

    def __init__(self, key: str, limit: int | None) -> None:
        self.key, self.limit = key, limit

    def arguments(self) -> list[Any]:
        return [self.key, -1 if self.limit is None else self.limit]

    def parse(self, reply: Reply, reader: Reader) -> list[ContextEntry]:
        assert self.key is not None
        return [entry_of_blob(self.key, blob, reader.codec) for blob in reply.result[0]]


class FindAt(Operation[tuple[int, list[ContextEntry], bytes]]):
    """The entries just after ``revision`` (None: now) of the keys in the index range
    ``[lo, hi]``, at most ``limit``: the revision read, the entries, and the last key
    looked at (empty if the range was read to its end)."""

    name = b"find_at"

    def __init__(
        self, revision: int | None, lo: bytes, hi: bytes, limit: int | None, session_id: str
    ) -> None:
        self.revision, self.lo, self.hi, self.limit = revision, lo, hi, limit
        self.session_id = session_id

    def arguments(self) -> list[Any]:
        revision = b"" if self.revision is None else self.revision
        return [revision, self.lo, self.hi, -1 if self.limit is None else self.limit]

    def parse(self, reply: Reply, reader: Reader) -> tuple[int, list[ContextEntry], bytes]:
        if reply.status != b"ok":
            assert self.revision is not None  # "now" is always readable
            _check_history(reply, self.session_id, self.revision, None)
        revision, flat, last = reply.result
        return int(revision), entries_of(flat, reader.codec), last


def find_at(
    revision: int | None, glob: Glob, tag: str | None, page: Page, session_id: str
) -> Generator[Operation[Any], Any, tuple[int, list[ContextEntry]]]:
    """The entries of the session just after ``revision`` (None: now) whose key
    matches ``glob`` and, with ``tag``, that carried it then; as operations to run in
    turn: one call if the pattern's prefix decides, else batches of the prefix's range
    filtered here (the state at a revision does not change between them)."""
    lo, hi = page_range(glob, page)
    if tag is None and (glob.is_literal or glob.selects_prefix):
        at, found, _ = yield FindAt(revision, lo, hi, page.limit, session_id)
        return at, found
    batch = None if page.limit is None else max(page.limit, KEYS_BATCH)
    matched: list[ContextEntry] = []
    while True:
        at, entries, last = yield FindAt(revision, lo, hi, batch, session_id)
        revision = at  # the later batches read the revision of the first
        matched += [
            entry
            for entry in entries
            if glob.match(entry.key) and (tag is None or tag in entry.tags)
        ]
        if page.limit is not None and len(matched) >= page.limit:
            return at, matched[: page.limit]
        if not last:
            return at, matched
        lo = b"(" + last


class Fork(Operation[int]):
    """Make the session a fork holding ``entries``; the session's revision."""

    name = b"fork"
    writes = True

    def __init__(
        self,
        entries: Sequence[ContextEntry],
        forked_from: str,
        forked_at: int,
        max_entries: int | None,
        session_id: str,
    ) -> None:
        self.max_entries, self.session_id = max_entries, session_id
        self.values = bool(entries)  # a sealed fork's, sealed by the data key it takes
        self._arguments: list[Any] = [forked_from, forked_at]
        for entry in entries:
            meta = [
                entry.version,
                0,
                round(entry.created * 1000),
                round(entry.updated * 1000),
                -1 if entry.ttl is None else _ms(entry.ttl),
                -1 if entry.expires is None else round(entry.expires * 1000),
                entry.source,
                list(entry.tags),
            ]
            self._arguments += [entry.key, entry.encoded or b"", msgspec.msgpack.encode(meta)]

    def reseal(self, keys: SessionKeys, data_key_id: bytes) -> None:
        arguments = self._arguments
        for at in range(2, len(arguments), 3):
            key, data = arguments[at], arguments[at + 1]
            if sealed_key_id(data) != data_key_id:
                arguments[at + 1] = keys.reseal(key, data, data_key_id)

    def arguments(self) -> list[Any]:
        return self._arguments

    def parse(self, reply: Reply, reader: Reader) -> int:
        if reply.status == b"exists":
            raise SessionExistsError(
                f"session {self.session_id!r} already exists: a fork needs a new id"
            )
        if reply.status == b"full":
            raise CapacityError(
                f"context {self.session_id!r} holds at most {self.max_entries} entries: no "
                f"room for the {int(reply.result[0])} of the fork"
            )
        return int(reply.result[0])


# -- finding by pattern ------------------------------------------------------------------------


def prefix_range(prefix: str) -> tuple[bytes, bytes]:
    """The lexicographic index range of the keys that start with ``prefix``."""
    # UTF-8 never contains the byte 0xff, so [prefix, prefix + 0xff] is the range.
    if not prefix:
        return b"-", b"+"
    encoded = prefix.encode()
    return b"[" + encoded, b"[" + encoded + b"\xff"


def page_range(glob: Glob, page: Page) -> tuple[bytes, bytes]:
    """The index range of ``glob``'s keys after ``page.after``."""
    lo, hi = prefix_range(glob.prefix)
    if glob.is_literal:
        lo = hi = b"[" + glob.prefix.encode()
    if page.after is not None and (lo == b"-" or page.after.encode() >= lo[1:]):
        lo = b"(" + page.after.encode()
    return lo, hi


def find(glob: Glob, page: Page = ALL) -> Generator[Operation[Any], Any, list[ContextEntry]]:
    """Entries matching ``glob``, atomically, as operations to run in turn.

    If the pattern's prefix decides (``a:*``, or a literal key) it is one call on the
    prefix's range. Otherwise the live keys of the range are read (in batches when
    paged), filtered here, and their entries read if nothing changed in between; after
    a few changes, the whole range is read at once and filtered here.
    """
    found, _ = yield from find_with_revision(glob, page, None)
    return found


def find_with_revision(
    glob: Glob, page: Page, since: int | None
) -> Generator[Operation[Any], Any, tuple[list[ContextEntry], int | None]]:
    """:func:`find`, and the revision it read at (None if not known, as always with
    ``since=None``; see :class:`ReadWithRevision`)."""
    lo, hi = page_range(glob, page)
    if glob.is_literal or glob.selects_prefix:
        return (yield from read_with_revision(FindRange(lo, hi, page.limit), since))
    for _ in range(FIND_ATTEMPTS):
        matched, revision = yield from _matching_keys(glob, lo, hi, page.limit)
        if not matched:
            return [], int(revision) if revision else None
        entries = yield FindKeys(revision, matched)
        if entries is not None:
            return entries, int(revision)
    everything, at = yield from read_with_revision(FindRange(lo, hi, None), since)
    matching = [entry for entry in everything if glob.match(entry.key)]
    return (matching if page.limit is None else matching[: page.limit]), at


def read_with_revision(
    read: Operation[T], since: int | None
) -> Generator[Operation[Any], Any, tuple[T, int | None]]:
    """``read``'s result and the session's revision it read at: known from the changes
    after ``since`` (the store's last delivered revision) that its reply brings back,
    when none of them is missing; None without ``since``."""
    if since is None or since < 0:
        result: T = yield read
        return result, None
    return (yield from ReadWithRevision(read, since))


class ReadWithRevision(Operation[tuple[T, int | None]]):
    """``read``, whose reply brings back the changes after ``since`` to the caller: the
    last one's revision is the revision ``read`` read at (``since`` if there is none),
    unless some were trimmed or more came than a reply carries (then None)."""

    def __init__(self, read: Operation[T], since: int) -> None:
        self.read, self.name = read, read.name
        self.since = self.after = since

    def arguments(self) -> list[Any]:
        return self.read.arguments()

    def parse(self, reply: Reply, reader: Reader) -> tuple[T, int | None]:
        result = self.read.parse(reply, reader)
        since, events = self.after, reply.events
        if len(events) >= EVENT_BATCH:
            return result, None
        if events:
            return result, int(events[-1][0])
        return result, since if reply.floor <= since else None


def _matching_keys(
    glob: Glob, lo: bytes, hi: bytes, limit: int | None
) -> Generator[Operation[Any], Any, tuple[list[str], bytes]]:
    """The live keys of ``[lo, hi]`` that match (at most ``limit``), all read at one
    revision (else an empty revision, so that the entries are not read)."""
    batch = None if limit is None else max(limit, KEYS_BATCH)
    matched: list[str] = []
    first: bytes | None = None
    everyone = glob.is_literal or glob.selects_prefix  # (the range is the pattern)
    while True:
        keys, revision = yield Keys(lo, hi, batch)
        if first is None:
            first = revision
        elif revision != first:
            return matched, b""  # changed between batches: FindKeys will say so
        matched += keys if everyone else [key for key in keys if glob.match(key)]
        if limit is not None and len(matched) >= limit:
            return matched[:limit], first
        if batch is None or len(keys) < batch:
            return matched, first
        lo = b"(" + keys[-1].encode()


def matching_keys(glob: Glob, page: Page) -> Generator[Operation[Any], Any, list[str]]:
    """The live keys that match ``glob``, as operations to run in turn."""
    lo, hi = page_range(glob, page)
    matched, _ = yield from _matching_keys(glob, lo, hi, page.limit)
    return matched


# -- sealed sessions ----------------------------------------------------------------------


class DataKeys(Operation[list[bytes]]):
    """The records of the session's data keys, as stored (b"" where none)."""

    name = b"data_keys"

    def parse(self, reply: Reply, reader: Reader) -> list[bytes]:
        return [bytes(record) for record in reply.result[:2]]


class Rewrap(Operation[bool]):
    """Replace the records ``old`` by ``new`` if they are still ``old``."""

    name = b"rewrap"

    def __init__(self, old: list[bytes], new: list[bytes]) -> None:
        self.old, self.new = old, new

    def arguments(self) -> list[Any]:
        return [self.old[0], self.new[0], self.old[1], self.new[1]]

    def parse(self, reply: Reply, reader: Reader) -> bool:
        return reply.status == b"ok"


class Rotate(Operation[bytes | None]):
    """Make ``record`` the session's data key, the one before it kept as dk0: that
    one's record; None if an earlier rotation is unfinished, b"" if the session has
    no data key (no sealed value was written: none to replace)."""

    name = b"rotate"

    def __init__(self, key_id: bytes, record: bytes) -> None:
        self.key_id, self.record = key_id, record

    def arguments(self) -> list[Any]:
        return [self.key_id, self.record]

    def parse(self, reply: Reply, reader: Reader) -> bytes | None:
        return bytes(reply.result[0]) if reply.status == b"ok" else None


class SealedUnder(Operation[tuple[bytes, list[tuple[bytes, str, bytes]]]]):
    """A page of the values of a hash (``entries``, ``values`` or ``history``: the past
    versions) sealed by data key ``key_id``: the next cursor, and (field, key, value)
    of each."""

    name = b"sealed_under"

    def __init__(self, hash_name: bytes, key_id: bytes, cursor: bytes) -> None:
        self.hash_name, self.key_id, self.cursor = hash_name, key_id, cursor

    def arguments(self) -> list[Any]:
        return [self.hash_name, self.key_id, self.cursor]

    def parse(self, reply: Reply, reader: Reader) -> tuple[bytes, list[tuple[bytes, str, bytes]]]:
        cursor, flat = reply.result
        found = [(flat[i], flat[i + 1].decode(), flat[i + 2]) for i in range(0, len(flat), 3)]
        return cursor, found


class Reseal(Operation[int]):
    """Replace each value of a hash by its sealing under the new data key, if it is
    still the old one; how many entries were replaced."""

    name = b"reseal"

    def __init__(self, hash_name: bytes, changes: list[tuple[bytes, bytes, bytes]]) -> None:
        self.hash_name, self.changes = hash_name, changes

    def arguments(self) -> list[Any]:
        return [self.hash_name, *(part for change in self.changes for part in change)]

    def parse(self, reply: Reply, reader: Reader) -> int:
        return int(reply.result[0])


class Rotated(Operation[bool]):
    """Forget the data key ``key_id`` (dk0) if no value needs it; False if some do."""

    name = b"rotated"

    def __init__(self, key_id: bytes) -> None:
        self.key_id = key_id

    def arguments(self) -> list[Any]:
        return [self.key_id]

    def parse(self, reply: Reply, reader: Reader) -> bool:
        return reply.status == b"ok"


def rekey(keys: SessionKeys) -> Generator[Operation[Any], Any, bool]:
    """Rewrap a session's data keys by ``keys``' provider's first key (compare and set,
    again until it holds); False if they already were."""
    while True:
        records = yield DataKeys()
        new = [keys.rewrapped(record) if record else b"" for record in records]
        if new == records:
            return False
        if (yield Rewrap(records, new)):
            return True


def reseal_all(keys: SessionKeys, old: bytes) -> Generator[Operation[Any], Any, int]:
    """Seal again by the current data key every value sealed by data key ``old``; how
    many entries were."""
    count = 0
    for hash_name in (b"entries", b"values", b"history"):
        cursor = b"0"
        while True:
            cursor, found = yield SealedUnder(hash_name, old, cursor)
            if found:
                changes = [(field, value, keys.reseal(key, value)) for field, key, value in found]
                count += yield Reseal(hash_name, changes)
            if cursor == b"0":
                break
    return count


def rotate(keys: SessionKeys) -> Generator[Operation[Any], Any, int]:
    """A new data key for the session, every value sealed again under it (finishing an
    earlier rotation first); how many entries were."""
    count = 0
    while True:
        key_id, record = keys.new_record()
        previous = yield Rotate(key_id, record)
        if previous == b"":
            return count
        if previous is None:  # an unfinished rotation: its dk0 first
            records = yield DataKeys()
            keys.learn(records)
            old = records[1][1:9]
        else:
            keys.learn([record, previous])
            old = previous[1:9]
        while True:
            count += yield from reseal_all(keys, old)
            if (yield Rotated(old)):
                break
        if previous is not None:
            return count
