"""The retry policy of a call: whether a failed attempt is sent again, and the error
the caller gets if not (no I/O: the call loop in ``calls.py`` asks it)."""

from __future__ import annotations

from typing import Protocol

from sharedctx._errors import BackendUnavailableError, OutcomeUnknownError

__all__ = ["Attempts", "Attempted", "unavailable"]


class Attempted(Protocol):
    """What the policy needs to know of a call."""

    writes: bool
    """Whether it may change the session (then a lost reply is an unknown outcome)."""
    key: str | None
    """The key it writes, for the message."""


class Attempts:
    """Whether a call whose attempt failed is sent again, and the error if not.

    A call is sent again, with the same request id, while its deadline has not
    passed: at once after a connection that failed before the call was sent, after
    a short pause once it may have been sent. A write that may have reached the
    server and whose outcome could not be learned raises ``OutcomeUnknownError``;
    anything else that never got through raises ``BackendUnavailableError`` (nothing
    was changed).
    """

    PAUSES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)

    def __init__(self, operation: Attempted, deadline: float, where: str) -> None:
        self.operation = operation
        self.deadline = deadline
        self.where = where
        self.sent = False  # an attempt may have reached the server
        self.failures = 0
        self.loads = 0  # times the script was loaded again (NOSCRIPT)

    def failed(self, error: BaseException, *, sent: bool, now: float) -> float:
        """The pause before the next attempt; raises the error for the caller when the
        call is not sent again."""
        self.sent = self.sent or sent
        self.failures += 1
        if not sent and not self.sent and self.failures > 1:
            raise self.error(error)  # the server refuses connections: fail fast
        pause = self.PAUSES[min(self.failures - 1, len(self.PAUSES) - 1)]
        if now + pause >= self.deadline:
            raise self.error(error)
        return pause

    def busy(self, error: BaseException, now: float) -> float:
        """The pause before trying again a call that did not run because the cluster is
        changing (a slot moving, a failover); raises when the deadline has passed."""
        self.failures += 1
        pause = self.PAUSES[min(self.failures - 1, len(self.PAUSES) - 1)]
        if now + pause >= self.deadline:
            raise self.error(error)
        return pause

    def error(self, error: BaseException) -> BackendUnavailableError:
        """The error for a call that is not sent again."""
        if self.sent and self.operation.writes:
            what = (
                "the write"
                if self.operation.key is None
                else f"the write of {self.operation.key!r}"
            )
            return OutcomeUnknownError(
                f"Redis at {self.where} did not answer in time: {what} may or may not "
                f"have been applied (at most once); read the key's version to know "
                f"({error})",
                self.operation.key,
            )
        return unavailable(self.where, error)


def unavailable(where: str, error: BaseException) -> BackendUnavailableError:
    """The error for a call that did not get through: nothing was changed."""
    if "CERTIFICATE_VERIFY_FAILED" in str(error):
        return BackendUnavailableError(
            f"Redis at {where}: its TLS certificate does not verify, so nothing was sent "
            f"({error}); trust its CA with ?ssl_ca_certs=/path/to/ca.pem in the URL (or "
            "ssl_ca_certs= on RedisBackend)"
        )
    return BackendUnavailableError(
        f"Redis at {where} is unavailable ({str(error).rstrip('.')}): check that the server "
        "is running and reachable there"
    )
