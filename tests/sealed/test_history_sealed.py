"""History of sealed sessions, on memory, Redis and Redis Cluster: past versions are
kept sealed (by the session's data key, bound to the key and session like every sealed
value) and opened by ``history``, ``get(revision=)`` and ``snapshot``; a context
without the key ring reads their metadata only; ``rotate_data_key`` seals every kept
past version again and the old data key goes, ``rekey`` leaves them readable by the
new key alone; delete, expiry and destroy take them; a fork is a sealed session of its
own (its own data key), readable with the ring, never without it."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from sharedctx import (
    HistoryCompactedError,
    KeyRing,
    KeyUnavailableError,
    SessionExistsError,
    SharedContext,
)

from .conftest import Place

SEALED = b"\xc1\x01"


def _session() -> str:
    return f"sealed-h-{uuid.uuid4().hex[:10]}"


def _sealed_by(data: bytes) -> bytes:
    return data[2:10]


def past_raw(place: Place, session: str) -> list[bytes]:
    """Every past value the backend keeps for the session, as it stores them."""
    if place.kind == "memory":
        past = place.memory._sessions[session].past
        return [kept.entry.encoded for versions in past.values() for kept in versions]  # type: ignore[misc]
    stored = place.command(session, "HGETALL", place.key(session, "history"))
    return [bytes(value) for field, value in stored.items() if field.startswith(b"v")]


def data_keys(place: Place, session: str) -> list[bytes]:
    """The ids of the session's data keys: the one that seals, and the one before it
    while a rotation runs."""
    if place.kind == "memory":
        return [record[1:9] for record in place.memory._sessions[session].records]
    found = place.command(session, "HMGET", place.key(session, "meta"), "dk", "dk0")
    return [bytes(record)[1:9] for record in found if record]


def test_past_versions_are_stored_sealed_and_opened_by_every_history_read(
    place: Place, ring: KeyRing
) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring), history_versions=4) as ctx:
        first = ctx.set("profile", {"name": "Ada Lovelace"}, tags=["p"]).revision
        ctx.set("profile", {"name": "Grace Hopper"})
        ctx.set("profile", {"name": "Edsger Dijkstra"})
        ctx.set("other", 1)
        stored = past_raw(place, session)
        assert len(stored) == 2
        (current,) = data_keys(place, session)
        for data in stored:
            assert data[:2] == SEALED
            assert _sealed_by(data) == current
            assert b"Ada" not in data
            assert b"Grace" not in data
        assert [entry.value for entry in ctx.history("profile")] == [
            {"name": "Edsger Dijkstra"}, {"name": "Grace Hopper"}, {"name": "Ada Lovelace"}
        ]  # fmt: skip
        assert ctx.get("profile", revision=first) == {"name": "Ada Lovelace"}
        assert ctx.get_entry("profile", revision=first + 1).value == {"name": "Grace Hopper"}  # type: ignore[union-attr]
        snapshot = ctx.snapshot(first)
        assert snapshot.value("profile") == {"name": "Ada Lovelace"}
        assert [entry.value for entry in snapshot.find_by_tag("p")] == [{"name": "Ada Lovelace"}]
        assert [record["value"] for record in snapshot.export("profile")] == [
            {"name": "Ada Lovelace"}
        ]
        # Another context with the ring reads them too (it learns the data key).
        with SharedContext(session, backend=place.backend(ring)) as reader:
            assert reader.get("profile", revision=first) == {"name": "Ada Lovelace"}
            assert len(reader.history("profile")) == 3


def test_without_the_key_ring_past_versions_show_metadata_and_never_a_value(
    place: Place, ring: KeyRing
) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring), history_versions=2) as ctx:
        first = ctx.set("k", {"secret": 1}, source="me").revision
        ctx.set("k", {"secret": 2})
        with SharedContext(session, backend=place.backend()) as plain:
            versions = plain.history("k")
            assert [entry.version for entry in versions] == [2, 1]
            assert versions[1].source == "me"
            old = plain.get_entry("k", revision=first)
            assert old is not None
            assert old.version == 1
            for read in (
                lambda: versions[1].value,
                lambda: plain.get("k", revision=first),
                lambda: plain.snapshot(first).value("k"),
            ):
                with pytest.raises(KeyUnavailableError) as error:
                    read()
                assert error.value.key_id == "2026-12"
            with pytest.raises(KeyUnavailableError):  # a fork needs the values
                plain.fork(_session(), revision=first)
        assert ctx.get("k", revision=first) == {"secret": 1}


def test_rotate_data_key_seals_every_past_version_again_and_forgets_the_old_key(
    place: Place, ring: KeyRing
) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring), history_versions=3) as ctx:
        revisions = [ctx.set("k", n).revision for n in range(4)]
        ctx.set("other", "x")
        ctx.set("other", "y")
        (before,) = data_keys(place, session)
        assert {_sealed_by(data) for data in past_raw(place, session)} == {before}
        assert ctx.rotate_data_key() == 2
        (after,) = data_keys(place, session)  # the old data key is gone
        assert after != before
        stored = past_raw(place, session)
        assert len(stored) == 4
        assert {_sealed_by(data) for data in stored} == {after}
        assert [entry.value for entry in ctx.history("k")] == [3, 2, 1, 0]
        assert [ctx.get("k", revision=r) for r in revisions] == [0, 1, 2, 3]
        assert dict(ctx.snapshot(revisions[1]).items())["k"].value == 1
        assert ctx.stats().past_bytes == sum(len(data) for data in stored)
    with SharedContext(session, backend=place.backend(ring)) as fresh:
        assert fresh.get("other", revision=revisions[-1] + 1) == "x"


def test_writers_overwriting_during_a_rotation_leave_every_past_version_readable(
    place: Place, ring: KeyRing
) -> None:
    session = _session()
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(name: str) -> None:
        try:
            with SharedContext(session, backend=place.backend(ring), history_versions=3) as ctx:
                n = 0
                while not stop.is_set() or n < 20:
                    ctx.set(f"{name}:{n % 5}", n)
                    n += 1
        except BaseException as error:
            errors.append(error)

    with SharedContext(session, backend=place.backend(ring), history_versions=3) as ctx:
        ctx.set("start", 0)
        threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for _ in range(2):
            ctx.rotate_data_key()
        stop.set()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        (current,) = data_keys(place, session)
        stored = past_raw(place, session)
        assert stored
        assert {_sealed_by(data) for data in stored} == {current}
        for key in ctx.keys("w*"):
            values = [entry.value for entry in ctx.history(key)]
            assert len(values) == 4
            assert values == sorted(values, reverse=True)


def test_rekey_leaves_past_versions_readable_by_the_new_key_alone(place: Place) -> None:
    old_key, new_key = KeyRing.generate_key(), KeyRing.generate_key()
    session = _session()
    with SharedContext(
        session, backend=place.backend(KeyRing({"old": old_key})), history_versions=2
    ) as ctx:
        first = ctx.set("k", "one").revision
        ctx.set("k", "two")
    both = KeyRing({"new": new_key, "old": old_key})
    with SharedContext(session, backend=place.backend(both)) as ctx:
        assert ctx.rekey() is True
    with SharedContext(session, backend=place.backend(KeyRing({"new": new_key}))) as ctx:
        assert [entry.value for entry in ctx.history("k")] == ["two", "one"]
        assert ctx.get("k", revision=first) == "one"
    old_only = place.backend(KeyRing({"old": old_key}))
    with (
        SharedContext(session, backend=old_only) as ctx,
        pytest.raises(KeyUnavailableError, match="'new'"),
    ):
        ctx.get("k", revision=first)


def test_delete_expiry_and_destroy_take_the_sealed_past_versions(
    place: Place, ring: KeyRing
) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring), history_versions=4) as ctx:
        for n in range(3):
            ctx.set("deleted", n)
            ctx.set("expiring", n, ttl=0.3)
            ctx.set("kept", n)
        assert len(past_raw(place, session)) == 6
        ctx.delete("deleted")
        assert ctx.history("deleted") == []
        assert len(past_raw(place, session)) == 4
        time.sleep(0.35)
        ctx.purge_expired()
        assert ctx.history("expiring") == []
        assert [entry.value for entry in ctx.history("kept")] == [2, 1, 0]
        assert len(past_raw(place, session)) == 2
        ctx.destroy()
    if place.kind == "memory":
        assert session not in place.memory._sessions
    else:
        for part in ("meta", "history", "aging", "values", "entries"):
            assert place.command(session, "EXISTS", place.key(session, part)) == 0, part


def test_a_fork_of_a_sealed_session_is_sealed_by_a_data_key_of_its_own(
    place: Place, ring: KeyRing
) -> None:
    session, fork_id, again = _session(), _session(), _session()
    backend = place.backend(ring)
    with SharedContext(session, backend=backend, history_versions=2) as ctx:
        at = ctx.set("profile", {"name": "Ada"}, tags=["p"]).revision
        ctx.set("notes", "first")
        ctx.set("profile", {"name": "Grace"})
        with ctx.fork(fork_id, revision=at) as fork:
            assert fork.get("profile") == {"name": "Ada"}
            assert fork.keys() == ["profile"]
            assert list(fork.export()) == list(ctx.snapshot(at).export())
            raw = place.raw(fork_id, "profile")
            assert raw[:2] == SEALED
            assert b"Ada" not in raw
            (own,) = data_keys(place, fork_id)
            assert _sealed_by(raw) == own
            assert own not in data_keys(place, session)  # bound to its own session
            with fork.fork(again) as second:  # a fork of a fork
                assert second.get("profile") == {"name": "Ada"}
                assert data_keys(place, again) != [own]
        # Another context with the ring opens the fork; one without it does not.
        with SharedContext(fork_id, backend=place.backend(ring)) as reader:
            assert reader.get("profile") == {"name": "Ada"}
            assert reader.find_by_tag("p")[0].value == {"name": "Ada"}
        with SharedContext(fork_id, backend=place.backend()) as plain:
            assert plain.keys() == ["profile"]
            with pytest.raises(KeyUnavailableError):
                plain.get("profile")
        # A fork onto the fork's id fails and changes nothing.
        with pytest.raises(SessionExistsError):
            ctx.fork(fork_id)
        with SharedContext(fork_id, backend=place.backend(ring)) as reader:
            assert reader.get("profile") == {"name": "Ada"}
            assert reader.revision == 1


def test_a_sealed_fork_of_a_compacted_revision_raises_and_makes_nothing(
    place: Place, ring: KeyRing
) -> None:
    session, fork_id = _session(), _session()
    with SharedContext(session, backend=place.backend(ring), history_versions=1) as ctx:
        first = ctx.set("k", 1).revision
        ctx.set("k", 2)
        ctx.set("k", 3)  # version 1 is dropped: revision `first` is gone
        with pytest.raises(HistoryCompactedError):
            ctx.fork(fork_id, revision=first)
    with SharedContext(fork_id, backend=place.backend(ring)) as fork:
        assert fork.revision == 0
        assert fork.keys() == []
