"""Buffered streams: a streaming request whose cell verifies streams (``verify_stream:
buffer``) is answered whole, verified, escalated if need be, then streamed out.

The upstream call is a plain (non-streaming) one - the whole answer is needed
before a verdict anyway - and the verified answer is replayed through the
surface's own stream encoder, so the client sees an ordinary stream in its
format (chat: ``chat.completion.chunk`` events and ``[DONE]``; messages: the
event sequence).  Nothing reaches the client before the verdict, so a failed
answer can still be replaced, and any error before that is an ordinary error
response.  The price is time to first token: it becomes the whole answer's time.

With ``verify_stream: pass`` (the default) streams do not come here: they are
forwarded as they arrive and are not verified (``streaming.py``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from interlock.runtime.context import Ctx, Routed, answered, trace_comment, trace_of
from interlock.runtime.escalation import VerifySpec, replay, unstreamed
from interlock.runtime.forward import Call, forward
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.responses import SSE
from interlock.runtime.surfaces.spec import Surface

if TYPE_CHECKING:
    from interlock.runtime.pipeline import Outcome

_SSE_HEADERS = [(b"content-type", SSE), (b"cache-control", b"no-cache")]

# VerifySpec per (id(policy), task, complexity).  A spec holds its policy, so the id
# of a cached policy cannot be reused by another object while the entry lives; the
# few specs of a table (cells x tasks x complexities) are kept, and the lot is
# dropped when reloaded tables have piled up more than _SPECS_MAX.
_SPECS: dict[tuple[int, str, str], VerifySpec] = {}
_SPECS_MAX = 4096


def verify_spec(routed: Routed) -> VerifySpec:
    """The verification layer's view of the routed request's cell."""
    cls = routed.classification
    policy = routed.decision.cell.policy
    key = (id(policy), cls.task, cls.complexity)
    spec = _SPECS.get(key)
    if spec is None:
        if len(_SPECS) >= _SPECS_MAX:
            _SPECS.clear()
        spec = _SPECS[key] = VerifySpec(policy, cls.task, cls.complexity)
    return spec


async def stream_buffered(ctx: Ctx, surface: Surface, call: Call, routed: Routed,
                          outcome: Outcome) -> None:
    """Answer a streaming request from a verified, complete answer."""
    state = ctx.state
    call = dataclasses.replace(call, req=unstreamed(call.req))
    answer = await forward(state, call)
    model = answer.model
    answered(ctx, model.key, model.provider, model.locality)
    ctx.diag.freeze()
    encoder = surface.stream_encoder(routed.req, model.key)
    headers = diagnostic_headers(ctx.diag, state.table_hash_header)
    headers.extend(_SSE_HEADERS)
    body = b"".join(encoder.encode(d) for d in replay(answer.response))
    comment = trace_comment(trace_of(ctx, routed)) if routed.trace else b""
    body += encoder.close(comment)
    outcome.status = 200
    outcome.usage = encoder.usage
    outcome.finish_reason = encoder.finish_reason
    await ctx.send({"type": "http.response.start", "status": 200, "headers": headers})
    ctx.started = True
    await ctx.send({"type": "http.response.body", "body": body, "more_body": False})
