"""Steps: one trampoline that runs a multi-step call on a thread or as a coroutine.

A call made of several steps (``update``, ``get_or_set``, the waits; a Redis query
of several server calls; a LangGraph batch) is written once, as a generator that
yields steps and receives their results. :func:`run` performs them on the calling
thread, :func:`arun` awaits them; so the logic exists once and only the I/O differs.

A step is either something an executor does (a store operation, given to the
``execute`` the driver was handed) or a :class:`Twin`: a call and its awaitable
twin with the same arguments (user code, a wait, another object's methods). See
``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Steps", "Twin", "arun", "run"]

T = TypeVar("T")


class Twin(Generic[T]):
    """A step that is not a store operation: a call and its awaitable twin, with the
    same arguments (user code, a wait for a flight, a pause). ``result = yield from
    Twin(...)`` gives the result with its type."""

    __slots__ = ("afunction", "args", "function", "kwargs")

    def __init__(
        self,
        function: Callable[..., T],
        afunction: Callable[..., Awaitable[T]],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self.function, self.afunction, self.args, self.kwargs = function, afunction, args, kwargs

    def run(self) -> T:
        return self.function(*self.args, **self.kwargs)

    async def arun(self) -> T:
        return await self.afunction(*self.args, **self.kwargs)

    def __iter__(self) -> Generator[Twin[T], Any, T]:
        result: T = yield self
        return result


Steps = Generator[Any, Any, T]
"""A multi-step call: yields operations (or other steps) and :class:`Twin` steps,
receives their results, returns a ``T``."""


def run(steps: Steps[T], execute: Callable[[Any], Any]) -> T:
    """Perform a multi-step call on this thread: each :class:`Twin` step by its call,
    every other step by ``execute`` (a store's ``execute``, the Redis store's call
    of its operations...). An error a step raises is thrown into the generator."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            result = step.run() if step.__class__ is Twin else execute(step)
            error = None
        except BaseException as exc:
            result, error = None, exc


async def arun(steps: Steps[T], aexecute: Callable[[Any], Awaitable[Any]]) -> T:
    """Awaitable twin of :func:`run`: the same call as a coroutine (it awaits each
    step instead of blocking)."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            if step.__class__ is Twin:
                result = await step.arun()
            else:
                result = await aexecute(step)
            error = None
        except BaseException as exc:
            result, error = None, exc
