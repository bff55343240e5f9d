"""A change is published on the session's channel only when a process listens, where
the server counts every listener (a single server). A process that starts listening
later reads what it missed from the stream; on a cluster, whose nodes do not count the
listeners a replica serves, every change is published."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from sharedctx import RedisBackend, SharedContext
from sharedctx.backends.redis.keys import session_keys

from ..._cluster import LocalCluster
from ...conftest import RedisServer
from .test_acl import NAMESPACE

pytestmark = pytest.mark.redis


def _published(client: redis.Redis) -> int:
    """How many SPUBLISH the server ran since its counters were reset."""
    stats = client.info("commandstats").get("cmdstat_spublish")
    return int(stats["calls"]) if stats else 0


def _until_listened(client: redis.Redis, channel: bytes) -> None:
    """Wait until the server counts a listener of ``channel`` (a watch subscribes in
    the background: a change before that is read from the stream, not published)."""
    deadline = time.monotonic() + 5
    while client.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1] == 0:
        assert time.monotonic() < deadline, "the watch never subscribed"
        time.sleep(0.01)


def test_nothing_is_published_while_nobody_listens(redis_server: RedisServer) -> None:
    session = f"pub-{uuid.uuid4().hex[:8]}"
    client = redis.Redis(port=redis_server.port)
    writer = RedisBackend(redis_server.url)
    reader = RedisBackend(redis_server.url)  # another process's view: its own listener
    try:
        with SharedContext(session, backend=writer) as ctx:
            client.config_resetstat()
            ctx.set("a", 1)
            ctx.set_multiple({"b": 2, "c": 3})
            ctx.delete("a")
            assert _published(client) == 0
            channel = session_keys("sharedctx", session)[-1]
            with SharedContext(session, backend=reader) as other, other.watch("*") as watch:
                _until_listened(client, channel)
                ctx.set("d", 4)
                event = watch.get(timeout=5)
                assert (event.key, event.entry.value) == ("d", 4)
                assert _published(client) == 1
            # What was not published is in the stream for a listener that starts later.
            with (
                SharedContext(session, backend=reader) as late,
                late.watch("*", since=0) as replay,
            ):
                keys = [replay.get(timeout=5).key for _ in range(5)]
                assert keys == ["a", "b", "c", "a", "d"]
            ctx.destroy()
    finally:
        writer.close()
        reader.close()
        client.close()


def test_watchers_that_start_while_another_process_writes_miss_and_repeat_nothing(
    redis_server: RedisServer,
) -> None:
    """The race the skipped publishing opens: a change made just before a watcher's
    subscription counts is not published, and must come from the stream. Watchers of
    their own (each its own listener) start one after another while a writer process
    sets w0, w1, ... (about 2 ms apart, so that most changes come while they listen);
    each gets every change after its revision once, in order."""
    session, total = f"pub-{uuid.uuid4().hex[:8]}", 600
    writer = subprocess.Popen(
        [sys.executable, "-c",
         f"from tests._workers import write_keys; write_keys({redis_server.url!r}, "
         f"{session!r}, 'w', {total}, 0.002)"],
        cwd=Path(__file__).parents[3],
    )  # fmt: skip
    # No sweep in the test's time, so no sweep's catching up hides a change missed.
    backends = [RedisBackend(redis_server.url, purge_interval=3600) for _ in range(3)]
    try:
        with SharedContext(session, backend=backends[0]) as probe:
            started = []
            for backend, at in zip(backends, (20, 150, 300), strict=True):
                deadline = time.monotonic() + 30
                while probe.revision < at:
                    assert time.monotonic() < deadline, "the writer did not get that far"
                    time.sleep(0.002)
                since = probe.revision
                context = SharedContext(session, backend=backend)
                started.append((since, context, context.watch("w*", since=since)))
            for since, context, watch in started:
                with context, watch:
                    events = [watch.get(timeout=10) for _ in range(total - since)]
                assert [event.revision for event in events] == list(range(since + 1, total + 1))
                assert [(event.key, event.entry.value) for event in events] == [
                    (f"w{n}", n) for n in range(since, total)
                ]
        assert writer.wait(30) == 0
        with SharedContext(session, backend=backends[0]) as ctx:
            ctx.destroy()
    finally:
        writer.kill()
        for backend in backends:
            backend.close()


def test_a_raw_subscriber_counts_as_a_listener(redis_server: RedisServer) -> None:
    session = f"pub-{uuid.uuid4().hex[:8]}"
    channel = session_keys("sharedctx", session)[-1]
    client = redis.Redis(port=redis_server.port)
    listener = redis.Redis(port=redis_server.port).pubsub()
    try:
        listener.ssubscribe(channel)
        assert listener.get_message(timeout=5)["type"] == "ssubscribe"
        with SharedContext(session, backend=redis_server.url) as ctx:
            ctx.set("a", 1)
            message = listener.get_sharded_message(timeout=5)
            assert message is not None
            assert message["channel"] == channel
            ctx.destroy()
    finally:
        listener.close()
        client.close()


def test_a_user_whose_rule_lacks_shardnumsub_still_has_its_changes_published(
    private_redis,  # type: ignore[no-untyped-def]
) -> None:
    """The rule of an earlier `sharedctx acl`: without PUBSUB SHARDNUMSUB every change is
    published, as before, and a listener in another process gets it."""
    from .test_acl import _rule

    server = private_redis()
    admin = redis.Redis(port=server.port)
    rule = [word for word in _rule("tenant") if word != "+pubsub|shardnumsub"]
    assert len(rule) == len(_rule("tenant")) - 1
    admin.execute_command(*rule)
    with SharedContext("load", backend=RedisBackend(server.url, namespace=NAMESPACE)):
        pass  # (the library is an admin's to load)
    url = f"redis://tenant:secret@127.0.0.1:{server.port}/0"
    writer = RedisBackend(url, namespace=NAMESPACE)
    reader = RedisBackend(url, namespace=NAMESPACE)
    try:
        with (
            SharedContext("s", backend=writer) as ctx,
            SharedContext("s", backend=reader) as other,
            other.watch("*") as watch,
        ):
            _until_listened(admin, session_keys(NAMESPACE, "s")[-1])
            admin.config_resetstat()
            ctx.set("a", 1)
            assert watch.get(timeout=5).key == "a"
            assert _published(admin) == 1
    finally:
        writer.close()
        reader.close()
        admin.close()


@pytest.mark.cluster
def test_on_a_cluster_every_change_is_published(redis_cluster: LocalCluster) -> None:
    session = f"pub-{uuid.uuid4().hex[:8]}"
    channel = session_keys("sharedctx", session)[-1]
    owner = redis_cluster.admin(redis_cluster.node_for_slot(LocalCluster.slot_of(channel)))
    with SharedContext(session, backend=redis_cluster.url) as ctx:
        owner.config_resetstat()
        ctx.set("a", 1)
        assert _published(owner) == 1
        ctx.destroy()
