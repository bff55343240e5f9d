"""The CLI and sealed sessions: ``keygen``, the key ring from ``SHAREDCTX_KEYS`` or
``--keys-file``, ``(sealed)`` without it, ``rekey``, and ``delete``/``prune`` taking the
data key with the session."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from sharedctx import InvalidArgumentError, KeyRing, RedisBackend, SharedContext
from sharedctx.demo._pipeline import DemoError, DemoOptions, WorkerRing, mind_worker

from ..conftest import RedisServer
from ._run import ENV, one_error_line

pytestmark = pytest.mark.redis

KEY = KeyRing.generate_key()
RING = KeyRing({"k1": KEY})


def run(*args: str, keys: str | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in ENV.items() if name != "SHAREDCTX_KEYS"}
    if keys is not None:
        env["SHAREDCTX_KEYS"] = keys
    return subprocess.run(
        [sys.executable, "-m", "sharedctx", *args],
        capture_output=True, text=True, timeout=120, env=env, input=stdin, check=False,
    )  # fmt: skip


@pytest.fixture
def sealed_session(redis_server: RedisServer) -> Iterator[str]:
    session = f"cli-sealed-{uuid.uuid4().hex[:8]}"
    with SharedContext(session, backend=redis_server.url, keyring=RING) as ctx:
        ctx.set("profile", {"name": "Ada"}, tags=["person"], source="intake")
        ctx.set("notes", "private notes")
    yield session
    RedisBackend(redis_server.url).drop_session(session)


def test_the_history_commands_open_a_sealed_sessions_past_with_the_ring_only(
    redis_server: RedisServer,
) -> None:
    url = redis_server.url
    session, fork_id = f"cli-sealed-{uuid.uuid4().hex[:8]}", f"cli-fork-{uuid.uuid4().hex[:8]}"
    with SharedContext(session, backend=url, keyring=RING, history_versions=4) as ctx:
        first = ctx.set("profile", {"name": "Ada"}).revision
        ctx.set("profile", {"name": "Grace"})
    keys = f"k1:{KEY}"
    versions = json.loads(run("history", session, "profile", "--backend", url, "--json",
                              keys=keys).stdout)  # fmt: skip
    assert [row["value"] for row in versions] == [{"name": "Grace"}, {"name": "Ada"}]
    locked = run("history", session, "profile", "--backend", url, "--json")
    assert locked.returncode == 0, locked.stderr
    assert [row["value"] for row in json.loads(locked.stdout)] == ["(sealed)", "(sealed)"]
    assert "Ada" not in run("history", session, "profile", "--backend", url).stdout
    at = run("inspect", session, "--revision", str(first), "--backend", url, "--json", keys=keys)
    assert [row["value"] for row in json.loads(at.stdout)] == [{"name": "Ada"}]
    at_locked = run("inspect", session, "--revision", str(first), "--backend", url, "--json")
    assert [row["value"] for row in json.loads(at_locked.stdout)] == ["(sealed)"]
    refused = run("fork", session, fork_id, "--revision", str(first), "--backend", url)
    assert refused.returncode == 2
    assert "key ring" in one_error_line(refused)
    forked = run("fork", session, fork_id, "--revision", str(first), "--backend", url, keys=keys)
    assert forked.returncode == 0, forked.stderr
    with SharedContext(fork_id, backend=url, keyring=RING) as fork:
        assert fork.get("profile") == {"name": "Ada"}
    backend = RedisBackend(url)
    for name in (session, fork_id):
        backend.drop_session(name)
    backend.close()


def test_keygen_prints_a_new_key_for_a_ring() -> None:
    first, second = run("keygen"), run("keygen")
    assert first.returncode == 0
    key = first.stdout.strip()
    assert key != second.stdout.strip()
    assert KeyRing({"new": key}).key_id == "new"


def test_inspect_and_export_show_values_with_the_ring_and_sealed_without(
    redis_server: RedisServer, sealed_session: str, tmp_path: Path
) -> None:
    url = redis_server.url
    shown = json.loads(
        run("inspect", sealed_session, "--backend", url, "--json", keys=f"k1:{KEY}").stdout
    )
    assert {row["key"]: row["value"] for row in shown} == {
        "notes": "private notes",
        "profile": {"name": "Ada"},
    }
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"k1:{KEY}\n")
    exported = run("export", sealed_session, "--backend", url, "--keys-file", str(keys_file))
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [record["value"] for record in records] == ["private notes", {"name": "Ada"}]
    assert all("sealed" not in record for record in records)

    locked = run("inspect", sealed_session, "--backend", url, "--json")
    assert locked.returncode == 0, locked.stderr
    rows = json.loads(locked.stdout)
    assert [row["value"] for row in rows] == ["(sealed)", "(sealed)"]
    assert rows[1]["tags"] == ["person"]
    assert rows[1]["source"] == "intake"
    table = run("inspect", sealed_session, "--backend", url)
    assert "profile" in table.stdout
    assert "Ada" not in table.stdout
    exported_locked = run("export", sealed_session, "--backend", url)
    assert "Ada" not in exported_locked.stdout
    assert "private" not in exported_locked.stdout
    locked_records = [json.loads(line) for line in exported_locked.stdout.splitlines()]
    assert all(record["value"] == "(sealed)" and record["sealed"] for record in locked_records)

    refused = run("import", "elsewhere", "--backend", url, stdin=exported_locked.stdout)
    assert "exported from a sealed session without its key ring" in one_error_line(refused)
    copied = run(
        "import",
        f"{sealed_session}-copy",
        "--backend",
        url,
        stdin=exported.stdout,
        keys=f"k1:{KEY}",
    )
    assert copied.returncode == 0, copied.stderr
    with SharedContext(f"{sealed_session}-copy", backend=url, keyring=RING) as copy:
        assert copy.get("profile") == {"name": "Ada"}
        copy.destroy()


def test_watch_shows_a_sealed_sessions_events_without_the_ring(
    redis_server: RedisServer, sealed_session: str
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sharedctx", "watch", sealed_session, "--backend",
         redis_server.url, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={name: value for name, value in ENV.items() if name != "SHAREDCTX_KEYS"},
    )  # fmt: skip
    try:
        assert process.stderr is not None
        assert "watching" in process.stderr.readline()
        with SharedContext(sealed_session, backend=redis_server.url, keyring=RING) as ctx:
            ctx.set("notes", "changed")
        assert process.stdout is not None
        event = json.loads(process.stdout.readline())
        assert event["key"] == "notes"
        assert event["version"] == 2
        assert "changed" not in json.dumps(event)
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_watch_with_the_ring_waits_for_a_sealed_session_and_creates_nothing(
    redis_server: RedisServer,
) -> None:
    session = f"cli-later-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [sys.executable, "-m", "sharedctx", "watch", session, "--backend",
         redis_server.url, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**ENV, "SHAREDCTX_KEYS": f"k1:{KEY}"},
    )  # fmt: skip
    admin = redis.Redis.from_url(redis_server.url)
    try:
        assert process.stderr is not None
        assert "waiting for it" in process.stderr.readline()
        time.sleep(0.3)  # its follower sweeps meanwhile
        assert list(admin.scan_iter(match=f"*{session}*")) == []  # no session, no data key
        with SharedContext(session, backend=redis_server.url, keyring=RING) as ctx:
            ctx.set("notes", "first words")
            assert process.stdout is not None
            event = json.loads(process.stdout.readline())
            assert (event["action"], event["key"], event["version"]) == ("set", "notes", 1)
            ctx.destroy()
    finally:
        admin.close()
        process.terminate()
        process.communicate(timeout=30)


@pytest.mark.parametrize(
    ("keys", "what"),
    [("nonsense", "item 1 of $SHAREDCTX_KEYS"), (f"k1:{KEY[:-6]}", "not 32 bytes")],
)
def test_a_bad_key_ring_is_one_line_that_never_shows_a_key(
    redis_server: RedisServer, keys: str, what: str
) -> None:
    done = run("sessions", "--backend", redis_server.url, keys=keys)
    line = one_error_line(done)
    assert what in line
    assert KEY[:10] not in line
    missing = run("sessions", "--backend", redis_server.url, "--keys-file", "/nonexistent/keys")
    assert "cannot read the key file" in one_error_line(missing)


def test_rekey_rewraps_every_sessions_data_key(
    redis_server: RedisServer, sealed_session: str
) -> None:
    url = redis_server.url
    assert "rekey needs the key ring" in one_error_line(run("rekey", "--backend", url))
    assert "memory" in one_error_line(run("rekey", "--backend", "memory", keys=f"k1:{KEY}"))
    new_key = KeyRing.generate_key()
    done = run("rekey", "--backend", url, keys=f"k2:{new_key},k1:{KEY}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rewrapped the data keys of ")
    assert "'k2'" in done.stdout
    with SharedContext(sealed_session, backend=url, keyring=KeyRing({"k2": new_key})) as ctx:
        assert ctx.get("notes") == "private notes"


def test_delete_and_prune_take_the_data_key_with_the_session(
    redis_server: RedisServer, sealed_session: str
) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    meta = f"sharedctx:{{{sealed_session}}}:meta"
    assert admin.hget(meta, "dk")
    assert run("delete", sealed_session, "--backend", redis_server.url, "--yes").returncode == 0
    assert admin.exists(meta) == 0
    empty = f"cli-empty-{uuid.uuid4().hex[:8]}"
    with SharedContext(empty, backend=redis_server.url, keyring=RING) as ctx:
        ctx.set("gone", 1, ttl=0.05)
    assert admin.hget(f"sharedctx:{{{empty}}}:meta", "dk")
    with SharedContext(empty, backend=redis_server.url, keyring=RING) as ctx:
        time.sleep(0.1)
        ctx.purge_expired()
    assert run("prune", "--backend", redis_server.url, "--yes").returncode == 0
    assert admin.exists(f"sharedctx:{{{empty}}}:meta") == 0
    admin.close()


def test_rekey_goes_on_past_a_session_it_cannot_open_and_says_so(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis()
    stranger = KeyRing({"other": KeyRing.generate_key()})
    with SharedContext("theirs", backend=server.url, keyring=stranger) as ctx:
        ctx.set("k", 1)
    with SharedContext("ours", backend=server.url, keyring=RING) as ctx:
        ctx.set("k", 1)
    new_key = KeyRing.generate_key()
    done = run("rekey", "--backend", server.url, keys=f"k2:{new_key},k1:{KEY}")
    assert done.returncode == 1
    assert "session 'theirs' needs key 'other'" in done.stderr
    assert "rewrapped the data keys of 1 of 2 session(s)" in done.stdout
    assert "1 could not be rewrapped" in done.stdout
    with SharedContext("ours", backend=server.url, keyring=KeyRing({"k2": new_key})) as ctx:
        assert ctx.get("k") == 1


def _stored_values(url: str, session: str) -> dict[bytes, bytes]:
    """Each entry's value as the server holds it (the metadata cut off)."""
    admin = redis.Redis.from_url(url)
    try:
        stored = admin.hgetall(f"sharedctx:{{{session}}}:entries")
    finally:
        admin.close()
    return {key: blob[8 + int(blob[:8]) :] for key, blob in stored.items()}


