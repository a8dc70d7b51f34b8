"""Streaming answers (SSE) for every surface: commit on the first delta, never
truncate silently.

1. ``open_stream`` walks the candidates until one yields a first delta; until
   then nothing has been sent, so every failure can still fall back (and an
   upstream's own 4xx propagates to the pipeline, which answers it normally).
2. The status line, the ``X-Router-*`` headers (``X-Router-Overhead-Ms`` frozen at
   that moment) and the first events go out together.
3. The rest is pumped through the surface's :class:`StreamEncoder` under the
   request's deadline.  A failure from here on cannot change the status: the
   encoder's ``fail`` ends the stream with an in-band error in the client's
   format (chat completions: ``data: {"error": {...}}`` then ``data: [DONE]``,
   which the OpenAI SDK raises as an APIError; messages: an ``error`` event).
   The attempt is re-recorded as failed.
4. With tracing on, the trace goes as one SSE comment line just before the
   stream's terminal event.

The upstream iterator is always closed (``aclose``), also when the client went
away, so the upstream connection is released.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from interlock.runtime.asgi_types import RawHeaders
from interlock.runtime.context import Ctx, Routed, answered, trace_comment, trace_of
from interlock.runtime.disconnect import cancel_on_disconnect
from interlock.runtime.errors import UpstreamError, UpstreamTimeout
from interlock.runtime.forward import Call, OpenStream, open_stream, stream_failed
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.responses import SSE
from interlock.runtime.surfaces.spec import StreamEncoder, Surface

if TYPE_CHECKING:
    from interlock.runtime.pipeline import Outcome

_SSE_HEADERS = [(b"content-type", SSE), (b"cache-control", b"no-cache")]


async def stream(ctx: Ctx, surface: Surface, call: Call, routed: Routed,
                 outcome: Outcome) -> None:
    """Open a stream along the candidates and pump it to the client."""
    state = ctx.state
    opened = await open_stream(state, call)
    model = opened.model
    answered(ctx, model.key, model.provider, model.locality)
    ctx.diag.freeze()
    encoder = surface.stream_encoder(routed.req, model.key)
    headers = diagnostic_headers(ctx.diag, state.table_hash_header)
    headers.extend(_SSE_HEADERS if surface.media_type == SSE else
                   [(b"content-type", surface.media_type), (b"cache-control", b"no-cache")])
    it = opened.rest
    try:
        async with cancel_on_disconnect(ctx.receive):
            await _pump(ctx, call, routed, opened, encoder, headers, outcome)
    finally:
        outcome.usage = encoder.usage
        outcome.finish_reason = encoder.finish_reason
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


async def _pump(ctx: Ctx, call: Call, routed: Routed, opened: OpenStream,
                encoder: StreamEncoder, headers: RawHeaders, outcome: Outcome) -> None:
    send, state, model, it = ctx.send, ctx.state, opened.model, opened.rest
    first_at = time.perf_counter()  # the first delta just arrived (live latency)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    ctx.started = True
    outcome.status = 200
    if opened.first is not None:
        first = encoder.encode(opened.first)
        if first:
            await send({"type": "http.response.body", "body": first, "more_body": True})
    failure: UpstreamError | None = None
    try:
        async with asyncio.timeout(call.deadline - time.monotonic()):
            async for delta in it:
                chunk = encoder.encode(delta)
                if chunk:
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
    except TimeoutError:
        failure = UpstreamTimeout(model.provider, model.upstream_id, "deadline exceeded")
    except UpstreamError as exc:
        failure = exc
    if failure is not None:
        stream_failed(state, opened.attempt, failure)
        outcome.error = "upstream_stream_error"
    else:
        ttft = opened.attempt.latency_ms
        usage = encoder.usage
        state.latency.observe(model.key, ttft_ms=ttft,
                              total_ms=ttft + (time.perf_counter() - first_at) * 1000.0,
                              output_tokens=usage.output_tokens if usage else None)
    # the trace is taken after the failure was recorded, so it shows it
    comment = trace_comment(trace_of(ctx, routed)) if routed.trace else b""
    if failure is None:
        tail = encoder.close(comment)
    else:
        tail = encoder.fail(in_band_message(failure), comment)
    await send({"type": "http.response.body", "body": tail, "more_body": False})


def in_band_message(exc: UpstreamError) -> str:
    """The message of an in-band error for a stream that failed after it started."""
    return f"the upstream failed mid-stream: {exc.provider}/{exc.model}: {exc.message}"
