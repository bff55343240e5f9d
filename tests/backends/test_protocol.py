"""The backend protocol is the whole seam between a context and its store."""

from __future__ import annotations

import pytest

from sharedctx import InvalidArgumentError, MemoryBackend, SharedContext
from sharedctx.backends import open_backend

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
    assert isinstance(memory, MemoryBackend)
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
