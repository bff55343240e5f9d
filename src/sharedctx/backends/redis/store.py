"""One session on Redis, for one ``SharedContext``: ``RedisStore``.

Each store operation (``sharedctx.backends.ops``) has one handler here, which turns
it into one or a few of the function's operations (``operations.py``) as a
generator; ``execute`` runs it with blocking calls and ``aexecute`` with awaited
ones (``sharedctx.steps``), through a :class:`Calls` (the backend's call loop, which
knows nothing of stores). A store learns of changes from the session's event
stream: while the context has subscriptions, every call brings back the events
after the last one delivered (so a write's own subscribers see it before the write
returns), and the follower's listener hands it the changes made elsewhere. Events
reach the context's ``EventHub`` once each, in revision order; only those it wants
are built.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from types import GeneratorType
from typing import Any, Protocol, TypeVar

from sharedctx import steps
from sharedctx._codec import Codec
from sharedctx._errors import (
    ContextClosedError,
    ContextError,
    InvalidArgumentError,
    KeyUnavailableError,
    SessionLostError,
    WatchOverflowError,
)
from sharedctx._events import EventHub, Subscription
from sharedctx._sealed import LockedCodec, SealedCodec, SessionKeys, record_key_id
from sharedctx._types import ContextEntry, ContextStats
from sharedctx.backends import ops
from sharedctx.backends.base import Handlers, StoreOptions, handles
from sharedctx.backends.ops import Lease
from sharedctx.backends.redis import operations as protocol
from sharedctx.backends.redis.operations import Operation, Prefix
from sharedctx.steps import Twin

__all__ = ["Calls", "Listening", "RedisStore"]

T = TypeVar("T")
Steps = Generator[Any, Any, T]


class Calls(Protocol):
    """How a store calls the function (the backend's ``calls.Caller``)."""

    def call(self, operation: Operation[Any], prefix: Prefix, argv: list[Any]) -> list[Any]: ...
    async def acall(
        self, operation: Operation[Any], prefix: Prefix, argv: list[Any]
    ) -> list[Any]: ...


class Listening(Protocol):
    """How a store starts and stops hearing of its session's changes, and leaves (the
    backend's session registry, ``sessions.Sessions``)."""

    def listen(self, store: RedisStore) -> None: ...
    def unlisten(self, store: RedisStore) -> None: ...
    def forget(self, store: RedisStore) -> None: ...


class _Retry(Exception):
    """A call met a loss of the session that this store had already handled."""


class RedisStore(Handlers):
    """One session on Redis, for one context (see the module docstring).

    Made by the backend's session registry, which also hands it to the follower.
    """

    def __init__(
        self,
        session_id: str,
        hub: EventHub,
        options: StoreOptions,
        codec: Codec,
        *,
        calls: Calls,
        prefix: Prefix,
        channel: bytes,
        lease_ttl: float,
        listening: Listening,
        keys: SessionKeys | None = None,
    ) -> None:
        self.session_id = session_id
        # A sealed session's values go through its data keys; a plain store that meets
        # a sealed session reads its metadata only (its codec is then locked).
        self.keys = keys
        self._locked: bytes | None = None  # a plain store's: the sealed session's key id
        self._inner_codec = codec
        codec = codec if keys is None else SealedCodec(codec, keys)
        self.codec = codec
        self.max_entries = options.max_entries
        self.handlers = self.bind_handlers()
        self._hub = hub
        self._caller = calls
        self._prefix = prefix
        self._channel = channel
        self._lease_ttl = lease_ttl
        self._listening = listening
        self.reader = protocol.Reader(codec)
        self._epoch = ""
        self._delivered = -1  # last revision handed to the hub (-1: nobody listens)
        self._delivery_lock = threading.Lock()
        self._lost = False  # a loss seen by a background call: the next call raises it
        self._epoch_lock = threading.Lock()
        self._sweeping = threading.Lock()
        self._leases: dict[str, str] = {}  # key -> holder, renewed by the follower
        self._calls = 0
        self._closed = False
        # One call now: a wrong password or an unreachable server fails here, and the
        # session's epoch is known from the start (a loss after it is reported); a
        # sealed session's data key is learned (a session without one is given one by
        # its first sealed write: opening creates nothing on the server).
        self.run(protocol.Revision(), user=False)

    def executor(self, operation: type[ops.Operation[T]]) -> Callable[[ops.Operation[T]], T]:
        """:meth:`execute` (a handler here is a generator of the function's operations)."""
        return self.execute

    def execute(self, operation: ops.Operation[T]) -> T:
        """Do ``operation`` with blocking calls."""
        handler = self.handlers.get(operation.__class__)
        if handler is None:
            raise self.unsupported(operation)
        work = handler(operation)
        if work.__class__ is GeneratorType:
            return steps.run(work, self.run)  # type: ignore[no-any-return]
        return work  # type: ignore[no-any-return]

    async def aexecute(self, operation: ops.Operation[T]) -> T:
        """Awaitable twin of :meth:`execute`, on this event loop's connections."""
        handler = self.handlers.get(operation.__class__)
        if handler is None:
            raise self.unsupported(operation)
        work = handler(operation)
        if work.__class__ is GeneratorType:
            return await steps.arun(work, self.arun)
        return work  # type: ignore[no-any-return]

    # -- calling the function ----------------------------------------------------------------

    def run(self, operation: Operation[T], *, user: bool = True, events: bool = True) -> T:
        """Send ``operation`` and parse its reply (``user``: a caller's call, which may
        raise ``SessionLostError``; ``events``: bring back the events)."""
        request = protocol.new_request_id() if operation.writes else b""
        while True:
            self._begin(user)
            key, epoch = self._sealing(operation), self._epoch
            argv = self._argv(operation, request, events, key, epoch)
            raw = self._caller.call(operation, self._prefix, argv)
            try:
                reply = self._settle(raw, user, operation, key, epoch)
                return operation.parse(reply, self.reader)
            except _Retry:
                continue

    async def arun(self, operation: Operation[T]) -> T:
        """Awaitable twin of :meth:`run` (a caller's call)."""
        request = protocol.new_request_id() if operation.writes else b""
        while True:
            self._begin(True)
            key, epoch = self._sealing(operation), self._epoch
            argv = self._argv(operation, request, True, key, epoch)
            raw = await self._caller.acall(operation, self._prefix, argv)
            try:
                reply = self._settle(raw, True, operation, key, epoch)
                return operation.parse(reply, self.reader)
            except _Retry:
                continue

    def _argv(
        self, operation: Operation[Any], request: bytes, events: bool, key: bytes, epoch: str
    ) -> list[Any]:
        if operation.since is not None:
            since = operation.since
        else:
            since = self._delivered if events and len(self._hub) else -1
        return protocol.arguments(operation, epoch, since, request, key)

    # -- sealed sessions -----------------------------------------------------------------

    def _sealing(self, operation: Operation[Any]) -> bytes:
        """The data key a call names to the server (see script.lua, ARGV 14), and its
        values sealed by it: a sealed store's current one (or the record of the one
        it proposes for a session that has none), a plain store's b"" (or the key of
        the sealed session it met, where it may not write)."""
        keys = self.keys
        if keys is None:
            if self._locked is not None and operation.values:
                self.codec.encode(operation.key or "", None)  # raises KeyUnavailableError
            return self._locked or b""
        current, proposed = keys.sealing()
        if operation.values:
            operation.reseal(keys, current)
        return proposed or current

    def _rekeyed(self, records: list[bytes]) -> None:
        """The session's data key is not the one this store named: learn it (a plain
        store learns that the session is sealed, and locks its values)."""
        if self.keys is None:
            if not records:
                self._locked = None
                self.codec = self.reader.codec = self._inner_codec
                return
            self._locked = records[0][1:9]
            if not isinstance(self.codec, LockedCodec):
                self._inner_codec = self.codec
            self.codec = self.reader.codec = LockedCodec(self.session_id, record_key_id(records[0]))
            return
        self.keys.learn(records)  # none: the session has no data key (any more)

    def _require_keys(self) -> SessionKeys:
        if self.keys is None:
            raise KeyUnavailableError(
                f"session {self.session_id!r} was opened without a key ring: rekey and "
                "rotate_data_key need one (keyring=...)",
                self.session_id,
            )
        return self.keys

    def _begin(self, user: bool) -> None:
        if self._closed:
            raise ContextClosedError(
                f"context {self.session_id!r} is closed: open a new SharedContext for the "
                "session to go on using it"
            )
        if user:
            self._calls += 1
            if self._lost:
                self._lost = False
                raise self._lost_error()

    def _settle(
        self, raw: list[Any], user: bool, operation: Operation[Any], key: bytes, sent: str
    ) -> protocol.Reply:
        """The reply of a call that named data key ``key`` (see :meth:`_sealing`) and
        epoch ``sent``."""
        reply = protocol.reply_of(raw)
        if reply.status == b"keys":
            self._rekeyed([bytes(record) for record in reply.result[:2] if record])
            raise _Retry
        if reply.status == b"plain":
            raise ContextError(
                f"session {self.session_id!r} holds values that are not sealed (it was "
                "written without a key ring); it is not sealed now: export it and import "
                "it into a new session with the key ring"
            )
        if operation.values and reply.status == b"ok" and self.keys is not None:
            self.keys.settle(key)  # a proposed data key, taken with this write
        if reply.status == b"lost":
            with self._epoch_lock:
                # Known if another call of ours met it first: its reply told us the
                # epoch, or a loss was handled since this call was sent (a call of the
                # follower's, sent before, may be answered after the user's next call).
                known = reply.epoch == self._epoch or sent != self._epoch
                if not known:
                    self._on_lost(reply.epoch)
            if known:
                raise _Retry
            if user:
                raise self._lost_error()
            self._lost = True  # the next call of the context's user raises it
            raise _Retry
        if reply.epoch and (not sent or sent == self._epoch):
            # No epoch: the session did not exist when that call ran, which may have
            # been before a call whose reply came first and told us the epoch: keep
            # it (if the session was lost since, the next call is told so). Nor is the
            # epoch of a call sent before a loss we handled since taken back.
            self._epoch = reply.epoch
        if operation.since is None and (reply.events or reply.floor):
            changes = [protocol.change_of_reply(event) for event in reply.events]
            self.advance(changes, reply.floor, here=user, own=operation.writes)
        return reply

    def _lost_error(self) -> SessionLostError:
        return SessionLostError(
            f"session {self.session_id!r} lost its data on the Redis server (a restart, "
            "a flush, its session_ttl, or destroy() elsewhere); it goes on empty"
        )

    def _on_lost(self, epoch: str) -> None:
        self._epoch = epoch
        self._leases.clear()
        with self._delivery_lock:
            if self._delivered >= 0:
                self._delivered = 0
            self._hub.restart()
        self._hub.fail_all(self._lost_error())

    # -- events --------------------------------------------------------------------------

    def advance(
        self,
        changes: list[protocol.Change],
        floor: int | None,
        *,
        here: bool = False,
        own: bool = False,
    ) -> bool:
        """Hand the changes after the last delivered one to the hub, in order; False if
        one is missing before them (then :meth:`catch_up`).

        ``floor``: changes up to it may have been trimmed from the stream (a reply's;
        None for a channel message, which has every change of its call). Delivers on
        this thread: a caller's call (``here``) waits until its own changes are
        delivered; a background thread (the follower's) does not wait for another
        thread delivering, and leaves it to the event pool then. ``own``: the reply of
        a caller's write, whose last change is its own (the function reads the changes
        when it is done): the call waits for it, also when the listener, which heard it
        first, is the thread delivering it.
        """
        complete = True
        taken = False  # the last change, a write's own, was queued by another thread
        with self._delivery_lock:
            if self._delivered < 0:
                return True
            if floor is not None and floor > self._delivered:
                self._hub.fail_all(self._overflow(self._delivered + 1, floor))
                self._delivered = floor
            for change in changes:
                revision = change[0]
                if revision <= self._delivered:
                    taken = own and change is changes[-1] and self._hub.wants(change[2].decode())
                    continue
                if revision > self._delivered + 1 and floor is None:
                    complete = False  # a message was missed: read it from the stream
                    break
                self._delivered = revision
                if self._hub.wants(change[2].decode()):
                    self._hub.enqueue(protocol.event_of(self.session_id, change, self.codec))
        if floor is not None and len(changes) >= protocol.EVENT_BATCH:
            complete = False  # more may wait in the stream than a reply carries
        # A caller's write waits for its own change even when another thread (the
        # listener, which heard it first) is delivering it; not for others' changes.
        if self._hub.pending or (here and taken and self._hub.undelivered):
            self._hub.deliver(wait=here)
        return complete

    def receive(self, message: bytes) -> None:
        """A change published on the session's channel (the follower's)."""
        changes = protocol.changes_of_message(message)
        keys = self.keys
        if keys is not None and not all(keys.knows(change[4]) for change in changes):
            self.run(protocol.Revision(), user=False)  # sealed by a new data key: learn it
        if not self.advance(changes, None):
            self.catch_up()

    def catch_up(self) -> None:
        """Read the changes after the last delivered one from the session's stream."""
        if not self._closed and self._delivered >= 0:
            self.run(protocol.Revision(), user=False)

    def _overflow(self, first: int, last: int) -> WatchOverflowError:
        return WatchOverflowError(
            f"events {first} to {last} of session {self.session_id!r} were trimmed from "
            "its stream before they were read: a RedisBackend with a larger "
            "stream_max_len= or event_retention= keeps more"
        )

    @property
    def closed(self) -> bool:
        """Whether the store was closed."""
        return self._closed

    @property
    def channel(self) -> bytes:
        """The session's pub/sub channel."""
        return self._channel

    def subscribing(self, subscription: Subscription) -> Steps[None]:
        """Subscribe, as operations to run in turn: from the current revision, or first
        replaying to ``subscription`` alone the kept changes after its ``since``."""
        since = subscription.since
        if since is None:
            revision, _ = yield protocol.Revision()
            self._listen(subscription, revision, [])
            return
        changes: list[protocol.Change] = []
        after = since
        while True:
            found, revision, floor = yield from protocol.replay(after)
            if since > revision:
                raise InvalidArgumentError(
                    f"since={since} is after session {self.session_id!r}'s last change, "
                    f"revision {revision}"
                )
            if after == since and floor > since:
                raise self._overflow(since + 1, floor)
            changes += found
            if self._listen(subscription, revision, changes):
                return
            after = max(revision, changes[-1][0] if changes else revision)

    def _listen(
        self, subscription: Subscription, revision: int, replayed: list[protocol.Change]
    ) -> bool:
        """Deliver to ``subscription`` the changes after ``revision`` (what it read), and
        first those of ``replayed`` up to where delivery stands; False if delivery is
        already past ``revision`` (read again)."""
        with self._delivery_lock:
            listening = self._delivered >= 0 and len(self._hub) > 0
            if listening and self._delivered > revision and subscription.since is not None:
                return False
            start = self._delivered if listening else revision
            if not listening:
                self._delivered = revision  # nobody listened: start from now
            for change in replayed:
                if change[0] <= start:
                    event = protocol.event_of(self.session_id, change, self.codec)
                    self._hub.enqueue(event, only=subscription)
            self._hub.add(subscription, start)
        if not listening:
            self._listening.listen(self)
        self._hub.deliver()
        return True

    # -- background work (the follower) ----------------------------------------------------

    def sweep(self) -> None:
        """Remove what expired (with ``expire`` events) and the events that must not be
        kept; called by the follower every ``purge_interval``."""
        with self._sweeping:
            if not self._closed:
                self.run(protocol.Count(b"purge", writes=True), user=False)

    def renew_leases(self) -> None:
        """Extend the ``get_or_set`` leases this store holds (the follower calls it)."""
        leases = list(self._leases.items())
        if leases and not self._closed:
            renew = protocol.Renew(leases, self._lease_ttl)
            renewed: list[str] = self.run(renew, user=False)
            kept = set(renewed)
            for key, holder in leases:
                if key not in kept and self._leases.get(key) == holder:
                    del self._leases[key]

    def leased(self, key: str, holder: str, lease: Lease) -> Lease:
        """Note a lease this store now holds (the follower renews it)."""
        if lease.state == "lead":
            self._leases[key] = holder
        return lease

    def unleased(self, key: str, holder: str | None) -> None:
        """Forget a lease that a write or a release ended."""
        if holder is not None and self._leases.get(key) == holder:
            del self._leases[key]

    # -- the handlers of the store's operations -----------------------------------------------

    @handles(ops.Get)
    def _get(self, operation: ops.Get) -> Steps[ContextEntry | None]:
        return (yield from protocol.Get(operation.key))

    @handles(ops.GetMany)
    def _get_many(self, operation: ops.GetMany) -> Steps[dict[str, ContextEntry]]:
        return (yield from protocol.GetMany(operation.keys))

    @handles(ops.Contains)
    def _contains(self, operation: ops.Contains) -> Steps[bool]:
        return (yield from protocol.KeyFlag(b"contains", operation.key))

    @handles(ops.Write)
    def _write(self, write: ops.Write) -> Steps[ContextEntry]:
        try:
            return (yield from protocol.Write(write, self.max_entries, self.session_id))
        finally:
            self.unleased(write.key, write.holder)

    @handles(ops.WriteMany)
    def _write_many(self, operation: ops.WriteMany) -> Steps[list[ContextEntry]]:
        write_many = protocol.WriteMany(
            operation.items, self.max_entries, self.session_id, operation.traceparent
        )
        return (yield from write_many)

    @handles(ops.Delete)
    def _delete(self, operation: ops.Delete) -> Steps[bool]:
        delete = protocol.KeyFlag(
            b"delete", operation.key, writes=True, traceparent=operation.traceparent
        )
        return (yield from delete)

    @handles(ops.Expire)
    def _expire(self, operation: ops.Expire) -> Steps[bool]:
        return (yield from protocol.Expire(operation.key, operation.ttl))

    @handles(ops.Find)
    def _find(self, operation: ops.Find) -> Steps[list[ContextEntry]]:
        return (yield from protocol.find(operation.glob, operation.page))

    @handles(ops.ReadWithRevision)
    def _read_with_revision(self, operation: ops.ReadWithRevision) -> Steps[tuple[Any, int | None]]:
        read, since = operation.read, self._delivered
        if isinstance(read, ops.GetMany):
            return (yield from protocol.read_with_revision(protocol.GetMany(read.keys), since))
        return (yield from protocol.find_with_revision(read.glob, read.page, since))

    @handles(ops.FindTag)
    def _find_tag(self, operation: ops.FindTag) -> Steps[list[ContextEntry]]:
        return (yield from protocol.FindTag(operation.tag, operation.page))

    @handles(ops.Keys)
    def _keys(self, operation: ops.Keys) -> Steps[list[str]]:
        return (yield from protocol.matching_keys(operation.glob, operation.page))

    @handles(ops.Tags)
    def _tag_counts(self, operation: ops.Tags) -> Steps[dict[str, int]]:
        return (yield from protocol.TagCounts())

    @handles(ops.Count)
    def _count(self, operation: ops.Count) -> Steps[int]:
        return (yield from protocol.Count(b"count"))

    @handles(ops.Revision)
    def _revision(self, operation: ops.Revision) -> Steps[int]:
        revision, _ = yield from protocol.Revision()
        return revision

    @handles(ops.PurgeExpired)
    def _purge_expired(self, operation: ops.PurgeExpired) -> Steps[int]:
        return (yield from protocol.Count(b"purge", writes=True))

    @handles(ops.Clear)
    def _clear(self, operation: ops.Clear) -> Steps[int]:
        return (yield from protocol.Count(b"clear", True, operation.traceparent))

    @handles(ops.Stats)
    def _stats(self, operation: ops.Stats) -> Steps[ContextStats]:
        return (yield from protocol.Stats(operation.subscriptions))

    @handles(ops.TakeLease)
    def _lease(self, operation: ops.TakeLease) -> Steps[Lease]:
        key, holder = operation.key, operation.holder
        lease = yield from protocol.TakeLease(key, holder, self._lease_ttl)
        return self.leased(key, holder, lease)

    @handles(ops.Release)
    def _release(self, operation: ops.Release) -> Steps[None]:
        self.unleased(operation.key, operation.holder)
        yield from protocol.Release(operation.key, operation.holder)

    @handles(ops.History)
    def _history(self, operation: ops.History) -> Steps[list[ContextEntry]]:
        return (yield from protocol.History(operation.key, operation.limit))

    @handles(ops.GetAt)
    def _get_at(self, operation: ops.GetAt) -> Steps[ContextEntry | None]:
        return (yield from protocol.GetAt(operation.key, operation.revision, self.session_id))

    @handles(ops.FindAt)
    def _find_at(self, operation: ops.FindAt) -> Steps[tuple[int, list[ContextEntry]]]:
        return (
            yield from protocol.find_at(
                operation.revision, operation.glob, operation.tag, operation.page, self.session_id
            )
        )

    @handles(ops.Fork)
    def _fork(self, operation: ops.Fork) -> Steps[int]:
        fork = protocol.Fork(
            operation.entries,
            operation.forked_from,
            operation.forked_at,
            self.max_entries,
            self.session_id,
        )
        return (yield from fork)

    @handles(ops.Rekey)
    def _rekey(self, operation: ops.Rekey) -> Steps[bool]:
        return (yield from protocol.rekey(self._require_keys()))

    @handles(ops.RotateDataKey)
    def _rotate(self, operation: ops.RotateDataKey) -> Steps[int]:
        return (yield from protocol.rotate(self._require_keys()))

    @handles(ops.Activity)
    def _activity(self, operation: ops.Activity) -> int:
        return self._calls

    @handles(ops.Subscribe)
    def _subscribe(self, operation: ops.Subscribe) -> Steps[None]:
        yield from self.subscribing(operation.subscription)

    @handles(ops.Unsubscribe)
    def _unsubscribe(self, operation: ops.Unsubscribe) -> bool:
        removed = self._hub.remove(operation.subscription_id)
        if removed and not len(self._hub):
            self._listening.unlisten(self)
        return removed

    @handles(ops.Close)
    def _close(self, operation: ops.Close) -> None:
        self.close()

    @handles(ops.Destroy)
    def _destroy(self, operation: ops.Destroy) -> Steps[None]:
        if self.begin_destroy():
            try:
                destroy = protocol.Count(b"destroy", writes=True)
                argv = protocol.arguments(destroy, "", -1, b"", b"")
                calls = self._caller
                yield Twin(calls.call, calls.acall, destroy, self._prefix, argv)
            finally:
                self.close()

    def close(self) -> None:
        """Stop this store: no more calls, listening or sweeps."""
        self._closed = True
        self._leases.clear()
        self._listening.forget(self)
        self._hub.remove_all()

    def begin_destroy(self) -> bool:
        """Stop this store so that no sweep recreates the session while it is deleted;
        False if it was closed already."""
        if self._closed:
            return False
        self._closed = True
        self._listening.forget(self)
        with self._sweeping:  # wait for a sweep under way
            return True
