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
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from sharedctx._errors import ContextError, InvalidArgumentError
from sharedctx._events import EventHub
from sharedctx.backends.base import StoreOptions
from sharedctx.backends.redis import protocol
from sharedctx.backends.redis.follower import Follower

if TYPE_CHECKING:
    from sharedctx.backends.redis.store import RedisAsyncStore, RedisStore

__all__ = ["RedisBackend", "SessionSummary"]

SCRIPT = (resources.files("sharedctx.backends.redis") / "script.lua").read_bytes()
SCRIPT_SHA = hashlib.sha1(SCRIPT).hexdigest()
_FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


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
        **client_options: Any,
    ) -> None:
        self.url = protocol.check_url(url)
        if not namespace or not namespace.replace("-", "").replace("_", "").isalnum():
            raise InvalidArgumentError(f"namespace must be letters, digits, - or _: {namespace!r}")
        self.namespace = namespace
        self.socket_timeout = _positive(socket_timeout, "socket_timeout")
        self.stream_max_len = int(_positive(stream_max_len, "stream_max_len"))
        self.event_retention = _positive(event_retention, "event_retention")
        self.session_ttl = None if session_ttl is None else _positive(session_ttl, "session_ttl")
        self.purge_interval = _positive(purge_interval, "purge_interval")
        self.lease_ttl = _positive(lease_ttl, "lease_ttl")
        self.request_window = max(60.0, 10 * self.socket_timeout)
        """How long the server remembers a write's request id (and outcome)."""
        self._options: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "retry": Retry(NoBackoff(), 0),  # the calls here decide what is sent again
            **client_options,
        }
        try:
            self._client = redis.Redis.from_url(self.url, **self._options)
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(f"bad Redis URL {self}: {exc}") from None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis]
        self._async = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._closed = False
        self.follower = Follower(self)
        """The thread that sweeps this backend's sessions and reads their events."""

    def __repr__(self) -> str:
        return f"RedisBackend({protocol.redact(self.url)!r}, namespace={self.namespace!r})"

    def __str__(self) -> str:
        return protocol.redact(self.url)

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

    def settings(self, options: StoreOptions) -> list[bytes]:
        """The settings a store sends with every call."""
        return protocol.Settings(
            self.stream_max_len,
            options.max_entries,
            options.eviction,
            self.session_ttl,
            self.event_retention,
            self.request_window,
        ).header()

    # -- calling the script ------------------------------------------------------------

    def call(
        self, operation: protocol.Operation[Any], keys: list[bytes], argv: list[Any]
    ) -> list[Any]:
        """One call of the script: the raw reply (see the module docstring)."""
        attempts = protocol.Attempts(operation, time.monotonic() + self.socket_timeout, str(self))
        pool = self._client.connection_pool
        command = ("EVALSHA", SCRIPT_SHA, len(keys), *keys, *argv)
        loads = 0
        while True:
            sent = False
            try:
                connection = pool.get_connection()
            except redis.exceptions.AuthenticationError as exc:
                raise self.refused(exc) from None
            except _FAILURES as exc:
                time.sleep(attempts.failed(exc, sent=False, now=time.monotonic()))
                continue
            except redis.exceptions.RedisError as exc:  # no such database...
                raise self.refused(exc) from None
            try:
                connection.send_command(*command)
                sent = True
                reply: list[Any] = connection.read_response()
                return reply
            except redis.exceptions.NoScriptError as exc:
                loads = _load_again(loads, exc, self)
                connection.send_command("SCRIPT", "LOAD", SCRIPT)
                connection.read_response()
            except _FAILURES as exc:
                connection.disconnect()
                time.sleep(attempts.failed(exc, sent=sent, now=time.monotonic()))
            except redis.exceptions.RedisError as exc:
                raise self.refused(exc) from None
            finally:
                pool.release(connection)

    async def acall(
        self, operation: protocol.Operation[Any], keys: list[bytes], argv: list[Any]
    ) -> list[Any]:
        """Awaitable twin of :meth:`call`, on this event loop's client."""
        attempts = protocol.Attempts(operation, time.monotonic() + self.socket_timeout, str(self))
        pool = self.async_client().connection_pool
        command = ("EVALSHA", SCRIPT_SHA, len(keys), *keys, *argv)
        loads = 0
        while True:
            sent = False
            try:
                connection = await pool.get_connection()
            except redis.exceptions.AuthenticationError as exc:
                raise self.refused(exc) from None
            except _FAILURES as exc:
                await asyncio.sleep(attempts.failed(exc, sent=False, now=time.monotonic()))
                continue
            except redis.exceptions.RedisError as exc:  # no such database...
                raise self.refused(exc) from None
            try:
                await connection.send_command(*command)
                sent = True
                reply: list[Any] = await connection.read_response()
                return reply
            except redis.exceptions.NoScriptError as exc:
                loads = _load_again(loads, exc, self)
                await connection.send_command("SCRIPT", "LOAD", SCRIPT)
                await connection.read_response()
            except _FAILURES as exc:
                await connection.disconnect()
                await asyncio.sleep(attempts.failed(exc, sent=sent, now=time.monotonic()))
            except redis.exceptions.RedisError as exc:
                raise self.refused(exc) from None
            finally:
                await pool.release(connection)

    def async_client(self) -> redis.asyncio.Redis:
        """The asyncio client of the running event loop (one per loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async.get(loop)
            if client is None:
                if self._closed:
                    raise ContextError(f"{self!r} is closed")
                client = self._async[loop] = redis.asyncio.Redis.from_url(self.url, **self._options)
        return client

    def command(self, function: Callable[[redis.Redis], Any]) -> Any:
        """Run ``function(client)`` for a plain command (admin, follower), with Redis
        errors turned into sharedctx's."""
        try:
            return function(self._client)
        except redis.exceptions.RedisError as exc:
            raise self.failure(exc) from None

    def failure(self, error: BaseException) -> ContextError:
        """The error for a failed plain command: ``BackendUnavailableError`` if the
        server could not be reached, else what it refused (password redacted)."""
        if isinstance(error, _FAILURES) and not isinstance(
            error, redis.exceptions.AuthenticationError
        ):
            return protocol.unavailable(str(self), error)
        return self.refused(error)

    def refused(self, error: BaseException) -> ContextError:
        """The error for a call the server refused (a wrong password, no such
        database, out of memory...)."""
        return ContextError(f"Redis at {self} refused the call: {error}")

    def new_connection(self) -> redis.connection.Connection:
        """A connection of its own, outside the pool (the follower's blocking reads)."""
        connection: Any = self._client.connection_pool.make_connection()
        return connection  # type: ignore[no-any-return]

    # -- admin ---------------------------------------------------------------------------

    def sessions(self) -> list[str]:
        """The ids of the sessions in this namespace, sorted (a ``SCAN`` of the
        database: an admin call, not for the data path)."""
        pattern = protocol.meta_pattern(self.namespace)

        def scan(client: redis.Redis) -> list[bytes]:
            return list(client.scan_iter(match=pattern, count=1000, _type="hash"))

        found = (protocol.session_of_meta_key(self.namespace, key) for key in self.command(scan))
        return sorted(session for session in found if session is not None)

    def has_session(self, session_id: str) -> bool:
        """Whether the session exists on the server (without creating it)."""
        meta = self.keys_of(session_id)[0]
        return bool(self.command(lambda client: client.exists(meta)))

    def session_summaries(self) -> list[SessionSummary]:
        """Every session of the namespace with its size and lifetime, sorted by id."""
        sessions = self.sessions()

        def summarize(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.time()
            for session in sessions:
                meta, entries, _, deadlines, *_ = self.keys_of(session)
                pipe.hlen(entries)
                pipe.hmget(meta, "bytes", "written")
                pipe.pttl(meta)
                pipe.zrangebyscore(deadlines, "-inf", "+inf", withscores=True)
            replies: list[Any] = pipe.execute()
            return replies

        replies = self.command(summarize)
        seconds, micros = replies[0]
        now_ms = seconds * 1000 + micros // 1000
        summaries = []
        for index, session in enumerate(sessions):
            stored, (size, written), pttl, deadlines = replies[1 + 4 * index : 5 + 4 * index]
            expired = sum(1 for _, score in deadlines if score <= now_ms)
            summaries.append(
                SessionSummary(
                    session,
                    max(0, stored - expired),
                    int(size or 0),
                    _time(int(written)) if written is not None else None,
                    _time(now_ms + pttl) if pttl >= 0 else None,
                )
            )
        return summaries

    def drop_session(self, session_id: str) -> bool:
        """Delete every key of a session, for everyone; False if it did not exist.

        Contexts that still use it get ``SessionLostError`` from their next call.
        """
        keys = self.keys_of(session_id)
        return bool(self.command(lambda client: client.delete(*keys)))

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the follower and close this process's connections (sync now; asyncio
        ones on their loops). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients, self._async = list(self._async.items()), weakref.WeakKeyDictionary()
        self.follower.stop()
        self._client.close()
        self._client.connection_pool.disconnect()
        for loop, client in clients:
            if not loop.is_closed() and loop.is_running():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop)

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close`: awaits the running loop's client."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()
        await asyncio.to_thread(self.close)  # joins the follower without blocking the loop


def _load_again(loads: int, error: BaseException, backend: RedisBackend) -> int:
    """Count a load of the script after ``NOSCRIPT`` (it was not run); a server that
    keeps forgetting it refuses the call."""
    if loads >= 3:
        raise backend.refused(error)
    return loads + 1


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"{name} must be a number > 0, not {value!r}")
    return float(value)


def _time(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)
