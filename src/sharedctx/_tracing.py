"""Spans of a context's calls, with OpenTelemetry's API (the ``otel`` extra).

Imported only when a context that traces opens (see ``_telemetry``). Each public
call is one CLIENT span following OpenTelemetry's database conventions: named by
the call (``set``, ``get``, ``wait_for``...; not by the session id, whose cardinality
is unbounded), with ``db.system.name`` ``"sharedctx"``, ``db.operation.name``,
``db.namespace`` (the session id), ``sharedctx.backend``, ``sharedctx.outcome`` and,
on failure, ``error.type`` and an error status (never the exception's message, which
may name a key). Keys, patterns and tags are attributes only with ``record_keys``;
values never.

A write made in a span records the span's context (W3C ``traceparent``) with its
change (``ops.CHANGES``): every process that hears of the change gets it in the
event. A subscriber callback then runs in a CONSUMER span linked to the write's, a
watch delivers each event with an instant CONSUMER span so linked, and a wait returns
in a span linked to every write whose change it heard and whose entry it returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from importlib import metadata
from typing import Any, TypeVar

from msgspec.structs import replace
from opentelemetry import trace
from opentelemetry.context import attach, detach
from opentelemetry.trace import (
    Link,
    Span,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sharedctx import steps
from sharedctx._outcomes import error_type, failure, outcome
from sharedctx._printable import printable
from sharedctx._types import ContextEntry, ContextEvent
from sharedctx.backends.ops import CHANGES, GetMany, Operation, WriteMany

__all__ = [
    "BACKEND",
    "KEY",
    "KEYS",
    "OUTCOME",
    "PATTERN",
    "TAG",
    "Heard",
    "Tracing",
    "link_of",
    "traceparent_of",
    "provider_of",
]

T = TypeVar("T")

SCOPE = "sharedctx"
"""The instrumentation scope of sharedctx's spans."""
try:
    _VERSION: str | None = metadata.version("sharedctx")
except metadata.PackageNotFoundError:  # run from a source tree
    _VERSION = None
BACKEND = "sharedctx.backend"
OUTCOME = "sharedctx.outcome"
KEY = "sharedctx.key"
KEYS = "sharedctx.keys"
PATTERN = "sharedctx.pattern"
TAG = "sharedctx.tag"

_SUBJECTS = {"key": KEY, "keys": KEYS, "pattern": PATTERN}
"""The attribute of each subject a multi-step call names (``Tracing.run``)."""
_CLIENT, _CONSUMER = SpanKind.CLIENT, SpanKind.CONSUMER
_ERROR = Status(StatusCode.ERROR)
_PROPAGATOR = TraceContextTextMapPropagator()
_SILENT: dict[str, Any] = {"record_exception": False, "set_status_on_exception": False}
"""Exceptions are recorded by their type only (their message may name a key)."""


