"""A fake OpenAI-wire upstream: /v1/chat/completions (JSON and SSE),
/v1/models and /v1/embeddings, speaking the real protocol.  See ``fakes.fixtures``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from fakes.harness import (
    Behaviour,
    FakeToolCall,
    FakeUpstream,
    render_text,
    rough_tokens,
    split_text,
)

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}


_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def invalid_messages(messages: Any) -> tuple[str, str] | None:
    """(param, message) for a ``messages`` list the real chat-completions API refuses
    with a 400, or None: the rules a router's rebuilt bodies could break (roles,
    required content, tool calls and the tool results that answer them)."""
    if not isinstance(messages, list) or not messages:
        return "messages", "messages must be a non-empty array"
    open_calls: set[str] = set()
    for i, m in enumerate(messages):
        where = f"messages.[{i}]"
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            return f"{where}.role", f"Invalid value for '{where}.role'"
        role = m["role"]
        calls = m.get("tool_calls") if role == "assistant" else None
        if "content" not in m and not calls and role != "assistant":
            return f"{where}.content", f"Missing required parameter: '{where}.content'."
        if role == "assistant" and m.get("content") is None and not calls \
                and not m.get("function_call"):
            return f"{where}.content", f"Missing required parameter: '{where}.content'."
        if calls is not None:
            if not isinstance(calls, list):
                return f"{where}.tool_calls", f"Invalid type for '{where}.tool_calls'"
            for j, c in enumerate(calls):
                fn = c.get("function") if isinstance(c, dict) else None
                if not isinstance(fn, dict) or not isinstance(c.get("id"), str) \
                        or not isinstance(fn.get("name"), str) \
                        or not isinstance(fn.get("arguments"), str):
                    return (f"{where}.tool_calls.[{j}]",
                            f"Invalid value for '{where}.tool_calls.[{j}]'")
                open_calls.add(c["id"])
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str):
                return (f"{where}.tool_call_id",
                        f"Missing required parameter: '{where}.tool_call_id'.")
            if call_id not in open_calls:
                return (f"{where}.role", "Invalid parameter: messages with role 'tool' must "
                        "be a response to a preceeding message with 'tool_calls'.")
    return None


def fake_vector(text: str, dims: int = 8) -> list[float]:
    """A deterministic unit-ish vector for ``text`` (same input, same vector)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i] - 128) / 128.0, 6) for i in range(dims)]


def _fragments(arguments: str, parts: int = 3) -> list[str]:
    if len(arguments) < parts:
        return [arguments]
    step = -(-len(arguments) // parts)
    return [arguments[i : i + step] for i in range(0, len(arguments), step)]


def tool_call_deltas(calls: list[FakeToolCall], variant: str) -> list[dict[str, Any]]:
    """The ``delta.tool_calls`` entries a provider of ``variant`` streams, in order."""
    ids = [c.id or f"call_{i}" for i, c in enumerate(calls)]
    out: list[dict[str, Any]] = []
    if variant == "whole":
        for i, c in enumerate(calls):
            out.append({"index": i, "id": ids[i], "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments}})
        return out
    if variant == "interleaved":
        for i, c in enumerate(calls):
            out.append({"index": i, "id": ids[i], "type": "function",
                        "function": {"name": c.name, "arguments": ""}})
        frags = [_fragments(c.arguments) for c in calls]
        for group in itertools.zip_longest(*frags):
            for i, frag in enumerate(group):
                if frag is not None:
                    out.append({"index": i, "function": {"arguments": frag}})
        return out
    for i, c in enumerate(calls):
        index = 0 if variant == "index_zero" else i
        if variant == "repeat_id":
            for frag in _fragments(c.arguments):
                out.append({"index": index, "id": ids[i], "type": "function",
                            "function": {"name": c.name, "arguments": frag}})
            continue
        out.append({"index": index, "id": ids[i], "type": "function",
                    "function": {"name": c.name, "arguments": ""}})
        for frag in _fragments(c.arguments):
            out.append({"index": index, "function": {"arguments": frag}})
    return out


class FakeOpenAI(FakeUpstream):
    """OpenAI chat-completions wire on 127.0.0.1; ``url`` ends with ``/v1``."""

    base_path = "/v1"

    def __init__(self, *, models: list[str] | None = None) -> None:
        super().__init__(models=models)
        self._n = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_post("/v1/embeddings", self.embeddings)

    def error_body(self, b: Behaviour) -> bytes:
        return orjson.dumps({"error": {
            "message": b.error_message,
            "type": b.error_type or _ERROR_TYPES.get(b.status, "server_error"),
            "param": None, "code": None,
        }})

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models
        ]}, dumps=lambda o: orjson.dumps(o).decode())

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        got = await self.preamble(request)
        if isinstance(got, web.StreamResponse):
            return got
        b, body = got
        inputs = body.get("input", "")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for i, text in enumerate(items):
            vec = fake_vector(str(text))
            emb: Any = vec
            if body.get("encoding_format") == "base64":
                emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(rough_tokens(str(t)) for t in items)
        return await self.json_answer(request, b, {
            "object": "list", "data": data, "model": body.get("model", ""),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    async def chat(self, request: web.Request) -> web.StreamResponse:
        got = await self.preamble(request)
        if isinstance(got, web.StreamResponse):
            return got
        b, body = got
        bad = invalid_messages(body.get("messages"))
        if bad is not None:  # what the real API answers
            return web.Response(status=400, content_type="application/json", body=orjson.dumps(
                {"error": {"message": bad[1], "type": "invalid_request_error",
                           "param": bad[0], "code": None}}))
        text = render_text(b, body)
        model = body.get("model", "")
        finish = b.finish_reason or ("tool_calls" if b.tool_calls else "stop")
        prompt_tokens, completion_tokens = b.usage or (
            rough_tokens(orjson.dumps(body.get("messages", [])).decode()), rough_tokens(text))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        rid = f"chatcmpl-fake-{next(self._n)}"
        created = int(time.time())
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant",
                                       "content": text if text or not b.tool_calls else None}
            if b.tool_calls:
                message["tool_calls"] = [
                    {"id": c.id or f"call_{i}", "type": "function",
                     "function": {"name": c.name, "arguments": c.arguments}}
                    for i, c in enumerate(b.tool_calls)
                ]
            return await self.json_answer(request, b, {
                "id": rid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish,
                             "logprobs": None, **b.choice_extra}],
                "usage": usage, **b.answer_extra,
            })

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return b"data: " + orjson.dumps({
                "id": rid, "object": "chat.completion.chunk", "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                             "logprobs": None}],
            }) + b"\n\n"

        chunks = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk({"content": piece}) for piece in split_text(text, b.chunk_chars)]
        chunks += [chunk({"tool_calls": [td]})
                   for td in tool_call_deltas(b.tool_calls, b.tool_variant)]
        chunks.append(chunk({}, finish))
        opts = body.get("stream_options")
        if isinstance(opts, dict) and opts.get("include_usage"):
            chunks.append(b"data: " + orjson.dumps({
                "id": rid, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [], "usage": usage}) + b"\n\n")
        chunks.append(b"data: [DONE]\n\n")
        return await self.stream_chunks(request, b, chunks, "text/event-stream")
