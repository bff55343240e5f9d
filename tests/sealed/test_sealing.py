"""What a sealed session promises, on memory, Redis and Redis Cluster: values stored
sealed, tampering detected (``IntegrityError`` naming the key), a missing key named
(``KeyUnavailableError``), nothing changed by a call that raises either, and the data
key rewrapped (``rekey``) or replaced (``rotate_data_key``) while others write."""

from __future__ import annotations

import threading
import time
import uuid

import msgspec
import pytest
import redis

from sharedctx import (
    ContextError,
    IntegrityError,
    KeyRing,
    KeyUnavailableError,
    RedisBackend,
    SharedContext,
)

from .conftest import Place


def _session() -> str:
    return f"sealed-{uuid.uuid4().hex[:10]}"


def test_values_are_stored_sealed(place: Place, ring: KeyRing) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as ctx:
        ctx.set("profile", {"name": "Ada Lovelace"})
        raw = place.raw(session, "profile")
        assert raw[:2] == b"\xc1\x01"
        assert b"Ada Lovelace" not in raw
        assert ctx.get("profile") == {"name": "Ada Lovelace"}
        assert ctx.get_entry("profile").size == len(raw)  # type: ignore[union-attr]


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize("at", [2, 12, 30, -1], ids=["key-id", "nonce", "ciphertext", "tag"])
def test_a_flipped_byte_raises_integrity_error_naming_the_key(
    place: Place, ring: KeyRing, at: int
) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as ctx:
        ctx.set("notes", "private")
        place.set_raw(session, "notes", _flipped(place.raw(session, "notes"), at))
        with pytest.raises(IntegrityError) as error:
            ctx.get("notes")
        assert error.value.key == "notes"
        assert "'notes'" in str(error.value)
        with pytest.raises(IntegrityError, match="'notes'"):
            ctx.update("notes", lambda value: value + "!")
        with pytest.raises(IntegrityError):
            [entry.value for entry in ctx.find_by_pattern("*")]
        assert ctx.get_entry("notes").version == 1  # type: ignore[union-attr]


def test_swapped_ciphertexts_raise_integrity_error(place: Place, ring: KeyRing) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as ctx:
        ctx.set("a", "value of a")
        ctx.set("b", "value of b")
        raw_a, raw_b = place.raw(session, "a"), place.raw(session, "b")
        place.set_raw(session, "a", raw_b)
        place.set_raw(session, "b", raw_a)
        for key in ("a", "b"):
            with pytest.raises(IntegrityError) as error:
                ctx.get(key)
            assert error.value.key == key


def test_another_sessions_ciphertext_raises_integrity_error(place: Place, ring: KeyRing) -> None:
    first, second = _session(), _session()
    backend = place.backend(ring)
    with (
        SharedContext(first, backend=backend) as one,
        SharedContext(second, backend=backend) as two,
    ):
        one.set("k", "first's")
        two.set("k", "second's")
        place.set_raw(first, "k", place.raw(second, "k"))
        with pytest.raises(IntegrityError, match="'k'"):
            one.get("k")


def test_a_plain_value_planted_in_a_sealed_session_is_not_read(place: Place, ring: KeyRing) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as ctx:
        ctx.set("k", "sealed")
        place.set_raw(session, "k", msgspec.msgpack.encode("planted"))
        with pytest.raises(IntegrityError, match="not sealed"):
            ctx.get("k")


def test_a_sealed_session_without_a_key_ring_shows_metadata_and_never_a_value(
    place: Place, ring: KeyRing
) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as sealed:
        sealed.set("k", {"secret": 1}, tags=["t"], source="me")
        with SharedContext(session, backend=place.backend()) as plain:
            entry = plain.get_entry("k")
            assert entry is not None
            assert entry.version == 1
            assert entry.tags == ("t",)
            assert plain.keys() == ["k"]
            assert plain.has("k")
            with pytest.raises(KeyUnavailableError) as error:
                plain.get("k")
            assert error.value.session_id == session
            assert error.value.key_id == "2026-12"
            assert session in str(error.value)
            assert "2026-12" in str(error.value)
            for write in (lambda: plain.set("k", 2), lambda: plain.set("new", 2)):
                with pytest.raises(KeyUnavailableError):
                    write()
            with pytest.raises(KeyUnavailableError):
                plain.set_multiple({"x": 1, "y": 2})
        assert sealed.get_entry("k").version == 1  # type: ignore[union-attr]
        assert sealed.get("k") == {"secret": 1}
        assert sealed.keys() == ["k"]


