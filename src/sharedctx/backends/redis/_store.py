"""The Redis backend: one session shared by many processes and hosts.

Every operation is one call of one Lua script (``script.lua``), so it is atomic on
the server and costs one round trip. The script keeps, per session, a hash of
values, a hash of packed metadata, a lexicographic index of keys (pattern prefixes),
a sorted set of deadlines (judged by the server's clock), a sorted set of recency
(eviction), a lexicographic index of tags, and a capped stream of events whose ids
are the session's revisions. All of a session's keys share one cluster hash tag.

A client learns about changes from the stream: each call made while this process
has subscriptions brings back the events since the last one delivered, and a
thread per context reads the stream (``XREAD BLOCK``) for changes made elsewhere
and runs the expiry sweep every ``purge_interval`` seconds. Events reach the
context's ``EventHub`` once each, in revision order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Generator, Sequence
from importlib import resources
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from sharedctx._codec import decode
from sharedctx._errors import (
    BackendUnavailableError,
    CapacityError,
    ContextClosedError,
    ContextError,
    InvalidArgumentError,
    SessionLostError,
    VersionConflictError,
    WatchOverflowError,
)
from sharedctx._events import EventHub, Subscription
from sharedctx._glob import Glob
from sharedctx._types import ContextEntry, ContextEvent, ContextStats, KeepTTL
from sharedctx.backends.base import Item, TTLArg

__all__ = ["RedisBackend", "RedisStore"]

_log = logging.getLogger("sharedctx")
_SCRIPT = (resources.files("sharedctx.backends.redis") / "script.lua").read_text(encoding="utf-8")
_KEEP = b"\0keep"
_SUFFIXES = ("meta", "entries", "index", "deadlines", "recency", "tags", "events")
_SCHEMES = ("redis", "rediss", "unix")
_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_FIND_ATTEMPTS = 3


def redact(url: str) -> str:
    """``url`` with any password (``:pw@``, or ``?password=``) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = f"{parts.username}:" if parts.username else ":"
        parts = parts._replace(netloc=f"{user}***@{netloc}")
    query = [
        f"{name}=***" if name.lower() == "password" else f"{name}={value}"
        for name, _, value in (item.partition("=") for item in parts.query.split("&") if item)
    ]
    return urlunsplit(parts._replace(query="&".join(query)))


def _escape_session(session_id: str) -> str:
    # Injective, and free of braces, so that the hash tag is exactly the session.
    return session_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


