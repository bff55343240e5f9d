"""Spans: one CLIENT span per public call, by OpenTelemetry's database conventions;
none at all, and no telemetry work, without the API or a tracer provider; never a
value, and keys only when asked for (the canary)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from prometheus_client import CollectorRegistry, generate_latest

from sharedctx import (
    ContextEvent,
    ContextManager,
    HistoryCompactedError,
    InvalidArgumentError,
    MemoryBackend,
    SessionExistsError,
    SharedContext,
    Telemetry,
    VersionConflictError,
    WaitTimeoutError,
)
from sharedctx.backends import Backend, Operation, Store
from sharedctx.telemetry import default, set_default
from sharedctx.testing import ContextFactory

from ._traced import Spans

ROOT = Path(__file__).parents[1]
KINDS = {"memory": "memory", "recording": "RecordingBackend", "redis": "redis"}


@pytest.fixture
def spans() -> Spans:
    return Spans()


def kind_of(backend: str | Backend) -> str:
    if not isinstance(backend, str):
        return KINDS["recording"]
    if backend == "memory":
        return "memory"
    return "redis-cluster" if backend.startswith("redis+cluster") else "redis"


def run_python(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter (a process of its own: its own tracer
    provider, its own imports); the lines it printed."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


# -- without telemetry, no telemetry work ------------------------------------------------------


def test_import_sharedctx_imports_no_opentelemetry_or_prometheus_module() -> None:
    assert run_python("""
        import sys
        import sharedctx
        telemetry = ("opentelemetry", "prometheus_client")
        print([name for name in sys.modules if name.split(".")[0] in telemetry])
        with sharedctx.SharedContext("s") as context:  # nor does opening and using a context
            context.set("k", 1)
            context.get("k")
        print([name for name in sys.modules if name.split(".")[0] in telemetry])
    """) == ["[]", "[]"]  # fmt: skip


@pytest.mark.parametrize("otel", ["absent", "imported, no provider", "no-op provider"])
def test_without_a_configured_tracer_provider_a_context_calls_its_stores_own_executors(
    otel: str,
) -> None:
    setup = {
        "absent": "sys.modules['opentelemetry'] = None  # as if it were not installed",
        "imported, no provider": "import opentelemetry.trace",
        "no-op provider": "from opentelemetry import trace; "
        "trace.set_tracer_provider(trace.NoOpTracerProvider())",
    }[otel]
    assert run_python(f"""
        import sys
        {setup}
        from sharedctx import SharedContext
        from sharedctx.backends.ops import Get, Write
        with SharedContext("s") as context:
            store = context._store
            print(context._instruments is None)
            print(context._execute == store.execute, context._aexecute == store.aexecute)
            print(context._get == store.executor(Get), context._write == store.executor(Write))
    """) == ["True", "True True", "True True"]  # fmt: skip


def test_a_provider_set_before_a_context_opens_traces_it_and_one_set_later_does_not() -> None:
    assert run_python("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from sharedctx import SharedContext
        early = SharedContext("s")  # opened before the SDK is set up: never traced
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        late = SharedContext("s")
        early.set("a", 1)
        late.set("b", 2)
        print([span.name for span in exporter.get_finished_spans()])
        print(early._instruments is None, late._instruments is None)
    """) == ["['set']", "True False"]  # fmt: skip


def test_metrics_without_prometheus_client_fail_before_anything_is_opened() -> None:
    [line] = run_python("""
        import sys
        sys.modules["prometheus_client"] = None  # as if it were not installed
        from sharedctx import ContextError, MemoryBackend, SharedContext, Telemetry
        backend = MemoryBackend()
        try:
            SharedContext("s", backend=backend, telemetry=Telemetry(metrics=True))
        except ContextError as error:
            print(error, backend.sessions())
    """)
    assert line == (
        "Telemetry(metrics=...) needs prometheus_client: pip install 'sharedctx[otel]' []"
    )


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"record_keys": 1}, "record_keys"),
        ({"tracing": "yes"}, "tracing"),
        ({"tracer_provider": object()}, "tracer_provider"),
        ({"metrics": "default"}, "metrics"),
    ],
)
def test_bad_telemetry_settings_are_refused_naming_the_setting(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=named):
        Telemetry(**options)


