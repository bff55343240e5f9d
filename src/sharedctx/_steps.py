"""The calls that take several steps, written once for threads and for asyncio.

``update``, ``get_or_set`` and the waits (``wait_for``, ``wait_for_keys``) read,
call user code, write and wait in turns. Each is written here once, as a generator
that yields :class:`Step` objects and receives their results; :func:`run` performs
the steps on the calling thread with a :class:`~sharedctx.backends.Store`, and
:func:`arun` awaits them with an :class:`~sharedctx.backends.AsyncStore`. A step
knows how to do itself both ways (``run``/``arun``), so the drivers are a few lines
and the logic of a call exists once.

A blocking step (a wait) made on a thread that runs an asyncio event loop would
freeze every task of that loop: :func:`run` refuses it with a ``ContextError``
naming the awaitable twin to use instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
import uuid
from collections.abc import Callable, Generator
from contextlib import suppress
from functools import partial
from typing import Any, Generic, TypeVar

from sharedctx._checks import refuse_on_event_loop
from sharedctx._codec import encode
from sharedctx._errors import ContextError, VersionConflictError
from sharedctx._events import Subscription
from sharedctx._glob import Glob, compile_glob, escape
from sharedctx._types import ContextEntry
from sharedctx.backends.base import AsyncStore, Lease, Store, TTLArg, Write

__all__ = [
    "Flights",
    "Signal",
    "Steps",
    "arun",
    "get_or_set",
    "run",
    "update",
    "wait_for",
    "wait_for_keys",
]

T = TypeVar("T")

LEASE_LOOK_AGAIN = 1.0
"""Longest wait, in seconds, before asking again who computes a ``get_or_set`` value."""


class Step(Generic[T]):
    """One thing a multi-step call needs done; ``run`` and ``arun`` do it."""

    def run(self, store: Store) -> T:
        raise NotImplementedError

    async def arun(self, store: AsyncStore) -> T:
        raise NotImplementedError


Steps = Generator[Step[Any], Any, T]
"""A multi-step call: yields steps, receives their results, returns a ``T``."""


class Get(Step[ContextEntry | None]):
    def __init__(self, key: str) -> None:
        self.key = key

    def run(self, store: Store) -> ContextEntry | None:
        return store.get(self.key)

    async def arun(self, store: AsyncStore) -> ContextEntry | None:
        return await store.get(self.key)


class GetMany(Step[dict[str, ContextEntry]]):
    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def run(self, store: Store) -> dict[str, ContextEntry]:
        return store.get_many(self.keys)

    async def arun(self, store: AsyncStore) -> dict[str, ContextEntry]:
        return await store.get_many(self.keys)


class Find(Step[list[ContextEntry]]):
    def __init__(self, glob: Glob) -> None:
        self.glob = glob

    def run(self, store: Store) -> list[ContextEntry]:
        return store.find(self.glob)

    async def arun(self, store: AsyncStore) -> list[ContextEntry]:
        return await store.find(self.glob)


class Put(Step[ContextEntry]):
    """``store.write(write)``."""

    def __init__(self, write: Write) -> None:
        self.write = write

    def run(self, store: Store) -> ContextEntry:
        return store.write(self.write)

    async def arun(self, store: AsyncStore) -> ContextEntry:
        return await store.write(self.write)


class TakeLease(Step[Lease]):
    def __init__(self, key: str, holder: str) -> None:
        self.key, self.holder = key, holder

    def run(self, store: Store) -> Lease:
        return store.lease(self.key, self.holder)

    async def arun(self, store: AsyncStore) -> Lease:
        return await store.lease(self.key, self.holder)


class Release(Step[None]):
    def __init__(self, key: str, holder: str) -> None:
        self.key, self.holder = key, holder

    def run(self, store: Store) -> None:
        store.release(self.key, self.holder)

    async def arun(self, store: AsyncStore) -> None:
        await store.release(self.key, self.holder)


class Subscribe(Step[None]):
    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription

    def run(self, store: Store) -> None:
        store.subscribe(self.subscription)

    async def arun(self, store: AsyncStore) -> None:
        await store.subscribe(self.subscription)


class Call(Step[Any]):
    """Call user code (a factory, an update function); awaited if it returns an
    awaitable on the async path."""

    def __init__(self, function: Callable[[], Any], name: str) -> None:
        self.function, self.name = function, name

    def run(self, store: Store) -> Any:
        result = self.function()
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()  # never awaited: no "coroutine was never awaited" warning
            raise ContextError(
                f"{self.name} got a coroutine function: call its awaitable twin "
                f"a{self.name} from async code"
            )
        return result

    async def arun(self, store: AsyncStore) -> Any:
        result = self.function()
        if inspect.isawaitable(result):
            result = await result
        return result


class Join(Step[ContextEntry | None]):
    """Wait for another caller's result in this process."""

    def __init__(self, flight: concurrent.futures.Future[ContextEntry | None], twin: str) -> None:
        self.flight, self.twin = flight, twin

    def run(self, store: Store) -> ContextEntry | None:
        refuse_on_event_loop(self.twin)
        return self.flight.result()

    async def arun(self, store: AsyncStore) -> ContextEntry | None:
        return await asyncio.wrap_future(self.flight)