class RedisBackend:
    """Where sessions live on a Redis server (>= 6.2), chosen by URL.

    ``url``: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS, or
    ``unix:///path/to/socket``. Keys are ``<namespace>:{<session>}:<part>``.
    ``socket_timeout`` bounds every call: with the server down a call raises
    ``BackendUnavailableError`` after about that long (redis-py retries once, only
    to replace a broken connection). ``stream_max_len`` caps each session's event
    stream (a watcher further behind gets ``WatchOverflowError``);
    ``purge_interval`` is how often each context sweeps expired entries.
    One backend can serve many contexts; close it when done with them.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "sharedctx",
        socket_timeout: float = 2.0,
        stream_max_len: int = 10_000,
        purge_interval: float = 0.5,
        **client_options: Any,
    ) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
            raise InvalidArgumentError(
                f"a Redis URL starts with redis://, rediss:// or unix://, not {url!r}"
            )
        if not namespace or not namespace.replace("-", "").replace("_", "").isalnum():
            raise InvalidArgumentError(f"namespace must be letters, digits, - or _: {namespace!r}")
        self.url = url
        self.namespace = namespace
        self.socket_timeout = float(socket_timeout)
        self.stream_max_len = int(stream_max_len)
        self.purge_interval = float(purge_interval)
        self._options: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "retry": Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
            **client_options,
        }
        try:
            self.client = redis.Redis.from_url(url, **self._options)
        except ValueError as exc:
            raise InvalidArgumentError(f"bad Redis URL {redact(url)!r}: {exc}") from None
        self.script = self.client.register_script(_SCRIPT)
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, Any]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.registry = f"{namespace}:sessions"
        self.follower = _Follower(self)

    def async_client(self) -> tuple[redis.asyncio.Redis, Any]:
        """The asyncio client and script of the running event loop (one per loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._async.get(loop)
            if found is None:
                client = redis.asyncio.Redis.from_url(self.url, **self._options)
                found = self._async[loop] = (client, client.register_script(_SCRIPT))
        return found

    def keys(self, session_id: str) -> list[bytes]:
        """The Redis keys of a session, in the order the script takes them."""
        base = f"{self.namespace}:{{{_escape_session(session_id)}}}:"
        return [(base + suffix).encode() for suffix in _SUFFIXES]

    def sessions(self) -> list[str]:
        """The ids of the sessions registered in this namespace, sorted."""
        with self.unavailable_as_error():
            members: set[bytes] = self.client.smembers(self.registry)  # type: ignore[assignment]
        return sorted(member.decode() for member in members)

    def unavailable_as_error(self) -> _Unavailable:
        """A context manager turning Redis errors into sharedctx's (see ``failure``)."""
        return _Unavailable(self)

    def failure(self, error: BaseException) -> ContextError:
        """The error for a failed call: ``BackendUnavailableError`` if the server could
        not be reached, else a ``ContextError`` saying what it refused (a wrong
        password, a database that does not exist...). The password is redacted."""
        refused = isinstance(error, redis.exceptions.AuthenticationError)
        if isinstance(error, _UNAVAILABLE) and not refused:
            return BackendUnavailableError(f"Redis at {redact(self.url)} is unavailable: {error}")
        return ContextError(f"Redis at {redact(self.url)} refused the call: {error}")

    def close(self) -> None:
        """Close this process's connections (sync now; asyncio ones on their loops)."""
        self.follower.stop()
        self.client.close()
        with self._lock:
            clients, self._async = list(self._async.items()), weakref.WeakKeyDictionary()
        for loop, (client, _) in clients:
            if not loop.is_closed():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop)

    async def aclose(self) -> None:
        """Close the connections, awaiting the running loop's asyncio client."""
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._async.pop(loop, None)
        if found is not None:
            await found[0].aclose()
        self.close()

    def __repr__(self) -> str:
        return f"RedisBackend({redact(self.url)!r}, namespace={self.namespace!r})"


class _Unavailable:
    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if isinstance(exc, redis.exceptions.RedisError):
            raise self.backend.failure(exc) from None


class _Retry(Exception):
    """A call met a loss of the session that this context had already handled."""


