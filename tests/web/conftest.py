"""The web view's fixtures: one headless chromium per test session (a new browser
context per test), and the app served by uvicorn on a free loopback port, on a
thread of the test process: so that it shares the memory backend with the test.

Each test runs on memory and on Redis (``site``). On memory, "another writer" is a
thread of this process (a memory session lives in one process); on Redis, it is
another OS process (``_writer.py``).

Every page a test opens is watched: a JavaScript dialog (``alert``...), a request to
any host but the app's, an uncaught script error or a Content-Security-Policy
violation fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from sharedctx import MemoryBackend, SharedContext
from sharedctx.backends import Backend, open_backend
from sharedctx.web import WebServer, create_app

from ._browser import chromium_path, launch

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """The test session's headless chromium (Debian's, installed by `make test`)."""
    if chromium_path() is None:
        message = "chromium is not installed: the browser tests cannot run (`make chromium`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """What a page did that it must not: dialogs, foreign requests, errors."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []


@pytest.fixture
def watched() -> Watched:
    return Watched()


@pytest.fixture
def page(browser: Browser, watched: Watched) -> Iterator[Page]:
    """A page in a browser context of its own, watched (see the module docstring)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)

    def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_request(request: Any) -> None:
        watched.requests.append(request.url)
        if urlsplit(request.url).hostname not in ("127.0.0.1",):
            watched.foreign.append(request.url)

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            watched.errors.append(message.text)

    page.on("dialog", on_dialog)
    context.on("request", on_request)
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    page.on("console", on_console)
    try:
        yield page
    finally:
        context.close()
    assert watched.dialogs == [], f"a dialog opened: {watched.dialogs}"
    assert watched.foreign == [], f"requests to another host: {watched.foreign}"
    assert watched.errors == [], f"script errors or CSP violations: {watched.errors}"


class Site:
    """The app serving one backend, and what a test does to that backend."""

    def __init__(self, kind: str, backend: Backend, redis_url: str | None) -> None:
        self.kind = kind
        self.backend = backend
        self.redis_url = redis_url
        self.server: WebServer | None = None
        self.contexts: list[SharedContext] = []
        self.sessions: set[str] = set()
        self.threads: list[threading.Thread] = []
        self.options: dict[str, Any] = {}

    def start(self, *, port: int = 0, **options: Any) -> Site:
        self.options = options
        self.server = WebServer(create_app(self.backend, **options), port=port).start()
        return self

    def restart(self) -> None:
        """Stop the app and serve a new one on the same port (what a deploy does)."""
        assert self.server is not None
        port = self.server.port
        self.server.stop()
        self.start(port=port, **self.options)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def page_url(self, session_id: str) -> str:
        return f"{self.url}sessions/{quote(session_id, safe='')}"

    def new_session(self, prefix: str = "web") -> str:
        session_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.sessions.add(session_id)
        return session_id

    def context(self, session_id: str) -> SharedContext:
        """A context on the backend the app serves, closed (its session destroyed) after
        the test."""
        self.sessions.add(session_id)
        context = SharedContext(session_id, backend=self.backend)
        self.contexts.append(context)
        return context

    def write_elsewhere(self, session_id: str, operations: list[list[Any]]) -> None:
        """Do ``operations`` (see ``_writer.py``) in another writer and wait for it: another
        OS process on Redis, another thread on memory (a memory session lives in one)."""
        if self.redis_url is not None:
            subprocess.run(
                [sys.executable, "-m", "tests.web._writer", self.redis_url, session_id,
                 json.dumps(operations)],
                check=True, cwd=ROOT, timeout=60,
            )  # fmt: skip
            return
        thread = self._writer_thread(session_id, operations)
        thread.join(60)

    def write_in_background(
        self, session_id: str, operations: list[list[Any]]
    ) -> Callable[[], None]:
        """Start ``operations`` in another writer; returns what waits for it to end."""
        if self.redis_url is not None:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.web._writer", self.redis_url, session_id,
                 json.dumps(operations)],
                cwd=ROOT,
            )  # fmt: skip
            return lambda: _wait(process)
        thread = self._writer_thread(session_id, operations)
        return lambda: thread.join(60)

    def _writer_thread(self, session_id: str, operations: list[list[Any]]) -> threading.Thread:
        from ._writer import run_operations

        context = self.context(session_id)
        thread = threading.Thread(target=run_operations, args=(context, operations))
        thread.start()
        self.threads.append(thread)
        return thread

    def close(self) -> None:
        for thread in self.threads:
            thread.join(60)
        if self.server is not None:
            self.server.stop()
        for context in self.contexts:
            context.close()
        for session_id in self.sessions:
            with SharedContext(session_id, backend=self.backend) as context:
                context.destroy()
        self.backend.close()


def _wait(process: subprocess.Popen[bytes]) -> None:
    assert process.wait(60) == 0


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def serve(request: pytest.FixtureRequest) -> Iterator[Callable[..., Site]]:
    """Serve the app on a backend of the test's own (a ``MemoryBackend``, or the test
    session's redis-server): ``serve(allow_writes=..., token=...)``."""
    sites: list[Site] = []

    def start(**options: Any) -> Site:
        if request.param == "redis":
            url = str(request.getfixturevalue("redis_server").url)
            backend, _ = open_backend(url)
            site = Site("redis", backend, url)
        else:
            site = Site("memory", MemoryBackend(), None)
        sites.append(site)
        return site.start(**options)

    yield start
    for site in sites:
        site.close()


@pytest.fixture
def site(serve: Callable[..., Site]) -> Site:
    """The read-only app, on memory and on Redis."""
    return serve()


def revisions(page: Page) -> list[int]:
    """The revisions the page received from its event stream, in order."""
    received: list[int] = page.evaluate("window.sharedctxPage.received")
    return received


def wait_for_revision(page: Page, revision: int) -> None:
    """Wait until the page received the change of ``revision``."""
    page.wait_for_function(
        "(revision) => window.sharedctxPage && window.sharedctxPage.received.includes(revision)",
        arg=revision,
    )
