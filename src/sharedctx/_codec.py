"""Values to bytes and back: msgpack (msgspec), never pickle.

A context stores the encoded bytes, so what is stored is a snapshot that no caller
can change afterwards, and its encoded size is what ``max_entry_bytes`` limits. An
immutable scalar (str, int, float, bool, bytes) is kept as it is instead: it needs
neither a copy nor decoding.

Reads with ``type=`` convert the decoded value with pydantic (models, dataclasses,
TypedDicts, builtins) or msgspec (Structs), and report a mismatch as ``SchemaError``.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from sharedctx._errors import SchemaError, SerializationError, ValueTooLargeError

__all__ = ["convert", "decode", "encode", "encode_plain", "type_name"]

_SCALARS = frozenset({str, int, float, bool, bytes})


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
decode = msgspec.msgpack.Decoder().decode
"""Decode bytes written by :func:`encode` into builtin Python values."""


def encode_plain(plain: Any) -> bytes:
    """Encode a plain value (one that :func:`encode` returned as ``plain``)."""
    return _encode(plain)


def encode(key: str, value: Any, max_bytes: int) -> tuple[bytes, Any]:
    """Encode ``value`` for ``key``; return ``(data, plain)``.

    ``plain`` is the value itself when it is an immutable scalar (what decoding
    ``data`` gives), else None.
    Raises ``SerializationError`` or ``ValueTooLargeError``; nothing else changes.
    """
    try:
        data = _encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise SerializationError(
            f"cannot store the value for key {key!r}: {_reason(exc)}"
        ) from None
    if len(data) > max_bytes:
        raise ValueTooLargeError(key, len(data), max_bytes)
    # Immutable scalars need no copy; containers are decoded afresh on every read
    # (measured: keeping a dict copy beside the bytes made set slower and entries
    # bigger by more than it made get faster).
    return data, value if value.__class__ in _SCALARS else None


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
