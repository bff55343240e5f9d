"""sharedctx's LangGraph store against the stores LangGraph users pick instead.

The work is ``peer_sequence``'s: a long-term memory of ``USERS`` users and a random
sequence of ``get``, ``put``, ``search`` (with a filter and a page) and
``list_namespaces``, through each store's public methods.

- **In process**: ``SharedContextStore`` (memory backend) against LangGraph's
  ``InMemoryStore``. Both are loaded with the same data; then the same sequence runs
  through both, every call timed on its own, in blocks of ``CallSettings.calls``
  calls, one store then the other in a rotating order (each store at its own place
  in the same sequence, so that both run the same calls on the same data), with the
  garbage collector paused during a block. Before that, fresh copies of both give
  the same answer to each of the first ``CHECK_CALLS`` calls, or the run stops.
- **Shared**: ``SharedContextStore`` on a ``redis-server`` against LangGraph's
  ``PostgresStore`` on PostgreSQL, both servers started by the run on loopback
  (``servers.py``; neither waits for the disk). The data are written once into each
  and a check sequence runs through both (``same_work``: PostgresStore orders a
  search by ``updated_at``, so its pages may hold other items, as many and each
  matching). Then 1 and 4 client processes (``processes.py``, role ``peers``), each
  with both stores open on connections of its own and a sequence of its own, run
  one store at a time from a moment given in advance for ``seconds``, every call
  timed; the cases (store, processes) are interleaved in rotating rounds.

Reported: per kind of call and for all calls, p50, p99 and mean µs (the mean over
all calls is the sequence's cost per op); with processes, operations per second
(median of the rounds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from harness import CallSettings, Latency, Log, measure, summarize
from peer_sequence import WEIGHTS, Call, items, plain, run, same_work, sequence
from processes import Message, Worker, workers
from redis_workloads import ThroughputSettings, server_version
from servers import missing_postgres, missing_server, postgres_server, redis_server

__all__ = [
    "CHECK_CALLS",
    "IN_PROCESS",
    "PROCESS_COUNTS",
    "SHARED",
    "PeerResults",
    "PeerSettings",
    "run_peers",
    "run_worker",
]

IN_PROCESS = ("InMemoryStore", "SharedContextStore")
SHARED = ("SharedContextStore", "PostgresStore")
"""The stores compared, the baseline first (``SharedContextStore`` on Redis, shared)."""
PROCESS_COUNTS = (1, 4)
CHECK_CALLS = 2000
"""Calls whose answers are compared before anything is timed."""
SHARED_CALLS = 20_000
"""Each client process's sequence (it starts again at its end)."""
SESSION = "bench-peers"
ALL = "all"
"""The row of every call, whatever its kind."""
Case = tuple[str, int]
"""A shared store and a number of client processes."""


@dataclass(frozen=True)
class PeerSettings:
    calls: CallSettings
    """In process: blocks of calls per store."""
    throughput: ThroughputSettings
    """Shared: samples per (store, processes) case."""


@dataclass
class PeerResults:
    """What the peer comparison measured."""

    in_process: dict[str, dict[str, Latency]] = field(default_factory=dict)
    """Store (``IN_PROCESS``) -> kind of call (``get``... or ``all``) -> µs per call."""
    shared_ops_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    """Store (``SHARED``) -> client processes -> operations per second."""
    shared: dict[str, dict[int, dict[str, Latency]]] = field(default_factory=dict)
    """Store -> client processes -> kind of call -> µs per call."""
    servers: str = ""
    """The servers' versions."""
    skipped: str = ""
    """Why the shared part was not measured (empty: it was)."""


def run_peers(settings: PeerSettings, log: Log) -> PeerResults:
    """Measure both parts (see the module docstring); the shared one only where its
    servers can be started."""
    results = PeerResults()
    results.in_process = _in_process(settings.calls, log)
    missing = missing_server() or missing_postgres()
    if missing is not None:
        results.skipped = missing
        log(f"peers: shared stores skipped: {missing}")
        return results
    _shared(settings.throughput, results, log)
    return results


