"""The follower: one thread per ``RedisBackend`` for all of its open sessions.

Every ``purge_interval`` it sweeps each session (expired entries, events older than
the retention); every third of ``lease_ttl`` it renews the ``get_or_set`` leases
this process holds. In between it listens, on a connection of its own, to the
sharded pub/sub channels of the sessions someone in this process listens to: each
change is published there by the script, with its value, and handed to the stores.

Pub/sub delivers at most once. A store notices a change it missed by its revision
and reads the missed changes from the session's event stream ("catching up"); it
also catches up when its channel's subscription starts, so nothing published in
between is lost. The follower never runs a subscriber itself: the stores deliver on
the shared event pool, so a slow subscriber holds up no sweep.

It holds the stores weakly (a context dropped without ``close()`` is freed), stops
when no session is left and starts again with the next one.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sharedctx._errors import BackendUnavailableError, ContextClosedError, ContextError

if TYPE_CHECKING:
    from sharedctx.backends.redis.backend import RedisBackend
    from sharedctx.backends.redis.store import RedisStore

__all__ = ["Follower"]

_log = logging.getLogger("sharedctx")
MAX_BLOCK = 0.25
"""Longest wait for a message, in seconds (the loop looks at its sessions between)."""


class Follower:
    """The thread of one backend (see the module docstring)."""

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend
        self._stores: weakref.WeakSet[RedisStore] = weakref.WeakSet()
        self._listeners: dict[bytes, weakref.WeakSet[RedisStore]] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Any = None  # the pub/sub connection, while it is up
        self._stopped = False

    def add(self, store: RedisStore) -> None:
        """Sweep ``store``'s session (starts the thread if needed)."""
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
        """Stop sweeping and listening for ``store``."""
        self.unlisten(store)
        with self._lock:
            self._stores.discard(store)

    def listen(self, store: RedisStore) -> None:
        """Hand ``store`` the changes published on its session's channel from now on."""
        channel = store.channel
        with self._lock:
            listeners = self._listeners.get(channel)
            new = listeners is None
            if listeners is None:
                listeners = self._listeners[channel] = weakref.WeakSet()
            listeners.add(store)
        if new:
            self._send("SSUBSCRIBE", channel)  # the store catches up once confirmed
            self._wake.set()
        else:
            store.catch_up()  # a change may have passed before it was a listener

    def unlisten(self, store: RedisStore) -> None:
        """Stop handing ``store`` its session's changes."""
        channel = store.channel
        with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is None or store not in listeners:
                return
            listeners.discard(store)
            empty = not listeners
            if empty:
                del self._listeners[channel]
        if empty:
            self._send("SUNSUBSCRIBE", channel)

    def stop(self) -> None:
        """Stop for good and wait for the thread (the backend is closing)."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._wake.set()
        self._send("PING")  # ends a wait for a message at once
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._backend.socket_timeout + MAX_BLOCK + 1)

    def _send(self, *command: Any) -> None:
        with self._send_lock:
            connection = self._connection
            if connection is None:
                return  # the thread subscribes every channel when it connects
            try:
                connection.send_command(*command)
            except Exception as exc:  # the thread sees the broken connection too
                _log.debug("sharedctx: %s on the event channel failed: %s", command[0], exc)

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        backend = self._backend
        next_sweep = next_renewal = time.monotonic()
        try:
            while True:
                with self._lock:
                    stores = list(self._stores)
                    if not stores or self._stopped:
                        self._thread = None
                        return
                    listening = bool(self._listeners)
                now = time.monotonic()
                unavailable = False
                if now >= next_sweep:
                    next_sweep = now + backend.purge_interval
                    unavailable = _each(stores, "sweeping", lambda store: store.sweep())
                if now >= next_renewal and not unavailable:
                    next_renewal = now + backend.lease_ttl / 3
                    unavailable = _each(stores, "renewing leases of", lambda s: s.renew_leases())
                del stores  # no strong reference while waiting
                pause = max(0.0, min(next_sweep, next_renewal) - time.monotonic())
                if unavailable or not listening:
                    self._disconnect()
                    self._wake.wait(min(pause, 1.0))
                    self._wake.clear()
                    continue
                try:
                    self._receive(min(pause, MAX_BLOCK))
                except Exception as exc:
                    self._disconnect()
                    if not self._stopped:
                        _log.debug("sharedctx: listening for changes failed: %s", exc)
                        self._wake.wait(min(pause, 1.0))
                        self._wake.clear()
        finally:
            self._disconnect()

    def _receive(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a message and handle what came."""
        connection = self._connection or self._connect()
        if not connection.can_read(timeout=timeout):
            return
        while True:
            self._handle(connection.read_response())
            if not connection.can_read(timeout=0):
                return

    def _connect(self) -> Any:
        connection = self._backend.new_connection()
        connection.connect()
        with self._lock:
            channels = list(self._listeners)
        with self._send_lock:
            self._connection = connection
            if channels:
                connection.send_command("SSUBSCRIBE", *channels)
        return connection

    def _disconnect(self) -> None:
        with self._send_lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()

    def _handle(self, message: Any) -> None:
        kind, channel = message[0], message[1]
        with self._lock:
            stores = list(self._listeners.get(channel, ()))
        if kind == b"smessage":
            for store in stores:
                _guarded(store, "receiving changes of", lambda s: s.receive(message[2]))
        elif kind == b"ssubscribe":
            for store in stores:  # what was published before is read from the stream
                _guarded(store, "catching up with", lambda s: s.catch_up())
        elif kind == b"sunsubscribe" and stores:
            self._send("SSUBSCRIBE", channel)  # the server dropped it (its slot moved)


def _guarded(store: RedisStore, doing: str, action: Callable[[RedisStore], object]) -> None:
    try:
        action(store)
    except (BackendUnavailableError, ContextClosedError):
        pass  # the next message, or the next sweep, tries again
    except Exception:
        _log.exception("sharedctx: %s session %r failed", doing, store.session_id)


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
