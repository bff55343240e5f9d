"""How a call ended, as spans and metrics name it: its outcome and its error type.

An outcome is one of a few words, the same in the ``sharedctx.outcome`` attribute of
a span and the ``outcome`` label of ``sharedctx_operations_total``: ``ok``, ``hit``
and ``miss`` (a ``get``, and a ``get_at``: a read at a revision), or for a call that
raised ``conflict`` (``VersionConflictError``), ``outcome_unknown`` (a write that may
or may not have been applied), ``lost`` (the session's data was lost), ``timeout``,
``unavailable`` (the backend was not reached), ``full`` (``CapacityError``),
``overflow``, ``denied`` (``AccessDeniedError``: the server's ACL),
``key_unavailable`` and ``integrity`` (a sealed session's ``KeyUnavailableError`` and
``IntegrityError``), ``compacted`` (``HistoryCompactedError``: a revision no longer
kept), ``exists`` (``SessionExistsError``: a fork onto a session that exists),
``cancelled`` and ``error`` (anything else). The error type is the exception's
canonical name (``error.type`` of OpenTelemetry's conventions): ``sharedctx.`` and
the class name for the errors that ``sharedctx`` exports.
"""

from __future__ import annotations

import sys
from typing import Any

from sharedctx._errors import (
    AccessDeniedError,
    BackendUnavailableError,
    CapacityError,
    HistoryCompactedError,
    IntegrityError,
    KeyUnavailableError,
    OutcomeUnknownError,
    SessionExistsError,
    SessionLostError,
    VersionConflictError,
    WaitTimeoutError,
    WatchOverflowError,
)
from sharedctx.backends.ops import Get, GetAt, Operation

__all__ = ["OUTCOMES", "error_type", "failure", "outcome"]

_FAILURES: tuple[tuple[type[BaseException], str], ...] = (
    (VersionConflictError, "conflict"),
    (OutcomeUnknownError, "outcome_unknown"),  # before BackendUnavailableError, its base
    (SessionLostError, "lost"),
    (WaitTimeoutError, "timeout"),
    (BackendUnavailableError, "unavailable"),
    (CapacityError, "full"),
    (WatchOverflowError, "overflow"),
    (AccessDeniedError, "denied"),
    (KeyUnavailableError, "key_unavailable"),
    (IntegrityError, "integrity"),
    (HistoryCompactedError, "compacted"),
    (SessionExistsError, "exists"),
)

_READS = frozenset({Get, GetAt})

OUTCOMES = ("ok", "hit", "miss", *(name for _, name in _FAILURES), "cancelled", "error")
"""Every outcome, in the order above."""


def outcome(operation: Operation[Any] | None, result: object) -> str:
    """The outcome of a call that returned ``result``: ``hit`` or ``miss`` for a read
    of one key (as it is, or at a revision), else ``ok``."""
    if operation is not None and operation.__class__ in _READS:
        return "miss" if result is None else "hit"
    return "ok"


def failure(error: BaseException) -> str:
    """The outcome of a call that raised ``error``."""
    for kind, name in _FAILURES:
        if isinstance(error, kind):
            return name
    # asyncio is not imported for this (a light `import sharedctx`): a task can only
    # have been cancelled where it already is.
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and isinstance(error, asyncio.CancelledError):
        return "cancelled"
    return "error"


def error_type(error: BaseException) -> str:
    """The canonical name of ``error``'s type: ``sharedctx.VersionConflictError``,
    ``TimeoutError`` (a builtin), ``package.module.Class`` (anything else)."""
    kind = type(error)
    module = kind.__module__
    if module == "builtins":
        return kind.__qualname__
    if module == "sharedctx._errors":  # exported by sharedctx itself
        return f"sharedctx.{kind.__qualname__}"
    return f"{module}.{kind.__qualname__}"