# -- in process ------------------------------------------------------------------------


def _in_process_stores(session: str) -> dict[str, Any]:
    """Both stores, holding the data (SharedContextStore in ``session``)."""
    from langgraph.store.memory import InMemoryStore

    from sharedctx.integrations.langgraph import SharedContextStore

    stores = {"InMemoryStore": InMemoryStore(), "SharedContextStore": SharedContextStore(session)}
    for store in stores.values():
        run(store, items())
    return stores


def _in_process(settings: CallSettings, log: Log) -> dict[str, dict[str, Latency]]:
    calls = sequence(settings.warmup + settings.rounds * settings.calls)
    checked, first = _in_process_stores(f"{SESSION}-check"), calls[:CHECK_CALLS]
    answers = {name: plain(run(store, first)) for name, store in checked.items()}
    checked["SharedContextStore"].context.clear()
    checked["SharedContextStore"].close()
    reference, mine = (answers[name] for name in IN_PROCESS)
    if reference != mine:
        index = next(i for i, (a, b) in enumerate(zip(reference, mine, strict=True)) if a != b)
        raise RuntimeError(f"peers: the stores answer call {index} ({calls[index]}) differently")
    log(f"peers: in process, both stores gave the same {len(first)} answers")
    del checked, answers

    stores = _in_process_stores(SESSION)
    durations: dict[str, dict[str, list[int]]] = {
        name: {kind: [] for kind in WEIGHTS} for name in stores
    }
    positions = dict.fromkeys(stores, 0)

    def block(name: str, count: int, timed: bool = True) -> None:
        store, position, found = stores[name], positions[name], durations[name]
        clock = time.perf_counter_ns
        for call in calls[position : position + count]:
            start = clock()
            call(store)
            elapsed = clock() - start
            if timed:
                found[call.name].append(elapsed)
        positions[name] = position + count

    for name in stores:
        measure(partial(block, name, settings.warmup, False))
    names = list(stores)
    for round_ in range(settings.rounds):
        turn = round_ % len(names)
        for name in names[turn:] + names[:turn]:
            measure(partial(block, name, settings.calls))
    stores["SharedContextStore"].context.clear()
    stores["SharedContextStore"].close()
    measured = {name: _summaries(kinds) for name, kinds in durations.items()}
    shown = ", ".join(f"{name} {measured[name][ALL].mean:.1f}" for name in IN_PROCESS)
    log(f"peers: in process, mean µs per call: {shown}")
    return measured


def _summaries(durations: dict[str, list[int]]) -> dict[str, Latency]:
    every = [duration for kind in durations.values() for duration in kind]
    return {
        ALL: summarize(every),
        **{kind: summarize(found) for kind, found in durations.items() if found},
    }


# -- shared: the parent ----------------------------------------------------------------