def test_a_context_refuses_telemetry_that_is_not_telemetry() -> None:
    backend = MemoryBackend()
    with pytest.raises(InvalidArgumentError, match=r"sharedctx\.Telemetry"):
        SharedContext("s", backend=backend, telemetry={"record_keys": True})  # type: ignore[arg-type]
    assert backend.sessions() == []


def test_telemetry_is_immutable() -> None:
    with pytest.raises(AttributeError, match="immutable"):
        Telemetry().record_keys = True  # type: ignore[misc]


def test_the_default_telemetry_applies_to_the_contexts_opened_after_it_is_set(
    spans: Spans,
) -> None:
    before = default()
    with SharedContext("s") as untraced:
        set_default(spans.telemetry())
        try:
            with SharedContext("s") as traced, ContextManager() as manager:
                untraced.set("a", 1)
                traced.set("b", 2)
                manager.get_or_create("m").set("c", 3)
        finally:
            set_default(before)
    assert [span.attributes["db.namespace"] for span in spans.finished("set")] == ["s", "m"]
    with pytest.raises(InvalidArgumentError):
        set_default(None)  # type: ignore[arg-type]


def test_a_context_manager_gives_its_contexts_its_telemetry(spans: Spans) -> None:
    with ContextManager(telemetry=spans.telemetry()) as manager:
        manager.create_context("one").set("k", 1)
    assert spans.one("set").attributes["db.namespace"] == "one"


# -- the spans ----------------------------------------------------------------------------------


CALLS = [
    ("set", lambda c: c.set("a:1", 1, tags=["t"])),
    ("get", lambda c: c.get("a:1")),
    ("get", lambda c: c.get_entry("absent")),
    ("has", lambda c: c.has("a:1")),
    ("get_multiple", lambda c: c.get_multiple(["a:1", "a:2"])),
    ("set_multiple", lambda c: c.set_multiple({"a:2": 2, "a:3": 3})),
    ("update", lambda c: c.update("a:1", lambda v: v + 1)),
    ("get_or_set", lambda c: c.get_or_set("a:4", lambda: 4)),
    ("delete", lambda c: c.delete("a:4")),
    ("count", lambda c: c.count()),
    ("keys", lambda c: c.keys("a:*")),
    ("find_by_pattern", lambda c: c.find_by_pattern("a:*")),
    ("find_by_tag", lambda c: c.find_by_tag("t")),
    ("tags", lambda c: c.tags()),
    ("wait_for", lambda c: c.wait_for("a:*", count=2, timeout=5)),
    ("wait_for_keys", lambda c: c.wait_for_keys(["a:1"], timeout=5)),
    ("expire", lambda c: c.expire("a:1", 60)),
    ("purge_expired", lambda c: c.purge_expired()),
    ("revision", lambda c: c.revision),
    ("stats", lambda c: c.stats()),
    ("export", lambda c: list(c.export())),
    ("import_records", lambda c: c.import_records([{"key": "b", "value": 1}])),
    ("subscribe", lambda c: c.subscribe("z:*", print)),
    ("watch", lambda c: c.watch("z:*").close()),
    ("clear", lambda c: c.clear()),
]


def test_each_public_call_is_one_client_span_by_the_database_conventions(
    make_context: ContextFactory, backend: str | Backend, spans: Spans
) -> None:
    context = make_context(telemetry=spans.telemetry())
    context.activity  # bookkeeping: no span  # noqa: B018
    for _, call in CALLS:
        call(context)
    finished = spans.finished()
    assert [span.name for span in finished] == [name for name, _ in CALLS]
    outcomes = ["ok", "hit", "miss"] + ["ok"] * (len(CALLS) - 3)
    for span, (name, _), outcome in zip(finished, CALLS, outcomes, strict=True):
        assert span.kind == trace.SpanKind.CLIENT
        assert span.parent is None
        attributes = dict(span.attributes or {})
        attributes.pop("db.operation.batch.size", None)
        assert attributes == {
            "db.system.name": "sharedctx",
            "db.operation.name": name,
            "db.namespace": context.session_id,
            "sharedctx.backend": kind_of(backend),
            "sharedctx.outcome": outcome,
        }
    assert finished[4].attributes["db.operation.batch.size"] == 2  # get_multiple
    assert finished[5].attributes["db.operation.batch.size"] == 2  # set_multiple


