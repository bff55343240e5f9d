"""The follower: one thread per ``RedisBackend`` for all of its open sessions.

Every ``purge_interval`` it sweeps each session (expired entries, the events that
must not be kept); every third of ``lease_ttl`` it renews the ``get_or_set`` leases
this process holds; in between it reads, with one blocking ``XREAD`` on a
connection of its own, the event streams of the sessions someone listens to, and
hands their events to the stores. It never runs a subscriber itself: the stores
deliver on the shared event pool, so a slow subscriber holds up no sweep.

It holds the stores weakly (a context dropped without ``close()`` is freed), stops
when no session is left and starts again with the next one. ``wake()`` makes a
blocked read return at once (``CLIENT UNBLOCK``), so that a new listener's stream
is read without delay; ``stop()`` does the same, then joins the thread.
"""

from __future__ import annotations

import logging
from contextlib import suppress
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sharedctx._errors import BackendUnavailableError, ContextClosedError, ContextError

if TYPE_CHECKING:
    import redis

    from sharedctx.backends.redis.backend import RedisBackend
    from sharedctx.backends.redis.store import RedisStore

__all__ = ["Follower"]

_log = logging.getLogger("sharedctx")
MAX_BLOCK = 0.25
"""Longest blocking read, in seconds (the loop looks at its sessions between reads)."""


class Follower:
    """The thread of one backend (see the module docstring)."""

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend
        self._stores: weakref.WeakSet[RedisStore] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._client_id: int | None = None  # our connection's, on the server
        self._blocked_id: int | None = None  # the same, while it blocks

    def add(self, store: RedisStore) -> None:
        """Follow ``store``'s session (starts the thread if needed)."""
        with self._lock:
            if self._stopped:
                raise ContextError(f"{self._backend!r} is closed")
            self._stores.add(store)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sharedctx-redis-follower", daemon=True
                )
                self._thread.start()

    def remove(self, store: RedisStore) -> None:
        """Stop following ``store``'s session."""
        with self._lock:
            self._stores.discard(store)
        self.wake()

    def wake(self) -> None:
        """Look at the sessions again now (a listener came or went)."""
        self._wake.set()
        with self._lock:
            blocked = self._blocked_id
        if blocked is not None:
            self._unblock(blocked)

    def stop(self) -> None:
        """Stop for good and wait for the thread (the backend is closing)."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        self.wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._backend.socket_timeout + MAX_BLOCK + 1)

    def _unblock(self, client_id: int) -> None:
        with suppress(ContextError):  # the server is gone: the read ends within MAX_BLOCK
            self._backend.command(lambda client: client.client_unblock(client_id))

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        backend = self._backend
        connection: redis.connection.Connection | None = None
        next_sweep = next_renewal = time.monotonic()
        try:
            while True:
                with self._lock:
                    stores = list(self._stores)
                    if not stores or self._stopped:
                        self._thread = None
                        return
                now = time.monotonic()
                unavailable = False
                if now >= next_sweep:
                    next_sweep = now + backend.purge_interval
                    unavailable = _each(stores, "sweeping", lambda store: store.sweep())
                if now >= next_renewal and not unavailable:
                    next_renewal = now + backend.lease_ttl / 3
                    unavailable = _each(stores, "renewing leases of", lambda s: s.renew_leases())
                streams = {}
                for store in stores:
                    position = store.stream_position()
                    if position is not None:
                        streams[position[0]] = (store, position[1])
                del stores  # no strong reference while waiting
                pause = max(0.0, min(next_sweep, next_renewal) - time.monotonic())
                if unavailable or not streams:
                    self._wake.wait(min(pause, 1.0))
                    self._wake.clear()
                    continue
                try:
                    connection = connection or self._connect()
                    found = self._read(connection, streams, min(pause, MAX_BLOCK))
                except Exception as exc:
                    if connection is not None:
                        connection.disconnect()
                        connection = None
                    if not self._stopped:
                        _log.debug("sharedctx: reading events failed: %s", exc)
                        self._wake.wait(min(pause, 1.0))
                    continue
                for key, events in found:
                    store = streams[key][0]
                    try:
                        store.advance(events, None)
                    except Exception:
                        _log.exception("sharedctx: events of %r were lost", store.session_id)
        finally:
            if connection is not None:
                connection.disconnect()

    def _connect(self) -> redis.connection.Connection:
        connection = self._backend.new_connection()
        connection.connect()
        connection.send_command("CLIENT", "ID")
        self._client_id = int(connection.read_response())
        return connection

    def _read(
        self,
        connection: redis.connection.Connection,
        streams: dict[bytes, tuple[RedisStore, int]],
        pause: float,
    ) -> list[tuple[bytes, list[Any]]]:
        """One blocking ``XREAD`` of ``streams`` (or none, if woken meanwhile)."""
        with self._lock:
            if self._wake.is_set() or self._stopped:
                self._wake.clear()
                return []
            self._blocked_id = self._client_id
        try:
            connection.send_command(
                "XREAD", "COUNT", 1000, "BLOCK", max(1, int(pause * 1000)), "STREAMS",
                *streams, *(f"{last}-0" for _, last in streams.values()),
            )  # fmt: skip
            reply = connection.read_response()
        finally:
            with self._lock:
                self._blocked_id = None
        if reply is None:
            return []
        if isinstance(reply, dict):  # RESP3
            return list(reply.items())
        return [(key, events) for key, events in reply]


def _each(stores: list[RedisStore], doing: str, action: Callable[[RedisStore], object]) -> bool:
    """Apply ``action`` to every store; whether the server was unavailable."""
    for store in stores:
        try:
            action(store)
        except BackendUnavailableError:
            return True
        except ContextClosedError:
            continue
        except Exception:
            _log.exception("sharedctx: %s session %r failed", doing, store.session_id)
    return False
