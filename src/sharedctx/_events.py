"""Subscriptions, watches and the delivery of events to them.

A store hands every change that the hub :meth:`~EventHub.wants` to
:meth:`EventHub.enqueue` while it holds its own lock, in revision order, and calls
:meth:`EventHub.deliver` after releasing that lock (when :attr:`EventHub.pending` is
non-empty); the hub delivers one event at a time and in that order, whichever thread
wrote. So a callback may call the context (even
write to it) or unsubscribe itself, and every matching subscriber sees every event
exactly once, after the change is visible to readers and before the call that made
it returns (unless that call was made by a callback).

Subscriptions are indexed by the literal prefix of their pattern: for an event on a
key, the hub looks up the key's prefixes of the lengths that occur among the
subscriptions (a dict lookup each) and tests the full pattern only on those. A write
that no subscription can match costs those lookups and creates no event at all.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Self

from sharedctx import _scheduler
from sharedctx._checks import refuse_on_event_loop
from sharedctx._closeable import Closeable
from sharedctx._errors import ContextClosedError, WaitTimeoutError, WatchOverflowError
from sharedctx._glob import Glob
from sharedctx._printable import printable
from sharedctx._types import ContextEvent
from sharedctx._waker import Waker

__all__ = ["EventHub", "Subscription", "Watch"]

_log = logging.getLogger("sharedctx")
_ids = itertools.count(1)


class _Depth(threading.local):
    depth = 0  # > 0 while this thread runs subscription callbacks


_in_callback = _Depth()


class Subscription:
    """A pattern and the callback that receives the events matching it.

    ``on_error`` hears of events that can no longer be delivered (a shared backend
    lost them); without it they are logged. With ``since`` (a revision), the store
    first replays to it the retained changes after that revision (see
    ``Store.subscribe``).
    """

    __slots__ = ("active", "callback", "glob", "id", "on_error", "since", "start")

    def __init__(
        self,
        glob: Glob,
        callback: Callable[[ContextEvent], object],
        on_error: Callable[[Exception], object] | None = None,
        since: int | None = None,
    ) -> None:
        self.id = f"sub-{next(_ids)}"
        self.glob = glob
        self.callback = callback
        self.on_error = on_error
        self.since = since
        self.start = 0  # events up to this revision happened before the subscription
        self.active = True


class EventHub:
    """Routes a context's events to its subscriptions (see the module docstring).

    A failing callback is logged with its exception's type and traceback, never the
    exception's message (which may hold a value); ``record_keys``: the record names
    the key of its event too (escaped), else only its revision.
    """

    def __init__(self, *, record_keys: bool = False) -> None:
        self.record_keys = record_keys
        # Copy-on-write: writers read these without a lock; subscribe/unsubscribe
        # replace them whole under ``_index_lock``.
        self._by_prefix: dict[str, tuple[Subscription, ...]] = {}
        self.active = False
        """Whether any subscription is registered (read-only for stores: when False,
        :meth:`wants` is False for every key)."""
        self._prefix_lengths: tuple[int, ...] = ()
        self._subscriptions: dict[str, Subscription] = {}
        self._index_lock = threading.Lock()
        self.pending: deque[tuple[int, ContextEvent, Subscription | None]] = deque()
        """Events queued and not yet delivered (read-only for stores: truthy means a
        :meth:`deliver` call is due)."""
        self._queued = 0  # number of events queued so far
        self._done = 0  # number of the last event delivered
        self._delivering = threading.Lock()
        self._deliverer: int | None = None  # the thread delivering, if any
        self._finished = threading.Condition(threading.Lock())
        self._waiters = 0

    @property
    def undelivered(self) -> bool:
        """Whether some queued event is not delivered yet: still queued, or popped by a
        thread that is delivering it now (read-only for stores: a caller that must
        return only once its changes are delivered calls :meth:`deliver` then)."""
        return self._done < self._queued

    def __len__(self) -> int:
        return len(self._subscriptions)

    def wants(self, key: str) -> bool:
        """Whether some subscription's literal prefix starts ``key`` (cheap, no glob test)."""
        by_prefix = self._by_prefix
        if not by_prefix:
            return False
        size = len(key)
        for length in self._prefix_lengths:
            if length > size:
                return False
            if key[:length] in by_prefix:
                return True
        return False

    def add(self, subscription: Subscription, start: int) -> None:
        """Register ``subscription`` for events after revision ``start``.

        The caller must serialize this with :meth:`enqueue` (hold the store's lock).
        """
        subscription.start = start
        with self._index_lock:
            self._subscriptions[subscription.id] = subscription
            self._reindex()

    def remove(self, subscription_id: str) -> bool:
        """Stop delivering to a subscription; False if it is not registered."""
        with self._index_lock:
            subscription = self._subscriptions.pop(subscription_id, None)
            if subscription is None:
                return False
            subscription.active = False
            self._reindex()
            return True

    def remove_all(self) -> list[Subscription]:
        """Remove every subscription and return them."""
        with self._index_lock:
            removed = list(self._subscriptions.values())
            for subscription in removed:
                subscription.active = False
            self._subscriptions.clear()
            self._reindex()
        return removed

    def restart(self) -> None:
        """The session's revisions started again from 0 (a shared backend lost it)."""
        with self._index_lock:
            for subscription in self._subscriptions.values():
                subscription.start = 0

    def fail_all(self, error: Exception) -> None:
        """Tell every subscription that events were lost (``error`` says which)."""
        for subscription in list(self._subscriptions.values()):
            if subscription.on_error is None:
                _log.error("sharedctx subscriber %s: %s", subscription.id, printable(str(error)))
                continue
            try:
                subscription.on_error(error)
            except Exception as failed:  # as a callback's: the others still hear of it
                self._failed(failed, "sharedctx subscriber %s failed on %s", subscription.id,
                             type(error).__name__)  # fmt: skip

    def _reindex(self) -> None:
        by_prefix: dict[str, list[Subscription]] = {}
        for subscription in self._subscriptions.values():
            by_prefix.setdefault(subscription.glob.prefix, []).append(subscription)
        self._by_prefix = {prefix: tuple(subs) for prefix, subs in by_prefix.items()}
        self._prefix_lengths = tuple(sorted({len(prefix) for prefix in by_prefix}))
        self.active = bool(by_prefix)

    def enqueue(self, event: ContextEvent, only: Subscription | None = None) -> None:
        """Queue an event; called by the store under its lock, in revision order.

        ``only``: a replayed event (its revision is the subscription's ``start`` or
        before), for that subscription alone.
        """
        self._queued += 1
        self.pending.append((self._queued, event, only))

    def deliver(self, *, wait: bool = True) -> None:
        """Deliver queued events; called by the store after releasing its lock.

        One thread delivers at a time. A caller that finds another thread delivering
        waits until the events queued before its call are delivered, so that when a
        write returns its subscribers have seen it. A write made by a callback (of
        any context) does not wait: its event follows once the delivering thread
        gets to it, and two callbacks writing to each other's context cannot
        deadlock. With ``wait=False`` (a background thread, which must not wait for
        a slow subscriber), delivery that cannot start at once goes to the shared
        event pool instead.
        """
        pending = self.pending
        target = self._queued
        while self._done < target:  # events popped by another thread may be in flight
            if self._delivering.acquire(blocking=False):
                self._deliverer = threading.get_ident()
                _in_callback.depth += 1
                try:
                    while pending:
                        number, event, only = pending.popleft()
                        if only is None:
                            self._dispatch(event)
                        elif only.active and only.glob.match(event.key):
                            self._call(only, event)
                        self._done = number
                        if self._waiters:
                            self._notify()
                finally:
                    _in_callback.depth -= 1
                    self._deliverer = None
                    self._delivering.release()
                if self._waiters:  # one of them may have queued after our last look
                    self._notify()
            elif _in_callback.depth:
                return  # called from a callback: the thread delivering goes on
            elif not wait:
                _scheduler.run_soon(self.deliver)
                return
            else:
                with self._finished:
                    self._waiters += 1
                    self._finished.wait_for(
                        lambda: self._done >= target or not self._delivering.locked(), 1.0
                    )
                    self._waiters -= 1

    def _notify(self) -> None:
        with self._finished:
            self._finished.notify_all()

    def _dispatch(self, event: ContextEvent) -> None:
        key = event.key
        by_prefix = self._by_prefix
        size = len(key)
        for length in self._prefix_lengths:
            if length > size:
                break
            for subscription in by_prefix.get(key[:length], ()):
                if (
                    subscription.active
                    and event.revision > subscription.start
                    and subscription.glob.match(key)
                ):
                    self._call(subscription, event)

    def _call(self, subscription: Subscription, event: ContextEvent) -> None:
        try:
            subscription.callback(event)
        except Exception as error:
            if self.record_keys:
                self._failed(error, "sharedctx subscriber %s failed on the %s of '%s' "
                             "(revision %d)", subscription.id, event.action,
                             printable(event.key), event.revision)  # fmt: skip
            else:
                self._failed(error, "sharedctx subscriber %s failed on the %s of revision %d",
                             subscription.id, event.action, event.revision)  # fmt: skip

    @staticmethod
    def _failed(error: Exception, message: str, *args: object) -> None:
        """Log a callback's failure at ERROR, with the exception's type and the frames
        it came through, not its message: a callback's message may hold a value."""
        frames = "".join(traceback.format_tb(error.__traceback__)).rstrip("\n")
        _log.error(
            message + ": %s (its message is not logged)\nTraceback (most recent call last):\n%s",
            *args,
            type(error).__qualname__,
            frames,
        )


