"""Every error of a sealed session says what was wrong and what to do next, as every
other error does (tests/test_messages.py): on memory, Redis and Redis Cluster."""

from __future__ import annotations

import uuid
from pathlib import Path

import msgspec
import pytest

from sharedctx import (
    ContextError,
    IntegrityError,
    InvalidArgumentError,
    KeyRing,
    KeyUnavailableError,
    SharedContext,
)

from .conftest import Place

REWRITE = r"set the key again \(or delete it\), or restore the session from a backup"


def _session() -> str:
    return f"said-{uuid.uuid4().hex[:10]}"


def test_a_value_that_does_not_open_says_to_set_it_again(place: Place, ring: KeyRing) -> None:
    session, other = _session(), _session()
    backend = place.backend(ring)
    with (
        SharedContext(session, backend=backend) as ctx,
        SharedContext(other, backend=backend) as elsewhere,
    ):
        ctx.set("changed", "v")
        ctx.set("planted", "v")
        ctx.set("copied", "v")
        elsewhere.set("copied", "theirs")
        raw = place.raw(session, "changed")
        place.set_raw(session, "changed", raw[:-1] + bytes([raw[-1] ^ 1]))
        place.set_raw(session, "planted", msgspec.msgpack.encode("planted"))
        place.set_raw(session, "copied", place.raw(other, "copied"))
        for key in ("changed", "planted", "copied"):
            with pytest.raises(IntegrityError, match=REWRITE) as error:
                ctx.get(key)
            assert f"'{key}'" in str(error.value)
            ctx.set(key, "again")  # what the message says: and then it reads
            assert ctx.get(key) == "again"
        ctx.destroy()
        elsewhere.destroy()


def test_a_missing_key_says_which_ring_opens_the_session(place: Place) -> None:
    session = _session()
    with SharedContext(
        session, backend=place.backend(KeyRing({"old": KeyRing.generate_key()}))
    ) as ctx:
        ctx.set("k", "v")
        stranger = place.backend(KeyRing({"other": KeyRing.generate_key()}))
        with SharedContext(session, backend=stranger) as other:
            with pytest.raises(KeyUnavailableError) as error:
                other.get("k")
            message = str(error.value)
            assert "needs key 'old'" in message
            assert "open it with a key ring that holds key 'old' (keyring=..." in message
            assert "SHAREDCTX_KEYS or --keys-file for the CLI" in message
        with SharedContext(session, backend=place.backend()) as plain:
            with pytest.raises(
                KeyUnavailableError,
                match=r"with a key ring that holds key 'old' \(keyring=\.\.\., or SHAREDCTX_KEYS",
            ):
                plain.get("k")
            with pytest.raises(
                KeyUnavailableError, match=r"rotate_data_key need one \(keyring=\.\.\.\)"
            ):
                plain.rekey()
        ctx.destroy()


def test_a_plain_session_opened_with_a_ring_says_how_to_seal_it(
    place: Place, ring: KeyRing
) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend()) as plain:
        plain.set("k", "plain")
        with pytest.raises(
            ContextError, match=r"export it and import it into a new session with the key ring"
        ):
            SharedContext(session, backend=place.backend(ring))
        plain.destroy()


@pytest.mark.redis
def test_a_changed_data_key_says_to_restore_or_destroy(redis_server: object, ring: KeyRing) -> None:
    place = Place("redis", str(redis_server.url))  # type: ignore[attr-defined]
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as ctx:
        ctx.set("k", "v")
    meta = place.key(session, "meta")
    record = place.command(session, "HGET", meta, "dk")
    try:
        for changed in (b"\x09" + record[1:], record[:-1] + bytes([record[-1] ^ 1])):
            place.command(session, "HSET", meta, "dk", changed)
            with pytest.raises(
                IntegrityError,
                match=r"restore the session from a backup, or destroy\(\) it and write it again",
            ):
                SharedContext(session, backend=place.backend(ring))
        with SharedContext(session, backend=place.backend()) as plain:
            plain.destroy()  # what the message says: then the session is written anew
        with SharedContext(session, backend=place.backend(ring)) as ctx:
            ctx.set("k", "again")
            ctx.destroy()
    finally:
        place.close()


def test_key_ring_errors_say_what_to_give(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = KeyRing.generate_key()
    with pytest.raises(InvalidArgumentError, match=r"KeyRing\.generate_key\(\)"):
        KeyRing({})
    with pytest.raises(InvalidArgumentError, match=r"make one with KeyRing\.generate_key\(\)"):
        KeyRing({"short": key[:-6]})
    monkeypatch.setenv("SHAREDCTX_KEYS", f"a:{key},a:{key}")
    with pytest.raises(InvalidArgumentError, match="twice: give each key id once") as twice:
        KeyRing.from_env()
    assert key not in str(twice.value)
    monkeypatch.setenv("SHAREDCTX_KEYS", "")
    with pytest.raises(InvalidArgumentError, match="set it to id:key,id:key"):
        KeyRing.from_env()
    with pytest.raises(InvalidArgumentError, match="give the path of a readable file"):
        KeyRing.from_file(tmp_path / "missing")
