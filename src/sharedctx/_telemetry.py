"""A context's telemetry: whether it traces and measures, and the executors that do.

A context calls :func:`plan` before it opens its store and :meth:`Plan.bind` once it
has, and binds its executors (``_execute``, ``_aexecute`` and the direct ones of
``get`` and ``set``) to the :class:`Instruments`' when there are some, to the store's
own otherwise: so without telemetry a call costs what it did without this module.

The decision is made once, when the context opens, and cheaply:

- spans, if the settings allow them and a tracer provider is configured: one given
  in ``Telemetry(tracer_provider=...)``, or the global one, looked up only if
  ``opentelemetry.trace`` was already imported (whoever set a provider imported it;
  nothing is imported to find out) and only if it is not the API's stand-in (a
  ``ProxyTracerProvider`` before the SDK sets one, or a ``NoOpTracerProvider``);
- metrics, only if the settings ask for them (``prometheus_client`` is imported then).

A provider set after a context opened is not seen by that context.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sharedctx import steps
from sharedctx._errors import ContextError, InvalidArgumentError
from sharedctx._events import Subscription
from sharedctx._glob import compile_glob
from sharedctx._outcomes import failure, outcome
from sharedctx._types import ContextEvent
from sharedctx.backends.base import Store
from sharedctx.backends.ops import Operation, Subscribe
from sharedctx.telemetry import Telemetry, default

__all__ = ["Instruments", "Plan", "backend_kind", "plan", "resolve"]

T = TypeVar("T")

_clock = time.perf_counter


def resolve(telemetry: Telemetry | None) -> Telemetry:
    """A context's settings: its own, or the process's default."""
    if telemetry is None:
        return default()
    if not isinstance(telemetry, Telemetry):
        raise InvalidArgumentError(
            f"telemetry must be a sharedctx.Telemetry (or None), not {telemetry!r}"
        )
    return telemetry


def backend_kind(backend: object) -> str:
    """The backend's name in spans and metrics: its ``kind`` (``memory``, ``redis``,
    ``redis-cluster``), else its class's name."""
    kind = getattr(backend, "kind", None)
    return kind if isinstance(kind, str) and kind else type(backend).__name__


class Plan:
    """What a context will report (found before its store opens, so that a missing
    package fails before anything is opened)."""

    def __init__(self, telemetry: Telemetry, provider: Any, registry: Any) -> None:
        self.telemetry = telemetry
        self.provider = provider
        self.registry = registry

    def bind(self, store: Store, backend: object, session_id: str) -> Instruments:
        """The instruments of the context whose store is ``store``; metrics start
        following the session's changes (one store call)."""
        kind = backend_kind(backend)
        tracing = None
        if self.provider is not None:
            from sharedctx._tracing import Tracing

            tracing = Tracing(self.provider, session_id, kind, self.telemetry.record_keys)
        measures = None
        if self.registry is not None:
            from sharedctx._metrics import ContextMetrics, metrics_for

            registry = None if self.registry is True else self.registry
            clock = getattr(store, "clock", None)
            measures = ContextMetrics(
                metrics_for(registry), backend, kind, session_id, clock if callable(clock) else None
            )
        instruments = Instruments(store, tracing, measures)
        try:
            instruments.start()
        except BaseException:
            instruments.close()
            raise
        return instruments


def plan(telemetry: Telemetry) -> Plan | None:
    """What ``telemetry`` asks for and this process can do; None: nothing."""
    provider = None
    if telemetry.tracing and (
        telemetry.tracer_provider is not None or "opentelemetry.trace" in sys.modules
    ):
        from sharedctx._tracing import provider_of

        provider = provider_of(telemetry.tracing, telemetry.tracer_provider)
    registry = None
    if telemetry.metrics is not False:
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            raise ContextError(
                "Telemetry(metrics=...) needs prometheus_client: pip install 'sharedctx[otel]'"
            ) from None
        registry = telemetry.metrics
    if provider is None and registry is None:
        return None
    return Plan(telemetry, provider, registry)