def test_the_history_calls_are_spans_and_metrics_like_every_call(
    make_context: ContextFactory, backend: str | Backend, spans: Spans
) -> None:
    """history, a read at a revision (get_at: hit or miss), each page a snapshot
    reads, and fork (one span for all its steps); a revision no longer kept and a fork
    onto a session that exists have outcomes of their own."""
    registry = CollectorRegistry()
    context = make_context(telemetry=spans.telemetry(metrics=registry), history_versions=1)
    first = context.set("a", 1).revision
    context.set("a", 2)
    spans.clear()
    context.history("a")
    context.get("a", revision=first)
    context.get_entry("absent", revision=first)
    snapshot = context.snapshot(first)
    snapshot.find_by_pattern("*")
    forked = context.fork(f"{context.session_id}-fork", revision=first)
    context.set("a", 3)  # version 1 is dropped: revision `first` is no longer kept
    with pytest.raises(HistoryCompactedError):
        context.get("a", revision=first)
    with pytest.raises(SessionExistsError):
        context.fork(forked.session_id)
    forked.destroy()
    names = ["history", "get_at", "get_at", "snapshot", "fork", "set", "get_at", "fork"]
    outcomes = ["ok", "hit", "miss", "ok", "ok", "ok", "compacted", "exists"]
    # (The fork's own context makes spans of its own session: its close, its destroy.)
    session = context.session_id
    finished = [span for span in spans.finished() if span.attributes["db.namespace"] == session]
    assert [span.name for span in finished] == names
    for span, name, outcome in zip(finished, names, outcomes, strict=True):
        assert span.kind == trace.SpanKind.CLIENT
        assert span.attributes["db.operation.name"] == name
        assert span.attributes["sharedctx.outcome"] == outcome
    assert finished[6].attributes["error.type"] == "sharedctx.HistoryCompactedError"
    assert finished[7].attributes["error.type"] == "sharedctx.SessionExistsError"
    kind = kind_of(backend)
    for name, outcome, count in [
        ("history", "ok", 1), ("get_at", "hit", 1), ("get_at", "miss", 1),
        ("get_at", "compacted", 1), ("snapshot", "ok", 1), ("fork", "ok", 1),
        ("fork", "exists", 1),
    ]:  # fmt: skip
        labels = {"operation": name, "backend": kind, "outcome": outcome}
        assert registry.get_sample_value("sharedctx_operations_total", labels) == count, labels


async def test_the_awaitable_twins_give_the_same_spans(
    make_context: ContextFactory, spans: Spans
) -> None:
    context = make_context(telemetry=spans.telemetry())
    await context.aset("k", 1)
    await context.aget("k")
    await context.aupdate("k", lambda v: v + 1)
    await context.await_for("k")
    await context.await_for_keys(["k"])
    await context.aget_or_set("k", lambda: 0)
    [record async for record in context.aexport()]
    assert [span.name for span in spans.finished()] == [
        "set", "get", "update", "wait_for", "wait_for_keys", "get_or_set", "export"
    ]  # fmt: skip


def test_a_failed_call_records_its_outcome_and_error_type_never_its_message(
    make_context: ContextFactory, spans: Spans
) -> None:
    context = make_context(telemetry=spans.telemetry())
    context.set("k", 1)
    with pytest.raises(VersionConflictError):
        context.set("k", 2, if_version=7)
    with pytest.raises(WaitTimeoutError):
        context.wait_for_keys(["absent"], timeout=0.01)
    conflict, timeout = spans.finished()[1:]
    assert conflict.attributes["sharedctx.outcome"] == "conflict"
    assert conflict.attributes["error.type"] == "sharedctx.VersionConflictError"
    assert timeout.attributes["sharedctx.outcome"] == "timeout"
    assert timeout.attributes["error.type"] == "sharedctx.WaitTimeoutError"
    for span in (conflict, timeout):
        assert span.status.status_code == trace.StatusCode.ERROR
        assert span.status.description is None
        assert span.events == ()  # no exception event: its message names the key


def test_a_multi_step_call_is_one_span_however_many_steps_it_takes(
    make_context: ContextFactory, spans: Spans
) -> None:
    context = make_context(telemetry=spans.telemetry())
    other = make_context(context.session_id)
    context.set("n", 0)
    tries = []

    def bump(value: int) -> int:
        tries.append(value)
        if len(tries) == 1:
            other.set("n", 10)  # another writer gets in between: update tries again
        return value + 1

    assert context.update("n", bump).value == 11
    assert len(tries) == 2
    assert [span.name for span in spans.finished()] == ["set", "update"]


