"""The context calls that the store's ops make, as typed steps.

An op is written once, as a generator of :class:`Step` objects (:data:`Steps`); the
store's ``batch`` runs each step with :meth:`Step.run` (the context's sync method),
its ``abatch`` awaits :meth:`Step.arun` (the method's ``a``-prefixed twin). Each step
names both methods in code, so mypy checks every call and its result type: nothing
is looked up by name. ``entry = yield from GetEntry(key)`` gives the step's result
with its type (``ContextEntry | None``), not ``Any``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from typing import Any, Generic, TypeVar

from sharedctx import ContextEntry, SharedContext

__all__ = ["Delete", "Expire", "FindByPattern", "GetEntry", "Keys", "Set", "Step", "Steps"]

T = TypeVar("T")


class Step(ABC, Generic[T]):
    """One call to a ``SharedContext``: ``run`` makes it, ``arun`` awaits its twin."""

    @abstractmethod
    def run(self, context: SharedContext) -> T:
        """Make the call with the context's sync method."""

    @abstractmethod
    async def arun(self, context: SharedContext) -> T:
        """Make the call with the context's awaitable twin."""

    def __iter__(self) -> Generator[Step[Any], Any, T]:
        """Yield this step and return its result: ``result = yield from step``."""
        result: T = yield self
        return result


Steps = Generator[Step[Any], Any, T]
"""An op: yields steps, receives their results, returns a ``T``."""


class GetEntry(Step[ContextEntry | None]):
    """``context.get_entry(key)``."""

    def __init__(self, key: str) -> None:
        self.key = key

    def run(self, context: SharedContext) -> ContextEntry | None:
        return context.get_entry(self.key)

    async def arun(self, context: SharedContext) -> ContextEntry | None:
        return await context.aget_entry(self.key)


class Set(Step[ContextEntry]):
    """``context.set(key, value, ttl=ttl, source=source)``."""

    def __init__(self, key: str, value: Any, ttl: float | None, source: str) -> None:
        self.key, self.value, self.ttl, self.source = key, value, ttl, source

    def run(self, context: SharedContext) -> ContextEntry:
        return context.set(self.key, self.value, ttl=self.ttl, source=self.source)

    async def arun(self, context: SharedContext) -> ContextEntry:
        return await context.aset(self.key, self.value, ttl=self.ttl, source=self.source)


class Delete(Step[bool]):
    """``context.delete(key)``."""

    def __init__(self, key: str) -> None:
        self.key = key

    def run(self, context: SharedContext) -> bool:
        return context.delete(self.key)

    async def arun(self, context: SharedContext) -> bool:
        return await context.adelete(self.key)


class Expire(Step[bool]):
    """``context.expire(key, ttl)``."""

    def __init__(self, key: str, ttl: float | None) -> None:
        self.key, self.ttl = key, ttl

    def run(self, context: SharedContext) -> bool:
        return context.expire(self.key, self.ttl)

    async def arun(self, context: SharedContext) -> bool:
        return await context.aexpire(self.key, self.ttl)


class FindByPattern(Step[list[ContextEntry]]):
    """``context.find_by_pattern(pattern, limit=limit, after=after)``: one page."""

    def __init__(self, pattern: str, limit: int | None = None, after: str | None = None) -> None:
        self.pattern, self.limit, self.after = pattern, limit, after

    def run(self, context: SharedContext) -> list[ContextEntry]:
        return context.find_by_pattern(self.pattern, limit=self.limit, after=self.after)

    async def arun(self, context: SharedContext) -> list[ContextEntry]:
        return await context.afind_by_pattern(self.pattern, limit=self.limit, after=self.after)


class Keys(Step[list[str]]):
    """``context.keys(pattern)``."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def run(self, context: SharedContext) -> list[str]:
        return context.keys(self.pattern)

    async def arun(self, context: SharedContext) -> list[str]:
        return await context.akeys(self.pattern)
