"""A sealed session comes to exist with its first write, as a plain one does: opening
or reading it makes nothing (no session, no data key) and moves no "last write"; its
data key comes with its first sealed write, made by the server atomically if the
session has none, so that writers that start a session at once end with one data key;
and a refused first write leaves nothing. On memory, Redis and Redis Cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from sharedctx import (
    CapacityError,
    ContextError,
    KeyRing,
    KeyUnavailableError,
    RedisBackend,
    SharedContext,
    VersionConflictError,
)
from sharedctx.backends import SessionAdmin

from ..conftest import RedisServer
from .conftest import Place

ROOT = Path(__file__).parents[2]


def _session() -> str:
    return f"first-{uuid.uuid4().hex[:10]}"


def _stored(place: Place, session: str) -> list[bytes]:
    """The server's keys of ``session`` (memory: none to list, see the callers)."""
    if place.kind == "memory":
        return []
    names = [place.key(session, part) for part in ("meta", "entries", "events", "values")]
    return [name for name in names if place.command(session, "EXISTS", name)]


def _admin(place: Place, ring: KeyRing | None = None) -> SessionAdmin:
    backend = place.backend(ring)
    assert isinstance(backend, SessionAdmin)
    return backend


def _read_everything(ctx: SharedContext) -> None:
    ctx.get("k")
    ctx.get_entry("k")
    ctx.has("k")
    ctx.get_multiple(["k", "j"])
    ctx.find_by_pattern("*")
    ctx.find_by_tag("t")
    ctx.keys()
    ctx.tags()
    ctx.stats()
    list(ctx.export())
    ctx.purge_expired()
    ctx.watch("*").close()
    assert ctx.set_multiple({}) == []  # no write either
    assert ctx.delete("k") is False
    assert ctx.rotate_data_key() == 0  # no data key yet: none to replace
    assert ctx.rekey() is False


def test_opening_and_reading_a_sealed_session_creates_nothing(place: Place, ring: KeyRing) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as sealed:
        _read_everything(sealed)
        assert not _admin(place).has_session(session)
        assert _stored(place, session) == []
        # Not sealed by being opened: a context without a key ring may still write
        # it, plain, and the one with the ring is then told it is not sealed.
        with SharedContext(session, backend=place.backend()) as plain:
            plain.set("k", "plain")
        with pytest.raises(ContextError, match=r"not sealed.*import it into a new session"):
            sealed.set("k", "sealed")
        with SharedContext(session, backend=place.backend()) as plain:
            assert plain.get("k") == "plain"
            plain.destroy()


def test_a_refused_first_write_creates_no_session_and_no_data_key(
    place: Place, ring: KeyRing
) -> None:
    session = _session()
    backend = place.backend(ring)
    with SharedContext(session, backend=backend, max_entries=1, eviction="reject") as sealed:
        with pytest.raises(VersionConflictError):
            sealed.set("k", "v", if_version=3)
        with pytest.raises(CapacityError):
            sealed.set_multiple({"k": "v", "j": "w"})
        assert not _admin(place).has_session(session)
        assert _stored(place, session) == []
        with SharedContext(session, backend=place.backend()) as plain:
            plain.set("k", "plain")  # nothing sealed it
            plain.destroy()


def test_the_data_key_comes_with_the_first_write(place: Place) -> None:
    session = _session()
    key = KeyRing.generate_key()
    ring = KeyRing({"2026-12": key})
    with SharedContext(session, backend=place.backend(ring)) as sealed:
        sealed.get("k")
        sealed.set("k", {"n": 1})
        sealed_by = place.raw(session, "k")[2:10]
        if place.kind != "memory":
            meta = place.key(session, "meta")
            assert place.command(session, "HGET", meta, "dkid") == sealed_by
            assert place.command(session, "HGET", meta, "dk")[1:9] == sealed_by
        with (
            SharedContext(session, backend=place.backend()) as plain,
            pytest.raises(KeyUnavailableError),  # sealed now
        ):
            plain.set("j", "plain")
        # Another process's ring (the same key, its own view of the data keys) reads
        # it, and seals its own writes by the session's data key.
        other_ring = KeyRing({"2026-12": key})
        with SharedContext(session, backend=place.backend(other_ring)) as other:
            assert other.get("k") == {"n": 1}
            other.set("j", 2)
        assert place.raw(session, "j")[2:10] == sealed_by
        sealed.destroy()


