"""The per-request context the endpoint handlers share, and the steps common to
the JSON and the streaming paths of every surface (recording who answered,
passing an upstream's own error through, attaching the trace)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from interlock.runtime.asgi_types import Receive, Scope, Send
from interlock.runtime.canonical import CanonicalRequest
from interlock.runtime.classify import Classification
from interlock.runtime.decide import Decision
from interlock.runtime.errors import UpstreamHTTPError
from interlock.runtime.headers import RequestMeta, diagnostic_headers
from interlock.runtime.responses import send_bytes
from interlock.runtime.state import RuntimeState
from interlock.runtime.surfaces.shapes import OPENAI_ERRORS, ErrorShape
from interlock.runtime.trace import Diagnostics, build_trace


@dataclass(slots=True)
class Ctx:
    state: RuntimeState
    scope: Scope
    receive: Receive
    send: Send
    meta: RequestMeta
    diag: Diagnostics
    #: True once http.response.start went out (errors can no longer be a response)
    started: bool = False


Handler = Callable[[Ctx], Awaitable[None]]


@dataclass(slots=True)
class Routed:
    """A request decoded, classified and decided."""

    req: CanonicalRequest
    classification: Classification
    decision: Decision
    private: bool
    trace: bool


def answered(ctx: Ctx, key: str, provider: str, locality: str) -> None:
    """Record who answered (headers, counters); note a fallback in the reason."""
    diag = ctx.diag
    diag.provider = provider
    diag.model = key
    counters = ctx.state.counters
    attempts = diag.attempts
    # the common case is one attempt: no fallback possible, nothing to count
    if len(attempts) > 1:
        tried = sum(1 for a in attempts if a.outcome != "skipped")
        if tried > 1:
            counters.fallbacks += 1
            diag.reason = f"{diag.reason}; fallback after {tried - 1} failed attempt(s)"
    if locality == "local":
        counters.local += 1
    else:
        counters.cloud += 1


async def upstream_error(ctx: Ctx, exc: UpstreamHTTPError,
                         shape: ErrorShape = OPENAI_ERRORS) -> int:
    """A non-retryable upstream error (400/401/403/404/422...) keeps its status; a
    body already in the client's shape goes back as it came, any other (an Ollama
    ``{"error": "..."}``) is re-wrapped by ``shape``.  Returns the status sent."""
    ctx.diag.provider = exc.provider
    last = ctx.diag.attempts[-1] if ctx.diag.attempts else None
    ctx.diag.model = last.model if last is not None else exc.model
    ctx.diag.reason = f"{ctx.diag.reason}; upstream answered {exc.status}"
    headers = diagnostic_headers(ctx.diag, ctx.state.table_hash_header)
    status, body = shape.upstream(exc)
    ctx.started = True
    await send_bytes(ctx.send, status, body, headers)
    return status


def trace_of(ctx: Ctx, routed: Routed) -> dict[str, Any]:
    return build_trace(ctx.state.table_hash, routed.classification, routed.decision, ctx.diag)


def trace_comment(trace: dict[str, Any]) -> bytes:
    """The trace as one SSE comment line (skipped by SSE parsers)."""
    return b": x_router_trace " + orjson.dumps(trace) + b"\n\n"
