"""Traces linked across the change feed: a write records its span's context with its
change, and whoever hears of the change (a subscriber callback, a watch, a wait) links
its own span to the write's, in another thread, task or process, on every backend."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import msgspec
import pytest
import redis

from sharedctx import ContextEvent, MemoryBackend, SharedContext

from ._traced import Spans, ids, traceparent, until_paused

ROOT = Path(__file__).parents[1]


@pytest.fixture
def spans() -> Spans:
    return Spans()


def session() -> str:
    return f"links-{uuid.uuid4().hex[:8]}"


# -- in one process -------------------------------------------------------------------------


def test_a_wait_in_another_thread_returns_in_a_span_linked_to_the_write_it_waited_for(
    spans: Spans,
) -> None:
    telemetry = spans.telemetry()
    with (
        SharedContext("s", telemetry=telemetry) as writer,
        SharedContext("s", telemetry=telemetry) as waiter,
    ):
        found: list[object] = []
        thread = threading.Thread(target=lambda: found.append(waiter.wait_for("r:*", timeout=10)))
        thread.start()
        until_paused(thread)
        writer.set("r:1", 1)
        thread.join(10)
    assert found
    written, waited = spans.one("set"), spans.one("wait_for")
    assert [ids(link.context) for link in waited.links] == [ids(written.context)]
    assert waited.context.trace_id != written.context.trace_id  # two traces, linked


def test_a_wait_links_to_every_write_it_waited_for_and_no_other(spans: Spans) -> None:
    telemetry = spans.telemetry()
    with SharedContext("s", telemetry=telemetry) as context:
        context.set("r:0", 0)  # already there: not waited for
        found: list[object] = []
        thread = threading.Thread(
            target=lambda: found.append(context.wait_for_keys(["r:0", "r:1", "r:2"], timeout=10))
        )
        thread.start()
        for key in ("r:1", "r:2"):
            until_paused(thread)
            context.set(key, 1)
        thread.join(10)
        assert found
    written = [ids(span.context) for span in spans.finished("set")]
    linked = [ids(link.context) for link in spans.one("wait_for_keys").links]
    assert len(written) == 3
    assert sorted(linked) == sorted(written[1:])


async def test_an_awaited_wait_in_another_task_is_linked_too(spans: Spans) -> None:
    telemetry = spans.telemetry()
    async with SharedContext("s", telemetry=telemetry) as context:
        waiting = asyncio.create_task(context.await_for("r:*", timeout=10))
        await asyncio.sleep(0.05)  # the task subscribes, looks, and pauses
        await context.aset("r:1", 1)
        await waiting
    [link] = spans.one("wait_for").links
    assert ids(link.context) == ids(spans.one("set").context)


def test_a_subscriber_runs_in_a_span_linked_to_the_write(spans: Spans) -> None:
    with SharedContext("s", telemetry=spans.telemetry()) as context:
        inside: list[object] = []
        context.subscribe("r:*", lambda event: inside.append(event.traceparent))
        context.set("r:1", 1)
        context.set_multiple({"r:2": 2, "r:3": 3})
        context.delete("r:1")
    written = [ids(span.context) for span in spans.finished("set", "set_multiple", "delete")]
    heard = [span for span in spans.finished("subscriber")]
    assert [ids(span.links[0].context) for span in heard] == [
        written[0], written[1], written[1], written[2]
    ]  # fmt: skip
    assert all(span.kind.name == "CONSUMER" for span in heard)
    assert inside[0] == traceparent(spans.finished("set")[0])


def test_a_watch_delivers_each_event_with_a_span_linked_to_its_write(spans: Spans) -> None:
    with SharedContext("s", telemetry=spans.telemetry()) as context:
        watch = context.watch("r:*")
        context.set("r:1", 1)
        context.delete("r:1")
        events = [watch.get(timeout=5), watch.get(timeout=5)]
    written = [ids(span.context) for span in spans.finished("set", "delete")]
    delivered = spans.finished("watch event")
    assert [ids(span.links[0].context) for span in delivered] == written
    assert [span.attributes["sharedctx.action"] for span in delivered] == ["set", "delete"]
    assert [event.traceparent for event in events] == [
        traceparent(span) for span in spans.finished("set", "delete")
    ]


def test_a_change_no_call_made_carries_no_trace_context(spans: Spans) -> None:
    clock = [0.0]
    backend = MemoryBackend(clock=lambda: clock[0])
    with SharedContext("s", backend=backend, telemetry=spans.telemetry()) as context:
        watch = context.watch()
        context.set("k", 1, ttl=1)
        clock[0] = 2.0
        context.purge_expired()
        set_event, expire_event = watch.get(timeout=5), watch.get(timeout=5)
    assert set_event.traceparent is not None
    assert (expire_event.action, expire_event.traceparent) == ("expire", None)
    assert spans.finished("watch event")[1].links == ()


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_watch_from_a_revision_replays_the_trace_contexts_too(
    spans: Spans, backend: str, request: pytest.FixtureRequest
) -> None:
    url = backend if backend == "memory" else request.getfixturevalue("redis_server").url
    with SharedContext(session(), backend=url, telemetry=spans.telemetry()) as context:
        context.set("k", 1)
        with SharedContext(context.session_id, backend=url) as untraced:
            untraced.set("k", 2)
        watch = context.watch(since=0)
        events = [watch.get(timeout=5), watch.get(timeout=5)]
        context.destroy()
    [written] = spans.finished("set")
    assert events[0].traceparent == traceparent(written)
    assert events[1].traceparent is None


# -- a LangGraph node's put and another node's wait ------------------------------------------


def test_a_langgraph_put_and_another_nodes_wait_for_are_linked(spans: Spans) -> None:
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    from sharedctx.integrations.langgraph import SharedContextStore

    class State(TypedDict, total=False):
        done: bool

    store = SharedContextStore(session(), telemetry=spans.telemetry())
    pattern = store.pattern_for(("results",))
    started = threading.Event()
    waiting: list[threading.Thread] = []

    def mind(state: State) -> State:
        assert started.wait(10)
        until_paused(waiting[0])  # the orchestrator waits: only the put can wake it
        store.put(("results",), "mind-a", {"score": 1})
        return {}

    def orchestrator(state: State) -> State:
        waiting.append(threading.current_thread())
        started.set()
        store.context.wait_for(pattern, timeout=10)
        return {"done": True}

    graph = StateGraph(State)
    graph.add_node("mind", mind)
    graph.add_node("orchestrator", orchestrator)
    graph.add_edge(START, "mind")
    graph.add_edge(START, "orchestrator")
    graph.add_edge("mind", END)
    graph.add_edge("orchestrator", END)
    with store:
        assert graph.compile(store=store).invoke({})["done"]
    [link] = spans.one("wait_for").links
    assert ids(link.context) == ids(spans.one("set").context)


# -- across processes, on Redis and Redis Cluster -----------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize(
    "server", ["redis_server", pytest.param("redis_cluster", marks=pytest.mark.cluster)]
)
def test_a_write_in_one_process_links_the_spans_of_another_that_heard_it(
    spans: Spans, server: str, request: pytest.FixtureRequest
) -> None:
    url, name = str(request.getfixturevalue(server).url), session()
    listener = subprocess.Popen(
        [sys.executable, "-c", f"from tests._traced import listen; listen({url!r}, {name!r})"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    with listener:
        try:
            assert listener.stdout is not None
            assert listener.stdout.readline().strip() == "ready"
            with SharedContext(name, backend=url, telemetry=spans.telemetry()) as writer:
                writer.set("result:mind-a", {"score": 1})
                report = json.loads(listener.stdout.readline())
                writer.destroy()
            assert listener.wait(30) == 0
        finally:
            listener.kill()
    written = list(ids(spans.one("set").context))
    assert report == {"subscriber": [written], "watch event": [written], "wait_for": [written]}


@pytest.mark.redis
def test_an_untraced_write_pays_nothing_for_the_field(spans: Spans, redis_server: object) -> None:
    url = str(redis_server.url)  # type: ignore[attr-defined]
    admin = redis.Redis.from_url(url)
    name = session()
    with (
        SharedContext(name, backend=url) as plain,
        SharedContext(name, backend=url, telemetry=spans.telemetry()) as traced,
    ):
        *keys, channel = traced.backend.keys_of(name)  # type: ignore[attr-defined]
        listening = admin.pubsub()
        listening.ssubscribe(channel)
        assert listening.get_sharded_message(timeout=5)["type"] == "ssubscribe"
        plain.set("k", 1)
        traced.set("k", 2)
        messages = [listening.get_sharded_message(timeout=5) for _ in range(2)]
        entries = admin.xrange(next(key for key in keys if key.endswith(b":events")))
        listening.close()
        traced.destroy()
    admin.close()
    written = traceparent(spans.one("set"))
    # The stream: a "c" field for the traced write only.
    assert [set(entry) for _, entry in entries] == [
        {b"a", b"k", b"m", b"t"},
        {b"a", b"k", b"m", b"t", b"c"},
    ]
    assert entries[1][1][b"c"].decode() == written
    # The channel: a sixth field for the traced write only.
    raw = list[list[msgspec.Raw]]  # the metadata and values are binary strings
    changes = [msgspec.msgpack.decode(message["data"], type=raw) for message in messages]
    assert [len(change) for [change] in changes] == [5, 6]
    assert msgspec.msgpack.decode(changes[1][0][5]) == written


def test_an_event_tells_the_write_it_came_from_even_without_spans_of_its_own(
    spans: Spans,
) -> None:
    with SharedContext("s", telemetry=spans.telemetry()) as writer, SharedContext("s") as reader:
        heard: list[ContextEvent] = []
        reader.subscribe("*", heard.append)
        writer.set("k", 1)
    assert heard[0].traceparent == traceparent(spans.one("set"))
