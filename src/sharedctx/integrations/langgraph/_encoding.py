"""How a LangGraph ``(namespace, key)`` becomes a sharedctx key, and back.

The key of item ``key`` in namespace ``(l1, ..., ln)`` is::

    <key_prefix><l1>/<l2>/.../<ln>/<key>

with ``%``, ``/`` and the glob metacharacters ``*?[]\\`` of each label and of the key
percent-encoded (``%25``, ``%2F``, ``%2A``, ``%3F``, ``%5B``, ``%5D``, ``%5C``). So no
label can contain the separator once encoded, the encoding is reversible (split at
``/``, decode each part), and the keys of a namespace and of every namespace below it
are exactly the keys that start with its literal prefix ``<key_prefix><l1>/.../<ln>/``.
An encoded key holds no glob metacharacter either, so that prefix followed by ``*`` is
a pattern that matches those keys and no others, and reads only their range.

A store meets the same few namespaces again and again: each namespace's prefix, and
the namespace of each prefix read back, is worked out once and kept (up to
``CACHE_SIZE`` of each; then they start again), so that an op costs a dictionary
look-up rather than a check, an encoding or a decoding of every label.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from sharedctx import InvalidArgumentError

__all__ = ["CACHE_SIZE", "KeyEncoding"]

CACHE_SIZE = 4096
"""Namespaces (and prefixes read back) a store keeps encoded (decoded), each."""

_SEPARATOR = "/"
_ESCAPED = "%/*?[]\\"
_ENCODE = str.maketrans({char: f"%{ord(char):02X}" for char in _ESCAPED})
_PLAIN = frozenset(_ESCAPED).isdisjoint
"""Whether a key needs no escape: a fifth of what ``translate`` takes on a short key."""
_ESCAPE = re.compile("%([0-9A-F]{2})")
_GLOB = frozenset("*?[]\\")


def _decode(part: str) -> str:
    if "%" not in part:
        return part
    return _ESCAPE.sub(lambda match: chr(int(match[1], 16)), part)


def _no_check(namespace: tuple[str, ...]) -> tuple[str, ...]:
    return namespace


class KeyEncoding:
    """The keys of one store: ``key_prefix`` and the encoding above (pure, no I/O).

    ``check`` is called on a namespace the first time it is encoded (it raises for a
    bad one); a namespace that was encoded before is known good. Safe from many
    threads (the caches are dictionaries, each step of theirs atomic).
    """

    __slots__ = ("_check", "_namespaces", "_prefixes", "key_prefix")

    def __init__(
        self,
        key_prefix: str,
        check: Callable[[tuple[str, ...]], tuple[str, ...]] = _no_check,
    ) -> None:
        if not isinstance(key_prefix, str) or not key_prefix:
            raise InvalidArgumentError(f"key_prefix must be a non-empty str, not {key_prefix!r}")
        if _GLOB.intersection(key_prefix):
            raise InvalidArgumentError(
                f"key_prefix {key_prefix!r} must not contain a glob metacharacter (*?[]\\)"
            )
        self.key_prefix = key_prefix
        self._check = check
        self._prefixes: dict[tuple[str, ...], str] = {}
        self._namespaces: dict[str, tuple[str, ...]] = {}

    def prefix(self, namespace: Sequence[str]) -> str:
        """The literal prefix of every key in ``namespace`` and in the namespaces below it
        (``check`` raises first for a bad namespace)."""
        try:
            return self._prefixes[namespace]  # type: ignore[index]
        except (KeyError, TypeError):  # new, or not a tuple of hashables: check it
            checked = self._check(namespace)  # type: ignore[arg-type]
        encoded = self.key_prefix + "".join(
            label.translate(_ENCODE) + _SEPARATOR for label in checked
        )
        prefixes = self._prefixes
        if len(prefixes) >= CACHE_SIZE:
            prefixes.clear()
        prefixes[checked] = encoded
        return encoded

    def key(self, namespace: Sequence[str], key: str) -> str:
        """The sharedctx key of item ``key`` in ``namespace``."""
        try:
            prefix = self._prefixes[namespace]  # type: ignore[index]
        except (KeyError, TypeError):
            prefix = self.prefix(namespace)
        return prefix + (key if _PLAIN(key) else key.translate(_ENCODE))

    def pattern(self, namespace: Sequence[str]) -> str:
        """The glob pattern of every key in ``namespace`` and below it."""
        return self.prefix(namespace) + "*"

    def decode(self, key: str) -> tuple[tuple[str, ...], str] | None:
        """``(namespace, key)`` of a sharedctx key, or None if it is not under the prefix."""
        if not key.startswith(self.key_prefix):
            return None
        cut = key.rfind(_SEPARATOR) + 1
        if cut <= len(self.key_prefix):  # no namespace (a "/" in key_prefix is not one)
            return (), _decode(key[len(self.key_prefix) :])
        return self.namespace(key[:cut]), _decode(key[cut:])

    def namespace(self, prefix: str) -> tuple[str, ...]:
        """The namespace whose :meth:`prefix` is ``prefix`` (a key's head up to and with
        its last ``/``, after ``key_prefix``)."""
        namespaces = self._namespaces
        namespace = namespaces.get(prefix)
        if namespace is None:
            if len(prefix) <= len(self.key_prefix):
                return ()
            labels = prefix[len(self.key_prefix) : -1].split(_SEPARATOR)
            namespace = tuple(map(_decode, labels))
            if len(namespaces) >= CACHE_SIZE:
                namespaces.clear()
            namespaces[prefix] = namespace
        return namespace
