"""Redis URLs: what they point at, checked strictly, and shown without passwords."""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

from sharedctx._errors import InvalidArgumentError

__all__ = ["SCHEMES", "Target", "check_url", "redact"]

SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


class Target(NamedTuple):
    """Where a URL points: one server (its URL for redis-py) or a cluster's startup
    nodes, with the connection options the URL gives."""

    cluster: bool
    url: str
    """For one server: the URL as redis-py reads it."""
    nodes: list[tuple[str, int]]
    """For a cluster: the startup nodes."""
    options: dict[str, Any]
    """For a cluster: username, password, ssl."""


def redact(url: str) -> str:
    """``url`` with any password (``:pw@``, or ``?password=``) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed: redact whatever looks like user:password@
        return re.sub(r"(//[^/@]*?):[^/]*@", r"\1:***@", url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}")
    query = [
        f"{name}=***" if name.lower() == "password" else f"{name}={value}"
        for name, _, value in (item.partition("=") for item in parts.query.split("&") if item)
    ]
    return urlunsplit(parts._replace(query="&".join(query)))


def check_url(url: object) -> Target:
    """Where ``url`` points, if it is a Redis URL redis-py will read as written; else
    ``InvalidArgumentError`` naming the bad part (with the password redacted).

    redis-py ignores some mistakes silently (``redis://h/abc`` is database 0); here
    they are errors. ``redis+cluster://h1:p1,h2:p2`` (``rediss+cluster://`` for TLS)
    names a Redis Cluster by some of its nodes.
    """
    if not isinstance(url, str):
        raise InvalidArgumentError(f"a Redis URL must be a str, not {type(url).__name__}")
    shown = redact(url)
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in SCHEMES:
        raise InvalidArgumentError(
            f"a Redis URL starts with redis://, rediss://, unix:// or redis+cluster://, "
            f"not {shown!r}"
        )
    if scheme.endswith("+cluster"):
        return _cluster_target(scheme, rest, shown)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidArgumentError(f"bad Redis URL {shown!r}: {exc}") from None
    if parts.scheme == "unix":
        if not parts.path:
            raise InvalidArgumentError(f"bad Redis URL {shown!r}: no socket path")
        return Target(False, url, [], {})
    if not parts.hostname:
        raise InvalidArgumentError(f"bad Redis URL {shown!r}: no host")
    if port == 0:
        raise InvalidArgumentError(f"bad Redis URL {shown!r}: port 0")
    _check_database(parts.path, shown)
    return Target(False, url, [], {})


def _check_database(path: str, shown: str, *, cluster: bool = False) -> None:
    database = path.strip("/")
    if database and not (database.isascii() and database.isdigit()):
        raise InvalidArgumentError(
            f"bad Redis URL {shown!r}: the database must be a number, not {database!r}"
        )
    if cluster and database not in ("", "0"):
        raise InvalidArgumentError(
            f"bad Redis URL {shown!r}: a Redis Cluster has database 0 only, not {database}"
        )


def _cluster_target(scheme: str, rest: str, shown: str) -> Target:
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    options: dict[str, Any] = {"ssl": scheme == "rediss+cluster"}
    if at:
        user, colon, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if colon:
            options["password"] = unquote(password)
    nodes = []
    for node in hosts.split(","):
        host, colon, port = node.rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgumentError(
                f"bad Redis URL {shown!r}: each node is host:port, not {node!r}"
            )
        nodes.append((host, int(port)))
    _check_database(path, shown, cluster=True)
    if query:
        raise InvalidArgumentError(
            f"bad Redis URL {shown!r}: a cluster URL takes no query ({query.split('=')[0]}=)"
        )
    return Target(True, "", nodes, options)