class Watch(Closeable, Iterator[ContextEvent], AsyncIterator[ContextEvent]):
    """A bounded stream of the events matching a pattern (``SharedContext.watch``).

    Iterate it (``for``/``async for``) or call ``get``/``aget``; it is also a context
    manager (``with``/``async with``) that closes it. Iteration ends when the watch or
    its context is closed. It buffers at most ``max_pending`` events; a watch that
    falls further behind is closed, and once its buffer is read the next read raises
    ``WatchOverflowError``. Writers never wait for a watch.
    """

    def __init__(
        self,
        pattern: str,
        max_pending: int,
        cancel: Callable[[], object],
        *,
        on_read: Callable[[ContextEvent], object] | None = None,
        on_overflow: Callable[[], object] | None = None,
    ) -> None:
        self.pattern = pattern
        self.max_pending = max_pending
        self._cancel = cancel
        self._on_read = on_read  # telemetry: each event handed out (a span)
        self._on_overflow = on_overflow  # telemetry: the watch fell behind (a metric)
        self._buffer: deque[ContextEvent | Exception] = deque()
        self._waiter = Waker()
        self._condition = self._waiter.condition
        self._closed = False
        self._error: Exception | None = None

    @property
    def closed(self) -> bool:
        """Whether the watch was closed (it may still hold buffered events)."""
        return self._closed

    def push(self, event: ContextEvent) -> None:
        """Buffer an event (the subscription callback); never blocks the writer."""
        with self._condition:
            if self._closed:
                return
            if len(self._buffer) >= self.max_pending:
                self._error = WatchOverflowError(
                    f"watch on {self.pattern!r} fell more than {self.max_pending} events "
                    "behind and was closed: read its events sooner, or give watch() a "
                    "larger max_pending="
                )
                self._shut()
                overflowed = True
            else:
                self._buffer.append(event)
                self._wake()
                overflowed = False
        if self._closed:
            self._cancel()
        if overflowed and self._on_overflow is not None:
            self._on_overflow()

    def on_error(self, error: Exception) -> None:
        """Events were lost: an overflow closes the watch (``fail``); anything else
        (``SessionLostError``) is raised once by the read that reaches it."""
        if isinstance(error, WatchOverflowError):
            self.fail(error)
            if self._on_overflow is not None:
                self._on_overflow()
            return
        with self._condition:
            if not self._closed:
                self._buffer.append(error)
                self._wake()

    def fail(self, error: Exception) -> None:
        """Close the watch; its next read after the buffered events raises ``error``."""
        with self._condition:
            if self._error is None:
                self._error = error
            self._shut()
        self._cancel()

    def close(self) -> None:
        """Stop the watch; iteration ends after nothing more. Idempotent."""
        with self._condition:
            self._buffer.clear()
            self._shut()
        self._cancel()

    def _shut(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        self._waiter.wake()

    def _take(self) -> ContextEvent | None:
        # Called with the condition held: the next event, an error, or None (wait).
        if self._buffer:
            item = self._buffer.popleft()
            if isinstance(item, Exception):
                raise item
            return item
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ContextClosedError(f"watch on {self.pattern!r} is closed")
        return None

    def get(self, timeout: float | None = None) -> ContextEvent:
        """The next event; wait at most ``timeout`` seconds (``WaitTimeoutError``).

        Raises ``ContextClosedError`` once the watch is closed and drained, and
        ``WatchOverflowError`` if it was closed for falling behind; ``ContextError``
        if it would wait on a thread that runs an event loop (use :meth:`aget`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while (event := self._take()) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WaitTimeoutError(f"no event on {self.pattern!r} within {timeout} s")
                refuse_on_event_loop("aget")  # iterate it with `async for` there
                self._condition.wait(remaining)
        if self._on_read is not None:
            self._on_read(event)
        return event

    async def aget(self, timeout: float | None = None) -> ContextEvent:
        """Awaitable twin of :meth:`get`; never blocks the event loop."""
        import asyncio  # imported by async code only (a light `import sharedctx`)

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            with self._condition:
                event = self._take()
                if event is None:
                    future = self._waiter.future()
            if event is not None:
                if self._on_read is not None:
                    self._on_read(event)
                return event
            remaining = None if deadline is None else deadline - loop.time()
            try:
                await asyncio.wait_for(future, remaining)
            except TimeoutError:
                raise WaitTimeoutError(f"no event on {self.pattern!r} within {timeout} s") from None
            finally:
                self._waiter.forget(future)  # timed out or cancelled: no more wake-ups

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ContextEvent:
        try:
            return self.get()
        except ContextClosedError:
            raise StopIteration from None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ContextEvent:
        try:
            return await self.aget()
        except ContextClosedError:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._buffer)} pending"
        return f"<Watch {self.pattern!r} {state}>"
