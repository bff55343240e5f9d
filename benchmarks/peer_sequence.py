"""The peer comparison's work: a LangGraph store's data and a random sequence of calls.

The data (:func:`items`) is what an agent's long-term memory looks like in LangGraph's
docs: ``USERS`` users, each with ``MEMORIES`` memories in ``("memories", user)`` and a
profile in ``("profiles", user)``; every value is a small JSON-able dict (a kind, a
score, a text and two tags). The sequence (:func:`sequence`) mixes the four calls of
``BaseStore`` that a graph's nodes make, through their public methods, in
``WEIGHTS``' proportions:

- ``get`` of a profile (one in five) or a memory (one in ten of them not there);
- ``put`` of a new value under an existing key;
- ``search`` with a filter (a kind, or a score of at least 50, 80 or 90) and a page
  (``limit`` and ``offset``), mostly in one user's memories, sometimes in everyone's;
- ``list_namespaces`` of the users with memories (prefix ``("memories",)``,
  ``max_depth=2``), one page of ten from a random offset.

Every ``put`` writes a key that :func:`items` wrote first, and nothing is deleted, so
the stores hold the same keys throughout: ``InMemoryStore`` keeps its items in the
order they were first written and sharedctx's store sorts them by key, and as the
data are written in key order the two orders agree, so that every call gives the
same answer on both (``tests/integrations/test_langgraph_peers.py`` checks it). A
``search`` page of ``PostgresStore`` is ordered by ``updated_at`` instead: its
answers hold the same number of items, each in the prefix and matching the filter
(:func:`same_work`, checked before the shared stores are timed). Scores have two
digits (10 to 99) because ``PostgresStore`` compares a field with ``$gte`` (and the
other orderings) as text, ``value->>'score' >= '50'``, under which 8 would pass: with
two digits, text and numbers agree.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KINDS",
    "MEMORIES",
    "USERS",
    "WEIGHTS",
    "Call",
    "items",
    "matches",
    "plain",
    "run",
    "same_work",
    "sequence",
]

USERS = 100
MEMORIES = 10
KINDS = ("fact", "preference", "episode")
WEIGHTS = {"get": 40, "put": 30, "search": 20, "list_namespaces": 10}
"""How often each call comes, in percent."""
_WORDS = ("coffee", "hiking", "python", "berlin", "jazz", "tea", "chess", "rust", "piano")


@dataclass(frozen=True)
class Call:
    """One call of a ``BaseStore`` method: ``getattr(store, name)(*args, **options)``."""

    name: str
    args: tuple[Any, ...]
    options: dict[str, Any]

    def __call__(self, store: Any) -> Any:
        return getattr(store, self.name)(*self.args, **self.options)


def _user(index: int) -> str:
    return f"user-{index:03d}"


def _memory(index: int) -> str:
    return f"mem-{index:02d}"


def _value(rng: random.Random) -> dict[str, Any]:
    words = rng.sample(_WORDS, 4)
    return {
        "kind": rng.choice(KINDS),
        "score": rng.randrange(10, 100),  # two digits: see the module docstring
        "text": f"likes {words[0]} and {words[1]}; mentioned it {rng.randrange(1, 9)} times",
        "tags": words[2:],
    }


def items(seed: int = 0) -> list[Call]:
    """The ``put`` calls that write the data, in key order (see the module docstring)."""
    rng = random.Random(seed)
    calls = []
    for user in range(USERS):
        for memory in range(MEMORIES):
            calls.append(Call("put", (("memories", _user(user)), _memory(memory), _value(rng)), {}))
    for user in range(USERS):
        profile = {"name": _user(user), "language": rng.choice(("en", "de", "fr")), "tz": "UTC"}
        calls.append(Call("put", (("profiles", _user(user)), "profile", profile), {}))
    return calls


def sequence(length: int, seed: int = 1) -> list[Call]:
    """``length`` calls drawn at random (``seed``) in ``WEIGHTS``' proportions."""
    rng = random.Random(seed)
    draw: list[Callable[[random.Random], Call]] = [_get, _put, _search, _list_namespaces]
    return [call(rng) for call in rng.choices(draw, weights=list(WEIGHTS.values()), k=length)]


def _get(rng: random.Random) -> Call:
    user = _user(rng.randrange(USERS))
    if rng.random() < 0.2:
        return Call("get", (("profiles", user), "profile"), {})
    key = _memory(MEMORIES if rng.random() < 0.1 else rng.randrange(MEMORIES))  # 1 in 10 misses
    return Call("get", (("memories", user), key), {})


def _put(rng: random.Random) -> Call:
    namespace = ("memories", _user(rng.randrange(USERS)))
    return Call("put", (namespace, _memory(rng.randrange(MEMORIES)), _value(rng)), {})


def _search(rng: random.Random) -> Call:
    filter: dict[str, Any] = (
        {"kind": rng.choice(KINDS)}
        if rng.random() < 0.5
        else {"score": {"$gte": rng.choice((50, 80, 90))}}
    )
    if rng.random() < 0.8:  # one user's memories
        prefix: tuple[str, ...] = ("memories", _user(rng.randrange(USERS)))
        limit, offset = 3, rng.choice((0, 0, 3))
    else:  # everyone's
        prefix, limit, offset = ("memories",), 10, rng.choice((0, 10, 20))
    return Call("search", (prefix,), {"filter": filter, "limit": limit, "offset": offset})


def _list_namespaces(rng: random.Random) -> Call:
    options = {"prefix": ("memories",), "max_depth": 2, "limit": 10, "offset": rng.randrange(USERS)}
    return Call("list_namespaces", (), options)


def run(store: Any, calls: Iterable[Call]) -> list[Any]:
    """Every call's answer, through ``store``'s public methods."""
    return [call(store) for call in calls]


def plain(answer: Any) -> Any:
    """An answer without its timestamps, comparable with ``==``."""
    if isinstance(answer, list):
        return [plain(each) for each in answer]
    if hasattr(answer, "namespace") and hasattr(answer, "value"):  # an Item or SearchItem
        return (answer.namespace, answer.key, answer.value)
    return answer


def matches(value: dict[str, Any], filter: dict[str, Any]) -> bool:
    """Whether ``value`` meets one of the sequence's filters: ``{"kind": kind}`` or
    ``{"score": {"$gte": bound}}``."""
    for field, expected in filter.items():
        if isinstance(expected, dict):
            (bound,) = expected.values()  # the sequence's only operator: $gte
            actual = value.get(field)
            if not isinstance(actual, int) or actual < bound:
                return False
        elif value.get(field) != expected:
            return False
    return True


def same_work(calls: Sequence[Call], answers: Sequence[Any], others: Sequence[Any]) -> str | None:
    """Why two stores' answers to ``calls`` are not the same work (None: they are).

    Gets and namespace lists must be equal; a search page may hold other items (a
    store orders its results its own way) but as many, each in the prefix and
    matching the filter.
    """
    for index, (call, mine, theirs) in enumerate(zip(calls, answers, others, strict=True)):
        mine, theirs = plain(mine), plain(theirs)
        if call.name != "search":
            if mine != theirs:
                return f"call {index} ({call}): {mine!r} != {theirs!r}"
            continue
        prefix, filter = call.args[0], call.options["filter"]
        if len(mine) != len(theirs):
            return f"call {index} ({call}): {len(mine)} items != {len(theirs)}"
        for namespace, _, value in theirs:
            if namespace[: len(prefix)] != prefix or not matches(value, filter):
                return f"call {index} ({call}): {namespace}, {value!r} does not match"
    return None
