"""Where a context's data lives: in this process (``memory``) or on a Redis server.

:func:`open_store` turns a ``backend=`` argument into the store of one session and
its async face. The Redis backend is imported only when asked for, so the memory
backend does not need redis-py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sharedctx._errors import ContextError, InvalidArgumentError
from sharedctx._events import EventHub
from sharedctx.backends.base import AsyncStore, NonBlockingAsync, Store
from sharedctx.backends.memory import Eviction, MemoryStore

if TYPE_CHECKING:
    from sharedctx.backends.redis import RedisBackend

__all__ = ["open_store", "redis_backend"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def redis_backend(url: str, **options: Any) -> RedisBackend:
    """A RedisBackend for ``url``; a clear error if redis-py is not installed."""
    try:
        from sharedctx.backends.redis import RedisBackend
    except ModuleNotFoundError as exc:
        raise ContextError(
            "the Redis backend needs redis-py: pip install 'sharedctx[redis]'"
        ) from exc
    return RedisBackend(url, **options)


def open_store(
    backend: Any,
    session_id: str,
    hub: EventHub,
    *,
    max_entries: int | None,
    eviction: Eviction,
    clock: Callable[[], float] | None,
) -> tuple[Store, AsyncStore, str]:
    """The store of ``session_id`` on ``backend``, its async face, and a description."""
    if backend == "memory":
        memory = MemoryStore(
            session_id, hub, max_entries=max_entries, eviction=eviction, clock=clock
        )
        return memory, NonBlockingAsync(memory), "memory"
    owned = isinstance(backend, str) and backend.startswith(_REDIS_SCHEMES)
    if owned:
        backend = redis_backend(backend)
    from sharedctx.backends.redis import RedisAsync, RedisBackend, RedisStore

    if not isinstance(backend, RedisBackend):
        raise InvalidArgumentError(
            f"backend must be 'memory', a redis://, rediss:// or unix:// URL, or a "
            f"RedisBackend, not {backend!r}"
        )
    if clock is not None:
        raise ContextError("clock= is for the memory backend; Redis expires by its own clock")
    store = RedisStore(
        backend, session_id, hub, max_entries=max_entries, eviction=eviction, owns_backend=owned
    )
    return store, RedisAsync(store), repr(backend)
