"""Where a context's data lives, and the protocol a new place must implement.

``SharedContext(backend=...)`` and ``ContextManager(backend=...)`` take a
:class:`Backend` object or a string that :func:`open_backend` turns into one:
``"memory"`` (the default: this process only), a Redis URL (``redis://``,
``rediss://``, ``unix://``) or a Redis Cluster's (``redis+cluster://h1:p1,h2:p2``,
``rediss+cluster://``). The Redis backend is imported only when asked for, so
the memory backend does not need redis-py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sharedctx._errors import InvalidArgumentError
from sharedctx.backends.base import (
    ALL,
    AsyncStore,
    Backend,
    Eviction,
    Lease,
    Page,
    Store,
    StoreOptions,
    TTLArg,
    Write,
)
from sharedctx.backends.memory import MemoryBackend

if TYPE_CHECKING:
    from sharedctx.backends.redis import RedisBackend

__all__ = [
    "ALL",
    "AsyncStore",
    "Backend",
    "Eviction",
    "Lease",
    "MemoryBackend",
    "Page",
    "RedisBackend",
    "Store",
    "StoreOptions",
    "TTLArg",
    "Write",
    "open_backend",
]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


def open_backend(
    backend: str | Backend, *, clock: Callable[[], float] | None = None
) -> tuple[Backend, bool]:
    """The backend that ``backend`` names, and whether the caller owns it (must close
    it): a :class:`Backend` is used as it is (not owned); ``"memory"`` gives a
    :class:`MemoryBackend` on ``clock``, a Redis URL a ``RedisBackend`` (both owned).

    ``clock`` is for the memory backend only; the others expire by their own clock.
    Raises ``InvalidArgumentError`` for anything else, and ``ImportError`` naming the
    extra to install when the backend's client library is missing.
    """
    if isinstance(backend, str):
        if backend == "memory":
            return MemoryBackend(clock=clock), True
        if backend.startswith(REDIS_SCHEMES):
            _no_clock(clock)
            return _redis_backend_class()(backend), True
        raise InvalidArgumentError(
            f"backend must be 'memory', a redis://, rediss://, unix:// or redis+cluster:// "
            f"URL, or a Backend, not {backend!r}"
        )
    if not callable(getattr(backend, "open", None)):
        raise InvalidArgumentError(
            f"backend must be 'memory', a Redis URL or a Backend (an object with open()), "
            f"not {backend!r}"
        )
    if clock is not None:
        if not isinstance(backend, MemoryBackend):
            _no_clock(clock)
        raise InvalidArgumentError(
            "clock= is a shortcut for backend=MemoryBackend(clock=...): give one or the other"
        )
    return backend, False


def _no_clock(clock: Callable[[], float] | None) -> None:
    if clock is not None:
        raise InvalidArgumentError(
            "clock= is for the memory backend; a shared backend expires by its own clock"
        )


def _redis_backend_class() -> type[RedisBackend]:
    try:
        from sharedctx.backends.redis import RedisBackend
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("redis"):
            raise
        raise ImportError(
            "the Redis backend needs redis-py: pip install 'sharedctx[redis]'"
        ) from exc
    return RedisBackend


def __getattr__(name: str) -> Any:
    # RedisBackend imports redis-py, which the memory backend does not need.
    if name == "RedisBackend":
        return _redis_backend_class()
    raise AttributeError(f"module 'sharedctx.backends' has no attribute {name!r}")
