"""One session on Redis, for one ``SharedContext``: ``RedisStore`` and its awaitable
twin ``RedisAsyncStore``.

Each store call is one operation of ``protocol`` sent through the backend (a
pattern query that the index cannot answer alone takes up to a few). A store
learns of changes from the session's event stream: while the context has
subscriptions, every call brings back the events after the last one delivered (so
a write's own subscribers see it before the write returns), and the follower
thread reads the stream for changes made elsewhere. Events reach the context's
``EventHub`` once each, in revision order; only those it wants are built.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sharedctx._errors import (
    ContextClosedError,
    InvalidArgumentError,
    SessionLostError,
    WatchOverflowError,
)
from sharedctx._events import EventHub, Subscription
from sharedctx._glob import Glob
from sharedctx._types import ContextEntry, ContextStats
from sharedctx.backends.base import ALL, Lease, Page, StoreOptions, Write
from sharedctx.backends.redis import protocol
from sharedctx.backends.redis.protocol import Operation

if TYPE_CHECKING:
    from sharedctx.backends.redis.backend import RedisBackend

__all__ = ["RedisAsyncStore", "RedisStore"]

T = TypeVar("T")
Steps = Generator[Operation[Any], Any, T]


class _Retry(Exception):
    """A call met a loss of the session that this store had already handled."""


class RedisStore:
    """One session on Redis, for one context (see the module docstring)."""

    def __init__(
        self, backend: RedisBackend, session_id: str, hub: EventHub, options: StoreOptions
    ) -> None:
        self.session_id = session_id
        self.backend = backend
        self.max_entries = options.max_entries
        self._hub = hub
        self._keys = backend.keys_of(session_id)
        self._prefix = backend.prefix(session_id, options)
        self.tally = protocol.ReadTally()
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
        # session's epoch is known from the start (a loss after it is reported).
        self.run(protocol.Revision(), user=False)
        backend.follower.add(self)

    # -- calling the script ----------------------------------------------------------------

    def run(self, operation: Operation[T], *, user: bool = True, events: bool = True) -> T:
        """Send ``operation`` and parse its reply (``user``: a caller's call, which may
        raise ``SessionLostError``; ``events``: bring back the events)."""
        request = protocol.new_request_id() if operation.writes else b""
        while True:
            self._begin(user)
            argv = self._argv(operation, request, events)
            raw = self.backend.call(operation, self._prefix, argv)
            try:
                return operation.parse(self._settle(raw, user, operation), self.tally)
            except _Retry:
                continue

    async def arun(self, operation: Operation[T]) -> T:
        """Awaitable twin of :meth:`run` (a caller's call)."""
        request = protocol.new_request_id() if operation.writes else b""
        while True:
            self._begin(True)
            argv = self._argv(operation, request, True)
            raw = await self.backend.acall(operation, self._prefix, argv)
            try:
                return operation.parse(self._settle(raw, True, operation), self.tally)
            except _Retry:
                continue

    def drive(self, steps: Steps[T]) -> T:
        """Run a query made of several operations (``protocol.find``)."""
        result: Any = None
        while True:
            try:
                operation = steps.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            result = self.run(operation)

    async def adrive(self, steps: Steps[T]) -> T:
        """Awaitable twin of :meth:`drive`."""
        result: Any = None
        while True:
            try:
                operation = steps.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            result = await self.arun(operation)

    def _argv(self, operation: Operation[Any], request: bytes, events: bool) -> list[Any]:
        if operation.since is not None:
            since = operation.since
        else:
            since = self._delivered if events and len(self._hub) else -1
        return protocol.arguments(operation, self._epoch, since, request)

    def _begin(self, user: bool) -> None:
        if self._closed:
            raise ContextClosedError(f"context {self.session_id!r} is closed")
        if user:
            self._calls += 1
            if self._lost:
                self._lost = False
                raise self._lost_error()

    def _settle(self, raw: list[Any], user: bool, operation: Operation[Any]) -> protocol.Reply:
        reply = protocol.reply_of(raw)
        if reply.status == b"lost":
            with self._epoch_lock:
                known = reply.epoch == self._epoch  # another call of ours met it first
                if not known:
                    self._on_lost(reply.epoch)
            if known:
                raise _Retry
            if user:
                raise self._lost_error()
            self._lost = True  # the next call of the context's user raises it
            raise _Retry
        self._epoch = reply.epoch
        if operation.since is None and (reply.events or reply.floor):
            changes = [protocol.change_of_reply(event) for event in reply.events]
            self.advance(changes, reply.floor, here=user)
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
        self, changes: list[protocol.Change], floor: int | None, *, here: bool = False
    ) -> bool:
        """Hand the changes after the last delivered one to the hub, in order; False if
        one is missing before them (then :meth:`catch_up`).

        ``floor``: changes up to it may have been trimmed from the stream (a reply's;
        None for a channel message, which has every change of its call). Delivers on
        this thread: a caller's call (``here``) waits until its own changes are
        delivered; a background thread (the follower's) does not wait for another
        thread delivering, and leaves it to the event pool then.
        """
        complete = True
        with self._delivery_lock:
            if self._delivered < 0:
                return True
            if floor is not None and floor > self._delivered:
                self._hub.fail_all(self._overflow(self._delivered + 1, floor))
                self._delivered = floor
            for change in changes:
                revision = change[0]
                if revision <= self._delivered:
                    continue
                if revision > self._delivered + 1 and floor is None:
                    complete = False  # a message was missed: read it from the stream
                    break
                self._delivered = revision
                if self._hub.wants(change[2].decode()):
                    self._hub.enqueue(protocol.event_of(self.session_id, change))
        if floor is not None and len(changes) >= protocol.EVENT_BATCH:
            complete = False  # more may wait in the stream than a reply carries
        if self._hub.pending:
            self._hub.deliver(wait=here)
        return complete

    def receive(self, message: bytes) -> None:
        """A change published on the session's channel (the follower's)."""
        if not self.advance(protocol.changes_of_message(message), None):
            self.catch_up()

    def catch_up(self) -> None:
        """Read the changes after the last delivered one from the session's stream."""
        if not self._closed and self._delivered >= 0:
            self.run(protocol.Revision(), user=False)

    def _overflow(self, first: int, last: int) -> WatchOverflowError:
        return WatchOverflowError(
            f"events {first} to {last} of session {self.session_id!r} were trimmed from "
            "its stream (stream_max_len or event_retention) before they were read"
        )

    @property
    def closed(self) -> bool:
        """Whether the store was closed."""
        return self._closed

    @property
    def channel(self) -> bytes:
        """The session's pub/sub channel."""
        return self._keys[-1]

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
                    event = protocol.event_of(self.session_id, change)
                    self._hub.enqueue(event, only=subscription)
            self._hub.add(subscription, start)
        if not listening:
            self.backend.follower.listen(self)
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
            renew = protocol.Renew(leases, self.backend.lease_ttl)
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

    # -- the Store protocol ------------------------------------------------------------------

    def get(self, key: str) -> ContextEntry | None:
        return self.run(protocol.Get(key))

    def get_many(self, keys: Sequence[str]) -> dict[str, ContextEntry]:
        return self.run(protocol.GetMany(keys))

    def contains(self, key: str) -> bool:
        return self.run(protocol.KeyFlag(b"contains", key))

    def write(self, write: Write) -> ContextEntry:
        try:
            return self.run(self.write_operation(write))
        finally:
            self.unleased(write.key, write.holder)

    def write_operation(self, write: Write) -> protocol.Write:
        """The operation of a :meth:`write`."""
        return protocol.Write(write, self.max_entries, self.session_id)

    def write_many(self, writes: Sequence[Write]) -> list[ContextEntry]:
        return self.run(protocol.WriteMany(writes, self.max_entries, self.session_id))

    def delete(self, key: str) -> bool:
        return self.run(protocol.KeyFlag(b"delete", key, writes=True))

    def expire(self, key: str, ttl: float | None) -> bool:
        return self.run(protocol.Expire(key, ttl))

    def find(self, glob: Glob, page: Page = ALL) -> list[ContextEntry]:
        return self.drive(protocol.find(glob, page))

    def find_tag(self, tag: str, page: Page = ALL) -> list[ContextEntry]:
        return self.run(protocol.FindTag(tag, page))

    def keys(self, glob: Glob, page: Page = ALL) -> list[str]:
        return self.drive(protocol.matching_keys(glob, page))

    def count(self) -> int:
        return self.run(protocol.Count(b"count"))

    def revision(self) -> int:
        return self.run(protocol.Revision())[0]

    def purge_expired(self) -> int:
        return self.run(protocol.Count(b"purge", writes=True))

    def clear(self) -> int:
        return self.run(protocol.Count(b"clear", writes=True))

    def stats(self, subscriptions: int) -> ContextStats:
        return self.run(protocol.Stats(subscriptions))

    def lease(self, key: str, holder: str) -> Lease:
        lease = self.run(protocol.TakeLease(key, holder, self.backend.lease_ttl))
        return self.leased(key, holder, lease)

    def release(self, key: str, holder: str) -> None:
        self.unleased(key, holder)
        self.run(protocol.Release(key, holder))

    def activity(self) -> int:
        return self._calls

    def subscribe(self, subscription: Subscription) -> None:
        self.drive(self.subscribing(subscription))

    def unsubscribe(self, subscription_id: str) -> bool:
        removed = self._hub.remove(subscription_id)
        if removed and not len(self._hub):
            self.backend.follower.unlisten(self)
        return removed

    def close(self) -> None:
        self._closed = True
        self._leases.clear()
        self.backend.follower.remove(self)
        self._hub.remove_all()

    def destroy(self) -> None:
        if self.begin_destroy():
            try:
                self.backend.call(*self.destroy_call())
            finally:
                self.close()

    def begin_destroy(self) -> bool:
        """Stop this store so that no sweep recreates the session while it is deleted;
        False if it was closed already."""
        if self._closed:
            return False
        self._closed = True
        self.backend.follower.remove(self)
        with self._sweeping:  # wait for a sweep under way
            return True

    def destroy_call(self) -> tuple[Operation[Any], protocol.Prefix, list[Any]]:
        """The call that deletes every key of the session."""
        operation = protocol.Count(b"destroy", writes=True)
        return operation, self._prefix, protocol.arguments(operation, "", -1, b"")


