"""The sharedctx command, run as a real subprocess: the demo, the session tools, errors."""

from __future__ import annotations

import importlib.metadata
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharedctx import RedisBackend, SharedContext, StandardKeys
from sharedctx._glob import compile_glob

from ..conftest import RedisServer
from ._run import ENV, one_error_line, sharedctx, start_watch

ROOT = Path(__file__).resolve().parents[2]


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


# -- the demo ----------------------------------------------------------------------


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


def test_demo_timeout_holds_on_every_backend(backend_url: str) -> None:
    # No pace: the minds deliver as fast as they can, which is never within 1 ms. On
    # Redis the wait once came back with the results after the deadline (Python
    # 3.11's wait_for in redis-py swallowed the cancellation) and the run succeeded.
    for _ in range(3):
        done = sharedctx("demo", "--timeout", "0.001", "--quiet", "--backend", backend_url)
        line = one_error_line(done)
        assert "--timeout 0.001 s" in line
        assert "a larger --timeout" in line
        assert done.stdout == ""


def test_a_closed_pipe_ends_the_demo_quietly() -> None:
    for args in (["demo"], ["demo", "--json"]):
        demo = subprocess.Popen(
            [sys.executable, "-m", "sharedctx", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        assert demo.stdout is not None
        demo.stdout.close()  # like `sharedctx demo | head -0`
        _, errors = demo.communicate(timeout=60)
        assert demo.returncode == 1
        assert errors == b""


# -- errors: one line, status 2 ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Each a case the CLI once got wrong, or could: a usage error, a bad value, a
        # run that cannot work.
        ([], "COMMAND"),
        (["bench"], "invalid choice: 'bench'"),
        (["demo", "--nope"], "--nope"),
        (["demo", "--json", "--quiet"], "not allowed with"),
        (["demo", "--minds", "x"], "--minds"),
        (["demo", "--minds", "0"], "--minds must be between 1 and 6"),
        (["demo", "--minds", "7"], "--minds must be between 1 and 6"),
        (["demo", "--minds", "-1"], "--minds must be between 1 and 6"),
        (["demo", "--seed", "1.5"], "--seed"),
        (["demo", "--ttl", "-1"], "--ttl must be > 0"),
        (["demo", "--ttl", "nan"], "--ttl must be > 0"),
        (["demo", "--ttl", "inf"], "--ttl must be > 0"),
        (["demo", "--ttl", "1e12"], ("--ttl", "at most", "(10 years)")),
        (["demo", "--ttl", "0.01", "--timeout", "3600"], "--ttl 0.01 s is shorter than the run"),
        (["demo", "--timeout", "0"], "--timeout must be > 0 seconds"),
        (["demo", "--timeout", "-1"], "--timeout must be > 0 seconds"),
        (["demo", "--timeout", "nan"], "--timeout must be > 0 seconds"),
        (["demo", "--timeout", "0.001", "--pace", "0.5"], "from the minds"),
        (["demo", "--pace", "-1"], "--pace must be >= 0"),
        (["demo", "--pace", "nan"], "--pace must be >= 0"),
        (["demo", "--pace", "1e9"], "--pace must be >= 0 and at most 60"),
        (["demo", "--pace", "fast"], "--pace"),
        (["demo", "--workers", "-1"], "--workers must be >= 0"),
        (["demo", "--workers", "two"], "--workers"),
        (["demo", "--workers", "2"], "Redis"),
        (["demo", "--interactive"], "--interactive needs a terminal"),
        (["demo", "--backend", "foo"], ("redis://", "'foo'")),
        (["demo", "--backend", "redis://127.0.0.1:1/0"], "unavailable"),
        (["sessions"], "--backend"),
        (["sessions", "--backend", "http://example"], "redis://"),
        (["sessions", "--backend", "redis://h:6379/abc"], ("database", "a number", "'abc'")),
        (["sessions", "--backend", "rediss://h/x1"], ("database", "a number", "'x1'")),
        (["sessions", "--backend", "redis://h:p/abc"], "'p'"),  # the port, first
        (["sessions", "--backend", "redis://127.0.0.1:99999/0"], "Port out of range"),
        (["sessions", "--backend", "redis://127.0.0.1/0?db=x"], "db"),
        (["inspect"], "session"),
        (["inspect", "s", "--backend", "redis://127.0.0.1:1/0"], "unavailable"),
        (
            ["sessions", "--backend", "redis+cluster://127.0.0.1:1"],
            ("Redis Cluster", "unavailable"),
        ),
        (["inspect", "s", "[bad", "--backend", "memory"], "backend"),
        (["watch", "s", "--backend", "memory"], "--backend"),
        # What to do next, not only what was wrong.
        (["watch", "s", "--since", "abc"], ("--since", "give a revision", "not 'abc'")),
        (["watch", "s", "--since", "-1"], ("--since", "give a revision", "not '-1'")),
        (["inspect", "s", "--revision", "abc"], ("--revision", "give a revision", "not 'abc'")),
        (["inspect", "s", "--revision", "-1"], ("--revision", "give a revision", "not '-1'")),
        (["fork", "s", "t", "--revision", "x"], ("--revision", "give a revision", "not 'x'")),
        (["history", "s", "k", "--limit", "0"], ("--limit", "a whole number >= 1", "not '0'")),
        (["history", "s", "k", "--limit", "x"], ("--limit", "a whole number >= 1", "not 'x'")),
        (["sessions", "--backend", "redis://127.0.0.1:1/0"], "check that the server is running"),
    ],
)
def test_bad_input_gives_one_line_and_status_2(
    args: list[str], message: str | tuple[str, ...]
) -> None:
    line = one_error_line(sharedctx(*args))
    for part in (message,) if isinstance(message, str) else message:
        assert part in line
    assert "_revision" not in line  # never an internal name
    assert "_positive" not in line


