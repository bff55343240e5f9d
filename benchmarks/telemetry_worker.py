"""A worker process of the telemetry workload (``telemetry_workloads.py``).

    python benchmarks/telemetry_worker.py '{"mode": ..., "redis": url-or-null}'

A fresh interpreter that sets OpenTelemetry up as its ``mode`` says, then imports
sharedctx (from ``PYTHONPATH`` first: the code before telemetry for ``before``) and
answers the parent in JSON, one object per line: ``{"ready": ..., "sharedctx": path}``
once set up, then for each ``{"case": name, "repeat": n}`` on its stdin the
nanoseconds that ``n`` calls took and the CPU time of this thread meanwhile (the
garbage collector paused, as ``timeit`` does), or with ``"each": true`` the duration
of each call.

Modes: ``before`` (the code before telemetry), ``absent`` (OpenTelemetry's API cannot
be imported), ``no provider`` (the API imported, no tracer provider set), ``provider``
(the SDK's provider with an in-memory exporter, emptied between samples), and
``provider+metrics`` (that, and Prometheus metrics on a registry of its own).
"""

from __future__ import annotations

import gc
import json
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any


def _tracing(mode: str) -> Callable[[], None]:
    """Set OpenTelemetry up for ``mode``; what empties the exporter between samples."""
    if mode in ("before", "absent"):
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # not installed
        return lambda: None
    from opentelemetry import trace

    if mode == "no provider":
        return lambda: None
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter.clear


def main() -> None:
    config = json.loads(sys.argv[1])
    mode, url = config["mode"], config["redis"]
    empty = _tracing(mode)
    import sharedctx
    from sharedctx import SharedContext

    options: dict[str, Any] = {}
    if mode == "provider+metrics":
        from prometheus_client import CollectorRegistry

        options["telemetry"] = sharedctx.Telemetry(metrics=CollectorRegistry())
    session = f"bench-telemetry-{uuid.uuid4().hex[:8]}"
    contexts = {"memory": SharedContext(session, **options)}
    if url:
        contexts["redis"] = SharedContext(session, backend=url, **options)
    cases: dict[str, Callable[[], object]] = {}
    for where, context in contexts.items():
        context.set("key", {"score": 0.9, "notes": "x" * 40})
        value = {"score": 0.8, "notes": "y" * 40}
        cases[f"{where} get"] = lambda context=context: context.get("key")
        cases[f"{where} set"] = lambda context=context, value=value: context.set("key", value)
    print(json.dumps({"ready": True, "sharedctx": sharedctx.__file__}), flush=True)
    clock = time.perf_counter_ns
    for line in sys.stdin:
        command = json.loads(line)
        call, repeat = cases[command["case"]], command["repeat"]
        empty()
        gc.collect()
        gc.disable()
        if command.get("each"):  # every call timed on its own (a round trip)
            durations = []
            for _ in range(repeat):
                start = clock()
                call()
                durations.append(clock() - start)
            answer: dict[str, Any] = {"ns": sum(durations), "each": durations}
        else:
            start, cpu = clock(), time.thread_time_ns()
            for _ in range(repeat):
                call()
            answer = {"ns": clock() - start, "cpu_ns": time.thread_time_ns() - cpu}
        gc.enable()
        print(json.dumps(answer), flush=True)
    for context in contexts.values():
        context.destroy()


if __name__ == "__main__":
    main()
