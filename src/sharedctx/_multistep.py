"""The calls that take several steps, written once for threads and for asyncio.

``update``, ``get_or_set`` and the waits (``wait_for``, ``wait_for_keys``) read,
call user code, write and wait in turns. Each is written here once, as a generator
of steps (see ``sharedctx.steps``): store operations, and :class:`~sharedctx.steps.Twin`
steps for user code (:func:`call`), another caller's flight (:func:`join`) and a
pause until something changes (:func:`pause`). The context runs them with
``steps.run`` on its store's ``execute``, its twins with ``steps.arun``.

A blocking step (a wait) made on a thread that runs an asyncio event loop would
freeze every task of that loop: it raises a ``ContextError`` naming the awaitable
twin to use instead.
"""

from __future__ import annotations

import inspect
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sharedctx._checks import refuse_on_event_loop
from sharedctx._codec import Codec
from sharedctx._errors import ContextError, VersionConflictError, WaitTimeoutError
from sharedctx._events import Subscription
from sharedctx._glob import Glob, compile_glob, escape
from sharedctx._types import ContextEntry, ContextEvent
from sharedctx._waker import Signal
from sharedctx.backends.ops import (
    Find,
    Get,
    GetMany,
    Lease,
    Operation,
    Release,
    Subscribe,
    TakeLease,
    TTLArg,
    Write,
)
from sharedctx.steps import Steps, Twin

if TYPE_CHECKING:
    import concurrent.futures

__all__ = [
    "Flights",
    "call",
    "get_or_set",
    "join",
    "pause",
    "update",
    "wait_for",
    "wait_for_keys",
]

T = TypeVar("T")

LEASE_LOOK_AGAIN = 1.0
"""Longest wait, in seconds, before asking again who computes a ``get_or_set`` value."""


def _call(function: Callable[[], Any], name: str) -> Any:
    result = function()
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # never awaited: no "coroutine was never awaited" warning
        raise ContextError(
            f"{name} got a coroutine function: call its awaitable twin a{name} from async code"
        )
    return result


async def _acall(function: Callable[[], Any], name: str) -> Any:
    result = function()
    if inspect.isawaitable(result):
        result = await result
    return result


def call(function: Callable[[], Any], name: str) -> Twin[Any]:
    """Call user code (a factory, an update function); awaited if it returns an
    awaitable on the async path, refused with a ``ContextError`` on the sync one."""
    return Twin(_call, _acall, function, name)


def _join(flight: concurrent.futures.Future[ContextEntry | None], twin: str) -> Any:
    refuse_on_event_loop(twin)
    return flight.result()


async def _ajoin(flight: concurrent.futures.Future[ContextEntry | None], twin: str) -> Any:
    import asyncio  # imported by async code only (a light `import sharedctx`)

    return await asyncio.wrap_future(flight)


def join(flight: concurrent.futures.Future[ContextEntry | None], twin: str) -> Twin[Any]:
    """Wait for another caller's result in this process."""
    return Twin(_join, _ajoin, flight, twin)


def _pause(signal: Signal, timeout: float | None, twin: str) -> bool:
    refuse_on_event_loop(twin)
    return signal.wait(timeout)


async def _apause(signal: Signal, timeout: float | None, twin: str) -> bool:
    return await signal.await_(timeout)


def pause(signal: Signal, timeout: float | None, twin: str) -> Twin[bool]:
    """Wait until ``signal`` is set or ``timeout`` passes; gives whether it was set.
    On a thread that runs an event loop it raises ``ContextError`` naming ``twin``."""
    return Twin(_pause, _apause, signal, timeout, twin)


# -- the calls ---------------------------------------------------------------------------


def update(
    key: str,
    function: Callable[[Any], Any],
    default: Any,
    codec: Codec,
    ttl: TTLArg,
    source: str | None,
    tags: tuple[str, ...] | None,
) -> Steps[ContextEntry]:
    """Replace ``key``'s value by ``function(current)`` with a conditional write,
    starting again from the new value whenever another writer got in between."""
    while True:
        entry = yield Get(key)
        current = default if entry is None else entry.value
        value = yield call(partial(function, current), "update")
        data = codec.encode(key, value)
        version = 0 if entry is None else entry.version
        try:
            written: ContextEntry = yield Write(key, data, ttl, source, tags, version)
        except VersionConflictError:
            continue
        return written


class Flights:
    """The ``get_or_set`` calls under way in one context: one leader per key, the
    other callers of this process wait for its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, concurrent.futures.Future[ContextEntry | None]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def begin(self, key: str) -> tuple[concurrent.futures.Future[ContextEntry | None], bool]:
        """The flight of ``key``, and whether the caller leads it (it did not exist)."""
        from concurrent.futures import Future  # with the first get_or_set, not at import

        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Future()
            return flight, True

    def land(
        self,
        key: str,
        flight: concurrent.futures.Future[ContextEntry | None],
        result: ContextEntry | None = None,
        error: Exception | None = None,
    ) -> None:
        """End the leader's flight: the followers get ``result`` (None: try again)."""
        with self._lock:
            del self._flights[key]
        if error is not None:
            flight.set_exception(error)
        else:
            flight.set_result(result)


