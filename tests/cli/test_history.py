"""The history commands, run as a real subprocess on Redis: ``history``, ``inspect
--revision``, ``fork``, and the bytes of past versions in ``sessions``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from sharedctx import SharedContext

from ..conftest import RedisServer
from ._run import one_error_line, sharedctx

pytestmark = pytest.mark.redis


@pytest.fixture
def kept(redis_server: RedisServer) -> Iterator[SharedContext]:
    """A session with history: "dna" written three times, "gone" deleted."""
    session = f"hist-{uuid.uuid4().hex[:8]}"
    with SharedContext(session, backend=redis_server.url, history_versions=8) as context:
        context.set("dna", {"profile": 1}, source="extract")
        context.set("minds", [1], source="minds\x1b[2J", tags=["m"])
        context.set("dna", {"profile": 2}, source="synthesis")
        context.set("dna", {"profile": 3}, source="synthesis")
        yield context
        context.destroy()


def test_history_lists_a_keys_versions_newest_first(
    redis_server: RedisServer, kept: SharedContext
) -> None:
    done = sharedctx("history", kept.session_id, "dna", "--backend", redis_server.url, "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [row["value"] for row in rows] == [{"profile": n} for n in (3, 2, 1)]
    assert [row["version"] for row in rows] == [3, 2, 1]
    assert [row["revision"] for row in rows] == [4, 3, 1]
    assert rows[2]["source"] == "extract"
    table = sharedctx("history", kept.session_id, "dna", "--backend", redis_server.url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[1].split()[:3] == ["rev", "v", "source"]
    assert [line.split()[0] for line in lines[2:]] == ["4", "3", "1"]
    limited = sharedctx(
        "history", kept.session_id, "dna", "--backend", redis_server.url, "--limit", "1"
    )
    assert len(limited.stdout.splitlines()) == 3  # title, header, one version


def test_history_escapes_what_a_terminal_would_act_on(
    redis_server: RedisServer, kept: SharedContext
) -> None:
    done = sharedctx("history", kept.session_id, "minds", "--backend", redis_server.url)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert "minds\\x1b[2J" in done.stdout


def test_inspect_at_a_revision_shows_the_session_as_it_was(
    redis_server: RedisServer, kept: SharedContext
) -> None:
    done = sharedctx(
        "inspect", kept.session_id, "--backend", redis_server.url, "--revision", "1", "--json"
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(row["key"], row["value"]) for row in rows] == [("dna", {"profile": 1})]
    table = sharedctx(
        "inspect", kept.session_id, "d*", "--backend", redis_server.url, "--revision", "3"
    )
    assert "at revision 3" in table.stdout
    assert [line.split()[0] for line in table.stdout.splitlines()[2:]] == ["dna"]


def test_a_revision_no_longer_kept_is_one_error_line(
    redis_server: RedisServer, kept: SharedContext
) -> None:
    kept.delete("minds")
    done = sharedctx("inspect", kept.session_id, "--backend", redis_server.url, "--revision", "2")
    assert done.returncode == 2
    assert "the oldest revision still readable is 5" in one_error_line(done)
    future = sharedctx(
        "inspect", kept.session_id, "--backend", redis_server.url, "--revision", "99"
    )
    assert future.returncode == 2
    assert "after session" in one_error_line(future)
    bad = sharedctx("inspect", kept.session_id, "--backend", redis_server.url, "--revision", "-1")
    assert bad.returncode == 2
    schema = sharedctx(
        "inspect", kept.session_id, "--backend", redis_server.url, "--revision", "1",
        "--schema", "x:Y",
    )  # fmt: skip
    assert schema.returncode == 2
    assert "--schema" in one_error_line(schema)


def test_fork_copies_a_session_at_a_revision_into_a_new_one(
    redis_server: RedisServer, kept: SharedContext
) -> None:
    new = f"forked-{uuid.uuid4().hex[:8]}"
    done = sharedctx("fork", kept.session_id, new, "--backend", redis_server.url, "--revision", "2")
    assert done.returncode == 0, done.stderr
    assert f"into {new} (2 entries)" in done.stderr
    with SharedContext(new, backend=redis_server.url) as forked:
        assert forked.get("dna") == {"profile": 1}
        assert forked.get("minds") == [1]
        again = sharedctx("fork", kept.session_id, new, "--backend", redis_server.url)
        assert again.returncode == 2
        assert "already exists" in one_error_line(again)
        assert forked.revision == 2  # unchanged
        forked.destroy()
    unknown = sharedctx("fork", f"none-{uuid.uuid4().hex[:6]}", new, "--backend", redis_server.url)
    assert unknown.returncode == 2
    assert "no session" in one_error_line(unknown)


def test_sessions_shows_the_bytes_of_past_versions(
    redis_server: RedisServer, kept: SharedContext
) -> None:
    listed = sharedctx("sessions", "--backend", redis_server.url, "--json")
    row = next(row for row in json.loads(listed.stdout) if row["session"] == kept.session_id)
    assert row["past_bytes"] == kept.stats().past_bytes > 0
    table = sharedctx("sessions", "--backend", redis_server.url)
    line = next(line for line in table.stdout.splitlines() if line.startswith(kept.session_id))
    assert line.split()[3] == str(row["past_bytes"])
