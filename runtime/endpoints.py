"""The HTTP endpoints: the generating surfaces, models, route (dry run), healthz, readyz.

Each handler takes one :class:`Ctx` (the state, the ASGI triple, the scanned
request headers and the request's :class:`Diagnostics`) and sends exactly one
response.  The generating endpoints (``POST /v1/chat/completions`` and the other
surfaces) all run the generic pipeline (``interlock.runtime.pipeline.serve``)
with their :class:`~interlock.runtime.surfaces.spec.Surface`::

    read body (limit) ─ parse JSON once ─ decode (surface) ─ classify ─ decide
      ─ forward (JSON) / open_stream + pump (SSE) ─ encode (surface)

A ``RouterError`` raised by the other handlers before a response started is
answered by the app in the error shape of the path's API.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import orjson
from interlock.runtime import pipeline
from interlock.runtime.canonical import CanonicalRequest
from interlock.runtime.context import Ctx, Handler, Routed
from interlock.runtime.errors import RequestError
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.latency import OUT_TOKENS
from interlock.runtime.pipeline import decide_for, read_json
from interlock.runtime.responses import send_bytes
from interlock.runtime.state import RuntimeState
from interlock.runtime.surfaces import chat as chat_surface
from interlock.runtime.trace import build_trace

__all__ = ["Ctx", "Handler", "chat_completions", "decide_for", "healthz", "models", "readyz",
           "route"]


# -- the generating surfaces ---------------------------------------------------------


#: ``POST /v1/chat/completions``: the pipeline with the chat surface.  A partial, not
#: a coroutine that awaits ``serve``: every resumption of the request (each upstream
#: read) would pass through that extra frame.
chat_completions: Handler = partial(pipeline.serve, surface=chat_surface.CHAT)


def decode_chat(body: dict[str, Any]) -> CanonicalRequest:
    """The chat decoder, with any stray exception on client input made a 400."""
    return pipeline.decode(chat_surface.CHAT, body, ())


def _route(ctx: Ctx, req: CanonicalRequest) -> Routed:
    return pipeline.route(ctx, req)


# -- the rest ------------------------------------------------------------------------


async def models(ctx: Ctx) -> None:
    state = ctx.state
    await send_bytes(
        ctx.send, 200, state.models_body, diagnostic_headers(ctx.diag, state.table_hash_header)
    )


async def route(ctx: Ctx) -> None:
    """A dry run: classification, decision and explanation; no model is called."""
    state = ctx.state
    body = await read_json(ctx)
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
    out["latency"] = live_latency(state, routed)
    await send_bytes(
        ctx.send, 200, orjson.dumps(out), diagnostic_headers(ctx.diag, state.table_hash_header)
    )


def live_latency(state: RuntimeState, routed: Routed) -> dict[str, Any]:
    """The live latency figures of the candidates (INTEL; runtime/latency.py) and the
    latency budget step decide() took with them."""
    cell = routed.decision.cell
    out_tokens = OUT_TOKENS.get(cell.complexity or "medium", 400)
    keys = [c.model for c in routed.decision.candidates]
    return {"figures": state.latency.snapshot(keys, out_tokens=out_tokens),
            "budget": routed.decision.latency}


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
