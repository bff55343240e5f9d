"""Sealed sessions under telemetry, on memory, Redis and Redis Cluster: ``rekey`` and
``rotate_data_key`` are a span and a metric like every other call; a sealed write
carries its trace context to whoever hears of it (a watch, a wait, a replay, another
process); and no span, log record or metric of a sealed session holds a value, a key
unasked, or any key material (the ring's keys, a session's data key, its wrapped
copy)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from opentelemetry import trace
from prometheus_client import CollectorRegistry, generate_latest

from sharedctx import ContextEvent, IntegrityError, KeyRing, KeyUnavailableError, SharedContext

from .._traced import Spans, ids, traceparent, until_paused
from .conftest import Place

ROOT = Path(__file__).parents[2]
KINDS = {"memory": "memory", "redis": "redis", "cluster": "redis-cluster"}


@pytest.fixture
def spans() -> Spans:
    return Spans()


def _session() -> str:
    return f"sealed-otel-{uuid.uuid4().hex[:8]}"


class Witness:
    """A ``KeyProvider`` that does what its ``KeyRing`` does, and keeps every data key
    it wraps or unwraps: the key material a test then looks for."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.data_keys: set[bytes] = set()

    @property
    def key_id(self) -> str:
        return self.ring.key_id

    def holds(self, key_id: str) -> bool:
        return self.ring.holds(key_id)

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        self.data_keys.add(data_key)
        return self.ring.wrap(data_key, context)

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        data_key = self.ring.unwrap(key_id, wrapped, context)
        self.data_keys.add(data_key)
        return data_key


