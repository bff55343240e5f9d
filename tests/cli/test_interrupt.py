"""Ctrl-C is quiet everywhere: one line on stderr, status 130, and no process left,
the demo's worker processes included. A real SIGINT to the process group of a real
run, as a terminal sends it to every process of its foreground job."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import RedisServer
from ._run import ENV, SHAREDCTX


def _processes() -> dict[int, tuple[int, int]]:
    """Every running process (not a zombie): pid -> (parent pid, process group)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        fields = stat.rpartition(")")[2].split()  # after the command's name
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def family(pid: int) -> set[int]:
    """``pid`` and its running descendants, and the members of its process group."""
    processes = _processes()
    members = {other for other, (_, group) in processes.items() if group == pid}
    members |= {pid} if pid in processes else set()
    grown = True
    while grown:
        children = {other for other, (parent, _) in processes.items() if parent in members}
        grown = not children <= members
        members |= children
    return members


def alive(pids: set[int]) -> set[int]:
    return pids & set(_processes())


def interrupted(*args: str, when: float, processes: int = 1) -> tuple[int, str, str]:
    """Run ``sharedctx ARGS`` as a terminal's foreground job (a process group of its
    own), and once it has ``processes`` processes and ``when`` more seconds have
    passed, press Ctrl-C: SIGINT to the whole process group. Its status, stdout and
    stderr; no process of the run (its children included) may be left afterwards."""
    seen: set[int] = set()
    with subprocess.Popen(
        [*SHAREDCTX, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
    ) as process:
        try:
            deadline = time.monotonic() + 60
            while len(seen) < processes:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the run never started its processes"
                seen |= family(process.pid)
                time.sleep(0.02)
            time.sleep(when)
            seen |= family(process.pid)
            os.killpg(process.pid, signal.SIGINT)
            out, err = process.communicate(timeout=60)
            deadline = time.monotonic() + 10  # the parent is gone: its children must be
            while alive(seen) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not alive(seen), "a process of the run was left behind"
            return process.returncode, out, err
        finally:
            for pid in alive(seen):
                os.kill(pid, signal.SIGKILL)
            process.kill()


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    assert "KeyboardInterrupt" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize(
    ("processes", "when"),
    [
        (4, 1.0),  # the minds are working in the worker processes
        (2, 0.0),  # the worker processes are starting
    ],
)
def test_ctrl_c_during_a_demo_with_worker_processes_is_one_line_and_leaves_none(
    redis_server: RedisServer, processes: int, when: float
) -> None:
    status, out, err = interrupted(
        "demo",
        "--backend",
        redis_server.url,
        "--workers",
        "3",
        "--pace",
        "2",
        "--quiet",
        processes=processes,
        when=when,
    )
    assert status == 130, err
    assert one_line(err) == "sharedctx: interrupted"
    assert out == ""


@pytest.mark.slow
def test_ctrl_c_during_a_demo_in_memory_is_one_line() -> None:
    status, _, err = interrupted("demo", "--pace", "1", "--quiet", when=1.5)
    assert status == 130, err
    assert one_line(err) == "sharedctx: interrupted"
