"""What the Redis backend guarantees beyond the shared behavioural suite.

Everything here talks to real redis-server processes: the session's shared server,
or a private one that a test stops and restarts. Multi-process tests use real OS
processes (multiprocessing with spawn, or `python -m`).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import multiprocessing
import pickle
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharedctx import (
    BackendUnavailableError,
    ContextError,
    ContextEvent,
    RedisBackend,
    SerializationError,
    SessionLostError,
    SharedContext,
    WatchOverflowError,
)
from sharedctx.backends.redis import keys

from ... import _workers
from ...conftest import RedisServer

pytestmark = pytest.mark.redis

SPAWN = multiprocessing.get_context("spawn")


def new_session() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def run_processes(target: Callable[..., None], *argument_lists: tuple[Any, ...]) -> None:
    processes = [SPAWN.Process(target=target, args=args) for args in argument_lists]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0


# -- atomicity across processes ----------------------------------------------------------


def test_four_processes_incrementing_with_update_lose_nothing(url: str) -> None:
    session = new_session()
    run_processes(_workers.increment, *[(url, session, 500)] * 4)
    with SharedContext(session, backend=url) as ctx:
        entry = ctx.get_entry("counter")
        assert entry is not None
        assert entry.value == 2000
        assert entry.metadata.version == 2000
        ctx.destroy()


def test_processes_see_each_others_writes(url: str) -> None:
    session = new_session()
    run_processes(_workers.write_keys, (url, session, "a:", 50), (url, session, "b:", 50))
    with SharedContext(session, backend=url) as ctx:
        assert len(ctx.keys("a:*")) == 50
        assert len(ctx.keys("b:*")) == 50
        assert len(ctx) == 100
        ctx.destroy()


# -- round trips ---------------------------------------------------------------------------


class CommandLog:
    """The commands the server receives, from MONITOR on a separate connection."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.commands: list[str] = []
        self._monitor = self.client.monitor()
        self._monitor.connection.send_command("MONITOR")
        self._monitor.connection.read_response()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                command = self._monitor.next_command()
            except Exception:
                return
            if command.get("client_type") != "lua":  # not the script's own calls
                self.commands.append(command["command"])

    def count_during(self, action: Callable[[], object], marker_client: redis.Redis) -> list[str]:
        """The commands sent by ``action`` (bracketed by ECHO markers)."""
        start, end = f"start-{uuid.uuid4().hex}", f"end-{uuid.uuid4().hex}"
        marker_client.echo(start)
        action()
        marker_client.echo(end)
        deadline = time.monotonic() + 5
        while not any(end in command for command in self.commands):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        at = next(i for i, c in enumerate(self.commands) if start in c)
        until = next(i for i, c in enumerate(self.commands) if end in c)
        return self.commands[at + 1 : until]

    def close(self) -> None:
        self._stop = True
        self.client.close()


def test_single_key_operations_take_one_round_trip(url: str, admin: redis.Redis) -> None:
    backend = RedisBackend(url, purge_interval=3600)  # no sweep during the count
    log = CommandLog(url)
    try:
        with SharedContext(new_session(), backend=backend) as ctx:
            ctx.set("warm", 1)  # scripts loaded, connection open
            time.sleep(0.3)  # and the context's thread has made its first sweep
            operations: list[Callable[[], object]] = [
                lambda: ctx.set("k", {"v": 1}, tags=["t"], ttl=60),
                lambda: ctx.get("k"),
                lambda: ctx.get_entry("k"),
                lambda: ctx.has("k"),
                lambda: ctx.set("k", 2, if_version=1),
                lambda: ctx.expire("k", 30),
                lambda: ctx.delete("k"),
                lambda: ctx.find_by_tag("t"),
                lambda: ctx.find_by_pattern("analysis:mind:*"),
                lambda: ctx.keys("*x*"),
                lambda: len(ctx),
            ]
            for operation in operations:
                commands = log.count_during(operation, admin)
                assert len(commands) == 1, commands
                assert commands[0].startswith("FCALL")
            ctx.destroy()
    finally:
        log.close()
        backend.close()


