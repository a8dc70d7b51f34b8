"""A fast fake OpenAI-wire upstream for the benchmark (raw ASGI, run by Granian).

POST /v1/chat/completions answers a fixed completion; with ``"stream": true`` it
sends ``BENCH_CHUNKS`` chat.completion.chunk events (default 200) then
``[DONE]``.  No delay: it exists to measure what sits in front of it.

    python -m granian --interface asgi --workers 1 --port 9100 bench.upstream:app
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_CHUNKS = int(os.environ.get("BENCH_CHUNKS", "200"))

_COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


_STREAM_HEAD = _chunk({"role": "assistant", "content": ""})
_STREAM_PART = _chunk({"content": "tok "})
_STREAM_TAIL = _chunk({}, "stop") + b"data: [DONE]\n\n"
_MODELS = orjson.dumps(
    {"object": "list", "data": [{"id": "bench-model", "object": "model", "owned_by": "bench"}]}
)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    if scope["path"] == "/v1/models":
        await _respond(send, 200, _MODELS)
        return
    if scope["path"] != "/v1/chat/completions":
        await _respond(send, 404, b'{"error":{"message":"not found"}}')
        return
    stream = b'"stream":true' in body.replace(b" ", b"")
    if not stream:
        await _respond(send, 200, _COMPLETION)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    await send({"type": "http.response.body", "body": _STREAM_HEAD, "more_body": True})
    for _ in range(_CHUNKS):
        await send({"type": "http.response.body", "body": _STREAM_PART, "more_body": True})
    await send({"type": "http.response.body", "body": _STREAM_TAIL, "more_body": False})


async def _respond(send: Send, status: int, payload: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
