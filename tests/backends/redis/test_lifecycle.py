"""Nothing outlives its removal on the Redis server, sessions end, contexts leave
nothing behind.

The privacy tests read every key of the database (``SCAN``, then ``DUMP`` and the
type's own read) and look for the bytes of a secret value. Their server keeps
strings uncompressed (``rdbcompression no``), so that ``DUMP`` shows the bytes as
they are stored.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from sharedctx import KEEP_TTL, RedisBackend, SessionLostError, SharedContext

from ...conftest import RedisServer

pytestmark = pytest.mark.redis


def new_session() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def server(private_redis: Callable[..., RedisServer]) -> RedisServer:
    return private_redis("--rdbcompression", "no")


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def stored_bytes(admin: redis.Redis) -> list[bytes]:
    """Everything the server holds: every key's DUMP and its contents read by type."""
    found: list[bytes] = []
    for key in admin.scan_iter(count=1000):
        found.append(key)
        dump = admin.dump(key)
        if dump is not None:
            found.append(dump)
        kind = admin.type(key)
        if kind == b"hash":
            found += [part for pair in admin.hgetall(key).items() for part in pair]
        elif kind == b"zset":
            found += admin.zrange(key, 0, -1)
        elif kind == b"stream":
            for _, fields in admin.xrange(key):
                found += [part for pair in fields.items() for part in pair]
        elif kind == b"string":
            found.append(admin.get(key) or b"")
    return found


def holds(admin: redis.Redis, secret: str) -> bool:
    return any(secret.encode() in part for part in stored_bytes(admin))


def secret_value() -> str:
    return f"secret-{uuid.uuid4().hex[:12]}"


# -- the data lifecycle ----------------------------------------------------------------------


REMOVALS: dict[str, Callable[[SharedContext, str], None]] = {
    "delete": lambda ctx, secret: ctx.delete("k"),
    "clear": lambda ctx, secret: ctx.clear(),
    "evict": lambda ctx, secret: ctx.set("other", 1),  # max_entries=1: "k" is evicted
}


@pytest.mark.parametrize("removal", list(REMOVALS))
def test_a_removed_value_is_gone_from_the_server_after_the_sweep(
    server: RedisServer, admin: redis.Redis, removal: str
) -> None:
    secret = secret_value()
    with SharedContext(new_session(), backend=server.url, max_entries=1) as ctx:
        watch = ctx.watch()  # events are kept in the stream while someone listens
        ctx.set("k", {"note": secret}, tags=["t"], source="mind:tim")
        assert holds(admin, secret)  # the check can see a stored secret
        REMOVALS[removal](ctx, secret)
        ctx.purge_expired()  # what the follower's sweep does every purge_interval
        assert not holds(admin, secret)
        events = [watch.get(timeout=5) for _ in range(2)]
        assert events[0].action == "set"
        assert not events[1].entry.has_value  # the removal event has no value


def test_an_expired_value_is_gone_from_the_server_after_the_sweep(
    server: RedisServer, admin: redis.Redis
) -> None:
    secret = secret_value()
    backend = RedisBackend(server.url, purge_interval=0.05)
    with SharedContext(new_session(), backend=backend) as ctx:
        ctx.set("k", secret, ttl=0.2)
        assert holds(admin, secret)
        deadline = time.monotonic() + 10
        while holds(admin, secret) and time.monotonic() < deadline:
            time.sleep(0.05)  # the follower sweeps every 50 ms, without any call
        assert not holds(admin, secret)
        assert ctx.stats().expired == 1
    backend.close()


def test_an_overwritten_value_stays_only_for_the_event_retention(
    server: RedisServer, admin: redis.Redis
) -> None:
    secret = secret_value()
    backend = RedisBackend(server.url, event_retention=0.3, purge_interval=3600)
    with SharedContext(new_session(), backend=backend) as ctx:
        ctx.set("k", secret)
        ctx.set("k", "public")
        ctx.purge_expired()
        assert holds(admin, secret)  # in the stream, for watchers that resume
        time.sleep(0.4)
        ctx.purge_expired()
        assert not holds(admin, secret)
        assert ctx.get("k") == "public"
    backend.close()


@pytest.mark.parametrize("first", ["open", "delete"])
def test_an_overwritten_value_of_an_abandoned_session_goes_after_the_event_retention(
    server: RedisServer, admin: redis.Redis, first: str
) -> None:
    """Without any sweep: the stream and its values expire on the server, even when
    they were made after the session's keys last had their expiry moved (the open, or
    a first change without a value, just before)."""
    secret = secret_value()
    backend = RedisBackend(server.url, event_retention=0.3, purge_interval=3600)
    ctx = SharedContext(new_session(), backend=backend)
    if first == "delete":
        ctx.set("gone", 1)
        ctx.delete("gone")  # the values hash is emptied, so gone, in between
    ctx.set("k", secret)
    ctx.set("k", "public")
    assert holds(admin, secret)
    time.sleep(0.45)
    assert not holds(admin, secret)
    ctx.destroy()
    backend.close()