class _SpanningStore:
    """A store that makes a span of its own in each call, as an instrumented client
    library would."""

    def __init__(self, store: Store, tracer: trace.Tracer) -> None:
        self._store, self._tracer, self.codec = store, tracer, store.codec

    def execute(self, operation: Operation[Any]) -> Any:
        with self._tracer.start_as_current_span("client library"):
            return self._store.execute(operation)

    async def aexecute(self, operation: Operation[Any]) -> Any:
        with self._tracer.start_as_current_span("client library"):
            return await self._store.aexecute(operation)


class _SpanningBackend:
    def __init__(self, tracer: trace.Tracer) -> None:
        self._memory, self._tracer = MemoryBackend(), tracer

    def open(self, *args: Any) -> _SpanningStore:
        return _SpanningStore(self._memory.open(*args), self._tracer)

    def close(self) -> None:
        self._memory.close()

    async def aclose(self) -> None:
        self._memory.close()


def test_our_span_is_a_child_of_the_callers_and_the_client_librarys_nest_below_it(
    spans: Spans,
) -> None:
    tracer = spans.provider.get_tracer("test")
    backend = _SpanningBackend(tracer)
    with SharedContext("s", backend=backend, telemetry=spans.telemetry()) as context:
        with tracer.start_as_current_span("pipeline step"):
            context.set("k", 1)
        asyncio.run(context.aget("k"))
    step, ours = spans.one("pipeline step"), spans.one("set")
    library = spans.finished("client library")
    assert ours.parent is not None
    assert ours.parent.span_id == step.context.span_id
    assert library[0].parent is not None
    assert library[0].parent.span_id == ours.context.span_id
    assert library[1].parent is not None
    assert library[1].parent.span_id == spans.one("get").context.span_id


def test_a_subscriber_that_raises_marks_its_span_failed(spans: Spans) -> None:
    with SharedContext("s", telemetry=spans.telemetry()) as context:

        def broken(event: ContextEvent) -> None:
            raise RuntimeError(f"broken on {event.key}")

        context.subscribe("*", broken)
        context.set("k", 1)
    subscriber = spans.one("subscriber")
    assert subscriber.kind == trace.SpanKind.CONSUMER
    assert subscriber.status.status_code == trace.StatusCode.ERROR
    assert subscriber.attributes["error.type"] == "RuntimeError"
    assert subscriber.events == ()


def test_tracing_false_gives_no_spans_even_with_a_provider(spans: Spans) -> None:
    with SharedContext("s", telemetry=spans.telemetry(tracing=False)) as context:
        context.set("k", 1)
        assert context._instruments is None
    assert spans.finished() == []


# -- the canary: never a value; keys only when asked for ----------------------------------------


KEY = "canary:key-7f3a\x1b[31m"
VALUE = {"secret": "canary-value-91c2", "n": 4242424242}
TAG = "canary-tag-55e1"
SECRETS = ("canary:key-7f3a", "canary-value-91c2", "4242424242", "canary-tag-55e1")


def _every_call(context: SharedContext, other: SharedContext) -> None:
    """Set, read and remove the canary through every call, failures included."""

    def broken(event: ContextEvent) -> None:
        raise RuntimeError(f"subscriber failed on {event.key}: {event.entry.value}")

    context.subscribe("canary:*", broken)
    watch = context.watch("canary:*")
    context.set(KEY, VALUE, tags=[TAG], source="canary-source")
    context.get(KEY)
    context.get_entry(KEY)
    context.has(KEY)
    context.get_multiple([KEY])
    context.find_by_pattern("canary:*")
    context.find_by_tag(TAG)
    context.keys("canary:*")
    context.tags()
    context.wait_for("canary:*")
    context.wait_for_keys([KEY])
    context.update(KEY, lambda value: value)
    context.get_or_set(KEY, lambda: VALUE)
    list(context.export())
    _history_calls(context)
    with pytest.raises(VersionConflictError):
        context.set(KEY, VALUE, if_version=99)
    with pytest.raises(WaitTimeoutError):
        context.wait_for_keys([KEY + "-absent"], timeout=0.01)
    context.set_multiple({KEY + "2": VALUE}, tags=[TAG])
    context.import_records([{"key": KEY + "3", "value": VALUE, "tags": [TAG]}])
    other.set(KEY + "4", VALUE, tags=[TAG])  # heard by the context's subscriber and watch
    while True:
        try:
            watch.get(timeout=0.5)
        except WaitTimeoutError:
            break
    context.expire(KEY, 60)
    context.delete(KEY)
    asyncio.run(_every_awaitable(context))
    context.clear()