def provider_of(tracing: bool, provider: TracerProvider | None) -> TracerProvider | None:
    """The provider a context traces with: ``provider``, else the global one if the
    SDK (or another implementation) set it; None: no spans."""
    if not tracing:
        return None
    if provider is not None:
        return provider
    found = trace.get_tracer_provider()
    if isinstance(found, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None  # nothing configured: the API's stand-ins
    return found


def traceparent_of(span: Span) -> str | None:
    """The W3C traceparent of ``span`` (what the propagator would send for it, made
    here from the span in hand: a traced write's hot path), or None if it has no
    valid context."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    trace_id, span_id = (
        trace.format_trace_id(context.trace_id),
        trace.format_span_id(context.span_id),
    )
    return f"00-{trace_id}-{span_id}-{context.trace_flags:02x}"


def link_of(traceparent: str) -> Link | None:
    """A link to the span that ``traceparent`` names; None if it names none."""
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return Link(span_context) if span_context.is_valid else None


class Heard:
    """The trace contexts of the changes a wait heard of, by key and revision, so that
    its span links to the writes of the entries it returns (filled from the threads
    that deliver the events)."""

    __slots__ = ("_contexts",)

    def __init__(self) -> None:
        self._contexts: dict[tuple[str, int], str] = {}

    def hear(self, event: ContextEvent) -> None:
        """A subscription callback: note the event's trace context, if any."""
        if event.traceparent is not None:
            self._contexts[(event.key, event.revision)] = event.traceparent

    def links(self, result: object) -> list[Link]:
        """Links to the writes of the entries of ``result`` (a wait's) that it heard."""
        contexts = self._contexts
        if not contexts:
            return []
        entries: Iterable[Any] = result.values() if isinstance(result, Mapping) else result  # type: ignore[assignment]
        links = []
        for entry in entries:
            if isinstance(entry, ContextEntry):
                traceparent = contexts.get((entry.key, entry.revision))
                link = None if traceparent is None else link_of(traceparent)
                if link is not None:
                    links.append(link)
        return links


def _failed(span: Span, error: BaseException) -> None:
    span.set_attribute(OUTCOME, failure(error))
    span.set_attribute("error.type", error_type(error))
    span.set_status(_ERROR)


class Tracing:
    """The spans of one context (see the module docstring)."""

    def __init__(
        self, provider: TracerProvider, session_id: str, backend: str, record_keys: bool
    ) -> None:
        self._tracer = provider.get_tracer(SCOPE, _VERSION)
        self._record_keys = record_keys
        self._base: dict[str, Any] = {
            "db.system.name": "sharedctx",
            "db.namespace": session_id,
            BACKEND: backend,
        }

    # -- calls ---------------------------------------------------------------------

    def _attributes(self, name: str, operation: Operation[Any] | None) -> dict[str, Any]:
        attributes = {**self._base, "db.operation.name": name}
        if operation is not None:
            size = 0
            if isinstance(operation, GetMany):
                size = len(operation.keys)
            elif isinstance(operation, WriteMany):
                size = len(operation.items)
            if size > 1:  # a batch, by the conventions: two operations or more
                attributes["db.operation.batch.size"] = size
            if self._record_keys:
                attributes.update(_subject(operation))
        return attributes

    def call(
        self, operation: Operation[T], execute: Callable[[Any], T], name: str | None = None
    ) -> T:
        # The span is made current by hand: start_as_current_span's two context
        # managers cost as much as the rest of the span here.
        name = name or operation.name
        span = self._tracer.start_span(
            name, kind=_CLIENT, attributes=self._attributes(name, operation)
        )
        token = attach(set_span_in_context(span))
        try:
            if operation.__class__ in CHANGES:
                operation = replace(operation, traceparent=traceparent_of(span))
            result = execute(operation)
            span.set_attribute(OUTCOME, outcome(operation, result))
        except BaseException as error:
            _failed(span, error)
            raise
        finally:
            detach(token)
            span.end()
        return result

    async def acall(
        self,
        operation: Operation[T],
        aexecute: Callable[[Any], Awaitable[T]],
        name: str | None = None,
    ) -> T:
        """Awaitable twin of :meth:`call`."""
        name = name or operation.name
        span = self._tracer.start_span(
            name, kind=_CLIENT, attributes=self._attributes(name, operation)
        )
        token = attach(set_span_in_context(span))
        try:
            if operation.__class__ in CHANGES:
                operation = replace(operation, traceparent=traceparent_of(span))
            result = await aexecute(operation)
            span.set_attribute(OUTCOME, outcome(operation, result))
        except BaseException as error:
            _failed(span, error)
            raise
        finally:
            detach(token)
            span.end()
        return result

    def _subject(self, name: str, subject: Mapping[str, Any] | None) -> dict[str, Any]:
        attributes = self._attributes(name, None)
        if subject and self._record_keys:
            named = {_SUBJECTS[what]: value for what, value in subject.items() if value is not None}
            attributes.update(_escaped(named))
        return attributes

    def run(
        self,
        name: str,
        calls: steps.Steps[T],
        execute: Callable[[Any], Any],
        subject: Mapping[str, Any] | None = None,
        heard: Heard | None = None,
    ) -> T:
        """Perform a multi-step call in one span: its writes carry the span's context,
        and a wait's span links to the writes it ``heard``. ``subject``: the ``key``,
        ``keys`` or ``pattern`` it names (attributes with ``record_keys``)."""

        with self._tracer.start_as_current_span(
            name, kind=_CLIENT, attributes=self._subject(name, subject), **_SILENT
        ) as span:
            context = traceparent_of(span)

            def traced(operation: Any) -> Any:
                if operation.__class__ in CHANGES:
                    operation = replace(operation, traceparent=context)
                return execute(operation)

            try:
                result = steps.run(calls, traced)
            except BaseException as error:
                _failed(span, error)
                raise
            self._finish(span, result, heard)
            return result

    async def arun(
        self,
        name: str,
        calls: steps.Steps[T],
        aexecute: Callable[[Any], Awaitable[Any]],
        subject: Mapping[str, Any] | None = None,
        heard: Heard | None = None,
    ) -> T:
        """Awaitable twin of :meth:`run`."""

        with self._tracer.start_as_current_span(
            name, kind=_CLIENT, attributes=self._subject(name, subject), **_SILENT
        ) as span:
            context = traceparent_of(span)

            async def traced(operation: Any) -> Any:
                if operation.__class__ in CHANGES:
                    operation = replace(operation, traceparent=context)
                return await aexecute(operation)

            try:
                result = await steps.arun(calls, traced)
            except BaseException as error:
                _failed(span, error)
                raise
            self._finish(span, result, heard)
            return result

    @staticmethod
    def _finish(span: Span, result: object, heard: Heard | None) -> None:
        span.set_attribute(OUTCOME, "ok")
        if heard is not None:
            for link in heard.links(result):
                span.add_link(link.context)

    # -- the change feed -------------------------------------------------------------

    def _event_attributes(self, event: ContextEvent) -> dict[str, Any]:
        attributes = {
            **self._base,
            "sharedctx.action": event.action,
            "sharedctx.revision": event.revision,
        }
        if self._record_keys:
            attributes[KEY] = printable(event.key)
        return attributes

    def subscriber(
        self, callback: Callable[[ContextEvent], object]
    ) -> Callable[[ContextEvent], object]:
        """``callback`` run in a CONSUMER span linked to the write of its event."""
        tracer = self._tracer

        def traced(event: ContextEvent) -> object:
            link = None if event.traceparent is None else link_of(event.traceparent)
            with tracer.start_as_current_span(
                "subscriber",
                kind=_CONSUMER,
                attributes=self._event_attributes(event),
                links=None if link is None else [link],
                **_SILENT,
            ) as span:
                try:
                    return callback(event)
                except BaseException as error:
                    _failed(span, error)
                    raise

        return traced

    def received(self, event: ContextEvent) -> None:
        """A watch hands ``event`` to its reader: an instant CONSUMER span, a child of
        the reader's current span, linked to the write of the event."""
        link = None if event.traceparent is None else link_of(event.traceparent)
        span = self._tracer.start_span(
            "watch event",
            kind=_CONSUMER,
            attributes=self._event_attributes(event),
            links=None if link is None else [link],
        )
        span.end()


def _subject(operation: Operation[Any]) -> dict[str, Any]:
    """The keys, pattern or tag an operation names, as attributes (escaped)."""
    found: dict[str, Any] = {}
    key = getattr(operation, "key", None)
    if isinstance(key, str):
        found[KEY] = key
    keys = getattr(operation, "keys", None)
    if isinstance(keys, tuple):
        found[KEYS] = list(keys)
    items = getattr(operation, "items", None)
    if isinstance(items, tuple):
        found[KEYS] = [write.key for write in items]
    glob = getattr(operation, "glob", None)
    if glob is None:
        subscription = getattr(operation, "subscription", None)
        glob = None if subscription is None else subscription.glob
    if glob is not None:
        found[PATTERN] = glob.pattern
    tag = getattr(operation, "tag", None)
    if isinstance(tag, str):
        found[TAG] = tag
    return _escaped(found)


def _escaped(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: printable(value) if isinstance(value, str) else [printable(v) for v in value]
        for name, value in attributes.items()
    }
