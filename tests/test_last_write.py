""" "Last write" (what ``sharedctx sessions`` shows) is when a caller last changed a
session's data: a read, a sweep, an expiry or a refused write never moves it, on
memory, Redis and Redis Cluster, from the library and from the command line."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from sharedctx import RedisBackend, SharedContext, VersionConflictError
from sharedctx.backends import SessionAdmin
from sharedctx.testing import ContextFactory

from .cli._run import sharedctx, start_watch
from .conftest import RedisServer


def last_write(admin: SessionAdmin, session_id: str) -> datetime | None:
    summary = admin.session_summary(session_id)
    assert summary is not None
    return summary.last_write


def written(make_context: ContextFactory) -> SharedContext:
    """A session with entries, written a moment ago (Redis keeps milliseconds)."""
    ctx = make_context()
    ctx.set("a", 1, ttl=300, tags=["t"])
    ctx.set("b", {"n": 2})
    time.sleep(0.01)
    return ctx


def test_reads_never_move_last_write(make_context: ContextFactory, admin: SessionAdmin) -> None:
    ctx = written(make_context)
    before = last_write(admin, ctx.session_id)
    assert before is not None
    reader = make_context(ctx.session_id)  # opening a session is no write either
    reader.get("a")
    reader.get_entry("a")
    reader.has("b")
    assert "a" in reader
    assert len(reader) == 2
    reader.get_multiple(["a", "b", "c"])
    reader.find_by_pattern("*")
    reader.find_by_tag("t")
    reader.keys()
    reader.tags()
    reader.stats()
    list(reader.export())
    reader.wait_for("a", timeout=1)
    reader.get_or_set("a", lambda: 0)  # present: nothing to set
    reader.purge_expired()  # nothing due
    reader.watch("*").close()
    reader.unsubscribe(reader.subscribe("*", lambda event: None))
    reader.close()
    time.sleep(0.05)
    assert last_write(admin, ctx.session_id) == before
    ctx.set("c", 3)
    after = last_write(admin, ctx.session_id)
    assert after is not None
    assert after > before


def test_refused_and_empty_writes_do_not_move_it(
    make_context: ContextFactory, admin: SessionAdmin
) -> None:
    ctx = written(make_context)
    before = last_write(admin, ctx.session_id)
    with pytest.raises(VersionConflictError):
        ctx.set("a", 2, if_version=99)
    assert ctx.delete("absent") is False
    assert ctx.expire("absent", 10) is False
    assert last_write(admin, ctx.session_id) == before
    assert ctx.expire("a", 10) is True  # a new TTL is a write
    changed = last_write(admin, ctx.session_id)
    assert changed is not None
    assert changed > before


def test_an_entry_that_expires_does_not_move_it(
    make_context: ContextFactory, admin: SessionAdmin
) -> None:
    ctx = written(make_context)
    ctx.set("brief", 1, ttl=0.05)
    time.sleep(0.01)
    before = last_write(admin, ctx.session_id)
    time.sleep(0.2)
    ctx.purge_expired()
    assert ctx.get("brief") is None
    assert last_write(admin, ctx.session_id) == before


@pytest.mark.redis
def test_read_only_commands_never_move_last_write(redis_server: RedisServer) -> None:
    url = redis_server.url
    with SharedContext("lw-commands", backend=url) as ctx:
        ctx.set("job:1", 1, ttl=300)
    backend = RedisBackend(url)
    try:
        before = last_write(backend, "lw-commands")
        time.sleep(0.01)
        for command in (
            ["inspect", "lw-commands"],
            ["export", "lw-commands"],
            ["sessions"],
        ):
            done = sharedctx(*command, "--backend", url)
            assert done.returncode == 0, done.stderr
        watch = start_watch("lw-commands", "--backend", url)
        time.sleep(0.3)  # its follower sweeps the session meanwhile
        watch.terminate()
        watch.communicate(timeout=10)
        assert last_write(backend, "lw-commands") == before
    finally:
        backend.drop_session("lw-commands")
        backend.close()


@pytest.mark.redis
def test_sweeps_of_readers_do_not_keep_a_session_alive(redis_server: RedisServer) -> None:
    # With a session ttl the session ends that long after its last write, however
    # many processes read it (their followers sweep it every purge_interval).
    backend = RedisBackend(redis_server.url, session_ttl=60, purge_interval=0.05)
    try:
        with SharedContext("lw-ttl", backend=backend) as ctx:
            ctx.set("k", 1)
        summary = backend.session_summary("lw-ttl")
        assert summary is not None
        ends = summary.drops_at
        assert ends is not None
        with SharedContext("lw-ttl", backend=backend) as reader:
            for _ in range(5):
                time.sleep(0.05)
                reader.get("k")
                reader.purge_expired()
        summary = backend.session_summary("lw-ttl")
        assert summary is not None
        assert summary.drops_at is not None
        # The same end, to the millisecond that TIME and PTTL may round apart; each
        # sweep would have moved it on by 50 ms or more.
        assert abs((summary.drops_at - ends).total_seconds()) <= 0.002
    finally:
        backend.drop_session("lw-ttl")
        backend.close()