class RedisStore:
    """One session on Redis, for one ``SharedContext`` (see the module docstring)."""

    def __init__(
        self,
        backend: RedisBackend,
        session_id: str,
        hub: EventHub,
        *,
        max_entries: int | None,
        eviction: str,
        owns_backend: bool,
    ) -> None:
        self.session_id = session_id
        self._backend = backend
        self._owns_backend = owns_backend
        self._hub = hub
        self._keys = backend.keys(session_id)
        self._meta = self._keys[:1]  # the script finds the others from the first
        self._settings = [
            b"%d" % backend.stream_max_len,
            b"%d" % (-1 if max_entries is None else max_entries),
            eviction.encode(),
        ]
        self._max_entries = max_entries
        self._hits = self._misses = 0  # this object's reads (the rest is session-wide)
        self._epoch = ""
        self._delivered = -1  # last revision handed to the hub (-1: nobody listens)
        self._delivery_lock = threading.Lock()
        self._lost = False  # lost, seen by the sweep: the next call raises it
        self._register = False  # the session must be registered again (it was lost)
        self._epoch_lock = threading.Lock()
        self._sweeping = threading.Lock()
        self._calls = 0
        self._closed = False
        with backend.unavailable_as_error():
            backend.client.sadd(backend.registry, session_id)
        backend.follower.add(self)

    # -- calling the script ------------------------------------------------------------

    def _argv(self, operation: str, arguments: Sequence[Any]) -> list[Any]:
        since = self._delivered if len(self._hub) else -1
        return [operation, self._epoch, since, *self._settings, *arguments]

    def _call(self, operation: str, arguments: Sequence[Any], *, user: bool = True) -> Any:
        while True:
            self._begin(user)
            try:
                reply = self._backend.script(keys=self._meta, args=self._argv(operation, arguments))
            except redis.exceptions.RedisError as exc:
                raise self._backend.failure(exc) from None
            try:
                return self._settle(reply, user)
            except _Retry:
                continue  # sent with the epoch before a loss this context handled

    async def _acall(self, operation: str, arguments: Sequence[Any]) -> Any:
        client, script = self._backend.async_client()
        while True:
            self._begin(True)
            try:
                reply = await script(
                    keys=self._meta, args=self._argv(operation, arguments), client=client
                )
            except redis.exceptions.RedisError as exc:
                raise self._backend.failure(exc) from None
            try:
                return self._settle(reply, True)
            except _Retry:
                continue

    def _begin(self, user: bool) -> None:
        if self._closed:
            raise ContextClosedError(f"context {self.session_id!r} is closed")
        if user:
            self._calls += 1
            if self._lost:
                self._lost = False
                raise self._lost_error()

    def _settle(self, reply: list[Any], user: bool) -> tuple[bytes, list[Any]]:
        status, epoch, events, *result = reply
        epoch = epoch.decode()
        if status == b"lost":
            with self._epoch_lock:
                known = epoch == self._epoch  # another call of ours met the loss first
                if not known:
                    self._on_lost(epoch)
            if known:
                raise _Retry
            if user:
                self._lost = False
                raise self._lost_error()
            self._lost = True
            return status, result
        self._epoch = epoch
        if events:
            self._advance(events)
        return status, result

    def _lost_error(self) -> SessionLostError:
        return SessionLostError(
            f"session {self.session_id!r} lost its data on the Redis server (a restart "
            "or a flush, or destroy() elsewhere); it goes on empty"
        )

    def _on_lost(self, epoch: str) -> None:
        self._epoch = epoch
        self._register = True  # the next sweep adds the session to the registry again
        with self._delivery_lock:
            if self._delivered >= 0:
                self._delivered = 0
            self._hub.restart()
        self._hub.fail_all(self._lost_error())

    def _run(self, name: str, *arguments: Any) -> Any:
        operation = _OPERATIONS[name]
        status, result = self._call(operation.script, _encoded(operation.arguments(*arguments)))
        return operation.parse(self, arguments, status, result)

    async def _arun(self, name: str, *arguments: Any) -> Any:
        operation = _OPERATIONS[name]
        status, result = await self._acall(
            operation.script, _encoded(operation.arguments(*arguments))
        )
        return operation.parse(self, arguments, status, result)

    # -- the Store interface (each a row of _OPERATIONS; RedisAsync has the twins) ------

    def get(self, key: str) -> ContextEntry | None:
        return self._run("get", key)  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[str]) -> dict[str, ContextEntry]:
        return self._run("get_many", keys)  # type: ignore[no-any-return]

    def contains(self, key: str) -> bool:
        return self._run("contains", key)  # type: ignore[no-any-return]

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
        return self._run("write", key, data, plain, ttl, source, tags, if_version)  # type: ignore[no-any-return]

    def write_many(
        self, items: Sequence[Item], ttl: TTLArg, source: str, tags: tuple[str, ...]
    ) -> list[ContextEntry]:
        return self._run("write_many", items, ttl, source, tags)  # type: ignore[no-any-return]

    def delete(self, key: str) -> bool:
        return self._run("delete", key)  # type: ignore[no-any-return]

    def expire(self, key: str, ttl: float | None) -> bool:
        return self._run("expire", key, ttl)  # type: ignore[no-any-return]

    def find(self, glob: Glob) -> list[ContextEntry]:
        return _drive(self._find(glob), self._call)  # type: ignore[no-any-return]

    def find_tag(self, tag: str) -> list[ContextEntry]:
        return self._run("find_tag", tag)  # type: ignore[no-any-return]

    def keys(self, glob: Glob) -> list[str]:
        return self._run("keys", glob)  # type: ignore[no-any-return]

    def count(self) -> int:
        return self._run("count")  # type: ignore[no-any-return]

    def purge_expired(self) -> int:
        return self._run("purge_expired")  # type: ignore[no-any-return]

    def clear(self) -> int:
        return self._run("clear")  # type: ignore[no-any-return]

    def stats(self, subscriptions: int) -> ContextStats:
        return self._run("stats", subscriptions)  # type: ignore[no-any-return]

    def activity(self) -> int:
        return self._calls

    def subscribe(self, subscription: Subscription) -> None:
        self._listen(subscription, self._run("revision"))

    def _listen(self, subscription: Subscription, revision: int) -> None:
        with self._delivery_lock:
            if self._delivered < 0 or not len(self._hub):
                self._delivered = revision  # nobody listened: start from now
            self._hub.add(subscription, revision)
        self._backend.follower.wake()

    def unsubscribe(self, subscription_id: str) -> bool:
        return self._hub.remove(subscription_id)

    def close(self) -> None:
        self._closed = True
        self._backend.follower.remove(self)
        self._hub.remove_all()
        if self._owns_backend:
            self._backend.close()

    def destroy(self) -> None:
        if self._closed:
            return
        self._closed = True  # first, so that no sweep recreates the session meanwhile
        self._backend.follower.remove(self)
        with self._sweeping:  # and wait for one that is under way
            pass
        try:
            with self._backend.unavailable_as_error():
                pipe = self._backend.client.pipeline(transaction=False)
                pipe.delete(*self._keys)
                pipe.srem(self._backend.registry, self.session_id)
                pipe.execute()
        finally:
            self.close()

    # -- finding by pattern ------------------------------------------------------------

    def _find(self, glob: Glob) -> Generator[tuple[str, list[Any]], Any, list[ContextEntry]]:
        """Entries matching ``glob``, atomically: the pattern's prefix range in one
        call if the prefix decides; else the live keys of the range, filtered here,
        then their entries if nothing changed in between (or, after a few changes,
        the whole range at once, filtered here).
        """
        lo, hi = _prefix_range(glob.prefix)
        if glob.is_literal:
            lo = hi = b"[" + glob.prefix.encode()
        if glob.is_literal or glob.selects_prefix:
            _, result = yield "find_range", [lo, hi]
            return _entries(result[0])
        for _ in range(_FIND_ATTEMPTS):
            _, (keys, revision) = yield "keys", [lo, hi]
            matched = [key for key in keys if glob.match(key.decode())]
            if not matched:
                return []
            status, result = yield "find_keys", [revision, *matched]
            if status == b"ok":
                return _entries(result[0])
        _, result = yield "find_range", [lo, hi]
        return [entry for entry in _entries(result[0]) if glob.match(entry.key)]

    # -- events --------------------------------------------------------------------------

    def _advance(self, events: list[Any]) -> None:
        """Hand the stream entries after the last delivered one to the hub, in order."""
        with self._delivery_lock:
            if self._delivered < 0:
                return
            for event_id, fields in events:
                revision = int(event_id.split(b"-", 1)[0])
                if revision <= self._delivered:
                    continue
                if revision > self._delivered + 1:
                    self._hub.fail_all(
                        WatchOverflowError(
                            f"events {self._delivered + 1} to {revision - 1} of session "
                            f"{self.session_id!r} were trimmed from its stream before they "
                            "were read"
                        )
                    )
                self._delivered = revision
                self._hub.enqueue(_event(self.session_id, revision, fields))
        self._hub.deliver()

    def sweep(self) -> None:
        """Remove what expired (emitting ``expire`` events); called by the follower."""
        with self._sweeping:
            if self._closed:
                return
            if self._register:
                self._register = False
                with self._backend.unavailable_as_error():
                    self._backend.client.sadd(self._backend.registry, self.session_id)
            self._call("purge", (), user=False)

    def stream(self) -> tuple[bytes, int] | None:
        """The event stream's key and the last revision delivered, while anyone listens."""
        if self._closed or not len(self._hub) or self._delivered < 0:
            return None
        return self._keys[-1], self._delivered


