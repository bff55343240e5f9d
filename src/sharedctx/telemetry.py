"""Telemetry settings: spans (OpenTelemetry), Prometheus metrics and what they record.

``SharedContext(..., telemetry=Telemetry(...))`` says what one context reports; a
context given none takes the process's default (:func:`set_default`). Nothing here
imports OpenTelemetry or ``prometheus_client``: a context looks for them when it
opens (``pip install 'sharedctx[otel]'`` brings both), and without them, or with no
tracer provider configured and no metrics asked for, it does no telemetry work at
all. See ``docs/guides/telemetry.md``.

- Spans: one CLIENT span per public call, when OpenTelemetry's API is imported and a
  tracer provider is set (or ``tracer_provider`` is given) at the moment the context
  opens. A context opened before the provider was set stays untraced: open contexts
  after configuring the SDK.
- Metrics: only when asked for (``metrics=True`` for ``prometheus_client``'s default
  registry, or a ``CollectorRegistry``).
- Keys, patterns and tags are recorded in spans and logs only with
  ``record_keys=True``; values never are.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from sharedctx._errors import ContextError, InvalidArgumentError

if TYPE_CHECKING:
    from opentelemetry.trace import Link, TracerProvider

    from sharedctx._types import ContextEvent

__all__ = ["Telemetry", "default", "exposition", "link_of", "set_default"]


class Telemetry:
    """What a context reports, as spans and metrics (immutable).

    Args:
        record_keys: record keys, glob patterns and tags in span attributes and log
            records (escaped as the CLI shows them). Values are never recorded.
        tracing: False: no spans, even with a tracer provider.
        tracer_provider: an OpenTelemetry ``TracerProvider`` to use instead of the
            global one (``opentelemetry.trace.get_tracer_provider()``).
        metrics: True for Prometheus metrics on ``prometheus_client``'s default
            registry, a ``CollectorRegistry`` for that registry, False for none.

    Give it to ``SharedContext(telemetry=...)``, to ``ContextManager(telemetry=...)``
    (every context it opens), to ``SharedContextStore(session, telemetry=...)``, or
    to :func:`set_default` for every context of the process that gets none.
    """

    __slots__ = ("metrics", "record_keys", "tracer_provider", "tracing")

    record_keys: bool
    tracing: bool
    tracer_provider: TracerProvider | None
    metrics: bool | Any

    def __init__(
        self,
        *,
        record_keys: bool = False,
        tracing: bool = True,
        tracer_provider: TracerProvider | None = None,
        metrics: bool | Any = False,
    ) -> None:
        for name, flag in (("record_keys", record_keys), ("tracing", tracing)):
            if not isinstance(flag, bool):
                raise InvalidArgumentError(f"Telemetry({name}=...) takes a bool, not {flag!r}")
        if tracer_provider is not None and not callable(getattr(tracer_provider, "get_tracer", 0)):
            raise InvalidArgumentError(
                f"tracer_provider must be an OpenTelemetry TracerProvider, not {tracer_provider!r}"
            )
        if not isinstance(metrics, bool) and not callable(getattr(metrics, "register", 0)):
            raise InvalidArgumentError(
                "metrics must be True, False or a prometheus_client CollectorRegistry, "
                f"not {metrics!r}"
            )
        object.__setattr__(self, "record_keys", record_keys)
        object.__setattr__(self, "tracing", tracing)
        object.__setattr__(self, "tracer_provider", tracer_provider)
        object.__setattr__(self, "metrics", metrics)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Telemetry is immutable: make a new one instead of setting {name}")

    def __repr__(self) -> str:
        return (
            f"Telemetry(record_keys={self.record_keys}, tracing={self.tracing}, "
            f"tracer_provider={self.tracer_provider!r}, metrics={self.metrics!r})"
        )


_lock = threading.Lock()
_default = Telemetry()


def set_default(telemetry: Telemetry) -> None:
    """Make ``telemetry`` the settings of every context opened from now on without a
    ``telemetry`` of its own (the contexts already open keep theirs)."""
    global _default
    if not isinstance(telemetry, Telemetry):
        raise InvalidArgumentError(f"set_default takes a Telemetry, not {telemetry!r}")
    with _lock:
        _default = telemetry


def default() -> Telemetry:
    """The settings of a context opened without its own: ``Telemetry()`` (spans when
    a tracer provider is set, no metrics, no keys) unless :func:`set_default` said
    otherwise."""
    return _default


def exposition(registry: Any = None, accept: str | None = None) -> tuple[bytes, str]:
    """The metrics of ``registry`` (default: ``prometheus_client``'s) as a scrape
    answers them: the body and its ``Content-Type``. ``accept`` is the scraper's
    ``Accept`` header (OpenMetrics if it asks for it, else Prometheus's text format).

    For a ``/metrics`` endpoint. Raises ``ContextError`` without ``prometheus_client``
    (``pip install 'sharedctx[otel]'``).
    """
    try:
        from prometheus_client import REGISTRY
        from prometheus_client.exposition import choose_encoder
    except ImportError:
        raise ContextError(
            "metrics need prometheus_client: pip install 'sharedctx[otel]'"
        ) from None
    encode, content_type = choose_encoder(accept or "")
    return encode(REGISTRY if registry is None else registry), content_type


def link_of(event: ContextEvent) -> Link | None:
    """A span link to the traced call that made ``event`` (its ``traceparent``), for
    a span of your own that handles it; None if that call was not traced."""
    if event.traceparent is None:
        return None
    from sharedctx._tracing import link_of as link

    return link(event.traceparent)