def _forms(secret: bytes) -> list[str]:
    """The ways a key could be written out: its bytes' repr, hex and base64."""
    return [
        repr(secret)[2:-1],
        secret.hex(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    ]


# -- the sealed calls are calls like the others ---------------------------------------------


def test_rekey_and_rotate_data_key_are_a_span_and_a_metric_each_like_every_call(
    place: Place, spans: Spans
) -> None:
    old_key = KeyRing.generate_key()
    old = KeyRing({"old": old_key})
    new = KeyRing({"new": KeyRing.generate_key(), "old": old_key})
    registry = CollectorRegistry()
    session = _session()
    with SharedContext(session, backend=place.backend(old)) as writer:
        writer.set("k", {"secret": 1})
        traced = spans.telemetry(metrics=registry)
        with SharedContext(session, backend=place.backend(new), telemetry=traced) as context:
            assert context.rekey() is True
            assert asyncio.run(context.arekey()) is False
            assert context.rotate_data_key() == 1
            assert asyncio.run(context.arotate_data_key()) == 1
            context.destroy()
    finished = spans.finished("rekey", "rotate_data_key")
    assert [span.name for span in finished] == [
        "rekey", "rekey", "rotate_data_key", "rotate_data_key"
    ]  # fmt: skip
    kind = KINDS[place.kind]
    for span in finished:
        assert span.kind == trace.SpanKind.CLIENT
        assert dict(span.attributes or {}) == {
            "db.system.name": "sharedctx",
            "db.operation.name": span.name,
            "db.namespace": session,
            "sharedctx.backend": kind,
            "sharedctx.outcome": "ok",
        }
    for operation in ("rekey", "rotate_data_key"):
        labels = {"operation": operation, "backend": kind}
        counted = {**labels, "outcome": "ok"}
        assert registry.get_sample_value("sharedctx_operations_total", counted) == 2
        assert registry.get_sample_value("sharedctx_operation_duration_seconds_count", labels) == 2


def test_a_sealed_call_without_the_key_is_named_by_its_outcome_and_error_type(
    place: Place, spans: Spans, ring: KeyRing
) -> None:
    registry = CollectorRegistry()
    session = _session()
    with SharedContext(session, backend=place.backend(ring)) as sealed:
        sealed.set("k", 1)
        traced = spans.telemetry(metrics=registry)
        with SharedContext(session, backend=place.backend(), telemetry=traced) as plain:
            with pytest.raises(KeyUnavailableError):
                plain.rekey()
            with pytest.raises(KeyUnavailableError):
                asyncio.run(plain.arotate_data_key())
        sealed.destroy()
    for name in ("rekey", "rotate_data_key"):
        attributes = spans.one(name).attributes or {}
        assert attributes["error.type"] == "sharedctx.KeyUnavailableError"
        assert attributes["sharedctx.outcome"] == "key_unavailable"
        labels = {"operation": name, "backend": KINDS[place.kind], "outcome": "key_unavailable"}
        assert registry.get_sample_value("sharedctx_operations_total", labels) == 1


def test_a_call_that_opens_a_tampered_value_has_the_integrity_outcome(
    place: Place, spans: Spans, ring: KeyRing
) -> None:
    registry = CollectorRegistry()
    session = _session()
    traced = spans.telemetry(metrics=registry)
    with SharedContext(session, backend=place.backend(ring), telemetry=traced) as context:
        context.set("notes", "private")
        stored = bytearray(place.raw(session, "notes"))
        stored[-1] ^= 1
        place.set_raw(session, "notes", bytes(stored))
        with pytest.raises(IntegrityError):
            context.update("notes", lambda value: value + "!")
        context.destroy()
    attributes = spans.one("update").attributes or {}
    assert attributes["error.type"] == "sharedctx.IntegrityError"
    assert attributes["sharedctx.outcome"] == "integrity"
    labels = {"operation": "update", "backend": KINDS[place.kind], "outcome": "integrity"}
    assert registry.get_sample_value("sharedctx_operations_total", labels) == 1


# -- a sealed write carries its trace context -----------------------------------------------


def test_a_sealed_write_carries_its_trace_context_to_a_watch_a_wait_and_a_replay(
    place: Place, spans: Spans, ring: KeyRing
) -> None:
    telemetry = spans.telemetry()
    session = _session()
    with (
        SharedContext(session, backend=place.backend(ring), telemetry=telemetry) as writer,
        SharedContext(session, backend=place.backend(ring), telemetry=telemetry) as listener,
        SharedContext(session, backend=place.backend(ring)) as rotator,
    ):
        watch = listener.watch("r:*")
        found: list[object] = []
        waiter = threading.Thread(target=lambda: found.append(listener.wait_for("r:*", timeout=10)))
        waiter.start()
        until_paused(waiter)
        writer.set("r:1", {"score": 1})
        waiter.join(10)
        first = watch.get(timeout=5)
        # The data key changes under the writer: its next write is sealed again by the
        # new one (Redis: the function answers "keys" and the store sends it again),
        # with the same trace context.
        rotator.rotate_data_key()
        writer.set("r:2", {"score": 2})
        second = watch.get(timeout=5)
        with listener.watch(since=0) as replay:
            replayed = [replay.get(timeout=5).traceparent for _ in range(2)]
        writer.destroy()
    assert found
    first_set, second_set = spans.finished("set")
    assert (first.key, first.entry.value) == ("r:1", {"score": 1})  # opened
    assert first.traceparent == traceparent(first_set)
    assert (second.key, second.entry.value) == ("r:2", {"score": 2})
    assert second.traceparent == traceparent(second_set)
    assert replayed == [traceparent(first_set), traceparent(second_set)]
    [link] = spans.one("wait_for").links
    assert ids(link.context) == ids(first_set.context)


@pytest.mark.redis
@pytest.mark.parametrize(
    "server", ["redis_server", pytest.param("redis_cluster", marks=pytest.mark.cluster)]
)
def test_a_sealed_write_in_one_process_links_the_spans_of_another_that_heard_it(
    spans: Spans, server: str, request: pytest.FixtureRequest
) -> None:
    url, session = str(request.getfixturevalue(server).url), _session()
    key = KeyRing.generate_key()
    # The listener opens the session with the ring from SHAREDCTX_KEYS, and opens the
    # value it hears (tests._traced.listen).
    listener = subprocess.Popen(
        [sys.executable, "-c", f"from tests._traced import listen; listen({url!r}, {session!r})"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "SHAREDCTX_KEYS": f"k1:{key}"},
    )
    with listener:
        try:
            assert listener.stdout is not None
            assert listener.stdout.readline().strip() == "ready"
            ring = KeyRing({"k1": key})
            telemetry = spans.telemetry()
            with SharedContext(session, backend=url, keyring=ring, telemetry=telemetry) as writer:
                writer.set("result:mind-a", {"score": 1})
                report = json.loads(listener.stdout.readline())
                writer.destroy()
            assert listener.wait(30) == 0
        finally:
            listener.kill()
    written = list(ids(spans.one("set").context))
    assert report == {
        "subscriber": [written],
        "watch event": [written],
        "wait_for": [written],
        "opened": True,
    }


# -- never a value, a key unasked, or key material -------------------------------------------


CANARY_KEY = "canary:key-7f3a\x1b[31m"
CANARY_VALUE = {"secret": "canary-value-91c2", "n": 4242424242}
CANARY_TAG = "canary-tag-55e1"
VALUES = ("canary-value-91c2", "4242424242", "canary-source")


def _every_call(context: SharedContext, other: SharedContext, plain: SharedContext) -> None:
    """The canary through the calls of a sealed session, its sealed calls and the
    failures of a context without its key ring included."""

    def broken(event: ContextEvent) -> None:
        raise RuntimeError(f"subscriber failed on {event.key}: {event.entry.value}")

    context.subscribe("canary:*", broken)
    plain.subscribe("canary:*", broken)  # fails to open the value: KeyUnavailableError
    watch = context.watch("canary:*")
    context.set(CANARY_KEY, CANARY_VALUE, tags=[CANARY_TAG], source="canary-source")
    context.get(CANARY_KEY)
    context.get_multiple([CANARY_KEY])
    context.find_by_pattern("canary:*")
    context.find_by_tag(CANARY_TAG)
    context.wait_for("canary:*")
    context.update(CANARY_KEY, lambda value: value)
    list(context.export())
    context.set_multiple({CANARY_KEY + "2": CANARY_VALUE}, tags=[CANARY_TAG])
    other.set(CANARY_KEY + "4", CANARY_VALUE, tags=[CANARY_TAG])
    with pytest.raises(KeyUnavailableError):
        plain.get(CANARY_KEY)
    with pytest.raises(KeyUnavailableError):
        plain.set(CANARY_KEY, CANARY_VALUE)
    with pytest.raises(KeyUnavailableError):
        plain.rekey()
    plain.get_entry(CANARY_KEY)  # its metadata
    at = context.history(CANARY_KEY)[-1].revision  # its past versions: set, then update
    plain.history(CANARY_KEY)  # their metadata
    with pytest.raises(KeyUnavailableError):
        plain.get(CANARY_KEY, revision=at)
    context.rekey()
    context.rotate_data_key()
    asyncio.run(context.arotate_data_key())
    context.get(CANARY_KEY)
    assert context.get(CANARY_KEY, revision=at) == CANARY_VALUE  # sealed again, opened
    list(context.snapshot(at).export())
    with context.fork(context.session_id + "-fork", revision=at) as forked:
        assert forked.get(CANARY_KEY) == CANARY_VALUE
        forked.destroy()
    for _ in range(4):
        watch.get(timeout=5)
    context.delete(CANARY_KEY)
    context.clear()


@pytest.mark.parametrize("record_keys", [False, True])
def test_no_span_log_record_or_metric_of_a_sealed_session_holds_a_value_or_key_material(
    place: Place, spans: Spans, caplog: pytest.LogCaptureFixture, record_keys: bool
) -> None:
    ring_key = KeyRing.generate_key()
    witness = Witness(KeyRing({"k1": ring_key}))
    registry = CollectorRegistry()
    telemetry = spans.telemetry(record_keys=record_keys, metrics=registry)
    session = _session()
    with (
        caplog.at_level(logging.DEBUG, logger="sharedctx"),
        SharedContext(
            session, backend=place.backend(witness), telemetry=telemetry, history_versions=2
        ) as context,
        SharedContext(session, backend=place.backend(witness), telemetry=telemetry) as other,
        SharedContext(session, backend=place.backend(), telemetry=telemetry) as plain,
    ):
        _every_call(context, other, plain)
        wrapped = _wrapped_data_keys(place, session)
        context.destroy()
    parts = [generate_latest(registry).decode()]
    for span in spans.finished():
        parts += [span.name, repr(dict(span.attributes or {})), repr(span.status.description)]
        parts += [event.name + repr(dict(event.attributes or {})) for event in span.events]
        parts += [repr(dict(link.attributes or {})) for link in span.links]
    for record in caplog.records:
        parts += [record.getMessage(), record.exc_text or ""]
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    recorded = "\n".join(parts)

    assert len(spans.finished()) > 20
    names = {span.name for span in spans.finished()}
    assert {"rekey", "rotate_data_key", "history", "get_at", "snapshot", "fork"} <= names
    assert any("subscriber" in record.getMessage() for record in caplog.records)
    assert len(witness.data_keys) >= 3  # the first, one per rotation (and openers' offers)
    key_material = [ring_key, *_forms(base64.urlsafe_b64decode(ring_key))]
    for data_key in witness.data_keys:
        key_material += _forms(data_key)
    for record in wrapped:
        key_material += _forms(record[-32:])  # the wrapped key's last bytes
    for secret in (*VALUES, *key_material):
        assert secret not in recorded
    if record_keys:  # keys and tags, escaped
        assert spans.finished("set")[0].attributes["sharedctx.key"] == "canary:key-7f3a\\x1b[31m"
        assert spans.one("find_by_tag").attributes["sharedctx.tag"] == CANARY_TAG
    else:
        assert "canary:key-7f3a" not in recorded
        assert CANARY_TAG not in recorded
    assert "\x1b" not in recorded
    assert session not in generate_latest(registry).decode()


def _wrapped_data_keys(place: Place, session: str) -> list[bytes]:
    """The session's wrapped data keys as the backend keeps them."""
    if place.kind == "memory":
        return list(place.memory._sessions[session].records)
    found = place.command(session, "HMGET", place.key(session, "meta"), "dk", "dk0")
    return [bytes(record) for record in found if record]
