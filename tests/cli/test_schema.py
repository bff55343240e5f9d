"""``sharedctx inspect SESSION --schema MODULE:CLASS``: the entries that do not fit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sharedctx import MindResult, PipelineContext, SharedContext
from sharedctx.terminal import printable

from ..conftest import RedisServer
from ._run import ENV, one_error_line, sharedctx

pytestmark = pytest.mark.redis

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HOSTILE_ID = "\x1b[2Jred\u202e"  # a terminal would act on these


@pytest.fixture
def drifted(redis_server: RedisServer) -> Iterator[str]:
    """A persona session with one mind result that fits and two that do not."""
    session = f"schema-{uuid.uuid4().hex[:8]}"
    with SharedContext(session, backend=redis_server.url) as context:
        PipelineContext(context).set_mind_result(
            "tim",
            MindResult(
                mind_id="tim", traits={}, confidence=0.5, started_at=NOW, finished_at=NOW,
                duration_ms=0,
            ),
        )  # fmt: skip
        context.set("analysis:mind:old", {"mind_id": "old", "score": 3})
        context.set(f"analysis:mind:{HOSTILE_ID}", {"mind_id": 5})
        context.set("notes", "not under a typed key: not looked at")
    yield session
    SharedContext(session, backend=redis_server.url).destroy()


def test_inspect_schema_prints_each_entry_that_does_not_fit_escaped_and_exits_1(
    redis_server: RedisServer, drifted: str
) -> None:
    done = sharedctx(
        "inspect", drifted, "--schema", "sharedctx:PipelineContext", "--backend", redis_server.url
    )
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"value for key {printable(repr(f'analysis:mind:{HOSTILE_ID}'))}")
    assert "mind_id: Input should be a valid string" in lines[0]
    assert lines[1].startswith("value for key 'analysis:mind:old' does not fit MindResult")
    assert "\x1b" not in done.stdout
    assert "\u202e" not in done.stdout
    assert "2 entries do not fit the typed keys of sharedctx:PipelineContext" in done.stderr


def test_inspect_schema_json_gives_each_key_model_and_field_exactly(
    redis_server: RedisServer, drifted: str
) -> None:
    done = sharedctx(
        "inspect", drifted, "analysis:mind:o*", "--schema", "sharedctx:PipelineContext",
        "--backend", redis_server.url, "--json",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    [row] = json.loads(done.stdout)
    assert (row["key"], row["expected"]) == ("analysis:mind:old", "MindResult")
    assert {"path": "confidence", "message": "Field required"} in row["errors"]
    hostile = sharedctx(
        "inspect", drifted, "--schema", "sharedctx:PipelineContext", "--backend",
        redis_server.url, "--json",
    )  # fmt: skip
    assert json.loads(hostile.stdout)[0]["key"] == f"analysis:mind:{HOSTILE_ID}"


def test_a_schema_of_ones_own_is_imported_from_the_current_directory(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    (tmp_path / "review_schema.py").write_text(
        textwrap.dedent(
            """
            import pydantic
            from sharedctx import Schema, TypedKey

            class Finding(pydantic.BaseModel):
                file: str

            class Review(Schema):
                findings = TypedKey("review:finding:{file}", Finding, id_field="file")
            """
        )
    )
    session = f"schema-{uuid.uuid4().hex[:8]}"
    with SharedContext(session, backend=redis_server.url) as context:
        context.set("review:finding:a.py", {"file": "a.py"})
        command = Path(sys.executable).with_name("sharedctx")  # not python -m: no cwd on the path
        args = [str(command), "inspect", session, "--schema", "review_schema:Review"]
        done = subprocess.run(
            [*args, "--backend", redis_server.url],
            capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=60, check=False,
        )  # fmt: skip
        assert (done.returncode, done.stdout) == (0, ""), done.stderr
        assert "every entry fits the typed keys of review_schema:Review" in done.stderr
        context.set("review:finding:b.py", {"file": "c.py"})
        done = subprocess.run(
            [*args, "--backend", redis_server.url, "--json"],
            capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 1
        assert json.loads(done.stdout)[0]["errors"] == [
            {"path": "file", "message": "is 'c.py', but the value is written under the id 'b.py'"}
        ]
        context.destroy()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("PipelineContext", "must be MODULE:CLASS, such as app.schema:Review"),
        ("no_such_module_here:Review", "cannot import 'no_such_module_here'"),
        ("sharedctx:SharedContext", "'sharedctx' has no Schema subclass 'SharedContext'"),
        ("sharedctx:Nothing", "'sharedctx' has no Schema subclass 'Nothing'"),
    ],
)
def test_a_bad_schema_is_one_error_line(
    redis_server: RedisServer, drifted: str, spec: str, message: str
) -> None:
    line = one_error_line(
        sharedctx("inspect", drifted, "--schema", spec, "--backend", redis_server.url)
    )
    assert message in line
