"""The call loop: sends a call of the function library to the node that serves it,
and tries again until its deadline, so that every call is made exactly once.

:class:`Caller` knows nothing of stores or sessions: it is given an operation's
packed command (``operations.Prefix`` and arguments) and returns the function's raw
reply. The function is called by name (its library loaded on a node that lacks it),
a write carries a request id, and an attempt whose reply is lost is sent again, same
id, until ``socket_timeout`` has passed (``retry.Attempts`` decides). On a cluster,
``MOVED``, ``ASK``, ``TRYAGAIN`` and ``CLUSTERDOWN`` are followed here. The loop is
written twice, for blocking and for asyncio I/O; everything it decides is in
:class:`_Call`. See ``docs/architecture.md``, "Exactly once on Redis".
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from contextlib import suppress
from importlib import resources
from typing import Any

import redis
import redis.asyncio

from sharedctx._errors import AccessDeniedError, ContextError
from sharedctx.backends.redis.operations import Operation, Prefix, pack
from sharedctx.backends.redis.retry import Attempts, unavailable
from sharedctx.backends.redis.servers import Address, ClusterServers, Servers

__all__ = ["FAILURES", "LIBRARY", "LIBRARY_CODE", "Caller"]

_TEXT = (resources.files("sharedctx.backends.redis") / "script.lua").read_bytes()
LIBRARY = b"sharedctx_" + hashlib.sha1(_TEXT).hexdigest()[:12].encode()
"""The name of the Redis Functions library (and of its one function) of this version."""
LIBRARY_CODE = _TEXT.replace(b"__LIBRARY__", LIBRARY)
FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
"""What a connection that failed raises."""
_MOVING = (
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ClusterError,
)  # a cluster changing under a call that did not run


class Caller:
    """Calls the function on the servers of one backend (see the module docstring).

    ``where`` names the servers in messages (the URL without its password); with
    ``durability="replicated"`` a write also waits for a replica to have it.
    Thread-safe; one per backend.
    """

    def __init__(
        self, servers: Servers, *, where: str, socket_timeout: float, durability: str
    ) -> None:
        self.servers = servers
        self.where = where
        self.socket_timeout = socket_timeout
        self.durability = durability

    def __str__(self) -> str:
        return self.where

    def call(self, operation: Operation[Any], prefix: Prefix, argv: list[Any]) -> list[Any]:
        """One call of the function: its raw reply."""
        call = _Call(self, operation, prefix, argv)
        while True:
            try:
                address = call.address()
                pool = self.servers.connections(address)
                connection = pool.take()
            except Exception as exc:
                time.sleep(call.failed(exc, sent=False))
                if call.stale_map:
                    self.refresh_slots()
                continue
            sent = False
            try:
                connection.send_packed_command([call.commands()])
                sent = True
                replies = [_reply(connection) for _ in range(call.replies)]
                return call.done(replies)
            except Exception as exc:
                if isinstance(exc, FAILURES):
                    connection.disconnect()
                time.sleep(call.failed(exc, sent=sent))
            finally:
                pool.give(connection)
            if call.stale_map:
                self.refresh_slots()

    async def acall(self, operation: Operation[Any], prefix: Prefix, argv: list[Any]) -> list[Any]:
        """Awaitable twin of :meth:`call`, on this event loop's connections."""
        call = _Call(self, operation, prefix, argv)
        while True:
            try:
                address = call.address()
                pool = self.servers.async_connections(address)
                connection = pool.take()
            except Exception as exc:
                await asyncio.sleep(call.failed(exc, sent=False))
                if call.stale_map:
                    await asyncio.to_thread(self.refresh_slots)
                continue
            sent = False
            try:
                await connection.send_packed_command([call.commands()])
                sent = True
                replies = [await _areply(connection) for _ in range(call.replies)]
                return call.done(replies)
            except Exception as exc:
                if isinstance(exc, FAILURES):
                    await connection.disconnect()
                await asyncio.sleep(call.failed(exc, sent=sent))
            finally:
                pool.give(connection)
            if call.stale_map:
                await asyncio.to_thread(self.refresh_slots)

    def refresh_slots(self) -> None:
        """Reload a cluster's slot map (a failed node, CLUSTERDOWN, a moved slot);
        errors are left for the next attempt to meet. Nothing to do for one server."""
        with suppress(redis.exceptions.RedisError, redis.exceptions.RedisClusterException):
            self.servers.refresh()

    def command(self, function: Callable[[redis.Redis], Any], key: bytes | None = None) -> Any:
        """Run ``function(client)`` for a plain command (admin, follower) on the node of
        ``key`` (or any node), with Redis errors turned into sharedctx's."""
        try:
            client = self.servers.client(self.servers.address(key if key is not None else b""))
            return function(client)
        except redis.exceptions.RedisError as exc:
            raise self.failure(exc) from None

    def failure(self, error: BaseException) -> ContextError:
        """The error for a failed plain command: ``BackendUnavailableError`` if the
        server could not be reached, else what it refused (password redacted)."""
        return self.failure_at(self.where, error)

    @staticmethod
    def failure_at(where: str, error: BaseException) -> ContextError:
        """:meth:`failure` for the servers at ``where``."""
        if isinstance(error, FAILURES + _MOVING) and not isinstance(
            error, redis.exceptions.AuthenticationError
        ):
            return unavailable(where, error)
        if _denied(error):
            return _access_denied(where, error)
        return ContextError(f"Redis at {where} refused the call: {error}")

    def refused(self, error: BaseException) -> ContextError:
        """The error for a call the server refused (a wrong password, no such
        database, out of memory, an ACL that does not allow it...)."""
        if _denied(error):
            return _access_denied(self.where, error)
        return ContextError(f"Redis at {self} refused the call: {error}")

    def new_connection(self, address: Address) -> Any:
        """A connection to a node of its own, outside the pools (a listener's)."""
        return self.servers.new_connection(address)