def test_a_context_without_the_ring_alone_on_a_sealed_session_reads_no_value(
    place: Place, ring: KeyRing
) -> None:
    """Once every context with the ring is closed, the entries a memory session keeps
    still name their writer's codec: a context without the ring reads through its
    own, never through that one."""
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as sealed:
        sealed.set("k", {"secret": 1})
        keep = SharedContext(session, backend=place.backend(ring))
    with (
        SharedContext(session, backend=place.backend()) as plain,
        pytest.raises(KeyUnavailableError),
    ):
        plain.get("k")
    keep.close()  # the session (memory) lives on by its entry alone
    with SharedContext(session, backend=place.backend()) as plain:
        assert plain.get_entry("k").version == 1  # type: ignore[union-attr]
        with pytest.raises(KeyUnavailableError):
            plain.get("k")
        [found] = plain.find_by_pattern("*")
        with pytest.raises(KeyUnavailableError):
            _ = found.value
    other = KeyRing({"other": KeyRing.generate_key()})
    with (
        SharedContext(session, backend=place.backend(other)) as stranger,
        pytest.raises(KeyUnavailableError),
    ):
        stranger.get("k")


def test_a_ring_without_the_sessions_key_names_the_key_it_needs(place: Place) -> None:
    session = _session()
    old = KeyRing({"old": KeyRing.generate_key()})
    with SharedContext(session, backend=place.backend(old)) as ctx:
        ctx.set("k", "v")
        other = KeyRing({"other": KeyRing.generate_key()})
        with SharedContext(session, backend=place.backend(other)) as stranger:
            for call in (lambda: stranger.get("k"), lambda: stranger.set("k", "w")):
                with pytest.raises(KeyUnavailableError) as error:
                    call()
                assert error.value.key_id == "old"
                assert "'old'" in str(error.value)
                assert session in str(error.value)
            with pytest.raises(KeyUnavailableError, match="'old'"):
                stranger.rekey()
        assert ctx.get("k") == "v"
        assert ctx.get_entry("k").version == 1


def test_rekey_rewraps_the_data_key_so_that_the_old_key_can_go(place: Place) -> None:
    old_key, new_key = KeyRing.generate_key(), KeyRing.generate_key()
    first, second = _session(), _session()
    old = KeyRing({"old": old_key})
    with (
        SharedContext(first, backend=place.backend(old)) as one,
        SharedContext(second, backend=place.backend(old)) as two,
    ):
        one.set("k", 1)
        two.set("k", 2)
    both = place.backend(KeyRing({"new": new_key, "old": old_key}))
    with SharedContext(first, backend=both) as one:
        assert one.rekey() is True
        assert one.rekey() is False  # already wrapped by the first key
        one.set("k", 10)
    assert both.rekey_session(second) is True  # type: ignore[attr-defined]
    assert both.rekey_session(second) is False  # type: ignore[attr-defined]
    new_only = place.backend(KeyRing({"new": new_key}))
    with (
        SharedContext(first, backend=new_only) as one,
        SharedContext(second, backend=new_only) as two,
    ):
        assert one.get("k") == 10
        assert two.get("k") == 2


def _sealed_by(data: bytes) -> bytes:
    return data[2:10]


