"""The follower: the background work of one backend for all its open sessions.

One thread sweeps each open session every ``purge_interval`` (expired entries,
events older than the retention) and renews, every third of ``lease_ttl``, the
``get_or_set`` leases this process holds.

Listening: the script publishes each change, with its value, on the session's
sharded pub/sub channel, which lives on the node that serves the session's slot. A
:class:`Listener` per node (one for a single server; at most one per master of a
cluster) keeps one connection subscribed to the channels of the sessions someone in
this process listens to, and hands their messages to the stores. Its cost: one
thread and one connection per node, one channel subscription per listened session.

Pub/sub delivers at most once. A store notices a change it missed by its revision
and reads the missed changes back from the session's event stream ("catching up");
it also catches up when its channel's subscription starts, and with each sweep, so
nothing published in between is lost. When a channel's slot moves (a resharding, a
failover), the node drops the subscription or the connection breaks: the channel is
subscribed again on the node that serves it now, and its stores catch up. Neither
thread runs a subscriber: the stores deliver on the shared event pool.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import redis

from sharedctx._errors import BackendUnavailableError, ContextClosedError, ContextError
from sharedctx._printable import printable
from sharedctx.backends.redis.calls import Caller
from sharedctx.backends.redis.servers import Address

__all__ = ["Followed", "Follower", "Listener"]

_log = logging.getLogger("sharedctx.redis")


class Followed(Protocol):
    """What the follower needs of an open store (a ``RedisStore``)."""

    session_id: str

    @property
    def closed(self) -> bool: ...
    @property
    def channel(self) -> bytes: ...
    def sweep(self) -> None: ...
    def renew_leases(self) -> None: ...
    def receive(self, message: bytes) -> None: ...
    def catch_up(self) -> None: ...


MAX_BLOCK = 0.25
"""Longest wait for a message, in seconds (a listener looks at its channels between)."""


class Follower:
    """The background work of one backend (see the module docstring)."""

    def __init__(self, caller: Caller, *, purge_interval: float, lease_ttl: float) -> None:
        self._caller = caller
        self.purge_interval = purge_interval
        self.lease_ttl = lease_ttl
        self._stores: weakref.WeakSet[Followed] = weakref.WeakSet()
        self._listeners: dict[Address, Listener] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def add(self, store: Followed) -> None:
        """Sweep ``store``'s session (starts the thread if needed)."""
        with self._lock:
            if self._stopped:
                raise ContextError(f"the Redis backend of {self._caller} is closed")
            self._stores.add(store)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sharedctx-redis-follower", daemon=True
                )
                self._thread.start()

    def remove(self, store: Followed) -> None:
        """Stop sweeping and listening for ``store``."""
        self.unlisten(store)
        with self._lock:
            self._stores.discard(store)

    def listen(self, store: Followed) -> None:
        """Hand ``store`` the changes published on its session's channel from now on."""
        address = self._caller.servers.address(store.channel)
        while True:
            with self._lock:
                if self._stopped:
                    raise ContextError(f"the Redis backend of {self._caller} is closed")
                listener = self._listeners.get(address)
                if listener is None:
                    listener = self._listeners[address] = Listener(self, address)
            if listener.add(store):
                return
            self.forget(listener)  # it was ending: start another

    def unlisten(self, store: Followed) -> None:
        """Stop handing ``store`` its session's changes."""
        with self._lock:
            listeners = list(self._listeners.values())
        for listener in listeners:
            listener.discard(store)

    def relocate(self, stores: list[Followed]) -> None:
        """Listen for ``stores`` again on the node that serves them now (their slot
        moved, or their node failed); they catch up once subscribed there."""
        for store in stores:
            if not store.closed:
                try:
                    self.listen(store)
                except ContextError:
                    return  # closing

    def forget(self, listener: Listener) -> None:
        """A listener with no channel left ends."""
        with self._lock:
            if self._listeners.get(listener.address) is listener:
                del self._listeners[listener.address]

    @property
    def caller(self) -> Caller:
        return self._caller

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Stop for good and wait for the threads (the backend is closing)."""
        with self._lock:
            self._stopped = True
            thread = self._thread
            listeners = list(self._listeners.values())
            self._listeners.clear()
        self._wake.set()
        for listener in listeners:
            listener.stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._caller.socket_timeout + 1)

    def _run(self) -> None:
        next_sweep = next_renewal = time.monotonic()
        while True:
            with self._lock:
                stores = list(self._stores)
                if not stores or self._stopped:
                    self._thread = None
                    return
            now = time.monotonic()
            unavailable = False
            if now >= next_sweep:
                next_sweep = now + self.purge_interval
                unavailable = _each(stores, "sweeping", lambda store: store.sweep())
            if now >= next_renewal and not unavailable:
                next_renewal = now + self.lease_ttl / 3
                unavailable = _each(stores, "renewing leases of", lambda s: s.renew_leases())
            del stores  # no strong reference while waiting
            pause = max(0.0, min(next_sweep, next_renewal) - time.monotonic())
            self._wake.wait(min(pause, 1.0) if unavailable else pause)
            self._wake.clear()


class Listener:
    """One node's pub/sub connection and the channels subscribed on it."""

    def __init__(self, follower: Follower, address: Address) -> None:
        self.address = address
        self._follower = follower
        self._caller = follower.caller
        self._channels: dict[bytes, weakref.WeakSet[Followed]] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._connection: Any = None
        self._stopped = False
        self._ending = False  # no channel left: the thread ends, add() refuses
        self._thread = threading.Thread(
            target=self._run, name="sharedctx-redis-listener", daemon=True
        )

    def add(self, store: Followed) -> bool:
        """Listen for ``store``; False if this listener is ending (use another)."""
        channel = store.channel
        with self._lock:
            if self._ending:
                return False
            stores = self._channels.get(channel)
            new = stores is None
            if stores is None:
                stores = self._channels[channel] = weakref.WeakSet()
            stores.add(store)
            if self._thread.ident is None:
                self._thread.start()  # with a channel to listen to
        if new:
            self._send("SSUBSCRIBE", channel)  # its stores catch up once confirmed
        else:
            store.catch_up()  # a change may have passed before it was a listener
        return True

    def discard(self, store: Followed) -> None:
        channel = store.channel
        with self._lock:
            stores = self._channels.get(channel)
            if stores is None or store not in stores:
                return
            stores.discard(store)
            empty = not stores
            if empty:
                del self._channels[channel]
        if empty:
            self._send("SUNSUBSCRIBE", channel)

    def stop(self) -> None:
        self._stopped = True
        self._send("PING")  # ends a wait for a message at once
        with self._lock:
            started = self._thread.ident is not None
        if started and self._thread is not threading.current_thread():
            self._thread.join(self._caller.socket_timeout + MAX_BLOCK + 1)

    def _send(self, *command: Any) -> None:
        with self._send_lock:
            connection = self._connection
            if connection is None:
                return  # the thread subscribes every channel when it connects
            try:
                connection.send_command(*command)
            except Exception as exc:  # the thread sees the broken connection too
                _log.debug("sharedctx: %s on the event channel failed: %s", command[0], exc)

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stopped and not self._follower.stopped:
                with self._lock:
                    if not self._channels:
                        self._ending = True
                        break
                try:
                    self._receive()
                    failures = 0
                except Exception as exc:
                    self._disconnect()
                    if self._stopped:
                        break
                    failures += 1
                    _log.debug("sharedctx: listening on %s failed: %s", self.address, exc)
                    time.sleep(min(0.05 * failures, 1.0))
                    try:
                        self._give_back(exc)
                    except Exception as again:  # no node answers now: try again later
                        _log.debug("sharedctx: finding the nodes failed: %s", again)
        finally:
            with self._lock:
                self._ending = True
                orphans = [store for stores in self._channels.values() for store in stores]
                self._channels.clear()
            self._disconnect()
            self._follower.forget(self)
            if not self._stopped:
                self._follower.relocate(orphans)

    def _receive(self) -> None:
        """Wait up to ``MAX_BLOCK`` for messages and handle what came."""
        connection = self._connection or self._connect()
        # stop() sets _stopped, then pings the connection if there is one: checked after
        # the connection is set, one or the other ends the wait at once.
        if self._stopped or not connection.can_read(timeout=MAX_BLOCK):
            return
        while True:
            self._handle(connection.read_response())
            if not connection.can_read(timeout=0):
                return

    def _connect(self) -> Any:
        connection = self._caller.new_connection(self.address)
        connection.connect()
        with self._lock:
            channels = list(self._channels)
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

    def _give_back(self, error: Exception) -> None:
        """This node cannot serve the channels now: where the slot map is stale (a
        failover, a moved slot), reload it and listen on the nodes that serve them."""
        if isinstance(error, redis.exceptions.AskError):
            self._caller.servers.moved(error)
        else:
            self._caller.refresh_slots()
        with self._lock:
            moved = [
                store
                for stores in self._channels.values()
                for store in stores
                if self._caller.servers.address(store.channel) != self.address
            ]
            for store in moved:
                self._channels.pop(store.channel, None)
        self._follower.relocate(moved)

    def _handle(self, message: Any) -> None:
        kind, channel = message[0], message[1]
        with self._lock:
            stores = list(self._channels.get(channel, ()))
        if kind == b"smessage":
            for store in stores:
                _guarded(store, "receiving changes of", lambda s: s.receive(message[2]))
        elif kind == b"ssubscribe":
            for store in stores:  # what was published before is read from the stream
                _guarded(store, "catching up with", lambda s: s.catch_up())
        elif kind == b"sunsubscribe" and stores:
            # The node dropped the channel: its slot moved elsewhere.
            with self._lock:
                self._channels.pop(channel, None)
            self._caller.refresh_slots()
            self._follower.relocate(stores)


def _guarded(store: Followed, doing: str, action: Callable[[Followed], object]) -> None:
    try:
        action(store)
    except (BackendUnavailableError, ContextClosedError):
        pass  # the next message, or the next sweep, tries again
    except Exception:
        _log.exception("sharedctx: %s session '%s' failed", doing, printable(store.session_id))


def _each(stores: list[Followed], doing: str, action: Callable[[Followed], object]) -> bool:
    """Apply ``action`` to every store; whether the server was unavailable."""
    for store in stores:
        try:
            action(store)
        except BackendUnavailableError:
            return True
        except ContextClosedError:
            continue
        except Exception:
            _log.exception("sharedctx: %s session '%s' failed", doing, printable(store.session_id))
    return False
