"""The in-memory workloads: their data, the systems they run on, and how each is timed.

Systems: a locked dict, ``cachetools.TTLCache`` behind a lock, the reference port
and ``sharedctx``. Every entry has a small 5-field dict value (shared by all entries
for the baselines, which store it by reference; sharedctx stores its own copy), one
tag, and a TTL of one hour where the system has TTLs (the dict has none).

Data of size ``n`` (:func:`make_dataset`): ``MATCHES`` keys match ``PATTERN``,
``MATCHES`` other keys carry ``TAG``, and the rest are filler keys, some of which
contain ``mind:`` elsewhere, with one of 100 other tags each.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import cycle, islice
from typing import Any

from baselines import LockedDict, LockedTTLCache, Store
from harness import Case, Log, Settings, compare, measure
from reference_design import ReferenceSharedContext

from sharedctx import ContextEvent, MemoryBackend, SharedContext

__all__ = [
    "MATCHES",
    "PATTERN",
    "SIZED_WORKLOADS",
    "SUBSCRIPTIONS",
    "SYSTEMS",
    "TAG",
    "THREAD_COUNTS",
    "TTL",
    "VALUE",
    "ExpiryResults",
    "get_case",
    "run_expiry",
    "run_memory",
    "run_purge",
    "run_sized",
    "run_subscriptions",
    "run_threads",
    "set_case",
    "threaded_case",
]

VALUE: dict[str, Any] = {
    "name": "mind:tim",
    "score": 0.93,
    "count": 7,
    "done": True,
    "note": "a short note",
}
"""The small value every workload stores."""
TTL = 3600.0
PATTERN = "analysis:mind:*"
TAG = "urgent"
MATCHES = 10
"""How many entries ``PATTERN`` and ``TAG`` each select, whatever the size."""
SUBSCRIPTIONS = 1000
PURGED = 1000
"""Entries that expire per purge sample."""
THREAD_ENTRIES = 10_000
THREAD_COUNTS = (1, 4)
SIZED_WORKLOADS = ("find_by_pattern", "find_by_tag", "get", "set", "set_hot")
"""In the order they run: the queries first, as ``set`` changes the data. ``set``
writes keys spread over the whole store in random order, ``set_hot`` one key again
and again."""

_FILLER_PREFIXES = ("analysis:body", "analysis:mood", "result:mind", "input:mind")
_OTHER_TAGS = tuple(f"batch-{i}" for i in range(100))

Factory = Callable[[int], Store]
"""Makes an empty system for up to ``capacity`` entries."""

FACTORIES: dict[str, Factory] = {
    "dict+lock": lambda capacity: LockedDict(),
    "cachetools+lock": lambda capacity: LockedTTLCache(capacity, TTL),
    "reference": lambda capacity: ReferenceSharedContext("bench", default_ttl=TTL),
    # A memory backend of its own: "memory" is one process-wide place, where one
    # workload's "bench" session would still hold the last one's entries.
    "sharedctx": lambda capacity: SharedContext("bench", default_ttl=TTL, backend=MemoryBackend()),
}
SYSTEMS = tuple(FACTORIES)


# -- cases -----------------------------------------------------------------------------


def get_case(get: Callable[[str], object], keys: Sequence[str]) -> Case:
    """``get(key)`` for keys cycling through ``keys``; each sample goes on where the
    last one stopped, so a large ``keys`` is not read from warm caches."""
    endless = cycle(keys)

    def run(repeat: int) -> int:
        for key in islice(endless, repeat):
            get(key)
        return repeat

    return run


def set_case(put: Callable[[str, Any], object], keys: Sequence[str], value: Any) -> Case:
    """``put(key, value)`` for keys cycling through ``keys`` (as :func:`get_case`)."""
    endless = cycle(keys)

    def run(repeat: int) -> int:
        for key in islice(endless, repeat):
            put(key, value)
        return repeat

    return run


def _query_case(find: Callable[[str], object], argument: str) -> Case:
    def run(repeat: int) -> int:
        for _ in range(repeat):
            find(argument)
        return repeat

    return run


def threaded_case(
    clients: Sequence[tuple[Callable[[str], object], Callable[[str, Any], object]]],
    keys: Sequence[str],
    value: Any,
) -> Case:
    """One thread per ``(get, put)`` client, each alternating a get and a put of one
    key, over its own random order of ``keys``; the threads start together.

    A sample includes starting and joining the threads (well under a millisecond).
    """
    orders = [random.Random(seed).sample(list(keys), len(keys)) for seed in range(len(clients))]

    errors: list[BaseException] = []

    def work(
        get: Callable[[str], object],
        put: Callable[[str, Any], object],
        order: list[str],
        pairs: int,
        start: threading.Barrier,
    ) -> None:
        start.wait()
        try:
            for key in islice(cycle(order), pairs):
                get(key)
                put(key, value)
        except BaseException as error:  # re-raised by run(): a failed sample is no sample
            errors.append(error)

    def run(repeat: int) -> int:
        pairs = max(1, repeat // (2 * len(clients)))
        start = threading.Barrier(len(clients))
        threads = [
            threading.Thread(target=work, args=(get, put, order, pairs, start))
            for (get, put), order in zip(clients, orders, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return 2 * pairs * len(clients)

    return run


# -- data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """The entries of one size, and the keys the get and set workloads use."""

    items: list[tuple[str, list[str]]]
    """``(key, tags)`` in insertion order."""
    probes: list[str] = field(repr=False)
    """The filler keys (neither matched nor tagged by the queries) in random order:
    reads and writes spread over the whole store, as they would in use."""


def _filler_key(index: int) -> str:
    return f"{_FILLER_PREFIXES[index % len(_FILLER_PREFIXES)]}:{index:07d}"


def make_dataset(size: int) -> Dataset:
    """``size`` entries, ``MATCHES`` of them matching ``PATTERN`` and ``MATCHES``
    others tagged ``TAG``, both spread evenly through the insertion order."""
    fillers = size - MATCHES
    step = fillers // MATCHES
    items: list[tuple[str, list[str]]] = []
    plain: list[str] = []
    for index in range(fillers):
        key = _filler_key(index)
        other_tag = _OTHER_TAGS[index % len(_OTHER_TAGS)]
        is_tagged = index % step == 0 and index < step * MATCHES
        items.append((key, [TAG if is_tagged else other_tag]))
        if not is_tagged:
            plain.append(key)
        if index % step == step // 2 and index < step * MATCHES:
            items.append((f"analysis:mind:{index:07d}", [other_tag]))
    probes = random.Random(size).sample(plain, len(plain))
    return Dataset(items, probes)


def _fill(store: Store, items: Iterable[tuple[str, list[str]]]) -> None:
    put = store.set
    for key, tags in items:
        put(key, VALUE, tags=tags)


def _check(name: str, store: Store, probes: Sequence[str]) -> None:
    """Make sure every system answers the same; the timings compare nothing otherwise."""
    found = (len(store.find_by_pattern(PATTERN)), len(store.find_by_tag(TAG)))
    if found != (MATCHES, MATCHES) or store.get(probes[0]) != VALUE:
        raise RuntimeError(
            f"{name}: the queries found {found} entries, not {MATCHES} each, "
            f"or get({probes[0]!r}) did not return the value"
        )


def _close(stores: Iterable[object]) -> None:
    for store in stores:
        if isinstance(store, SharedContext):
            store.close()


# -- workloads -------------------------------------------------------------------------


def run_sized(
    sizes: Sequence[int], selected: Collection[str], settings: Settings, log: Log
) -> dict[str, dict[str, dict[int, float]]]:
    """µs/op of each selected sized workload, per system and size.

    Each system is built once per size (``set`` in a loop) and used by all the
    selected workloads at that size.
    """
    workloads = [name for name in SIZED_WORKLOADS if name in selected]
    results: dict[str, dict[str, dict[int, float]]] = {
        workload: {system: {} for system in SYSTEMS} for workload in workloads
    }
    for size in sizes:
        data = make_dataset(size)
        systems = {name: factory(size) for name, factory in FACTORIES.items()}
        try:
            for name, store in systems.items():
                started = time.perf_counter()
                _fill(store, data.items)
                elapsed = time.perf_counter() - started
                log(f"N={size:,}: built {name} in {elapsed:.1f} s")
                _check(name, store, data.probes)
            gc.collect()
            for workload in workloads:
                cases = {
                    name: _sized_case(workload, store, data) for name, store in systems.items()
                }
                for name, median in compare(cases, settings).items():
                    results[workload][name][size] = median
                log(f"N={size:,}: {workload} done")
        finally:
            _close(systems.values())
        del systems, data
        gc.collect()
    return results


def _sized_case(workload: str, store: Store, data: Dataset) -> Case:
    if workload == "get":
        return get_case(store.get, data.probes)
    if workload == "set":
        return set_case(store.set, data.probes, VALUE)
    if workload == "set_hot":
        return set_case(store.set, data.probes[:1], VALUE)
    if workload == "find_by_pattern":
        return _query_case(store.find_by_pattern, PATTERN)
    return _query_case(store.find_by_tag, TAG)


def _ignore(*_: object) -> None:
    """A subscriber that does nothing (it is never called: no pattern matches)."""


def run_subscriptions(settings: Settings, log: Log) -> dict[str, dict[str, float]]:
    """µs per ``set`` of an existing key (1000 keys) by system and subscriptions.

    The subscriptions match no key: ``watch:<i>:*`` have a literal prefix,
    ``*:watch<i>`` have none. The reference is built with notifications on.
    """
    variants = {
        "none": [],
        f"{SUBSCRIPTIONS} prefixed": [f"watch:{i}:*" for i in range(SUBSCRIPTIONS)],
        f"{SUBSCRIPTIONS} unprefixed": [f"*:watch{i}" for i in range(SUBSCRIPTIONS)],
    }
    keys = [f"analysis:mind:{i:04d}" for i in range(1000)]
    cases: dict[tuple[str, str], Case] = {}
    contexts: list[SharedContext] = []
    for variant, patterns in variants.items():
        reference = ReferenceSharedContext("bench", default_ttl=TTL, enable_notifications=True)
        context = SharedContext("bench", default_ttl=TTL, backend=MemoryBackend())
        contexts.append(context)
        for store in (reference, context):
            _fill(store, ((key, []) for key in keys))
        for pattern in patterns:
            reference.subscribe(pattern, _ignore)
            context.subscribe(pattern, _ignore)
        cases["reference", variant] = set_case(reference.set, keys, VALUE)
        cases["sharedctx", variant] = set_case(context.set, keys, VALUE)
    try:
        medians = compare({f"{s} | {v}": case for (s, v), case in cases.items()}, settings)
    finally:
        _close(contexts)
    log("subscriptions done")
    results: dict[str, dict[str, float]] = {"reference": {}, "sharedctx": {}}
    for system, variant in cases:
        results[system][variant] = medians[f"{system} | {variant}"]
    return results


def run_memory(size: int, log: Log) -> dict[str, float]:
    """Bytes per entry of each system holding ``size`` entries (tracemalloc).

    Keys, tags and the structures holding them count; the value counts only where
    the system keeps its own copy (sharedctx). Systems are measured one at a time.
    """
    results = {name: _bytes_per_entry(factory, size) for name, factory in FACTORIES.items()}
    log("memory done")
    return results


def _bytes_per_entry(factory: Factory, size: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = factory(size)
        for index in range(size):
            store.set(_filler_key(index), VALUE, tags=[_OTHER_TAGS[index % len(_OTHER_TAGS)]])
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
        _close([store])
    finally:
        tracemalloc.stop()
    return used / size


@dataclass(frozen=True)
class ExpiryResults:
    """When ``expire`` events arrived, relative to their keys' deadlines."""

    keys: int
    received: int
    lateness_ms: dict[str, float]
    """``min``, ``p50``, ``p99`` and ``max`` of arrival minus deadline (empty if none)."""


