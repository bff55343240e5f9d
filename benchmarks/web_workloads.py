"""The web view in headless chromium (Debian's, driven by Playwright): how fast a large
session's page opens, and whether a page keeps up with a busy session.

- **First render** (:func:`run_web`): a session of ``ENTRIES`` entries, on memory (the
  app on a thread of this process) and on Redis; the time from the start of the
  page's navigation to its first page of entries in the DOM, in a fresh browser
  context each time (``performance.now()`` in the page).
- **A busy session**: writer processes set ``RATE`` keys per second in all, for
  ``seconds``, on Redis, while 1 and then ``PAGES`` pages are open on it, served by
  ``sharedctx serve`` in a process of its own. Each key holds its write time; a
  MutationObserver in each page takes the time its event's row enters the feed. The
  lag is that difference (one machine, one clock). The server's CPU is its process's
  user and system time over the run (``/proc``), per connected page, once the CPU of
  the same run with no page open is taken away.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness import Latency, Log, summarize

from sharedctx import MemoryBackend, RedisBackend, SharedContext

__all__ = ["ENTRIES", "PAGES", "RATE", "WebResults", "WebSettings", "missing_browser", "run_web"]

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = 10_000
RATE = 500
PAGES = 4
WRITERS = 2

# Records, in the page, when each feed row appears: its key holds the write's time.
_OBSERVER = """
window.__lags = [];
new MutationObserver((records) => {
  const now = (performance.timeOrigin + performance.now()) / 1000;
  for (const record of records) {
    if (record.target.id !== 'feed') continue;
    for (const node of record.addedNodes) {
      const key = node.querySelector && node.querySelector('.key');
      const match = key && /^w\\d+:\\d+:(\\d+\\.\\d+)$/.exec(key.textContent);
      if (match) window.__lags.push(now - Number(match[1]));
    }
  }
}).observe(document, { childList: true, subtree: true });
"""


@dataclass(frozen=True)
class WebSettings:
    loads: int
    """Page loads timed per backend."""
    seconds: float
    """How long the writers write at ``RATE`` per setting."""


@dataclass
class WebResults:
    entries: int
    first_render_ms: dict[str, list[float]] = field(default_factory=dict)
    """Per backend, every timed load."""
    rate: int = RATE
    seconds: float = 0.0
    lag: dict[int, Latency] = field(default_factory=dict)
    """Per number of open pages: the lag from write to DOM (microseconds)."""
    shown: dict[int, float] = field(default_factory=dict)
    """Per number of open pages: the share of the writes that reached every page."""
    server_cpu: dict[int, float] = field(default_factory=dict)
    """Per number of open pages: the server's CPU seconds per second of writes."""

    def first_render_median_ms(self, backend: str) -> float:
        return statistics.median(self.first_render_ms[backend])

    def cpu_per_page(self, pages: int) -> float:
        """The server's CPU per connected page (share of one core)."""
        return (self.server_cpu[pages] - self.server_cpu[0]) / pages


