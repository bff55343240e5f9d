"""Sealed sessions: values encrypted before they leave the process.

A :class:`KeyRing` holds the key-encryption keys (the first seals, every one opens);
a :class:`KeyProvider` is the seam for a KMS or Vault doing the same. Each sealed
session has a data key of its own (256 random bits), kept by the backend only
wrapped (AES-256-GCM) by the provider's first key, bound to the session: a
*record*. A backend that seals a session wraps the context's codec in a
:class:`SealedCodec`: every value is encoded by the context's codec, then sealed
with AES-256-GCM under the session's data key, a fresh 96-bit nonce per seal, the
namespace, session id and key as associated data. :class:`SessionKeys` is what one
process knows of a session's data keys (shared by the stores of one session).

A sealed value is ``0xC1 0x01``, the data key's 8-byte id, the nonce, the
ciphertext and the 16-byte tag: 38 bytes more than the value. ``0xC1`` is never the
first byte of msgpack, so a plain codec tells a sealed value from its own.

``cryptography`` (the ``sealed`` extra) is imported when a key ring is made, never by
``import sharedctx``. No key is ever shown in a repr, an error or a log.
See ``docs/guides/sealed.md``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, runtime_checkable

from sharedctx._codec import Codec
from sharedctx._errors import IntegrityError, InvalidArgumentError, KeyUnavailableError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "SEALED",
    "KeyProvider",
    "KeyRing",
    "LockedCodec",
    "SealedCodec",
    "SessionKeys",
    "is_sealed",
    "record_key_id",
    "sealed_key_id",
]

SEALED = b"\xc1\x01"
"""The first bytes of a sealed value (0xC1: never msgpack; 0x01: the format)."""
_HEADER = len(SEALED) + 8  # marker, data key id
_NONCE = 12
_TAG = 16
_RECORD = 1  # the format of a record: 1, data key id, key id length, key id, wrapped
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _aesgcm() -> type[AESGCM]:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ModuleNotFoundError as exc:
        raise ImportError(
            "sealed sessions (KeyRing) need cryptography: pip install 'sharedctx[sealed]'"
        ) from exc
    return AESGCM


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps sessions' data keys by key id: the seam for a KMS or Vault
    (:class:`KeyRing` is the local one). ``context`` binds a wrapped data key to its
    session: a provider must refuse to unwrap it with another context."""

    @property
    def key_id(self) -> str:
        """The id of the key that wraps new data keys (and rewraps on ``rekey``)."""

    def holds(self, key_id: str) -> bool:
        """Whether it can unwrap what the key ``key_id`` wrapped."""

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        """``data_key`` wrapped by the first key: that key's id, and the wrapped bytes."""

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        """The data key that :meth:`wrap` wrapped; ``ValueError`` if it does not open."""


class KeyRing:
    """Key-encryption keys by id: the first seals, every one opens.

    ``KeyRing({"2026-12": key, "2026-06": older_key})``: each key is 32 bytes, or
    their URL-safe base64 (:meth:`generate_key` makes one); ids are letters, digits,
    ``.``, ``_`` and ``-``. To rotate, put a new key first, run ``rekey`` (every
    session's data key is rewrapped by it), then drop the old key. A ring never shows
    a key (``repr`` gives the ids) and is not pickled. Needs the ``sealed`` extra.
    """

    __slots__ = ("__weakref__", "_ciphers", "_ids")

    def __init__(self, keys: Mapping[str, bytes | str]) -> None:
        aesgcm = _aesgcm()
        if not isinstance(keys, Mapping) or not keys:
            raise InvalidArgumentError(
                "a KeyRing needs at least one key: KeyRing({'2026-12': key}) with a key "
                "from KeyRing.generate_key()"
            )
        ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
                raise InvalidArgumentError(
                    f"a key id is 1 to 64 letters, digits, '.', '_' or '-', not {key_id!r}"
                )
            ciphers[key_id] = aesgcm(_key_bytes(key_id, key))
        self._ids = tuple(ciphers)
        self._ciphers = ciphers

    @staticmethod
    def generate_key() -> str:
        """A new random 256-bit key, as URL-safe base64 text."""
        return base64.urlsafe_b64encode(os.urandom(32)).decode()

    @classmethod
    def from_env(cls, name: str = "SHAREDCTX_KEYS") -> KeyRing:
        """The ring in environment variable ``name``: ``id:base64,id:base64`` (first
        seals)."""
        text = os.environ.get(name)
        if not text or not text.strip():
            raise InvalidArgumentError(
                f"the environment variable {name} holds no keys: set it to id:key,id:key "
                "(a key from `sharedctx keygen`)"
            )
        return cls(_parse(text, f"${name}"))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyRing:
        """The ring in a file: ``id:base64`` pairs, separated by commas or lines."""
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise InvalidArgumentError(
                f"cannot read the key file {str(path)!r}: {reason}; give the path of a "
                "readable file of id:key lines"
            ) from None
        return cls(_parse(text, f"the key file {str(path)!r}"))

    @property
    def key_id(self) -> str:
        """The id of the first key: the one that seals."""
        return self._ids[0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the ring's keys, the first first."""
        return self._ids

    def holds(self, key_id: str) -> bool:
        """Whether the ring has the key ``key_id``."""
        return key_id in self._ciphers

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        """``data_key`` sealed by the first key (AES-256-GCM, ``context`` bound)."""
        nonce = os.urandom(_NONCE)
        return self._ids[0], nonce + self._ciphers[self._ids[0]].encrypt(nonce, data_key, context)

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        """The data key that :meth:`wrap` sealed; ``ValueError`` if it does not open."""
        from cryptography.exceptions import InvalidTag

        try:
            return self._ciphers[key_id].decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)
        except (InvalidTag, ValueError):
            raise ValueError("the wrapped data key does not open") from None

    def __repr__(self) -> str:
        return f"KeyRing({list(self._ids)!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a KeyRing is not pickled (that would write its keys out)")


