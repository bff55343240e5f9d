"""Where a context's data lives, and the protocol a new place must implement.

``SharedContext(backend=...)`` and ``ContextManager(backend=...)`` take a
:class:`Backend` object or a URL that :func:`open_backend` turns into one (see
``sharedctx.backends.registry``): ``"memory"`` (the default: this process only), a
Redis URL (``redis://``, ``rediss://``, ``unix://``) or a Redis Cluster's
(``redis+cluster://h1:p1,h2:p2``, ``rediss+cluster://``). The operations a store
handles are in ``sharedctx.backends.ops``; the protocols in
``sharedctx.backends.base``. ``RedisBackend`` is imported only when asked for, so
the memory backend does not need redis-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sharedctx._events import EventHub, Subscription
from sharedctx._glob import Glob, compile_glob, escape
from sharedctx.backends import ops
from sharedctx.backends.base import (
    Backend,
    Eviction,
    Handlers,
    InProcessStore,
    SessionAdmin,
    SessionSummary,
    Store,
    StoreOptions,
    UnsupportedOperationError,
    handles,
)
from sharedctx.backends.memory import MemoryBackend
from sharedctx.backends.ops import ALL, OPERATIONS, Lease, Operation, Page, TTLArg
from sharedctx.backends.registry import open_backend, redis_backend_class, register_scheme

if TYPE_CHECKING:
    from sharedctx.backends.redis import RedisBackend

__all__ = [
    "ALL",
    "OPERATIONS",
    "Backend",
    "EventHub",
    "Eviction",
    "Glob",
    "Handlers",
    "InProcessStore",
    "Lease",
    "MemoryBackend",
    "Operation",
    "Page",
    "RedisBackend",
    "SessionAdmin",
    "SessionSummary",
    "Store",
    "StoreOptions",
    "Subscription",
    "TTLArg",
    "UnsupportedOperationError",
    "compile_glob",
    "escape",
    "handles",
    "open_backend",
    "ops",
    "register_scheme",
]


def __getattr__(name: str) -> Any:
    # RedisBackend imports redis-py, which the memory backend does not need.
    if name == "RedisBackend":
        return redis_backend_class()
    raise AttributeError(f"module 'sharedctx.backends' has no attribute {name!r}")
