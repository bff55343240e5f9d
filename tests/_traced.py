"""Helpers of the telemetry tests: a tracer provider whose spans stay in memory, a way
to know that a wait is paused, and the listening process of the cross-process tests
(run as ``python -c "from tests._traced import listen; listen(...)"``).

The SDK's provider is given to each context (``Telemetry(tracer_provider=...)``),
never set globally: the test process keeps the API's own stand-in, and the tests
that need a global provider run in a process of their own.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sharedctx import KeyRing, SharedContext, Telemetry

__all__ = ["Spans", "ids", "listen", "traceparent", "until_paused"]


class Spans:
    """A tracer provider that keeps its finished spans in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def telemetry(self, **options: Any) -> Telemetry:
        return Telemetry(tracer_provider=self.provider, **options)

    def finished(self, *names: str) -> list[ReadableSpan]:
        """The finished spans (of these names, if given), in the order they ended."""
        spans = self.exporter.get_finished_spans()
        return [span for span in spans if not names or span.name in names]

    def one(self, name: str) -> ReadableSpan:
        [span] = self.finished(name)
        return span

    def clear(self) -> None:
        self.exporter.clear()

    def shutdown(self) -> None:
        self.provider.shutdown()


def ids(span_context: Any) -> tuple[str, str]:
    """A span's (or a link's) trace and span ids, as W3C writes them."""
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def traceparent(span: Any) -> str:
    """The W3C traceparent of a finished span (what its writes carry)."""
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def until_paused(thread: threading.Thread, timeout: float = 10.0) -> None:
    """Return once ``thread`` waits in a wait's pause (``_multistep._pause``): woken
    only by a change from then on, it cannot find a write at its first look."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or 0)
        while frame is not None:
            if frame.f_code.co_name == "_pause":
                return
            frame = frame.f_back
        time.sleep(0.005)
    raise TimeoutError(f"{thread.name} did not pause within {timeout} s")


def listen(url: str, session: str) -> None:
    """Another process hears a write to ``result:*`` three ways: a subscriber callback,
    a watch, and a ``wait_for``. It prints ``ready`` once all three listen (the wait
    paused: only the write's change can wake it), then, once each heard the write,
    the links of their spans as JSON: ``{span name: [[trace id, span id]...]}``. With
    ``$SHAREDCTX_KEYS`` it opens the session with that key ring, and the report says
    whether the value the watch heard opened (``"opened"``)."""
    spans = Spans()
    keyring = KeyRing.from_env() if os.environ.get("SHAREDCTX_KEYS") else None
    telemetry = spans.telemetry()
    with SharedContext(session, backend=url, telemetry=telemetry, keyring=keyring) as context:
        heard = threading.Event()
        context.subscribe("result:*", lambda event: heard.set())
        watch = context.watch("result:*")
        waiter = threading.Thread(target=context.wait_for, args=("result:*",),
                                  kwargs={"timeout": 30}, name="waiter")  # fmt: skip
        waiter.start()
        until_paused(waiter)
        print("ready", flush=True)
        heard_event = watch.get(timeout=30)
        waiter.join(30)
        assert heard.wait(30)
        deadline = time.monotonic() + 30  # the callback's span ends just after it
        while not spans.finished("subscriber") and time.monotonic() < deadline:
            time.sleep(0.005)
        report: dict[str, Any] = {}
        for span in spans.finished("subscriber", "watch event", "wait_for"):
            report.setdefault(span.name, []).extend(list(ids(link.context)) for link in span.links)
        if keyring is not None:
            report["opened"] = heard_event.entry.value is not None
        print(json.dumps(report), flush=True)
