"""Functions run in separate OS processes by the multi-process tests (spawn-safe)."""

from __future__ import annotations

import json
import sys
import time

from sharedctx import SharedContext


def increment(url: str, session: str, times: int) -> None:
    """Add 1 to the session's counter `times` times with update()."""
    with SharedContext(session, backend=url) as ctx:
        for _ in range(times):
            ctx.update("counter", lambda value: value + 1, default=0)


def write_keys(url: str, session: str, prefix: str, count: int, pause: float = 0.0) -> None:
    """Write `count` keys under `prefix` (`pause` seconds after each)."""
    with SharedContext(session, backend=url) as ctx:
        for n in range(count):
            ctx.set(f"{prefix}{n}", n)
            if pause:
                time.sleep(pause)


def hold_open(url: str, session: str, seconds: float) -> None:
    """Keep a context of the session open (its expiry sweep runs) for a while."""
    with SharedContext(session, backend=url):
        time.sleep(seconds)


def watch_events(url: str, session: str, count: int, timeout: float) -> None:
    """Print the first `count` events as JSON lines: [revision, action, key]."""
    with SharedContext(session, backend=url) as ctx, ctx.watch() as watch:
        print("ready", flush=True)
        for _ in range(count):
            event = watch.get(timeout=timeout)
            print(json.dumps([event.revision, event.action, event.key]), flush=True)
    sys.stdout.flush()


def increment_through(url: str, session: str, times: int, socket_timeout: float) -> None:
    """Like `increment`, with a deadline for each call (a proxy may drop replies)."""
    from sharedctx import RedisBackend

    backend = RedisBackend(url, socket_timeout=socket_timeout)
    with SharedContext(session, backend=backend) as ctx:
        for _ in range(times):
            ctx.update("counter", lambda value: value + 1, default=0)
    backend.close()


def get_or_set_once(url: str, session: str, started: str, seconds: float, lease: float) -> None:
    """get_or_set one key with a slow factory that records each run; print the value."""
    import os

    from sharedctx import RedisBackend

    backend = RedisBackend(url, lease_ttl=lease)

    def factory() -> str:
        with SharedContext(session, backend=backend) as runs:
            runs.update("factory-runs", lambda n: n + 1, default=0)
            runs.set(started, os.getpid())
        time.sleep(seconds)
        return f"made by {os.getpid()}"

    with SharedContext(session, backend=backend) as ctx:
        print(json.dumps(ctx.get_or_set("result", factory)), flush=True)
    backend.close()


def increment_steadily(
    url: str, session: str, times: int, socket_timeout: float, durability: str
) -> None:
    """Add 1 to the counter `times` times; print how many calls raised (and were
    repeated: only BackendUnavailableError, whose promise is that nothing changed)."""
    from sharedctx import BackendUnavailableError, OutcomeUnknownError, RedisBackend

    backend = RedisBackend(url, socket_timeout=socket_timeout, durability=durability)
    raised = 0
    with SharedContext(session, backend=backend) as ctx:
        done = 0
        while done < times:
            try:
                ctx.update("counter", lambda value: value + 1, default=0)
            except OutcomeUnknownError:
                raise  # the test gives the call time enough to learn every outcome
            except BackendUnavailableError:
                raised += 1
                time.sleep(0.05)
                continue
            done += 1
    backend.close()
    print(json.dumps({"raised": raised}), flush=True)
