"""SharedContextStore is a LangGraph store: the same results as LangGraph's own
``InMemoryStore`` for the same ops, on every backend, plus what it documents beyond."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from sharedctx import Backend, InvalidArgumentError, MemoryBackend, SharedContext
from sharedctx._glob import compile_glob
from sharedctx.backends import open_backend
from sharedctx.integrations.langgraph import SharedContextStore
from sharedctx.integrations.langgraph import _encoding as encoding_module
from sharedctx.integrations.langgraph import _store as store_module

from ..conftest import ContextFactory

# -- the oracle ----------------------------------------------------------------------


class Oracle(InMemoryStore):
    """``InMemoryStore`` as LangGraph's interface defines it, without the accidents of
    its implementation, which SharedContextStore does not imitate:

    - a batch runs its ops in order, each seeing the ones before it (InMemoryStore runs
      a batch's reads first, then its puts);
    - a namespace is listed while it holds an item (InMemoryStore also lists those that
      a get or a delete merely touched);
    - search results are sorted by the store's key for them (InMemoryStore: in insertion
      order): the oracle finds the whole result set, sorts it so, then takes the page.

    Not compared here: timestamps (InMemoryStore resets ``created_at`` on every put),
    orderings against a missing field (it raises: see test_an_ordering_never_matches_
    a_missing_field_or_another_type), TTLs (it has none) and semantic search.
    """

    def __init__(self, key_of: Callable[[tuple[str, ...], str], str]) -> None:
        super().__init__()
        self.key_of = key_of

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return [self._run(op) for op in ops]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return self.batch(ops)

    def _run(self, op: Op) -> Result:
        if isinstance(op, SearchOp):
            (found,) = super().batch([op._replace(offset=0, limit=1 << 30)])
            assert isinstance(found, list)
            found.sort(key=lambda item: self.key_of(item.namespace, item.key))
            return found[op.offset : op.offset + op.limit]
        (result,) = super().batch([op])
        for namespace in [namespace for namespace, items in self._data.items() if not items]:
            del self._data[namespace]
        return result


# -- strategies: few labels and keys, so that ops meet; each hostile to an encoding --

LABELS = ["a", "b", "a:b", "*", "x/y", "%2F", "[c]", "\\", "é?", "a%"]
KEYS = ["k", "", "a/b", "%", "*", "k.v", "a"]
ROOTS = ["a", "x/y", "*"]  # fewer first labels: more namespaces share a prefix
namespaces = st.builds(
    lambda root, rest: (root, *rest),
    st.sampled_from(ROOTS),
    st.lists(st.sampled_from(LABELS), max_size=2),
)
prefixes = st.lists(st.sampled_from(LABELS), max_size=2).map(tuple) | st.builds(
    lambda ns, depth: ns[:depth], namespaces, st.integers(0, 2)
)
numbers = st.integers(-1, 2) | st.sampled_from([0.5, 2.0])
texts = st.sampled_from(["", "x", "y", "xy"])
values = st.fixed_dictionaries(
    {"n": numbers},  # always there: InMemoryStore raises on an ordering of a missing field
    optional={
        "s": texts | st.none(),
        "b": st.booleans(),
        "m": st.fixed_dictionaries({"n": numbers}, optional={"s": texts}),
        "l": st.lists(st.integers(0, 2), max_size=2),
    },
)
orderings = st.sampled_from(["$gt", "$gte", "$lt", "$lte"])
conditions = st.one_of(
    st.tuples(st.just("n"), numbers | st.dictionaries(orderings | st.just("$ne"), numbers)),
    st.tuples(st.just("s"), texts | st.none() | st.builds(lambda t: {"$ne": t}, texts)),
    st.tuples(st.just("b"), st.booleans()),
    st.tuples(st.just("m"), st.builds(lambda n: {"n": n}, numbers)),
    st.tuples(st.just("m"), st.builds(lambda op, n: {"n": {op: n}}, orderings, numbers)),
    st.tuples(st.just("l"), st.lists(st.integers(0, 2), max_size=2)),
    st.tuples(st.just("absent"), st.none() | st.just({"$ne": 1}) | st.just(1)),
)
filters = st.none() | st.lists(conditions, max_size=2).map(dict)
paths = st.lists(st.sampled_from([*LABELS, "*"]), max_size=2).map(tuple)
ops: st.SearchStrategy[Op] = st.one_of(
    st.builds(
        lambda ns, key, value: PutOp(ns, key, value),  # value None: a delete
        namespaces,
        st.sampled_from(KEYS),
        values | st.none(),
    ),
    st.builds(lambda ns, key: GetOp(ns, key), namespaces, st.sampled_from(KEYS)),
    st.builds(
        lambda prefix, filter, limit, offset: SearchOp(prefix, filter, limit, offset),
        prefixes,
        filters,
        st.integers(0, 4),
        st.integers(0, 3),
    ),
    st.builds(
        lambda prefix, suffix, depth, limit, offset: ListNamespacesOp(
            (
                *([MatchCondition("prefix", prefix)] if prefix else []),
                *([MatchCondition("suffix", suffix)] if suffix else []),
            ),
            depth,
            limit,
            offset,
        ),
        paths,
        paths,
        st.none() | st.integers(1, 3),
        st.integers(0, 5),
        st.integers(0, 3),
    ),
)
# A step of one op goes through the public method (put, get...), a longer one through batch.
steps = st.lists(st.lists(ops, min_size=1, max_size=4), min_size=1, max_size=20)


def as_call(op: Op) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """The public BaseStore method that makes ``op``: name, arguments, options."""
    if isinstance(op, GetOp):
        return "get", (op.namespace, op.key), {}
    if isinstance(op, PutOp):
        if op.value is None:
            return "delete", (op.namespace, op.key), {}
        return "put", (op.namespace, op.key, op.value), {}
    if isinstance(op, SearchOp):
        options = {"filter": op.filter, "limit": op.limit, "offset": op.offset}
        return "search", (op.namespace_prefix,), options
    assert isinstance(op, ListNamespacesOp)
    paths = {condition.match_type: condition.path for condition in op.match_conditions or ()}
    return "list_namespaces", (), {**paths, "max_depth": op.max_depth, "limit": op.limit,
                                   "offset": op.offset}  # fmt: skip


def plain(result: Any) -> Any:
    """A result without timestamps, comparable with ==."""
    if isinstance(result, Item):
        return (result.namespace, result.key, result.value, getattr(result, "score", None))
    if isinstance(result, list):
        return [plain(each) for each in result]
    return result


prefix_numbers = itertools.count()


def fresh_store(context: SharedContext) -> SharedContextStore:
    """A store of its own in the context (one per hypothesis example)."""
    return SharedContextStore(context, key_prefix=f"lg{next(prefix_numbers)}:")


def oracle_for(store: SharedContextStore) -> Oracle:
    return Oracle(lambda namespace, key: store.key_for(namespace, key))


def run_step(store: Any, step: list[Op]) -> list[Any]:
    if len(step) > 1:
        return plain(store.batch(step))  # type: ignore[no-any-return]
    name, args, options = as_call(step[0])
    return [plain(getattr(store, name)(*args, **options))]


async def arun_step(store: Any, step: list[Op]) -> list[Any]:
    if len(step) > 1:
        return plain(await store.abatch(step))  # type: ignore[no-any-return]
    name, args, options = as_call(step[0])
    return [plain(await getattr(store, "a" + name)(*args, **options))]


# -- the differential tests ----------------------------------------------------------

DIFFERENTIAL = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Filtered searches read pages of just ``offset + limit`` entries, so that the few
    items of an example span several pages (100 by default: a single page)."""
    monkeypatch.setattr(store_module, "SEARCH_PAGE", 1)