def missing_browser() -> str | None:
    """Why the browser cannot run (None: it can)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from tests.web._browser import chromium_path
    except ImportError as error:  # playwright (the dev extra) is missing
        return f"tests/web/_browser.py cannot be imported: {error}"
    return None if chromium_path() else "chromium is not installed (make chromium)"


@contextmanager
def _browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.web._browser import launch

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


def run_web(url: str, settings: WebSettings, log: Log) -> WebResults:
    """Both measurements (Redis at ``url``)."""
    results = WebResults(ENTRIES)
    with _browser() as browser:
        _first_render(browser, "memory", MemoryBackend(), settings, results)
        log(f"web: first render on memory, {ENTRIES:,} entries")
        redis_backend = RedisBackend(url)
        try:
            _first_render(browser, "redis", redis_backend, settings, results)
        finally:
            redis_backend.close()
        log(f"web: first render on Redis, {ENTRIES:,} entries")
        results.seconds = settings.seconds
        for pages in (0, 1, PAGES):
            _busy(browser, url, pages, settings, results)
            log(f"web: {RATE} writes/s with {pages} page(s) open")
    return results


def _first_render(
    browser: Any, name: str, backend: Any, settings: WebSettings, results: WebResults
) -> None:
    from sharedctx.web import WebServer, create_app

    session = f"bench-web-{name}-{os.getpid()}"
    with SharedContext(session, backend=backend) as context:
        batch = {f"entry:{n:05}": {"n": n, "text": "lorem ipsum " * 8} for n in range(ENTRIES)}
        context.set_multiple(batch, source="bench", tags=["bench"], ttl=3600)
        with WebServer(create_app(backend), port=0) as server:
            address = f"{server.url}sessions/{quote(session, safe='')}"
            timings = []
            for _ in range(settings.loads + 1):  # the first load warms the server up
                page_context = browser.new_context()
                page = page_context.new_page()
                page.goto(address)
                page.wait_for_function(
                    "() => window.sharedctxPage && window.sharedctxPage.firstRender !== null"
                )
                timings.append(page.evaluate("window.sharedctxPage.firstRender"))
                rows = page.locator("#entries tbody tr").count()
                assert rows == 100, rows
                page_context.close()
        context.destroy()
    results.first_render_ms[name] = timings[1:]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy(browser: Any, url: str, pages: int, settings: WebSettings, results: WebResults) -> None:
    session = f"bench-web-busy-{pages}-{os.getpid()}"
    count = int(RATE * settings.seconds)
    server = subprocess.Popen(
        [sys.executable, "-m", "sharedctx", "serve", "--backend", url, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    try:
        root = server.stdout.readline().strip()
        with SharedContext(session, backend=url) as context:
            context.set("seed", 0)  # the session exists for the pages
            opened = []
            for _ in range(pages):
                page_context = browser.new_context()
                page = page_context.new_page()
                page.add_init_script(_OBSERVER)
                page.goto(f"{root}sessions/{quote(session, safe='')}")
                page.wait_for_function(
                    "() => window.sharedctxPage && window.sharedctxPage.opened >= 1"
                )
                opened.append((page_context, page))
            before = _cpu_seconds(server.pid)
            writers = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        _WRITER,
                        url,
                        session,
                        str(writer),
                        str(count // WRITERS),
                        str(settings.seconds),
                    ],
                )
                for writer in range(WRITERS)
            ]
            for writer in writers:
                assert writer.wait(settings.seconds * 4 + 30) == 0
            final = context.revision
            lags: list[float] = []
            shown = []
            for _, page in opened:
                with contextlib.suppress(Exception):  # a page that fell behind: counted below
                    page.wait_for_function(
                        "(revision) => window.sharedctxPage.received.includes(revision)",
                        arg=final,
                        timeout=30_000,
                    )
                page_lags = page.evaluate("window.__lags")
                lags += page_lags
                shown.append(len(page_lags) / count)
            # All the work of the writes' events, over the seconds they were written in.
            results.server_cpu[pages] = (_cpu_seconds(server.pid) - before) / settings.seconds
            if pages:
                results.lag[pages] = summarize([lag * 1e9 for lag in lags])
                results.shown[pages] = min(shown)
            for page_context, _ in opened:
                page_context.close()
            context.destroy()
    finally:
        server.terminate()
        server.wait(15)


# One writer process: count keys over seconds, each holding its write time in its key.
_WRITER = """
import sys, time
from sharedctx import SharedContext
url, session, writer, count, seconds = sys.argv[1:]
count, seconds = int(count), float(seconds)
with SharedContext(session, backend=url) as context:
    started = time.monotonic()
    for n in range(count):
        time.sleep(max(0.0, started + n * seconds / count - time.monotonic()))
        context.set(f"w{writer}:{n}:{time.time():.6f}", n, source=f"writer:{writer}")
"""