def test_a_thousand_keys_are_written_and_read_in_one_round_trip(
    url: str, admin: redis.Redis
) -> None:
    backend = RedisBackend(url, purge_interval=3600)
    log = CommandLog(url)
    try:
        with SharedContext(new_session(), backend=backend) as ctx:
            ctx.set("warm", 1)
            time.sleep(0.3)
            batch = {f"k{n}": {"n": n} for n in range(1000)}
            assert len(log.count_during(lambda: ctx.set_multiple(batch), admin)) == 1
            found: dict[str, Any] = {}
            commands = log.count_during(lambda: found.update(ctx.get_multiple(list(batch))), admin)
            assert len(commands) == 1
            assert found == batch
            ctx.destroy()
    finally:
        log.close()
        backend.close()


def test_queries_never_scan_the_database(url: str, admin: redis.Redis) -> None:
    backend = RedisBackend(url, purge_interval=3600)
    log = CommandLog(url)
    try:
        with SharedContext(new_session(), backend=backend) as ctx:
            ctx.set_multiple({f"analysis:mind:{n}": n for n in range(20)}, tags=["m"])
            time.sleep(0.3)
            queries: list[Callable[[], object]] = [
                lambda: ctx.find_by_pattern("analysis:mind:*"),
                lambda: ctx.find_by_pattern("*:1?"),
                lambda: ctx.find_by_tag("m"),
                lambda: ctx.keys("*"),
            ]
            for query in queries:
                for command in log.count_during(query, admin):
                    assert not command.startswith(("KEYS", "SCAN")), command
            ctx.destroy()
    finally:
        log.close()
        backend.close()


# -- events across processes ---------------------------------------------------------------


def test_a_watcher_in_another_process_gets_every_event_once_in_order_across_reconnects(
    url: str, admin: redis.Redis
) -> None:
    session = new_session()
    total = 60
    watcher = subprocess.Popen(
        [sys.executable, "-c",
         f"from tests._workers import watch_events; watch_events({url!r}, {session!r}, "
         f"{total}, 30)"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )  # fmt: skip
    with watcher:  # its pipe closed at the end
        try:
            assert watcher.stdout is not None
            assert watcher.stdout.readline().strip() == "ready"
            with SharedContext(session, backend=url) as ctx:
                for n in range(total):
                    if n == total // 2:
                        admin.client_kill_filter(_type="normal", skipme=True)  # every connection
                    ctx.set(f"k{n % 7}", n)
                lines = [json.loads(watcher.stdout.readline()) for _ in range(total)]
                ctx.destroy()
            assert watcher.wait(30) == 0
        finally:
            watcher.kill()
    revisions = [line[0] for line in lines]
    assert revisions == list(range(revisions[0], revisions[0] + total))
    assert [line[2] for line in lines] == [f"k{n % 7}" for n in range(total)]


def test_a_watcher_behind_the_stream_cap_gets_watch_overflow_error(url: str) -> None:
    session = new_session()
    capped = RedisBackend(url, stream_max_len=10)
    try:
        with SharedContext(session, backend=capped) as watching:
            watch = watching.watch()
            watching.set("k", 0)
            assert watch.get(timeout=5).revision == 1
            # Nothing of the watching process reads the session's channel any more
            # (as when its connection is down), while 300 changes are made elsewhere:
            # by the time it looks, the stream keeps only the last ones.
            capped.registry.follower.stop()
            _write_past_the_cap(url, session)
            watching.count()  # a call of the watching context brings back what it missed
            received: list[int] = []
            with pytest.raises(WatchOverflowError, match="trimmed"):
                _drain(watch, received)
            assert watch.closed
            assert received == list(range(2, 2 + len(received)))  # none skipped before it
            watching.destroy()
    finally:
        capped.close()


def test_a_wait_whose_changes_were_trimmed_unread_looks_again(url: str) -> None:
    # The awaited key is written while the waiting process reads nothing, and its
    # change is trimmed from the stream before the process catches up: the wait hears
    # that events were lost, and looks at the store again instead of sleeping on.
    session = new_session()
    capped = RedisBackend(url, stream_max_len=10)
    try:
        with SharedContext(session, backend=capped) as waiting:
            found: list[list[Any]] = []
            waiter = threading.Thread(
                target=lambda: found.append(waiting.wait_for("k5", timeout=30))
            )
            waiter.start()
            deadline = time.monotonic() + 5
            while not waiting.stats().subscriptions:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.2)  # past its first look: it is waiting for a change
            capped.registry.follower.stop()
            _write_past_the_cap(url, session)
            waiting.count()  # brings back the kept changes, and news of the others
            waiter.join(10)  # long before its timeout, when it looks a last time
            assert [[entry.value for entry in entries] for entries in found] == [[5]]
            waiting.destroy()
    finally:
        capped.close()