class _Follower:
    """One thread per RedisBackend for all of its open sessions: every
    ``purge_interval`` it sweeps each session's expired entries; in between it reads,
    with one blocking ``XREAD``, the event streams of the sessions someone listens to.

    It holds the stores weakly: a context dropped without ``close()`` is freed. The
    thread stops when no session is left, and starts again with the next one.
    """

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend
        self._stores: weakref.WeakSet[RedisStore] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def stop(self) -> None:
        """Stop for good (the backend is closing its connections)."""
        self._stopped = True
        self._wake.set()

    def add(self, store: RedisStore) -> None:
        with self._lock:
            self._stores.add(store)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sharedctx-redis-follower", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def remove(self, store: RedisStore) -> None:
        with self._lock:
            self._stores.discard(store)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        backend = self._backend
        next_sweep = time.monotonic()
        while True:
            with self._lock:
                stores = list(self._stores)
                if not stores or self._stopped:
                    self._thread = None
                    return
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + backend.purge_interval
                unavailable = _sweep_all(stores)
            streams = {key: (store, last) for store in stores if (found := store.stream())
                       for key, last in [found]}  # fmt: skip
            del stores  # no strong reference while waiting
            self._wake.clear()
            pause = max(0.0, next_sweep - time.monotonic())
            if unavailable:
                self._wake.wait(min(pause, 1.0))
            elif streams:
                self._read(streams, pause)
            else:
                self._wake.wait(pause)

    def _read(self, streams: dict[bytes, tuple[RedisStore, int]], pause: float) -> None:
        ids: Any = {key: f"{last}-0" for key, (_, last) in streams.items()}
        try:
            found: Any = self._backend.client.xread(
                ids, count=1000, block=max(1, min(int(pause * 1000), 250))
            )
        except Exception:  # the server went away, or the backend closed the connection
            if not self._stopped:
                self._wake.wait(min(pause, 1.0))
            return
        for key, events in found or ():
            store = streams[key][0]
            try:
                store._advance(events)
            except Exception:
                _log.exception("sharedctx: delivering events of %r failed", store.session_id)