class RedisAsyncStore:
    """The awaitable twins of a :class:`RedisStore`'s calls, on redis-py's asyncio
    client of the running loop."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store

    async def get(self, key: str) -> ContextEntry | None:
        return await self._store.arun(protocol.Get(key))

    async def get_many(self, keys: Sequence[str]) -> dict[str, ContextEntry]:
        return await self._store.arun(protocol.GetMany(keys))

    async def contains(self, key: str) -> bool:
        return await self._store.arun(protocol.KeyFlag(b"contains", key))

    async def write(self, write: Write) -> ContextEntry:
        try:
            return await self._store.arun(self._store.write_operation(write))
        finally:
            self._store.unleased(write.key, write.holder)

    async def write_many(self, writes: Sequence[Write]) -> list[ContextEntry]:
        store = self._store
        return await store.arun(protocol.WriteMany(writes, store.max_entries, store.session_id))

    async def delete(self, key: str) -> bool:
        return await self._store.arun(protocol.KeyFlag(b"delete", key, writes=True))

    async def expire(self, key: str, ttl: float | None) -> bool:
        return await self._store.arun(protocol.Expire(key, ttl))

    async def find(self, glob: Glob, page: Page = ALL) -> list[ContextEntry]:
        return await self._store.adrive(protocol.find(glob, page))

    async def find_tag(self, tag: str, page: Page = ALL) -> list[ContextEntry]:
        return await self._store.arun(protocol.FindTag(tag, page))

    async def keys(self, glob: Glob, page: Page = ALL) -> list[str]:
        return await self._store.adrive(protocol.matching_keys(glob, page))

    async def count(self) -> int:
        return await self._store.arun(protocol.Count(b"count"))

    async def revision(self) -> int:
        return (await self._store.arun(protocol.Revision()))[0]

    async def purge_expired(self) -> int:
        return await self._store.arun(protocol.Count(b"purge", writes=True))

    async def clear(self) -> int:
        return await self._store.arun(protocol.Count(b"clear", writes=True))

    async def stats(self, subscriptions: int) -> ContextStats:
        return await self._store.arun(protocol.Stats(subscriptions))

    async def lease(self, key: str, holder: str) -> Lease:
        store = self._store
        lease = await store.arun(protocol.TakeLease(key, holder, store.backend.lease_ttl))
        return store.leased(key, holder, lease)

    async def release(self, key: str, holder: str) -> None:
        self._store.unleased(key, holder)
        await self._store.arun(protocol.Release(key, holder))

    async def subscribe(self, subscription: Subscription) -> None:
        await self._store.adrive(self._store.subscribing(subscription))

    async def close(self) -> None:
        self._store.close()

    async def destroy(self) -> None:
        store = self._store
        if store.begin_destroy():
            try:
                await store.backend.acall(*store.destroy_call())
            finally:
                store.close()
