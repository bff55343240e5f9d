"""The operations: every call a context makes to its store, as a small typed value.

``SharedContext`` turns each public call into one operation (``get`` is
``Get(key)``, ``set`` a :class:`Write`...) and hands it to its store's
``execute`` (or awaits ``aexecute``); a multi-step call (``update``, the waits)
yields several, one at a time. A store returns the result type each operation
names (``Get`` is an ``Operation[ContextEntry | None]``), so mypy checks both
sides. Adding a call to sharedctx is adding one operation here and one handler to
each backend (see ``docs/architecture.md``, "Adding a call").

Operations are immutable msgspec Structs (cheap to build: the hot paths build one
per call). ``name`` is the operation's name in logs, spans and metrics; ``writes``
says whether it may change the session.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypeVar

import msgspec

from sharedctx._events import Subscription
from sharedctx._glob import Glob
from sharedctx._types import ContextEntry, ContextStats, KeepTTL

__all__ = [
    "ALL",
    "CHANGES",
    "OPERATIONS",
    "Activity",
    "Clear",
    "Close",
    "Contains",
    "Count",
    "Delete",
    "Destroy",
    "Expire",
    "Find",
    "FindAt",
    "FindTag",
    "Fork",
    "Get",
    "GetAt",
    "GetMany",
    "History",
    "Keys",
    "Lease",
    "Operation",
    "Page",
    "PurgeExpired",
    "ReadWithRevision",
    "Rekey",
    "Release",
    "Revision",
    "RotateDataKey",
    "Stats",
    "Subscribe",
    "TTLArg",
    "Tags",
    "TakeLease",
    "Unsubscribe",
    "Write",
    "WriteMany",
]

T = TypeVar("T")

TTLArg = float | None | KeepTTL
"""A resolved TTL for a store: seconds, None for no expiry, or KEEP_TTL."""


class Page(NamedTuple):
    """Which part of a sorted result a query wants: keys after ``after``, at most
    ``limit`` of them (None: no bound)."""

    after: str | None = None
    limit: int | None = None


ALL = Page()
"""Every result of a query."""


class Lease(NamedTuple):
    """The answer to :class:`TakeLease`: the key's live entry, or who computes it.

    ``state`` is ``"value"`` (``entry`` holds the live entry), ``"lead"`` (the caller
    holds the lease and computes the value; the store keeps the lease alive until a
    :class:`Write` with ``holder`` or a :class:`Release`), or ``"wait"`` (another
    holder computes it: look again within ``wait`` seconds, or as soon as the key
    changes).
    """

    state: Literal["value", "lead", "wait"]
    entry: ContextEntry | None = None
    wait: float = 0.0


class Operation(msgspec.Struct, Generic[T], frozen=True, gc=False):
    """A store call as a value; ``Store.execute`` of an ``Operation[T]`` returns a ``T``."""

    name: ClassVar[str] = ""
    """The call's name in logs, spans and metrics."""
    writes: ClassVar[bool] = False
    """Whether it may change the session."""

    def __iter__(self) -> Generator[Operation[T], Any, T]:
        """Yield this operation and return its result: ``result = yield from op``, in
        a multi-step call (see ``sharedctx.steps``)."""
        result: T = yield self
        return result


# -- reads ------------------------------------------------------------------------------


class Get(Operation["ContextEntry | None"], frozen=True):
    """The live entry of ``key`` (a read: counts a hit or miss, refreshes LRU recency)."""

    name = "get"
    key: str


class GetMany(Operation["dict[str, ContextEntry]"], frozen=True):
    """The live entries among ``keys`` (reads, as :class:`Get`), seen at one instant."""

    name = "get_multiple"
    keys: tuple[str, ...]


class Contains(Operation[bool], frozen=True):
    """Whether ``key`` is live (not a read: no stats, no recency)."""

    name = "has"
    key: str


class Find(Operation["list[ContextEntry]"], frozen=True):
    """Live entries whose key matches ``glob``, sorted by key, paged by ``page``."""

    name = "find_by_pattern"
    glob: Glob
    page: Page = ALL


class FindTag(Operation["list[ContextEntry]"], frozen=True):
    """Live entries carrying ``tag``, sorted by key, paged by ``page``."""

    name = "find_by_tag"
    tag: str
    page: Page = ALL


class Keys(Operation["list[str]"], frozen=True):
    """Live keys that match ``glob``, sorted, paged by ``page``."""

    name = "keys"
    glob: Glob
    page: Page = ALL


