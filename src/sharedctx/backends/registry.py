"""Which backend a ``backend=`` URL names: a registry of URL schemes.

``SharedContext(backend="redis://...")`` and every other ``backend=`` string go
through :func:`open_backend`, the one place a string becomes a backend. The scheme
before ``://`` chooses the factory: ``memory`` (also the bare string ``"memory"``),
``redis``, ``rediss``, ``unix``, ``redis+cluster`` and ``rediss+cluster`` are built
in; a third-party backend adds its own with :func:`register_scheme`, or without any
import by an entry point of the ``sharedctx.backends`` group in its package metadata
(the entry point's name is the scheme, its object the factory)::

    [project.entry-points."sharedctx.backends"]
    postgres = "sharedctx_postgres:PostgresBackend"

A factory is called with the whole URL and returns a ``Backend``. The Redis backend
is imported only when a Redis URL is opened, so the memory backend needs no
redis-py.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sharedctx._errors import InvalidArgumentError
from sharedctx._sealed import KeyProvider
from sharedctx.backends.base import Backend
from sharedctx.backends.memory import MemoryBackend

if TYPE_CHECKING:
    from sharedctx.backends.redis import RedisBackend

__all__ = ["ENTRY_POINT_GROUP", "BackendFactory", "open_backend", "register_scheme", "schemes"]

BackendFactory = Callable[..., Backend]
"""Makes the backend of a URL (given whole); called with ``keyring=`` as well when a
context asks for a sealed session (a factory that takes no ``keyring`` cannot)."""

ENTRY_POINT_GROUP = "sharedctx.backends"
"""The entry point group in which other packages register their URL schemes."""


def _memory(url: str) -> Backend:
    return MemoryBackend.shared()


def _redis(url: str, keyring: KeyProvider | None = None) -> Backend:
    return redis_backend_class()(url, keyring=keyring)


_factories: dict[str, BackendFactory] = {
    "memory": _memory,
    **dict.fromkeys(("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"), _redis),
}
_BUILT_IN = frozenset(_factories)
_lock = threading.Lock()


def register_scheme(scheme: str, factory: BackendFactory) -> None:
    """Make ``backend="<scheme>://..."`` open ``factory(url)``; replaces an earlier
    registration of ``scheme`` (a built-in one included)."""
    if not isinstance(scheme, str) or not scheme or "://" in scheme or scheme != scheme.lower():
        raise InvalidArgumentError(
            f"a URL scheme is a lowercase word like 'postgres', not {scheme!r}"
        )
    if not callable(factory):
        raise InvalidArgumentError(f"the factory of scheme {scheme!r} must be callable")
    with _lock:
        _factories[scheme] = factory


def schemes() -> list[str]:
    """The schemes that :func:`open_backend` knows now (the entry points' included)."""
    from importlib.metadata import entry_points  # only when looked up (a light import)

    found = {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}
    with _lock:
        return sorted(found | set(_factories))


def _factory(scheme: str) -> BackendFactory | None:
    with _lock:
        factory = _factories.get(scheme)
    if factory is not None:
        return factory
    from importlib.metadata import entry_points  # only for a scheme not registered in code

    for entry in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        loaded: BackendFactory = entry.load()
        register_scheme(scheme, loaded)
        return loaded
    return None


def open_backend(
    backend: str | Backend,
    *,
    clock: Callable[[], float] | None = None,
    keyring: KeyProvider | None = None,
) -> tuple[Backend, bool]:
    """The backend that ``backend`` names, and whether the caller owns it (must close
    it): a :class:`Backend` is used as it is (not owned); a string is a URL whose
    scheme chooses the factory (see the module docstring), owned.

    ``clock`` makes ``"memory"`` a ``MemoryBackend(clock=clock)`` (for tests); the
    other backends expire by their own clock. ``keyring`` (a ``KeyRing``) makes the
    URL's backend seal its sessions: ``"memory"`` is then the process-wide memory
    backend's sessions opened with it. Raises ``InvalidArgumentError`` for anything
    else, and ``ImportError`` naming the extra to install when the backend's client
    library is missing.
    """
    if keyring is not None and not isinstance(keyring, KeyProvider):
        raise InvalidArgumentError(
            f"keyring must be a KeyRing, not {keyring!r}: KeyRing({{'2026-12': key}}) "
            "with a key from KeyRing.generate_key(), or another KeyProvider"
        )
    if isinstance(backend, str):
        scheme = "memory" if backend == "memory" else backend.partition("://")[0].lower()
        factory = _factory(scheme) if backend == "memory" or "://" in backend else None
        if factory is None:
            others = [scheme for scheme in schemes() if scheme not in _BUILT_IN]
            extra = f" (or of {', '.join(others)})" if others else ""
            raise InvalidArgumentError(
                f"backend must be 'memory', a redis://, rediss://, unix:// or redis+cluster:// "
                f"URL{extra}, or a Backend, not {backend!r}"
            )
        if factory is _memory:
            if clock is not None:  # a clock of its own: a place of its own
                return MemoryBackend(clock=clock, keyring=keyring), True
            # one session id, one session
            return MemoryBackend.shared().with_keyring(keyring), False
        if clock is not None:
            raise InvalidArgumentError(
                "clock= is for the memory backend; a shared backend expires by its own clock"
            )
        if keyring is None:
            return factory(backend), True
        if not _takes_keyring(factory):
            raise InvalidArgumentError(
                f"the backend of {scheme}:// URLs does not seal sessions (its factory "
                "takes no keyring=): register a factory that takes keyring=, or open "
                "the context without one"
            )
        return factory(backend, keyring=keyring), True
    if keyring is not None:
        raise InvalidArgumentError(
            "keyring= goes with a backend URL; give a Backend object its own "
            "(MemoryBackend(keyring=...), RedisBackend(url, keyring=...))"
        )
    if not callable(getattr(backend, "open", None)):
        raise InvalidArgumentError(
            f"backend must be 'memory', a Redis URL or a Backend (an object with open()), "
            f"not {backend!r}"
        )
    if clock is not None:
        raise InvalidArgumentError(
            "clock= is a shortcut for backend=MemoryBackend(clock=...): give one or the other"
        )
    return backend, False


def _takes_keyring(factory: Any) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        parameter.name == "keyring" or parameter.kind is inspect.Parameter.VAR_KEYWORD
        for parameter in parameters
    )


def redis_backend_class() -> type[RedisBackend]:
    """``RedisBackend``, imported now; ``ImportError`` naming the extra without redis-py."""
    try:
        from sharedctx.backends.redis import RedisBackend
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("redis"):
            raise
        raise ImportError(
            "the Redis backend needs redis-py: pip install 'sharedctx[redis]'"
        ) from exc
    return RedisBackend
