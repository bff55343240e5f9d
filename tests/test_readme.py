"""Every Python block of the README runs as it is written.

A block's Redis URL (``redis://localhost:6379/0``) is replaced by the test server's
(tests never use port 6379), and each block gets a session id of its own.
"""

from __future__ import annotations

import re
import textwrap
import uuid
from pathlib import Path

import pytest

from .conftest import RedisServer

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)
BLOCKS = [textwrap.dedent(match.group(2)) for match in BLOCK.finditer(README)]
EXAMPLE_URL = "redis://localhost:6379/0"


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
    if EXAMPLE_URL in code:
        server: RedisServer = request.getfixturevalue("redis_server")
        code = code.replace(EXAMPLE_URL, server.url)
    for session in set(re.findall(r'SharedContext\("([^"]+)"', code)):
        code = code.replace(f'"{session}"', repr(f"{session}-{uuid.uuid4().hex[:8]}"))
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
