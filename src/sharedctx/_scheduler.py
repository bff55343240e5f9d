"""One timer thread for the whole process, shared by every context.

Contexts use it to expire entries actively. The thread starts on first use, sleeps
until the earliest timer is due (it never polls while nothing is due), is a daemon
so it never keeps the process alive, and runs timer callbacks one at a time: they
must be short. Subscription callbacks are user code that may be slow, so a timer
hands their delivery to a small shared pool of threads (:func:`run_soon`) rather
than run them itself: one slow subscriber cannot delay another context's expiry.
Timers are cancelled by their owner (``SharedContext.close()``).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["Timer", "call_at", "call_method_at", "run_soon", "run_when_freed"]

_log = logging.getLogger("sharedctx")

MAX_WAIT = 3600.0
"""Longest single wait of the timer thread, in seconds."""


class Timer:
    """A scheduled callback; ``cancel()`` makes sure it will not run."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback (no effect if it already ran)."""
        self.cancelled = True


class _Scheduler:
    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the scheduler thread at ``time.monotonic()`` >= ``when``."""
        timer = Timer(when, callback)
        with self._condition:
            heapq.heappush(self._heap, (when, next(self._sequence), timer))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sharedctx-scheduler", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is timer:
                self._condition.notify()
        return timer

    def _run(self) -> None:
        # Nothing may end this loop: every context of the process relies on it.
        while True:
            try:
                timer = self._next()
                if not timer.cancelled:
                    timer.callback()
            except Exception:
                _log.exception("sharedctx timer callback failed")

    def _next(self) -> Timer:
        """Wait for the earliest timer that is due, and take it."""
        heap = self._heap
        with self._condition:
            while True:
                while heap and heap[0][2].cancelled:
                    heapq.heappop(heap)
                if not heap:
                    self._condition.wait()
                    continue
                delay = heap[0][0] - time.monotonic()
                if delay <= 0:
                    return heapq.heappop(heap)[2]
                # A far deadline (a long TTL) is waited for in steps: the platform's
                # timed wait cannot take every float.
                self._condition.wait(min(delay, MAX_WAIT))

    def after_fork(self) -> None:
        # The thread does not survive a fork; the child starts its own when needed.
        self.__init__()  # type: ignore[misc]


_scheduler = _Scheduler()
os.register_at_fork(after_in_child=_scheduler.after_fork)

call_at = _scheduler.call_at


def call_method_at(when: float, method: Callable[[], object]) -> Timer:
    """Like :func:`call_at` for a bound method, holding its object weakly: an object
    dropped without being closed is freed, and its timer then does nothing."""
    reference = weakref.WeakMethod(method)

    def call() -> None:
        target = reference()
        if target is not None:
            target()

    return call_at(when, call)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def run_soon(function: Callable[[], object]) -> None:
    """Run ``function`` on the shared pool of threads that deliver events."""
    global _pool
    with _pool_lock:
        if _pool is None:
            # With the first event delivered, not at import (a light `import sharedctx`).
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sharedctx-events")
        pool = _pool
    # When the interpreter is exiting the pool takes no more work (RuntimeError), and
    # what was asked (a delivery, the pruning of a session whose handle the garbage
    # collector freed during shutdown) no longer matters.
    with contextlib.suppress(RuntimeError):
        pool.submit(_logged, function)


def _logged(function: Callable[[], object]) -> None:
    try:
        function()
    except Exception:
        _log.exception("sharedctx event delivery failed")


def _reset_pool() -> None:
    global _pool, _reaper
    _pool = None
    _reaper = None


_freed: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
_reaper: threading.Thread | None = None
_reaper_lock = threading.Lock()


def run_when_freed(obj: object, function: Callable[[], object]) -> None:
    """Run ``function`` on a thread of sharedctx's soon after ``obj`` is freed.

    The collector frees an object on whichever thread is running, holding whatever
    locks that thread holds at that moment (this module's, another library's thread
    pool's...), so the finalizer takes no lock: it only puts ``function`` on a
    ``SimpleQueue`` (whose ``put`` is reentrant), and a daemon thread, started here
    rather than in the collector, runs it.
    """
    global _reaper
    with _reaper_lock:
        if _reaper is None:
            _reaper = threading.Thread(target=_reap, name="sharedctx-reaper", daemon=True)
            _reaper.start()
    weakref.finalize(obj, _freed.put, function).atexit = False


def _reap() -> None:
    while True:
        _logged(_freed.get())


os.register_at_fork(after_in_child=_reset_pool)
