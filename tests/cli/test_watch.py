"""sharedctx watch: started before the pipeline it waits for the session, and it says
when its server stops answering and when it is back (a real redis-server that the
test stops and starts again)."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO

import pytest

from sharedctx import SharedContext

from ..conftest import RedisServer
from ._run import ENV, SHAREDCTX, one_error_line, sharedctx

pytestmark = pytest.mark.redis


class Lines:
    """The lines of a pipe, read on a thread, each waited for with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def next(self, timeout: float = 20) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s") from None

    def until(self, found: Callable[[str], bool], timeout: float = 20) -> list[str]:
        """The lines up to the first that ``found`` accepts (included)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while not seen or not found(seen[-1]):
            seen.append(self.next(max(0.0, deadline - time.monotonic())))
        return seen


class Watching:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        assert process.stderr is not None
        self.process = process
        self.out, self.err = Lines(process.stdout), Lines(process.stderr)

    def interrupt(self) -> int:
        self.process.send_signal(2)  # Ctrl-C
        return self.process.wait(10)


@pytest.fixture
def watch() -> Iterator[Callable[..., Watching]]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Watching:
        process = subprocess.Popen(
            [*SHAREDCTX, "watch", *args, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        started.append(process)
        return Watching(process)

    yield start
    for process in started:
        process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def listed(url: str) -> list[str]:
    done = sharedctx("sessions", "--backend", url, "--json")
    assert done.returncode == 0, done.stderr
    return [row["session"] for row in json.loads(done.stdout)]


def test_watch_waits_for_a_session_that_does_not_exist_yet(
    redis_server: RedisServer, watch: Callable[..., Watching]
) -> None:
    session = f"later-{uuid.uuid4().hex[:6]}"
    watching = watch(session, "job:*", "--backend", redis_server.url)
    said = watching.err.next()
    assert "watching" in said
    assert f"no session {session!r} yet, waiting for it" in said
    time.sleep(0.3)
    assert session not in listed(redis_server.url)  # waiting creates nothing
    with SharedContext(session, backend=redis_server.url) as ctx:
        ctx.set("job:1", 1)  # the pipeline starts
        event = json.loads(watching.out.next())
        assert (event["revision"], event["action"], event["key"]) == (1, "set", "job:1")
        ctx.destroy()
    assert watching.interrupt() == 0


def test_watch_of_an_unknown_session_with_since_ahead_is_one_line(
    redis_server: RedisServer,
) -> None:
    line = one_error_line(
        sharedctx("watch", "never", "--since", "5", "--backend", redis_server.url)
    )
    assert "after" in line
    assert "never" not in listed(redis_server.url)


@pytest.mark.slow
def test_watch_says_when_the_server_is_unreachable_and_when_it_is_back(
    private_redis: Callable[..., RedisServer], watch: Callable[..., Watching]
) -> None:
    server = private_redis()
    session = "watched"
    with SharedContext(session, backend=server.url) as ctx:
        ctx.set("job:1", 1)
    watching = watch(session, "job:*", "--backend", server.url)
    assert "watching" in watching.err.next()
    server.stop()
    down = watching.err.next()
    assert down.startswith("warning: Redis at ")
    assert "is unavailable" in down
    assert "the watch goes on when it is back" in down
    server.start()  # on the same port, empty
    back = watching.err.until(lambda line: "is back" in line)
    assert back[-1].strip() == f"Redis at {server.url} is back: watching again"
    assert all(line.startswith("warning: ") for line in back[:-1])  # the session was lost
    with SharedContext(session, backend=server.url) as ctx:
        ctx.set("job:2", 2)
    event = json.loads(watching.out.next())
    assert (event["action"], event["key"]) == ("set", "job:2")
    assert watching.interrupt() == 0
