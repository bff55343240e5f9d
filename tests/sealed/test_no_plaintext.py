"""No plaintext anywhere on the server: a sealed session's canary values, set,
overwritten (kept as past versions, read back at a revision and forked), deleted,
expired, watched from another process and read back, leave no 16-byte window of
themselves in any key (``DUMP``, ``HGETALL``, ``XRANGE``), in the
RDB file after ``SAVE``, in the AOF, or in ``MONITOR``'s output. The same run on a
plain session, with other canaries, shows that the search finds them where they are.
Then crypto-shredding: what ``destroy()`` leaves, and a backup made before it."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from sharedctx import KeyRing, KeyUnavailableError, RedisBackend, SharedContext

from ..conftest import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).parents[2]
WINDOW = 16


def _canaries(count: int) -> list[bytes]:
    return [os.urandom(4096) for _ in range(count)]


def found_windows(data: bytes, canaries: list[bytes]) -> int:
    """How many places of ``data`` hold a 16-byte window of a canary. Any such window
    holds one of the canary's 8-byte blocks at an offset that is a multiple of 8, so
    the blocks are looked up, then each hit is widened to 16 bytes."""
    blocks: dict[bytes, list[tuple[bytes, int]]] = {}
    for canary in canaries:
        for at in range(0, len(canary) - 7, 8):
            blocks.setdefault(canary[at : at + 8], []).append((canary, at))
    hits = 0
    for position in range(len(data) - 7):
        for canary, at in blocks.get(data[position : position + 8], ()):
            for shift in range(9):
                start, begin = position - shift, at - shift
                if (
                    start >= 0 and begin >= 0 and begin + WINDOW <= len(canary)
                    and data[start : start + WINDOW] == canary[begin : begin + WINDOW]
                ):  # fmt: skip
                    hits += 1
                    break
    return hits


_ESCAPE = re.compile(rb'\\(x[0-9a-fA-F]{2}|[\\"nrtab])')
_SIMPLE = {
    b"\\": b"\\",
    b'"': b'"',
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"a": b"\a",
    b"b": b"\b",
}


def unescape_monitor(text: bytes) -> bytes:
    """MONITOR's lines with each argument's escapes (``\\xNN``...) turned back to bytes."""
    return _ESCAPE.sub(
        lambda match: (
            bytes([int(match.group(1)[1:], 16)])
            if match.group(1).startswith(b"x")
            else _SIMPLE[match.group(1)]
        ),
        text,
    )


class Artifacts:
    """Everything an attacker with the server's files, a MONITOR or a password sees."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.admin = redis.Redis(port=server.port)
        monitor_path = server.directory / "monitor.log"
        self._monitor_file = monitor_path.open("wb")
        self.monitor = subprocess.Popen(
            ["redis-cli", "-p", str(server.port), "monitor"], stdout=self._monitor_file
        )
        time.sleep(0.3)  # MONITOR is on before the run

    def collect(self) -> dict[str, bytes]:
        admin = self.admin
        found: dict[str, bytes] = {}
        for key in admin.scan_iter(count=1000):
            found[f"DUMP {key!r}"] = admin.dump(key) or b""
            kind = admin.type(key)
            if kind == b"hash":
                found[f"HGETALL {key!r}"] = b"".join(a + b for a, b in admin.hgetall(key).items())
            elif kind == b"stream":
                found[f"XRANGE {key!r}"] = repr(admin.xrange(key)).encode()
                found[f"XRANGE raw {key!r}"] = b"".join(
                    value for _, fields in admin.xrange(key) for value in fields.values()
                )
        admin.save()
        found["RDB"] = (self.server.directory / "dump.rdb").read_bytes()
        found["AOF"] = b"".join(
            path.read_bytes()
            for path in sorted((self.server.directory / "appendonlydir").iterdir())
        )
        time.sleep(0.2)
        self.monitor.terminate()
        self.monitor.wait(10)
        self._monitor_file.close()
        found["MONITOR"] = unescape_monitor((self.server.directory / "monitor.log").read_bytes())
        self.admin.close()
        return found


