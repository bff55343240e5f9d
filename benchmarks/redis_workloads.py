"""The Redis workloads: raw redis-py against sharedctx on its Redis backend.

Both talk to a ``redis-server`` this module starts for the run (loopback, a free
port that is never 6379, nothing saved to disk, in a temporary directory) and stops
afterwards. Raw redis-py reads and writes the value pre-encoded as JSON bytes;
sharedctx encodes and decodes it on every call, which is part of its cost. If this
sharedctx has no Redis backend (``SharedContext(session_id, backend=url)`` raises
``TypeError``), its rows are skipped and only raw redis-py is measured.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from harness import Case, Log, Settings, compare
from workloads import VALUE, get_case, set_case, threaded_case

from sharedctx import SharedContext

__all__ = ["BATCH", "CLIENT_COUNTS", "RedisResults", "run_redis"]

KEYS = 1000
"""Keys the latency and concurrency workloads cycle through."""
BATCH = 1000
"""Keys written by one ``set_multiple`` (and by its raw equivalents)."""
CLIENT_COUNTS = (1, 4, 16)
_SESSION = "bench-redis"


@dataclass
class RedisResults:
    """What the Redis workloads measured."""

    server: str
    """The server's version."""
    backend_error: str | None
    """Why sharedctx's rows are missing (None: they are there)."""
    latency_us: dict[str, dict[str, float]] = field(default_factory=dict)
    """Operation -> system -> median µs per call."""
    ops_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    """System -> concurrent clients -> operations per second."""


def run_redis(settings: Settings, thread_settings: Settings, log: Log) -> RedisResults | str:
    """Measure on a fresh server; return why not if ``redis-server`` is not on PATH."""
    executable = shutil.which("redis-server")
    if executable is None:
        return "redis-server is not on PATH"
    with _server(executable) as url:
        client = redis.Redis.from_url(url)
        info = client.info("server")
        results = RedisResults(str(info["redis_version"]), None)
        context, results.backend_error = _open_context(url)
        if results.backend_error is not None:
            log(f"sharedctx Redis backend not available: skipped ({results.backend_error})")
        try:
            _latency(client, context, settings, results)
            log("redis latency done")
            _concurrency(url, context is not None, thread_settings, results)
            log("redis clients done")
        finally:
            client.close()
            if context is not None:
                context.destroy()
    return results


def _open_context(url: str) -> tuple[SharedContext | None, str | None]:
    """A context on the Redis backend, or None and why it is not available."""
    try:
        return SharedContext(_SESSION, backend=url), None
    except TypeError as error:  # the planned keyword is not there yet
        if "backend" not in str(error):
            raise
        return None, str(error)


def _latency(
    client: redis.Redis,
    context: SharedContext | None,
    settings: Settings,
    results: RedisResults,
) -> None:
    payload = json.dumps(VALUE).encode()
    raw_keys = [f"raw:{i:04d}" for i in range(KEYS)]
    raw_batch = {f"raw:batch:{i:04d}": payload for i in range(BATCH)}
    client.mset(dict.fromkeys(raw_keys, payload))

    def raw_mset(repeat: int) -> int:
        for _ in range(repeat):
            client.mset(raw_batch)
        return repeat

    def raw_transaction(repeat: int) -> int:
        for _ in range(repeat):
            pipe = client.pipeline(transaction=True)
            for key, data in raw_batch.items():
                pipe.set(key, data)
            pipe.execute()
        return repeat

    def raw_one_by_one(repeat: int) -> int:
        for _ in range(repeat):
            for key, data in raw_batch.items():
                client.set(key, data)
        return repeat

    cases: dict[str, dict[str, Case]] = {
        "get": {"redis-py": get_case(client.get, raw_keys)},
        "set": {"redis-py": set_case(client.set, raw_keys, payload)},
        f"set {BATCH} keys": {
            "redis-py MSET": raw_mset,
            "redis-py MULTI/EXEC": raw_transaction,
            f"redis-py {BATCH} SETs": raw_one_by_one,
        },
    }
    if context is not None:
        keys = [f"bench:{i:04d}" for i in range(KEYS)]
        batch = {f"bench:batch:{i:04d}": VALUE for i in range(BATCH)}
        context.set_multiple(dict.fromkeys(keys, VALUE))

        put_many = context.set_multiple

        def set_multiple(repeat: int) -> int:
            for _ in range(repeat):
                put_many(batch)
            return repeat

        cases["get"]["sharedctx"] = get_case(context.get, keys)
        cases["set"]["sharedctx"] = set_case(context.set, keys, VALUE)
        cases[f"set {BATCH} keys"]["sharedctx set_multiple"] = set_multiple
    for operation, systems in cases.items():
        results.latency_us[operation] = compare(systems, settings)


def _concurrency(url: str, with_context: bool, settings: Settings, results: RedisResults) -> None:
    """Ops/s of 1, 4 and 16 threads, each with its own client (or context) object,
    alternating a get and a set of existing keys."""
    payload = json.dumps(VALUE).encode()
    raw_keys = [f"raw:{i:04d}" for i in range(KEYS)]
    keys = [f"bench:{i:04d}" for i in range(KEYS)]
    clients: list[redis.Redis] = []
    contexts: list[SharedContext] = []
    cases: dict[tuple[str, int], Case] = {}
    try:
        for count in CLIENT_COUNTS:
            raw = [redis.Redis.from_url(url) for _ in range(count)]
            clients += raw
            cases["redis-py", count] = threaded_case(
                [(client.get, client.set) for client in raw], raw_keys, payload
            )
            if with_context:
                mine = [SharedContext(_SESSION, backend=url) for _ in range(count)]
                contexts += mine
                cases["sharedctx", count] = threaded_case(
                    [(context.get, context.set) for context in mine], keys, VALUE
                )
        medians = compare({f"{s} | {n}": case for (s, n), case in cases.items()}, settings)
    finally:
        for client in clients:
            client.close()
        for context in contexts:
            context.close()
    for system, count in cases:
        results.ops_per_s.setdefault(system, {})[count] = 1e6 / medians[f"{system} | {count}"]


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != 6379:
            return port


@contextmanager
def _server(executable: str) -> Iterator[str]:
    """Run a private ``redis-server``; yield its URL; stop it and remove its directory."""
    port = _free_port()
    directory = Path(tempfile.mkdtemp(prefix="sharedctx-bench-redis-"))
    process = subprocess.Popen(
        [
            executable,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_until_up(process, url)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_until_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 10
    with redis.Redis.from_url(url) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {process.returncode}")
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
    raise RuntimeError("redis-server did not answer PING within 10 s")
