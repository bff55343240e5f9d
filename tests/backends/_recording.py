"""A third backend, written against the public backend protocol alone.

``RecordingBackend`` keeps its sessions in stores that a ``MemoryBackend`` opens and
records every call a context makes to them. It imports nothing but the public names
of ``sharedctx.backends``, and its stores let a context call only what the ``Store``
and ``AsyncStore`` protocols declare: anything else fails the test. The behavioural
suite runs on it as on the memory and Redis backends (``backend`` in conftest.py),
which shows that a new backend needs no change to ``src/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sharedctx.backends import AsyncStore, MemoryBackend, Store, StoreOptions

STORE_CALLS = frozenset(name for name in vars(Store) if not name.startswith("_"))
ASYNC_STORE_CALLS = frozenset(name for name in vars(AsyncStore) if not name.startswith("_"))


class _Recorder:
    def __init__(self, target: Any, calls: list[str], allowed: frozenset[str]) -> None:
        self._target, self._calls, self._allowed = target, calls, allowed

    def _method(self, name: str) -> Any:
        if name not in self._allowed:
            raise AssertionError(f"the context used {name!r}, which its store protocol lacks")
        self._calls.append(name)
        return getattr(self._target, name)


class RecordingStore(_Recorder):
    """A ``Store`` that records each call and passes it on."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = self._method(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


class RecordingAsyncStore(_Recorder):
    """An ``AsyncStore`` that records each call and awaits the one it wraps."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = self._method(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await method(*args, **kwargs)

        return call


class RecordingBackend:
    """A ``Backend``: sessions kept in memory, every store call recorded in ``calls``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._memory = MemoryBackend()

    def open(self, session_id: str, hub: Any, options: StoreOptions) -> tuple[Any, Any]:
        store, astore = self._memory.open(session_id, hub, options)
        return (
            RecordingStore(store, self.calls, STORE_CALLS),
            RecordingAsyncStore(astore, self.calls, ASYNC_STORE_CALLS),
        )

    def close(self) -> None:
        self._memory.close()

    async def aclose(self) -> None:
        await self._memory.aclose()

    def __repr__(self) -> str:
        return "RecordingBackend()"
