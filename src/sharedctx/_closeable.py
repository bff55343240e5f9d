"""``Closeable``: ``with`` and ``async with`` for everything sharedctx lets you close."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Closeable"]


class Closeable:
    """A base for objects with ``close()``: gives them ``with``, ``async with`` and an
    ``aclose()`` twin.

    A subclass defines ``close()``, and overrides ``aclose()`` when closing awaits
    something (connections on an event loop); the default ``aclose()`` calls
    ``close()``. ``SharedContext``, ``Watch``, ``ContextManager`` and the LangGraph
    store are closeables; so may a backend author's own objects be.
    """

    def close(self) -> None:
        """Release what the object holds. Idempotent."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close`."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
