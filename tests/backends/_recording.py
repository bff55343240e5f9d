"""A third backend, written against the public backend protocol alone.

``RecordingBackend`` keeps its sessions in a ``MemoryBackend`` and records every
operation a context gives its stores. It imports nothing but the public names of
``sharedctx.backends``, and its stores refuse any operation that is not one of
``sharedctx.backends.OPERATIONS``: anything else fails the test. It is a
``SessionAdmin`` too (what ``sharedctx sessions`` asks), by its memory backend's. The behavioural
suite (``sharedctx.testing``) runs on it as on the memory and Redis backends, which
shows that a new backend needs no change to ``src/``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sharedctx.backends import (
    OPERATIONS,
    MemoryBackend,
    Operation,
    SessionSummary,
    Store,
    StoreOptions,
)

T = TypeVar("T")


class RecordingStore:
    """A ``Store`` that records each operation's name and passes it on."""

    def __init__(self, store: Store, calls: list[str]) -> None:
        self._store, self._calls = store, calls
        self.codec = store.codec

    def _record(self, operation: Operation[Any]) -> None:
        if type(operation) not in OPERATIONS:
            raise AssertionError(f"the context sent {operation!r}, which is no sharedctx operation")
        self._calls.append(operation.name)

    def execute(self, operation: Operation[T]) -> T:
        self._record(operation)
        return self._store.execute(operation)

    async def aexecute(self, operation: Operation[T]) -> T:
        self._record(operation)
        return await self._store.aexecute(operation)


class RecordingBackend:
    """A ``Backend``: sessions kept in memory, every operation's name in ``calls``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._memory = MemoryBackend()

    def open(self, session_id: str, hub: Any, options: StoreOptions, codec: Any) -> RecordingStore:
        return RecordingStore(self._memory.open(session_id, hub, options, codec), self.calls)

    def sessions(self) -> list[str]:
        return self._memory.sessions()

    def has_session(self, session_id: str) -> bool:
        return self._memory.has_session(session_id)

    def session_summary(self, session_id: str) -> SessionSummary | None:
        return self._memory.session_summary(session_id)

    def session_summaries(self) -> list[SessionSummary]:
        return self._memory.session_summaries()

    def drop_session(self, session_id: str) -> bool:
        return self._memory.drop_session(session_id)

    def close(self) -> None:
        self._memory.close()

    async def aclose(self) -> None:
        await self._memory.aclose()

    def __repr__(self) -> str:
        return "RecordingBackend()"
