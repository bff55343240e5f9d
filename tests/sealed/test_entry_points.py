"""``keyring=`` wherever a session is opened from a URL: ``SharedContext``,
``ContextManager``, LangGraph's ``SharedContextStore``; and where it cannot go."""

from __future__ import annotations

import pytest

from sharedctx import (
    ContextManager,
    InvalidArgumentError,
    KeyRing,
    KeyUnavailableError,
    MemoryBackend,
    SharedContext,
)
from sharedctx.backends import register_scheme
from sharedctx.integrations.langgraph import SharedContextStore

RING = KeyRing({"k": KeyRing.generate_key()})


def test_the_default_memory_backend_seals_a_session_for_a_context_with_a_ring() -> None:
    with SharedContext("shared-id", keyring=RING) as sealed, SharedContext("shared-id") as plain:
        sealed.set("k", "secret")
        assert sealed.get_entry("k").encoded[:2] == b"\xc1\x01"  # type: ignore[union-attr]
        assert plain.keys() == ["k"]  # one session id, one session
        with pytest.raises(KeyUnavailableError):
            plain.get("k")


def test_a_context_manager_seals_every_session() -> None:
    with ContextManager(keyring=RING) as manager:
        ctx = manager.get_or_create("managed")
        ctx.set("k", {"n": 1})
        assert ctx.get_entry("k").encoded[:2] == b"\xc1\x01"  # type: ignore[union-attr]
        assert ctx.get("k") == {"n": 1}


def test_the_langgraph_store_seals_its_session() -> None:
    with SharedContextStore("graph", keyring=RING) as store:
        store.put(("users", "1"), "profile", {"name": "Ada"})
        item = store.get(("users", "1"), "profile")
        assert item is not None
        assert item.value == {"name": "Ada"}
        entry = store.context.get_entry(store.context.keys()[0])
        assert entry is not None
        assert entry.encoded[:2] == b"\xc1\x01"  # type: ignore[index]


def test_a_ring_goes_with_a_url_and_only_to_a_backend_that_seals() -> None:
    with pytest.raises(InvalidArgumentError, match="give a Backend object its own"):
        SharedContext("s", backend=MemoryBackend(), keyring=RING)
    with pytest.raises(InvalidArgumentError, match=r"keyring must be a KeyRing.*generate_key"):
        SharedContext("s", keyring="not a ring")  # type: ignore[arg-type]
    register_scheme("plainonly", lambda url: MemoryBackend())
    with pytest.raises(InvalidArgumentError, match=r"does not seal.*factory that takes keyring="):
        SharedContext("s", backend="plainonly://x", keyring=RING)
    with pytest.raises(InvalidArgumentError, match="keyring= is for a session id"):
        SharedContextStore(SharedContext("s"), keyring=RING)