def _write_past_the_cap(url: str, session: str) -> None:
    """Write k0..k299 = 0..299 from another backend, whose stream cap is 10."""
    elsewhere = RedisBackend(url, stream_max_len=10)  # the writers' cap applies
    with SharedContext(session, backend=elsewhere) as writer:
        for n in range(300):
            writer.set(f"k{n}", n)
    elsewhere.close()


def _drain(watch: Any, into: list[int]) -> None:
    while True:
        into.append(watch.get(timeout=10).revision)


def test_expire_events_are_emitted_once_with_several_processes_running(url: str) -> None:
    session = new_session()
    holders = [SPAWN.Process(target=_workers.hold_open, args=(url, session, 4)) for _ in range(3)]
    for holder in holders:
        holder.start()
    expired: list[ContextEvent] = []
    try:
        with SharedContext(session, backend=url) as ctx:
            ctx.subscribe("*", lambda e: e.action == "expire" and expired.append(e))
            ctx.set_multiple({f"k{n}": n for n in range(20)}, ttl=0.3)
            deadline = time.monotonic() + 10
            while len(expired) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.2)  # two more sweeps of every process: no duplicate may appear
            assert sorted(e.key for e in expired) == sorted(f"k{n}" for n in range(20))
            assert len({e.revision for e in expired}) == 20
            assert ctx.stats().expired == 20
            ctx.destroy()
    finally:
        for holder in holders:
            holder.join(30)


# -- expiry by the server's clock -------------------------------------------------------------


def test_expiry_ignores_the_client_clock(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real_time, real_monotonic = time.time, time.monotonic
    monkeypatch.setattr(time, "time", lambda: real_time() + 7200)  # a client two hours ahead
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + 7200)
    with SharedContext(new_session(), backend=url) as ctx:
        ctx.set("k", 1, ttl=60)
        assert ctx.get("k") == 1
        entry = ctx.get_entry("k")
        assert entry is not None
        assert entry.expires_at is not None
        lead = entry.expires_at.timestamp() - real_time()
        assert 50 < lead <= 60  # the deadline is the server's now + 60 s
        ctx.destroy()


def test_data_expires_while_no_client_runs(url: str) -> None:
    session = new_session()
    with SharedContext(session, backend=url) as ctx:
        ctx.set("short", 1, ttl=0.2)
        ctx.set("long", 2, ttl=60)
    time.sleep(0.4)  # no process of the session runs now
    with SharedContext(session, backend=url) as ctx:
        assert ctx.keys() == ["long"]
        ctx.destroy()


# -- isolation -------------------------------------------------------------------------------

HOSTILE = st.text(
    alphabet=st.sampled_from(["{", "}", "*", "?", "[", "]", ":", "\\", " ", "%", "a", "é", "日"]),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=HOSTILE, second=HOSTILE, key=HOSTILE)
def test_hostile_session_ids_and_keys_stay_in_their_session(
    url: str, admin: redis.Redis, first: str, second: str, key: str
) -> None:
    if first == second:
        second += "x"
    admin.set("not-sharedctx", "keep me")
    backend = RedisBackend(url, purge_interval=3600)
    try:
        one = SharedContext(first, backend=backend)
        two = SharedContext(second, backend=backend)
        one.set(key, "one", tags=[key])
        two.set(key + "*", "two")
        assert two.get(key) is None
        assert two.find_by_pattern("*") == [two.get_entry(key + "*")]
        assert [e.value for e in one.find_by_pattern("*")] == ["one"]
        assert [e.value for e in one.find_by_tag(key)] == ["one"]
        assert two.find_by_tag(key) == []
        two.destroy()
        assert one.get(key) == "one"
        one.destroy()
        assert admin.get("not-sharedctx") == b"keep me"
    finally:
        backend.close()


