"""Waking waiters of any kind: threads and asyncio tasks, from any thread.

A change is noticed on whatever thread delivers it (a writer, the expiry timer, a
Redis listener); who waits for it may be a thread blocked in ``wait_for`` or a task
awaiting ``await_for`` on some event loop. :class:`Waker` is the one mechanism for
both: threads wait on its condition, tasks on a future of their own loop, resolved
with ``call_soon_threadsafe``. :class:`Signal` is a flag built on it (the waits'),
and ``Watch`` waits for its buffer with one.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["Signal", "Waker"]


class Waker:
    """Threads and asyncio tasks waiting for something guarded by :attr:`condition`.

    The waiting side holds the condition, finds nothing, and then waits: a thread with
    ``condition.wait(timeout)``, a task by taking :meth:`future` (still holding the
    condition), releasing it, and awaiting that future. The other side holds the
    condition, changes what is waited for, and calls :meth:`wake`.
    """

    def __init__(self) -> None:
        self.condition = threading.Condition(threading.Lock())
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def wake(self) -> None:
        """Wake every waiter (the caller holds :attr:`condition`)."""
        self.condition.notify_all()
        for loop, future in self._futures:
            loop.call_soon_threadsafe(_resolve, future)
        self._futures.clear()

    def future(self) -> asyncio.Future[None]:
        """A future of the running loop, resolved by the next :meth:`wake` (the caller
        holds :attr:`condition`; give it to :meth:`forget` when done with it)."""
        import asyncio  # imported by async code only (a light `import sharedctx`)

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._futures.append((loop, future))
        return future

    def forget(self, future: asyncio.Future[None]) -> None:
        """Stop waking ``future`` (its waiter timed out or was cancelled)."""
        with self.condition:
            self._futures = [item for item in self._futures if item[1] is not future]


class Signal:
    """A flag that a subscription callback sets from any thread; sync or async waiters."""

    def __init__(self) -> None:
        self._waker = Waker()
        self._set = False

    def set(self, _event: object = None) -> None:
        """Set the flag and wake every waiter (a subscription callback: any argument)."""
        with self._waker.condition:
            self._set = True
            self._waker.wake()

    def clear(self) -> None:
        with self._waker.condition:
            self._set = False

    def wait(self, timeout: float | None) -> bool:
        """Block until the flag is set or ``timeout`` passes; whether it was set."""
        with self._waker.condition:
            return self._waker.condition.wait_for(lambda: self._set, timeout)

    async def await_(self, timeout: float | None) -> bool:
        """Awaitable twin of :meth:`wait`; never blocks the event loop."""
        import asyncio  # imported by async code only (a light `import sharedctx`)

        with self._waker.condition:
            if self._set:
                return True
            future = self._waker.future()
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return self._set
        finally:
            self._waker.forget(future)
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