def _history_calls(context: SharedContext) -> None:
    """The canary's past versions through the history calls (the context keeps 2)."""
    versions = context.history(KEY)
    assert len(versions) == 2  # set, then update
    assert versions[-1].value == VALUE
    at = versions[-1].revision
    context.get(KEY, revision=at)
    context.get_entry(KEY, revision=at)
    snapshot = context.snapshot(at)
    list(snapshot.export())
    snapshot.find_by_tag(TAG)
    with context.fork(context.session_id + "-fork", revision=at) as forked:
        forked.get(KEY)
        forked.destroy()


async def _every_awaitable(context: SharedContext) -> None:
    await context.aset(KEY, VALUE, tags=[TAG])
    await context.aget(KEY)
    await context.aupdate(KEY, lambda value: value)
    await context.await_for("canary:*")
    await context.adelete(KEY)


def _recorded(spans: Spans, caplog: pytest.LogCaptureFixture, registry: CollectorRegistry) -> str:
    """Everything spans, logs and metrics hold, as one text."""
    parts = [generate_latest(registry).decode()]
    for span in spans.finished():
        parts.append(span.name)
        parts.append(repr(dict(span.attributes or {})))
        parts.append(repr(span.status.description))
        for event in span.events:
            parts.append(event.name + repr(dict(event.attributes or {})))
        for link in span.links:
            parts.append(repr(dict(link.attributes or {})))
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(record.exc_text or "")
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def test_no_span_log_record_or_metric_holds_a_key_tag_or_value_unasked(
    make_context: ContextFactory, spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    context = make_context(telemetry=spans.telemetry(metrics=registry), history_versions=2)
    other = make_context(context.session_id, telemetry=spans.telemetry())
    with caplog.at_level(logging.DEBUG, logger="sharedctx"):
        _every_call(context, other)
    recorded = _recorded(spans, caplog, registry)
    assert len(spans.finished()) > 40
    assert {"history", "get_at", "snapshot", "fork"} <= {span.name for span in spans.finished()}
    assert any("subscriber" in record.getMessage() for record in caplog.records)
    for secret in (*SECRETS, "canary-source"):
        assert secret not in recorded
    assert context.session_id not in generate_latest(registry).decode()


def test_record_keys_records_keys_patterns_and_tags_escaped_and_never_a_value(
    make_context: ContextFactory, spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    telemetry = spans.telemetry(record_keys=True, metrics=registry)
    context = make_context(telemetry=telemetry, history_versions=2)
    other = make_context(context.session_id, telemetry=telemetry)
    with caplog.at_level(logging.DEBUG, logger="sharedctx"):
        _every_call(context, other)
    recorded = _recorded(spans, caplog, registry)
    escaped = "canary:key-7f3a\\x1b[31m"  # as the CLI shows it
    assert spans.finished("delete")[0].attributes["sharedctx.key"] == escaped
    assert spans.one("find_by_tag").attributes["sharedctx.tag"] == TAG
    assert spans.one("keys").attributes["sharedctx.pattern"] == "canary:*"
    assert spans.one("set_multiple").attributes["sharedctx.keys"] == (escaped + "2",)
    assert spans.one("import_records").attributes["sharedctx.keys"] == (escaped + "3",)
    assert spans.finished("wait_for_keys")[0].attributes["sharedctx.keys"] == (escaped,)
    assert spans.one("history").attributes["sharedctx.key"] == escaped
    assert spans.finished("get_at")[0].attributes["sharedctx.key"] == escaped
    assert {"snapshot", "fork"} <= {span.name for span in spans.finished()}
    log = "\n".join(record.getMessage() for record in caplog.records)
    assert f"'{escaped}'" in log  # the failing subscriber's record names the key
    assert "\x1b" not in recorded
    for secret in ("canary-value-91c2", "4242424242", "canary-source"):
        assert secret not in recorded
    assert context.session_id not in generate_latest(registry).decode()