def _workload(url: str, namespace: str, keyring: KeyRing | None, canaries: list[bytes]) -> None:
    """Set, overwrite, delete, expire, watch from another process, read back."""
    session = f"canary-{uuid.uuid4().hex[:8]}"
    backend = RedisBackend(url, namespace=namespace, keyring=keyring, purge_interval=0.1)
    env = {**os.environ, "SHAREDCTX_KEYS": os.environ.get("TEST_RING", "")}
    with SharedContext(session, backend=backend, history_versions=4) as ctx:
        ctx.set("created", 0)  # the session (and its data key) exists for the watcher
        watcher = None
        if keyring is not None:
            watcher = subprocess.Popen(
                [sys.executable, "-m", "tests.sealed._processes", "watch_values", url,
                 namespace, session, str(len(canaries))],
                stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env,
            )  # fmt: skip
            assert watcher.stdout is not None
            assert watcher.stdout.readline().strip() == "ready"
        with ctx.watch() as watch:
            ctx.set("kept", canaries[0], tags=["canary"])
            ctx.set("kept", canaries[1])  # overwritten: the first stays beside its event
            ctx.set("deleted", canaries[2])
            ctx.delete("deleted")
            ctx.set("expired", canaries[3], ttl=0.2)
            ctx.set_multiple({f"many:{n}": canaries[n] for n in range(4, len(canaries) - 1)})
            ctx.update("updated", lambda _: canaries[-1], default=None)
            events = [watch.get(timeout=5) for _ in range(len(canaries) + 2)]
            assert {event.entry.value for event in events if event.action == "set"} == set(canaries)
        time.sleep(0.5)
        assert ctx.purge_expired() + 1 >= 1
        assert not ctx.has("expired")
        assert ctx.get("kept") == canaries[1]
        assert ctx.get_multiple([f"many:{n}" for n in range(4, len(canaries) - 1)])
        # The past versions of "kept", read back every way history reads, and forked.
        first = ctx.history("kept")[1]
        assert first.value == canaries[0]
        assert ctx.get("kept", revision=first.revision) == canaries[0]
        at = ctx.revision  # (a snapshot reads back to the last removal)
        ctx.set("kept", canaries[0])
        assert ctx.snapshot(at).value("kept") == canaries[1]
        with ctx.fork(f"{session}-fork", revision=at) as fork:
            assert fork.get("kept") == canaries[1]
        if watcher is not None:
            assert watcher.stdout is not None
            seen = {watcher.stdout.readline().strip() for _ in canaries}
            assert seen == {hashlib.sha256(canary).hexdigest() for canary in canaries}
            watcher.wait(30)
            watcher.stdout.close()
    backend.close()


@pytest.fixture
def persisted(private_redis: Callable[..., RedisServer]) -> RedisServer:
    """A server that writes an AOF (every write, fsynced) and an RDB on SAVE."""
    return private_redis("--appendonly", "yes", "--appendfsync", "always")


def test_no_16_byte_window_of_a_sealed_value_reaches_the_server(
    persisted: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = KeyRing.generate_key()
    monkeypatch.setenv("TEST_RING", f"k:{key}")
    ring = KeyRing({"k": key})
    sealed, plain = _canaries(10), _canaries(10)
    artifacts = Artifacts(persisted)
    _workload(persisted.url, "sealed", ring, sealed)
    _workload(persisted.url, "plain", None, plain)
    found = artifacts.collect()
    assert {"RDB", "AOF", "MONITOR"} <= set(found)
    assert any(name.startswith("DUMP") and b"sealed:" in name.encode() for name in found)
    # The search finds plain values where they are (so that finding none means none):
    for place in ("RDB", "AOF", "MONITOR"):
        assert found_windows(found[place], plain) > 0, place
    assert any(found_windows(data, plain) for name, data in found.items() if "DUMP" in name)
    # ... the history's past values and the fork's among them:
    histories = [name for name in found if name.startswith("HGETALL") and ":history'" in name]
    assert any("plain:" in name and found_windows(found[name], plain) for name in histories)
    assert any("sealed:" in name for name in histories)
    assert any("-fork}" in name and "plain:" in name for name in found)
    assert any("-fork}" in name and "sealed:" in name for name in found)
    leaks = {name: hits for name, data in found.items() if (hits := found_windows(data, sealed))}
    assert leaks == {}


def test_destroy_takes_the_data_key_and_a_retired_key_shreds_older_backups(
    private_redis: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """``destroy()`` deletes the wrapped data key with the values: nothing of the session
    is in the server or in a file written after it. A backup made before it still
    holds the wrapped data key, which the key that wrapped it opens: such a backup is
    shredded when that key is retired (every session rekeyed, the old key dropped from
    every ring), and then no key of the ring opens it."""
    server = private_redis()
    old_key, new_key = KeyRing.generate_key(), KeyRing.generate_key()
    old = KeyRing({"old": old_key})
    canaries = _canaries(4)
    session = "shredded"
    backend = RedisBackend(server.url, keyring=old)
    ctx = SharedContext(session, backend=backend)
    for n, canary in enumerate(canaries):
        ctx.set(f"k{n}", canary)
    admin = redis.Redis(port=server.port)
    admin.save()
    backup = tmp_path / "backup"
    backup.mkdir()
    shutil.copy(server.directory / "dump.rdb", backup / "dump.rdb")
    assert found_windows((backup / "dump.rdb").read_bytes(), canaries) == 0

    ctx.destroy()
    assert list(admin.scan_iter(match=f"*{session}*")) == []
    admin.save()
    after = (server.directory / "dump.rdb").read_bytes()
    assert session.encode() not in after
    assert found_windows(after, canaries) == 0
    admin.close()
    backend.close()

    copy = private_redis("--dir", str(backup), "--dbfilename", "dump.rdb")
    # Until its key is retired, the backup's session opens with it (the data key was in
    # the backup too):
    with SharedContext(session, backend=RedisBackend(copy.url, keyring=old)) as restored:
        assert restored.get("k0") == canaries[0]
    # Retiring the key: every live session is rekeyed (here: the one on the copy is not,
    # as a backup is not), and the rings hold the new key only.
    new_only = RedisBackend(copy.url, keyring=KeyRing({"new": new_key}))
    with SharedContext(session, backend=new_only) as restored:
        for n in range(len(canaries)):
            with pytest.raises(KeyUnavailableError) as error:
                restored.get(f"k{n}")
            assert error.value.key_id == "old"
            assert error.value.session_id == session
    new_only.close()
