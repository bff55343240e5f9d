"""The backend protocol is the whole seam between a context and its store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sharedctx import InvalidArgumentError, MemoryBackend, MsgpackCodec, SharedContext
from sharedctx.backends import (
    EventHub,
    Operation,
    StoreOptions,
    UnsupportedOperationError,
    open_backend,
    register_scheme,
)
from sharedctx.backends.ops import Close

from ._recording import RecordingBackend


def test_a_context_reaches_its_store_only_through_the_protocol() -> None:
    backend = RecordingBackend()
    with SharedContext("s", backend=backend) as ctx:
        ctx.set("k", 1, ttl=30)
        ctx.update("k", lambda n: n + 1)
        assert ctx.get_or_set("k", lambda: 0) == 2
        assert ctx.wait_for("k", timeout=1)[0].value == 2
        assert [entry.key for entry in ctx.find_by_pattern("*", limit=1)] == ["k"]
        ctx.delete("k")
    assert {"set", "get", "find_by_pattern", "subscribe", "delete", "close"} <= set(backend.calls)


def test_a_context_does_not_close_a_backend_it_was_given() -> None:
    backend = RecordingBackend()
    SharedContext("a", backend=backend).close()
    with SharedContext("b", backend=backend) as ctx:  # still usable
        ctx.set("k", 1)


def test_backend_strings_and_objects_are_resolved_in_one_place() -> None:
    memory, owned = open_backend("memory")
    assert memory is MemoryBackend.shared()  # one process-wide place: one id, one session
    assert not owned  # no context closes it
    clocked, owned = open_backend("memory", clock=lambda: 0.0)
    assert clocked is not memory
    assert owned
    given = MemoryBackend()
    assert open_backend(given) == (given, False)
    with pytest.raises(InvalidArgumentError, match="memory"):
        open_backend("postgres://db")
    with pytest.raises(InvalidArgumentError, match="memory"):
        open_backend("localhost:6379")
    with pytest.raises(InvalidArgumentError, match="Backend"):
        open_backend(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="clock"):
        open_backend(given, clock=lambda: 0.0)


def test_a_scheme_registered_in_code_opens_its_backend() -> None:
    made: list[str] = []

    def factory(url: str) -> MemoryBackend:
        made.append(url)
        return MemoryBackend()

    register_scheme("testonly", factory)
    with SharedContext("s", backend="testonly://anything/at/all") as ctx:
        ctx.set("k", 1)
        assert ctx.get("k") == 1
    assert made == ["testonly://anything/at/all"]
    with pytest.raises(InvalidArgumentError, match="lowercase word"):
        register_scheme("Bad://", factory)


def test_a_scheme_of_an_installed_package_is_found_by_its_entry_point(tmp_path: Path) -> None:
    # A package installed beside sharedctx: its metadata names the factory of its scheme.
    (tmp_path / "thirdparty_backend.py").write_text(
        "from sharedctx import MemoryBackend\n"
        "def make(url):\n"
        "    backend = MemoryBackend()\n"
        "    backend.url = url\n"
        "    return backend\n"
    )
    info = tmp_path / "thirdparty_backend-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: thirdparty-backend\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[sharedctx.backends]\nthirdparty = thirdparty_backend:make\n"
    )
    script = (
        "from sharedctx import SharedContext\n"
        "from sharedctx.backends.registry import schemes\n"
        "assert 'thirdparty' in schemes(), schemes()\n"
        "with SharedContext('s', backend='thirdparty://host/x') as ctx:\n"
        "    ctx.set('k', 2)\n"
        "    assert ctx.get('k') == 2\n"
        "    print(ctx.backend.url)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "thirdparty://host/x"


def test_an_unknown_operation_is_refused_naming_it() -> None:
    class Unknown(Operation[int], frozen=True):
        name = "unknown"

    backend = MemoryBackend()
    with SharedContext("s", backend=backend) as ctx:
        store = ctx.backend.open("s", EventHub(), StoreOptions(), MsgpackCodec())
        with pytest.raises(UnsupportedOperationError, match="'unknown'"):
            store.execute(Unknown())
        store.execute(Close())
