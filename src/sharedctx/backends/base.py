"""The backend protocol: what a place to keep sessions must provide.

A :class:`Backend` (``MemoryBackend``, ``RedisBackend``, or one of your own) opens
the :class:`Store` of one session for one ``SharedContext``. The context checks
arguments, encodes values with its codec and applies defaults (the default TTL,
``source="unknown"``); it then hands each call to the store as an operation (see
``sharedctx.backends.ops``), and the store does it atomically (linearizably) and
returns its result. A store must:

- handle every operation of ``ops.OPERATIONS`` in ``execute`` and its awaitable
  twin ``aexecute`` (a store with no I/O of its own inherits ``aexecute`` from
  :class:`InProcessStore`; :func:`handles` and :class:`Handlers` give the usual
  table of one handler per operation);
- build entries with ``ContextEntry``'s keyword constructor, with ``codec`` the
  store's :attr:`Store.codec` (``sharedctx``'s public value types are the whole
  vocabulary between a context and its store);
- raise ``ContextClosedError`` from every operation once it is closed;
- give every change the session's next revision (+1 per change), and report each
  change that :meth:`EventHub.wants` to the context's hub in revision order with
  :meth:`EventHub.enqueue`, then call :meth:`EventHub.deliver` once its own lock (if
  any) is released; a removal's event carries ``entry.without_value()``;
- raise ``BackendUnavailableError`` for a call that did not reach the data (nothing
  was changed) and ``OutcomeUnknownError`` for a write whose outcome it could not
  learn.

``sharedctx.testing`` holds the behavioural suite every backend must pass; the memory
store shows the smallest complete implementation, and ``tests/backends`` a third
backend written against this module alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from sharedctx._codec import Codec
from sharedctx._errors import ContextError
from sharedctx._events import EventHub
from sharedctx.backends.ops import Operation

__all__ = [
    "Backend",
    "Eviction",
    "Handlers",
    "InProcessStore",
    "SessionAdmin",
    "SessionSummary",
    "Store",
    "StoreOptions",
    "UnsupportedOperationError",
    "handles",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

Eviction = Literal["lru", "oldest", "reject"]
"""What a full context does for a new key: evict the least recently used (read or
written) entry, the least recently written one, or raise ``CapacityError``."""


class SessionSummary(NamedTuple):
    """One session as ``sharedctx sessions`` lists it."""

    session_id: str
    entries: int
    """Live entries."""
    bytes: int
    """Size of the stored entries (values and their metadata)."""
    last_write: datetime | None
    """When a caller last changed its data (a write, a delete, a clear, a new TTL);
    None if never. Reads, sweeps and expiries never move it."""
    drops_at: datetime | None
    """When the backend drops the whole session, or None: not by itself."""
    past_bytes: int = 0
    """Bytes of the values of the past versions it keeps (``history_versions``)."""


class StoreOptions(NamedTuple):
    """The settings of a context that its store enforces."""

    max_entries: int | None = None
    """Most live entries (None: no limit)."""
    eviction: Eviction = "lru"
    history_versions: int | None = None
    """Past versions of each key to keep when this context overwrites it (None: the
    backend's default)."""
    history_retention: float | None = None
    """Seconds a past version (or a removed key's record) is kept (None: the backend's
    default)."""


class Store(Protocol):
    """One session's data, for one context (see the module docstring)."""

    codec: Codec
    """The session's codec: the one the store was opened with, or the backend's
    wrapping of it (a sealed session's). The context encodes values with it, and the
    store's entries decode through it."""

    def execute(self, operation: Operation[T]) -> T:
        """Do ``operation`` and return its result (see ``sharedctx.backends.ops``)."""

    async def aexecute(self, operation: Operation[T]) -> T:
        """Awaitable twin of :meth:`execute`, for the asyncio twins of the context."""

    # A store may also have ``executor(operation_type)``: a callable that does the
    # operations of that type as ``execute`` does, one call cheaper (the context
    # takes those of ``Get`` and ``Write``, its hottest calls, when it opens).


class Backend(Protocol):
    """Where sessions live. ``SharedContext(backend=...)`` takes one, or a URL that
    :func:`sharedctx.backends.open_backend` turns into one."""

    def open(self, session_id: str, hub: EventHub, options: StoreOptions, codec: Codec) -> Store:
        """The store of ``session_id`` for one context.

        ``hub`` is that context's (the store reports the session's changes to it) and
        ``codec`` the context's value codec, which the backend may wrap.
        """

    # A backend may also have ``kind``: its name in spans and metrics (``"memory"``,
    # ``"redis"``, ``"redis-cluster"``); without it, its class's name is used.

    def close(self) -> None:
        """Release the backend's resources (connections, threads)."""

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close` (closes this event loop's connections)."""


@runtime_checkable
class SessionAdmin(Protocol):
    """What a backend offers ``sharedctx sessions``, ``delete`` and ``prune`` (and the
    web view): its sessions, without opening them. Memory and Redis have it."""

    def sessions(self) -> list[str]:
        """The ids of the sessions that exist, sorted."""

    def has_session(self, session_id: str) -> bool:
        """Whether a session exists (without creating it)."""

    def session_summary(self, session_id: str) -> SessionSummary | None:
        """A session's size and lifetime (None if it does not exist)."""

    def session_summaries(self) -> list[SessionSummary]:
        """Every session with its size and lifetime, sorted by id."""

    def drop_session(self, session_id: str) -> bool:
        """Delete a session's data for everyone; False if it did not exist."""


class UnsupportedOperationError(ContextError, NotImplementedError):
    """A store was given an operation it has no handler for (a backend written for an
    older sharedctx, or an operation that is not a sharedctx one)."""


def handles(*operations: type[Operation[Any]]) -> Callable[[F], F]:
    """Mark a store method as the handler of ``operations`` (see :class:`Handlers`)."""

    def mark(method: F) -> F:
        method.__sharedctx_handles__ = operations  # type: ignore[attr-defined]
        return method

    return mark


class Handlers:
    """A store's ``execute``: each operation goes to the method marked with
    :func:`handles` for its type, one dict lookup away. A subclass sets
    ``self.handlers = self.bind_handlers()`` in its ``__init__``."""

    _table: ClassVar[dict[type[Operation[Any]], str]] = {}
    handlers: dict[type[Operation[Any]], Callable[[Any], Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type[Operation[Any]], str] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                for operation in getattr(member, "__sharedctx_handles__", ()):
                    table[operation] = name
        cls._table = table

    def bind_handlers(self) -> dict[type[Operation[Any]], Callable[[Any], Any]]:
        """This store's handlers, by operation type."""
        return {operation: getattr(self, name) for operation, name in self._table.items()}

    def executor(self, operation: type[Operation[T]]) -> Callable[[Operation[T]], T]:
        """What does the operations of type ``operation``: its handler itself."""
        handler = self.handlers.get(operation)
        return self.execute if handler is None else handler

    def execute(self, operation: Operation[T]) -> T:
        """Do ``operation`` with its handler; ``UnsupportedOperationError`` if none."""
        handler = self.handlers.get(operation.__class__)
        if handler is None:
            raise self.unsupported(operation)
        return handler(operation)  # type: ignore[no-any-return]

    def unsupported(self, operation: object) -> UnsupportedOperationError:
        """The error for an operation without a handler."""
        what = getattr(operation, "name", "") or type(operation).__name__
        return UnsupportedOperationError(
            f"{type(self).__name__} has no handler for the operation {what!r} "
            f"({type(operation).__module__}.{type(operation).__qualname__}); "
            "is the backend written for another version of sharedctx?"
        )


class InProcessStore(Handlers):
    """A :class:`Handlers` store that never waits for I/O (it holds a lock for
    microseconds): its awaitable twin runs the call on the event loop's own thread."""

    async def aexecute(self, operation: Operation[T]) -> T:
        """Awaitable twin of :meth:`execute`: the same call, made at once."""
        return self.execute(operation)
