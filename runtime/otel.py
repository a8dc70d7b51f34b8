"""Optional OpenTelemetry spans for each request, after the GenAI semantic conventions.

Install the extra (``pip install 'interlock[otel]'``) and configure a tracer
provider the usual way (an SDK ``TracerProvider`` with an exporter, e.g. via
``opentelemetry-instrument`` or your own start-up code); without the package
:func:`span_sink` returns ``None`` and nothing happens.

Spans are built from the request records on the store's sink thread, with the
records' own timestamps - the request path pays nothing:

* one ``SERVER`` span per request, named ``{gen_ai.operation.name}
  {gen_ai.request.model}`` (e.g. ``chat auto``), with ``gen_ai.operation.name``,
  ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.provider.name``,
  ``gen_ai.usage.input_tokens`` / ``output_tokens``, ``error.type`` on failure,
  and the router's own ``interlock.*`` attributes (cell, locality, cost, savings,
  table hash, fallback, escalation);
* one ``CLIENT`` child span per upstream attempt, named ``chat {model}``, with
  ``gen_ai.provider.name``, ``gen_ai.request.model``, ``interlock.attempt.role``
  and ``outcome``.  Attempts run one after another; their start times are placed
  back to back after the router's own overhead (the record keeps each attempt's
  duration, not its start), so the waterfall is faithful to within that overhead.

Spans are not linked to an incoming ``traceparent`` (they are made after the fact).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interlock.runtime.record import RequestRecord

_OPERATIONS = {"chat": "chat", "messages": "chat", "responses": "chat",
               "completions": "text_completion", "embeddings": "embeddings"}


class SpanSink:
    """Turns each written batch of records into spans on ``tracer``."""

    def __init__(self, tracer: Any, trace_api: Any, *, global_provider: bool = False) -> None:
        self._tracer = tracer
        self._trace = trace_api
        self._global = global_provider

    @property
    def active(self) -> bool:
        """False while no SDK is configured (the global provider is still the API's
        proxy): every span would be a no-op, so the store does not hand batches over -
        its sink thread never starts, and the worker's GIL is not shared with it."""
        return not (self._global and isinstance(self._trace.get_tracer_provider(),
                                                self._trace.ProxyTracerProvider))

    def __call__(self, batch: list[RequestRecord]) -> None:
        if not self.active:
            return  # no SDK configured (yet): skip the work
        for rec in batch:
            self._request(rec)

    def _request(self, rec: RequestRecord) -> None:
        kind = self._trace.SpanKind
        start = int(rec.ts * 1e9)
        end = start + int(rec.latency_ms * 1e6)
        op = _OPERATIONS.get(rec.surface, "chat")
        requested = rec.requested_model or "auto"
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.request.model": requested,
            "interlock.request.id": rec.id,
            "interlock.surface": rec.surface,
            "interlock.table": rec.table_hash,
            "interlock.fallback": rec.fallback,
            "interlock.escalated": rec.escalated,
            "http.response.status_code": rec.status,
        }
        optional = {
            "gen_ai.response.model": rec.model,
            "gen_ai.provider.name": rec.provider,
            "interlock.cell": rec.cell,
            "interlock.locality": rec.locality,
            "error.type": rec.error_code if rec.status >= 400 else None,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        if rec.model is not None:
            attrs["gen_ai.usage.input_tokens"] = rec.tokens_in
            attrs["gen_ai.usage.output_tokens"] = rec.tokens_out
            attrs["interlock.cost_usd"] = rec.cost_usd
            attrs["interlock.saved_usd"] = rec.saved_usd
        span = self._tracer.start_span(f"{op} {requested}", kind=kind.SERVER,
                                       start_time=start, attributes=attrs)
        if rec.status >= 400:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                               rec.error_code or str(rec.status)))
        ctx = self._trace.set_span_in_context(span)
        t = start + int(rec.overhead_ms * 1e6)
        for a in rec.attempts:
            dur = int(float(a.get("latency_ms") or 0.0) * 1e6)
            child = self._tracer.start_span(
                f"{op} {a['model']}", context=ctx, kind=kind.CLIENT, start_time=t,
                attributes={"gen_ai.operation.name": op, "gen_ai.provider.name": a["provider"],
                            "gen_ai.request.model": a["model"],
                            "interlock.attempt.role": a["role"],
                            "interlock.attempt.outcome": a["outcome"]})
            if a["outcome"] == "error":
                child.set_attribute("error.type", str(a.get("status") or "error"))
                child.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                                    str(a.get("error") or "")))
            child.end(end_time=t + dur)
            t += dur
        span.end(end_time=max(end, t))


def span_sink(tracer_provider: Any = None) -> Callable[[list[RequestRecord]], None] | None:
    """A sink for the store that emits spans, or None when OpenTelemetry is absent.

    ``tracer_provider`` defaults to the global one (``trace.get_tracer_provider()``).
    """
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    return SpanSink(provider.get_tracer("interlock"), trace,
                    global_provider=tracer_provider is None)
