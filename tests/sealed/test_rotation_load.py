"""Key rotation without downtime, for real: writer processes run while ``sharedctx
rekey`` rewraps every session's data key by the new key, then each drops the old key
from its ring: no write is lost and no read fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sharedctx import KeyRing, RedisBackend, SharedContext

from ..cli._run import ENV
from ..conftest import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).parents[2]


def test_writers_go_on_through_a_rekey_and_the_old_keys_removal(
    private_redis: Callable[..., RedisServer], tmp_path: Path
) -> None:
    redis_server = private_redis()  # its sessions are this test's alone
    old_key, new_key = KeyRing.generate_key(), KeyRing.generate_key()
    old_ring = KeyRing({"old": old_key})
    sessions = [f"rotation-{os.getpid()}-{n}" for n in range(3)]
    url = redis_server.url
    backend = RedisBackend(url, keyring=old_ring)
    for session in sessions:  # sessions sealed under the old key only
        with SharedContext(session, backend=backend) as ctx:
            ctx.set("made", True)
    backend.close()

    switch = tmp_path / "drop-the-old-key"
    env = {
        **os.environ,
        "SHAREDCTX_KEYS": f"new:{new_key},old:{old_key}",  # the new key first everywhere
        "SHAREDCTX_KEYS_NEW": f"new:{new_key}",
    }
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.sealed._processes",
                "write_through_rekey",
                url,
                session,
                str(switch),
                "200",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for session in sessions
    ]
    try:
        time.sleep(1.0)  # the writers are writing
        rekey = subprocess.run(
            [sys.executable, "-m", "sharedctx", "rekey", "--backend", url],
            capture_output=True, text=True, timeout=120, check=False,
            env={**ENV, "SHAREDCTX_KEYS": env["SHAREDCTX_KEYS"]},
        )  # fmt: skip
        assert rekey.returncode == 0, rekey.stderr
        assert f"rewrapped the data keys of {len(sessions)} of" in rekey.stdout
        time.sleep(0.5)  # writing on, under the rewrapped keys
        switch.touch()  # every writer drops the old key from its ring
        reports = []
        for writer in writers:
            out, err = writer.communicate(timeout=120)
            assert writer.returncode == 0, err
            reports.append(json.loads(out))
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.communicate()
    new_only = RedisBackend(url, keyring=KeyRing({"new": new_key}))
    try:
        for session, report in zip(sessions, reports, strict=True):
            assert report["failures"] == []
            assert report["written"] > 200
            with SharedContext(session, backend=new_only) as ctx:
                keys = [f"k{n}" for n in range(report["written"])]
                assert ctx.get_multiple(keys) == {key: n for n, key in enumerate(keys)}
                ctx.destroy()
    finally:
        new_only.close()
