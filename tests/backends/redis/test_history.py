"""History on Redis and Redis Cluster: what only a server can show.

No byte of a key's past values is on the server once the key is removed (read as in
``test_lifecycle.py``: every key's DUMP and contents); what a session keeps is
bounded on the server by ``history_versions`` and ``history_retention``; a read of a
key's history or at a revision is one function call, a snapshot page a bounded
number; a fork onto another slot of a cluster. The behavioural rules run on both in
the conformance kit (``HistoryTests``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import msgspec
import pytest
import redis

from sharedctx import HistoryCompactedError, RedisBackend, SessionExistsError, SharedContext
from sharedctx.backends.redis.keys import session_keys

from ..._cluster import LocalCluster
from ...conftest import RedisServer
from .test_lifecycle import holds

pytestmark = pytest.mark.redis


def new_session() -> str:
    return f"h-{uuid.uuid4().hex[:10]}"


def secret_value() -> str:
    return f"secret-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def server(private_redis: Callable[..., RedisServer]) -> RedisServer:
    return private_redis("--rdbcompression", "no")


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def history_key(session: str) -> bytes:
    return session_keys("sharedctx", session)[10]


def past_values(admin: redis.Redis, session: str) -> dict[bytes, bytes]:
    """The past values the session's history hash holds, by field ("v" + revision)."""
    stored = admin.hgetall(history_key(session))
    return {field: value for field, value in stored.items() if field.startswith(b"v")}


# -- nothing outlives its removal ----------------------------------------------------------


REMOVALS: dict[str, Callable[[SharedContext], object]] = {
    "delete": lambda ctx: ctx.delete("k"),
    "clear": lambda ctx: ctx.clear(),
    "evict": lambda ctx: ctx.set("x", 1),  # max_entries=2: "k", least recently used
}


@pytest.mark.parametrize("removal", list(REMOVALS))
def test_no_byte_of_a_removed_keys_past_values_is_left_after_the_call(
    server: RedisServer, admin: redis.Redis, removal: str
) -> None:
    secrets = [secret_value() for _ in range(4)]
    other = secret_value()
    with SharedContext(new_session(), backend=server.url, history_versions=8, max_entries=2) as ctx:
        ctx.set("other", other)
        for secret in secrets:
            ctx.set("k", {"note": secret}, tags=["t"])
        ctx.set("other", "public")  # "other" is the most recently used: "k" is evicted
        assert all(holds(admin, secret) for secret in [*secrets, other])
        assert ctx.stats().past_versions == 4  # 3 of k, 1 of other
        REMOVALS[removal](ctx)
        assert not any(holds(admin, secret) for secret in secrets)  # no sweep needed
        if removal != "clear":
            assert holds(admin, other)  # the past version of a key still there stays
            assert ctx.history("other")[1].value == other


def test_no_byte_of_an_expired_keys_past_values_is_left_after_the_sweep(
    server: RedisServer, admin: redis.Redis
) -> None:
    secrets = [secret_value() for _ in range(3)]
    backend = RedisBackend(server.url, purge_interval=0.05)
    with SharedContext(new_session(), backend=backend, history_versions=8) as ctx:
        for secret in secrets:
            ctx.set("k", secret, ttl=0.3)
        assert ctx.stats().past_versions == 2
        deadline = time.monotonic() + 10
        while any(holds(admin, secret) for secret in secrets) and time.monotonic() < deadline:
            time.sleep(0.05)  # the follower sweeps every 50 ms, without any call
        assert not any(holds(admin, secret) for secret in secrets)
        assert ctx.stats().past_versions == 0
    backend.close()


def test_a_past_version_is_gone_from_the_server_after_the_history_retention(
    server: RedisServer, admin: redis.Redis
) -> None:
    secret = secret_value()
    backend = RedisBackend(server.url, event_retention=0.3, purge_interval=3600)
    with SharedContext(new_session(), backend=backend, history_versions=8) as ctx:
        ctx.set("k", secret)
        ctx.set("k", "public")
        assert ctx.history("k")[1].value == secret
        time.sleep(0.4)
        ctx.purge_expired()  # what the follower's sweep does
        assert not holds(admin, secret)
        assert ctx.history("k") == [ctx.get_entry("k")]
        assert ctx.stats().past_bytes == 0
    backend.close()


