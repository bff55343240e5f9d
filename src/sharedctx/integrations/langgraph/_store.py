"""``SharedContextStore``: a LangGraph ``BaseStore`` kept in a sharedctx session.

Each op is written once, as a generator that yields the context calls it needs as
``sharedctx.steps.Twin`` steps (a context method and its ``a``-prefixed twin, with
the same arguments); ``batch`` runs them with ``steps.run``, ``abatch`` awaits them
with ``steps.arun``. So the two differ only in how a call is made. One exception: a
``batch`` of a single get or put (what ``store.get``, ``store.put`` and ``store.delete``
send) makes its context calls directly (``_get_now``, ``_put_now``, a few lines beside
``_get`` and ``_put``), because the generator and its trampoline would cost a get as
much as the rest of it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)

from sharedctx import (
    Backend,
    Closeable,
    ContextEntry,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidTTLError,
    KeyRing,
    SharedContext,
    Telemetry,
)
from sharedctx.integrations.langgraph._encoding import KeyEncoding
from sharedctx.integrations.langgraph._matching import (
    check_conditions,
    check_filter,
    check_namespace,
    filter_matcher,
    literal_head,
    matches_conditions,
)
from sharedctx.steps import Steps, Twin, arun, run

__all__ = ["SharedContextStore"]


class SharedContextStore(Closeable, BaseStore):
    """A LangGraph store whose items are entries of a sharedctx session.

    Use it wherever LangGraph takes a store (``graph.compile(store=store)``); every
    node then reads and writes the session, on any sharedctx backend. ``context``
    gives the :class:`~sharedctx.SharedContext` itself, to ``wait_for`` or ``watch``
    other nodes' items (:meth:`pattern_for` gives a namespace's key pattern).

    History is not part of LangGraph's ``BaseStore`` (its ``get`` takes no revision),
    so it is reached through ``context``, with :meth:`key_for` and :meth:`to_item`:
    ``store.context.history(store.key_for(namespace, key))`` gives an item's kept
    versions, ``store.context.get_entry(store.key_for(namespace, key),
    revision=REV)`` the item as it was at a revision, ``store.context.snapshot(REV)``
    the whole session then, and ``SharedContextStore(store.context.fork(new_id,
    revision=REV))`` a store on a fork of it. Versions are kept when the context has
    ``history_versions`` (give the store such a ``SharedContext``); see
    ``docs/guides/history.md``.

    Args:
        context_or_session: a ``SharedContext`` (the caller keeps it and closes it),
            or a session id, for which the store opens ``SharedContext(session,
            backend=backend)`` and :meth:`close` closes it.
        backend: with a session id: ``"memory"``, a Redis URL, or any ``Backend``
            (``MemoryBackend(clock=...)``, ``RedisBackend``...), which stays the
            caller's to close.
        key_prefix: starts every key of the store (default ``"lg:"``), so the session
            can hold other data; it may not contain a glob metacharacter.
        ttl: LangGraph's ``TTLConfig``: ``default_ttl`` (minutes) for a ``put`` that
            gives no ``ttl``, and ``refresh_on_read`` (default True), whether a read
            restarts the TTL of what it returns. Expiry is sharedctx's own, active and
            with ``expire`` events, and an expired item is never returned, so
            ``sweep_interval_minutes`` and ``omit_expired`` have nothing to change.
        source: the ``source`` of every entry the store writes.
        keyring: with a session id and a backend URL, a ``KeyRing``: the session is
            sealed (see the sealed sessions guide).
        telemetry: with a session id: the ``Telemetry`` of the context the store opens
            (None: the process's default). A node's ``put`` is then a ``set`` span whose
            trace context travels with the change, so that another node's ``wait_for``
            on :attr:`context` returns in a span linked to it.

    A search reads its namespace prefix in key order only as far as its page needs:
    ``offset + limit`` entries without a filter; with one, pages of at least 100
    entries until ``offset + limit`` match.

    A batch runs its ops in order, each seeing those before it; each op is one
    atomic context call (a read that refreshes TTLs is a second one), except a
    search with a filter that reads several pages: an item written or removed
    between two pages may or may not be among its results, though none comes twice
    and the order holds. A batch as a whole is not atomic. Safe from many threads and
    asyncio tasks. A ``SearchOp`` with a ``query`` (semantic search) raises
    ``NotImplementedError``.
    """

    supports_ttl: bool = True

    def __init__(
        self,
        context_or_session: SharedContext | str,
        *,
        backend: str | Backend = "memory",
        key_prefix: str = "lg:",
        ttl: TTLConfig | None = None,
        source: str = "langgraph",
        keyring: KeyRing | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._keys = KeyEncoding(key_prefix, check_namespace)
        self.ttl_config = _check_ttl_config(ttl)
        if not isinstance(source, str) or not source:
            raise InvalidArgumentError(f"source must be a non-empty str, not {source!r}")
        self._source = source
        if isinstance(context_or_session, SharedContext):
            given = [
                name
                for name, is_given in (
                    ("backend=", backend != "memory"),
                    ("keyring=", keyring is not None),
                    ("telemetry=", telemetry is not None),
                )
                if is_given
            ]
            if given:
                raise InvalidArgumentError(
                    f"{given[0]} is for a session id; the SharedContext given has its own"
                )
            self._context = context_or_session
            self._owns_context = False
        elif isinstance(context_or_session, str):
            self._context = SharedContext(
                context_or_session, backend=backend, keyring=keyring, telemetry=telemetry
            )
            self._owns_context = True
        else:
            raise InvalidArgumentError(
                "SharedContextStore takes a SharedContext or a session id, not "
                f"{type(context_or_session).__name__}"
            )

    @property
    def context(self) -> SharedContext:
        """The session's context: ``wait_for``, ``watch``, ``subscribe`` on the items."""
        return self._context

    @property
    def key_prefix(self) -> str:
        """The prefix of every key the store writes."""
        return self._keys.key_prefix

    def key_for(self, namespace: tuple[str, ...], key: str) -> str:
        """The context key that holds item ``key`` of ``namespace``."""
        return self._keys.key(check_namespace(namespace), _check_key(key))

    def pattern_for(self, namespace_prefix: tuple[str, ...] = ()) -> str:
        """The key pattern of the items in ``namespace_prefix`` and below it, the items a
        ``SearchOp`` with that prefix reads: for ``wait_for``, ``watch``, ``subscribe``."""
        return self._keys.pattern(check_namespace(namespace_prefix, "namespace prefix"))

    def to_item(self, entry: ContextEntry) -> Item:
        """The ``Item`` that a context entry of this store holds (from ``wait_for``, or
        a ``set`` event).

        Raises ``InvalidArgumentError`` if its key is not under ``key_prefix``, and if
        the entry has no value (``entry.has_value`` is False): the entry of a removal
        event (``delete``, ``expire``, ``evict``) carries none, so it is no ``Item``.
        """
        fields = self._fields(entry)  # raises first for a key of another store
        if not entry.has_value:
            raise InvalidArgumentError(
                f"the entry of key {entry.key!r} has no value, so it is no Item: it comes "
                "from a removal event (delete, expire or evict; see event.action)"
            )
        return Item(value=entry.value, **fields)

    # -- the BaseStore interface ---------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order; their results, in the same order."""
        if type(ops) is list and len(ops) == 1:  # store.get, store.put...: no trampoline
            op = ops[0]
            if type(op) is GetOp:
                return [self._get_now(op, _checked_key(op, self._keys))]
            if type(op) is PutOp:
                self._put_now(op, _checked_key(op, self._keys))
                return [None]
        return run(self._execute(ops), _no_operation)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Awaitable twin of :meth:`batch`; it never blocks the event loop."""
        return await arun(self._execute(ops), _ano_operation)

    def _execute(self, ops: Iterable[Op]) -> Steps[list[Result]]:
        ops = list(ops)
        for op in ops:
            _check_op(op, self._keys)  # a bad op raises before any op runs
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append((yield from self._get(op)))
            elif isinstance(op, PutOp):
                yield from self._put(op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append((yield from self._search(op)))
            else:
                results.append((yield from self._list_namespaces(op)))
        return results

    def _get(self, op: GetOp) -> Steps[Item | None]:
        context = self._context
        key = self._keys.key(op.namespace, op.key)
        entry = yield Twin(context.get_entry, context.aget_entry, key)
        if entry is not None and op.refresh_ttl and entry.ttl is not None:
            yield Twin(context.expire, context.aexpire, key, entry.ttl)
        return _item(op, entry)

    def _put(self, op: PutOp) -> Steps[None]:
        context = self._context
        key = self._keys.key(op.namespace, op.key)
        if op.value is None:
            yield Twin(context.delete, context.adelete, key)
        else:
            yield Twin(_set, _aset, context, key, *_written(op), self._source)

    def _get_now(self, op: GetOp, key: str) -> Item | None:
        """:meth:`_get` with its context calls made at once, for a batch of that one op
        (``store.get``): without a generator and its trampoline, which cost a get as
        much as the rest of it."""
        context = self._context
        entry = context.get_entry(key)
        if entry is not None and op.refresh_ttl and entry.ttl is not None:
            context.expire(key, entry.ttl)
        return _item(op, entry)

    def _put_now(self, op: PutOp, key: str) -> None:
        """:meth:`_put` with its context call made at once (``store.put``,
        ``store.delete``), as :meth:`_get_now`."""
        if op.value is None:
            self._context.delete(key)
        else:
            _set(self._context, key, *_written(op), self._source)

    def _search(self, op: SearchOp) -> Steps[list[SearchItem]]:
        if op.limit == 0:
            return []
        pattern = self._keys.pattern(op.namespace_prefix)
        filter, count = check_filter(op.filter), op.offset + op.limit
        found = yield from _first_matching(self._context, pattern, filter, count)
        page = found[op.offset :]
        if op.refresh_ttl:
            yield from _refresh(self._context, (entry for entry, _ in page))
        decode = self._keys.decode
        items = []
        for entry, value in page:
            namespace, key = decode(entry.key)  # type: ignore[misc]  # found under the prefix
            items.append(SearchItem(namespace, key, value, entry.created_at, entry.updated_at))
        return items

    def _list_namespaces(self, op: ListNamespacesOp) -> Steps[list[tuple[str, ...]]]:
        conditions = check_conditions(op.match_conditions)
        context = self._context
        pattern = self._keys.pattern(literal_head(conditions))
        keys = yield Twin(context.keys, context.akeys, pattern)
        found = _namespaces(keys, self._keys, conditions, op.max_depth)
        return sorted(found)[op.offset : op.offset + op.limit]

    def _fields(self, entry: ContextEntry) -> dict[str, Any]:
        """The fields an ``Item`` or a ``SearchItem`` takes from an entry, but its value."""
        decoded = self._keys.decode(entry.key)
        if decoded is None:
            raise InvalidArgumentError(
                f"key {entry.key!r} is not an item of this store (key_prefix {self.key_prefix!r})"
            )
        namespace, key = decoded
        return {
            "namespace": namespace,
            "key": key,
            "created_at": entry.created_at,
            "updated_at": entry.updated_at,
        }

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the context if the store opened it (from a session id); else nothing."""
        if self._owns_context:
            self._context.close()

    async def aclose(self) -> None:
        """Awaitable twin of :meth:`close`, for asyncio code."""
        if self._owns_context:
            await self._context.aclose()

    def __repr__(self) -> str:
        return f"<SharedContextStore key_prefix={self.key_prefix!r} of {self._context!r}>"


SEARCH_PAGE = 100
"""The fewest entries a search with a filter reads at a time."""


def _no_operation(step: object) -> Any:
    raise TypeError(f"not a step of the store: {step!r}")


async def _ano_operation(step: object) -> Any:
    raise TypeError(f"not a step of the store: {step!r}")


def _item(op: GetOp, entry: ContextEntry | None) -> Item | None:
    """The answer to ``op`` given the entry of its key: the op's namespace and key are
    the entry's (its key is theirs encoded), so none is decoded."""
    if entry is None:
        return None
    created_at = entry.created_at
    return Item(
        value=entry.value,
        key=op.key,
        namespace=op.namespace,
        created_at=created_at,
        updated_at=created_at if entry.updated == entry.created else entry.updated_at,
    )


def _written(op: PutOp) -> tuple[dict[str, Any], float | None]:
    """The value and the TTL in seconds that a put (not a delete) writes."""
    value: Any = op.value
    if type(value) is not dict:  # a Mapping of another kind (checked)
        value = dict(value)
    return value, None if op.ttl is None else op.ttl * 60


def _set(context: SharedContext, key: str, value: Any, ttl: float | None, source: str) -> Any:
    return context.set(key, value, ttl=ttl, source=source)


async def _aset(
    context: SharedContext, key: str, value: Any, ttl: float | None, source: str
) -> Any:
    return await context.aset(key, value, ttl=ttl, source=source)


def _first_matching(
    context: SharedContext, pattern: str, filter: Mapping[str, Any] | None, count: int
) -> Steps[list[tuple[ContextEntry, Any]]]:
    """The first ``count`` (>= 1) entries of ``pattern``, in key order, whose value
    matches ``filter`` (None: every value), with their values.

    Without a filter that is one read of ``count`` entries. With one, the prefix is
    read in pages of ``max(count, SEARCH_PAGE)``, each after the last key of the one
    before, until ``count`` entries match or none are left: a search whose matches
    come early stops early.
    """
    size = count if filter is None else max(count, SEARCH_PAGE)
    matches = None if filter is None else filter_matcher(filter)
    found: list[tuple[ContextEntry, Any]] = []
    after: str | None = None
    while True:
        entries = yield Twin(_find, _afind, context, pattern, size, after)
        for entry in entries:
            value = entry.value
            if matches is None or matches(value):
                found.append((entry, value))
                if len(found) == count:
                    return found
        if len(entries) < size:
            return found
        after = entries[-1].key


def _find(context: SharedContext, pattern: str, limit: int, after: str | None) -> Any:
    return context.find_by_pattern(pattern, limit=limit, after=after)


async def _afind(context: SharedContext, pattern: str, limit: int, after: str | None) -> Any:
    return await context.afind_by_pattern(pattern, limit=limit, after=after)


def _refresh(context: SharedContext, entries: Iterable[ContextEntry]) -> Steps[None]:
    """Restart the TTL of the entries that have one (no new version, no event)."""
    for entry in entries:
        if entry.ttl is not None:
            yield Twin(context.expire, context.aexpire, entry.key, entry.ttl)


def _namespaces(
    keys: list[str],
    encoding: KeyEncoding,
    conditions: tuple[MatchCondition, ...],
    max_depth: int | None,
) -> set[tuple[str, ...]]:
    """The namespaces of the items whose keys are ``keys`` (sorted, all under the
    prefix of ``literal_head(conditions)``) that meet ``conditions``, cut to
    ``max_depth`` labels.

    Each namespace's prefix is decoded once. With ``max_depth`` and only prefix
    conditions no longer than it (``list_namespaces(prefix=..., max_depth=...)``), the
    keys below a namespace of ``max_depth`` labels are skipped by bisection: they all
    cut to it, so such a listing costs a step per namespace listed, not per item.
    """
    head = literal_head(conditions)
    implied = all(  # every key read meets the conditions: none to check
        match_type == "prefix" and path == head[: len(path)] for match_type, path in conditions
    )
    if max_depth is not None and all(
        match_type == "prefix" and len(path) <= max_depth for match_type, path in conditions
    ):
        return _cut_namespaces(keys, encoding, () if implied else conditions, max_depth)
    found: set[tuple[str, ...]] = set()
    seen: set[str] = set()
    start = len(encoding.key_prefix)
    for key in keys:
        cut = key.rfind(_SEPARATOR) + 1
        prefix = key[:cut] if cut > start else encoding.key_prefix  # else: no namespace
        if prefix in seen:
            continue
        seen.add(prefix)
        namespace = encoding.namespace(prefix)
        if implied or matches_conditions(namespace, conditions):
            found.add(namespace if max_depth is None else namespace[:max_depth])
    return found


def _cut_namespaces(
    keys: list[str],
    encoding: KeyEncoding,
    conditions: tuple[MatchCondition, ...],
    max_depth: int,
) -> set[tuple[str, ...]]:
    """:func:`_namespaces` where a namespace cut to ``max_depth`` labels meets the
    (prefix) ``conditions`` as the namespace does."""
    found: set[tuple[str, ...]] = set()
    start = len(encoding.key_prefix)
    index, count = 0, len(keys)
    while index < count:
        key = keys[index]
        end, depth = start, 0
        while depth < max_depth:
            separator = key.find(_SEPARATOR, end)
            if separator < 0:
                break
            end, depth = separator + 1, depth + 1
        if depth == max_depth:  # every key that starts as this one cuts to its namespace
            prefix = key[:end]
            index = bisect_left(keys, prefix[:-1] + _AFTER_SEPARATOR, index + 1)
        else:  # an item of a shallower namespace
            cut = key.rfind(_SEPARATOR) + 1
            prefix = key[:cut] if cut > start else encoding.key_prefix
            index += 1
        namespace = encoding.namespace(prefix)
        if not conditions or matches_conditions(namespace, conditions):
            found.add(namespace)
    return found


_SEPARATOR = "/"
_AFTER_SEPARATOR = chr(ord(_SEPARATOR) + 1)
"""The character after ``/``: the keys that start with ``p/`` are those from ``p/`` up
to (without) ``p0``."""


MAX_KEY_LENGTH = 1024
"""sharedctx's longest key (the LangGraph guide, "Keys"): an item's key, once encoded, is checked
against it before a batch runs, not when the context refuses it halfway through."""

MAX_TTL_MINUTES = 10 * 365.25 * 24 * 60
"""sharedctx's longest TTL, ten years (the LangGraph guide, "TTLs"), in LangGraph's minutes."""


def _check_op(op: object, keys: KeyEncoding) -> None:
    if isinstance(op, GetOp | PutOp):
        _checked_key(op, keys)
    elif isinstance(op, SearchOp):
        check_namespace(op.namespace_prefix, "namespace prefix")
        if op.query:
            raise NotImplementedError(
                f"SharedContextStore has no semantic search: a SearchOp with a query "
                f"({op.query!r}) is not supported; use filter= to select items"
            )
        check_filter(op.filter)
        _check_count(op.limit, "limit")
        _check_count(op.offset, "offset")
    elif isinstance(op, ListNamespacesOp):
        check_conditions(op.match_conditions)
        if op.max_depth is not None:
            _check_count(op.max_depth, "max_depth", minimum=1)
        _check_count(op.limit, "limit")
        _check_count(op.offset, "offset")
    else:
        raise InvalidArgumentError(f"not a LangGraph store op: {op!r}")


def _checked_key(op: GetOp | PutOp, keys: KeyEncoding) -> str:
    """Check a get or a put (or a delete); the key it reads or writes."""
    if type(op.key) is not str:
        keys.prefix(op.namespace)  # a bad namespace raises first
        _check_key(op.key)
    full = keys.key(op.namespace, op.key)  # checks the namespace (once: it is kept)
    if len(full) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"item {op.key[:40]!r} of namespace {op.namespace!r} has a key of "
            f"{len(full)} characters once encoded; at most {MAX_KEY_LENGTH}"
        )
    if type(op) is not GetOp and isinstance(op, PutOp) and op.value is not None:  # a put
        if type(op.value) is not dict and not isinstance(op.value, Mapping):
            raise InvalidArgumentError(
                f"the value of a PutOp must be a dict (or None to delete), not "
                f"{type(op.value).__name__}"
            )
        _check_minutes(op.ttl, "PutOp.ttl")
    return full


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise InvalidArgumentError(f"an item key must be a str, not {type(key).__name__}")
    return key


def _check_count(value: Any, what: str, minimum: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidArgumentError(f"{what} must be an int >= {minimum}, not {value!r}")


def _check_minutes(ttl: Any, what: str) -> None:
    if ttl is None:
        return
    # A comparison, not float(): an int too large for a float is refused, not an error.
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= MAX_TTL_MINUTES:
        raise InvalidTTLError(
            f"{what} must be a number of minutes > 0 and at most {MAX_TTL_MINUTES:.0f} "
            f"(ten years), or None; not {ttl!r}"
        )


def _check_ttl_config(config: Any) -> TTLConfig | None:
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise InvalidArgumentError(f"ttl must be a TTLConfig (a dict), not {config!r}")
    _check_minutes(config.get("default_ttl"), "ttl['default_ttl']")
    if not isinstance(config.get("refresh_on_read", True), bool):
        raise InvalidArgumentError(
            f"ttl['refresh_on_read'] must be a bool, not {config['refresh_on_read']!r}"
        )
    return config  # type: ignore[return-value]
