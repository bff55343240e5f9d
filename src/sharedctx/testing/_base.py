"""The fixtures every suite of the kit uses: contexts on the backend under test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sharedctx import Backend, ContextError, SharedContext

__all__ = ["ContextFactory", "FakeClock", "SuiteBase", "contexts"]

ContextFactory = Callable[..., SharedContext]
"""Makes a context on the backend under test: ``make_context(session_id=None, **options)``."""


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def contexts(backend: str | Backend) -> Iterator[ContextFactory]:
    """A :data:`ContextFactory` on ``backend``; the contexts it made are destroyed
    when the generator is closed (the body of a pytest fixture)."""
    made: list[SharedContext] = []

    def make(session_id: str | None = None, **options: Any) -> SharedContext:
        session = session_id or f"test-{uuid.uuid4().hex[:12]}"
        context = SharedContext(session, backend=backend, **options)
        made.append(context)
        return context

    yield make
    for context in made:
        try:
            context.destroy()
        except ContextError:  # a test may have stopped the server
            context.close()


class SuiteBase:
    """The fixtures of the suite, built on the ``backend`` fixture that a subclass (or
    the test module's conftest) provides: a ``Backend`` object or a URL string."""

    @pytest.fixture
    def make_context(self, backend: str | Backend) -> Iterator[ContextFactory]:
        """Make contexts on the backend under test; each is destroyed afterwards."""
        yield from contexts(backend)

    @pytest.fixture
    def ctx(self, make_context: ContextFactory) -> SharedContext:
        """A context on the backend under test, with default options."""
        return make_context()
