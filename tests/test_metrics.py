"""Prometheus metrics: the calls by operation, backend and outcome, their durations,
the sessions' size, removals, watch overflows and the expiry lateness; exposed in a
text that Prometheus's own parser reads, named by its conventions, and never labelled
with a session id or a key."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from sharedctx import (
    ContextEvent,
    MemoryBackend,
    RedisBackend,
    SharedContext,
    Telemetry,
    VersionConflictError,
    WatchOverflowError,
)
from sharedctx.backends import Backend
from sharedctx.telemetry import exposition
from sharedctx.testing import ContextFactory, FakeClock

from .conftest import RedisServer

LABELS = {"operation", "backend", "outcome"}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def kind_of(backend: str | Backend) -> str:
    if not isinstance(backend, str):
        return "RecordingBackend"
    if backend == "memory":
        return "memory"
    return "redis-cluster" if backend.startswith("redis+cluster") else "redis"


# -- the exposition -------------------------------------------------------------------------


def test_the_exposition_parses_and_its_names_follow_prometheus_conventions(
    make_context: ContextFactory, backend: str | Backend
) -> None:
    registry = CollectorRegistry()
    context = make_context(telemetry=Telemetry(metrics=registry))
    context.set("k", 1, ttl=60)
    context.get("k")
    context.wait_for("k")
    with context.watch(max_pending=1) as watch:
        context.set("a", 1)
        context.set("b", 2)
        assert watch.get(timeout=5).key == "a"
        with pytest.raises(WatchOverflowError):
            watch.get(timeout=5)
    body, content_type = exposition(registry)
    assert content_type.startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    assert set(families) == {
        "sharedctx_operations",
        "sharedctx_operations_created",
        "sharedctx_operation_duration_seconds",
        "sharedctx_operation_duration_seconds_created",
        "sharedctx_entries",
        "sharedctx_stored_bytes",
        "sharedctx_entries_expired",
        "sharedctx_entries_expired_created",
        "sharedctx_entries_evicted",
        "sharedctx_entries_evicted_created",
        "sharedctx_expiry_lateness_seconds",
        "sharedctx_expiry_lateness_seconds_created",
        "sharedctx_watch_overflows",
        "sharedctx_watch_overflows_created",
    }
    for name, family in families.items():
        assert re.fullmatch(r"sharedctx_[a-z_]+", name)
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= LABELS
            assert context.session_id not in repr(sample.labels)
            if family.type == "counter":
                assert sample.name.endswith("_total")
            if family.type == "histogram":
                assert name.endswith("_seconds")
    assert families["sharedctx_stored_bytes"].type == "gauge"
    kind = kind_of(backend)
    assert value(registry, "sharedctx_operations_total", operation="get", backend=kind,
                 outcome="hit") == 1  # fmt: skip
    assert value(registry, "sharedctx_watch_overflows_total", backend=kind) == 1
    # OpenMetrics for a scraper that asks for it, read by its own parser.
    body, content_type = exposition(registry, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert "sharedctx_operations" in {family.name for family in openmetrics_families(body.decode())}


def test_calls_are_counted_by_operation_and_outcome_and_timed(
    make_context: ContextFactory, backend: str | Backend
) -> None:
    registry = CollectorRegistry()
    context = make_context(telemetry=Telemetry(metrics=registry))
    kind = kind_of(backend)
    context.set("k", 1)
    context.get("k")
    context.get("absent")
    context.get("absent")
    with pytest.raises(VersionConflictError):
        context.set("k", 2, if_version=5)
    context.update("k", lambda v: v + 1)

    def counted(operation: str, outcome: str) -> float:
        labels = {"operation": operation, "backend": kind, "outcome": outcome}
        return value(registry, "sharedctx_operations_total", **labels)

    assert counted("set", "ok") == 1
    assert counted("get", "hit") == 1
    assert counted("get", "miss") == 2
    assert counted("set", "conflict") == 1
    assert counted("update", "ok") == 1
    timed = value(registry, "sharedctx_operation_duration_seconds_count", operation="get",
                  backend=kind)  # fmt: skip
    assert timed == 3
    assert context.stats().subscriptions == 0  # the metrics' own subscription is not the user's


def test_the_default_registry_when_none_is_given() -> None:
    with SharedContext("s", telemetry=Telemetry(metrics=True)) as context:
        before = value(REGISTRY, "sharedctx_operations_total", operation="count",
                       backend="memory", outcome="ok")  # fmt: skip
        context.count()
    after = value(REGISTRY, "sharedctx_operations_total", operation="count",
                  backend="memory", outcome="ok")  # fmt: skip
    assert after == before + 1


# -- the sessions' size -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_entries_and_bytes_are_those_of_the_sessions_open_here_when_scraped(
    backend: str, request: pytest.FixtureRequest
) -> None:
    registry = CollectorRegistry()
    url = backend if backend == "memory" else request.getfixturevalue("redis_server").url
    telemetry = Telemetry(metrics=registry)
    sessions = [f"sizes-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with (
        SharedContext(sessions[0], backend=url, telemetry=telemetry) as one,
        SharedContext(sessions[1], backend=url, telemetry=telemetry) as two,
        SharedContext(sessions[1], backend=url, telemetry=telemetry) as again,
    ):
        one.set_multiple({"a": 1, "b": "two"})
        two.set("c", [3] * 100)
        again.get("c")
        admin = one.backend
        summaries = [admin.session_summary(session) for session in sessions]  # type: ignore[attr-defined]
        assert value(registry, "sharedctx_entries", backend=backend) == 3  # each session once
        assert value(registry, "sharedctx_stored_bytes", backend=backend) == sum(
            summary.bytes for summary in summaries
        )
        one.destroy()
        two.destroy()
    assert value(registry, "sharedctx_entries", backend=backend) == 0


# -- removals and the expiry lateness ---------------------------------------------------------


def lateness_buckets(registry: CollectorRegistry, kind: str) -> dict[float, float]:
    found = {}
    for family in registry.collect():
        if family.name == "sharedctx_expiry_lateness_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket") and sample.labels["backend"] == kind:
                    found[float(sample.labels["le"])] = sample.value
    return found


def test_the_lateness_histogram_matches_the_expire_events_on_a_fake_clock() -> None:
    clock = FakeClock()
    registry = CollectorRegistry()
    backend = MemoryBackend(clock=clock)
    with SharedContext("s", backend=backend, telemetry=Telemetry(metrics=registry)) as context:
        watch = context.watch()
        for n, ttl in enumerate([1, 2, 3, 5, 8, 60]):
            context.set(f"k{n}", n, ttl=ttl)
        clock.advance(1.5)
        context.purge_expired()  # k0: 0.5 s late
        clock.advance(2.0)
        context.count()  # any call drops what is due: k1 1.5 s, k2 0.5 s late
        clock.advance(10.0)
        context.get("k3")  # k3 8.5 s, k4 5.5 s late
        events: list[ContextEvent] = []
        while len(events) < 11:
            events.append(watch.get(timeout=5))
        deadlines = {event.key: event.entry.deadline for event in events if event.action == "set"}
        lateness = {
            event.key: moment - deadlines[event.key]
            for event, moment in zip(
                [event for event in events if event.action == "expire"],
                [1001.5, 1003.5, 1003.5, 1013.5, 1013.5],
                strict=True,
            )
        }
    assert sorted(lateness.values()) == [0.5, 0.5, 1.5, 5.5, 8.5]
    assert value(registry, "sharedctx_entries_expired_total", backend="memory") == 5
    assert value(registry, "sharedctx_expiry_lateness_seconds_count", backend="memory") == 5
    assert value(registry, "sharedctx_expiry_lateness_seconds_sum", backend="memory") == 16.5
    for bound, count in lateness_buckets(registry, "memory").items():
        assert count == sum(late <= bound for late in lateness.values())


@pytest.mark.redis
def test_the_lateness_histogram_matches_the_expire_events_on_a_real_server(
    redis_server: RedisServer,
) -> None:
    registry = CollectorRegistry()
    backend = RedisBackend(redis_server.url, purge_interval=0.1)
    name = f"lateness-{uuid.uuid4().hex[:8]}"
    try:
        with SharedContext(name, backend=backend, telemetry=Telemetry(metrics=registry)) as ctx:
            watch = ctx.watch()
            ttls = [0.1, 0.2, 0.3, 0.5, 0.8]
            for n, ttl in enumerate(ttls):
                ctx.set(f"k{n}", n, ttl=ttl)
            expired = []
            while len(expired) < len(ttls):
                event = watch.get(timeout=10)
                if event.action == "expire":
                    expired.append((event, time.time()))
            ctx.destroy()
    finally:
        backend.close()
    assert value(registry, "sharedctx_entries_expired_total", backend="redis") == len(ttls)
    assert value(registry, "sharedctx_expiry_lateness_seconds_count", backend="redis") == len(ttls)
    buckets = lateness_buckets(registry, "redis")
    # Each came within the sweep interval (and the delivery), as the watch saw them.
    assert buckets[1.0] == len(ttls)
    seen = [max(0.0, moment - event.entry.expires) for event, moment in expired]  # type: ignore[operator]
    assert value(registry, "sharedctx_expiry_lateness_seconds_sum", backend="redis") <= sum(seen)


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_each_removal_is_counted_once_per_process_however_many_contexts_hear_it(
    backend: str, request: pytest.FixtureRequest
) -> None:
    registry = CollectorRegistry()
    url = backend if backend == "memory" else request.getfixturevalue("redis_server").url
    telemetry = Telemetry(metrics=registry)
    name = f"once-{uuid.uuid4().hex[:8]}"
    with (
        SharedContext(name, backend=url, telemetry=telemetry, max_entries=2) as one,
        SharedContext(name, backend=url, telemetry=telemetry, max_entries=2) as two,
    ):
        heard: list[ContextEvent] = []
        two.subscribe("*", heard.append)
        one.set("a", 1)
        one.set("b", 2)
        one.set("c", 3)  # evicts one
        one.set("d", 4, ttl=0.05)  # evicts another, then expires
        deadline = time.monotonic() + 10
        while not any(event.action == "expire" for event in heard):
            assert time.monotonic() < deadline
            time.sleep(0.02)
            two.purge_expired()
        one.destroy()
    assert [event.action for event in heard].count("evict") == 2
    assert value(registry, "sharedctx_entries_evicted_total", backend=backend) == 2
    assert value(registry, "sharedctx_entries_expired_total", backend=backend) == 1
    assert value(registry, "sharedctx_expiry_lateness_seconds_count", backend=backend) == 1
