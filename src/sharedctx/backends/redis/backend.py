"""``RedisBackend``: where sessions live on a Redis server, and its connections.

A backend holds one connection pool for the threads of this process, one asyncio
client per event loop, and one follower thread (``follower.py``) for all its
sessions. Every operation of a store is one call of ``script.lua``, made here by
:meth:`RedisBackend.call` (or awaited with :meth:`RedisBackend.acall`): the script
is sent by its SHA (loaded on the server when it is missing), a write carries a
request id, and an attempt whose reply is lost is sent again, same id, until
``socket_timeout`` has passed (``protocol.Attempts`` decides). The admin calls of
``sharedctx sessions``, ``delete`` and ``prune`` are here too: they scan for the
sessions' meta keys, which the data path never does.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

import redis
import redis.asyncio

from sharedctx._errors import ContextError, InvalidArgumentError
from sharedctx._events import EventHub
from sharedctx.backends.base import StoreOptions
from sharedctx.backends.redis import protocol
from sharedctx.backends.redis.follower import Follower
from sharedctx.backends.redis.servers import Address, ClusterServers, servers_for

if TYPE_CHECKING:
    from sharedctx.backends.redis.store import RedisAsyncStore, RedisStore

__all__ = ["RedisBackend", "SessionSummary"]

_TEXT = (resources.files("sharedctx.backends.redis") / "script.lua").read_bytes()
LIBRARY = b"sharedctx_" + hashlib.sha1(_TEXT).hexdigest()[:12].encode()
"""The name of the Redis Functions library (and of its one function) of this version."""
LIBRARY_CODE = _TEXT.replace(b"__LIBRARY__", LIBRARY)
_FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
_MOVING = (
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ClusterError,
)  # a cluster changing under a call that did not run


class SessionSummary(NamedTuple):
    """One session as ``sharedctx sessions`` lists it."""

    session_id: str
    entries: int
    """Live entries."""
    bytes: int
    """Size of the stored entries (values and their metadata)."""
    last_write: datetime | None
    """When the session last changed."""
    drops_at: datetime | None
    """When the server drops the whole session (``session_ttl``), or None: never."""


class RedisBackend:
    """Where sessions live on a Redis server (>= 7.0), chosen by URL.

    ``url``: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS, or
    ``unix:///path/to/socket``. Keys are ``<namespace>:{<session>}:<part>``.

    - ``socket_timeout``: the deadline of every call. With the server down a call
      raises ``BackendUnavailableError`` (nothing was changed); a write whose reply is
      lost is sent again (exactly once: a request id) until the deadline, then raises
      ``OutcomeUnknownError`` (it may or may not have been applied).
    - ``stream_max_len``: the most events each session keeps for watchers that
      resume (a watcher further behind gets ``WatchOverflowError``).
    - ``event_retention``: seconds an event (and so an overwritten value) stays in
      the session's event stream at most.
    - ``session_ttl``: seconds after a session's last write after which the server
      drops the whole session, even if no client runs again; None keeps it until
      ``destroy()``.
    - ``purge_interval``: how often the follower sweeps expired entries and removes
      what must not be kept.
    - ``lease_ttl``: how long a ``get_or_set`` lease lives without renewal (another
      process takes over a dead holder's work after it).

    One backend serves any number of contexts; close it when done with them.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "sharedctx",
        socket_timeout: float = 2.0,
        stream_max_len: int = 10_000,
        event_retention: float = 60.0,
        session_ttl: float | None = None,
        purge_interval: float = 0.5,
        lease_ttl: float = 10.0,
        durability: str = "primary",
        **client_options: Any,
    ) -> None:
        target = protocol.check_url(url)
        self.url = url
        self.where = protocol.redact(url)
        """The URL without its password, for messages."""
        if not namespace or not namespace.replace("-", "").replace("_", "").isalnum():
            raise InvalidArgumentError(f"namespace must be letters, digits, - or _: {namespace!r}")
        self.namespace = namespace
        self.socket_timeout = _positive(socket_timeout, "socket_timeout")
        self.stream_max_len = int(_positive(stream_max_len, "stream_max_len"))
        self.event_retention = _positive(event_retention, "event_retention")
        self.session_ttl = None if session_ttl is None else _positive(session_ttl, "session_ttl")
        self.purge_interval = _positive(purge_interval, "purge_interval")
        self.lease_ttl = _positive(lease_ttl, "lease_ttl")
        if durability not in ("primary", "replicated"):
            raise InvalidArgumentError(
                f"durability must be 'primary' or 'replicated', not {durability!r}"
            )
        self.durability = durability
        self.request_window = max(60.0, 10 * self.socket_timeout)
        """How long the server remembers a write's request id (and outcome)."""
        options = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            **client_options,
            # RESP2: a channel's messages are plain replies to read (with RESP3, redis-py
            # hands them to a push handler instead), and the replies parse faster.
            "protocol": 2,
        }
        try:
            self.servers = servers_for(target, options)
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(f"bad Redis URL {self}: {exc}") from None
        except redis.exceptions.RedisError as exc:  # a cluster is asked for its nodes now
            raise self.failure(exc) from None
        self._lock = threading.Lock()
        self._closed = False
        self.follower = Follower(self)
        """The thread that sweeps this backend's sessions and reads their events."""

    def __repr__(self) -> str:
        return f"RedisBackend({protocol.redact(self.url)!r}, namespace={self.namespace!r})"

    def __str__(self) -> str:
        return self.where

    # -- sessions ------------------------------------------------------------------------

    def open(
        self, session_id: str, hub: EventHub, options: StoreOptions
    ) -> tuple[RedisStore, RedisAsyncStore]:
        """The store of ``session_id`` for one context, and its awaitable twin."""
        from sharedctx.backends.redis.store import RedisAsyncStore, RedisStore

        if self._closed:
            raise ContextError(f"{self!r} is closed")
        store = RedisStore(self, session_id, hub, options)
        return store, RedisAsyncStore(store)

    def keys_of(self, session_id: str) -> list[bytes]:
        """The Redis keys of a session, in the order the script takes them."""
        return protocol.session_keys(self.namespace, session_id)

    def prefix(self, session_id: str, options: StoreOptions) -> protocol.Prefix:
        """What a store's every call begins with: the function, the session's keys, and
        the store's settings, packed once."""
        settings = protocol.Settings(
            self.stream_max_len,
            options.max_entries,
            options.eviction,
            self.session_ttl,
            self.event_retention,
            self.request_window,
        )
        return protocol.prefix(LIBRARY, self.keys_of(session_id), settings)

    # -- calling the script ------------------------------------------------------------

    def call(
        self, operation: protocol.Operation[Any], prefix: protocol.Prefix, argv: list[Any]
    ) -> list[Any]:
        """One call of the script: the raw reply (see the module docstring)."""
        call = _Call(self, operation, prefix, argv)
        while True:
            try:
                address = call.address()
                pool = self.servers.connections(address)
                connection = pool.take()
            except Exception as exc:
                time.sleep(call.failed(exc, sent=False))
                if call.stale_map:
                    self.refresh_slots()
                continue
            sent = False
            try:
                connection.send_packed_command([call.commands()])
                sent = True
                replies = [_reply(connection) for _ in range(call.replies)]
                return call.done(replies)
            except Exception as exc:
                if isinstance(exc, _FAILURES):
                    connection.disconnect()
                time.sleep(call.failed(exc, sent=sent))
            finally:
                pool.give(connection)
            if call.stale_map:
                self.refresh_slots()

    async def acall(
        self, operation: protocol.Operation[Any], prefix: protocol.Prefix, argv: list[Any]
    ) -> list[Any]:
        """Awaitable twin of :meth:`call`, on this event loop's connections."""
        call = _Call(self, operation, prefix, argv)
        while True:
            try:
                address = call.address()
                pool = self.servers.async_connections(address)
                connection = pool.take()
            except Exception as exc:
                await asyncio.sleep(call.failed(exc, sent=False))
                if call.stale_map:
                    await asyncio.to_thread(self.refresh_slots)
                continue
            sent = False
            try:
                await connection.send_packed_command([call.commands()])
                sent = True
                replies = [await _areply(connection) for _ in range(call.replies)]
                return call.done(replies)
            except Exception as exc:
                if isinstance(exc, _FAILURES):
                    await connection.disconnect()
                await asyncio.sleep(call.failed(exc, sent=sent))
            finally:
                pool.give(connection)
            if call.stale_map:
                await asyncio.to_thread(self.refresh_slots)

    def refresh_slots(self) -> None:
        """Reload a cluster's slot map (a failed node, CLUSTERDOWN, a moved slot);
        errors are left for the next attempt to meet. Nothing to do for one server."""
        with suppress(redis.exceptions.RedisError, redis.exceptions.RedisClusterException):
            self.servers.refresh()

    def command(self, function: Callable[[redis.Redis], Any], key: bytes | None = None) -> Any:
        """Run ``function(client)`` for a plain command (admin, follower) on the node of
        ``key`` (or any node), with Redis errors turned into sharedctx's."""
        try:
            client = self.servers.client(
                self.servers.address(key) if key is not None else self.servers.address(b"")
            )
            return function(client)
        except redis.exceptions.RedisError as exc:
            raise self.failure(exc) from None

    def failure(self, error: BaseException) -> ContextError:
        """The error for a failed plain command: ``BackendUnavailableError`` if the
        server could not be reached, else what it refused (password redacted)."""
        if isinstance(error, _FAILURES + _MOVING) and not isinstance(
            error, redis.exceptions.AuthenticationError
        ):
            return protocol.unavailable(self.where, error)
        return self.refused(error)

    def refused(self, error: BaseException) -> ContextError:
        """The error for a call the server refused (a wrong password, no such
        database, out of memory...)."""
        return ContextError(f"Redis at {self} refused the call: {error}")

    def new_connection(self, address: Address) -> Any:
        """A connection to a node of its own, outside the pools (the follower's)."""
        return self.servers.new_connection(address)

    # -- admin ---------------------------------------------------------------------------

    def sessions(self) -> list[str]:
        """The ids of the sessions in this namespace, sorted (a ``SCAN`` of every
        master: an admin call, not for the data path)."""
        pattern = protocol.meta_pattern(self.namespace)
        found: set[str] = set()
        try:
            for client in self.servers.masters():
                for key in client.scan_iter(match=pattern, count=1000, _type="hash"):
                    session = protocol.session_of_meta_key(self.namespace, key)
                    if session is not None:
                        found.add(session)
        except redis.exceptions.RedisError as exc:
            raise self.failure(exc) from None
        return sorted(found)

    def has_session(self, session_id: str) -> bool:
        """Whether the session exists on the server (without creating it)."""
        meta = self.keys_of(session_id)[0]
        return bool(self.command(lambda client: client.exists(meta), meta))

    def session_summary(self, session_id: str) -> SessionSummary | None:
        """A session's size and lifetime (None if it does not exist)."""
        meta, entries, _, deadlines, *_ = self.keys_of(session_id)

        def summarize(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.time()
            pipe.exists(meta)
            pipe.hlen(entries)
            pipe.hmget(meta, "bytes", "written")
            pipe.pttl(meta)
            pipe.zcount(deadlines, "-inf", "+inf")
            replies: list[Any] = pipe.execute()
            if replies[1]:
                seconds, micros = replies[0]
                now = seconds * 1000 + micros // 1000
                replies.append(client.zcount(deadlines, "-inf", now))
            return replies

        replies = self.command(summarize, meta)
        if not replies[1]:
            return None
        (seconds, micros), _, stored, (size, written), pttl, _, expired = replies
        now_ms = seconds * 1000 + micros // 1000
        return SessionSummary(
            session_id,
            max(0, stored - expired),
            int(size or 0),
            _time(int(written)) if written is not None else None,
            _time(now_ms + pttl) if pttl >= 0 else None,
        )

    def session_summaries(self) -> list[SessionSummary]:
        """Every session of the namespace with its size and lifetime, sorted by id."""
        found = (self.session_summary(session) for session in self.sessions())
        return [summary for summary in found if summary is not None]

    def drop_session(self, session_id: str) -> bool:
        """Delete every key of a session, for everyone; False if it did not exist.

        Contexts that still use it get ``SessionLostError`` from their next call.
        """
        keys = self.keys_of(session_id)[: len(protocol.SUFFIXES) - 1]  # not the channel
        return bool(self.command(lambda client: client.delete(*keys), keys[0]))

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the follower and close this process's connections (sync now; asyncio
        ones on their loops). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.follower.stop()
        self.servers.close()

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close`: awaits the running loop's connections."""
        await self.servers.aclose()
        await asyncio.to_thread(self.close)  # joins the follower without blocking the loop


class _Call:
    """One call of the function, from attempt to attempt: what to send, to which node,
    and what a failure means (``protocol.Attempts`` decides about the deadline).

    On a cluster, ``MOVED`` updates the slot map and goes to the new owner at once;
    ``ASK`` sends the next attempt to the migration's target, after ``ASKING``;
    ``TRYAGAIN`` (a slot half-moved), ``CLUSTERDOWN`` and a failed node are tried
    again after a pause, with the slot map reloaded where it may be stale. None of
    those ran the call, so they are tried again until the deadline. A node without the
    function library (a new, restarted or flushed one) is given it first.
    """

    def __init__(
        self,
        backend: RedisBackend,
        operation: protocol.Operation[Any],
        prefix: protocol.Prefix,
        argv: list[Any],
    ) -> None:
        self.backend = backend
        self.operation = operation
        self.route = prefix.route
        self.command = prefix.command(argv)
        self.deadline = time.monotonic() + backend.socket_timeout
        self.attempts = protocol.Attempts(operation, self.deadline, backend.where)
        self.asking: tuple[str, int] | None = None  # the ASK target of the next attempt
        self.load = False  # load the function library before calling it
        self.waits = backend.durability == "replicated" and operation.writes
        self.stale_map = False  # the cluster's slot map must be reloaded
        self.replies = 0

    def address(self) -> Address:
        """The node of the next attempt."""
        self.stale_map = False
        if self.asking is not None:
            return self.asking
        return self.backend.servers.address(self.route)

    def commands(self) -> bytes:
        """The commands of the next attempt, sent together on one connection."""
        commands: list[bytes] = []
        if self.load:
            commands.append(protocol.pack(b"FUNCTION", b"LOAD", LIBRARY_CODE))
        if self.asking is not None:
            commands.append(protocol.pack(b"ASKING"))
        commands.append(self.command)
        if self.waits:  # on the connection that wrote: one replica has the write
            left = max(1, int((self.deadline - time.monotonic()) * 800))
            commands.append(protocol.pack(b"WAIT", 1, left))
        self.replies = len(commands)
        return b"".join(commands)

    def done(self, replies: list[Any]) -> list[Any]:
        """The function's reply, or raises what the attempt met."""
        if self.load:
            self.load = False
            loaded = replies.pop(0)
            if isinstance(loaded, Exception) and "already exists" not in str(loaded):
                raise loaded  # loaded meanwhile by another client: fine
        self.asking = None
        reply = replies[-2] if self.waits else replies[-1]
        for earlier in replies[: replies.index(reply)]:
            if isinstance(earlier, Exception):
                raise earlier
        if isinstance(reply, Exception):
            raise reply
        if self.waits and not replies[-1]:
            raise _NotReplicated(f"no replica acknowledged the write within {self.backend}")
        result: list[Any] = reply
        return result

    def failed(self, error: BaseException, *, sent: bool) -> float:
        """The pause before the next attempt; raises the caller's error if none."""
        now = time.monotonic()
        if _missing_library(error):
            self.attempts.loads += 1
            if self.attempts.loads > 3:  # a node that keeps forgetting it
                raise self.backend.refused(error) from None
            self.load = True
            return 0.0
        if isinstance(error, redis.exceptions.MovedError):
            self.backend.servers.moved(error)
            return self.attempts.busy(error, now)
        if isinstance(error, redis.exceptions.AskError):
            self.asking = (error.host, error.port)
            return self.attempts.busy(error, now)
        if isinstance(error, redis.exceptions.AuthenticationError):
            raise self.backend.refused(error) from None
        if isinstance(error, _MOVING):
            self.stale_map = isinstance(error, redis.exceptions.ClusterDownError)
            return self.attempts.busy(error, now)
        if isinstance(error, _NotReplicated):
            return self.attempts.failed(error, sent=True, now=now)
        if isinstance(error, (*_FAILURES, redis.exceptions.SlotNotCoveredError)):
            if isinstance(self.backend.servers, ClusterServers):
                # A node that fails is being replaced (a failover): reload the slot
                # map and try again until the deadline, rather than fail fast.
                self.stale_map = True
                if not sent:
                    return self.attempts.busy(error, now)
            return self.attempts.failed(error, sent=sent, now=now)
        if isinstance(error, redis.exceptions.RedisError):
            raise self.backend.refused(error) from None
        raise error


class _NotReplicated(Exception):
    """A write no replica acknowledged in time (``durability="replicated"``)."""


def _missing_library(error: BaseException) -> bool:
    """Whether ``error`` says the node lacks the function (nothing ran)."""
    return isinstance(error, redis.exceptions.ResponseError) and str(error).startswith(
        "Function not found"
    )


def _reply(connection: Any) -> Any:
    """The next reply on ``connection``; an error reply as its exception, not raised."""
    try:
        return connection.read_response()
    except redis.exceptions.ResponseError as exc:
        return exc


async def _areply(connection: Any) -> Any:
    """Awaitable twin of :func:`_reply`."""
    try:
        return await connection.read_response()
    except redis.exceptions.ResponseError as exc:
        return exc


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"{name} must be a number > 0, not {value!r}")
    return float(value)


def _time(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)
