"""A session's changes as Server-Sent Events: each with ``id: <revision>``, so that a
browser that reconnects (``Last-Event-ID``, or ``?since=``) gets every change it
missed, once and in order, from the watch's replay (``watch(since=...)``).

A gap the session no longer keeps (``WatchOverflowError``: the history or the stream
was trimmed past it, or this connection fell ``MAX_PENDING`` events behind) is sent as
an ``event: gap`` with the revision the stream goes on from, never skipped in silence;
a session deleted meanwhile as ``event: lost``. A comment line every ``KEEPALIVE``
seconds keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from starlette.types import Receive, Scope, Send

from sharedctx import (
    ContextClosedError,
    ContextError,
    ContextEvent,
    SessionLostError,
    SharedContext,
    WaitTimeoutError,
    Watch,
    WatchOverflowError,
)
from sharedctx.web._data import event_row

__all__ = ["KEEPALIVE", "MAX_PENDING", "EventStream", "OpenWatches", "session_events"]

KEEPALIVE = 15.0
MAX_PENDING = 10_000
"""Events one connection may fall behind before its watch overflows (a gap)."""
_BATCH = 500  # events sent in one write at most
_encode = msgspec.json.Encoder().encode


class OpenWatches:
    """The watches the app's streams are reading: closed at once when the server stops,
    so that its streams end instead of holding the shutdown."""

    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self.closing = False

    def add(self, watch: Watch) -> None:
        self._watches.add(watch)
        if self.closing:
            watch.close()

    def discard(self, watch: Watch) -> None:
        self._watches.discard(watch)

    def close_all(self) -> None:
        """End every stream (thread-safe: ``Watch.close`` is)."""
        self.closing = True
        for watch in list(self._watches):
            watch.close()


class EventStream:
    """An ASGI response sending ``chunks`` as ``text/event-stream``; it stops reading
    them as soon as the client goes away."""

    def __init__(self, chunks: AsyncGenerator[bytes, None]) -> None:
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        try:
            async with anyio.create_task_group() as group:

                async def until_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(until_disconnect)
                try:
                    async for chunk in self.chunks:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except OSError:  # the connection broke while writing
                    pass
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):  # release the watch and the context
                await self.chunks.aclose()


def _message(fields: dict[str, Any], *, revision: int | None = None, event: str = "") -> bytes:
    head = b"" if not event else b"event: " + event.encode() + b"\n"
    if revision is not None:
        head += b"id: %d\n" % revision
    return head + b"data: " + _encode(fields) + b"\n\n"


async def session_events(
    context: SharedContext,
    since: int | None,
    *,
    matches: Callable[[ContextEvent], bool],
    follow: bool,
    watches: OpenWatches,
) -> AsyncGenerator[bytes, None]:
    """The stream of ``context``'s session from just after ``since`` (None: from now),
    as SSE messages; without ``follow`` it ends once it reached the revision the
    session had when it began. Closes ``context`` when it ends."""
    try:
        yield b"retry: 1000\n\n"
        current = await context.arevision()
        start = current if since is None else since
        if start > current:
            yield _gap(
                current,
                f"revision {start} is after the session's last change, {current}: the "
                "session was deleted and made anew since",
            )
            start = current
        while True:
            try:
                watch = await anyio.to_thread.run_sync(
                    functools.partial(context.watch, "*", max_pending=MAX_PENDING, since=start)
                )
            except (WatchOverflowError, SessionLostError) as lost:
                start = await context.arevision()
                yield _gap(start, str(lost))
                continue
            watches.add(watch)
            try:
                async for chunk in _read(watch, start, current, matches, follow):
                    yield chunk
                return
            except WatchOverflowError as overflow:
                start = await context.arevision()
                yield _gap(start, str(overflow))
            finally:
                watches.discard(watch)
                watch.close()
    finally:
        await context.aclose()


def _gap(revision: int, message: str) -> bytes:
    return _message({"revision": revision, "message": message}, revision=revision, event="gap")


async def _read(
    watch: Watch,
    start: int,
    current: int,
    matches: Callable[[ContextEvent], bool],
    follow: bool,
) -> AsyncIterator[bytes]:
    """The messages of ``watch``, batched; raises ``WatchOverflowError`` after the
    events before it."""
    if not follow and start >= current:
        return
    while True:
        batch = await _batch(watch)
        if batch is None:
            return  # the watch was closed: the server stops
        if not batch:
            yield b": keep-alive\n\n"
            continue
        seen = time.time()
        chunk = bytearray()
        overflow: WatchOverflowError | None = None
        done = False
        for item in batch:
            if isinstance(item, WatchOverflowError):
                overflow = item
                break
            if isinstance(item, Exception):  # SessionLostError: said once, then on
                chunk += _message({"message": str(item)}, event="lost")
                continue
            row = event_row(
                item, seen=seen if item.revision > current else None, matches=matches(item)
            )
            chunk += _message(row, revision=item.revision)
            if not follow and item.revision >= current:
                done = True
                break
        if chunk:
            yield bytes(chunk)
        if overflow is not None:
            raise overflow
        if done:
            return


async def _batch(watch: Watch) -> list[ContextEvent | Exception] | None:
    """The next events (and errors) of ``watch``: waits for one, then takes what is
    already there; [] after ``KEEPALIVE`` seconds of nothing; None once it is closed."""
    items: list[ContextEvent | Exception] = []
    try:
        items.append(await watch.aget(timeout=KEEPALIVE))
    except WaitTimeoutError:
        return items
    except ContextClosedError:
        return None
    except ContextError as error:  # WatchOverflowError, SessionLostError
        return [error]
    while len(items) < _BATCH:
        try:
            items.append(watch.get(timeout=0))  # never waits: the event loop is safe
        except WaitTimeoutError:
            break
        except ContextClosedError:
            break
        except ContextError as error:
            items.append(error)
            break
    return items
