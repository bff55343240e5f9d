"""The README and the docs site: every Python example runs as written, every link holds.

Each README block runs on its own; a docs page's blocks run in order, as one program (a
guide builds up one example). A block's Redis URL (``redis://localhost:6379/0``) is
replaced by the test server's (tests never use port 6379), and each session id is
made unique to the run. The design notes (their blocks are excerpts of the code) and
the API reference (no examples) are not run.

The README is also the package index's page: its links must be absolute, and those
into the docs site must name pages that exist.
"""

from __future__ import annotations

import re
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import sharedctx

from .conftest import RedisServer

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)
EXAMPLE_URL = "redis://localhost:6379/0"
DOCS_URL = "https://sharedctx.readthedocs.io/en/latest/"
SOURCE_URL = "https://github.com/sharedctx/sharedctx"
RAW_URL = "https://raw.githubusercontent.com/sharedctx/sharedctx/main/"
DESIGN_NOTES = {"architecture.md", "scaling.md", "cluster-notes.md"}


def python_blocks(path: Path) -> list[str]:
    return [textwrap.dedent(match.group(2)) for match in BLOCK.finditer(path.read_text("utf-8"))]


def markdown_pages() -> list[Path]:
    return sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.parts)


BLOCKS = python_blocks(README)
USER_PAGES = [
    page
    for page in markdown_pages()
    if page.name not in DESIGN_NOTES and "api" not in page.relative_to(DOCS).parts
]
PAGES_WITH_EXAMPLES = [page for page in USER_PAGES if python_blocks(page)]
GUIDES = sorted((DOCS / "guides").glob("*.md"))


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


def test_the_guides_have_python_examples() -> None:
    assert len(GUIDES) >= 9
    # The CLI's guide shows shell commands; every other guide has a program.
    assert {guide.stem for guide in GUIDES} - {"cli"} <= {page.stem for page in PAGES_WITH_EXAMPLES}


@pytest.mark.parametrize(
    "page", PAGES_WITH_EXAMPLES, ids=[str(page.relative_to(DOCS)) for page in PAGES_WITH_EXAMPLES]
)
def test_a_docs_page_runs_as_one_program(page: Path, request: pytest.FixtureRequest) -> None:
    run_example("\n".join(python_blocks(page)), page.name, request)


@pytest.mark.parametrize("page", [README, *USER_PAGES], ids=lambda page: page.name)
def test_no_python_example_escapes_the_test(page: Path) -> None:
    # A block fenced as ```py or ```pycon, or a MyST code-block directive, would not run.
    fences = re.findall(r"^ *```\s*(\{[^}]*\})?\s*([\w+-]*)", page.read_text("utf-8"), re.M)
    escaped = [
        fence
        for directive, fence in fences
        if (fence.lower() in {"py", "python3", "pycon", "ipython", "py3"})
        or (directive and fence.lower().startswith("py"))
    ]
    assert not escaped


def run_example(code: str, filename: str, request: pytest.FixtureRequest) -> None:
    if EXAMPLE_URL in code:
        server: RedisServer = request.getfixturevalue("redis_server")
        code = code.replace(EXAMPLE_URL, server.url)
    for session in set(re.findall(r'SharedContext(?:Store)?\("([^"]+)"', code)):
        code = code.replace(f'"{session}"', repr(f"{session}-{uuid.uuid4().hex[:8]}"))
    # dont_inherit: not this module's `from __future__ import annotations`, as written.
    exec(compile(code, filename, "exec", dont_inherit=True), {"__name__": "readme_example"})


# -- the README as the package index shows it ------------------------------------------


def readme_links() -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", README.read_text("utf-8"))


def test_the_readme_is_a_short_guide_with_the_two_set_up_commands() -> None:
    text = README.read_text("utf-8")
    assert len(text.splitlines()) <= 300
    assert "make demo" in text
    assert "make test" in text
    assert "pip install sharedctx" in text


def test_every_readme_link_is_absolute() -> None:
    links = readme_links()
    assert links
    relative = [link for link in links if not link.startswith("https://")]
    assert not relative, f"the package index cannot follow {relative}"


def test_the_readme_links_into_the_docs_name_pages_that_exist() -> None:
    pages = [link[len(DOCS_URL) :] for link in readme_links() if link.startswith(DOCS_URL)]
    assert len(pages) >= 8
    for page in pages:
        path = page.split("#")[0]
        assert path.endswith(".html"), page
        assert (DOCS / path).with_suffix(".md").is_file(), page
    for link in readme_links():
        if link.startswith(RAW_URL):
            assert (ROOT / link[len(RAW_URL) :]).is_file(), link
        elif link.startswith(SOURCE_URL + "/blob/main/"):
            assert (ROOT / link[len(SOURCE_URL + "/blob/main/") :]).is_file(), link


def test_the_package_metadata_points_at_the_same_places() -> None:
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    assert f'Documentation = "{DOCS_URL}"' in text
    assert f'Source = "{SOURCE_URL}"' in text


@pytest.mark.parametrize("page", [README, *USER_PAGES], ids=lambda page: page.name)
def test_the_user_docs_hold_no_development_history(page: Path) -> None:
    text = page.read_text("utf-8")
    history = r"round ?1|first round|Performance \d|the run before|(?<!run of )commit [0-9a-f]{7}"
    found = re.findall(history, text, re.I)
    assert not found, f"{page.name}: {found} (development history belongs in the design notes)"


# -- the API reference -----------------------------------------------------------------


def test_every_public_name_is_in_the_api_reference() -> None:
    reference = "\n".join(page.read_text("utf-8") for page in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^\.\. auto\w+:: sharedctx\.(\w+)\s*$", reference, re.M))
    missing = set(sharedctx.__all__) - documented - {"__version__"}
    assert not missing, f"add {sorted(missing)} to docs/api/"


# -- the benchmarks page -----------------------------------------------------------------


def test_the_benchmark_figures_are_those_of_the_published_run() -> None:
    """The page's figures are ``publish.py``'s rendering of ``docs/benchmark-results.json``
    (nobody edits them by hand), and the chart beside them is there."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from publish import END, START, page_block
        from results import read_json
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    text = (DOCS / "benchmarks.md").read_text("utf-8")
    block = text.split(START + "\n", 1)[1].split(END, 1)[0]
    when = re.search(r"mode, (\d{4}-\d\d-\d\d \d\d:\d\d UTC), on ", block)
    assert when is not None
    results = read_json(DOCS / "benchmark-results.json")
    assert block == page_block(results, when.group(1))
    assert (DOCS / "benchmark.png").is_file()
    assert "![the run's chart](benchmark.png)" in block
