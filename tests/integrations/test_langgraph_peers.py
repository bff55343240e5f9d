"""The work of the peer comparison (``benchmarks/peer_sequence.py``) gets the same answers
from SharedContextStore as from LangGraph's InMemoryStore, the reference it imitates:
so the benchmark compares two stores doing the same work. Timings are the benchmark's
(``benchmarks/peer_workloads.py``), never a test's."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.store.base import SearchItem
from langgraph.store.memory import InMemoryStore

from sharedctx import SharedContext
from sharedctx.integrations.langgraph import SharedContextStore

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    """``benchmarks/peer_sequence.py``, imported as the benchmark imports it."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import peer_sequence
    finally:
        sys.path.remove(str(BENCHMARKS))
    return peer_sequence


def both(peers: ModuleType, store: SharedContextStore, seed: int = 0) -> InMemoryStore:
    """The reference, and ``store``, both holding the benchmark's data."""
    reference = InMemoryStore()
    for each in (store, reference):
        peers.run(each, peers.items(seed))
    return reference


def test_the_benchmark_sequence_gets_what_in_memory_store_answers(
    ctx: SharedContext, peers: ModuleType
) -> None:
    store = SharedContextStore(ctx)
    reference = both(peers, store)
    calls = peers.sequence(1000)
    assert {call.name for call in calls} == set(peers.WEIGHTS)
    answers, expected = peers.run(store, calls), peers.run(reference, calls)
    assert peers.plain(answers) == peers.plain(expected)
    assert peers.same_work(calls, answers, expected) is None
    # Not a sequence of empty answers: every kind of call finds something.
    found = {call.name for call, answer in zip(calls, expected, strict=True) if answer}
    assert found == {"get", "search", "list_namespaces"}


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.integers(0, 2**32 - 1), seed=st.integers(0, 2**32 - 1))
def test_any_sequence_gets_what_in_memory_store_answers(
    peers: ModuleType, data: int, seed: int
) -> None:
    with SharedContext(f"peers-{data}-{seed}") as context:
        store = SharedContextStore(context)
        reference = both(peers, store, data)
        calls = peers.sequence(200, seed)
        assert peers.plain(peers.run(store, calls)) == peers.plain(peers.run(reference, calls))
        context.clear()


def test_same_work_allows_another_order_of_a_page_and_nothing_else(
    ctx: SharedContext, peers: ModuleType
) -> None:
    # PostgresStore orders a search by updated_at: the benchmark accepts another page
    # of as many items, each in the prefix and matching the filter, and nothing else.
    store = SharedContextStore(ctx)
    both(peers, store)
    prefix, kind = ("memories", "user-007"), "fact"
    search = peers.Call("search", (prefix,), {"filter": {"kind": kind}, "limit": 2, "offset": 0})
    get = peers.Call("get", (prefix, "mem-01"), {})
    calls = [search, get]
    answers = peers.run(store, calls)
    assert len(answers[0]) == 2
    others = [list(reversed(answers[0])), answers[1]]
    assert peers.same_work(calls, answers, others) is None

    def tampered(value: dict[str, Any]) -> list[Any]:
        first = answers[0][0]
        item = SearchItem(first.namespace, first.key, value, first.created_at, first.updated_at)
        return [[item, answers[0][1]], answers[1]]

    assert "does not match" in str(peers.same_work(calls, answers, tampered({"kind": "other"})))
    assert "1 items != 2" in str(peers.same_work(calls, [answers[0][:1], answers[1]], answers))
    assert "call 1" in str(peers.same_work(calls, answers, [answers[0], None]))
