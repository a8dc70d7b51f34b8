"""The one request path every generating surface shares.

``serve(ctx, surface)`` runs, for chat completions, Anthropic messages, Responses
and legacy completions alike::

    read body (limit) ─ parse JSON once ─ surface.decode ─ classify ─ decide
      ─ forward (JSON) ─ surface.encode_response          ─┐
      ─ open_stream + pump (streaming.py) ─ surface encoder ─┴─ _finished (once)

What is per surface lives in its :class:`~interlock.runtime.surfaces.spec.Surface`
(decoder, encoders, error shape); what is here is the same for all: the
``X-Router-*`` headers, the trace (``x_router_trace`` in a JSON body, an SSE
comment before a stream's terminal event), counters, and errors.

Errors: a ``RouterError`` raised before the response started (a bad body, a
413, no candidate, an upstream's own 4xx passed through) is answered here in
the surface's error shape, so the pipeline knows the status it answered with.
An unexpected exception propagates to the app (a 500 in the path's shape);
a client that went away propagates as ``ClientDisconnected``.

``_finished(ctx, routed, outcome)`` runs exactly once per request, in the one
``finally``, for success and every error, streaming or not: the place where
the request record is written (``ctx.state.recorder.record(...)``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from interlock.runtime import streaming
from interlock.runtime.auth import PRINCIPAL, restrict
from interlock.runtime.bodies import ClientDisconnected, parse_object, read_body
from interlock.runtime.buffered import stream_buffered, verify_spec
from interlock.runtime.canonical import CanonicalRequest, Usage
from interlock.runtime.classify import Classification
from interlock.runtime.context import Ctx, Routed, answered, trace_of, upstream_error
from interlock.runtime.decide import Decision, decide
from interlock.runtime.disconnect import race_disconnect
from interlock.runtime.egress import check_body
from interlock.runtime.errors import RequestError, RouterError, UpstreamHTTPError
from interlock.runtime.escalation import buffered
from interlock.runtime.forward import Call, forward
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.responses import send_bytes
from interlock.runtime.state import RuntimeState
from interlock.runtime.surfaces.shapes import ErrorShape
from interlock.runtime.surfaces.spec import Surface, only_wires

_log = logging.getLogger("interlock.pipeline")

__all__ = ["Outcome", "decide_for", "decode", "make_call", "read_json", "route", "send_error",
           "serve"]


@dataclass(slots=True)
class Outcome:
    """How one request ended (filled in as it goes; read by ``_finished``)."""

    surface: str
    status: int = 0
    stream: bool = False
    #: a short machine-readable error kind (``RequestError.code``, exception class, ...)
    error: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    #: the answer's text, kept only when the request log stores prompts (log_prompts)
    answer: str | None = None


async def serve(ctx: Ctx, surface: Surface) -> None:
    """Serve one request of ``surface`` (the endpoint handler body)."""
    state = ctx.state
    state.counters.requests += 1
    outcome = Outcome(surface.name)
    routed: Routed | None = None
    try:
        req = decode(surface, await read_json(ctx), ctx.scope["headers"])
        state.recorder.started(ctx.diag, surface=surface.name, model=req.model,
                               stream=req.stream)
        routed = route(ctx, req)
        if surface.wires is not None:  # e.g. legacy completions: openai wire only
            only_wires(state.table, routed.decision, surface.wires)
        state.recorder.classified(ctx.diag, routed.classification)
        state.recorder.routed(ctx.diag, routed.decision)
        call = make_call(ctx, routed)
        if req.stream:
            outcome.stream = True
            if buffered(call.verify):  # verify_stream: buffer (runtime/escalation.py)
                await race_disconnect(ctx.receive,
                                      stream_buffered(ctx, surface, call, routed, outcome))
            else:
                await streaming.stream(ctx, surface, call, routed, outcome)
        else:
            # a client that goes away cancels the upstream call (issue 8)
            await race_disconnect(ctx.receive, _answer(ctx, surface, call, routed, outcome))
    except ClientDisconnected:
        outcome.error = "client_disconnected"
        raise
    except RouterError as exc:
        if ctx.started:
            outcome.error = type(exc).__name__
            raise
        await send_error(ctx, surface.errors, exc, outcome)
    except BaseException as exc:
        outcome.status = outcome.status or 500
        outcome.error = outcome.error or type(exc).__name__
        raise
    finally:
        _finished(ctx, routed, outcome)


async def _answer(ctx: Ctx, surface: Surface, call: Call, routed: Routed,
                  outcome: Outcome) -> None:
    state = ctx.state
    answer = await forward(state, call)
    model = answer.model
    answered(ctx, model.key, model.provider, model.locality)
    out = surface.encode_response(answer.response, model.key, routed.req)
    if routed.trace:
        out["x_router_trace"] = trace_of(ctx, routed)
    outcome.status = 200
    outcome.usage = answer.response.usage
    outcome.finish_reason = answer.response.finish_reason
    if state.recorder.log_prompts:
        outcome.answer = answer.response.text
    await send_bytes(ctx.send, 200, orjson.dumps(out),
                     diagnostic_headers(ctx.diag, state.table_hash_header))


async def send_error(ctx: Ctx, shape: ErrorShape, exc: RouterError, outcome: Outcome) -> None:
    """Answer ``exc`` (nothing was sent yet) in ``shape``; count it, note it."""
    ctx.state.counters.errors += 1
    outcome.error = str(getattr(exc, "code", None) or type(exc).__name__)
    if isinstance(exc, UpstreamHTTPError):
        outcome.status = await upstream_error(ctx, exc, shape)
        return
    status, body = shape.router_error(exc)
    outcome.status = status
    ctx.started = True
    await send_bytes(ctx.send, status, body,
                     diagnostic_headers(ctx.diag, ctx.state.table_hash_header))


def _finished(ctx: Ctx, routed: Routed | None, outcome: Outcome) -> None:
    """Called exactly once per request that reached ``serve``, whatever happened.

    HOOK for the request record (OBS): ``ctx.state.recorder.record(...)`` goes
    here.  ``routed`` is None when the request failed before it was classified
    (bad body, 413, ...); ``ctx.diag`` holds the attempts, who answered and the
    overhead.  Must not raise and must not block (it runs on the hot path).
    """
    try:
        ctx.state.recorder.record(
            ctx.diag, surface=outcome.surface, status=outcome.status or 500,
            classification=routed.classification if routed is not None else None,
            decision=routed.decision if routed is not None else None,
            req=routed.req if routed is not None else None,
            usage=outcome.usage, error_code=outcome.error, stream=outcome.stream,
            answer=outcome.answer, headers=ctx.scope["headers"],
        )
    except Exception:  # the log must never fail the request it logs
        _log.exception("request record failed")


# -- the steps, also used by other endpoints ------------------------------------------


async def read_json(ctx: Ctx) -> dict[str, Any]:
    """The request body (size-limited), parsed once, as a JSON object."""
    raw = await read_body(ctx.receive, ctx.state.table.server.max_body_bytes,
                          ctx.meta.content_length)
    body = parse_object(raw)
    check_body(body)  # clients never choose the upstream URL or key (issue 8)
    return body


def decode(surface: Surface, body: dict[str, Any], headers: Any) -> CanonicalRequest:
    """The surface's decoder, with any stray exception on client input made a 400."""
    try:
        return surface.decode(body, headers)
    except RequestError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # decode only reads client input: a crash here is bad input it did not name
        raise RequestError(400, f"invalid request body: {exc}", code="invalid_request") from exc


