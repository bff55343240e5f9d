"""``sharedctx serve``, run for real in another process."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from sharedctx import SharedContext

from ..cli._run import ENV, one_error_line, sharedctx
from .test_api import call


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``sharedctx serve ARGS`` running, and the URL it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sharedctx", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert process.stdout is not None
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://"), process.stderr.read() if process.stderr else url
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.mark.redis
def test_serve_prints_the_url_and_stops_on_ctrl_c(redis_server: Any) -> None:
    with SharedContext("served-session", backend=redis_server.url) as context:
        context.set("k", 1)
        with serving("--backend", redis_server.url, "--port", "0") as (process, url):
            sessions = call(url, "/api/sessions").json()["sessions"]
            assert "served-session" in [row["session"] for row in sessions]
            assert call(url, "/api/sessions/served-session/entry?key=k", method="PUT").status == 404
            process.send_signal(signal.SIGINT)
            assert process.wait(15) == 130
            assert process.stderr is not None
            assert "read-only" in process.stderr.read()
        context.destroy()


@pytest.mark.redis
def test_a_non_local_host_needs_a_token(redis_server: Any) -> None:
    refused = sharedctx("serve", "--backend", redis_server.url, "--host", "0.0.0.0")
    assert "--token" in one_error_line(refused)
    with serving(
        "--backend", redis_server.url, "--host", "0.0.0.0", "--port", "0", "--token", "t0k"
    ) as (_, url):
        assert url.endswith("/?token=t0k")
        port = url.split(":")[2].split("/")[0]
        local = f"http://127.0.0.1:{port}/"
        assert call(local, "/api/sessions").status == 401
        assert call(local, "/api/sessions", headers={"Authorization": "Bearer t0k"}).status == 200


def test_serve_refuses_what_it_cannot_serve() -> None:
    assert "memory backend" in one_error_line(sharedctx("serve", "--backend", "memory"))
    assert "--port" in one_error_line(sharedctx("serve", "--backend", "redis://x", "--port", "-1"))
