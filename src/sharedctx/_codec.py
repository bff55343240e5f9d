"""Values to stored bytes and back: the :class:`Codec` a context owns.

A context turns every value into bytes with its codec before a store sees it, and
every entry read back decodes its value through the codec that wrote it
(``ContextEntry.codec``): in entries, in events, in exports and in ``get_or_set``
results, on every backend. The default, :class:`MsgpackCodec`, is a msgpack snapshot
(msgspec, never pickle) with the ``max_entry_bytes`` check; a backend may wrap it
when a session is opened (sealed sessions), which is the seam for encryption,
compression or a serializer of one's own. See ``docs/architecture.md``.

Reads with ``type=`` convert the decoded value with pydantic (models, dataclasses,
TypedDicts, builtins) or msgspec (Structs), and report a mismatch as ``SchemaError``.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import msgspec

from sharedctx._errors import (
    KeyUnavailableError,
    SchemaError,
    SerializationError,
    ValueTooLargeError,
)

__all__ = ["MSGPACK", "Codec", "MsgpackCodec", "convert", "type_name"]


class Codec(Protocol):
    """Turns a key's value into the bytes a store keeps, and back.

    ``encode`` raises ``SerializationError`` for a value it cannot encode and
    ``ValueTooLargeError`` for one over its size limit, before anything is stored.
    ``decode`` gives a new, independent copy of the value on every call and raises a
    ``ContextError`` naming the key for bytes it cannot read. Both may use ``key``
    (a sealing codec binds each value to its key). Codecs compare equal when they
    read the same bytes the same way (entries compare their codecs).
    """

    def encode(self, key: str, value: Any) -> bytes:
        """The stored bytes of ``value`` under ``key``."""

    def decode(self, key: str, data: bytes) -> Any:
        """A new copy of the value that ``encode`` turned into ``data``."""


def _enc_hook(obj: Any) -> Any:
    # pydantic models are encoded as their python-mode dump (datetimes stay datetimes).
    if hasattr(type(obj), "__pydantic_fields__"):
        return obj.model_dump()
    raise TypeError(
        f"values of type {type(obj).__module__}.{type(obj).__qualname__} are not supported "
        "(use builtins, dataclasses, pydantic models, msgspec Structs, datetime, date, "
        "UUID, Decimal or Enum)"
    )


_encode = msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode
_decode = msgspec.msgpack.Decoder().decode


class MsgpackCodec:
    """Values as msgpack snapshots, at most ``max_entry_bytes`` each (the default codec).

    Builtins, dataclasses, pydantic models, msgspec Structs, datetime, date, UUID,
    Decimal and Enum can be stored; they read back as builtins (an aware datetime
    stays a datetime). What is stored is a snapshot: a caller's later change to its
    object never reaches the store, and every read decodes a new copy.
    """

    __slots__ = ("max_entry_bytes",)

    def __init__(self, max_entry_bytes: int = 102400) -> None:
        self.max_entry_bytes = max_entry_bytes

    def encode(self, key: str, value: Any) -> bytes:
        """The msgpack bytes of ``value``; ``SerializationError`` or
        ``ValueTooLargeError`` (naming ``key``) if it cannot be stored."""
        try:
            data = _encode(value)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise SerializationError(
                f"cannot store the value for key {key!r}: {_reason(exc)}"
            ) from None
        if len(data) > self.max_entry_bytes:
            raise ValueTooLargeError(key, len(data), self.max_entry_bytes)
        return data

    def decode(self, key: str, data: bytes) -> Any:
        """A new copy of the value; ``SerializationError`` if ``data`` is not msgpack."""
        try:
            return _decode(data)
        except msgspec.DecodeError:
            if data[:1] == b"\xc1":  # never msgpack: a sealed value (see _sealed)
                raise KeyUnavailableError(
                    f"the value of key {key!r} is sealed: it opens only in a context "
                    "with the session's key ring (keyring=...)"
                ) from None
            raise SerializationError(
                f"the stored value of key {key!r} is not msgpack written by "
                "sharedctx; it is left as it is and not decoded any other way"
            ) from None

    # Every MsgpackCodec reads the same bytes the same way: the size limit only
    # bounds what it writes.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, MsgpackCodec)

    def __hash__(self) -> int:
        return hash(MsgpackCodec)

    def __repr__(self) -> str:
        return f"MsgpackCodec(max_entry_bytes={self.max_entry_bytes})"


MSGPACK = MsgpackCodec()
"""The default codec (``max_entry_bytes`` 100 KiB)."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OverflowError):
        return "an int is outside the 64-bit range msgpack can hold"
    if isinstance(exc, RecursionError):
        return "the value is nested too deeply (or refers to itself)"
    return str(exc)


def type_name(type_: Any) -> str:
    """A short readable name for a type or type expression."""
    return getattr(type_, "__name__", None) or repr(type_)


def convert(key: str, value: Any, type_: Any) -> Any:
    """Convert a decoded ``value`` into ``type_``; raise ``SchemaError`` naming ``key``."""
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return _convert_msgspec(key, value, type_)
    adapter = _adapter(type_)
    if adapter is None:
        return _convert_msgspec(key, value, type_)
    from pydantic import ValidationError

    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        errors = [
            (".".join(str(part) for part in error["loc"]), error["msg"]) for error in exc.errors()
        ]
        raise SchemaError(key, type_name(type_), errors) from None


def _convert_msgspec(key: str, value: Any, type_: Any) -> Any:
    try:
        return msgspec.convert(value, type_, strict=False)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `")
        path = path.rstrip("`").removeprefix("$").lstrip(".")
        raise SchemaError(key, type_name(type_), [(path, message)]) from None


@functools.lru_cache(maxsize=512)
def _adapter(type_: Any) -> Any:
    """A cached pydantic TypeAdapter for ``type_``, or None if pydantic cannot handle it
    (msgspec Structs, or ``typing.TypedDict`` before Python 3.12): msgspec does those.
    """
    from pydantic import PydanticSchemaGenerationError, PydanticUserError, TypeAdapter

    try:
        return TypeAdapter(type_)
    except (PydanticSchemaGenerationError, PydanticUserError):
        return None