def test_all_keys_of_a_session_share_one_hash_slot(
    url: str, admin: redis.Redis, private_redis: Callable[..., RedisServer]
) -> None:
    cluster = private_redis("--cluster-enabled", "yes")  # to ask CLUSTER KEYSLOT
    slot = redis.Redis.from_url(cluster.url)
    for session in ["plain", "x{y}z:{}", "}{", "%7B"]:
        with SharedContext(session, backend=url) as ctx:
            ctx.set("k", 1, tags=["t"], ttl=60)
            names = RedisBackend(url).keys_of(session)
            assert sum(admin.exists(name) for name in names) >= 6
            assert len({slot.execute_command("CLUSTER KEYSLOT", name) for name in names}) == 1
            ctx.destroy()
    slot.close()


# -- faults ----------------------------------------------------------------------------------


def test_every_call_fails_fast_while_the_server_is_down_and_works_after(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis("--appendonly", "yes", "--appendfsync", "always")
    ctx = SharedContext(new_session(), backend=RedisBackend(server.url, socket_timeout=1.0))
    ctx.set("k", "before")
    watch = ctx.watch()
    server.stop()
    calls: list[Callable[[], object]] = [
        lambda: ctx.get("k"),
        lambda: ctx.set("k", "during"),
        lambda: ctx.delete("k"),
        lambda: ctx.find_by_pattern("*"),
        lambda: ctx.update("k", lambda value: value),
        lambda: len(ctx),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as caught:
            call()
        assert time.monotonic() - started < 5  # about the socket timeout, not a hang
        assert isinstance(caught.value, ContextError)
    server.start()  # the same port, with its append-only file: the data is back
    assert ctx.get("k") == "before"  # the same object works again, nothing was changed
    ctx.set("k", "after")
    event = watch.get(timeout=10)  # the watch resumed without loss
    assert (event.action, event.key, event.entry.value) == ("set", "k", "after")
    ctx.destroy()


def test_a_server_restarted_empty_is_reported_once_as_session_lost(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis()
    ctx = SharedContext(new_session(), backend=RedisBackend(server.url, socket_timeout=1.0))
    ctx.set("k", "precious")
    watch = ctx.watch()
    server.stop()
    server.start()  # no persistence: every key is gone
    with pytest.raises(SessionLostError):
        ctx.get("k")
    assert ctx.get("k") is None  # once only: the context goes on with the empty session
    ctx.set("k", "fresh")
    assert ctx.get_entry("k").metadata.version == 1  # type: ignore[union-attr]
    with pytest.raises(SessionLostError):
        watch.get(timeout=10)
    event = watch.get(timeout=10)
    assert (event.action, event.key) == ("set", "k")
    ctx.destroy()


def test_session_lost_found_by_the_sweep_is_still_raised_by_the_next_call(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis()
    ctx = SharedContext(new_session(), backend=RedisBackend(server.url, purge_interval=0.05))
    ctx.set("k", 1)
    server.stop()
    server.start()
    time.sleep(0.5)  # the context's sweep runs meanwhile and meets the empty server
    with pytest.raises(SessionLostError):
        ctx.has("k")
    assert not ctx.has("k")
    ctx.destroy()


# -- security --------------------------------------------------------------------------------


def test_values_are_msgpack_and_a_planted_pickle_is_never_loaded(
    url: str, admin: redis.Redis, tmp_path: Path
) -> None:
    session = new_session()
    with SharedContext(session, backend=url) as ctx:
        ctx.set("k", {"a": [1, 2]})
        entries_key = RedisBackend(url).keys_of(session)[1]
        blob = admin.hget(entries_key, "k")
        assert blob is not None
        assert blob.endswith(b"\x81\xa1a\x92\x01\x02")  # the value, in msgpack
        marker = tmp_path / "pwned"
        payload = pickle.dumps(_Exploit(str(marker)))
        metadata = blob[: 8 + int(blob[:8])]
        admin.hset(entries_key, "k", metadata + payload)  # a planted value
        with pytest.raises(SerializationError, match="not msgpack"):
            ctx.get("k")
        assert not marker.exists()
        ctx.destroy()


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def test_passwords_stay_out_of_reprs_errors_and_logs(
    private_redis: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = private_redis("--requirepass", "s3cret-pw")
    secret_url = f"redis://:s3cret-pw@127.0.0.1:{server.port}/0"
    with caplog.at_level(logging.DEBUG):
        backend = RedisBackend(secret_url, socket_timeout=0.5, purge_interval=0.05)
        ctx = SharedContext(new_session(), backend=backend)
        ctx.set("k", 1)
        texts = [repr(backend), repr(ctx)]
        server.stop()
        with pytest.raises(BackendUnavailableError) as caught:
            ctx.get("k")
        texts.append(str(caught.value))
        time.sleep(0.3)  # the sweep fails a few times meanwhile
        ctx.close()
        backend.close()
    texts.extend(record.getMessage() for record in caplog.records)
    assert "***" in texts[0]
    assert all("s3cret-pw" not in text for text in texts)


def test_wrong_password_and_bad_urls_are_clear_errors(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis("--requirepass", "right")
    with pytest.raises(ContextError, match="refused") as caught:
        SharedContext("s", backend=f"redis://:wrong@127.0.0.1:{server.port}/0")
    assert not isinstance(caught.value, BackendUnavailableError)
    assert "wrong" not in str(caught.value)
    with pytest.raises(ContextError, match="refused"):
        SharedContext("s", backend=f"redis://:right@127.0.0.1:{server.port}/99")  # no such db
    backend = RedisBackend(f"redis://127.0.0.1:{server.port}/0?password=right")
    assert "right" not in repr(backend)
    backend.close()
    with pytest.raises(ValueError, match="redis://"):
        SharedContext("s", backend="http://localhost")
    with pytest.raises(ContextError, match="clock"):
        SharedContext("s", backend=server.url.replace("//", "//:right@"), clock=time.monotonic)


def test_clear_reports_an_entry_that_had_expired_as_expired(url: str) -> None:
    backend = RedisBackend(url, purge_interval=3600)  # no sweep in between
    with SharedContext(new_session(), backend=backend) as ctx:
        events: list[ContextEvent] = []
        ctx.subscribe("*", events.append)
        ctx.set("short", 1, ttl=0.05)
        ctx.set("long", 2)
        time.sleep(0.15)
        assert ctx.clear() == 1
        assert sorted((e.action, e.key) for e in events[2:]) == [
            ("delete", "long"),
            ("expire", "short"),
        ]
        ctx.destroy()
    backend.close()


def test_one_follower_thread_serves_every_context_of_a_backend(url: str) -> None:
    def followers() -> int:
        return sum(t.name == "sharedctx-redis-follower" for t in threading.enumerate())

    backend = RedisBackend(url)
    try:
        before = followers()
        contexts = [SharedContext(new_session(), backend=backend) for _ in range(20)]
        for ctx in contexts[:5]:
            ctx.watch()
        assert followers() - before <= 1  # one for the backend, not one per context
        assert backend.registry.follower._thread is not None
        dropped = weakref.ref(contexts.pop()._store)
        gc.collect()
        assert dropped() is None  # the follower holds contexts weakly
        for ctx in contexts:
            ctx.destroy()
    finally:
        backend.close()


def test_destroy_leaves_nothing_behind(url: str, admin: redis.Redis) -> None:
    backend = RedisBackend(url, purge_interval=0.01)  # sweeps race with destroy
    try:
        for _ in range(30):
            session = new_session()
            ctx = SharedContext(session, backend=backend)
            ctx.set("k", 1, ttl=60)
            ctx.destroy()
            assert not any(admin.exists(name) for name in backend.keys_of(session))
            assert session not in backend.sessions()
    finally:
        backend.close()


async def test_await_for_does_not_block_the_event_loop_on_a_busy_server(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis("--enable-debug-command", "yes")
    ctx = SharedContext(new_session(), backend=server.url)
    admin = redis.Redis.from_url(server.url)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    busy = threading.Thread(target=admin.execute_command, args=("DEBUG", "SLEEP", "0.5"))
    busy.start()
    await asyncio.sleep(0.05)  # the server is asleep now
    before = ticks
    with pytest.raises(TimeoutError):
        await ctx.await_for("nothing:*", timeout=0.1)  # its round trips wait on the server
    assert ticks - before >= 5  # meanwhile the loop went on ticking
    ticking.cancel()
    await asyncio.to_thread(busy.join)
    ctx.destroy()
    admin.close()


def test_a_watch_from_a_revision_no_longer_kept_overflows(url: str) -> None:
    backend = RedisBackend(url, stream_max_len=16)
    with SharedContext(new_session(), backend=backend) as ctx:
        for n in range(40):
            ctx.set("k", n)
        with pytest.raises(WatchOverflowError, match="trimmed"):
            ctx.watch(since=2)
        with ctx.watch(since=30) as watch:  # still kept
            assert [watch.get(timeout=5).revision for _ in range(10)] == list(range(31, 41))
        ctx.destroy()
    backend.close()


def test_a_watch_replays_more_changes_than_one_reply_carries(url: str) -> None:
    with SharedContext(new_session(), backend=url) as ctx:
        ctx.set_multiple({f"k{n:04}": n for n in range(2500)})
        with ctx.watch(since=0, max_pending=5000) as watch:
            revisions = [watch.get(timeout=5).revision for _ in range(2500)]
        assert revisions == list(range(1, 2501))
        ctx.destroy()


def test_a_change_made_elsewhere_arrives_by_its_channel_not_by_the_sweep(url: str) -> None:
    # No sweep runs during the test: the only way for the change to arrive is the
    # session's pub/sub channel (a sweep would catch up within purge_interval too).
    listening = RedisBackend(url, purge_interval=3600)
    session = new_session()
    with SharedContext(session, backend=listening) as ctx:
        arrived = threading.Event()
        ctx.subscribe("k", lambda event: arrived.set())
        ctx.count()  # the subscription is confirmed by now: the listener caught up
        with SharedContext(session, backend=url) as elsewhere:
            elsewhere.set("k", 1)
        assert arrived.wait(5), "the change did not come through the channel"
        ctx.destroy()
    listening.close()


def test_changes_keep_arriving_by_channel_over_many_starts_of_listening(
    url: str, admin: redis.Redis
) -> None:
    # Each time the last subscription of a process goes, its listener stops and drops
    # its connection; the next subscription starts another on a new connection.
    # redis-py's pool counts the connections made from it (100 by default) until they
    # are given back to it: a listener's never is, so from the 101st start on no
    # listener could connect and changes came only by the sweep (none runs here).
    listening = RedisBackend(url, purge_interval=3600)
    session = new_session()
    channel = keys.session_keys("sharedctx", session)[-1]
    with SharedContext(session, backend=listening) as ctx:
        with SharedContext(session, backend=url) as elsewhere:
            for n in range(120):
                arrived = threading.Event()
                subscription = ctx.subscribe("k", lambda event, got=arrived: got.set())
                elsewhere.set("k", n)
                assert arrived.wait(5), f"change {n} did not come through the channel"
                ctx.unsubscribe(subscription)
                deadline = time.monotonic() + 5  # the listener unsubscribed: it ends
                while admin.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1]:
                    assert time.monotonic() < deadline, "the listener did not unsubscribe"
                    time.sleep(0.001)
        ctx.destroy()
    listening.close()


@pytest.mark.parametrize("due", [3, 1005], ids=["few-due", "many-due"])
def test_a_range_read_leaves_out_and_removes_what_expired(url: str, due: int) -> None:
    """Keys, pattern and tag reads judge a key of their range by the deadlines (or, with
    more than 1000 due, by its entry): an expired one is left out and removed, once."""
    backend = RedisBackend(url, purge_interval=3600)  # no sweep in between
    with SharedContext(new_session(), backend=backend) as ctx:
        ctx.set_multiple({f"p:{i:04d}": i for i in range(due)}, ttl=0.05, tags=["t"])
        ctx.set_multiple({"p:live": 1, "p:later": 2}, tags=["t"])
        ctx.expire("p:later", 3600)
        events: list[ContextEvent] = []
        ctx.subscribe("*", events.append)
        time.sleep(0.15)
        assert ctx.keys("p:*") == ["p:later", "p:live"]
        assert [e.key for e in ctx.find_by_pattern("p:*")] == ["p:later", "p:live"]
        assert [e.key for e in ctx.find_by_tag("t")] == ["p:later", "p:live"]
        assert sorted(e.key for e in events if e.action == "expire") == [
            f"p:{i:04d}" for i in range(due)
        ]
        assert ctx.stats().entries == 2
        ctx.destroy()
    backend.close()
