"""One session id is one session: every way of opening a context in a process opens
the same session of the process-wide memory backend, with the same defaults, and a
session nobody holds and that holds nothing is dropped.

The rules of handles on every backend (two contexts share, ``close()`` keeps the data,
``destroy()`` is told once to the others) are in the conformance kit
(``sharedctx.testing.ContextTests``), run on memory, Redis and Redis Cluster."""

from __future__ import annotations

import gc
import inspect
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sharedctx import (
    ContextManager,
    MemoryBackend,
    SessionLostError,
    SharedContext,
    context_manager,
)
from sharedctx.backends import StoreOptions
from sharedctx.integrations.langgraph import SharedContextStore
from sharedctx.pipeline import PipelineContext


@pytest.fixture
def session_id() -> str:
    return f"sharing-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def manager() -> Iterator[ContextManager]:
    with ContextManager() as manager:
        yield manager


def _openers(manager: ContextManager) -> dict[str, Callable[[str], SharedContext]]:
    """Every way of opening a context from a session id, each giving its context."""
    return {
        "SharedContext": SharedContext,
        "context_manager": context_manager.get_or_create,
        "a ContextManager": manager.get_or_create,
        "PipelineContext": lambda session: PipelineContext(session).context,
        "SharedContextStore": lambda session: SharedContextStore(session).context,
    }


def test_every_way_of_opening_a_session_id_opens_the_one_session(
    session_id: str, manager: ContextManager
) -> None:
    contexts = {name: open_(session_id) for name, open_ in _openers(manager).items()}
    for writer_name, writer in contexts.items():
        writer.set("k", writer_name)
        for reader_name, reader in contexts.items():
            assert reader.get("k") == writer_name, (writer_name, reader_name)
    for context in contexts.values():
        context.close()


def test_the_langgraph_store_and_a_context_share_items(session_id: str) -> None:
    with SharedContextStore(session_id) as store, SharedContext(session_id) as context:
        store.put(("docs",), "a", {"n": 1})
        (key,) = context.keys()
        assert context.get(key) == {"n": 1}
        context.set(key, {"n": 2})
        item = store.get(("docs",), "a")
        assert item is not None
        assert item.value == {"n": 2}


def test_closing_one_handle_keeps_the_data_for_the_others(
    session_id: str, manager: ContextManager
) -> None:
    for name, open_ in _openers(manager).items():
        first, second = open_(session_id), SharedContext(session_id)
        first.set("k", name)
        first.close()
        assert second.get("k") == name, name
        second.close()
        with SharedContext(session_id) as later:  # and for a handle opened later
            assert later.get("k") == name, name


def test_destroy_deletes_for_every_handle_opened_any_way(
    session_id: str, manager: ContextManager
) -> None:
    others = {name: open_(session_id) for name, open_ in _openers(manager).items()}
    doomed = SharedContext(session_id)
    doomed.set("k", 1)
    doomed.destroy()
    # PipelineContext(s) uses context_manager's context of s: the same handle.
    assert others["PipelineContext"] is others.pop("context_manager")
    for name, other in others.items():
        with pytest.raises(SessionLostError):
            other.get("k")
        assert other.get("k") is None, name  # told once, then the session is empty
        other.close()


def test_a_memory_backend_passed_explicitly_is_a_separate_place(session_id: str) -> None:
    own, other = MemoryBackend(), MemoryBackend()
    with (
        SharedContext(session_id) as default,
        SharedContext(session_id, backend=own) as mine,
        SharedContext(session_id, backend=own) as mine_too,
        SharedContext(session_id, backend=other) as theirs,
    ):
        default.set("k", "default")
        mine.set("k", "mine")
        assert mine_too.get("k") == "mine"  # one backend object: one place
        assert theirs.get("k") is None
        assert default.get("k") == "default"
        mine.destroy()
        assert default.get("k") == "default"  # the other places are not told
    own.close()
    other.close()