def test_a_session_nobody_sweeps_loses_its_history_on_the_server_by_itself(
    server: RedisServer, admin: redis.Redis
) -> None:
    secret = secret_value()
    session = new_session()
    backend = RedisBackend(server.url, event_retention=0.3, purge_interval=3600)
    ctx = SharedContext(session, backend=backend, history_versions=8)
    ctx.set("k", secret)
    ctx.set("k", "public")
    at = ctx.revision
    assert 0 < admin.pttl(history_key(session)) <= 300
    time.sleep(0.5)
    assert not holds(admin, secret)  # expired on the server, with no client call
    with pytest.raises(HistoryCompactedError) as raised:
        ctx.get("k", revision=at - 1)  # nothing earlier is known now
    assert raised.value.oldest == at
    assert ctx.get("k", revision=at) == "public"
    ctx.destroy()
    backend.close()


def test_destroy_leaves_no_byte_of_the_history(server: RedisServer, admin: redis.Redis) -> None:
    secret = secret_value()
    ctx = SharedContext(new_session(), backend=server.url, history_versions=8)
    ctx.set("k", secret)
    ctx.set("k", 2)
    ctx.delete("k")
    ctx.destroy()
    assert admin.dbsize() == 0


def test_reading_a_session_that_does_not_exist_leaves_nothing_on_the_server(
    server: RedisServer, admin: redis.Redis
) -> None:
    """A context that keeps history begins its session's history with its first call;
    a read of a session that does not exist makes no session, nor any history."""
    session = new_session()
    with SharedContext(session, backend=server.url, history_versions=8) as ctx:
        assert ctx.get("k") is None
        assert ctx.history("k") == []
        assert ctx.get("k", revision=0) is None
        assert list(ctx.snapshot(0)) == []
        assert admin.dbsize() == 0
        ctx.set("k", 1)  # a write makes it, with its history from then on
        ctx.set("k", 2)
        assert [entry.value for entry in ctx.history("k")] == [2, 1]
        assert admin.exists(history_key(session)) == 1
        ctx.destroy()
    assert admin.dbsize() == 0


def test_a_fork_of_an_empty_session_makes_the_new_session(
    server: RedisServer, admin: redis.Redis
) -> None:
    session, fork_id = new_session(), new_session()
    with SharedContext(session, backend=server.url) as ctx:
        ctx.set("k", 1)
        ctx.delete("k")
        with ctx.fork(fork_id) as fork:
            assert len(fork) == 0
        assert admin.exists(session_keys("sharedctx", fork_id)[0]) == 1
        with pytest.raises(SessionExistsError):
            ctx.fork(fork_id)


# -- bounded on the server ------------------------------------------------------------------


@pytest.mark.slow
def test_a_soak_of_overwrites_keeps_at_most_history_versions_per_key_on_the_server(
    server: RedisServer, admin: redis.Redis
) -> None:
    """100,000 overwrites of 100 keys with history_versions=8 (in batches of 100):
    the server keeps 8 past values of each key, the last 8, and no other."""
    session = new_session()
    with SharedContext(session, backend=server.url, history_versions=8) as ctx:
        sizes = []
        for batch in range(1000):
            ctx.set_multiple({f"key:{n}": batch * 100 + n for n in range(100)})
            if batch % 250 == 249:
                assert len(past_values(admin, session)) == 800
                sizes.append(admin.memory_usage(history_key(session), samples=0))
        assert max(sizes) < 1.1 * min(sizes)  # the history's bytes on the server do not grow
        stored = past_values(admin, session)
        expected = [
            msgspec.msgpack.encode(batch * 100 + n) for batch in range(991, 999) for n in range(100)
        ]
        assert sorted(stored.values()) == sorted(expected)
        stats = ctx.stats()
        assert stats.past_versions == 800
        assert stats.past_bytes == sum(map(len, expected))
        # Besides: each past value's metadata, each key's header, the mark of history.
        assert admin.hlen(history_key(session)) == 2 * 800 + 100 + 1
        summary = RedisBackend(server.url).session_summary(session)
        assert summary is not None
        assert summary.past_bytes == stats.past_bytes
        assert [entry.value for entry in ctx.history("key:7")] == [
            batch * 100 + 7 for batch in range(999, 990, -1)
        ]