class Pause(Step[bool]):
    """Wait until ``signal`` is set or ``timeout`` passes; gives whether it was set."""

    def __init__(self, signal: Signal, timeout: float | None, twin: str) -> None:
        self.signal, self.timeout, self.twin = signal, timeout, twin

    def run(self, store: Store) -> bool:
        refuse_on_event_loop(self.twin)
        return self.signal.wait(self.timeout)

    async def arun(self, store: AsyncStore) -> bool:
        return await self.signal.await_(self.timeout)


class Signal:
    """A flag that a subscription callback sets from any thread; sync or async waiters."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._lock = threading.Lock()

    def set(self, _event: object = None) -> None:
        self._event.set()
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)

    async def await_(self, timeout: float | None) -> bool:
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.append(waiter)
        try:
            if self._event.is_set():  # set before we listened
                return True
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                return False
            return True
        finally:
            with self._lock:
                self._waiters.remove(waiter)


def run(steps: Steps[T], store: Store) -> T:
    """Perform a multi-step call on this thread."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            result, error = step.run(store), None
        except BaseException as exc:
            result, error = None, exc


async def arun(steps: Steps[T], store: AsyncStore) -> T:
    """Perform a multi-step call as a coroutine (it awaits instead of blocking)."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            result, error = await step.arun(store), None
        except BaseException as exc:
            result, error = None, exc


# -- the calls ---------------------------------------------------------------------------


def update(
    key: str,
    function: Callable[[Any], Any],
    default: Any,
    max_bytes: int,
    ttl: TTLArg,
    source: str | None,
    tags: tuple[str, ...] | None,
) -> Steps[ContextEntry]:
    """Replace ``key``'s value by ``function(current)`` with a conditional write,
    starting again from the new value whenever another writer got in between."""
    while True:
        entry = yield Get(key)
        current = default if entry is None else entry.value
        value = yield Call(partial(function, current), "update")
        data, plain = encode(key, value, max_bytes)
        version = 0 if entry is None else entry.version
        try:
            written: ContextEntry = yield Put(Write(key, data, plain, ttl, source, tags, version))
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
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = concurrent.futures.Future()
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
    max_bytes: int,
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
            entry = yield Join(flight, "aget_or_set")
            if entry is None:
                continue  # the leader was interrupted: look again
            return entry.value
        try:
            entry, value = yield from _lead(key, factory, unsubscribe, max_bytes, ttl, source, tags)
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
    max_bytes: int,
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
        value = yield Call(factory, "get_or_set")
        data, plain = encode(key, value, max_bytes)
        entry: ContextEntry = yield Put(Write(key, data, plain, ttl, source, tags, 0, holder))
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
) -> Steps[list[ContextEntry]]:
    """Wait until at least ``count`` live keys match ``glob`` (written after revision
    ``since``, if given); their entries, sorted by key. Woken by events, never polls.
    Raises ``TimeoutError`` when ``timeout`` seconds pass first.
    """

    def ready(found: list[ContextEntry]) -> list[ContextEntry] | None:
        if since is not None:
            found = [entry for entry in found if entry.revision > since]
        return found if len(found) >= count else None

    def missing(found: list[ContextEntry]) -> str:
        return (
            f"{len(found)} of {count} keys matching {glob.pattern!r}"
            + ("" if since is None else f" written after revision {since}")
            + f" were there after {timeout} s"
        )

    return _wait([glob], timeout, unsubscribe, Find(glob), ready, missing, "await_for")


def wait_for_keys(
    keys: list[str],
    timeout: float | None,
    unsubscribe: Callable[[str], object],
    since: int | None = None,
) -> Steps[dict[str, ContextEntry]]:
    """Wait until every key of ``keys`` is live (written after revision ``since``, if
    given); their entries by key. Raises ``TimeoutError`` naming the missing keys."""

    def ready(found: dict[str, ContextEntry]) -> dict[str, ContextEntry] | None:
        if since is not None:
            found = {key: entry for key, entry in found.items() if entry.revision > since}
        return found if len(found) == len(keys) else None

    def missing(found: dict[str, ContextEntry]) -> str:
        absent = [key for key in keys if key not in found]
        return f"keys {absent} were not there after {timeout} s"

    globs = [compile_glob(escape(key)) for key in keys]
    return _wait(globs, timeout, unsubscribe, GetMany(keys), ready, missing, "await_for_keys")


F = TypeVar("F")


def _wait(
    globs: list[Glob],
    timeout: float | None,
    unsubscribe: Callable[[str], object],
    look: Step[F],
    ready: Callable[[F], T | None],
    missing: Callable[[F], str],
    twin: str,
) -> Steps[T]:
    """Subscribe to ``globs``, then ``look`` until ``ready`` gives a result."""
    deadline = None if timeout is None else time.monotonic() + timeout
    signal = Signal()
    # Woken by a change, and by lost events too (a trimmed stream): look again.
    subscriptions = [Subscription(glob, signal.set, signal.set) for glob in globs]
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
                raise TimeoutError(missing(found))
            yield Pause(signal, remaining, twin)
    finally:
        for subscription in subscriptions:
            unsubscribe(subscription.id)
