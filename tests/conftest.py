"""Test fixtures: a fake clock, and a real redis-server started for this session.

The server listens on a free loopback port (never 6379), keeps nothing on disk, and
is stopped when the session ends. If ``redis-server`` is not installed the tests
that need it are skipped with a loud message, except under ``CI=true``, where they
fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sharedctx import Backend, MemoryBackend, SharedContext
from sharedctx.backends import SessionAdmin, open_backend
from sharedctx.testing import ContextFactory, FakeClock, contexts

from ._cluster import private_cluster, redis_cluster  # noqa: F401 (the Redis Cluster fixtures)
from ._proxy import FaultProxy
from .backends._recording import RecordingBackend

__all__ = ["ContextFactory", "FakeClock", "RedisServer"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    """Each test starts with the process-wide memory backend empty (as each Redis
    test uses sessions of its own): what one test stored is not another's."""
    yield
    MemoryBackend.shared().close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked(clock: FakeClock) -> Iterator[SharedContext]:
    """A memory context on a fake clock: for the rules that need time to move."""
    with SharedContext("test-session", clock=clock) as context:
        yield context


@pytest.fixture(
    params=[
        "memory",
        "recording",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=[pytest.mark.redis, pytest.mark.cluster]),
    ]
)
def backend(request: pytest.FixtureRequest) -> Iterator[str | Backend]:
    """The backend argument for SharedContext: "memory", a third backend written in
    tests/ against the public protocol (``backends/_recording.py``), the URL of the
    test session's redis-server, or that of its Redis Cluster (3 masters, 3 replicas)."""
    if request.param == "redis":
        yield str(request.getfixturevalue("redis_server").url)
    elif request.param == "cluster":
        yield str(request.getfixturevalue("redis_cluster").url)
    elif request.param == "recording":
        recording = RecordingBackend()
        yield recording
        recording.close()
    else:
        yield "memory"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend_url(request: pytest.FixtureRequest) -> str:
    """A backend as a string, for tests that hand it to another process: "memory", or
    the test session's redis-server URL."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_server").url)
    return "memory"


@pytest.fixture
def make_context(backend: str | Backend) -> Iterator[ContextFactory]:
    """Make contexts on the backend under test; each is destroyed afterwards."""
    yield from contexts(backend)


@pytest.fixture
def ctx(make_context: ContextFactory) -> SharedContext:
    """A context on each backend, with default options."""
    return make_context()


@pytest.fixture
def admin(backend: str | Backend) -> Iterator[SessionAdmin]:
    """What ``sharedctx sessions`` asks of the backend under test (its sessions,
    without opening them); the third backend has none: those tests skip it."""
    opened, owned = open_backend(backend) if isinstance(backend, str) else (backend, False)
    if not isinstance(opened, SessionAdmin):
        pytest.skip(f"{opened!r} lists no sessions")
    yield opened
    if owned:
        opened.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class RedisServer:
    """A redis-server process owned by the test session (it can be stopped and restarted)."""

    def __init__(self, executable: str, *options: str) -> None:
        self.executable = executable
        self.options = options
        self.port = _free_port()
        # Never the default port; and low enough for a cluster bus port (port + 10000).
        while self.port == 6379 or self.port > 55535:
            self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="sharedctx-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--protected-mode", "yes",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):  # up (with a password)
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _redis_executable() -> str:
    executable = shutil.which("redis-server")
    if executable is None:
        message = (
            "redis-server is not installed: the Redis tests cannot run "
            "(`make test` installs it with apt-get where it can)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(f"\n{'!' * 70}\n{message}\n{'!' * 70}")
    return executable


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's shared redis-server."""
    server = RedisServer(_redis_executable())
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_redis() -> Iterator[Callable[..., RedisServer]]:
    """Start a redis-server of the test's own (one it may stop, restart or configure)."""
    servers: list[RedisServer] = []

    def start(*options: str) -> RedisServer:
        server = RedisServer(_redis_executable(), *options)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def fault_proxy(redis_server: RedisServer) -> Iterator[FaultProxy]:
    """A fault-injecting TCP proxy in front of the session's redis-server."""
    with FaultProxy(redis_server.port) as proxy:
        yield proxy