def _sweep_all(stores: list[RedisStore]) -> bool:
    """Sweep every store; whether the server was unavailable."""
    for store in stores:
        try:
            store.sweep()
        except BackendUnavailableError:
            return True
        except ContextClosedError:
            continue
        except Exception:
            _log.exception("sharedctx: sweeping session %r failed", store.session_id)
    return False


class RedisAsync:
    """The async face of a RedisStore: the same operations, awaited on redis.asyncio."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store

    async def find(self, glob: Glob) -> list[ContextEntry]:
        return await _adrive(self._store._find(glob), self._store._acall)  # type: ignore[no-any-return]

    async def subscribe(self, subscription: Subscription) -> None:
        self._store._listen(subscription, await self._store._arun("revision"))

    async def close(self) -> None:
        store = self._store
        if store._owns_backend:
            await store._backend.aclose()  # this loop's connection, awaited
        store.close()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in _OPERATIONS:
            raise AttributeError(name)
        store = self._store

        async def twin(*arguments: Any) -> Any:
            return await store._arun(name, *arguments)

        twin.__name__ = name
        setattr(self, name, twin)
        return twin


def _drive(steps: Generator[tuple[str, list[Any]], Any, Any], call: Callable[..., Any]) -> Any:
    result: Any = None
    while True:
        try:
            operation, arguments = steps.send(result)
        except StopIteration as stop:
            return stop.value
        result = call(operation, arguments)


async def _adrive(steps: Generator[tuple[str, list[Any]], Any, Any], call: Any) -> Any:
    result: Any = None
    while True:
        try:
            operation, arguments = steps.send(result)
        except StopIteration as stop:
            return stop.value
        result = await call(operation, arguments)


# -- arguments and replies ------------------------------------------------------------------


def _encoded(arguments: Sequence[Any]) -> list[Any]:
    return [arg.encode() if isinstance(arg, str) else arg for arg in arguments]


def _ttl_ms(ttl: TTLArg) -> int:
    if isinstance(ttl, KeepTTL):
        return -2
    return -1 if ttl is None else max(1, round(ttl * 1000))


def _tags_args(tags: tuple[str, ...] | None) -> list[Any]:
    return [_KEEP] if tags is None else [len(tags), *tags]


def _prefix_range(prefix: str) -> tuple[bytes, bytes]:
    # UTF-8 never contains the byte 0xff, so [prefix, prefix + 0xff] is the prefix's range.
    if not prefix:
        return b"-", b"+"
    encoded = prefix.encode()
    return b"[" + encoded, b"[" + encoded + b"\xff"


def _entry(key: str, value: bytes, packed: bytes) -> ContextEntry:
    version, created, updated, ttl, expires, source, tags = decode(packed)
    return ContextEntry(
        key,
        None if ttl < 0 else ttl / 1000,
        source,
        version,
        tuple(tags),
        value,
        None,
        created / 1000,
        updated / 1000,
        None if expires < 0 else expires / 1000,
    )


def _unblob(key: str, blob: bytes) -> ContextEntry:
    """An entry from a stored blob: 8 digits of metadata length, metadata, value."""
    size = int(blob[:8])
    return _entry(key, blob[8 + size :], blob[8 : 8 + size])


def _entries(flat: list[bytes]) -> list[ContextEntry]:
    return [_unblob(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)]


def _event(session_id: str, revision: int, fields: Any) -> ContextEvent:
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    key = fields[b"k"].decode()
    entry = _unblob(key, fields[b"e"])
    return ContextEvent(fields[b"a"].decode(), key, entry, session_id, revision)


def _read(store: RedisStore, args: tuple[Any, ...], status: bytes, result: list[Any]) -> Any:
    blob = result[0]
    if blob:
        store._hits += 1
        return _unblob(args[0], blob)
    store._misses += 1
    return None


def _read_many(store: RedisStore, args: tuple[Any, ...], status: bytes, result: list[Any]) -> Any:
    found = {entry.key: entry for entry in _entries(result[0])}
    store._hits += len(found)
    store._misses += len(args[0]) - len(found)
    return found


def _write_arguments(
    key: str,
    data: bytes,
    plain: Any,
    ttl: TTLArg,
    source: str | None,
    tags: tuple[str, ...] | None,
    if_version: int | None,
) -> list[Any]:
    version = -1 if if_version is None else if_version
    origin = _KEEP if source is None else source
    return [key, data, _ttl_ms(ttl), version, origin, *_tags_args(tags)]


def _write_many_arguments(
    items: Sequence[Item], ttl: TTLArg, source: str, tags: tuple[str, ...]
) -> list[Any]:
    pairs = [part for key, data, _ in items for part in (key, data)]
    return [_ttl_ms(ttl), source, *_tags_args(tags), *pairs]


def _full(store: RedisStore, result: list[Any], new_keys: int) -> CapacityError:
    return CapacityError(
        f"context {store.session_id!r} holds {int(result[0])} of at most "
        f"{store._max_entries} entries: no room for {new_keys} new key(s)"
    )


def _written(
    store: RedisStore, args: tuple[Any, ...], status: bytes, result: list[Any]
) -> ContextEntry:
    key, data, _, _, _, _, if_version = args
    if status == b"conflict":
        raise VersionConflictError(key, if_version, int(result[0]))
    if status == b"full":
        raise _full(store, result, 1)
    return _entry(key, data, result[0])


def _written_many(
    store: RedisStore, args: tuple[Any, ...], status: bytes, result: list[Any]
) -> list[ContextEntry]:
    items = args[0]
    if status == b"full":
        raise _full(store, result, len(items))
    return [
        _entry(key, data, packed) for (key, data, _), packed in zip(items, result[0], strict=True)
    ]


def _stats(store: RedisStore, args: tuple[Any, ...], status: bytes, result: list[Any]) -> Any:
    count, counters = result
    expired, evicted, revision = (int(value or 0) for value in counters)
    return ContextStats(count, store._hits, store._misses, expired, evicted, args[0], revision)


class _Operation(NamedTuple):
    """A Store call as a script operation: its arguments, and its reply's meaning."""

    script: str
    arguments: Callable[..., Sequence[Any]]
    parse: Callable[[RedisStore, tuple[Any, ...], bytes, list[Any]], Any]


