"""Waits wake from the change they wait for: one read, then the changes heard after it.

A wait reads what it waits for once (``ReadWithRevision``: the entries and the revision they
were read at), then applies to that the changes it hears after that revision. Tested
on memory, the third backend, Redis and Redis Cluster by a backend that wraps the one
under test and sees every operation its stores are given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from sharedctx import Backend, SharedContext, WaitTimeoutError
from sharedctx.backends import Operation, Store, StoreOptions, open_backend
from sharedctx.backends.ops import ReadWithRevision
from sharedctx.testing import contexts

T = TypeVar("T")


class Looking:
    """A ``Store`` that counts the wait's reads (``ReadWithRevision``) and the revisions they
    read at, and calls ``before_look`` (once) just before the next."""

    def __init__(self, store: Store, backend: Watching) -> None:
        self._store, self._backend = store, backend
        self.codec = store.codec

    def _saw(self, operation: Operation[Any]) -> None:
        if isinstance(operation, ReadWithRevision):
            self._backend.looks += 1
            before, self._backend.before_look = self._backend.before_look, None
            if before is not None:
                before()

    def execute(self, operation: Operation[T]) -> T:
        self._saw(operation)
        result = self._store.execute(operation)
        if isinstance(operation, ReadWithRevision):
            self._backend.revisions.append(result[1])  # type: ignore[index]
        return result

    async def aexecute(self, operation: Operation[T]) -> T:
        self._saw(operation)
        return await self._store.aexecute(operation)


class Watching:
    """A ``Backend`` around another, whose stores are :class:`Looking`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.looks = 0
        self.revisions: list[int | None] = []  # of each ReadWithRevision
        self.before_look: Callable[[], object] | None = None

    def open(self, session_id: str, hub: Any, options: StoreOptions, codec: Any) -> Looking:
        return Looking(self.backend.open(session_id, hub, options, codec), self)

    def close(self) -> None:
        """The backend under test is the fixture's to close."""

    async def aclose(self) -> None:
        """As :meth:`close`."""


@pytest.fixture
def watching(backend: str | Backend) -> Iterator[Watching]:
    opened, owned = open_backend(backend) if isinstance(backend, str) else (backend, False)
    yield Watching(opened)
    if owned:
        opened.close()


@pytest.fixture
def pair(watching: Watching) -> Iterator[tuple[SharedContext, SharedContext]]:
    """A context on the watching backend, and a writer on the same session."""
    factory = contexts(watching)  # type: ignore[arg-type]
    make = next(factory)
    waiter = make()
    yield waiter, make(waiter.session_id)
    factory.close()


def later(write: Callable[[], object]) -> threading.Thread:
    thread = threading.Timer(0.1, write)
    thread.start()
    return thread


def test_a_wait_woken_by_the_change_it_waits_for_reads_once(
    watching: Watching, pair: tuple[SharedContext, SharedContext]
) -> None:
    waiter, writer = pair
    thread = later(lambda: writer.set("result", {"score": 0.9}))
    found = waiter.wait_for_keys(["result"], timeout=10)
    thread.join()
    assert found["result"].value == {"score": 0.9}
    assert watching.looks == 1

    thread = later(lambda: writer.set_multiple({"mind:a": 1, "mind:b": 2}))
    entries = waiter.wait_for("mind:*", count=2, timeout=10)
    thread.join()
    assert [(entry.key, entry.value) for entry in entries] == [("mind:a", 1), ("mind:b", 2)]
    assert watching.looks == 2


def test_a_wait_reads_once_through_changes_that_do_not_complete_it(
    watching: Watching, pair: tuple[SharedContext, SharedContext]
) -> None:
    waiter, writer = pair

    def write() -> None:
        writer.set("mind:a", 1)
        writer.delete("mind:a")  # heard, and taken back out of what the wait holds
        writer.set("other", 0)  # not heard
        writer.set("mind:b", 2)
        writer.set("mind:c", 3)

    thread = later(write)
    entries = waiter.wait_for("mind:*", count=2, timeout=10)
    thread.join()
    assert [entry.key for entry in entries] == ["mind:b", "mind:c"]
    assert watching.looks == 1


def test_changes_from_before_the_read_are_not_applied_again(
    watching: Watching, pair: tuple[SharedContext, SharedContext]
) -> None:
    # Made after the wait subscribed and before it read: it hears them, and what it
    # read holds them already. Applied again, one by one, "a" would come back beside
    # "b" (on Redis they may be heard after the read: the conformance kit's
    # test_a_wait_answers_with_entries_live_at_one_revision races for that).
    waiter, writer = pair

    def changes() -> None:
        writer.set("a", 1)
        writer.delete("a")
        writer.set("b", 2)

    watching.before_look = changes
    with pytest.raises(WaitTimeoutError, match=r"keys \['a'\]"):
        waiter.wait_for_keys(["a", "b"], timeout=0.5)
    watching.before_look = changes
    with pytest.raises(WaitTimeoutError, match="1 of 2 keys"):
        waiter.wait_for("[ab]", count=2, timeout=0.5)


def test_a_read_at_gives_the_revision_it_read_at(
    watching: Watching, pair: tuple[SharedContext, SharedContext]
) -> None:
    waiter, writer = pair
    writer.set_multiple({"x:1": 1, "x:2": 2, "y:2": 3})
    writer.delete("x:1")
    assert waiter.wait_for_keys(["x:2"], timeout=1)  # a GetMany
    assert waiter.wait_for("x:*", timeout=1)  # a prefix: one call
    assert len(waiter.wait_for("*:2", count=2, timeout=1)) == 2  # keys, then entries
    assert watching.revisions == [4, 4, 4] == [writer.revision] * 3
