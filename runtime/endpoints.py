"""The HTTP endpoints: chat completions, models, route (dry run), healthz, readyz.

Each handler takes one :class:`Ctx` (the state, the ASGI triple, the scanned
request headers and the request's :class:`Diagnostics`) and sends exactly one
response.  ``RouterError`` raised before a response started is turned into
OpenAI's error shape by the app; handlers only deal with the happy path and the
upstream's own non-retryable errors, which go back to the client as they came.

The request path of ``POST /v1/chat/completions``::

    read body (limit) ─ parse JSON once ─ decode (surface) ─ check model name
      ─ classify ─ decide ─ forward (JSON) / open_stream + pump (SSE) ─ encode
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from interlock.runtime import streaming
from interlock.runtime.bodies import parse_object, read_body
from interlock.runtime.canonical import CanonicalRequest
from interlock.runtime.classify import Classification
from interlock.runtime.context import (
    Ctx,
    Handler,
    Routed,
    answered,
    trace_of,
    upstream_error,
)
from interlock.runtime.decide import Decision, decide
from interlock.runtime.errors import RequestError, UpstreamHTTPError
from interlock.runtime.forward import Call, forward
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.responses import send_bytes
from interlock.runtime.state import RuntimeState
from interlock.runtime.surfaces import chat as chat_surface
from interlock.runtime.trace import build_trace

__all__ = ["Ctx", "Handler", "chat_completions", "healthz", "models", "readyz", "route"]


# -- chat completions ------------------------------------------------------------------


async def chat_completions(ctx: Ctx) -> None:
    state = ctx.state
    state.counters.requests += 1
    body = parse_object(await _body(ctx))
    routed = _route(ctx, decode_chat(body))
    call = _call(ctx, routed)
    if routed.req.stream:
        await streaming.stream_chat(ctx, call, routed)
        return
    try:
        answer = await forward(state, call)
    except UpstreamHTTPError as exc:
        await upstream_error(ctx, exc)
        return
    answered(ctx, answer.model.key, answer.model.provider, answer.model.locality)
    out = chat_surface.encode_chat_response(answer.response, model_name=answer.model.key)
    if routed.trace:
        out["x_router_trace"] = trace_of(ctx, routed)
    await send_bytes(ctx.send, 200, orjson.dumps(out),
                     diagnostic_headers(ctx.diag, state.table_hash_header))


def decode_chat(body: dict[str, Any]) -> CanonicalRequest:
    """The surface's decoder, with any stray exception on client input made a 400."""
    try:
        return chat_surface.decode_chat(body)
    except RequestError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # decode only reads client input: a crash here is bad input it did not name
        raise RequestError(400, f"invalid request body: {exc}", code="invalid_request") from exc


def _route(ctx: Ctx, req: CanonicalRequest) -> Routed:
    state = ctx.state
    cls = state.classifier.classify(req, header_private=ctx.meta.private)
    ctx.diag.cell = cls.cell
    decision = decide_for(state, cls, req)
    ctx.diag.reason = decision.reason
    return Routed(req, cls, decision, cls.sensitivity == "private", ctx.meta.trace or req.trace)


def decide_for(state: RuntimeState, cls: Classification, req: CanonicalRequest) -> Decision:
    """decide() with the health predicate; if health alone emptied the chain, decide
    again without it (better to try a provider that failed recently than none)."""
    decision = decide(state.table, cls, req, healthy=state.health.healthy)
    if not decision.candidates and decision.filtered:
        retry = decide(state.table, cls, req)
        if retry.candidates:
            return retry
    return decision


def _call(ctx: Ctx, routed: Routed) -> Call:
    server = ctx.state.table.server
    return Call(
        req=routed.req,
        candidates=routed.decision.candidates,
        private=routed.private,
        deadline=time.monotonic() + ctx.state.deadline_s,
        diag=ctx.diag,
        max_attempts=server.max_attempts,
        retry_after_cap_s=server.retry_after_cap_ms / 1000.0,
    )


async def _body(ctx: Ctx) -> bytes:
    return await read_body(
        ctx.receive, ctx.state.table.server.max_body_bytes, ctx.meta.content_length
    )


# -- the rest ------------------------------------------------------------------------


async def models(ctx: Ctx) -> None:
    state = ctx.state
    await send_bytes(
        ctx.send, 200, state.models_body, diagnostic_headers(ctx.diag, state.table_hash_header)
    )


async def route(ctx: Ctx) -> None:
    """A dry run: classification, decision and explanation; no model is called."""
    state = ctx.state
    body = parse_object(await _body(ctx))
    if "messages" not in body and "prompt" in body:
        prompt = body.pop("prompt")
        if not isinstance(prompt, str):
            raise RequestError(400, "'prompt' must be a string", param="prompt",
                               code="invalid_type")
        body["messages"] = [{"role": "user", "content": prompt}]
    routed = _route(ctx, decode_chat(body))
    decision = routed.decision
    first = decision.candidates[0] if decision.candidates else None
    if first is not None:
        ctx.diag.provider = first.provider
        ctx.diag.model = first.model
    refused = routed.private and not any(c.local for c in decision.candidates)
    out = build_trace(state.table_hash, routed.classification, decision)
    out["cell"] = routed.classification.cell
    out["private"] = routed.private
    out["model"] = first.model if first is not None else None
    out["provider"] = first.provider if first is not None else None
    out["refused"] = refused
    out["explanation"] = _explain(routed, first, refused)
    await send_bytes(
        ctx.send, 200, orjson.dumps(out), diagnostic_headers(ctx.diag, state.table_hash_header)
    )


def _explain(routed: Routed, first: Any, refused: bool) -> str:
    cls, decision = routed.classification, routed.decision
    head = f"cell {cls.cell}: {decision.reason}"
    if refused:
        return head + "; refused: the request is private and no local model can serve it"
    if first is None:
        return head + "; no candidate can serve this request"
    rest = len(decision.candidates) - 1
    tail = f" ({rest} more in the chain)" if rest else ""
    return f"{head}; would call {first.model} ({'local' if first.local else 'cloud'}){tail}"


async def healthz(ctx: Ctx) -> None:
    state = ctx.state
    snap = state.health.snapshot()
    snap["table"] = state.table_hash
    snap["uptime_s"] = round(time.time() - state.started, 3)
    status = 503 if snap["status"] == "error" else 200
    await send_bytes(
        ctx.send, status, orjson.dumps(snap),
        diagnostic_headers(ctx.diag, state.table_hash_header),
    )


async def readyz(ctx: Ctx) -> None:
    state = ctx.state
    body = orjson.dumps({"ready": True, "table": state.table_hash,
                         "profile": state.table.profile})
    await send_bytes(ctx.send, 200, body, diagnostic_headers(ctx.diag, state.table_hash_header))