def route(ctx: Ctx, req: CanonicalRequest) -> Routed:
    """Classify and decide ``req``; note the cell and reason in the diagnostics."""
    state = ctx.state
    cls = state.classifier.classify(req, header_private=ctx.meta.private)
    ctx.diag.cell = cls.cell
    ctx.diag.request_tags = cls.tags
    decision = decide_for(state, cls, req)
    # a client key scoped to some models drops the others (issue 8)
    decision = restrict(ctx.scope.get(PRINCIPAL), decision)
    ctx.diag.reason = decision.reason
    return Routed(req, cls, decision, cls.sensitivity == "private", ctx.meta.trace or req.trace)


def decide_for(state: RuntimeState, cls: Classification, req: CanonicalRequest) -> Decision:
    """decide() with the health predicate; if health alone emptied the chain, decide
    again without it (better to try a provider that failed recently than none)."""
    latency = state.latency.expected_ms
    decision = decide(state.table, cls, req, healthy=state.health.healthy, latency=latency)
    if not decision.candidates and decision.filtered:
        retry = decide(state.table, cls, req, latency=latency)
        if retry.candidates:
            return retry
    return decision


def make_call(ctx: Ctx, routed: Routed) -> Call:
    """The forwarding context for ``routed`` (deadline, attempts, retry cap)."""
    server = ctx.state.table.server
    return Call(
        req=routed.req,
        candidates=routed.decision.candidates,
        private=routed.private,
        deadline=time.monotonic() + ctx.state.deadline_s,
        diag=ctx.diag,
        max_attempts=server.max_attempts,
        retry_after_cap_s=server.retry_after_cap_ms / 1000.0,
        verify=verify_spec(routed),
    )