def test_every_value_a_key_held_goes_with_it_and_no_other(
    server: RedisServer, admin: redis.Redis
) -> None:
    # The values of a key's set events are found by their chain: all of them go when
    # the key goes, those of other keys stay for watchers that resume.
    key_secrets = [secret_value() for _ in range(3)]
    other_secret = secret_value()
    with SharedContext(new_session(), backend=server.url) as ctx:
        ctx.set("other", other_secret)
        for number, secret in enumerate(key_secrets):
            if number == 1:
                ctx.set_multiple({"k": secret, "more": 1})
            else:
                ctx.set("k", secret, ttl=60)
        ctx.set("other", "public")
        assert all(holds(admin, secret) for secret in [*key_secrets, other_secret])
        ctx.delete("k")
        assert not any(holds(admin, secret) for secret in key_secrets)
        assert holds(admin, other_secret)  # its event is kept, with its value
        watch = ctx.watch(since=0)
        replayed = [watch.get(timeout=5).entry for _ in range(2)]
        watch.close()
        assert replayed[0].value == other_secret
        assert replayed[1].key == "k"
        assert not replayed[1].has_value  # the value of k's first set is gone
        ctx.set("k", "again")
        ctx.delete("k")  # a key set after its removal starts a new chain
        assert holds(admin, other_secret)


def test_the_values_of_events_trimmed_by_the_stream_cap_are_gone(
    server: RedisServer, admin: redis.Redis
) -> None:
    secret = secret_value()
    backend = RedisBackend(server.url, stream_max_len=16, purge_interval=3600)
    with SharedContext(new_session(), backend=backend) as ctx:
        ctx.set("k", secret)
        ctx.set("k", "public")
        assert holds(admin, secret)
        for number in range(40):
            ctx.set(f"other:{number % 5}", number)
        assert not holds(admin, secret)
        values = admin.hlen(f"sharedctx:{{{ctx.session_id}}}:values")
        events = admin.xlen(f"sharedctx:{{{ctx.session_id}}}:events")
        assert 16 <= events <= 17  # trimmed by a sixteenth of the cap at a time
        assert values == 2 * events  # each set event: its value and its link
    backend.close()


def test_destroy_leaves_no_byte_of_the_session(server: RedisServer, admin: redis.Redis) -> None:
    secret = secret_value()
    ctx = SharedContext(new_session(), backend=server.url, max_entries=5)
    ctx.set("k", secret, tags=["t"], ttl=60)
    ctx.get_or_set("g", lambda: secret)
    ctx.destroy()
    assert not holds(admin, secret)
    assert admin.dbsize() == 0


def test_an_abandoned_session_is_dropped_by_the_server_after_session_ttl(
    server: RedisServer, admin: redis.Redis
) -> None:
    session = new_session()
    backend = RedisBackend(server.url, session_ttl=0.5)
    ctx = SharedContext(session, backend=backend, max_entries=10)
    ctx.set("k", secret_value(), tags=["t"], ttl=60)
    ctx.set("k", "again", ttl=KEEP_TTL)
    ctx.get_or_set("g", lambda: 1)
    ctx.delete("g")
    ctx.get("k")  # a read that records recency
    assert backend.sessions() == [session]
    keys = admin.keys(f"*{session}*")
    assert len(keys) >= 8
    assert all(0 < admin.pttl(key) <= 500 for key in keys)  # every one expires
    ctx.close()
    backend.close()  # no client runs any more
    time.sleep(0.7)
    assert admin.keys(f"*{session}*") == []
    assert RedisBackend(server.url).sessions() == []


def test_a_session_dropped_by_its_ttl_is_reported_lost_to_a_context_still_open(
    server: RedisServer,
) -> None:
    backend = RedisBackend(server.url, session_ttl=0.3, purge_interval=3600)
    with SharedContext(new_session(), backend=backend) as ctx:
        ctx.set("k", 1)
        time.sleep(0.5)
        with pytest.raises(SessionLostError):
            ctx.get("k")
        assert ctx.get("k") is None  # it goes on, empty
    backend.close()