def _key_bytes(key_id: str, key: bytes | str) -> bytes:
    if isinstance(key, str):
        text = key.strip()
        try:
            key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            key = b""
    if not isinstance(key, bytes | bytearray) or len(key) != 32:
        raise InvalidArgumentError(
            f"key {key_id!r} of the key ring is not 32 bytes (or their URL-safe base64): "
            "make one with KeyRing.generate_key() or `sharedctx keygen`"
        )
    return bytes(key)


def _parse(text: str, where: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for number, item in enumerate(re.split(r"[,\s]+", text.strip()), start=1):
        key_id, colon, key = item.partition(":")
        if not colon or not key_id or not key:
            raise InvalidArgumentError(
                f"item {number} of {where} is not id:key (the form is id:key,id:key)"
            )
        if key_id in keys:
            raise InvalidArgumentError(f"{where} names key {key_id!r} twice: give each key id once")
        keys[key_id] = key
    return keys


# -- a session's data keys ----------------------------------------------------------------


def _length_prefixed(*parts: str) -> bytes:
    out = bytearray()
    for part in parts:
        data = part.encode()
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


def record_key_id(record: bytes) -> str:
    """The id of the key that wrapped the data key of ``record``."""
    return record[10 : 10 + record[9]].decode()


def record_data_key_id(record: bytes) -> bytes:
    """The data key id of ``record``."""
    return record[1:9]


def is_sealed(data: bytes) -> bool:
    """Whether ``data`` is a sealed value."""
    return data[:2] == SEALED


def sealed_key_id(data: bytes) -> bytes:
    """The id of the data key that sealed ``data``."""
    return data[2:_HEADER]


class SessionKeys:
    """What this process knows of one sealed session's data keys: the one that seals
    (``current``, an 8-byte id) and every one it learned (they open). Learned from the
    backend's *records* (a data key wrapped by the provider, bound to the session);
    a record the provider cannot unwrap is remembered, and sealing or opening with
    it raises ``KeyUnavailableError``. Thread-safe (learning replaces whole tables).

    A session has no data key until its first sealed value is written: opening or
    reading it makes none on the backend. To seal with none known, this process
    proposes a new one (``proposed``, see :meth:`sealing`), which the backend makes
    the session's with the write that carries it, atomically, if the session still
    has none; else it tells which one the session has (learned here, and the values
    sealed again by it before the write is sent again).
    """

    __slots__ = (
        "__weakref__", "_aead", "_ciphers", "_context", "_failed", "_invalid", "_lock",
        "_now", "_prefix", "current", "namespace", "proposed", "provider", "records",
        "session_id",
    )  # fmt: skip

    def __init__(self, provider: KeyProvider, namespace: str, session_id: str) -> None:
        self.provider = provider
        self.namespace = namespace
        self.session_id = session_id
        self._aead = _aesgcm()
        from cryptography.exceptions import InvalidTag

        self._invalid = InvalidTag
        self._context = b"sharedctx data key\0" + _length_prefixed(namespace, session_id)
        self._prefix = _length_prefixed(namespace, session_id)
        self._ciphers: dict[bytes, Any] = {}
        self._failed: dict[bytes, str] = {}  # data key id -> the key id it needs
        self._lock = threading.Lock()
        self.current: bytes = b""
        """The id of the data key that seals (b"": none known yet)."""
        self.records: tuple[bytes, ...] = ()
        """The records last learned, the sealing one first."""
        self.proposed: bytes = b""
        """The record of the data key proposed for a session that has none (then
        ``current`` is its id), until the backend took it or told another; b"": none."""
        self._now = (b"", b"")  # (current, proposed), replaced whole: read without lock

    def new_record(self) -> tuple[bytes, bytes]:
        """A new random data key: its id and its record (not learned yet)."""
        return self._record(os.urandom(8), os.urandom(32))

    def _record(self, data_key_id: bytes, data_key: bytes) -> tuple[bytes, bytes]:
        key_id, wrapped = self.provider.wrap(data_key, self._context + data_key_id)
        encoded = key_id.encode()
        return data_key_id, bytes([_RECORD]) + data_key_id + bytes(
            [len(encoded)]
        ) + encoded + wrapped

    def learn(self, records: Iterable[bytes]) -> None:
        """Know the data keys of ``records`` (empty ones skipped); the first seals."""
        found = [record for record in records if record]
        with self._lock:
            ciphers, failed = dict(self._ciphers), dict(self._failed)
            for record in found:
                data_key_id = record_data_key_id(record)
                if data_key_id in ciphers:
                    continue
                try:
                    ciphers[data_key_id] = self._aead(self._unwrap(record))
                    failed.pop(data_key_id, None)
                except KeyUnavailableError as exc:
                    failed[data_key_id] = exc.key_id or ""
            self._ciphers, self._failed = ciphers, failed
            self.records = tuple(found)
            self.current = record_data_key_id(found[0]) if found else b""
            self.proposed = b""
            self._now = (self.current, b"")

    def sealing(self) -> tuple[bytes, bytes]:
        """The id of the data key that seals now, and its record if it is proposed
        (b"" if it is the session's): with no data key known, a new one is proposed,
        which the session takes with its first write (see the class docstring)."""
        now = self._now
        if now[0]:
            return now
        with self._lock:
            if not self.current:
                data_key_id, data_key = os.urandom(8), os.urandom(32)
                _, record = self._record(data_key_id, data_key)
                self._ciphers = {**self._ciphers, data_key_id: self._aead(data_key)}
                self.current, self.proposed = data_key_id, record
                self._now = (data_key_id, record)
            return self._now

    def settle(self, record: bytes) -> None:
        """The session took the proposed data key ``record`` (with a write of values
        sealed by it): it is the session's now."""
        with self._lock:
            if record and self.proposed == record:
                self.records, self.proposed = (record,), b""
                self._now = (self.current, b"")

    def _unwrap(self, record: bytes) -> bytes:
        if not record or record[0] != _RECORD:
            raise IntegrityError(
                f"the data key of session {self.session_id!r} is not one sharedctx wrote: "
                f"{_RESTORE}",
            )
        key_id = record_key_id(record)
        if not self.provider.holds(key_id):
            raise KeyUnavailableError(
                f"session {self.session_id!r} needs key {key_id!r} to open its data key; "
                f"the key ring holds {_ids(self.provider)}: {_add_key(key_id)}",
                self.session_id,
                key_id,
            )
        wrapped = record[10 + record[9] :]
        try:
            return self.provider.unwrap(key_id, wrapped, self._context + record[1:9])
        except ValueError:
            raise IntegrityError(
                f"the data key of session {self.session_id!r} does not open with key "
                f"{key_id!r}: it was changed, or copied from another session; {_RESTORE}"
            ) from None

    def rewrapped(self, record: bytes) -> bytes:
        """``record`` with its data key wrapped by the provider's first key (itself if it
        already is)."""
        if record_key_id(record) == self.provider.key_id:
            return record
        return self._record(record[1:9], self._unwrap(record))[1]

    def seal(self, key: str, data: bytes, data_key_id: bytes = b"") -> bytes:
        """``data`` (the value of ``key``) sealed with data key ``data_key_id`` (by
        default the current one, proposed now if none is known)."""
        current = data_key_id or self.current or self.sealing()[0]
        cipher = self._ciphers.get(current)
        if cipher is None:
            raise self._unavailable(current, key)
        header = SEALED + current
        nonce = os.urandom(_NONCE)
        encoded = key.encode()
        aad = header + self._prefix + len(encoded).to_bytes(4, "big") + encoded
        sealed: bytes = header + nonce + cipher.encrypt(nonce, data, aad)
        return sealed

    def open(self, key: str, data: bytes) -> bytes:
        """The data that :meth:`seal` sealed as the value of ``key``."""
        if data[:2] != SEALED or len(data) < _HEADER + _NONCE + _TAG:
            raise IntegrityError(
                f"the stored value of key {key!r} in sealed session {self.session_id!r} is "
                f"not sealed: it was written around sharedctx, and is not read; {_REWRITE}",
                key,
            )
        data_key_id = data[2:_HEADER]
        cipher = self._ciphers.get(data_key_id)
        if cipher is None:
            if data_key_id in self._failed:
                raise self._unavailable(data_key_id, key)
            raise IntegrityError(
                f"the stored value of key {key!r} in session {self.session_id!r} was not "
                f"sealed by a data key of this session (copied from another session?); "
                f"{_REWRITE}",
                key,
            )
        encoded = key.encode()
        aad = data[:_HEADER] + self._prefix + len(encoded).to_bytes(4, "big") + encoded
        try:
            opened: bytes = cipher.decrypt(
                data[_HEADER : _HEADER + _NONCE], data[_HEADER + _NONCE :], aad
            )
        except self._invalid:
            raise IntegrityError(
                f"the stored value of key {key!r} in session {self.session_id!r} does not "
                f"open: it was changed, or sealed for another key or session; {_REWRITE}",
                key,
            ) from None
        return opened

    def knows(self, data: bytes) -> bool:
        """Whether ``data`` is not sealed, or sealed by a data key learned here."""
        return data[:2] != SEALED or data[2:_HEADER] in self._ciphers

    def reseal(self, key: str, data: bytes, data_key_id: bytes = b"") -> bytes:
        """``data`` sealed again by data key ``data_key_id`` (by default the current
        one; itself if it already is)."""
        target = data_key_id or self.current or self.sealing()[0]
        if data[2:_HEADER] == target:
            return data
        return self.seal(key, self.open(key, data), target)

    def _unavailable(self, data_key_id: bytes, key: str) -> KeyUnavailableError:
        needed = self._failed.get(data_key_id)
        if needed is None:
            return KeyUnavailableError(
                f"session {self.session_id!r} has no data key known here to seal the value "
                f"of key {key!r}: open a new context on the session to learn it",
                self.session_id,
            )
        return KeyUnavailableError(
            f"session {self.session_id!r} needs key {needed!r} to open its data key; the "
            f"key ring holds {_ids(self.provider)}: {_add_key(needed)}",
            self.session_id,
            needed,
        )

    def __repr__(self) -> str:
        return f"<SessionKeys of session {self.session_id!r}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a session's data keys are not pickled")