def _count(store: RedisStore, args: tuple[Any, ...], status: bytes, result: list[Any]) -> int:
    return int(result[0] or 0)


def _flag(store: RedisStore, args: tuple[Any, ...], status: bytes, result: list[Any]) -> bool:
    return bool(result[0])


def _none(*args: Any) -> Sequence[Any]:
    return ()


_OPERATIONS: dict[str, _Operation] = {
    "get": _Operation("get", lambda key: (key,), _read),
    "get_many": _Operation("get_many", tuple, _read_many),
    "contains": _Operation("contains", lambda key: (key,), _flag),
    "write": _Operation("write", _write_arguments, _written),
    "write_many": _Operation("write_many", _write_many_arguments, _written_many),
    "delete": _Operation("delete", lambda key: (key,), _flag),
    "expire": _Operation("expire", lambda key, ttl: (key, _ttl_ms(ttl)), _flag),
    "find_tag": _Operation(
        "find_tag", lambda tag: (tag,), lambda store, args, status, result: _entries(result[0])
    ),
    "keys": _Operation(
        "keys",
        lambda glob: _prefix_range(glob.prefix),
        lambda store, args, status, result: [
            key for key in (raw.decode() for raw in result[0]) if args[0].match(key)
        ],
    ),
    "count": _Operation("count", _none, _count),
    "purge_expired": _Operation("purge", _none, _count),
    "clear": _Operation("clear", _none, _count),
    "stats": _Operation("stats", _none, _stats),
    "revision": _Operation("revision", _none, _count),
}
