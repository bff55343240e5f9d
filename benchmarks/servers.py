"""The Redis servers a run starts for itself: one ``redis-server``, or a local Redis Cluster.

Every server listens on loopback, on a free port that is never 6379, saves nothing
to disk, lives in a temporary directory, and is stopped (and its directory removed)
when its ``with`` block ends, whatever happened inside. The cluster is the tests'
``LocalCluster`` (``tests/_cluster.py``: real ``redis-server`` nodes formed by
``redis-cli --cluster create``), imported from the repository root.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from tests._cluster import LocalCluster

__all__ = [
    "SHAREDCTX_COMMAND",
    "cluster",
    "command_stats",
    "missing_cluster_tools",
    "missing_server",
    "redis_server",
]

ROOT = Path(__file__).resolve().parents[1]

SHAREDCTX_COMMAND = "fcall"
"""The command that runs every sharedctx call on the server (its Redis function): its
line of ``INFO commandstats`` counts sharedctx's calls and the server time they took."""


def command_stats(client: redis.Redis, command: str) -> dict[str, float]:
    """``INFO commandstats`` of one command (``calls``, ``usec``...; empty if unused)."""
    stats: dict[str, float] = client.info("commandstats").get(f"cmdstat_{command}", {})
    return stats


def missing_server() -> str | None:
    """Why no server can be started (None: it can)."""
    return None if shutil.which("redis-server") else "redis-server is not on PATH"


def missing_cluster_tools() -> str | None:
    """Why no cluster can be started (None: it can)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        return "redis-server or redis-cli is not on PATH"
    try:
        _local_cluster_class()
    except ImportError as error:  # tests/_cluster.py needs pytest (the dev extra)
        return f"tests/_cluster.py cannot be imported: {error}"
    return None


@contextmanager
def redis_server(*options: str) -> Iterator[str]:
    """Run a private ``redis-server``; yield its URL; stop it and remove its directory."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not on PATH")
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
            *options,
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
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def cluster(masters: int, replicas: int, *, node_timeout_ms: int = 5000) -> Iterator[LocalCluster]:
    """Run a local Redis Cluster (see the module docstring); stop it afterwards."""
    local_cluster = _local_cluster_class()
    with local_cluster(masters, replicas, node_timeout_ms=node_timeout_ms) as started:
        yield started


def _local_cluster_class() -> type[LocalCluster]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests._cluster import LocalCluster

    return LocalCluster


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != 6379:
            return port


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
