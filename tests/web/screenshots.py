"""The docs' screenshots of the web view, taken during a demo run (``make screenshots``).

    python -m tests.web.screenshots DIRECTORY

Runs ``sharedctx demo --web 0 --interactive`` (memory, paced), opens its sessions page
and its session's page in Debian's headless chromium, and saves ``sessions.png`` and
``session.png`` in DIRECTORY while the run waits at its checkpoint; then decides the
checkpoint on the page and ends the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from ._browser import launch

WIDTH, HEIGHT = 1280, 900


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    demo = subprocess.Popen(
        [sys.executable, "-m", "sharedctx", "demo", "--web", "0", "--interactive", "--json",
         "--pace", "0.6"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert demo.stdin is not None
    assert demo.stderr is not None
    try:
        url = _line_with(demo, "live in the browser: ").rsplit(" ", 1)[1].strip()
        root = url.split("/sessions/")[0] + "/"
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.goto(url)
            _line_with(demo, "decide on the page")
            page.wait_for_timeout(1500)  # the timeline and the TTLs drawn
            page.screenshot(path=str(directory / "session.png"))
            sessions = browser.new_page(viewport={"width": WIDTH, "height": 360})
            sessions.goto(root)
            sessions.wait_for_function("() => window.sharedctxSessions.refreshed >= 2")
            sessions.screenshot(path=str(directory / "sessions.png"))
            page.evaluate(
                """() => [...document.querySelectorAll('#entries tbody tr')]
                    .find((tr) => tr.getAttribute('data-key') === 'checkpoint:cp-1:proposal')
                    .querySelector('button.edit').click()"""
            )
            text = page.locator("#editor-form textarea")
            proposal = json.loads(text.input_value())
            text.fill(json.dumps({**proposal, "notes": "looks right"}))
            page.locator("#editor-form button[type=submit]").click()
            page.locator("#editor .saved").wait_for()
            browser.close()
        _line_with(demo, "press Enter to end")
        demo.communicate("\n", timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    print(f"saved {directory / 'sessions.png'} and {directory / 'session.png'}")


def _line_with(demo: subprocess.Popen[str], marker: str) -> str:
    assert demo.stderr is not None
    for line in demo.stderr:
        if marker in line:
            return line
    raise SystemExit(f"the demo ended before saying {marker!r}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/guides/images"))