@pytest.mark.parametrize("source", ["SHAREDCTX_KEYS", "--keys-file"])
def test_the_demo_gives_its_worker_processes_the_key_ring(
    redis_server: RedisServer, tmp_path: Path, source: str
) -> None:
    url = redis_server.url
    options: list[str] = []
    keys: str | None = f"k1:{KEY}"
    if source == "--keys-file":
        keys_file = tmp_path / "keys"
        keys_file.write_text(f"k1:{KEY}\n")
        options, keys = ["--keys-file", str(keys_file)], None
    done = run("demo", "--json", "--backend", url, "--workers", "2", *options, keys=keys)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    session = summary["session_id"]
    stored = _stored_values(url, session)
    minds = [key for key in stored if key.startswith(b"analysis:mind:")]
    assert len(minds) == 6  # written by the worker processes
    assert all(value.startswith(b"\xc1\x01") for value in stored.values())  # all sealed
    with SharedContext(session, backend=url, keyring=RING) as ctx:
        assert all(ctx.get(key.decode()) is not None for key in minds)
        ctx.destroy()


def test_the_demo_with_workers_on_a_sealed_backend_needs_a_ring_its_workers_can_read(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHAREDCTX_KEYS", raising=False)
    backend = RedisBackend(redis_server.url, keyring=RING)
    try:
        options = DemoOptions(backend=backend, workers=2)
        with pytest.raises(InvalidArgumentError, match=r"--keys-file PATH or \$SHAREDCTX_KEYS"):
            options.check()
        keys_file = tmp_path / "keys"
        keys_file.write_text(f"k1:{KEY}\n")
        DemoOptions(backend=backend, workers=2, keys_file=str(keys_file)).check()
        monkeypatch.setenv("SHAREDCTX_KEYS", f"k1:{KEY}")
        options.check()
    finally:
        backend.close()
    # A worker whose ring is not the demo's says so, and writes nothing.
    session = f"demo-ring-{uuid.uuid4().hex[:8]}"
    with pytest.raises(DemoError, match="holds keys k1, not the demo's k2, k1"):
        mind_worker(redis_server.url, session, {"big5": 0.0}, 60.0, WorkerRing(None, ("k2", "k1")))
    admin = RedisBackend(redis_server.url)
    try:
        assert not admin.has_session(session)
    finally:
        admin.close()
