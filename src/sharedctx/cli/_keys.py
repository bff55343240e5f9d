"""The CLI's sealed sessions: the key ring, and ``keygen``, ``rekey`` and ``acl``.

    sharedctx keygen
    sharedctx rekey --backend URL [--keys-file PATH]   (status 1 if a session could not be)
    sharedctx acl NAMESPACE [--user NAME] [--load-library --backend ADMIN_URL]

Every command that opens a backend takes the key ring from ``--keys-file PATH`` or
``$SHAREDCTX_KEYS`` (``id:key,id:key``, the first seals); ``inspect``, ``watch`` and
``export`` then show the values, and without it the metadata with ``(sealed)`` where
each value would be. A key never reaches the terminal except from ``keygen``.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import msgspec

from sharedctx import (
    ContextEntry,
    ContextError,
    InvalidArgumentError,
    KeyRing,
    KeyUnavailableError,
    SharedContext,
    printable,
)
from sharedctx.backends import Backend

__all__ = ["SEALED", "add_commands", "add_keys_option", "exported", "keyring", "load", "shown"]

SEALED = "(sealed)"
"""What the CLI shows in place of a value it has no key for."""
ENVIRONMENT = "SHAREDCTX_KEYS"

_ring: KeyRing | None = None

# What a sharedctx user needs on Redis, found by running (tests/backends/redis/
# test_acl.py runs the data path, the watches and the per-session admin calls as a
# user with only these): the function and the commands it calls, the sharded
# channels (and how many listen to one: a user without PUBSUB SHARDNUMSUB still works,
# its changes always published), and EXISTS, PTTL, DEL (has_session,
# session_summary, delete). Not SCAN:
# it would list every namespace's keys, so `sessions` and `prune` are an admin's.
# Nor FUNCTION LOAD: the library is loaded by an admin (a user who may load one may
# replace what every user runs).
ACL_COMMANDS = (
    "+fcall", "+ssubscribe", "+sunsubscribe", "+ping", "+exists", "+pttl", "+del", "+hdel",
    "+hget", "+hincrby", "+hlen", "+hmget", "+hscan", "+hset", "+pexpireat", "+pexpiretime",
    "+pubsub|shardnumsub", "+spublish", "+time", "+xadd", "+xlen", "+xrange", "+xtrim",
    "+zadd", "+zcard", "+zcount", "+zrange", "+zrangebylex", "+zrangebyscore", "+zrem",
    "+zscore",
)  # fmt: skip
"""The commands of ``sharedctx acl``; a cluster client needs ``CLUSTER_COMMANDS`` too
(redis-py reads the slot map and the commands table), found the same way."""
CLUSTER_COMMANDS = ("+cluster|slots", "+command")


def add_keys_option(parser: argparse.ArgumentParser) -> None:
    """``--keys-file PATH`` (else ``$SHAREDCTX_KEYS``) on a command that opens a backend."""
    parser.add_argument(
        "--keys-file",
        metavar="PATH",
        help=f"the key ring of sealed sessions: id:key pairs (default ${ENVIRONMENT})",
    )


def load(args: argparse.Namespace) -> None:
    """Read the command's key ring, if it has one (``--keys-file``, ``$SHAREDCTX_KEYS``)."""
    global _ring
    path = getattr(args, "keys_file", None)
    _ring = None
    if path is None and not os.environ.get(ENVIRONMENT):
        return
    try:
        _ring = KeyRing.from_file(path) if path is not None else KeyRing.from_env(ENVIRONMENT)
    except ImportError as exc:
        raise InvalidArgumentError(str(exc)) from None


def keyring() -> KeyRing | None:
    """The command's key ring (None: it has none)."""
    return _ring


def shown(entry: ContextEntry) -> Any:
    """An entry's value, or ``(sealed)`` without the key to it."""
    try:
        return entry.value
    except KeyUnavailableError:
        return SEALED


def exported(context: SharedContext, pattern: str) -> Iterator[dict[str, Any]]:
    """``context.export(pattern)``, with ``(sealed)`` and ``"sealed": true`` in place of
    each value the context has no key for (``import`` refuses those records)."""
    after: str | None = None
    while True:
        entries = context.find_by_pattern(pattern, limit=1000, after=after)
        now = datetime.now(UTC).timestamp()
        for entry in entries:
            value = shown(entry)
            record = {
                "key": entry.key,
                "value": value if value is SEALED else msgspec.to_builtins(value),
                "source": entry.source,
                "tags": list(entry.tags),
                "version": entry.version,
                "ttl": None if entry.expires is None else max(0.001, round(entry.expires - now, 3)),
            }
            if value is SEALED:
                record["sealed"] = True
            yield record
        if len(entries) < 1000:
            return
        after = entries[-1].key


