"""``RedisBackend``: where sessions live on a Redis server or a Redis Cluster.

The backend puts its parts together and owns nothing else: ``servers`` (one server,
or a cluster's nodes, and connections to them), ``calls.Caller`` (the call loop:
retries, redirects, deadlines), ``sessions.Sessions`` (the open stores and their
follower). The admin calls of ``sharedctx sessions``, ``delete`` and ``prune`` are
here too: they scan for the sessions' meta keys, which the data path never does.
See ``docs/architecture.md``.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis
import redis.asyncio

from sharedctx import steps
from sharedctx._checks import check_history_retention, check_history_versions
from sharedctx._codec import MSGPACK, Codec
from sharedctx._errors import BackendUnavailableError, ContextError, InvalidArgumentError
from sharedctx._events import EventHub
from sharedctx._sealed import KeyProvider, SessionKeys
from sharedctx.backends.base import SessionSummary, StoreOptions
from sharedctx.backends.redis import keys, operations
from sharedctx.backends.redis.calls import LIBRARY, LIBRARY_CODE, Caller
from sharedctx.backends.redis.servers import ClusterServers, not_a_cluster, servers_for
from sharedctx.backends.redis.sessions import Sessions, SessionSettings
from sharedctx.backends.redis.store import RedisStore
from sharedctx.backends.redis.urls import check_url, redact

__all__ = ["RedisBackend", "SessionSummary"]

T = TypeVar("T")


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
      drops the whole session, even if no client runs again (reads, sweeps and
      expiries are no writes: they do not keep it); None keeps it until ``destroy()``.
    - ``purge_interval``: how often the follower sweeps expired entries and removes
      what must not be kept.
    - ``lease_ttl``: how long a ``get_or_set`` lease lives without renewal (another
      process takes over a dead holder's work after it).
    - ``history_versions`` and ``history_retention``: the defaults of the contexts
      that do not set their own: how many past versions of each key to keep (0: none)
      and for how many seconds (None: ``event_retention``). See
      ``docs/guides/history.md``.
    - ``keyring``: a :class:`~sharedctx.KeyRing` (or another ``KeyProvider``): every
      session it opens is sealed, its values encrypted in this process before they
      are sent (see ``docs/guides/sealed.md``).

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
        history_versions: int = 0,
        history_retention: float | None = None,
        keyring: KeyProvider | None = None,
        **client_options: Any,
    ) -> None:
        target = check_url(url)
        if keyring is not None and not isinstance(keyring, KeyProvider):
            raise InvalidArgumentError(
                f"keyring must be a KeyRing, not {keyring!r}: KeyRing({{'2026-12': key}}) "
                "with a key from KeyRing.generate_key(), or another KeyProvider"
            )
        self.keyring = keyring
        self.url = url
        self.where = redact(url)
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
        self.history_versions = check_history_versions(history_versions)
        self.history_retention = (
            self.event_retention
            if history_retention is None
            else check_history_retention(history_retention)
        )
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
        except redis.exceptions.RedisClusterException as exc:  # asked for its nodes now
            if not_a_cluster(exc):
                raise BackendUnavailableError(
                    f"Redis at {self.where} is not a cluster (cluster mode is not enabled): "
                    "for a single server use a redis:// URL"
                ) from None
            raise BackendUnavailableError(
                f"Redis Cluster at {self.where} is unavailable: no node answered "
                f"({_reason(exc)}); check that the nodes are running and reachable"
            ) from None
        except redis.exceptions.RedisError as exc:
            raise Caller.failure_at(self.where, exc) from None
        self.kind = "redis-cluster" if isinstance(self.servers, ClusterServers) else "redis"
        """The backend's name in spans and metrics."""
        self.caller = Caller(
            self.servers,
            where=self.where,
            socket_timeout=self.socket_timeout,
            durability=durability,
        )
        """The call loop of this backend's stores and admin calls."""
        settings = SessionSettings(
            namespace=namespace,
            stream_max_len=self.stream_max_len,
            event_retention=self.event_retention,
            session_ttl=self.session_ttl,
            request_window=self.request_window,
            lease_ttl=self.lease_ttl,
            history_versions=self.history_versions,
            history_retention=self.history_retention,
            listeners_counted=self.kind == "redis",
        )
        self.registry = Sessions(self.caller, settings, self.purge_interval, keyring)
        self._admin_prefix = settings.for_store(StoreOptions())
        """The open stores of this backend, and their follower."""
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisBackend({self.where!r}, namespace={self.namespace!r})"

    def __str__(self) -> str:
        return self.where

    # -- sessions ------------------------------------------------------------------------

    def open(
        self, session_id: str, hub: EventHub, options: StoreOptions, codec: Codec
    ) -> RedisStore:
        """The store of ``session_id`` for one context."""
        if self._closed:
            raise ContextError(f"{self!r} is closed")
        return self.registry.open(session_id, hub, options, codec)

    def keys_of(self, session_id: str) -> list[bytes]:
        """The Redis keys of a session, in the order the function takes them, then its
        channel."""
        return keys.session_keys(self.namespace, session_id)

    # -- admin ---------------------------------------------------------------------------

    def sessions(self) -> list[str]:
        """The ids of the sessions in this namespace, sorted (a ``SCAN`` of every
        master: an admin call, not for the data path)."""
        pattern = keys.meta_pattern(self.namespace)
        found: set[str] = set()
        try:
            for client in self.servers.masters():
                for key in client.scan_iter(match=pattern, count=1000, _type="hash"):
                    session = keys.session_of_meta_key(self.namespace, key)
                    if session is not None:
                        found.add(session)
        except redis.exceptions.RedisError as exc:
            raise self.caller.failure(exc) from None
        return sorted(found)

    def has_session(self, session_id: str) -> bool:
        """Whether the session exists on the server (without creating it)."""
        meta = self.keys_of(session_id)[0]
        return bool(self.caller.command(lambda client: client.exists(meta), meta))

    def session_summary(self, session_id: str) -> SessionSummary | None:
        """A session's size and lifetime (None if it does not exist)."""
        meta, entries, _, deadlines, *_ = self.keys_of(session_id)

        def summarize(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.time()
            pipe.exists(meta)
            pipe.hlen(entries)
            pipe.hmget(meta, "bytes", "written", "hbytes")
            pipe.pttl(meta)
            pipe.zcount(deadlines, "-inf", "+inf")
            replies: list[Any] = pipe.execute()
            if replies[1]:
                seconds, micros = replies[0]
                now = seconds * 1000 + micros // 1000
                replies.append(client.zcount(deadlines, "-inf", now))
            return replies

        replies = self.caller.command(summarize, meta)
        if not replies[1]:
            return None
        (seconds, micros), _, stored, (size, written, past), pttl, _, expired = replies
        now_ms = seconds * 1000 + micros // 1000
        return SessionSummary(
            session_id,
            max(0, stored - expired),
            int(size or 0),
            _time(int(written)) if written is not None else None,
            _time(now_ms + pttl) if pttl >= 0 else None,
            int(past or 0),
        )

    def session_summaries(self) -> list[SessionSummary]:
        """Every session of the namespace with its size and lifetime, sorted by id."""
        found = (self.session_summary(session) for session in self.sessions())
        return [summary for summary in found if summary is not None]

    def drop_session(self, session_id: str) -> bool:
        """Delete every key of a session, for everyone; False if it did not exist.

        Contexts that still use it get ``SessionLostError`` from their next call.
        """
        names = self.keys_of(session_id)[: len(keys.SUFFIXES) - 1]  # not the channel
        return bool(self.caller.command(lambda client: client.delete(*names), names[0]))

    def load_library(self) -> int:
        """Load sharedctx's function library on every master now (an admin's call);
        how many did not have it. A user whose ACL does not allow ``FUNCTION LOAD``
        (``sharedctx acl``) relies on it: otherwise the first call on a master loads
        it."""
        loaded = 0
        try:
            for client in self.servers.masters():
                try:
                    client.function_load(LIBRARY_CODE.decode())
                    loaded += 1
                except redis.exceptions.ResponseError as exc:
                    if "already exists" not in str(exc):
                        raise
        except redis.exceptions.RedisError as exc:
            raise self.caller.failure(exc) from None
        return loaded

    def rekey_session(self, session_id: str) -> bool:
        """Rewrap a sealed session's data key by the key ring's first key (see
        ``SharedContext.rekey``), without opening the session; False if it already
        was, or the session is not sealed or does not exist."""
        if self.keyring is None:
            raise InvalidArgumentError("rekey needs a RedisBackend with a keyring")
        names = self.keys_of(session_id)
        prefix = operations.prefix(LIBRARY, names, self._admin_prefix)
        reader = operations.Reader(MSGPACK)

        def call(operation: operations.Operation[T]) -> T:
            argv = operations.arguments(operation, "", -1, b"", b"")
            raw = self.caller.call(operation, prefix, argv)
            return operation.parse(operations.reply_of(raw), reader)

        keys = SessionKeys(self.keyring, self.namespace, session_id)
        return steps.run(operations.rekey(keys), call)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the follower and close this process's connections (sync now; asyncio
        ones on their loops). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.registry.close()
        self.servers.close()

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close`: awaits the running loop's connections."""
        await self.servers.aclose()
        await asyncio.to_thread(self.close)  # joins the follower without blocking the loop


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"{name} must be a number > 0, not {value!r}")
    return float(value)


def _time(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


def _reason(error: BaseException) -> str:
    """redis-py's reason, without its advice to "provide a reachable node"."""
    text = str(error)
    return text.rpartition(": ")[2] or text