def test_a_bad_default_backend_is_one_line_too() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sharedctx", "sessions"],
        capture_output=True,
        text=True,
        env={**ENV, "SHAREDCTX_BACKEND": "redis://127.0.0.1/zero"},
        check=False,
    )
    line = one_error_line(done)
    assert "database" in line
    assert "'zero'" in line


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@127.0.0.1:1/0",  # unreachable
        "redis://:hunter2@[::1/0",  # does not parse
        "redis://user:hunter2@127.0.0.1:1/db",  # a bad database
        "redis://127.0.0.1:1/0?password=hunter2",
        "redis://:hunter2@127.0.0.1:port/0",  # a bad port
    ],
)
def test_passwords_never_appear_in_errors(url: str) -> None:
    line = one_error_line(sharedctx("sessions", "--backend", url))
    assert "hunter2" not in line
    assert "***" in line


def test_version() -> None:
    done = sharedctx("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"sharedctx {importlib.metadata.version('sharedctx')}"


# -- without rich, and without the bench command -----------------------------------


# `python -m sharedctx ARGS` in an interpreter where rich cannot be imported, as
# without the cli extra.
_WITHOUT_RICH = (
    "import runpy, sys\n"
    "sys.modules['rich'] = None\n"
    "sys.argv[0] = 'sharedctx'\n"
    "runpy.run_module('sharedctx', run_name='__main__', alter_sys=True)\n"
)


def without_rich(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_RICH, *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        check=False,
    )


def test_version_and_help_work_without_rich() -> None:
    version = without_rich("--version")
    assert (version.returncode, version.stderr) == (0, "")
    assert version.stdout.strip() == f"sharedctx {importlib.metadata.version('sharedctx')}"
    for args in (["--help"], ["demo", "--help"], ["watch", "--help"]):
        shown = without_rich(*args)
        assert (shown.returncode, shown.stderr) == (0, ""), args
        assert shown.stdout.startswith("usage: sharedctx"), args
    usage = one_error_line(without_rich("bench"))  # a usage error needs no rich either
    assert "invalid choice: 'bench'" in usage


@pytest.mark.parametrize(
    "args", [["demo"], ["sessions"], ["inspect", "s"], ["watch", "s"], ["export", "s"]]
)
def test_without_rich_a_command_says_which_extra_to_install(args: list[str]) -> None:
    line = one_error_line(without_rich(*args))
    assert f"sharedctx {args[0]} needs rich" in line
    assert "pip install 'sharedctx[cli]'" in line


def test_the_library_and_the_demo_pipeline_never_import_rich() -> None:
    # Worker processes import the demo's pipeline and analysis.
    script = (
        "import sys\n"
        "import sharedctx, sharedctx.cli\n"
        "from sharedctx import PipelineContext, SharedContext\n"
        "import sharedctx.demo._pipeline, sharedctx.demo._persona\n"
        "assert 'rich' not in sys.modules, sorted(m for m in sys.modules if 'rich' in m)\n"
    )
    subprocess.run([sys.executable, "-c", script], env=ENV, check=True)


def test_the_benchmarks_run_as_a_script_not_as_a_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--only",
            "memory",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "bytes per entry" in done.stdout
    assert (tmp_path / "results.json").is_file()


# -- on Redis: the demo across processes, and the session tools --------------------


@pytest.fixture
def session(redis_server: RedisServer) -> Iterator[str]:
    """A session that exists on the test server, destroyed afterwards."""
    session_id = f"cli-{uuid.uuid4().hex[:8]}"
    with SharedContext(session_id, backend=redis_server.url) as context:
        context.set("job:0", {"n": 0}, source="setup")
    yield session_id
    SharedContext(session_id, backend=redis_server.url).destroy()


@pytest.mark.redis
def test_demo_runs_across_worker_processes_on_redis(redis_server: RedisServer) -> None:
    summary = demo_json("--backend", redis_server.url, "--workers", "3")
    check_summary(summary, minds=6)
    assert summary["workers"] == 3
    session = summary["session_id"]

    assert session in listed_sessions(redis_server)

    inspected = sharedctx("inspect", session, "--backend", redis_server.url, "--json")
    assert inspected.returncode == 0, inspected.stderr
    rows = json.loads(inspected.stdout)
    assert [row["key"] for row in rows] == [row["key"] for row in summary["table"]]
    minds = sharedctx("inspect", session, "analysis:mind:*", "--backend", redis_server.url)
    rows_shown = [line for line in minds.stdout.splitlines() if line.startswith("analysis:mind:")]
    assert len(rows_shown) == 6
    SharedContext(session, backend=redis_server.url).destroy()


@pytest.mark.redis
@pytest.mark.parametrize("command", [["inspect"], ["export"], ["delete", "--yes"]])
def test_an_unknown_session_fails_says_where_the_sessions_are_and_is_never_created(
    redis_server: RedisServer, command: list[str]
) -> None:
    line = one_error_line(
        sharedctx(command[0], "typo", *command[1:], "--backend", redis_server.url)
    )
    assert "no session 'typo'" in line
    assert f"`sharedctx sessions --backend {redis_server.url}` lists the sessions" in line
    assert "typo" not in listed_sessions(redis_server)


@pytest.mark.redis
def test_errors_from_the_server_are_one_line(redis_server: RedisServer, session: str) -> None:
    no_db = redis_server.url.rsplit("/", 1)[0] + "/99"
    assert "refused" in one_error_line(sharedctx("sessions", "--backend", no_db))
    bad_pattern = sharedctx("inspect", session, "[bad", "--backend", redis_server.url)
    assert "[bad" in one_error_line(bad_pattern)


def watcher(redis_server: RedisServer, session: str, *options: str) -> subprocess.Popen[str]:
    return start_watch(session, "job:*", "--backend", redis_server.url, *options)


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C, as a person would; what is left of stdout, and stderr."""
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in err
    return out, err


@pytest.mark.redis
def test_watch_tails_events_until_interrupted(redis_server: RedisServer, session: str) -> None:
    process = watcher(redis_server, session)
    try:
        assert process.stdout is not None
        with SharedContext(session, backend=redis_server.url) as ctx:
            ctx.set("other", 1)
            ctx.set("job:1", {"n": 1}, source="writer")
            ctx.delete("job:1")
        lines = [process.stdout.readline() for _ in range(2)]
        assert lines[0].split()[1:4] == ["set", "job:1", "v1"]
        assert "writer" in lines[0]
        assert lines[1].split()[1:3] == ["delete", "job:1"]
        _, err = stop(process)
        assert "stopped" in err
    finally:
        process.kill()
        process.wait()


@pytest.mark.redis
def test_watch_json_prints_one_exact_object_per_event(
    redis_server: RedisServer, session: str
) -> None:
    process = watcher(redis_server, session, "--json")
    try:
        assert process.stdout is not None
        with SharedContext(session, backend=redis_server.url) as ctx:
            ctx.set("job:1", [1], source="writer\n", tags=["t1", "t 2"])
            ctx.set("job:ü", 2, source="w")
            ctx.delete("job:1")
        events = [json.loads(process.stdout.readline()) for _ in range(3)]
        assert events[0] == {
            "revision": 2,  # after the session's setup write
            "action": "set",
            "key": "job:1",
            "version": 1,
            "source": "writer\n",
            "tags": ["t1", "t 2"],
        }
        assert events[1]["key"] == "job:ü"
        assert [event["action"] for event in events] == ["set", "set", "delete"]
        assert [event["revision"] for event in events] == [2, 3, 4]
        out, _ = stop(process)
        assert out == ""
    finally:
        process.kill()
        process.wait()


def listed_sessions(redis_server: RedisServer) -> dict[str, dict[str, Any]]:
    listed = sharedctx("sessions", "--backend", redis_server.url, "--json")
    assert listed.returncode == 0, listed.stderr
    return {row["session"]: row for row in json.loads(listed.stdout)}


def sharedctx_with_input(*args: str, answer: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sharedctx", *args],
        input=answer,
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        check=False,
    )


@pytest.mark.redis
def test_sessions_shows_entries_bytes_last_write_and_when_dropped(
    redis_server: RedisServer,
) -> None:
    backend = RedisBackend(redis_server.url, session_ttl=3600)
    session = f"listed-{uuid.uuid4().hex[:6]}"
    with SharedContext(session, backend=backend) as context:
        context.set_multiple({"a": "x" * 50, "b": 1})
    backend.close()
    row = listed_sessions(redis_server)[session]
    assert row["entries"] == 2
    assert row["bytes"] > 50
    assert row["last_write"] is not None
    assert row["drops_at"] is not None
    assert row["drops_at"] > row["last_write"]
    table = sharedctx("sessions", "--backend", redis_server.url)
    line = next(line for line in table.stdout.splitlines() if line.startswith(session))
    assert line.split()[1:3] == ["2", str(row["bytes"])]
    SharedContext(session, backend=redis_server.url).destroy()


@pytest.mark.redis
def test_delete_asks_first_and_deletes_the_whole_session(redis_server: RedisServer) -> None:
    session = f"doomed-{uuid.uuid4().hex[:6]}"
    with SharedContext(session, backend=redis_server.url) as context:
        context.set("k", 1)
    kept = sharedctx_with_input("delete", session, "--backend", redis_server.url, answer="n\n")
    assert kept.returncode == 1
    assert "nothing deleted" in kept.stderr
    assert session in listed_sessions(redis_server)
    gone = sharedctx_with_input("delete", session, "--backend", redis_server.url, answer="y\n")
    assert gone.returncode == 0, gone.stderr
    assert session not in listed_sessions(redis_server)
    again = sharedctx("delete", session, "--backend", redis_server.url, "--yes")
    assert f"no session {session!r}" in one_error_line(again)


@pytest.mark.redis
def test_prune_deletes_only_the_sessions_without_live_entries(redis_server: RedisServer) -> None:
    full, empty = f"full-{uuid.uuid4().hex[:6]}", f"empty-{uuid.uuid4().hex[:6]}"
    with SharedContext(full, backend=redis_server.url) as one:
        one.set("k", 1)
    with SharedContext(empty, backend=redis_server.url) as two:
        two.set("gone", 1, ttl=0.01)
    time.sleep(0.05)  # its only entry has expired
    refused = sharedctx_with_input("prune", "--backend", redis_server.url, answer="")
    assert refused.returncode == 1  # no answer (end of input) is a no
    assert empty in listed_sessions(redis_server)
    pruned = sharedctx("prune", "--backend", redis_server.url, "--yes")
    assert pruned.returncode == 0, pruned.stderr
    listed = listed_sessions(redis_server)
    assert empty not in listed
    assert full in listed
    SharedContext(full, backend=redis_server.url).destroy()


@pytest.mark.redis
def test_export_then_import_moves_a_session(redis_server: RedisServer, session: str) -> None:
    with SharedContext(session, backend=redis_server.url) as context:
        context.set("job:1", {"n": 1, "note": "\x1b[2J"}, source="setup", tags=["x"], ttl=300)
    exported = sharedctx("export", session, "--backend", redis_server.url)
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["job:0", "job:1"]
    copy = f"copy-{uuid.uuid4().hex[:6]}"
    loaded = sharedctx_with_input(
        "import", copy, "--backend", redis_server.url, answer=exported.stdout
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "imported 2 entries" in loaded.stderr
    with SharedContext(copy, backend=redis_server.url) as context:
        entry = context.get_entry("job:1")
        assert entry is not None
        assert (entry.value, entry.source, entry.tags) == (
            {"n": 1, "note": "\x1b[2J"},
            "setup",
            ("x",),
        )
        assert entry.ttl is not None
        again = sharedctx_with_input(
            "import", copy, "--backend", redis_server.url, answer=exported.stdout
        )
        refused = one_error_line(again)  # it exists: nothing is overwritten
        assert "'job:0'" in refused
        assert "add --overwrite" in refused
        assert context.get_entry("job:1").version == 1  # type: ignore[union-attr]
        context.destroy()


@pytest.mark.redis
def test_import_refuses_a_line_that_is_not_json(redis_server: RedisServer) -> None:
    done = sharedctx_with_input(
        "import", "x", "--backend", redis_server.url, answer='{"key": 1}\n{oops\n'
    )
    line = one_error_line(done)
    assert "line 2" in line
    assert "what `sharedctx export` prints" in line
    assert "x" not in listed_sessions(redis_server)


@pytest.mark.redis
@pytest.mark.parametrize(
    ("given", "status", "said"),
    [
        ("", 0, "no record in the input"),
        ("\n\n", 0, "no record in the input"),
        ('{"key": "a", "value": 1}\n{"key": "", "value": 2}\n', 2, "record 1"),
        ('{"key": "a", "value": 1}\n{"value": 2}\n', 2, "record 1 has no key"),
        ('{"key": "a", "value": "' + "x" * 200_000 + '"}\n', 2, "max_entry_bytes="),
    ],
)
def test_a_failed_or_empty_import_creates_no_session(
    redis_server: RedisServer, given: str, status: int, said: str
) -> None:
    session = f"import-{uuid.uuid4().hex[:6]}"
    done = sharedctx_with_input("import", session, "--backend", redis_server.url, answer=given)
    assert done.returncode == status, done.stderr
    assert said in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert session not in listed_sessions(redis_server)


@pytest.mark.redis
def test_watch_since_replays_the_changes_after_a_revision(
    redis_server: RedisServer, session: str
) -> None:
    with SharedContext(session, backend=redis_server.url) as context:
        context.set("job:1", 1)
        context.set("job:2", 2)
    process = start_watch(session, "job:*", "--backend", redis_server.url, "--since", "1", "--json")
    assert process.stdout is not None
    rows = [json.loads(process.stdout.readline()) for _ in range(2)]
    stop(process)
    assert [(row["revision"], row["key"]) for row in rows] == [(2, "job:1"), (3, "job:2")]
    bad = sharedctx("watch", session, "--since", "-1", "--backend", redis_server.url)
    assert bad.returncode == 2
    assert "--since" in bad.stderr
    ahead = sharedctx("watch", session, "--since", "99", "--backend", redis_server.url)
    assert "after session" in one_error_line(ahead)


@pytest.mark.redis
def test_a_cluster_url_to_a_single_server_says_to_use_redis_url(
    redis_server: RedisServer,
) -> None:
    url = f"redis+cluster://127.0.0.1:{redis_server.port}"
    line = one_error_line(sharedctx("sessions", "--backend", url))
    assert "not a cluster" in line
    assert "use a redis:// URL" in line
