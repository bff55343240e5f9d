"""``Snapshot``: a session as it was at one revision, read-only.

``SharedContext.snapshot(revision)`` gives one. It reads the session's kept history
(see ``docs/guides/history.md``) page by page as it is asked, through the context's
executors, with the same queries and paging as a context. The state at a past
revision does not change, so every page of a snapshot agrees with every other; a
page whose history is no longer kept raises ``HistoryCompactedError`` instead.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import msgspec

from sharedctx._checks import check_key, check_positive_int
from sharedctx._glob import Glob, compile_glob
from sharedctx._types import ContextEntry
from sharedctx.backends.ops import ALL, FindAt, GetAt, Operation, Page

__all__ = ["EXPORT_PAGE", "Snapshot", "page_of", "record_of"]

T = TypeVar("T")

EXPORT_PAGE = 500
"""Entries read per call while exporting or iterating."""

Execute = Callable[[Operation[Any]], Any]
AExecute = Callable[[Operation[Any]], Awaitable[Any]]


class Snapshot(Mapping[str, ContextEntry]):
    """A session as it was just after one revision: a read-only mapping of key to
    :class:`ContextEntry`, with the queries and paging of a context.

    ``snapshot["k"]`` is the entry of ``k`` then (``KeyError`` if it was absent),
    ``snapshot.get("k")`` the entry or None. Iteration, ``len()``, :meth:`export` and
    the queries read the session in pages (one call per page on Redis), each raising
    ``HistoryCompactedError`` if the session no longer keeps what that revision
    needs: read a snapshot while its versions are kept (``history_versions``,
    ``history_retention``). Entries keep their times: one whose TTL has run out since
    is still in the snapshot (its ``expires`` says so); :meth:`export` leaves it out,
    as a fork does. Each method has an awaitable ``a``-twin. Thread-safe.
    """

    def __init__(
        self, session_id: str, revision: int, execute: Execute, aexecute: AExecute
    ) -> None:
        self._session_id = session_id
        self._revision = revision
        self._execute = execute
        self._aexecute = aexecute

    @property
    def revision(self) -> int:
        """The revision the snapshot shows the session at."""
        return self._revision

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self._session_id

    def __repr__(self) -> str:
        return f"<Snapshot of {self._session_id!r} at revision {self._revision}>"

    # -- single keys -------------------------------------------------------------------

    def get_entry(self, key: str) -> ContextEntry | None:
        """The entry of ``key`` at the snapshot's revision, or None if it was absent."""
        return self._execute(GetAt(check_key(key), self._revision))  # type: ignore[no-any-return]

    async def aget_entry(self, key: str) -> ContextEntry | None:
        """Awaitable twin of :meth:`get_entry`."""
        return await self._aexecute(GetAt(check_key(key), self._revision))  # type: ignore[no-any-return]

    def value(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` at the snapshot's revision (a new copy), or ``default``."""
        entry = self.get_entry(key)
        return default if entry is None else entry.value

    async def avalue(self, key: str, default: Any = None) -> Any:
        """Awaitable twin of :meth:`value`."""
        entry = await self.aget_entry(key)
        return default if entry is None else entry.value

    def __getitem__(self, key: str) -> ContextEntry:
        entry = self.get_entry(key)
        if entry is None:
            raise KeyError(key)
        return entry

    def __contains__(self, key: object) -> bool:
        return self.get_entry(key) is not None  # type: ignore[arg-type]

    # -- queries -----------------------------------------------------------------------

    def find_by_pattern(
        self, pattern: str, *, limit: int | None = None, after: str | None = None
    ) -> list[ContextEntry]:
        """The entries whose key matches the glob ``pattern``, sorted by key; paged
        as ``SharedContext.find_by_pattern`` (``limit``, ``after``)."""
        return self._find(compile_glob(pattern), None, page_of(limit, after))

    async def afind_by_pattern(
        self, pattern: str, *, limit: int | None = None, after: str | None = None
    ) -> list[ContextEntry]:
        """Awaitable twin of :meth:`find_by_pattern`."""
        return await self._afind(compile_glob(pattern), None, page_of(limit, after))

    def find_by_tag(
        self, tag: str, *, limit: int | None = None, after: str | None = None
    ) -> list[ContextEntry]:
        """The entries that carried ``tag`` then, sorted by key (paged likewise). Reads
        every key of the session in pages: O(n)."""
        return self._find(_ALL_KEYS, check_key(tag, "tag"), page_of(limit, after))

    async def afind_by_tag(
        self, tag: str, *, limit: int | None = None, after: str | None = None
    ) -> list[ContextEntry]:
        """Awaitable twin of :meth:`find_by_tag`."""
        return await self._afind(_ALL_KEYS, check_key(tag, "tag"), page_of(limit, after))

    def _find(self, glob: Glob, tag: str | None, page: Page) -> list[ContextEntry]:
        _, entries = self._execute(FindAt(self._revision, glob, tag, page))
        return entries  # type: ignore[no-any-return]

    async def _afind(self, glob: Glob, tag: str | None, page: Page) -> list[ContextEntry]:
        _, entries = await self._aexecute(FindAt(self._revision, glob, tag, page))
        return entries  # type: ignore[no-any-return]

    def entries(self, pattern: str = "*") -> Iterator[ContextEntry]:
        """Every entry whose key matches ``pattern``, in key order, read in pages of
        ``EXPORT_PAGE`` as the iterator goes."""
        glob = compile_glob(pattern)
        after: str | None = None
        while True:
            page = self._find(glob, None, Page(after, EXPORT_PAGE))
            yield from page
            if len(page) < EXPORT_PAGE:
                return
            after = page[-1].key

    async def aentries(self, pattern: str = "*") -> AsyncIterator[ContextEntry]:
        """Awaitable twin of :meth:`entries` (``async for entry in snapshot.aentries()``)."""
        glob = compile_glob(pattern)
        after: str | None = None
        while True:
            page = await self._afind(glob, None, Page(after, EXPORT_PAGE))
            for entry in page:
                yield entry
            if len(page) < EXPORT_PAGE:
                return
            after = page[-1].key

    def __iter__(self) -> Iterator[str]:
        return (entry.key for entry in self.entries())

    def __len__(self) -> int:
        return sum(1 for _ in self.entries())

    def count(self) -> int:
        """How many entries the session held then (``len(snapshot)``; reads every page)."""
        return len(self)

    async def acount(self) -> int:
        """Awaitable twin of :meth:`count`."""
        return len([entry async for entry in self.aentries()])

    def export(self, pattern: str = "*") -> Iterator[dict[str, Any]]:
        """The entries matching ``pattern`` as ``SharedContext.export`` gives them
        (``ttl``: the seconds left now), without those whose TTL has run out by now:
        what a fork at this revision holds."""
        now = time.time()
        for entry in self.entries(pattern):
            if entry.expires is None or entry.expires > now:
                yield record_of(entry)

    async def aexport(self, pattern: str = "*") -> AsyncIterator[dict[str, Any]]:
        """Awaitable twin of :meth:`export`."""
        now = time.time()
        async for entry in self.aentries(pattern):
            if entry.expires is None or entry.expires > now:
                yield record_of(entry)


_ALL_KEYS = compile_glob("*")


def record_of(entry: ContextEntry) -> dict[str, Any]:
    """An entry as ``export`` gives it: key, value (as JSON has it), source, tags,
    version, ttl (the seconds left, or None)."""
    ttl = None if entry.expires is None else max(0.001, round(entry.expires - time.time(), 3))
    return {
        "key": entry.key,
        "value": msgspec.to_builtins(entry.value),
        "source": entry.source,
        "tags": list(entry.tags),
        "version": entry.version,
        "ttl": ttl,
    }


def page_of(limit: int | None, after: str | None) -> Page:
    """The :class:`Page` of a query's ``limit`` and ``after`` arguments, checked."""
    if limit is None and after is None:
        return ALL  # the usual query: no page
    return Page(
        None if after is None else check_key(after, "after key"),
        check_positive_int(limit, "limit", allow_none=True),
    )
