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
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sharedctx import InvalidArgumentError

__all__ = ["KeyEncoding"]

_SEPARATOR = "/"
_ESCAPED = "%/*?[]\\"
_ENCODE = str.maketrans({char: f"%{ord(char):02X}" for char in _ESCAPED})
_ESCAPE = re.compile("%([0-9A-F]{2})")
_GLOB = frozenset("*?[]\\")


def _decode(part: str) -> str:
    return _ESCAPE.sub(lambda match: chr(int(match[1], 16)), part)


class KeyEncoding:
    """The keys of one store: ``key_prefix`` and the encoding above (pure, no I/O)."""

    __slots__ = ("key_prefix",)

    def __init__(self, key_prefix: str) -> None:
        if not isinstance(key_prefix, str) or not key_prefix:
            raise InvalidArgumentError(f"key_prefix must be a non-empty str, not {key_prefix!r}")
        if _GLOB.intersection(key_prefix):
            raise InvalidArgumentError(
                f"key_prefix {key_prefix!r} must not contain a glob metacharacter (*?[]\\)"
            )
        self.key_prefix = key_prefix

    def prefix(self, namespace: Sequence[str]) -> str:
        """The literal prefix of every key in ``namespace`` and in the namespaces below it."""
        return self.key_prefix + "".join(
            label.translate(_ENCODE) + _SEPARATOR for label in namespace
        )

    def key(self, namespace: Sequence[str], key: str) -> str:
        """The sharedctx key of item ``key`` in ``namespace``."""
        return self.prefix(namespace) + key.translate(_ENCODE)

    def pattern(self, namespace: Sequence[str]) -> str:
        """The glob pattern of every key in ``namespace`` and below it."""
        return self.prefix(namespace) + "*"

    def decode(self, key: str) -> tuple[tuple[str, ...], str] | None:
        """``(namespace, key)`` of a sharedctx key, or None if it is not under the prefix."""
        if not key.startswith(self.key_prefix):
            return None
        *labels, item_key = key[len(self.key_prefix) :].split(_SEPARATOR)
        return tuple(_decode(label) for label in labels), _decode(item_key)
