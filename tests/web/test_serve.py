"""``sharedctx serve``, run for real in another process."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sharedctx import KeyRing, SharedContext

from ..cli._run import ENV, one_error_line, sharedctx
from .test_api import call


@contextmanager
def serving(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``sharedctx serve ARGS`` running (in ``env``: default the tests' own, without a
    key ring), and the URL it printed."""
    if env is None:
        env = {name: value for name, value in ENV.items() if name != "SHAREDCTX_KEYS"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sharedctx", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
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


@pytest.mark.redis
def test_serve_takes_the_key_ring_like_every_command(redis_server: Any, tmp_path: Path) -> None:
    key = KeyRing.generate_key()
    session = f"served-sealed-{uuid.uuid4().hex[:8]}"
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"k1:{key}\n")
    path = f"/api/sessions/{session}/entry?key=notes"
    url = redis_server.url
    with SharedContext(session, backend=url, keyring=KeyRing({"k1": key})) as context:
        context.set("notes", "private notes")
        ring_in_env = {**ENV, "SHAREDCTX_KEYS": f"k1:{key}"}
        for args, env in ((["--keys-file", str(keys_file)], None), ([], ring_in_env)):
            with serving("--backend", url, "--port", "0", *args, env=env) as (_, served):
                assert call(served, path).json()["entry"]["value"] == "private notes"
        with serving("--backend", url, "--port", "0") as (process, served):
            entry = call(served, path).json()["entry"]
            assert (entry["sealed"], entry["value"]) == (True, None)
            process.send_signal(signal.SIGINT)
            assert process.wait(15) == 130
            assert process.stderr is not None
            assert "sealed values show as (sealed): no key ring" in process.stderr.read()
        context.destroy()