_OPTIONS = ("default_ttl", "max_entries", "max_entry_bytes", "eviction", "notifications")


def test_every_way_of_opening_a_context_has_sharedctx_defaults(
    session_id: str, manager: ContextManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[StoreOptions] = []  # what each context asked of the backend
    open_store = MemoryBackend.open

    def recording_open(backend: MemoryBackend, *args: Any) -> Any:
        opened.append(args[2])
        return open_store(backend, *args)

    monkeypatch.setattr(MemoryBackend, "open", recording_open)

    def options(context: SharedContext) -> tuple[Any, ...]:
        return (
            context.default_ttl,
            context._max_entry_bytes,
            context._notifications,
            context.backend,
            opened.pop(),  # max_entries and eviction
        )

    with SharedContext(session_id) as plain:
        expected = options(plain)
        assert expected[0] is None  # entries live until deleted
        assert expected[3] is MemoryBackend.shared()
        assert expected[4] == StoreOptions(max_entries=None, eviction="lru")
        for name, open_ in _openers(manager).items():
            context = open_(f"{session_id}-{name}")
            assert options(context) == expected, name
            context.close()


def test_the_manager_takes_sharedctx_defaults_from_the_same_values() -> None:
    # A new default in SharedContext must be the manager's too.
    context = inspect.signature(SharedContext).parameters
    manager = inspect.signature(ContextManager).parameters
    shared = [name for name in _OPTIONS if name in manager]
    assert shared == ["default_ttl", "max_entries", "max_entry_bytes", "notifications"]
    for name in shared:
        assert manager[name].default == context[name].default, name
    assert manager["backend"].default == context["backend"].default == "memory"


def test_the_defaults_are_documented_in_one_place() -> None:
    doc = inspect.getdoc(SharedContext) or ""
    for name in ("ContextManager", "PipelineContext", "SharedContextStore", "max_entry_bytes"):
        assert name in doc
    for other in (ContextManager, PipelineContext, SharedContextStore):
        assert "3600" not in (inspect.getdoc(other) or "")


# -- nothing grows: a process that opens a session per request ------------------------

REQUESTS = 500


def _held(manager: ContextManager) -> tuple[int, int, int]:
    gc.collect()
    return (
        len(MemoryBackend.shared()._sessions),
        len(context_manager._sessions),
        len(manager._sessions),
    )


def test_sessions_opened_and_emptied_per_request_leave_nothing(manager: ContextManager) -> None:
    before = _held(manager)
    for request in range(REQUESTS):
        for name, open_ in _openers(manager).items():
            context = open_(f"request-{request}-{name}")
            context.set("k", request)
            context.delete("k")
            context.close()
    sessions, default_manager, own_manager = _held(manager)
    assert sessions == before[0]
    # A manager forgets the contexts closed by their users now and then (amortized):
    # a bounded number, far below the requests served.
    assert default_manager <= before[1] + 64
    assert own_manager <= before[2] + 64


def test_sessions_whose_entries_expire_are_dropped(manager: ContextManager) -> None:
    before = _held(manager)
    for request in range(REQUESTS):
        with SharedContext(f"expiring-{request}") as context:
            # Long enough to outlast the loop and the collection in _held: with 0.2 s
            # every entry had expired by then once, in the full suite on a loaded
            # machine (the test passes alone).
            context.set("k", request, ttl=1.0)
    assert _held(manager)[0] > before[0]  # a session with an entry outlives its handles
    deadline = time.monotonic() + 10
    while _held(manager)[0] != before[0] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _held(manager)[0] == before[0]


def test_contexts_dropped_without_close_are_freed(manager: ContextManager) -> None:
    before = _held(manager)
    for request in range(REQUESTS):
        SharedContext(f"dropped-{request}").get("k")
    deadline = time.monotonic() + 10  # the finalizers prune on the timer thread
    while _held(manager) != before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _held(manager) == before