_REWRITE = "set the key again (or delete it), or restore the session from a backup"
_RESTORE = "restore the session from a backup, or destroy() it and write it again"


def _add_key(key_id: str) -> str:
    """What to do about a data key wrapped by ``key_id``, which the ring lacks."""
    return (
        f"open it with a key ring that holds key {key_id!r} (keyring=..., or "
        "SHAREDCTX_KEYS or --keys-file for the CLI)"
    )


def _ids(provider: KeyProvider) -> str:
    ids = getattr(provider, "key_ids", None)
    if ids is None:
        return f"{provider.key_id!r} (and maybe others)"
    return ", ".join(repr(key_id) for key_id in ids)


class SealedCodec:
    """A codec that seals what ``inner`` encodes with a session's data keys (see the
    module docstring); equal to another for the same keys and an equal inner codec."""

    __slots__ = ("inner", "keys")

    def __init__(self, inner: Codec, keys: SessionKeys) -> None:
        self.inner = inner
        self.keys = keys

    def encode(self, key: str, value: Any) -> bytes:
        """``value`` encoded by the inner codec, then sealed."""
        return self.keys.seal(key, self.inner.encode(key, value))

    def decode(self, key: str, data: bytes) -> Any:
        """The value of sealed ``data``; ``IntegrityError`` if it does not open."""
        return self.inner.decode(key, self.keys.open(key, data))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SealedCodec) and other.keys is self.keys and other.inner == self.inner
        )

    def __hash__(self) -> int:
        return hash(id(self.keys))

    def __repr__(self) -> str:
        return f"SealedCodec({self.inner!r}, session={self.keys.session_id!r})"


class LockedCodec:
    """The codec of a sealed session opened without the keys to it: every value it
    would encode or decode raises ``KeyUnavailableError`` (never plaintext into a
    sealed session, never garbage out of it)."""

    __slots__ = ("key_id", "session_id")

    def __init__(self, session_id: str, key_id: str | None) -> None:
        self.session_id = session_id
        self.key_id = key_id

    def _error(self, key: str) -> KeyUnavailableError:
        needs = f" that holds key {self.key_id!r}" if self.key_id else ""
        return KeyUnavailableError(
            f"session {self.session_id!r} is sealed: the value of key {key!r} opens only "
            f"with a key ring{needs} (keyring=..., or SHAREDCTX_KEYS for the CLI)",
            self.session_id,
            self.key_id,
        )

    def encode(self, key: str, value: Any) -> bytes:
        raise self._error(key)

    def decode(self, key: str, data: bytes) -> Any:
        raise self._error(key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LockedCodec) and other.session_id == self.session_id

    def __hash__(self) -> int:
        return hash((LockedCodec, self.session_id))

    def __repr__(self) -> str:
        return f"LockedCodec(session={self.session_id!r})"