def test_rotate_data_key_seals_every_kept_value_again(place: Place, ring: KeyRing) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as ctx:
        ctx.set("kept", "one")
        ctx.set("kept", "two")  # the first value stays beside its event, for watchers
        ctx.set("other", {"n": 1})
        before = _sealed_by(place.raw(session, "kept"))
        assert ctx.rotate_data_key() == 2
        after = _sealed_by(place.raw(session, "kept"))
        assert after != before
        assert _sealed_by(place.raw(session, "other")) == after
        assert ctx.get("kept") == "two"
        assert ctx.get("other") == {"n": 1}
        with ctx.watch(since=0) as watch:
            replayed = [watch.get(timeout=5).entry.value for _ in range(3)]
        assert replayed == ["one", "two", {"n": 1}]
        if place.kind != "memory":
            values = place.command(session, "HGETALL", place.key(session, "values"))
            sealed = [value for field, value in values.items() if not field.startswith(b"p")]
            assert len(sealed) == 3
            assert {_sealed_by(value) for value in sealed} == {after}
            meta = place.command(session, "HMGET", place.key(session, "meta"), "dkid", "dk0")
            assert meta == [after, None]  # the old data key is gone
        else:
            history = place.memory._sessions[session].history
            assert {_sealed_by(entry.encoded) for _, _, entry, _ in history} == {after}
        with SharedContext(session, backend=place.backend(ring)) as fresh:
            assert fresh.get("kept") == "two"


def test_writers_racing_a_rotation_lose_nothing(place: Place, ring: KeyRing) -> None:
    session = _session()
    written: dict[str, int] = {}
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(name: str) -> None:
        try:
            with SharedContext(session, backend=place.backend(ring)) as ctx:
                n = 0
                while not stop.is_set() or n < 20:
                    ctx.set(f"{name}:{n % 25}", n)
                    written[f"{name}:{n % 25}"] = n
                    assert ctx.get(f"{name}:{n % 25}") == n
                    n += 1
        except BaseException as error:
            errors.append(error)

    with SharedContext(session, backend=place.backend(ring)) as ctx:
        ctx.set("start", 0)
        threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(3)]
        for thread in threads:
            thread.start()
        rotated = [ctx.rotate_data_key() for _ in range(3)]
        stop.set()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert all(count >= 1 for count in rotated)
        assert ctx.get_multiple(list(written)) == written
        current = _sealed_by(place.raw(session, "start"))
        assert {_sealed_by(place.raw(session, key)) for key in written} == {current}


def test_a_session_holding_plain_values_is_not_sealed_by_opening_it(
    place: Place, ring: KeyRing
) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend()) as plain:
        plain.set("k", "plain")
        with pytest.raises(ContextError, match="not sealed"):
            SharedContext(session, backend=place.backend(ring))
        assert plain.get("k") == "plain"


@pytest.mark.redis
def test_a_session_dropped_by_session_ttl_takes_its_data_key(redis_server: object) -> None:
    url = str(redis_server.url)  # type: ignore[attr-defined]
    namespace = f"ttl{uuid.uuid4().hex[:6]}"
    backend = RedisBackend(
        url, namespace=namespace, session_ttl=0.3, keyring=KeyRing({"k": KeyRing.generate_key()})
    )
    admin = redis.Redis.from_url(url)
    try:
        with SharedContext("short-lived", backend=backend) as ctx:
            ctx.set("k", "v")
            assert admin.hget(f"{namespace}:{{short-lived}}:meta", "dk")
        deadline = time.monotonic() + 10
        while list(admin.scan_iter(match=f"{namespace}:*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(admin.scan_iter(match=f"{namespace}:*")) == []  # the data key too
    finally:
        admin.close()
        backend.close()


@pytest.mark.redis
def test_a_changed_wrapped_data_key_does_not_open(redis_server: object, ring: KeyRing) -> None:
    place = Place("redis", str(redis_server.url))  # type: ignore[attr-defined]
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as ctx:
        ctx.set("k", "v")
    meta = place.key(session, "meta")
    record = place.command(session, "HGET", meta, "dk")
    place.command(session, "HSET", meta, "dk", _flipped(record, len(record) - 1))
    try:
        with pytest.raises(IntegrityError, match="data key of session"):
            SharedContext(session, backend=place.backend(ring))
    finally:
        place.close()
