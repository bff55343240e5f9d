"""What one session costs the server: the demo pipeline's session, and an idle one.

These are the inputs of the scaling note (``docs/scaling.md``), measured rather than
guessed: ``INFO commandstats`` counts the script calls and the server's time they took.

- **A pipeline session** (:func:`run_load`): ``sharedctx demo --pace 0`` on the
  Redis backend with 3 worker processes (the demo's persona pipeline: extraction, six
  minds, synthesis, five validations, a checkpoint): its changes (the session's
  revision), script calls, server time, memory, and wall time.
- **An open session that nobody writes to**: ``IDLE_SESSIONS`` contexts open in this
  process for a few seconds; what the follower's sweep of each costs (one script
  call per session per ``purge_interval``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

import redis
from harness import Log
from servers import SHAREDCTX_COMMAND, command_stats
from workloads import VALUE

from sharedctx import RedisBackend, SharedContext

__all__ = ["IDLE_SESSIONS", "LoadResults", "run_load"]

IDLE_SESSIONS = 100


@dataclass
class LoadResults:
    """One demo session's cost, and an idle open session's."""

    demo_seconds: float
    """Wall time of ``sharedctx demo --pace 0 --workers 3`` (process start included)."""
    demo_changes: int
    """Changes the demo made to its session (its last revision)."""
    demo_calls: int
    """Script calls the demo's processes made (the sweeps included)."""
    demo_server_ms: float
    """Server time of those calls."""
    demo_bytes: int
    """Memory of the session's keys on the server at the end (``MEMORY USAGE``)."""
    idle_sessions: int
    idle_calls_per_session_s: float
    """Script calls per open idle session per second (the sweeps)."""
    idle_server_us_per_call: float
    """Server time of one sweep of an idle session."""
    purge_interval_s: float


def run_load(url: str, idle_seconds: float, log: Log) -> LoadResults:
    """Measure both on the server at ``url`` (its statistics are reset)."""
    with redis.Redis.from_url(url) as client:
        client.config_resetstat()
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable, "-m", "sharedctx", "demo", "--json", "--pace", "0",
                "--backend", url, "--workers", "3",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )  # fmt: skip
        demo_seconds = time.perf_counter() - started
        calls = command_stats(client, SHAREDCTX_COMMAND)
        session = json.loads(done.stdout)["session_id"]
        backend = RedisBackend(url)
        try:
            with SharedContext(session, backend=backend) as context:
                changes = context.revision
            demo_bytes = sum(
                int(client.memory_usage(key) or 0)
                for key in backend.keys_of(session)
                if client.exists(key)
            )
            backend.drop_session(session)
        finally:
            backend.close()
        log("demo session measured")

        backend = RedisBackend(url)
        purge_interval = backend.purge_interval
        contexts = [SharedContext(f"bench-idle-{i}", backend=backend) for i in range(IDLE_SESSIONS)]
        try:
            for context in contexts:
                context.set("k", VALUE)
            time.sleep(2 * backend.purge_interval)  # every session is swept already
            client.config_resetstat()
            time.sleep(idle_seconds)
            idle = command_stats(client, SHAREDCTX_COMMAND)
        finally:
            for context in contexts:
                context.destroy()
            backend.close()
        log("idle sessions measured")
    return LoadResults(
        demo_seconds=demo_seconds,
        demo_changes=changes,
        demo_calls=int(calls.get("calls", 0)),
        demo_server_ms=float(calls.get("usec", 0)) / 1000,
        demo_bytes=demo_bytes,
        idle_sessions=IDLE_SESSIONS,
        idle_calls_per_session_s=int(idle.get("calls", 0)) / IDLE_SESSIONS / idle_seconds,
        idle_server_us_per_call=float(idle.get("usec_per_call", 0)),
        purge_interval_s=purge_interval,
    )