class Instruments:
    """The spans and metrics of one context's calls, around its store's executors."""

    def __init__(self, store: Store, tracing: Any, metrics: Any) -> None:
        self._execute = store.execute
        self._aexecute = store.aexecute
        self.tracing = tracing
        """A ``_tracing.Tracing``, or None."""
        self.metrics = metrics
        """A ``_metrics.ContextMetrics``, or None."""
        self.hidden = 0
        """Subscriptions of the context's own (``stats().subscriptions`` leaves them out)."""

    def start(self) -> None:
        """Follow the session's changes, for the removal metrics."""
        if self.metrics is not None:
            following = Subscription(compile_glob("*"), self.metrics.observe, self.metrics.lost)
            self._execute(Subscribe(following))
            self.hidden = 1

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()

    # -- calls ------------------------------------------------------------------------

    def execute(self, operation: Operation[T], name: str | None = None) -> T:
        """A one-step call: ``operation``, named ``name`` (default: its own name)."""
        tracing, metrics = self.tracing, self.metrics
        if metrics is None:
            return tracing.call(operation, self._execute, name)  # type: ignore[no-any-return]
        started = _clock()
        try:
            if tracing is None:
                result = self._execute(operation)
            else:
                result = tracing.call(operation, self._execute, name)
        except BaseException as error:
            metrics.record(name or operation.name, failure(error), _clock() - started)
            raise
        metrics.record(name or operation.name, outcome(operation, result), _clock() - started)
        return result

    async def aexecute(self, operation: Operation[T], name: str | None = None) -> T:
        """Awaitable twin of :meth:`execute`."""
        tracing, metrics = self.tracing, self.metrics
        if metrics is None:
            return await tracing.acall(operation, self._aexecute, name)  # type: ignore[no-any-return]
        started = _clock()
        try:
            if tracing is None:
                result = await self._aexecute(operation)
            else:
                result = await tracing.acall(operation, self._aexecute, name)
        except BaseException as error:
            metrics.record(name or operation.name, failure(error), _clock() - started)
            raise
        metrics.record(name or operation.name, outcome(operation, result), _clock() - started)
        return result

    def run(self, name: str, calls: steps.Steps[T], heard: Any = None, **subject: Any) -> T:
        """A multi-step call named ``name``; ``subject``: its ``key``, ``keys`` or
        ``pattern`` (recorded with ``record_keys``); ``heard``: a wait's :meth:`heard`."""
        tracing, metrics = self.tracing, self.metrics
        started = _clock()
        try:
            if tracing is None:
                result = steps.run(calls, self._execute)
            else:
                result = tracing.run(name, calls, self._execute, subject, heard)
        except BaseException as error:
            if metrics is not None:
                metrics.record(name, failure(error), _clock() - started)
            raise
        if metrics is not None:
            metrics.record(name, "ok", _clock() - started)
        return result

    async def arun(self, name: str, calls: steps.Steps[T], heard: Any = None, **subject: Any) -> T:
        """Awaitable twin of :meth:`run`."""
        tracing, metrics = self.tracing, self.metrics
        started = _clock()
        try:
            if tracing is None:
                result = await steps.arun(calls, self._aexecute)
            else:
                result = await tracing.arun(name, calls, self._aexecute, subject, heard)
        except BaseException as error:
            if metrics is not None:
                metrics.record(name, failure(error), _clock() - started)
            raise
        if metrics is not None:
            metrics.record(name, "ok", _clock() - started)
        return result

    # -- the change feed ------------------------------------------------------------------

    def heard(self) -> Any:
        """A new collector of the trace contexts a wait hears (a ``_tracing.Heard``), or
        None without spans."""
        if self.tracing is None:
            return None
        from sharedctx._tracing import Heard

        return Heard()

    def subscriber(
        self, callback: Callable[[ContextEvent], object]
    ) -> Callable[[ContextEvent], object]:
        """A subscriber's ``callback``, run in a span if the context traces."""
        return callback if self.tracing is None else self.tracing.subscriber(callback)

    @property
    def on_read(self) -> Callable[[ContextEvent], None] | None:
        """What a watch calls with each event it hands out (a span), or None."""
        return None if self.tracing is None else self.tracing.received

    @property
    def on_overflow(self) -> Callable[[], None] | None:
        """What a watch calls when it overflows (a metric), or None."""
        return None if self.metrics is None else self.metrics.overflowed
