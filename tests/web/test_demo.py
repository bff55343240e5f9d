"""``sharedctx demo --web``: the run on the page as it goes, and its checkpoint decided
there, on memory and on Redis (the page is served from the demo's own process)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from ..cli._run import ENV
from .test_pages import ROW, wait_for_row
from .test_writes import open_editor

PHASES = ["extraction", "analysis", "synthesis", "validation", "checkpoint"]


def tags_shown(page: Page) -> set[str]:
    shown: list[str] = page.evaluate(
        "() => [...document.querySelectorAll('#entries tbody .tag')].map((tag) => tag.textContent)"
    )
    return set(shown)


def read_until(stream: Any, marker: str, timeout: float = 60) -> str:
    """The first line of ``stream`` holding ``marker`` (the lines before are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        assert line, f"the demo ended before saying {marker!r}"
        if marker in line:
            return str(line)
    raise AssertionError(f"no {marker!r} within {timeout} s")


@pytest.mark.slow
def test_the_demo_shows_every_phase_and_takes_the_decision_from_the_page(
    backend_url: str, page: Page
) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "sharedctx", "demo", "--web", "0", "--interactive", "--json",
         "--pace", "0.2", "--backend", backend_url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=ENV,
    )  # fmt: skip
    assert demo.stdin is not None
    assert demo.stderr is not None
    try:
        url = read_until(demo.stderr, "live in the browser: ").rsplit(" ", 1)[1].strip()
        page.goto(url)
        expect(page.locator(ROW).first).to_be_visible()
        # Every phase's entries appear as the run goes, up to the checkpoint's proposal.
        page.wait_for_function(
            """(phases) => {
                const tags = new Set([...document.querySelectorAll('#entries tbody .tag')]
                    .map((tag) => tag.textContent));
                return phases.every((phase) => tags.has('phase:' + phase));
            }""",
            arg=PHASES,
            timeout=60_000,
        )
        assert "phase:generation" not in tags_shown(page)  # it waits for the decision
        read_until(demo.stderr, "decide on the page")
        open_editor(page, "checkpoint:cp-1:proposal")
        proposal = json.loads(page.locator("#editor-form textarea").input_value())
        assert proposal["decision"] in ("approve", "reject", "revise")
        proposal.update(decision="revise", notes="the tone is off")
        page.locator("#editor-form textarea").fill(json.dumps(proposal))
        page.locator("#editor-form button[type=submit]").click()
        expect(page.locator("#editor .saved")).to_be_visible()
        # The run goes on with that decision: the manifest appears on the page.
        wait_for_row(page, "checkpoint:cp-1:decision")
        page.wait_for_function(
            """() => [...document.querySelectorAll('#entries tbody .tag')]
                .some((tag) => tag.textContent === 'phase:generation')""",
            timeout=30_000,
        )
        read_until(demo.stderr, "press Enter to end")
        assert demo.poll() is None  # it waits while the person looks
        output, _ = demo.communicate("\n", timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0
    summary = json.loads(output)
    assert summary["decision"] == "revise"
