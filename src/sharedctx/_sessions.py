"""``ContextManager``: one ``SharedContext`` per pipeline session, with a lifecycle.

A manager never replaces a live context (``create_context`` raises
``SessionExistsError``), creates exactly one context per id even when many threads
ask at once, and can close sessions nobody has used for a while. It uses no
global state: the module-level ``context_manager`` is only a convenience.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sharedctx import _scheduler
from sharedctx._checks import check_positive_int, check_session_id, check_ttl
from sharedctx._closeable import Closeable
from sharedctx._context import TTL, SharedContext
from sharedctx._errors import ContextClosedError, SessionExistsError
from sharedctx._sealed import KeyProvider
from sharedctx.backends import open_backend
from sharedctx.backends.base import Backend

__all__ = ["ContextManager", "context_manager"]

_SWEEP_MIN = 64


class _Session:
    __slots__ = ("context", "idle_since", "last_activity")

    def __init__(self, context: SharedContext, now: float) -> None:
        self.context = context
        self.last_activity = context.activity
        self.idle_since = now


class ContextManager(Closeable):
    """Creates, finds and destroys the contexts of pipeline sessions (thread-safe).

    The options are the defaults of every context it creates (``create_context``
    may override them); a ``backend`` URL gives all of them one shared backend,
    closed by ``close()``, and ``clock`` one ``MemoryBackend(clock=...)`` (tests);
    ``keyring`` (a ``KeyRing``, with a URL) seals every session.
    With ``session_idle_ttl`` (seconds), a session whose context nobody used for
    that long is closed; it is checked every half of that time, so a session goes
    between 1 and 1.5 times it after its last use (with ``clock``, when
    :meth:`close_idle` is called). ``close()`` closes every session's context.

    Its defaults are ``SharedContext``'s (see there). A context it made is a handle
    like any other: ``SharedContext(session_id)`` opens the same session, closing
    keeps the data for the other handles (memory too; entries go by their TTL), and
    ``destroy_context`` deletes a session's data for everyone. A context closed by
    its user is forgotten, so a manager that serves a session per request does not
    grow.
    """

    def __init__(
        self,
        *,
        default_ttl: TTL = None,
        max_entries: int | None = None,
        max_entry_bytes: int = 102400,
        notifications: bool = True,
        session_idle_ttl: TTL = None,
        backend: str | Backend = "memory",
        clock: Callable[[], float] | None = None,
        keyring: KeyProvider | None = None,
        **options: Any,
    ) -> None:
        # Bad defaults fail here, not at the first create_context.
        check_ttl(default_ttl, what="default_ttl")
        check_positive_int(max_entries, "max_entries", allow_none=True)
        check_positive_int(max_entry_bytes, "max_entry_bytes")
        # One backend (for Redis: one connection pool) for all sessions.
        self._backend, self._owns_backend = open_backend(backend, clock=clock, keyring=keyring)
        self._clock = clock or time.monotonic
        self._timed = clock is None  # an injected clock moves only when told: no timer
        self._options: dict[str, Any] = {
            "default_ttl": default_ttl,
            "max_entries": max_entries,
            "max_entry_bytes": max_entry_bytes,
            "notifications": notifications,
            "backend": self._backend,
            **options,
        }
        idle = check_ttl(session_idle_ttl, what="session_idle_ttl")
        self._idle_ttl: float | None = idle if isinstance(idle, float) else None
        self._sessions: dict[str, _Session] = {}
        self._sweep_at = _SWEEP_MIN  # when to forget the contexts closed by their users
        self._lock = threading.Lock()
        self._timer: _scheduler.Timer | None = None
        self._closed = False

    def create_context(self, session_id: str, **overrides: Any) -> SharedContext:
        """Create the context of a new session; ``SessionExistsError`` if it exists."""
        session_id = check_session_id(session_id)
        with self._lock:
            self._check_open()
            if self._live(session_id) is not None:
                raise SessionExistsError(
                    f"session {session_id!r} already exists: use get_context or "
                    "get_or_create, or destroy_context first"
                )
            return self._create(session_id, overrides)

    def get_context(self, session_id: str) -> SharedContext | None:
        """The session's context, or None if there is none (or it was closed)."""
        with self._lock:
            return self._live(session_id)

    def get_or_create(self, session_id: str) -> SharedContext:
        """The session's context, created with the defaults if needed (exactly once)."""
        session_id = check_session_id(session_id)
        with self._lock:
            self._check_open()
            context = self._live(session_id)  # not `or`: an empty context is falsy
            return self._create(session_id, {}) if context is None else context

    def destroy_context(self, session_id: str) -> bool:
        """Destroy a session's context and data; False if there was none."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.context.destroy()
        return True

    def sessions(self) -> list[str]:
        """The ids of the live sessions, sorted."""
        with self._lock:
            return sorted(sid for sid in list(self._sessions) if self._live(sid) is not None)

    def close(self) -> None:
        """Close every session's context and stop the idle check. Idempotent."""
        for context in self._close_all():
            context.close()
        if self._owns_backend:
            self._backend.close()

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close`, for asyncio code (it closes the contexts'
        connections of this event loop)."""
        for context in self._close_all():
            await context.aclose()
        if self._owns_backend:
            await self._backend.aclose()

    def _close_all(self) -> list[SharedContext]:
        with self._lock:
            self._closed = True
            sessions, self._sessions = list(self._sessions.values()), {}
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        return [session.context for session in sessions]

    def __repr__(self) -> str:
        return f"<ContextManager sessions={len(self._sessions)}>"

    # -- internals (the caller holds the lock) ---------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ContextClosedError("this ContextManager is closed")

    def _live(self, session_id: str) -> SharedContext | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.context.closed:  # closed by its user: forget it
            del self._sessions[session_id]
            return None
        return session.context

    def _create(self, session_id: str, overrides: dict[str, Any]) -> SharedContext:
        if len(self._sessions) >= self._sweep_at:  # amortized O(1) per session
            closed = [sid for sid, session in self._sessions.items() if session.context.closed]
            for sid in closed:
                del self._sessions[sid]
            self._sweep_at = max(_SWEEP_MIN, 2 * len(self._sessions))
        context = SharedContext(session_id, **{**self._options, **overrides})
        self._sessions[session_id] = _Session(context, self._clock())
        if self._idle_ttl is not None and self._timer is None and self._timed:
            self._schedule_idle_check()
        return context

    def _schedule_idle_check(self) -> None:
        assert self._idle_ttl is not None
        self._timer = _scheduler.call_method_at(
            time.monotonic() + self._idle_ttl / 2, self.close_idle
        )

    def close_idle(self) -> list[str]:
        """Close the sessions idle for ``session_idle_ttl`` as of now; their ids.

        A timer calls it every half ``session_idle_ttl``; with an injected ``clock``
        there is no timer (the clock moves only when a test says so): call it then.
        A session counts as idle from the first check that finds it unused.
        """
        now = self._clock()
        idle: list[SharedContext] = []
        with self._lock:
            self._timer = None
            if self._closed or self._idle_ttl is None:
                return []
            for session_id, session in list(self._sessions.items()):
                context = session.context
                if context.closed:
                    del self._sessions[session_id]
                    continue
                activity = context.activity
                if activity != session.last_activity:
                    session.last_activity, session.idle_since = activity, now
                elif now - session.idle_since >= self._idle_ttl:
                    del self._sessions[session_id]
                    idle.append(context)
            if self._sessions and self._timed:
                self._schedule_idle_check()
        for context in idle:
            context.close()
        return [context.session_id for context in idle]


context_manager = ContextManager()
"""A process-wide default manager, for convenience; nothing depends on it."""
