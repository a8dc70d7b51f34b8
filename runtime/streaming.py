"""Streaming chat completions (SSE): commit on the first delta, never truncate silently.

1. ``open_stream`` walks the candidates until one yields a first delta; until
   then nothing has been sent, so every failure can still fall back.
2. The status line, the ``X-Router-*`` headers (``X-Router-Overhead-Ms`` frozen at
   that moment) and the first chunk go out together.
3. The rest is pumped through the surface's encoder under the request's deadline.
   A failure from here on cannot change the status: it ends the stream with an
   in-band error chunk in the client's format (chat completions:
   ``data: {"error": {...}}``, which the OpenAI SDK raises as an APIError), then
   ``data: [DONE]``.  The attempt is re-recorded as failed.
4. With tracing on, the trace follows as one SSE comment line before ``[DONE]``.

The upstream iterator is always closed (``aclose``), also when the client went
away, so the upstream connection is released.
"""

from __future__ import annotations

import asyncio
import time

from interlock.runtime.asgi_types import RawHeaders
from interlock.runtime.context import (
    Ctx,
    Routed,
    answered,
    trace_comment,
    trace_of,
    upstream_error,
)
from interlock.runtime.disconnect import cancel_on_disconnect
from interlock.runtime.errors import UpstreamError, UpstreamHTTPError, UpstreamTimeout
from interlock.runtime.forward import Call, OpenStream, open_stream, stream_failed
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.responses import SSE
from interlock.runtime.sse import DONE_EVENT
from interlock.runtime.surfaces.chat_encode import ChatStreamEncoder, encode_error_chunk

_SSE_HEADERS = [(b"content-type", SSE), (b"cache-control", b"no-cache")]


async def stream_chat(ctx: Ctx, call: Call, routed: Routed) -> None:
    state = ctx.state
    try:
        opened = await open_stream(state, call)
    except UpstreamHTTPError as exc:
        await upstream_error(ctx, exc)
        return
    model = opened.model
    answered(ctx, model.key, model.provider, model.locality)
    ctx.diag.freeze()
    encoder = ChatStreamEncoder(model_name=model.key, include_usage=routed.req.include_usage)
    headers = diagnostic_headers(ctx.diag, state.table_hash_header)
    headers.extend(_SSE_HEADERS)
    it = opened.rest
    try:
        async with cancel_on_disconnect(ctx.receive):
            await _pump(ctx, call, routed, opened, encoder, headers)
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


async def _pump(ctx: Ctx, call: Call, routed: Routed, opened: OpenStream,
                encoder: ChatStreamEncoder, headers: RawHeaders) -> None:
    send, state, model, it = ctx.send, ctx.state, opened.model, opened.rest
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    ctx.started = True
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
    if failure is None:
        tail = encoder.finish()  # ends with data: [DONE]
    else:
        stream_failed(state, opened.attempt, failure)
        tail = in_band_error(failure) + DONE_EVENT
    if routed.trace:
        # the comment goes before the final [DONE] so that readers that stop there see it
        tail = tail[: -len(DONE_EVENT)] + trace_comment(trace_of(ctx, routed)) + DONE_EVENT
    await send({"type": "http.response.body", "body": tail, "more_body": False})


def in_band_error(exc: UpstreamError) -> bytes:
    """An error chunk in chat-completions SSE (OpenAI's in-stream error shape)."""
    return encode_error_chunk(
        f"the upstream failed mid-stream: {exc.provider}/{exc.model}: {exc.message}",
        code="upstream_stream_error",
    )
