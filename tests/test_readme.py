"""Every Python block of the README, and of the guides in docs/guides, runs as written.

Each README block runs on its own; a guide's blocks run in order, as one program (a
guide builds up one example). A block's Redis URL (``redis://localhost:6379/0``) is
replaced by the test server's (tests never use port 6379), and each session id is
made unique to the run.
"""

from __future__ import annotations

import re
import textwrap
import uuid
from pathlib import Path

import pytest

from .conftest import RedisServer

ROOT = Path(__file__).parents[1]
BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)
EXAMPLE_URL = "redis://localhost:6379/0"


def python_blocks(path: Path) -> list[str]:
    return [textwrap.dedent(match.group(2)) for match in BLOCK.finditer(path.read_text("utf-8"))]


BLOCKS = python_blocks(ROOT / "README.md")
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            code, id=f"block-{n}", marks=[pytest.mark.redis] if EXAMPLE_URL in code else []
        )
        for n, code in enumerate(BLOCKS)
    ],
)
def test_a_readme_example_runs(code: str, request: pytest.FixtureRequest) -> None:
    run_example(code, "README.md", request)


def test_there_are_guides_with_python_examples() -> None:
    assert GUIDES
    assert all(python_blocks(guide) for guide in GUIDES)


@pytest.mark.parametrize("guide", GUIDES, ids=[guide.stem for guide in GUIDES])
def test_a_guide_runs_as_one_program(guide: Path, request: pytest.FixtureRequest) -> None:
    run_example("\n".join(python_blocks(guide)), guide.name, request)


def run_example(code: str, filename: str, request: pytest.FixtureRequest) -> None:
    if EXAMPLE_URL in code:
        server: RedisServer = request.getfixturevalue("redis_server")
        code = code.replace(EXAMPLE_URL, server.url)
    for session in set(re.findall(r'SharedContext\("([^"]+)"', code)):
        code = code.replace(f'"{session}"', repr(f"{session}-{uuid.uuid4().hex[:8]}"))
    # dont_inherit: not this module's `from __future__ import annotations`, as written.
    exec(compile(code, filename, "exec", dont_inherit=True), {"__name__": "readme_example"})