def run_expiry(keys: int, log: Log) -> ExpiryResults:
    """Lateness of ``expire`` events for ``keys`` keys whose deadlines fall evenly in
    one second, on the default clock, received by ``subscribe("*", ...)``.

    A first pass writes the keys without TTL and measures how long writing takes, so
    that the second pass (the TTLs) ends before the first deadline.
    """
    names = [f"expiring:{i:07d}" for i in range(keys)]
    arrivals: dict[str, float] = {}
    deadlines: dict[str, float] = {}
    everything = threading.Event()

    def on_event(event: ContextEvent) -> None:
        if event.action == "expire":
            arrivals[event.key] = time.monotonic()
            if len(arrivals) == keys:
                everything.set()

    with SharedContext("bench-expiry", backend=MemoryBackend()) as context:
        started = time.monotonic()
        for name in names:
            context.set(name, VALUE)
        first = time.monotonic() + 3 * (time.monotonic() - started) + 0.2
        context.subscribe("*", on_event)
        for index, name in enumerate(names):
            now = time.monotonic()
            ttl = max(first + index / keys - now, 0.001)
            context.set(name, VALUE, ttl=ttl)
            deadlines[name] = now + ttl
        everything.wait(timeout=first + 1 + 10 - time.monotonic())
    late = sorted((arrival - deadlines[name]) * 1000 for name, arrival in arrivals.items())
    log("expiry done")
    if not late:
        return ExpiryResults(keys, 0, {})
    p99 = late[math.ceil(0.99 * len(late)) - 1]  # nearest rank
    return ExpiryResults(
        keys,
        len(late),
        {"min": late[0], "p50": statistics.median(late), "p99": p99, "max": late[-1]},
    )


class ManualClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_purge(sizes: Sequence[int], settings: Settings, log: Log) -> dict[int, float]:
    """µs per expired entry of ``purge_expired()`` removing ``PURGED`` entries from
    contexts of each size (on a manual clock; the other entries live on)."""
    results: dict[int, float] = {}
    expiring = {f"expiring:{i:04d}": VALUE for i in range(PURGED)}
    for size in sizes:
        clock = ManualClock()
        with SharedContext("bench-purge", clock=clock) as context:
            for start in range(0, size, 1000):
                batch = {_filler_key(i): VALUE for i in range(start, min(size, start + 1000))}
                context.set_multiple(batch, ttl=1e6 + start)  # distinct, far deadlines
            samples = []
            for _ in range(settings.rounds):
                context.set_multiple(expiring, ttl=1.0)
                clock.now += 2.0
                elapsed, purged = measure(context.purge_expired)
                if purged != PURGED:
                    raise RuntimeError(f"purge_expired() removed {purged}, not {PURGED}")
                samples.append(elapsed / purged / 1000)
        results[size] = statistics.median(samples)
        log(f"N={size:,}: purge done")
    return results


def run_threads(settings: Settings, log: Log) -> dict[str, dict[int, float]]:
    """Operations per second of 1 and 4 threads sharing one system: each thread
    alternates ``get`` and ``set`` of existing keys (``THREAD_ENTRIES`` entries)."""
    systems = {name: factory(THREAD_ENTRIES) for name, factory in FACTORIES.items()}
    keys = [_filler_key(i) for i in range(THREAD_ENTRIES)]
    try:
        for store in systems.values():
            _fill(store, ((key, []) for key in keys))
        cases = {
            f"{name} | {threads}": threaded_case([(store.get, store.set)] * threads, keys, VALUE)
            for name, store in systems.items()
            for threads in THREAD_COUNTS
        }
        medians = compare(cases, settings)
    finally:
        _close(systems.values())
    log("threads done")
    return {
        name: {threads: 1e6 / medians[f"{name} | {threads}"] for threads in THREAD_COUNTS}
        for name in systems
    }