class Tags(Operation["dict[str, int]"], frozen=True):
    """Each tag that live entries carry, with how many carry it, sorted by tag."""

    name = "tags"


# -- history ---------------------------------------------------------------------------


class History(Operation["list[ContextEntry]"], frozen=True):
    """The kept versions of ``key``, newest first: the live entry (if any), then its
    past versions; at most ``limit`` (None: all). Not a read (no stats, no recency)."""

    name = "history"
    key: str
    limit: int | None = None


class GetAt(Operation["ContextEntry | None"], frozen=True):
    """The entry of ``key`` as it was just after ``revision`` (None: absent then).

    Raises ``InvalidArgumentError`` if ``revision`` is after the session's last
    change, and ``HistoryCompactedError`` (with the oldest revision still readable for
    the key) if the key's state then is no longer kept. Not a read (no stats).
    """

    name = "get_at"
    key: str
    revision: int


class FindAt(Operation["tuple[int, list[ContextEntry]]"], frozen=True):
    """The entries of the session as it was just after ``revision`` (None: now),
    whose key matches ``glob`` and, if ``tag`` is given, that carried ``tag``; sorted
    by key and paged by ``page``. Returns the revision read and the entries.

    Raises as :class:`GetAt` does, for the session as a whole (``key`` None in the
    ``HistoryCompactedError``): the oldest revision at which every key is readable.
    """

    name = "snapshot"
    revision: int | None
    glob: Glob
    tag: str | None = None
    page: Page = ALL


class Fork(Operation[int], frozen=True):
    """Make this store's session, which must not exist yet, hold ``entries`` (as
    another session held them at its revision ``forked_at``), in one atomic step.

    Each entry keeps its key, value (``encoded``, already in this store's codec),
    version, source, tags, times and expiry; an entry expired by now is not copied.
    Each gets the session's next revision, with a ``set`` event that carries
    ``forked_from`` and ``forked_at``. Raises ``SessionExistsError`` (changing
    nothing) if the session holds data or has changed, and ``CapacityError`` if the
    entries are more than its ``max_entries``. Returns the session's revision.
    """

    name = "fork"
    writes = True
    entries: tuple[ContextEntry, ...]
    forked_from: str
    forked_at: int


class Count(Operation[int], frozen=True):
    """Number of live entries."""

    name = "count"


class Revision(Operation[int], frozen=True):
    """The session's current revision (that of its last change; 0 if none)."""

    name = "revision"


class Stats(Operation[ContextStats], frozen=True):
    """Counters as of now (``subscriptions``: the context's own count, reported as is)."""

    name = "stats"
    subscriptions: int


class Activity(Operation[int], frozen=True):
    """A number that changes whenever a call reads or writes (for idle checks); no I/O."""

    name = "activity"


class ReadWithRevision(Operation["tuple[Any, int | None]"], frozen=True):
    """``read`` (a :class:`GetMany` or a :class:`Find`) and the session's revision it
    read at, as one step: ``(result, revision)``, where ``result`` is the session as it
    was just after change ``revision``. ``revision`` is None where the store cannot
    tell (then a wait reads again after each change it hears).

    A wait reads once, then applies to what it read the changes it hears after that
    revision, in order (see ``docs/architecture.md``, "Waits"): a change that completes
    the answer ends the wait without a second read.
    """

    name = "read_with_revision"
    read: GetMany | Find


# -- writes -----------------------------------------------------------------------------


class Write(Operation[ContextEntry], frozen=True):
    """Store ``data`` (a value as the session's codec encoded it) under ``key``.

    Raises ``VersionConflictError`` if ``if_version`` is not the current version (0:
    absent) and ``CapacityError`` if a new key does not fit.
    """

    name = "set"
    writes = True
    key: str
    data: bytes
    ttl: TTLArg
    source: str | None
    """None: keep the entry's current source (``"unknown"`` for a new key)."""
    tags: tuple[str, ...] | None
    """None: keep the entry's current tags (none for a new key)."""
    if_version: int | None = None
    """Store only if the key is at this version (0: absent)."""
    holder: str | None = None
    """Also release this holder's ``get_or_set`` lease on the key (see :class:`TakeLease`)."""
    traceparent: str | None = None
    """The W3C traceparent of the traced call that writes (see :data:`CHANGES`)."""