# -- one call -----------------------------------------------------------------------------


def function_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_fcall", {}).get("calls", 0))


def test_a_keys_history_and_a_read_at_a_revision_are_one_call_each(
    server: RedisServer, admin: redis.Redis
) -> None:
    with SharedContext(new_session(), backend=server.url, history_versions=8) as ctx:
        for value in range(6):
            ctx.set("k", value)
            ctx.set(f"other:{value}", value)
        for read in (
            lambda: ctx.history("k"),
            lambda: ctx.get("k", revision=3),
            lambda: ctx.get_entry("other:2", revision=7),
            lambda: ctx.snapshot(5).find_by_pattern("other:*"),
            lambda: ctx.snapshot(5).find_by_tag("none"),
        ):
            before = function_calls(admin)
            read()
            assert function_calls(admin) - before == 1


# -- Redis Cluster ----------------------------------------------------------------------------


def _slot(session: str) -> int:
    return LocalCluster.slot_of(session_keys("sharedctx", session)[0])


@pytest.mark.cluster
def test_a_fork_onto_another_slot_of_a_cluster(redis_cluster: LocalCluster) -> None:
    backend = RedisBackend(redis_cluster.url)
    source = new_session()
    target = new_session()
    while redis_cluster.node_for_slot(_slot(target)) == redis_cluster.node_for_slot(_slot(source)):
        target = new_session()  # another master, so surely another slot
    with SharedContext(source, backend=backend, history_versions=4) as ctx:
        ctx.set_multiple({f"k{n}": n for n in range(1200)}, ttl=600)  # three pages
        at = ctx.revision
        ctx.set_multiple({f"k{n}": -n for n in range(0, 1200, 7)})
        forked = ctx.fork(target, revision=at)
        try:
            assert len(forked) == 1200
            assert forked.get("k7") == 7
            exported = [{**record, "ttl": None} for record in forked.export()]
            snapshot = [{**record, "ttl": None} for record in ctx.snapshot(at).export()]
            assert exported == snapshot
        finally:
            forked.destroy()
    backend.close()


@pytest.mark.cluster
def test_a_snapshot_page_on_a_cluster_is_a_bounded_number_of_calls(
    redis_cluster: LocalCluster,
) -> None:
    backend = RedisBackend(redis_cluster.url)
    session = new_session()
    master = redis_cluster.node_for_slot(_slot(session))
    admin = redis_cluster.admin(master)
    with SharedContext(session, backend=backend, history_versions=4) as ctx:
        ctx.set_multiple({f"a:{n:04}": n for n in range(2000)})
        at = ctx.revision
        ctx.set_multiple({f"a:{n:04}": -n for n in range(2000)})
        snapshot = ctx.snapshot(at)
        before = function_calls(admin)
        page = snapshot.find_by_pattern("a:*", limit=100, after="a:0500")
        assert function_calls(admin) - before == 1  # a prefix: one call
        assert [entry.value for entry in page] == list(range(501, 601))
        before = function_calls(admin)
        page = snapshot.find_by_pattern("*:1*", limit=100)
        # Filtered here, 500 keys a call until the page is full: the first match is
        # the 1001st key.
        assert function_calls(admin) - before == 3
        assert [entry.key for entry in page] == [f"a:{n}" for n in range(1000, 1100)]
        before = function_calls(admin)
        assert len(list(snapshot.entries())) == 2000
        assert function_calls(admin) - before == 5  # pages of 500, and the empty one
    backend.close()
