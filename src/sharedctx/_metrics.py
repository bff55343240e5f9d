"""Prometheus metrics of sharedctx's contexts (``prometheus_client``, the ``otel`` extra).

Imported only when a context that asks for metrics opens (see ``_telemetry``). On
each registry, one set (``backend`` is ``memory``, ``redis``, ``redis-cluster`` or a
backend's own ``kind``; no label ever holds a session id or a key, whose cardinality
is unbounded):

- ``sharedctx_operations_total{operation, backend, outcome}``: public calls, by the
  call's name (``get``, ``set``, ``wait_for``...) and outcome (``_outcomes``);
- ``sharedctx_operation_duration_seconds{operation, backend}``: their durations;
- ``sharedctx_entries{backend}`` and ``sharedctx_stored_bytes{backend}``: the live
  entries and their size in the sessions this process has open, read when scraped;
- ``sharedctx_entries_expired_total{backend}``,
  ``sharedctx_entries_evicted_total{backend}``: removals by expiry and eviction;
- ``sharedctx_expiry_lateness_seconds{backend}``: from an entry's deadline to its
  expire event;
- ``sharedctx_watch_overflows_total{backend}``: watches closed for falling behind.

Removals and lateness come from the change feed: a context with metrics follows its
session's changes, and each change is counted once per process however many of its
contexts hear of it (by revision). Lateness is measured when the event arrives: on
the memory store's own clock (so a fake clock gives exact figures), else on the wall
clock against the entry's ``expires``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from sharedctx._errors import SessionLostError
from sharedctx._types import ContextEvent

__all__ = ["DURATION_BUCKETS", "LATENESS_BUCKETS", "ContextMetrics", "Metrics", "metrics_for"]

_log = logging.getLogger("sharedctx.telemetry")

DURATION_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Seconds: from a memory ``get`` (microseconds) to a long ``wait_for``."""
LATENESS_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
"""Seconds after its deadline an entry's expire event came (``purge_interval`` is
0.5 s by default on Redis)."""


class _Followed:
    """A session some contexts of this process follow: where it is, the backends of
    those contexts (one each: the newest is asked for its size when scraped), and the
    last revision counted."""

    __slots__ = ("backends", "label", "place", "revision", "session_id")

    def __init__(self, place: object, label: str, session_id: str) -> None:
        self.place, self.label, self.session_id = place, label, session_id
        self.backends: list[object] = []
        self.revision = 0


def _place(backend: object) -> object:
    """Where a backend keeps its sessions: its server (``where``: a Redis backend's URL
    without its password, and its ``namespace``), else the backend object itself (the
    memory backend: two of them are two places)."""
    where = getattr(backend, "where", None)
    if isinstance(where, str):
        return (where, getattr(backend, "namespace", None))
    return id(backend)