class WriteMany(Operation["list[ContextEntry]"], frozen=True):
    """Store several values (distinct keys) at once: all of them or none. Raises
    ``VersionConflictError`` for the first write whose ``if_version`` does not hold,
    and ``CapacityError`` if the new keys do not fit."""

    name = "set_multiple"
    writes = True
    items: tuple[Write, ...]
    traceparent: str | None = None
    """The W3C traceparent of the traced call (see :data:`CHANGES`)."""


class Delete(Operation[bool], frozen=True):
    """Remove a key; False if it was not there."""

    name = "delete"
    writes = True
    key: str
    traceparent: str | None = None
    """The W3C traceparent of the traced call (see :data:`CHANGES`)."""


class Expire(Operation[bool], frozen=True):
    """Set a live key's TTL from now (None: no expiry), without a new version or an
    event; False if it is not live."""

    name = "expire"
    writes = True
    key: str
    ttl: float | None


class PurgeExpired(Operation[int], frozen=True):
    """Remove the entries expired by now, with their ``expire`` events; how many."""

    name = "purge_expired"
    writes = True


class Clear(Operation[int], frozen=True):
    """Remove every entry, with ``delete`` events; how many."""

    name = "clear"
    writes = True
    traceparent: str | None = None
    """The W3C traceparent of the traced call (see :data:`CHANGES`)."""


# -- get_or_set across processes ---------------------------------------------------------


class TakeLease(Operation[Lease], frozen=True):
    """For ``get_or_set``: the live entry of ``key``, or a lease to compute it. A store
    whose sessions live in one process may always answer ``"lead"`` for an absent
    key (the context runs one factory per process)."""

    name = "lease"
    writes = True
    key: str
    holder: str


class Release(Operation[None], frozen=True):
    """Give up ``holder``'s lease on ``key`` (its factory failed)."""

    name = "release"
    writes = True
    key: str
    holder: str


# -- events and lifecycle -----------------------------------------------------------------


class Subscribe(Operation[None], frozen=True):
    """Deliver to ``subscription`` every event after the current revision.

    With ``subscription.since``, first queue for it alone (``hub.enqueue(event,
    only=subscription)``) the kept changes after that revision, in order (a set
    whose key was removed since without its value), and raise ``WatchOverflowError``
    if some are no longer kept (``InvalidArgumentError`` if ``since`` is after the
    current revision).
    """

    name = "subscribe"
    subscription: Subscription


class Unsubscribe(Operation[bool], frozen=True):
    """Stop a subscription at once (no I/O: an asyncio context executes it directly);
    False if unknown."""

    name = "unsubscribe"
    subscription_id: str


class Close(Operation[None], frozen=True):
    """Release this store's resources (the data stays if others can see it)."""

    name = "close"


class Destroy(Operation[None], frozen=True):
    """Delete the session's data for everyone, then close."""

    name = "destroy"
    writes = True


# -- sealed sessions ---------------------------------------------------------------------


class Rekey(Operation[bool], frozen=True):
    """Rewrap the session's data key(s) by the key ring's first key (compare and set:
    safe while others write); False if they already were. Raises
    ``KeyUnavailableError`` for a session that is not sealed with this backend's
    ring, or whose data key no key of the ring opens."""

    name = "rekey"
    writes = True


class RotateDataKey(Operation[int], frozen=True):
    """Give the session a new data key and seal every value it keeps (entries and the
    values kept beside its events) again under it; how many entries were sealed
    again. Writes racing it land sealed by the new key; afterwards no value needs
    the old one, which is forgotten."""

    name = "rotate_data_key"
    writes = True


OPERATIONS: frozenset[type[Operation[Any]]] = frozenset(
    {
        Activity, Clear, Close, Contains, Count, Delete, Destroy, Expire, Find, FindAt,
        FindTag, Fork, Get, GetAt, GetMany, History, Keys, PurgeExpired, ReadWithRevision,
        Rekey, Release, Revision, RotateDataKey, Stats, Subscribe, Tags, TakeLease,
        Unsubscribe, Write, WriteMany,
    }
)  # fmt: skip
"""Every operation a context makes: what a complete backend handles."""

CHANGES: frozenset[type[Operation[Any]]] = frozenset({Write, WriteMany, Delete, Clear})
"""The operations whose changes carry the trace context of a traced call: their
``traceparent`` field, which a store gives to the events of the ``set`` and
``delete`` changes they make (``ContextEvent.traceparent``), in every process that
hears of them. None (the field's default) costs nothing; a backend that ignores the
field only loses the links between traces (see ``docs/guides/telemetry.md``)."""
