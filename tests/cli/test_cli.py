"""The sharedctx command, run as a real subprocess: the demo, and the session tools."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sharedctx import SharedContext, StandardKeys
from sharedctx._glob import compile_glob

from ..conftest import RedisServer

ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def sharedctx(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sharedctx", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        check=False,
    )


def demo_json(*args: str) -> dict[str, Any]:
    done = sharedctx("demo", "--json", *args)
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def check_summary(summary: dict[str, Any], minds: int) -> None:
    # session:info, pipeline:status, 2 extraction, the minds, orchestrator, dna,
    # synthesis result, 5 tasks, validation summary, checkpoint status and decision,
    # manifest.
    assert summary["entries"] == 16 + minds
    assert len(summary["table"]) == summary["entries"]
    assert len(summary["minds"]) == minds
    assert summary["events"] == sum(summary["events_by_phase"].values())
    assert summary["events_by_phase"]["analysis"] == minds + 1
    assert summary["decision"] in {"approve", "revise", "reject"}
    assert [check["task_id"] for check in summary["checks"]] == [f"EX-00{n}" for n in range(1, 6)]
    assert summary["profile"]["traits"]
    keys = [row["key"] for row in summary["table"]]
    patterns = [value for name, value in vars(StandardKeys).items() if name.isupper()]
    for key in keys:  # everything the pipeline wrote is under a standard key
        assert any(compile_glob(pattern).match(key) for pattern in patterns), key
    assert all(row["ttl_left"] is not None for row in summary["table"])


def test_demo_runs_the_whole_pipeline_and_reports_json() -> None:
    summary = demo_json("--seed", "3")
    check_summary(summary, minds=6)
    assert summary["decision"] == "approve"
    assert summary["validation"] == {"passed": 5, "failed": 0, "score": 1.0}
    assert summary["backend"] == "memory"


def test_demo_options_change_the_run() -> None:
    summary = demo_json("--minds", "2", "--ttl", "120")
    check_summary(summary, minds=2)
    assert summary["minds"] == ["lexicon", "rhythm"]
    assert all(row["ttl_left"] <= 120 for row in summary["table"])


def test_demo_is_deterministic_for_a_seed() -> None:
    first, second = demo_json("--seed", "7"), demo_json("--seed", "7")
    assert first["validation"] == second["validation"]
    assert first["profile"] == second["profile"]
    assert [row["size"] for row in first["table"]] == [row["size"] for row in second["table"]]


def test_demo_prints_its_timeline_and_result_plainly_to_a_pipe() -> None:
    done = sharedctx("demo")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout  # no colour codes, no redrawing, in a pipe
    lines = done.stdout.splitlines()
    phases = [line.split()[:2] for line in lines if line.startswith("  ")]
    for phase in ("extraction", "analysis", "synthesis", "validation", "checkpoint"):
        assert [phase, "done"] in phases  # a row per phase, once it is done
    assert any(line.startswith("analysis:mind:lexicon ") for line in lines)
    table = [line for line in lines if line.startswith("validation:task:EX-005 ")]
    assert "phase:validation, EX-005" in table[0]  # the tags are not folded into 80 columns
    for section in ("DNA profile of Maren Holt", "Validation: 5 of 5", "Checkpoint cp-1"):
        assert any(line.startswith(section) for line in lines), section
    assert "22 entries" in lines[-1]
    assert "decision: approve" in lines[-1]


def test_demo_quiet_prints_only_the_summary_line() -> None:
    done = sharedctx("demo", "--quiet")
    assert done.returncode == 0
    assert len(done.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--minds", "0"], "--minds"),
        (["demo", "--ttl", "-1"], "--ttl must be > 0"),
        (["demo", "--ttl", "nan"], "--ttl must be > 0"),
        (["demo", "--ttl", "1e12"], "at most 315360000 (10 years) seconds"),
        (["demo", "--ttl", "0.01", "--timeout", "3600"], "--ttl 0.01 s is shorter than the run"),
        (["demo", "--timeout", "0"], "--timeout must be > 0 seconds"),
        (["demo", "--timeout", "0.001", "--pace", "0.5"], "from the minds"),
        (["demo", "--pace", "nan"], "--pace must be >= 0"),
        (["demo", "--pace", "1e9"], "--pace must be >= 0 and at most 60"),
        (["demo", "--workers", "2"], "Redis"),
        (["sessions"], "--backend"),
        (["sessions", "--backend", "http://example"], "redis://"),
        (["inspect", "s", "--backend", "redis://127.0.0.1:1/0"], "unavailable"),
        (["inspect", "s", "[bad", "--backend", "memory"], "backend"),
    ],
)
def test_bad_input_gives_one_line_and_status_2(args: list[str], message: str) -> None:
    done = sharedctx(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_passwords_never_appear_in_errors() -> None:
    done = sharedctx("sessions", "--backend", "redis://:hunter2@127.0.0.1:1/0")
    assert done.returncode == 2
    assert "hunter2" not in done.stderr
    assert "***" in done.stderr


def test_without_rich_every_command_says_what_to_install() -> None:
    # A fresh interpreter where rich cannot be imported, as without the cli extra.
    script = (
        "import sys, json, io, contextlib\n"
        "sys.modules['rich'] = None\n"
        "import sharedctx.cli\n"
        "found = []\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        status = sharedctx.cli.main(argv)\n"
        "    found.append([status, err.getvalue()])\n"
        "print(json.dumps(found))\n"
    )
    commands = [["demo"], ["sessions"], ["inspect", "s"], ["watch", "s"], ["--version"]]
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(commands)],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
    )
    for status, errors in json.loads(done.stdout):
        assert status == 2
        assert errors.count("\n") == 1
        assert "pip install 'sharedctx[cli]'" in errors


def test_the_library_never_imports_rich() -> None:
    script = (
        "import sys\n"
        "import sharedctx, sharedctx.cli\n"
        "from sharedctx import PipelineContext, SharedContext\n"
        "import sharedctx.demo._persona\n"
        "assert 'rich' not in sys.modules, sorted(m for m in sys.modules if 'rich' in m)\n"
    )
    subprocess.run([sys.executable, "-c", script], env=ENV, check=True)


def test_bench_runs_from_the_checkout(tmp_path: Path) -> None:
    done = sharedctx("bench", "--quick", "--only", "memory", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "bytes per entry" in done.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["memory_bytes"]) == {
        "dict+lock",
        "cachetools+lock",
        "reference",
        "sharedctx",
    }


@pytest.mark.redis
def test_demo_runs_across_worker_processes_on_redis(redis_server: RedisServer) -> None:
    summary = demo_json("--backend", redis_server.url, "--workers", "3")
    check_summary(summary, minds=6)
    assert summary["workers"] == 3
    session = summary["session_id"]

    listed = sharedctx("sessions", "--backend", redis_server.url, "--json")
    assert session in json.loads(listed.stdout)

    inspected = sharedctx("inspect", session, "--backend", redis_server.url, "--json")
    assert inspected.returncode == 0, inspected.stderr
    rows = json.loads(inspected.stdout)
    assert [row["key"] for row in rows] == [row["key"] for row in summary["table"]]
    minds = sharedctx("inspect", session, "analysis:mind:*", "--backend", redis_server.url)
    rows_shown = [line for line in minds.stdout.splitlines() if line.startswith("analysis:mind:")]
    assert len(rows_shown) == 6
    SharedContext(session, backend=redis_server.url).destroy()


@pytest.mark.redis
def test_inspect_of_an_unknown_session_fails_cleanly(redis_server: RedisServer) -> None:
    done = sharedctx("inspect", "no-such-session", "--backend", redis_server.url)
    assert done.returncode == 2
    assert "no session 'no-such-session'" in done.stderr
    no_db = redis_server.url.rsplit("/", 1)[0] + "/99"
    done = sharedctx("sessions", "--backend", no_db)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.redis
def test_watch_tails_events_until_interrupted(redis_server: RedisServer) -> None:
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sharedctx",
            "watch",
            "tail-me",
            "job:*",
            "--backend",
            redis_server.url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert watcher.stdout is not None
        assert "watching tail-me" in watcher.stdout.readline()
        with SharedContext("tail-me", backend=redis_server.url) as ctx:
            ctx.set("other", 1)
            ctx.set("job:1", {"n": 1}, source="writer")
            ctx.delete("job:1")
        lines = [watcher.stdout.readline() for _ in range(2)]
        assert "set" in lines[0]
        assert "job:1" in lines[0]
        assert "writer" in lines[0]
        assert "delete" in lines[1]
        time.sleep(0.1)
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(10) == 0
        assert "Traceback" not in (watcher.stderr.read() if watcher.stderr else "")
    finally:
        watcher.kill()
        SharedContext("tail-me", backend=redis_server.url).destroy()