def _shared(settings: ThroughputSettings, results: PeerResults, log: Log) -> None:
    with redis_server() as redis_url, postgres_server() as postgres_url:
        results.servers = f"Redis {server_version(redis_url)}, {_postgres_version(postgres_url)}"
        systems = {
            "SharedContextStore": {"kind": "sharedctx", "url": redis_url},
            "PostgresStore": {"kind": "postgres", "url": postgres_url},
        }
        _load_and_check(systems)
        log(f"peers: shared, both stores did the same work for {CHECK_CALLS} calls")
        configs = [
            {"seed": 100 + index, "calls": SHARED_CALLS, "systems": systems}
            for index in range(max(PROCESS_COUNTS))
        ]
        with workers("peers", configs) as clients:
            rates, durations = _rounds(clients, settings)
    for (system, count), found in rates.items():
        results.shared_ops_per_s.setdefault(system, {})[count] = sorted(found)[len(found) // 2]
        results.shared.setdefault(system, {})[count] = _summaries(durations[system, count])
    for count in PROCESS_COUNTS:
        shown = ", ".join(f"{s} {results.shared_ops_per_s[s][count]:,.0f}" for s in SHARED)
        log(f"peers: shared, ops/s with {count} client processes: {shown}")


def _load_and_check(systems: dict[str, Message]) -> None:
    """Write the data into both shared stores (PostgresStore's tables first), then run
    a check sequence through both: they must do the same work."""
    with ExitStack() as stack:
        stores = {name: stack.enter_context(_open(system)) for name, system in systems.items()}
        stores["PostgresStore"].setup()  # its tables (PostgresStore's migrations)
        for store in stores.values():
            run(store, items())
        calls = sequence(CHECK_CALLS, seed=0)
        answers = {name: run(store, calls) for name, store in stores.items()}
    problem = same_work(calls, *(answers[name] for name in SHARED))
    if problem is not None:
        raise RuntimeError(f"peers: the shared stores do different work: {problem}")


def _rounds(
    clients: list[Worker], settings: ThroughputSettings
) -> tuple[dict[Case, list[float]], dict[Case, dict[str, list[int]]]]:
    """Each case's operations per second in every round, and every call's duration."""
    cases = [(system, count) for count in PROCESS_COUNTS for system in SHARED]
    rates: dict[Case, list[float]] = {case: [] for case in cases}
    durations = {case: {kind: list[int]() for kind in WEIGHTS} for case in cases}
    for round_ in range(settings.rounds):
        turn = round_ % len(cases)
        for system, count in cases[turn:] + cases[:turn]:
            start_at = time.monotonic_ns() + 100_000_000  # 0.1 s for the commands to arrive
            command = {"run": system, "start_at": start_at, "seconds": settings.seconds}
            for client in clients[:count]:
                client.send(command)
            answers = [client.receive(settings.seconds + 60) for client in clients[:count]]
            rates[system, count].append(sum(a["ops"] for a in answers) / settings.seconds)
            for answer in answers:
                for kind, found in answer["durations"].items():
                    durations[system, count][kind] += found
    return rates, durations


def _postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


@contextmanager
def _open(system: Message) -> Iterator[Any]:
    """A shared store: ``SharedContextStore`` on Redis, or ``PostgresStore``."""
    if system["kind"] == "sharedctx":
        from sharedctx.integrations.langgraph import SharedContextStore

        with SharedContextStore(SESSION, backend=system["url"]) as store:
            yield store
    else:
        from langgraph.store.postgres import PostgresStore

        with PostgresStore.from_conn_string(system["url"]) as store:
            yield store


# -- shared: a client process ----------------------------------------------------------


def run_worker(
    config: Message, answer: Callable[[Message], None], commands: Iterable[Message]
) -> None:
    """The ``peers`` role of ``processes.py``: both stores open, answering each
    ``{"run": store, "start_at": ns, "seconds": s}`` with ``{"ops": n, "durations":
    {kind: [ns, ...]}}``, the calls of its own sequence (continued where the last run
    of that store stopped) made from ``start_at`` (``time.monotonic_ns``) for ``s``."""
    calls = sequence(config["calls"], seed=config["seed"])
    with ExitStack() as stack:
        systems: dict[str, Message] = config["systems"]
        stores = {name: stack.enter_context(_open(system)) for name, system in systems.items()}
        positions = dict.fromkeys(stores, 0)
        answer({"ready": True})
        for command in commands:
            name = command["run"]
            start_at: int = command["start_at"]
            end_at = start_at + int(command["seconds"] * 1e9)
            while time.monotonic_ns() < start_at:
                time.sleep(0.0005)
            found, positions[name] = _timed(stores[name], calls, positions[name], end_at)
            answer({"ops": sum(map(len, found.values())), "durations": found})


def _timed(
    store: Any, calls: list[Call], position: int, end_at: int
) -> tuple[dict[str, list[int]], int]:
    """Every call's duration by kind, from ``calls[position]`` on (round and round)
    until ``end_at``; and where the next call is."""
    durations: dict[str, list[int]] = {kind: [] for kind in WEIGHTS}
    clock: Callable[[], int] = time.monotonic_ns
    now = clock()
    while now < end_at:
        call = calls[position]
        call(store)
        after = clock()
        durations[call.name].append(after - now)
        now, position = after, (position + 1) % len(calls)
    return durations, position