def test_sessions_lists_live_sessions_with_their_size_and_lifetime(server: RedisServer) -> None:
    backend = RedisBackend(server.url, session_ttl=3600)
    first, second = new_session(), new_session()
    with (
        SharedContext(first, backend=backend) as one,
        SharedContext(second, backend=RedisBackend(server.url)) as two,
    ):
        one.set_multiple({"a": "x" * 100, "b": 2})
        one.set("gone", 1, ttl=0.05)
        two.set("a", 1)
        time.sleep(0.1)
        summaries = {summary.session_id: summary for summary in backend.session_summaries()}
        assert set(summaries) == {first, second}
        assert summaries[first].entries == 2  # the expired entry does not count
        assert summaries[first].bytes > 100
        assert summaries[first].last_write is not None
        assert summaries[first].drops_at is not None
        assert summaries[second].drops_at is None  # no session_ttl: kept until destroyed
        assert backend.drop_session(second) is True
        assert backend.sessions() == [first]
        assert backend.drop_session(second) is False
        with pytest.raises(SessionLostError):
            two.get("a")
    backend.close()


def test_hostile_session_ids_are_listed_back_exactly(server: RedisServer) -> None:
    backend = RedisBackend(server.url)
    hostile = ["a}b{c", "%7B", "x:{}:meta", "*", "é\x1b[2J"]
    contexts = [SharedContext(session, backend=backend) for session in hostile]
    assert backend.sessions() == []  # a session exists once written (as in memory)
    for ctx in contexts:
        ctx.set("k", 1)
    assert backend.sessions() == sorted(hostile)
    for ctx in contexts:
        ctx.destroy()
    assert backend.sessions() == []
    backend.close()


def test_the_request_log_holds_no_value_and_is_forgotten(
    server: RedisServer, admin: redis.Redis
) -> None:
    secret = secret_value()
    with SharedContext(new_session(), backend=server.url) as ctx:
        ctx.set("k", secret)
        ctx.delete("k")
        ctx.purge_expired()
        requests = [key for key in admin.scan_iter() if key.endswith(b":requests")]
        assert requests  # it exists, and holds outcomes only:
        assert all(secret.encode() not in part for part in stored_bytes(admin))


# -- contexts leave nothing behind ---------------------------------------------------------


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_ten_thousand_open_close_cycles_leave_nothing_behind(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    session = new_session()

    def cycles(count: int) -> None:
        for n in range(count):
            ctx = SharedContext(session, backend=redis_server.url)
            if n % 2:
                ctx.subscribe("*", lambda event: None)  # a listener for its channel
            ctx.set("k", n)
            ctx.close()

    cycles(100)  # what a process makes once (the event pool's threads) is made
    time.sleep(0.5)  # and what other tests left is gone
    clients = len(admin.client_list())
    gc.collect()
    threads, files = threading.active_count(), _open_files()
    with caplog.at_level(logging.WARNING, logger="sharedctx"):
        cycles(10_000)
    gc.collect()
    assert threading.active_count() <= threads
    assert _open_files() <= files
    assert len(admin.client_list()) <= clients
    assert [record.getMessage() for record in caplog.records] == []
    admin.close()


def test_asyncio_connections_close_when_their_event_loop_shuts_down(
    server: RedisServer, admin: redis.Redis
) -> None:
    """A context used in ``asyncio.run`` and closed after it, from sync code: its
    connections of that loop were closed as the loop ended (none is left open on the
    server, and no ResourceWarning, an error in this suite, comes at collection)."""
    backend = RedisBackend(server.url)
    ctx = SharedContext(new_session(), backend=backend)

    async def use() -> None:
        await asyncio.gather(*(ctx.aset(f"k{n}", n) for n in range(5)))

    before = len(admin.client_list())
    asyncio.run(use())
    asyncio.run(use())  # another loop, its own connections
    gc.collect()
    assert len(admin.client_list()) <= before + 1  # the sync connection of ctx at most
    ctx.destroy()
    backend.close()


def test_a_reply_without_epoch_that_comes_late_does_not_hide_a_loss(server: RedisServer) -> None:
    # A context opened before its session exists learns no epoch (opening creates
    # nothing); a call of its (a sweep) that ran then may be answered after a later
    # call that told it the epoch. That late "no epoch" must not make it forget the
    # epoch, or a destroy() elsewhere would go unnoticed: the loss must be told.
    from sharedctx.backends.redis import operations as protocol

    session = new_session()
    with SharedContext(session, backend=server.url) as other:
        store: Any = other._store
        early = store.run(protocol.Revision(), user=False)  # the session does not exist
        assert store._epoch == ""
        with SharedContext(session, backend=server.url) as writer:
            writer.set("k", 1)
            assert other.get("k") == 1  # other knows the epoch now
            known = store._epoch
            assert known
            late = [b"ok", b"", [], 0, *early]  # the early call's reply, processed now
            store._settle(late, False, protocol.Revision(), b"", "")  # sent without an epoch
            assert store._epoch == known
            writer.destroy()
        with pytest.raises(SessionLostError):
            other.get("k")
        assert other.get("k") is None