def refuse_sealed(records: Iterable[dict[str, Any]]) -> None:
    """Refuse records exported without the key ring: their values are not there."""
    for number, record in enumerate(records, start=1):
        if isinstance(record, dict) and record.get("sealed") is True:
            raise InvalidArgumentError(
                f"record {number} was exported from a sealed session without its key ring: "
                "its value is not in it; export again with the key ring"
            )


def add_commands(
    commands: Any,
    backend_option: Callable[[argparse.ArgumentParser], None],
    shared_backend: Callable[[str], AbstractContextManager[Backend]],
) -> None:
    """Register ``keygen``, ``rekey`` and ``acl`` on the command line's subparsers."""
    keygen = commands.add_parser("keygen", help="print a new key for a key ring")
    keygen.set_defaults(run=_keygen)
    rekey = commands.add_parser(
        "rekey", help="rewrap every sealed session's data key by the ring's first key"
    )
    backend_option(rekey)
    rekey.set_defaults(run=lambda args, console: _rekey(args, shared_backend))
    acl = commands.add_parser(
        "acl", help="print the Redis ACL SETUSER rule of a user limited to one namespace"
    )
    acl.add_argument("namespace")
    acl.add_argument("--user", help="the user's name (default sharedctx-NAMESPACE)")
    acl.add_argument(
        "--load-library",
        action="store_true",
        help="also load sharedctx's function library on every master of --backend (as an "
        "admin: the user may not load it)",
    )
    backend_option(acl)
    acl.set_defaults(run=lambda args, console: _acl(args, shared_backend))


def _keygen(args: argparse.Namespace, console: Any) -> int:
    print(KeyRing.generate_key())
    return 0


def _rekey(
    args: argparse.Namespace, shared_backend: Callable[[str], AbstractContextManager[Backend]]
) -> int:
    ring = keyring()
    if ring is None:
        raise InvalidArgumentError(
            f"rekey needs the key ring: --keys-file PATH or ${ENVIRONMENT}, the new key first"
        )
    with shared_backend(args.backend) as backend:
        rekey = getattr(backend, "rekey_session", None)
        sessions = getattr(backend, "sessions", None)
        if rekey is None or sessions is None:
            raise InvalidArgumentError(
                f"{backend!r} cannot rekey its sessions: rekey the sessions of a Redis or "
                "Redis Cluster backend (--backend redis://... or redis+cluster://...)"
            )
        found = sessions()
        rekeyed, failed = 0, 0
        for session in found:  # each on its own: one that fails stops none of the others
            try:
                rekeyed += bool(rekey(session))
            except ContextError as error:
                failed += 1
                print(f"sharedctx: error: {printable(str(error))}", file=sys.stderr)
    print(
        f"rewrapped the data keys of {rekeyed} of {len(found)} session(s) by key {ring.key_id!r}"
        + (f"; {failed} could not be rewrapped (above)" if failed else "")
    )
    return 1 if failed else 0


_NAMESPACE = re.compile(r"[A-Za-z0-9_-]+")


def acl_rule(namespace: str, user: str, password: str) -> str:
    """The ``ACL SETUSER`` rule of a user that may use sharedctx on ``namespace`` only."""
    if not _NAMESPACE.fullmatch(namespace):
        raise InvalidArgumentError(f"namespace must be letters, digits, - or _: {namespace!r}")
    if not _NAMESPACE.fullmatch(user):
        raise InvalidArgumentError(f"a user name is letters, digits, - or _: {user!r}")
    return f"ACL SETUSER {user} reset on >{password} ~{namespace}:* &{namespace}:* " + " ".join(
        ACL_COMMANDS + CLUSTER_COMMANDS
    )


def _acl(
    args: argparse.Namespace, shared_backend: Callable[[str], AbstractContextManager[Backend]]
) -> int:
    user = args.user or f"sharedctx-{args.namespace}"
    print(acl_rule(args.namespace, user, secrets.token_urlsafe(24)))
    if args.load_library:
        with shared_backend(args.backend) as backend:
            load = getattr(backend, "load_library", None)
            if load is None:
                raise InvalidArgumentError(f"{backend!r} has no function library to load")
            loaded = load()
        print(f"loaded the function library on {loaded} master(s)", file=sys.stderr)
    return 0
