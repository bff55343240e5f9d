"""The servers a run starts for itself: one ``redis-server``, a local Redis Cluster, or
a PostgreSQL server (for LangGraph's ``PostgresStore``, the peer comparison).

Every server listens on loopback, on a free port that is never 6379 nor 5432, lives
in a temporary directory, and is stopped (and its directory removed) when its
``with`` block ends, whatever happened inside. Redis saves nothing to disk;
PostgreSQL, to be compared on the same terms, does not wait for the disk either
(``fsync``, ``synchronous_commit`` and ``full_page_writes`` off): both keep their data
in memory as far as the run can tell. The cluster is the tests' ``LocalCluster``
(``tests/_cluster.py``: real ``redis-server`` nodes formed by ``redis-cli --cluster
create``), imported from the repository root. PostgreSQL's programs come from
Debian's ``postgresql`` package (``make bench`` installs it, and keeps it from making
a cluster of its own); as root, the server runs as the package's ``postgres`` user,
since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from tests._cluster import LocalCluster

__all__ = [
    "SHAREDCTX_COMMAND",
    "cluster",
    "command_stats",
    "missing_cluster_tools",
    "missing_postgres",
    "missing_server",
    "postgres_server",
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
        if port not in (6379, 5432):
            return port


# -- PostgreSQL ------------------------------------------------------------------------

POSTGRES_USER = "bench"
"""The database user the run makes (``initdb -U``), trusted on loopback."""


def missing_postgres() -> str | None:
    """Why no PostgreSQL server can be started (None: it can)."""
    if _postgres_programs() is None:
        return "PostgreSQL's initdb is not installed (make bench installs it with apt-get)"
    if os.geteuid() == 0 and _system_user("postgres") is None:
        return "as root, PostgreSQL must run as the user postgres, which does not exist"
    return None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Run a private PostgreSQL server; yield its URL (user ``POSTGRES_USER``, database
    ``postgres``); stop it and remove its directory."""
    programs = _postgres_programs()
    if programs is None:
        raise RuntimeError("PostgreSQL's initdb is not installed")
    owner = _system_user("postgres") if os.geteuid() == 0 else None
    as_owner: dict[str, Any] = (
        {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    )
    port = _free_port()
    directory = Path(tempfile.mkdtemp(prefix="sharedctx-bench-postgres-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        if owner is not None:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        data = directory / "data"
        subprocess.run(
            [
                programs / "initdb", "-D", str(data), "-U", POSTGRES_USER, "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-sync",
            ],
            check=True, capture_output=True, timeout=120, **as_owner,
        )  # fmt: skip
        process = subprocess.Popen(
            [
                programs / "postgres", "-D", str(data), "-p", str(port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={directory}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **as_owner,
        )  # fmt: skip
        url = f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}/postgres"
        _wait_for_postgres(process, url)
        yield url
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def _postgres_programs() -> Path | None:
    """The directory of ``initdb`` and ``postgres``: on PATH, or Debian's newest."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).resolve().parent

    def version(initdb: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", initdb.parts[-3]))

    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    return installed[-1].parent if installed else None


def _system_user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _wait_for_postgres(process: subprocess.Popen[bytes], url: str) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with status {process.returncode}")
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise RuntimeError("PostgreSQL did not accept a connection within 30 s")


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