class _Call:
    """One call of the function, from attempt to attempt: what to send, to which node,
    and what a failure means (``retry.Attempts`` decides about the deadline).

    On a cluster, ``MOVED`` updates the slot map and goes to the new owner at once;
    ``ASK`` sends the next attempt to the migration's target, after ``ASKING``;
    ``TRYAGAIN`` (a slot half-moved), ``CLUSTERDOWN`` and a failed node are tried
    again after a pause, with the slot map reloaded where it may be stale. None of
    those ran the call, so they are tried again until the deadline. A node without the
    function library (a new, restarted or flushed one) is given it first.
    """

    def __init__(
        self,
        caller: Caller,
        operation: Operation[Any],
        prefix: Prefix,
        argv: list[Any],
    ) -> None:
        self.caller = caller
        self.operation = operation
        self.route = prefix.route
        self.command = prefix.command(argv)
        self.deadline = time.monotonic() + caller.socket_timeout
        self.attempts = Attempts(operation, self.deadline, caller.where)
        self.asking: tuple[str, int] | None = None  # the ASK target of the next attempt
        self.load = False  # load the function library before calling it
        self.waits = caller.durability == "replicated" and operation.writes
        self.stale_map = False  # the cluster's slot map must be reloaded
        self.replies = 0

    def address(self) -> Address:
        """The node of the next attempt."""
        self.stale_map = False
        if self.asking is not None:
            return self.asking
        return self.caller.servers.address(self.route)

    def commands(self) -> bytes:
        """The commands of the next attempt, sent together on one connection."""
        commands: list[bytes] = []
        if self.load:
            commands.append(pack(b"FUNCTION", b"LOAD", LIBRARY_CODE))
        if self.asking is not None:
            commands.append(pack(b"ASKING"))
        commands.append(self.command)
        if self.waits:  # on the connection that wrote: one replica has the write
            left = max(1, int((self.deadline - time.monotonic()) * 800))
            commands.append(pack(b"WAIT", 1, left))
        self.replies = len(commands)
        return b"".join(commands)

    def done(self, replies: list[Any]) -> list[Any]:
        """The function's reply, or raises what the attempt met."""
        if self.load:
            self.load = False
            loaded = replies.pop(0)
            if isinstance(loaded, Exception) and "already exists" not in str(loaded):
                raise loaded  # loaded meanwhile by another client: fine
        self.asking = None
        reply = replies[-2] if self.waits else replies[-1]
        for earlier in replies[: replies.index(reply)]:
            if isinstance(earlier, Exception):
                raise earlier
        if isinstance(reply, Exception):
            raise reply
        if self.waits and not replies[-1]:
            raise _NotReplicated(f"no replica acknowledged the write within {self.caller}")
        result: list[Any] = reply
        return result

    def failed(self, error: BaseException, *, sent: bool) -> float:
        """The pause before the next attempt; raises the caller's error if none."""
        now = time.monotonic()
        if _missing_library(error):
            self.attempts.loads += 1
            if self.attempts.loads > 3:  # a node that keeps forgetting it
                raise self.caller.refused(error) from None
            self.load = True
            return 0.0
        if isinstance(error, redis.exceptions.MovedError):
            self.caller.servers.moved(error)
            return self.attempts.busy(error, now)
        if isinstance(error, redis.exceptions.AskError):
            self.asking = (error.host, error.port)
            return self.attempts.busy(error, now)
        if isinstance(error, redis.exceptions.AuthenticationError):
            raise self.caller.refused(error) from None
        if isinstance(error, _MOVING):
            self.stale_map = isinstance(error, redis.exceptions.ClusterDownError)
            return self.attempts.busy(error, now)
        if isinstance(error, _NotReplicated):
            return self.attempts.failed(error, sent=True, now=now)
        if isinstance(error, (*FAILURES, redis.exceptions.SlotNotCoveredError)):
            if isinstance(self.caller.servers, ClusterServers):
                # A node that fails is being replaced (a failover): reload the slot
                # map and try again until the deadline, rather than fail fast.
                self.stale_map = True
                if not sent:
                    return self.attempts.busy(error, now)
            return self.attempts.failed(error, sent=sent, now=now)
        if isinstance(error, redis.exceptions.RedisError):
            raise self.caller.refused(error) from None
        raise error


class _NotReplicated(Exception):
    """A write no replica acknowledged in time (``durability="replicated"``)."""


def _denied(error: BaseException) -> bool:
    """Whether the server refused for lack of permission (ACL)."""
    return isinstance(error, redis.exceptions.NoPermissionError) or (
        isinstance(error, redis.exceptions.ResponseError) and "can't run this command" in str(error)
    )


def _access_denied(where: str, error: BaseException) -> AccessDeniedError:
    return AccessDeniedError(
        f"Redis at {where} denied the call: {str(error).splitlines()[0]} (an ACL user "
        "limited to one namespace: see `sharedctx acl NAMESPACE` for the rule it needs)"
    )


def _missing_library(error: BaseException) -> bool:
    """Whether ``error`` says the node lacks the function (nothing ran)."""
    return isinstance(error, redis.exceptions.ResponseError) and str(error).startswith(
        "Function not found"
    )


def _reply(connection: Any) -> Any:
    """The next reply on ``connection``; an error reply as its exception, not raised."""
    try:
        return connection.read_response()
    except redis.exceptions.ResponseError as exc:
        return exc


async def _areply(connection: Any) -> Any:
    """Awaitable twin of :func:`_reply`."""
    try:
        return await connection.read_response()
    except redis.exceptions.ResponseError as exc:
        return exc