def get_or_set(
    key: str,
    factory: Callable[[], Any],
    flights: Flights,
    unsubscribe: Callable[[str], object],
    codec: Codec,
    ttl: TTLArg,
    source: str,
    tags: tuple[str, ...],
) -> Steps[Any]:
    """The value under ``key``, or ``factory()`` stored under it: one factory runs in
    this process (a flight), and one across processes (the store's lease)."""
    while True:
        entry = yield Get(key)
        if entry is not None:
            return entry.value
        flight, leading = flights.begin(key)
        if not leading:
            entry = yield join(flight, "aget_or_set")
            if entry is None:
                continue  # the leader was interrupted: look again
            return entry.value
        try:
            entry, value = yield from _lead(key, factory, unsubscribe, codec, ttl, source, tags)
        except Exception as exc:
            flights.land(key, flight, error=exc)
            raise
        except BaseException:
            flights.land(key, flight)  # interrupted: the followers look again
            raise
        flights.land(key, flight, entry)
        return value


def _lead(
    key: str,
    factory: Callable[[], Any],
    unsubscribe: Callable[[str], object],
    codec: Codec,
    ttl: TTLArg,
    source: str,
    tags: tuple[str, ...],
) -> Steps[tuple[ContextEntry | None, Any]]:
    holder = uuid.uuid4().hex
    while True:
        lease: Lease = yield TakeLease(key, holder)
        if lease.state == "value":
            assert lease.entry is not None
            return lease.entry, lease.entry.value
        if lease.state == "lead":
            break
        with suppress(TimeoutError):  # another process computes it: wait for its write
            yield from wait_for_keys([key], min(lease.wait, LEASE_LOOK_AGAIN), unsubscribe)
    try:
        value = yield call(factory, "get_or_set")
        data = codec.encode(key, value)
        entry: ContextEntry = yield Write(key, data, ttl, source, tags, 0, holder)
    except VersionConflictError:
        # Written meanwhile by someone else (a set): theirs wins, as if it had been
        # there when we looked.
        yield Release(key, holder)
        found = yield Get(key)
        return found, None if found is None else found.value
    except BaseException:
        yield Release(key, holder)
        raise
    return entry, value


def wait_for(
    glob: Glob,
    count: int,
    timeout: float | None,
    unsubscribe: Callable[[str], object],
    since: int | None = None,
    hear: Callable[[ContextEvent], object] | None = None,
) -> Steps[list[ContextEntry]]:
    """Wait until at least ``count`` live keys match ``glob`` (written after revision
    ``since``, if given); their entries, sorted by key. Woken by events, never polls.
    Raises ``WaitTimeoutError`` when ``timeout`` seconds pass first. ``hear`` is told
    of every event that wakes it (telemetry links the wait to their writes).
    """

    def written(found: list[ContextEntry]) -> list[ContextEntry]:
        return found if since is None else [entry for entry in found if entry.revision > since]

    def ready(found: list[ContextEntry]) -> list[ContextEntry] | None:
        found = written(found)
        return found if len(found) >= count else None

    def missing(found: list[ContextEntry]) -> WaitTimeoutError:
        return WaitTimeoutError(
            f"{len(written(found))} of {count} keys matching {glob.pattern!r}"
            + ("" if since is None else f" written after revision {since}")
            + f" were there after {timeout} s"
        )

    return _wait([glob], timeout, unsubscribe, Find(glob), ready, missing, "await_for", hear)


def wait_for_keys(
    keys: list[str],
    timeout: float | None,
    unsubscribe: Callable[[str], object],
    since: int | None = None,
    hear: Callable[[ContextEvent], object] | None = None,
) -> Steps[dict[str, ContextEntry]]:
    """Wait until every key of ``keys`` is live (written after revision ``since``, if
    given); their entries by key. Raises ``WaitTimeoutError`` naming the missing keys.
    ``hear`` as for :func:`wait_for`."""

    def written(found: dict[str, ContextEntry]) -> dict[str, ContextEntry]:
        if since is None:
            return found
        return {key: entry for key, entry in found.items() if entry.revision > since}

    def ready(found: dict[str, ContextEntry]) -> dict[str, ContextEntry] | None:
        found = written(found)
        return found if len(found) == len(keys) else None

    def missing(found: dict[str, ContextEntry]) -> WaitTimeoutError:
        there = written(found)
        absent = sorted({key for key in keys if key not in there})
        after = "" if since is None else f" written after revision {since}"
        return WaitTimeoutError(f"keys {absent}{after} were not there after {timeout} s", absent)

    globs = [compile_glob(escape(key)) for key in keys]
    look = GetMany(tuple(keys))
    return _wait(globs, timeout, unsubscribe, look, ready, missing, "await_for_keys", hear)


F = TypeVar("F")


def _hearing(hear: Callable[[ContextEvent], object], signal: Signal, event: ContextEvent) -> None:
    hear(event)
    signal.set()


def _wait(
    globs: list[Glob],
    timeout: float | None,
    unsubscribe: Callable[[str], object],
    look: Operation[F],
    ready: Callable[[F], T | None],
    missing: Callable[[F], WaitTimeoutError],
    twin: str,
    hear: Callable[[ContextEvent], object] | None,
) -> Steps[T]:
    """Subscribe to ``globs``, then ``look`` until ``ready`` gives a result."""
    deadline = None if timeout is None else time.monotonic() + timeout
    signal = Signal()
    woken = signal.set if hear is None else partial(_hearing, hear, signal)
    # Woken by a change, and by lost events too (a trimmed stream): look again.
    subscriptions = [Subscription(glob, woken, signal.set) for glob in globs]
    try:
        for subscription in subscriptions:
            yield Subscribe(subscription)
        while True:
            signal.clear()
            found: F = yield look
            result = ready(found)
            if result is not None:
                return result
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise missing(found)
            yield pause(signal, remaining, twin)
    finally:
        for subscription in subscriptions:
            unsubscribe(subscription.id)
