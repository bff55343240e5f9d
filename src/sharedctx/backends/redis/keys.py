"""The layout of a session on Redis: the names of its keys and its channel.

A session's keys are ``<namespace>:{<session>}:<part>``: the braces make the
session's id the hash tag, so all of them live in one cluster slot and one function
call can touch them all. The id is escaped so that the hash tag is exactly it.
"""

from __future__ import annotations

import re

__all__ = ["SUFFIXES", "meta_pattern", "session_keys", "session_of_meta_key"]

SUFFIXES = (
    "meta", "entries", "index", "deadlines", "recency", "tags", "events", "values",
    "requests", "leases", "history", "aging", "channel",
)  # fmt: skip
"""The last parts of a session's keys, in the order the script takes them; the last
one names the session's sharded pub/sub channel (not a key)."""


def _escape_session(session_id: str) -> str:
    # Injective, and free of braces, so that the hash tag is exactly the session.
    return session_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


_ESCAPED = re.compile("%(25|7B|7D)")
_UNESCAPE = {"25": "%", "7B": "{", "7D": "}"}


def session_keys(namespace: str, session_id: str) -> list[bytes]:
    """The Redis keys of a session, in the order the script takes them, then its
    channel (all in one cluster slot: they share the session's hash tag)."""
    base = f"{namespace}:{{{_escape_session(session_id)}}}:"
    return [(base + suffix).encode() for suffix in SUFFIXES]


def meta_pattern(namespace: str) -> str:
    """The ``SCAN MATCH`` pattern of every session's meta key in ``namespace``."""
    return f"{namespace}:{{*}}:meta"


def session_of_meta_key(namespace: str, key: bytes) -> str | None:
    """The session whose meta key is ``key``, or None if it is not one."""
    text = key.decode("utf-8", "replace")
    head, tail = f"{namespace}:{{", "}:meta"
    if not (text.startswith(head) and text.endswith(tail)) or len(text) < len(head + tail):
        return None
    escaped = text[len(head) : -len(tail)]
    if "{" in escaped or "}" in escaped:
        return None
    return _ESCAPED.sub(lambda match: _UNESCAPE[match.group(1)], escaped)