@pytest.fixture
def small_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store keeps 3 namespaces encoded and 3 decoded (4096 by default), so that
    the few namespaces of an example are kept, dropped and worked out again."""
    monkeypatch.setattr(encoding_module, "CACHE_SIZE", 3)


@DIFFERENTIAL
@given(steps=steps)
@pytest.mark.usefixtures("small_pages", "small_caches")
def test_every_op_gives_what_in_memory_store_gives(
    ctx: SharedContext, steps: list[list[Op]]
) -> None:
    store = fresh_store(ctx)
    oracle = oracle_for(store)
    for step in steps:
        assert run_step(store, step) == run_step(oracle, step), step


@DIFFERENTIAL
@given(steps=steps)
@pytest.mark.usefixtures("small_pages")
async def test_async_twins_give_what_in_memory_store_gives(
    ctx: SharedContext, steps: list[list[Op]]
) -> None:
    store = fresh_store(ctx)
    oracle = oracle_for(store)
    for step in steps:
        assert await arun_step(store, step) == await arun_step(oracle, step), step


@settings(DIFFERENTIAL, max_examples=100)
@given(
    items=st.lists(st.tuples(namespaces, values), min_size=1, max_size=12),
    prefix=st.sampled_from([(), ("a",), ("x/y", "a")]),
    filter=filters,
    limit=st.integers(1, 4),
    offset=st.integers(0, 3),
)
@pytest.mark.usefixtures("small_pages")
def test_a_search_read_in_many_pages_gives_what_in_memory_store_gives(
    ctx: SharedContext,
    items: list[tuple[tuple[str, ...], dict[str, Any]]],
    prefix: tuple[str, ...],
    filter: dict[str, Any] | None,
    limit: int,
    offset: int,
) -> None:
    # More items under one prefix than the differential tests above tend to make, so
    # that a filtered search reads page after page.
    store = fresh_store(ctx)
    oracle = oracle_for(store)
    puts = [PutOp(namespace, f"{i:02}", value) for i, (namespace, value) in enumerate(items)]
    search = [SearchOp(prefix, filter, limit, offset)]
    assert run_step(store, puts) == run_step(oracle, puts)
    assert run_step(store, search) == run_step(oracle, search)


# -- items -----------------------------------------------------------------------------


def test_an_item_keeps_its_created_at_and_moves_its_updated_at(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    store.put(("users", "u1"), "prefs", {"theme": "dark"})
    first = store.get(("users", "u1"), "prefs")
    entry = ctx.get_entry(store.key_for(("users", "u1"), "prefs"))
    assert first is not None
    assert entry is not None
    assert first.namespace == ("users", "u1")
    assert (first.key, first.value) == ("prefs", {"theme": "dark"})
    assert (first.created_at, first.updated_at) == (entry.created_at, entry.updated_at)
    threading.Event().wait(0.01)  # let the clock move
    store.put(("users", "u1"), "prefs", {"theme": "light"})
    second = store.get(("users", "u1"), "prefs")
    assert second is not None
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert ctx.get_entry(store.key_for(("users", "u1"), "prefs")).metadata.version == 2  # type: ignore[union-attr]


def test_values_are_copies(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    value = {"tags": ["a"]}
    store.put(("n",), "k", value)
    value["tags"].append("b")
    item = store.get(("n",), "k")
    assert item is not None
    assert item.value == {"tags": ["a"]}
    item.value["tags"].append("c")
    assert store.get(("n",), "k").value == {"tags": ["a"]}  # type: ignore[union-attr]


def test_an_entry_records_the_store_as_its_source(ctx: SharedContext) -> None:
    SharedContextStore(ctx).put(("n",), "k", {})
    SharedContextStore(ctx, key_prefix="other:", source="planner").put(("n",), "k", {})
    assert ctx.get_entry("lg:n/k").metadata.source == "langgraph"  # type: ignore[union-attr]
    assert ctx.get_entry("other:n/k").metadata.source == "planner"  # type: ignore[union-attr]


# -- keys --------------------------------------------------------------------------------

any_label = st.text(
    st.characters(blacklist_characters=".\x00", codec="utf-8"), min_size=1, max_size=20
)


@pytest.fixture(scope="module")
def memory_store() -> Iterator[SharedContextStore]:
    with SharedContextStore("encoding") as store:
        yield store


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(namespace=st.lists(any_label, min_size=1, max_size=4).map(tuple), key=st.text(max_size=20))
def test_keys_are_reversible_and_a_namespace_prefix_is_a_literal_key_prefix(
    memory_store: SharedContextStore, namespace: tuple[str, ...], key: str
) -> None:
    store = memory_store
    store.batch([PutOp(namespace, key, {"v": 1})])  # put() refuses the root label "langgraph"
    full = store.key_for(namespace, key)
    item = store.to_item(store.context.get_entry(full))  # type: ignore[arg-type]
    assert (item.namespace, item.key, item.value) == (namespace, key, {"v": 1})
    for depth in range(len(namespace) + 1):
        glob = compile_glob(store.pattern_for(namespace[:depth]))
        assert glob.selects_prefix  # a literal prefix, then *: that range is read, no more
        assert full.startswith(glob.prefix)
        assert glob.match(full)
    store.batch([PutOp(namespace, key, None)])


def test_an_item_key_may_be_1024_characters_once_encoded(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    namespace, key = ("n",), "%" * 339 + "ok"  # lg:n/, 339 times %25, then ok
    assert len(store.key_for(namespace, key)) == 1024
    store.put(namespace, key, {"v": 1})
    assert store.get(namespace, key).value == {"v": 1}  # type: ignore[union-attr]


def test_the_encoding_is_the_documented_one(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    assert store.key_for(("users", "a:b"), "prefs") == "lg:users/a:b/prefs"
    assert store.key_for(("x/y", "*?[]\\", "50%"), "k/1") == "lg:x%2Fy/%2A%3F%5B%5D%5C/50%25/k%2F1"
    assert store.pattern_for(("users",)) == "lg:users/*"
    assert store.pattern_for() == "lg:*"


def test_a_label_that_looks_like_another_namespace_stays_apart(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    store.put(("a/b",), "k", {"one": 1})
    store.put(("a", "b"), "k", {"two": 2})
    store.put(("a*",), "k", {"three": 3})
    assert [item.value for item in store.search(("a",))] == [{"two": 2}]
    assert store.get(("a/b",), "k").value == {"one": 1}  # type: ignore[union-attr]
    assert store.list_namespaces() == [("a", "b"), ("a*",), ("a/b",)]


def test_search_reads_only_the_namespace_prefix_range(
    ctx: SharedContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SharedContextStore(ctx)
    store.put(("docs", "u1"), "a", {})
    calls = record_calls(ctx, monkeypatch, "find_by_pattern")
    assert [item.key for item in store.search(("docs", "u1"))] == ["a"]
    assert [args for args, _ in calls] == [("lg:docs/u1/*",)]


def record_calls(
    ctx: SharedContext, monkeypatch: pytest.MonkeyPatch, name: str
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The calls the test then makes to the context's method ``name``: arguments, options."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    method = getattr(ctx, name)

    def recording(*args: Any, **options: Any) -> Any:
        calls.append((args, options))
        return method(*args, **options)

    async def arecording(*args: Any, **options: Any) -> Any:
        calls.append((args, options))
        return await method(*args, **options)

    monkeypatch.setattr(ctx, name, arecording if inspect.iscoroutinefunction(method) else recording)
    return calls


def test_other_data_of_the_session_is_left_alone(ctx: SharedContext) -> None:
    ctx.set("analysis:mind:tim", {"score": 1})
    ctx.set("lg", "not an item")
    store = SharedContextStore(ctx)
    store.put(("n",), "k", {"v": 1})
    assert [item.key for item in store.search(())] == ["k"]
    assert store.list_namespaces() == [("n",)]
    assert ctx.get("analysis:mind:tim") == {"score": 1}


# -- search --------------------------------------------------------------------------


def test_search_results_are_sorted_by_key_then_paged(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    for namespace, key in [(("b",), "1"), (("a", "z"), "2"), (("a",), "3"), (("a",), "0")]:
        store.put(namespace, key, {"n": int(key)})
    found = store.search(())
    assert [(item.namespace, item.key) for item in found] == [
        (("a",), "0"), (("a",), "3"), (("a", "z"), "2"), (("b",), "1"),
    ]  # fmt: skip
    assert [item.key for item in store.search((), limit=2, offset=1)] == ["3", "2"]
    assert [item.key for item in store.search((), filter={"n": {"$gte": 1}})] == ["3", "2", "1"]
    assert all(item.score is None for item in found)


def test_a_search_without_a_filter_reads_only_offset_plus_limit_entries(
    ctx: SharedContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SharedContextStore(ctx)
    store.batch([PutOp(("n",), f"{i:02}", {"n": i}) for i in range(20)])
    calls = record_calls(ctx, monkeypatch, "find_by_pattern")
    assert [item.key for item in store.search(("n",), limit=2, offset=3)] == ["03", "04"]
    assert [item.key for item in store.search(("n",), limit=5, offset=18)] == ["18", "19"]
    assert store.search(("n",), limit=0, offset=5) == []  # nothing to read
    assert [options for _, options in calls] == [
        {"limit": 5, "after": None}, {"limit": 23, "after": None},
    ]  # fmt: skip
    acalls = record_calls(ctx, monkeypatch, "afind_by_pattern")
    found = asyncio.run(store.asearch(("n",), limit=2, offset=3))
    assert [item.key for item in found] == ["03", "04"]
    assert [options for _, options in acalls] == [{"limit": 5, "after": None}]


def test_a_filtered_search_reads_pages_until_enough_items_match(
    ctx: SharedContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SharedContextStore(ctx)
    store.batch([PutOp(("n",), f"{i:03}", {"n": i}) for i in range(250)])
    calls = record_calls(ctx, monkeypatch, "find_by_pattern")

    def search(filter: dict[str, Any], limit: int, offset: int) -> list[str]:
        calls.clear()
        return [item.key for item in store.search(("n",), filter=filter, limit=limit,
                                                  offset=offset)]  # fmt: skip

    def pages() -> list[tuple[int, str | None]]:
        return [(options["limit"], options["after"]) for _, options in calls]

    assert search({"n": {"$lt": 10}}, limit=3, offset=1) == ["001", "002", "003"]
    assert pages() == [(100, None)]  # matches early: stops after the first page
    assert search({"n": {"$gte": 240}}, limit=5, offset=2) == [f"{n}" for n in range(242, 247)]
    assert pages() == [(100, None), (100, "lg:n/099"), (100, "lg:n/199")]
    assert search({"n": -1}, limit=10, offset=0) == []
    assert pages() == [(100, None), (100, "lg:n/099"), (100, "lg:n/199")]  # to the end
    assert len(search({"n": {"$gte": 0}}, limit=150, offset=10)) == 150
    assert pages() == [(160, None)]  # a page holds at least offset + limit entries


def test_a_search_over_several_pages_sees_each_item_once_in_order(
    ctx: SharedContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between two pages, other writers remove and add items: the search reads on
    # after the last key it saw, so it neither repeats nor reorders anything.
    store = SharedContextStore(ctx)
    store.batch([PutOp(("n",), f"{i:03}", {"n": i}) for i in range(200)])
    find = ctx.find_by_pattern
    pages = 0

    def find_while_others_write(pattern: str, **options: Any) -> Any:
        nonlocal pages
        found = find(pattern, **options)
        pages += 1
        if pages == 1:
            store.delete(("n",), "150")  # not read yet: not found
            store.put(("n",), "050a", {"n": -1})  # before the next page: not found
            store.put(("n",), "150a", {"n": -1})  # after: found
            store.put(("n",), "001", {"n": -2})  # read already: found as it was
        return found

    monkeypatch.setattr(ctx, "find_by_pattern", find_while_others_write)
    found = store.search(("n",), filter={"n": {"$lt": 2}}, limit=10)
    assert [(item.key, item.value["n"]) for item in found] == [("000", 0), ("001", 1),
                                                               ("150a", -1)]  # fmt: skip
    assert pages == 3


def test_an_ordering_never_matches_a_missing_field_or_another_type(ctx: SharedContext) -> None:
    # InMemoryStore raises here (float(None)), or converts strings to floats.
    store = SharedContextStore(ctx)
    store.put(("n",), "none", {})
    store.put(("n",), "null", {"v": None})
    store.put(("n",), "bool", {"v": True})
    store.put(("n",), "text", {"v": "5"})
    store.put(("n",), "list", {"v": [9]})
    store.put(("n",), "number", {"v": 5})
    assert [item.key for item in store.search(("n",), filter={"v": {"$gt": 1}})] == ["number"]
    assert [item.key for item in store.search(("n",), filter={"v": {"$lt": "6"}})] == ["text"]
    assert [item.key for item in store.search(("n",), filter={"v": {"$ne": 5}})] == [
        "bool", "list", "none", "null", "text",
    ]  # fmt: skip


def test_filters_with_several_operators_on_one_field_apply_them_all(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    for n in range(5):
        store.put(("n",), str(n), {"n": n, "date": f"2026-0{n + 1}-01"})
    assert [i.key for i in store.search(("n",), filter={"n": {"$gt": 0, "$lte": 2}})] == ["1", "2"]
    between = {"date": {"$gte": "2026-02-01", "$lt": "2026-04-01"}}
    assert [i.key for i in store.search(("n",), filter=between)] == ["1", "2"]


def test_semantic_search_raises_a_clear_error(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    with pytest.raises(NotImplementedError, match=r"semantic search.*filter="):
        store.search(("docs",), query="what did the user like?")
    with pytest.raises(NotImplementedError, match="semantic search"):
        asyncio.run(store.asearch(("docs",), query="anything"))


# -- listing namespaces ------------------------------------------------------------------


def test_list_namespaces_as_the_interface_documents_it(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    for namespace in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"),
                      ("a", "b", "f"), ("a", "c", "f")]:  # fmt: skip
        store.put(namespace, "k", {})
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f"),
    ]  # fmt: skip
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("*", "i")) == [("a", "b", "d", "i")]
    assert store.list_namespaces(max_depth=1) == [("a",)]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    store.delete(("a", "c", "f"), "k")
    store.get(("never", "written"), "k")
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f")]
    assert store.list_namespaces(prefix=("never",)) == []


def test_namespaces_kept_encoded_are_shared_safely_by_threads(
    ctx: SharedContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four threads, each with namespaces of its own, more of them than the store keeps
    # (so the kept ones are dropped while other threads read them): every item is
    # written, read back and listed where it belongs.
    monkeypatch.setattr(encoding_module, "CACHE_SIZE", 5)
    store = SharedContextStore(ctx)
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for round_ in range(40):
                namespace = ("t", str(thread), str(round_ % 13))
                store.put(namespace, f"k{round_}", {"thread": thread, "round": round_})
                item = store.get(namespace, f"k{round_}")
                assert item is not None
                assert (item.namespace, item.key, item.value["round"]) == (
                    namespace, f"k{round_}", round_
                )  # fmt: skip
                found = store.search(namespace[:2], filter={"round": round_})
                assert [(i.namespace, i.key) for i in found] == [(namespace, f"k{round_}")]
        except BaseException as error:  # reported on the test's thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = [("t", str(n), str(r)) for n in range(4) for r in range(13)]
    assert store.list_namespaces(prefix=("t",)) == sorted(expected)
    assert store.list_namespaces(prefix=("t",), max_depth=2) == [("t", str(n)) for n in range(4)]


def test_a_listing_cut_to_a_depth_skips_only_what_is_below_each_namespace(
    ctx: SharedContext,
) -> None:
    # A listing with max_depth skips the keys below each namespace of that depth at
    # once; labels that sort just before and after the separator "/" ("-", ":", "0")
    # and "%" (encoded "%25") sit right beside the skipped range, and must be listed.
    store, oracle = SharedContextStore(ctx), InMemoryStore()
    labels = ["b", "b-", "b:", "b0", "b/", "b%", "%"]
    namespaces = [("a",), ("a-",), ("a:",), *[("a", label) for label in labels]]
    namespaces += [("a", label, "c") for label in labels] + [("a", "b", "c", "d"), ("a0",)]
    for each in (store, oracle):
        for namespace in namespaces:
            each.put(namespace, "k", {})
            each.put(namespace, "z", {})
    for prefix in [(), ("a",), ("a", "b"), ("a", "*")]:
        for depth in [1, 2, 3, None]:
            options: dict[str, Any] = {"prefix": prefix, "max_depth": depth, "limit": 100}
            assert store.list_namespaces(**options) == oracle.list_namespaces(**options), options


# -- batches -----------------------------------------------------------------------------


def test_a_batch_runs_its_ops_in_order_and_answers_in_that_order(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    results = store.batch(
        [
            GetOp(("n",), "k"),
            PutOp(("n",), "k", {"v": 1}),
            GetOp(("n",), "k"),
            SearchOp(("n",)),
            ListNamespacesOp(),
            PutOp(("n",), "k", None),
            GetOp(("n",), "k"),
        ]
    )
    assert plain(results) == [
        None, None, (("n",), "k", {"v": 1}, None), [(("n",), "k", {"v": 1}, None)], [("n",)],
        None, None,
    ]  # fmt: skip


async def test_abatch_never_calls_a_blocking_method(
    ctx: SharedContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SharedContextStore(ctx, ttl={"default_ttl": 10})
    for name in ["get_entry", "set", "delete", "expire", "find_by_pattern", "keys"]:
        monkeypatch.setattr(ctx, name, _blocking(name))
    await store.aput(("n",), "k", {"v": 1})
    assert (await store.aget(("n",), "k")).value == {"v": 1}  # type: ignore[union-attr]
    assert [item.key for item in await store.asearch(("n",))] == ["k"]
    assert await store.alist_namespaces() == [("n",)]
    await store.adelete(("n",), "k")
    assert await store.aget(("n",), "k") is None


def _blocking(name: str) -> Callable[..., Any]:
    def call(*args: Any, **options: Any) -> Any:
        raise AssertionError(f"abatch called the blocking {name}()")

    return call


# -- bad input ---------------------------------------------------------------------------

BAD_NAMESPACES = [
    (["users"], "must be a tuple"),
    (("users", 1), "1 .* is a int, not a str"),
    (("users", ""), "'' .* is empty"),
    (("users.admin",), "contains a period"),
    (("a\x00",), "NUL"),
]


@pytest.mark.parametrize(("namespace", "problem"), BAD_NAMESPACES)
def test_a_bad_namespace_raises_naming_the_problem(
    ctx: SharedContext, namespace: Any, problem: str
) -> None:
    store = SharedContextStore(ctx)
    store.put(("users",), "k", {})  # a good namespace, now kept encoded, lets no bad one by
    store.put(("users", "1"), "k", {})
    for op in [
        GetOp(namespace, "k"),
        PutOp(namespace, "k", {}),
        SearchOp(namespace),
        ListNamespacesOp((MatchCondition("prefix", namespace),)),
    ]:
        with pytest.raises(InvalidNamespaceError, match=problem):
            store.batch([op])
        with pytest.raises(InvalidNamespaceError, match=problem):
            store.batch([op, op])
    with pytest.raises(InvalidNamespaceError):
        store.key_for(namespace, "k")


@pytest.mark.parametrize(
    ("op", "problem"),
    [
        (GetOp(("n",), 1), "item key must be a str"),  # type: ignore[arg-type]
        (PutOp(("n",), "k", ["not", "a", "dict"]), "must be a dict"),  # type: ignore[arg-type]
        (PutOp(("n",), "k", {}, ttl=0), "minutes > 0"),
        (PutOp(("n",), "k", {}, ttl=float("nan")), "minutes > 0"),
        (PutOp(("n",), "k", {}, ttl=10**9), r"at most 5259600 \(ten years\)"),
        (PutOp(("n",), "k", {}, ttl=10**400), "ten years"),  # too large for a float
        (GetOp(("n",), "k" * 1020), "1025 characters once encoded; at most 1024"),
        (PutOp(("n",), "%" * 340, {}), "1025 characters once encoded"),  # %25 each
        (SearchOp(("n",), limit=-1), "limit must be an int >= 0"),
        (SearchOp(("n",), offset=1.5), "offset must be an int"),  # type: ignore[arg-type]
        (SearchOp(("n",), filter={"n": {"$in": [1]}}), "unknown operator '\\$in'"),
        (SearchOp(("n",), filter={"n": {"$gt": 1, "x": 2}}), "mixes operators"),
        (SearchOp(("n",), filter={"n": {"$gt": None}}), "needs a number or a str"),
        (SearchOp(("n",), filter=[("n", 1)]), "filter must be a dict"),  # type: ignore[arg-type]
        (ListNamespacesOp(max_depth=0), "max_depth must be an int >= 1"),
        (ListNamespacesOp((MatchCondition("middle", ("a",)),)), "match_type"),  # type: ignore[arg-type]
        ("get", "not a LangGraph store op"),
    ],
)
def test_a_bad_op_raises_before_any_op_of_its_batch_runs(
    ctx: SharedContext, op: Any, problem: str
) -> None:
    store = SharedContextStore(ctx)
    with pytest.raises(ValueError, match=problem):
        store.batch([PutOp(("n",), "first", {}), op])
    assert store.get(("n",), "first") is None
    with pytest.raises(ValueError, match=problem):
        store.batch([op])  # alone: a get or a put skips the trampoline, not the checks
    assert store.list_namespaces() == []


def test_bad_store_options_raise(ctx: SharedContext) -> None:
    with pytest.raises(InvalidArgumentError, match="glob metacharacter"):
        SharedContextStore(ctx, key_prefix="lg*")
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        SharedContextStore(ctx, key_prefix="")
    with pytest.raises(InvalidArgumentError, match="default_ttl"):
        SharedContextStore(ctx, ttl={"default_ttl": -1})
    with pytest.raises(InvalidArgumentError, match=r"default_ttl.*ten years"):
        SharedContextStore(ctx, ttl={"default_ttl": 10**9})
    with pytest.raises(InvalidArgumentError, match="refresh_on_read"):
        SharedContextStore(ctx, ttl={"refresh_on_read": "yes"})  # type: ignore[typeddict-item]
    with pytest.raises(InvalidArgumentError, match="backend= is for a session id"):
        SharedContextStore(ctx, backend="redis://localhost:1/0")
    with pytest.raises(InvalidArgumentError, match="backend= is for a session id"):
        SharedContextStore(ctx, backend=MemoryBackend())
    with pytest.raises(InvalidArgumentError, match="backend must be 'memory', a Redis URL"):
        SharedContextStore("s", backend=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="backend must be 'memory', a redis://"):
        SharedContextStore("s", backend="postgres://localhost/db")
    with pytest.raises(InvalidArgumentError, match="SharedContext or a session id"):
        SharedContextStore(42)  # type: ignore[arg-type]


# -- the context beyond the interface ------------------------------------------------


def test_a_node_can_wait_for_the_items_of_other_nodes(make_context: ContextFactory) -> None:
    context = make_context()
    store = SharedContextStore(context)
    namespace = ("run-1", "results")

    def node(name: str) -> None:
        SharedContextStore(context).put(namespace, name, {"by": name})

    threads = [threading.Thread(target=node, args=(name,)) for name in ["a", "b", "c"]]
    for thread in threads:
        thread.start()
    entries = store.context.wait_for(store.pattern_for(namespace), count=3, timeout=30)
    for thread in threads:
        thread.join()
    assert [store.to_item(entry).value for entry in entries] == [{"by": n} for n in "abc"]


async def test_a_node_can_watch_a_namespace(ctx: SharedContext) -> None:
    store = SharedContextStore(ctx)
    with store.context.watch(store.pattern_for(("watched",))) as watch:
        await store.aput(("elsewhere",), "k", {"v": 0})
        await store.aput(("watched", "deeper"), "k", {"v": 1})
        await store.adelete(("watched", "deeper"), "k")
        first = await watch.aget(timeout=10)
        second = await watch.aget(timeout=10)
    assert (first.action, second.action) == ("set", "delete")
    item = store.to_item(first.entry)
    assert (item.namespace, item.key, item.value) == (("watched", "deeper"), "k", {"v": 1})
    with pytest.raises(InvalidArgumentError, match="not an item of this store"):
        SharedContextStore(ctx, key_prefix="other:").to_item(first.entry)
    # A removal event carries the entry without its value: there is no Item to make.
    assert second.entry.key == store.key_for(("watched", "deeper"), "k")
    assert not second.entry.has_value
    with pytest.raises(InvalidArgumentError, match=r"no value.*removal event"):
        store.to_item(second.entry)
    with pytest.raises(InvalidArgumentError, match="not an item of this store"):
        SharedContextStore(ctx, key_prefix="other:").to_item(second.entry)


def test_a_store_opened_from_a_session_id_owns_its_context(backend: str | Backend) -> None:
    with SharedContextStore("owned-session", backend=backend) as store:
        store.put(("n",), "k", {"v": 1})
        assert store.context.session_id == "owned-session"
        store.context.destroy()
    assert store.context.closed


def test_a_store_opened_on_a_backend_object_leaves_the_backend_open(
    backend: str | Backend,
) -> None:
    shared, owned = open_backend(backend)  # a Backend object, whatever the fixture gives
    session = f"on-a-backend-{next(prefix_numbers)}"
    try:
        with SharedContextStore(session, backend=shared) as store:
            store.put(("n",), "k", {"v": 1})
            assert store.context.backend is shared
        assert store.context.closed
        with SharedContextStore(session, backend=shared) as again:  # the backend still serves
            again.put(("n",), "j", {"v": 2})
            assert again.get(("n",), "j").value == {"v": 2}  # type: ignore[union-attr]
            again.context.destroy()
    finally:
        if owned:
            shared.close()


def test_a_store_given_a_context_leaves_it_open(ctx: SharedContext) -> None:
    with SharedContextStore(ctx) as store:
        store.put(("n",), "k", {"v": 1})
    assert not ctx.closed
    assert ctx.get("lg:n/k") == {"v": 1}


# -- packaging ---------------------------------------------------------------------------


def test_importing_sharedctx_does_not_import_langgraph() -> None:
    code = "import sys, sharedctx; print(sorted(m for m in sys.modules if 'langgraph' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_langgraph_the_integration_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['langgraph'] = None; import sharedctx\n"
        "import sharedctx.integrations.langgraph"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert "pip install 'sharedctx[langgraph]'" in out.stderr


# -- in a graph --------------------------------------------------------------------------


async def test_an_async_graph_uses_the_store_through_compile(ctx: SharedContext) -> None:
    class State(TypedDict, total=False):
        report: list[str]

    def writer(name: str) -> Callable[[State, Runtime[None]], Awaitable[State]]:
        async def node(state: State, runtime: Runtime[None]) -> State:
            assert runtime.store is not None
            await runtime.store.aput(("results",), name, {"by": name})
            return {}

        return node

    async def report(state: State, runtime: Runtime[None]) -> State:
        store = runtime.store
        assert isinstance(store, SharedContextStore)
        entries = await store.context.await_for(store.pattern_for(("results",)), count=2)
        return {"report": [store.to_item(entry).value["by"] for entry in entries]}

    graph = StateGraph(State)
    graph.add_node("a", writer("a"))
    graph.add_node("b", writer("b"))
    graph.add_node("report", report)
    graph.add_edge(START, "a")
    graph.add_edge(START, "b")
    graph.add_edge(["a", "b"], "report")
    graph.add_edge("report", END)
    state = await graph.compile(store=SharedContextStore(ctx)).ainvoke({})
    assert state == {"report": ["a", "b"]}


def test_history_is_reached_through_the_stores_context(make_context: ContextFactory) -> None:
    store = SharedContextStore(make_context(history_versions=4))
    namespace = ("users", "ada")
    store.put(namespace, "profile", {"v": 1})
    before = store.context.revision
    store.put(namespace, "profile", {"v": 2})
    key = store.key_for(namespace, "profile")
    items = [store.to_item(entry) for entry in store.context.history(key)]
    assert [item.value for item in items] == [{"v": 2}, {"v": 1}]
    assert all(item.namespace == namespace and item.key == "profile" for item in items)
    then = store.context.get_entry(key, revision=before)
    assert then is not None
    assert store.to_item(then).value == {"v": 1}
    forked = SharedContextStore(
        store.context.fork(f"{store.context.session_id}-fork", revision=before)
    )
    try:
        found = forked.get(namespace, "profile")
        assert found is not None
        assert found.value == {"v": 1}
    finally:
        forked.context.destroy()
