"""The exceptions sharedctx raises.

Every error is a :class:`ContextError`. Errors about a bad argument are also
``ValueError`` (or ``TypeError`` for a value that cannot be encoded), so code that
catches the builtin Python expects keeps working. Messages name the key and what was
wrong with it.

::

    ContextError
    ├── InvalidArgumentError (ValueError)
    │   ├── InvalidKeyError
    │   ├── InvalidPatternError
    │   └── InvalidTTLError
    ├── ValueTooLargeError (ValueError)
    ├── SchemaError (ValueError)
    ├── SerializationError (TypeError)
    ├── VersionConflictError
    ├── CapacityError
    ├── ContextClosedError
    ├── WatchOverflowError
    ├── HistoryCompactedError
    ├── SessionExistsError
    ├── BackendUnavailableError
    │   └── OutcomeUnknownError
    ├── SessionLostError
    ├── WaitTimeoutError (TimeoutError)
    ├── IntegrityError
    ├── KeyUnavailableError
    └── AccessDeniedError (PermissionError)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AccessDeniedError",
    "BackendUnavailableError",
    "CapacityError",
    "ContextClosedError",
    "ContextError",
    "HistoryCompactedError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidPatternError",
    "InvalidTTLError",
    "KeyUnavailableError",
    "OutcomeUnknownError",
    "SchemaError",
    "SerializationError",
    "SessionExistsError",
    "SessionLostError",
    "ValueTooLargeError",
    "VersionConflictError",
    "WaitTimeoutError",
    "WatchOverflowError",
]


class ContextError(Exception):
    """Base class of every error raised by sharedctx."""


class InvalidArgumentError(ContextError, ValueError):
    """An argument has the wrong type or value (a session id, a limit, a timeout...)."""


class InvalidKeyError(InvalidArgumentError):
    """A key or tag is not a non-empty ``str`` of at most 1024 characters."""


class InvalidPatternError(InvalidArgumentError):
    """A glob pattern is malformed: an unclosed ``[``, an empty ``[]``, a trailing ``\\``."""


class InvalidTTLError(InvalidArgumentError):
    """A TTL is not a finite number of seconds > 0, a ``timedelta``, or ``None``."""


class ValueTooLargeError(ContextError, ValueError):
    """A value's encoded size exceeds ``max_entry_bytes``. Nothing was stored."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        super().__init__(
            f"value for key {key!r} is {size} bytes encoded, over the limit of {limit} bytes: "
            "store less, or open the context with a larger max_entry_bytes="
        )
        self.key = key
        self.size = size
        self.limit = limit


class SchemaError(ContextError, ValueError):
    """A value does not fit the type or schema it was read or written with.

    ``errors`` lists ``(path, message)`` pairs, where ``path`` is the dotted location
    of the bad field inside the value (``""`` for the value itself).
    """

    def __init__(self, key: str, expected: str, errors: Sequence[tuple[str, str]]) -> None:
        details = "; ".join(f"{path or '<value>'}: {message}" for path, message in errors)
        super().__init__(f"value for key {key!r} does not fit {expected}: {details}")
        self.key = key
        self.expected = expected
        self.errors = list(errors)


class SerializationError(ContextError, TypeError):
    """A value cannot be encoded (an unsupported type, an int out of 64-bit range)."""


class VersionConflictError(ContextError):
    """A conditional write (``if_version``) found another version. Nothing was stored.

    ``actual`` is 0 when the key does not exist (or has expired).
    """

    def __init__(self, key: str, expected: int, actual: int, message: str | None = None) -> None:
        super().__init__(
            message or f"key {key!r} is at version {actual}, not the expected version {expected}"
        )
        self.key = key
        self.expected = expected
        self.actual = actual


class CapacityError(ContextError):
    """The context is full and its eviction policy is ``"reject"``. Nothing was stored."""


class ContextClosedError(ContextError):
    """The context was closed or destroyed; it can no longer be used."""


class WatchOverflowError(ContextError):
    """A watch fell more than ``max_pending`` events behind and was closed."""


class HistoryCompactedError(ContextError):
    """A read at a revision older than what the session still keeps of its history
    (``get(key, revision=...)``, ``snapshot(...)``, ``fork(...)``).

    ``oldest`` is the oldest revision still readable (for the key, or for the whole
    session), ``revision`` the one asked for, ``key`` the key read (None for a
    snapshot). A session keeps past versions by its ``history_versions`` and
    ``history_retention``, and none of a key that was deleted, evicted or expired.
    """

    def __init__(self, session_id: str, revision: int, oldest: int, key: str | None = None) -> None:
        what = (
            f"key {key!r} of session {session_id!r}"
            if key is not None
            else (f"session {session_id!r}")
        )
        super().__init__(
            f"revision {revision} of {what} is no longer kept: the oldest revision still "
            f"readable is {oldest} (past versions are kept by history_versions and "
            "history_retention, and go with their key when it is deleted, evicted or expires)"
        )
        self.session_id = session_id
        self.revision = revision
        self.oldest = oldest
        self.key = key


class SessionExistsError(ContextError):
    """A session that already exists was asked to be created: by ``create_context``,
    or as the new session of ``fork``."""


class BackendUnavailableError(ContextError):
    """The backend (a Redis server) could not be reached. Nothing was changed (a write
    whose outcome is unknown raises the subclass :class:`OutcomeUnknownError`)."""


class OutcomeUnknownError(BackendUnavailableError):
    """A write reached the backend, but its reply did not come back in time: it may
    or may not have been applied (once at most).

    The call was sent again with the same request id until ``socket_timeout``
    passed, so it was never applied twice. To learn what happened, read the key:
    its version (``get_entry(key).version``) or value tells whether the write landed.
    ``key`` names the key written (None for a call on several keys or none).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SessionLostError(ContextError):
    """The backend lost the session's data (a Redis server restarted empty).

    Raised once by the next call (and by each watch's next read); afterwards the
    context goes on with the now empty session.
    """


class WaitTimeoutError(ContextError, TimeoutError):
    """A wait (``wait_for``, ``wait_for_keys``, ``Watch.get``...) ran out of time.

    A ``TimeoutError`` too, so ``except TimeoutError`` keeps working. Nothing was
    changed. ``missing`` holds what a wait for named keys still lacked, sorted: the
    keys of ``wait_for_keys``, the ids of a typed family's ``wait_for`` (empty for a
    wait that counts, or waits for an event).
    """

    def __init__(self, message: str, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing: tuple[str, ...] = tuple(missing)


class IntegrityError(ContextError):
    """A sealed value does not open: a byte of it was changed, or it was sealed for
    another key or session (copied or swapped on the server). Nothing was changed;
    ``key`` names the key whose value it is (None for a session's data key)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class KeyUnavailableError(ContextError):
    """A sealed session's values cannot be opened or sealed here: it was opened without
    a key ring, or its data key is wrapped by a key the ring does not hold. Nothing was
    changed. ``session_id`` names the session and ``key_id`` the key it needs (None where
    unknown)."""

    def __init__(
        self, message: str, session_id: str | None = None, key_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.key_id = key_id


class AccessDeniedError(ContextError, PermissionError):
    """The server refused a call for lack of permission (a Redis ACL user that may not
    touch this namespace, or may not run a command sharedctx needs). Nothing was
    changed."""