class Metrics:
    """The metrics on one registry (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.operations = Counter(
            "sharedctx_operations",
            "Calls made to sharedctx contexts, by operation, backend and outcome.",
            ["operation", "backend", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "sharedctx_operation_duration_seconds",
            "Duration of the calls made to sharedctx contexts.",
            ["operation", "backend"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.expired = Counter(
            "sharedctx_entries_expired",
            "Entries removed because their TTL ran out, in the sessions followed here.",
            ["backend"],
            registry=registry,
        )
        self.evicted = Counter(
            "sharedctx_entries_evicted",
            "Entries removed to keep a session within max_entries, in the sessions followed here.",
            ["backend"],
            registry=registry,
        )
        self.lateness = Histogram(
            "sharedctx_expiry_lateness_seconds",
            "Seconds from an entry's deadline to its expire event.",
            ["backend"],
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.overflows = Counter(
            "sharedctx_watch_overflows",
            "Watches closed because they fell behind (WatchOverflowError).",
            ["backend"],
            registry=registry,
        )
        self._lock = threading.Lock()
        self._followed: dict[tuple[object, str], _Followed] = {}
        registry.register(_Sizes(self))

    def follow(self, backend: object, label: str, session_id: str) -> _Followed:
        """A context of ``session_id`` on ``backend`` opened (see :meth:`unfollow`)."""
        key = (_place(backend), session_id)
        with self._lock:
            followed = self._followed.get(key)
            if followed is None:
                followed = self._followed[key] = _Followed(key[0], label, session_id)
            followed.backends.append(backend)
            return followed

    def unfollow(self, followed: _Followed, backend: object) -> None:
        """A context on ``backend`` that :meth:`follow` returned ``followed`` for closed."""
        with self._lock:
            followed.backends.remove(backend)
            if not followed.backends:
                self._followed.pop((followed.place, followed.session_id), None)

    def first(self, followed: _Followed, revision: int) -> bool:
        """Whether no context of this process counted the change ``revision`` yet
        (each hears the session's changes in order); it is now."""
        with self._lock:
            if revision <= followed.revision:
                return False
            followed.revision = revision
            return True

    def restart(self, followed: _Followed) -> None:
        """The session's revisions started again (its data was lost or destroyed)."""
        with self._lock:
            followed.revision = 0

    def sessions(self) -> list[tuple[object, str, str]]:
        """Each followed session: a backend that has it open, its label, its id."""
        with self._lock:
            return [
                (followed.backends[-1], followed.label, followed.session_id)
                for followed in self._followed.values()
            ]


class _Sizes:
    """``sharedctx_entries`` and ``sharedctx_stored_bytes``, read when scraped from the
    backends of the sessions followed in this process (``session_summary``)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = weakref.ref(metrics)

    def describe(self) -> list[Metric]:
        return list(self._families({}))

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics()
        totals: dict[str, list[int]] = {}
        for backend, label, session_id in [] if metrics is None else metrics.sessions():
            summary_of = getattr(backend, "session_summary", None)
            if summary_of is None:
                continue
            try:
                summary = summary_of(session_id)
            except Exception as error:  # a scrape must not fail for one backend
                _log.debug("sharedctx: reading the size of a %s session failed: %s",
                           label, type(error).__name__)  # fmt: skip
                continue
            total = totals.setdefault(label, [0, 0])
            if summary is not None:
                total[0] += summary.entries
                total[1] += summary.bytes
        return self._families(totals)

    @staticmethod
    def _families(totals: dict[str, list[int]]) -> Iterator[Metric]:
        entries = GaugeMetricFamily(
            "sharedctx_entries",
            "Live entries of the sessions that this process has open.",
            labels=["backend"],
        )
        stored = GaugeMetricFamily(
            "sharedctx_stored_bytes",
            "Size of the entries (values and metadata) of the sessions that this process has open.",
            labels=["backend"],
        )
        for label, (count, size) in sorted(totals.items()):
            entries.add_metric([label], count)
            stored.add_metric([label], size)
        yield entries
        yield stored


class ContextMetrics:
    """The metrics of one context: its calls, and the changes of its session."""

    def __init__(
        self,
        metrics: Metrics,
        backend: object,
        label: str,
        session_id: str,
        clock: Callable[[], float] | None,
    ) -> None:
        self._metrics = metrics
        self._label = label
        self._clock = clock
        self._backend = backend
        self._followed = metrics.follow(backend, label, session_id)
        self._closed = False
        self._counted: dict[tuple[str, str], Any] = {}
        self._timed: dict[str, Any] = {}
        self._expired = metrics.expired.labels(label)
        self._evicted = metrics.evicted.labels(label)
        self._lateness = metrics.lateness.labels(label)
        self._overflows = metrics.overflows.labels(label)

    def record(self, name: str, outcome: str, seconds: float) -> None:
        """A call named ``name`` ended with ``outcome`` after ``seconds``."""
        counter = self._counted.get((name, outcome))
        if counter is None:
            counter = self._counted[(name, outcome)] = self._metrics.operations.labels(
                name, self._label, outcome
            )
        counter.inc()
        histogram = self._timed.get(name)
        if histogram is None:
            histogram = self._timed[name] = self._metrics.duration.labels(name, self._label)
        histogram.observe(seconds)

    def observe(self, event: ContextEvent) -> None:
        """The callback of the context's own subscription to its session's changes."""
        action = event.action
        if action != "expire" and action != "evict":
            return
        if not self._metrics.first(self._followed, event.revision):
            return  # another context of this process counted it
        if action == "evict":
            self._evicted.inc()
            return
        self._expired.inc()
        entry = event.entry
        if self._clock is not None and entry.deadline is not None:
            late = self._clock() - entry.deadline
        elif entry.expires is not None:
            late = time.time() - entry.expires
        else:
            return
        self._lateness.observe(max(0.0, late))

    def lost(self, error: Exception) -> None:
        """The subscription's ``on_error``: the session was lost (its revisions start
        again), or changes were lost on the way (not counted)."""
        if isinstance(error, SessionLostError):
            self._metrics.restart(self._followed)

    def overflowed(self) -> None:
        """A watch of the context fell behind and was closed."""
        self._overflows.inc()

    def close(self) -> None:
        """The context closed: its session is no longer followed for it."""
        if not self._closed:
            self._closed = True
            self._metrics.unfollow(self._followed, self._backend)


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()


def metrics_for(registry: CollectorRegistry | None) -> Metrics:
    """The metrics on ``registry`` (default: ``prometheus_client``'s), registered on it
    the first time."""
    registry = REGISTRY if registry is None else registry
    with _lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            metrics = _by_registry[registry] = Metrics(registry)
        return metrics
