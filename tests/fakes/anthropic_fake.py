"""A fake Anthropic Messages upstream: POST /v1/messages, JSON and the SSE
event sequence (message_start, content_block_start/delta/stop, ping,
message_delta, message_stop).  See ``fakes.fixtures``.

``thinking="..."`` (or setting ``up.thinking``) starts every answer with a
signed ``thinking`` block and a ``redacted_thinking`` block, as extended thinking
does.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from aiohttp import web

from fakes.harness import Behaviour, FakeUpstream, render_text, rough_tokens, split_text

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 529: "overloaded_error"}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def invalid_request(body: Any) -> str | None:
    """The real Messages API's 400 message for a body it refuses, or None: the rules a
    router's rebuilt bodies could break (max_tokens, roles, tool results answering
    the tool_use blocks of the message just before)."""
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    asked: set[str] = set()
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            return (f'messages: Unexpected role "{role}". The Messages API accepts a '
                    'top-level `system` parameter, not "system" as an input message role.')
        content = m.get("content")
        blocks = content if isinstance(content, list) else []
        for j, b in enumerate(blocks):
            if isinstance(b, dict) and b.get("type") == "tool_result" \
                    and b.get("tool_use_id") not in asked:
                return (f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        "`tool_result` blocks: " + str(b.get("tool_use_id")) + ". Each "
                        "`tool_result` block must have a corresponding `tool_use` block "
                        "in the previous message.")
        asked = {str(b.get("id")) for b in blocks
                 if isinstance(b, dict) and b.get("type") == "tool_use"} \
            if role == "assistant" else set()
    return None


class FakeAnthropic(FakeUpstream):
    """Anthropic's Messages API on 127.0.0.1; ``url`` is the bare root."""

    def __init__(self, *, models: list[str] | None = None, thinking: str | None = None) -> None:
        super().__init__(models=models)
        self._n = itertools.count(1)
        #: answer with a signed thinking block and a redacted_thinking block first
        self.thinking = thinking

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)

    def error_body(self, b: Behaviour) -> bytes:
        return orjson.dumps({"type": "error", "error": {
            "type": b.error_type or _ERROR_TYPES.get(b.status, "api_error"),
            "message": b.error_message}})

    def last_user(self, body: Any) -> str:
        for m in reversed(body.get("messages", [])):
            if m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, str):
                    return c
                return "".join(x.get("text", "") for x in c if x.get("type") == "text")
        return ""

    async def messages(self, request: web.Request) -> web.StreamResponse:
        got = await self.preamble(request)
        if isinstance(got, web.StreamResponse):
            return got
        b, body = got
        refused = invalid_request(body)
        if refused is not None:  # what the real API answers
            return web.Response(status=400, content_type="application/json", body=orjson.dumps(
                {"type": "error", "error": {"type": "invalid_request_error",
                                            "message": refused}}))
        text = render_text(b, {**body, "messages": [
            {"role": "user", "content": self.last_user(body)}]})
        model = body.get("model", "")
        stop = _STOP.get(b.finish_reason or ("tool_calls" if b.tool_calls else "stop"),
                         b.finish_reason or "end_turn")
        in_tok, out_tok = b.usage or (
            rough_tokens(orjson.dumps(body.get("messages", [])).decode()), rough_tokens(text))
        mid = f"msg_fake_{next(self._n)}"
        ids = [c.id or f"toolu_{i}" for i, c in enumerate(b.tool_calls)]
        think: list[dict[str, Any]] = [
            {"type": "thinking", "thinking": self.thinking, "signature": "sig-" + mid},
            {"type": "redacted_thinking", "data": "opaque-" + mid}] if self.thinking else []
        if not body.get("stream"):
            content: list[dict[str, Any]] = list(think)
            content += [{"type": "text", "text": text}] if text else []
            content += [{"type": "tool_use", "id": ids[i], "name": c.name,
                         "input": orjson.loads(c.arguments)}
                        for i, c in enumerate(b.tool_calls)]
            return await self.json_answer(request, b, {
                "id": mid, "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": in_tok, "output_tokens": out_tok}})
        chunks = [_event("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": in_tok, "output_tokens": 1}}})]
        index = 0
        if think:
            chunks.append(_event("content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}))
            chunks.append(_event("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "thinking_delta", "thinking": think[0]["thinking"]}}))
            chunks.append(_event("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": think[0]["signature"]}}))
            chunks.append(_event("content_block_stop", {"type": "content_block_stop",
                                                        "index": 0}))
            chunks.append(_event("content_block_start", {
                "type": "content_block_start", "index": 1, "content_block": think[1]}))
            chunks.append(_event("content_block_stop", {"type": "content_block_stop",
                                                        "index": 1}))
            index = 2
        if text:
            chunks.append(_event("content_block_start", {
                "type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}))
            chunks.append(_event("ping", {"type": "ping"}))
            chunks += [_event("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": piece}})
                for piece in split_text(text, b.chunk_chars)]
            chunks.append(_event("content_block_stop", {"type": "content_block_stop",
                                                        "index": index}))
            index += 1
        for i, c in enumerate(b.tool_calls):
            chunks.append(_event("content_block_start", {
                "type": "content_block_start", "index": index + i,
                "content_block": {"type": "tool_use", "id": ids[i], "name": c.name,
                                  "input": {}}}))
            half = len(c.arguments) // 2
            for part in (c.arguments[:half], c.arguments[half:]):
                chunks.append(_event("content_block_delta", {
                    "type": "content_block_delta", "index": index + i,
                    "delta": {"type": "input_json_delta", "partial_json": part}}))
            chunks.append(_event("content_block_stop", {"type": "content_block_stop",
                                                        "index": index + i}))
        chunks.append(_event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": out_tok}}))
        chunks.append(_event("message_stop", {"type": "message_stop"}))
        return await self.stream_chunks(request, b, chunks, "text/event-stream")