def test_reading_a_sealed_session_never_moves_last_write(place: Place) -> None:
    session, key = _session(), KeyRing.generate_key()
    ring = KeyRing({"2026-12": key})
    admin = _admin(place)
    with SharedContext(session, backend=place.backend(ring)) as writer:
        writer.set("k", "v", tags=["t"])
        time.sleep(0.01)
        before = admin.session_summary(session)
        assert before is not None
        assert before.last_write is not None
        # Readers that learn the session's data key from the server (a ring of their
        # own), and one without a ring (which learns that the session is sealed).
        for reader_ring in (ring, KeyRing({"2026-12": key}), None):
            with SharedContext(session, backend=place.backend(reader_ring)) as reader:
                reader.keys()
                reader.get_entry("k")
                reader.find_by_tag("t")
                reader.purge_expired()
        time.sleep(0.01)
        assert admin.session_summary(session) == before
        writer.destroy()


def test_a_session_destroyed_and_written_again_gets_a_new_data_key(
    place: Place, ring: KeyRing
) -> None:
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as ctx:
        ctx.set("k", 1)
        first = place.raw(session, "k")[2:10]
        with SharedContext(session, backend=place.backend(ring)) as other:
            other.destroy()
        with pytest.raises(ContextError):  # SessionLostError, once
            ctx.get("k")
        ctx.set("k", 2)
        assert place.raw(session, "k")[2:10] != first  # the shredded key is not reused
        with SharedContext(session, backend=place.backend(ring)) as reader:
            assert reader.get("k") == 2
        ctx.destroy()


def test_writers_that_start_a_session_at_once_end_with_one_data_key(place: Place) -> None:
    # Each writer has its own view of the data keys (a ring object of its own, as in
    # another process), opens the session first (so each proposes its own data key),
    # then all write at once: one data key is taken, the others are told it.
    session, key = _session(), KeyRing.generate_key()
    writers = [
        SharedContext(session, backend=place.backend(KeyRing({"2026-12": key}))) for _ in range(6)
    ]
    for n, writer in enumerate(writers):
        assert writer.get(f"k{n}") is None
    start = threading.Barrier(len(writers))
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait(10)
            writers[n].set(f"k{n}", n)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures, failures
    sealed_by = {place.raw(session, f"k{n}")[2:10] for n in range(len(writers))}
    assert len(sealed_by) == 1
    with SharedContext(session, backend=place.backend(KeyRing({"2026-12": key}))) as reader:
        assert reader.get_multiple([f"k{n}" for n in range(len(writers))]) == {
            f"k{n}": n for n in range(len(writers))
        }
        for writer in writers:
            writer.close()
        reader.destroy()


@pytest.mark.redis
@pytest.mark.slow
def test_processes_that_start_a_sealed_session_at_once_end_with_one_data_key(
    redis_server: RedisServer,
) -> None:
    # Real processes, each with the ring from SHAREDCTX_KEYS: all open the new session
    # (each proposes a data key of its own), then all write at once.
    url, namespace, session = redis_server.url, f"p{uuid.uuid4().hex[:8]}", _session()
    key = KeyRing.generate_key()
    env = {**os.environ, "SHAREDCTX_KEYS": f"2026-12:{key}"}
    names = [f"k{n}" for n in range(3)]
    command = [sys.executable, "-m", "tests.sealed._processes", "write_when_told"]
    writers = []
    for name in names:
        writers.append(
            subprocess.Popen(
                [*command, url, namespace, session, name],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=env,
            )
        )
    try:
        for writer in writers:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready"
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        for name, writer in zip(names, writers, strict=True):
            out, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err
            assert json.loads(out) == name
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.communicate()
    backend = RedisBackend(url, namespace=namespace, keyring=KeyRing({"2026-12": key}))
    place = Place("redis", url)
    place.namespace = namespace
    try:
        sealed_by = {place.raw(session, name)[2:10] for name in names}
        assert len(sealed_by) == 1
        assert place.command(session, "HGET", place.key(session, "meta"), "dkid") in sealed_by
        with SharedContext(session, backend=backend) as reader:
            assert reader.get_multiple(names) == {name: name for name in names}
            reader.destroy()
    finally:
        backend.close()
        place.close()
