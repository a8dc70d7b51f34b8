"""The ``anthropic`` wire: Anthropic's Messages API (``POST {base_url}/v1/messages``).

Requests carry ``x-api-key`` (the provider's auth) and ``anthropic-version:
2023-06-01`` (unless the provider's static headers set another).

Requests from the messages surface take a fast path both ways: the client's own
body (``req.raw``) is forwarded with the model replaced and the router's own keys
removed, so thinking blocks, ``cache_control``, ``metadata``, server tools and
everything else the client sent reach Anthropic unchanged; and the answer comes
back as Anthropic sent it (``RawResponse``, and a ``RawDelta`` per SSE event of a
stream), so thinking signatures, redacted thinking, citations and cache usage
reach the client too.  Other surfaces are
encoded from the canonical request:

- ``system`` messages (chat keeps them in order) and ``req.system`` become the
  top-level ``system``; tool results become ``tool_result`` blocks in a user
  turn, and consecutive turns of one role are merged (the API wants them
  alternating);
- images are ``base64`` or ``url`` sources; tool calls are ``tool_use`` blocks
  with ``input`` parsed from the argument JSON; thinking parts are not sent
  (Anthropic refuses thinking blocks without their signature);
- ``max_tokens`` is required: the request's, else the model's ``max_output``
  bounded by :data:`DEFAULT_MAX_TOKENS`; ``temperature`` is clamped to Anthropic's
  range [0, 1]; ``response_format`` becomes a system instruction (the API has no
  JSON mode), and the classifier already asked for a json-capable model;
- ``tool_choice``: auto → auto, required → any, none → none, a function → tool.

Streams are SSE, decoded by ``anthropic_sse``: ``message_start`` (id, model, input tokens),
``content_block_start``/``content_block_delta`` (``text_delta``,
``input_json_delta``, ``thinking_delta``)/``content_block_stop``,
``message_delta`` (stop_reason, output tokens), ``message_stop``, ``ping`` and
``error`` (e.g. ``overloaded_error`` mid-stream: an ``UpstreamError``, which
falls back when it comes before the first delta).  Stop reasons map
end_turn/stop_sequence → stop, max_tokens → length, tool_use → tool_calls,
refusal → content_filter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import orjson
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    Message,
    ToolCall,
    Usage,
)
from interlock.runtime.errors import UpstreamConnectError, UpstreamError
from interlock.runtime.providers.anthropic_sse import EventDecoder, deltas_of, stop_reason
from interlock.runtime.providers.base import Embeddings, Upstream, auth_headers, join_url
from interlock.runtime.providers.openai import ROUTER_KEYS
from interlock.runtime.providers.raw import RawResponse
from interlock.runtime.sse import SSEParser
from interlock.runtime.table import ModelEntry, ProviderEntry

__all__ = ["API_VERSION", "DEFAULT_MAX_TOKENS", "AnthropicWire", "EventDecoder",
           "decode_response", "encode_request", "headers_for", "stop_reason"]

API_VERSION: Final = "2023-06-01"
#: max_tokens when the client sent none (the API requires one)
DEFAULT_MAX_TOKENS: Final = 4096

_CHOICE: Final = {"auto": {"type": "auto"}, "required": {"type": "any"},
                  "none": {"type": "none"}}


def usage_of(obj: Any) -> Usage | None:
    if not isinstance(obj, dict):
        return None
    return Usage(int(obj.get("input_tokens") or 0), int(obj.get("output_tokens") or 0))


def headers_for(provider: ProviderEntry, model: str,
                req: CanonicalRequest | None = None) -> dict[str, str]:
    """Static headers, the API key (``x-api-key`` or bearer), the API version and,
    for a messages client, its ``anthropic-beta`` features."""
    hdrs = auth_headers(provider, model)
    if not any(k.lower() == "anthropic-version" for k in hdrs):
        hdrs["anthropic-version"] = API_VERSION
    if req is not None and req.surface == "messages" and req.headers:
        hdrs.update(req.headers)
    return hdrs


# -- encoding -----------------------------------------------------------------------


def _input(arguments: str | None) -> Any:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": arguments}  # the API wants an object; keep the text visible
    return value if isinstance(value, dict) else {"value": value}


def _blocks(m: Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in m.parts:
        if p.type == "text":
            if p.text:
                out.append({"type": "text", "text": p.text})
        elif p.type == "image":
            if p.data:
                source = {"type": "base64", "media_type": p.media_type or "image/png",
                          "data": p.data}
            elif p.image_url and p.image_url.startswith("data:"):
                head, _, data = p.image_url.partition(",")
                source = {"type": "base64", "media_type": head[5:].split(";")[0] or "image/png",
                          "data": data}
            else:
                source = {"type": "url", "url": p.image_url or ""}
            out.append({"type": "image", "source": source})
        elif p.type == "tool_call":
            out.append({"type": "tool_use", "id": p.tool_call_id or "", "name": p.name or "",
                        "input": _input(p.arguments)})
        elif p.type == "tool_result":
            block: dict[str, Any] = {"type": "tool_result",
                                     "tool_use_id": p.tool_call_id or "", "content": p.text}
            if p.is_error:
                block["is_error"] = True
            out.append(block)
    return out


def encode_messages(req: CanonicalRequest) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, alternating user/assistant messages) for ``req``."""
    system = [req.system] if req.system else []
    messages: list[dict[str, Any]] = []
    for m in req.messages:
        if m.role == "system":
            text = m.text()
            if text:
                system.append(text)
            continue
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _blocks(m)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    for msg in messages:
        # tool results must open their user turn, before any text
        content = msg["content"]
        if msg["role"] == "user" and any(b["type"] == "tool_result" for b in content):
            content.sort(key=lambda b: b["type"] != "tool_result")
    return system, messages


def _signed_only(msg: Any) -> Any:
    """``msg`` without thinking blocks that carry no signature (answers that did not
    come from Anthropic: the API refuses them in a history)."""
    content = msg.get("content") if isinstance(msg, dict) else None
    if not isinstance(content, list):
        return msg
    kept = [b for b in content if not (isinstance(b, dict) and b.get("type") == "thinking"
                                       and not b.get("signature"))]
    return msg if len(kept) == len(content) else {**msg, "content": kept}


def _json_instruction(rf: dict[str, Any]) -> str:
    if rf.get("type") == "json_schema":
        schema = (rf.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return ("Respond with a single JSON value that validates against this JSON "
                    "Schema, and nothing else:\n" + orjson.dumps(schema).decode())
    return "Respond with a single valid JSON object and nothing else."


def encode_request(req: CanonicalRequest, model: ModelEntry, *, stream: bool) -> dict[str, Any]:
    """The Messages API body for ``req`` aimed at ``model``."""
    if req.surface == "messages" and req.raw:
        same: dict[str, Any] = {k: v for k, v in req.raw.items() if k not in ROUTER_KEYS}
        same["model"] = model.upstream_id
        same["stream"] = stream
        if any(p.type == "thinking" for m in req.messages for p in m.parts):
            same["messages"] = [_signed_only(m) for m in same["messages"]]
        return same
    system, messages = encode_messages(req)
    if req.response_format is not None:
        system.append(_json_instruction(req.response_format))
    body: dict[str, Any] = {
        "model": model.upstream_id,
        "messages": messages,
        "max_tokens": req.max_tokens or min(model.max_output or DEFAULT_MAX_TOKENS,
                                            DEFAULT_MAX_TOKENS),
        "stream": stream,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if req.tools:
        body["tools"] = [{"name": t.name, "description": t.description,
                          "input_schema": t.parameters or {"type": "object", "properties": {}}}
                         for t in req.tools]
        choice = _tool_choice(req.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, 1.0)
    if req.top_p is not None:
        body["top_p"] = req.top_p
    return body


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, str):
        return _CHOICE.get(choice)
    if isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if isinstance(name, str):
            return {"type": "tool", "name": name}
    return None


# -- decoding -----------------------------------------------------------------------


def decode_response(data: Any, provider: str, model: str) -> CanonicalResponse:
    """A Messages API JSON answer → ``CanonicalResponse``."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise UpstreamError(provider, model, "answer has no content")
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking") or ""))
        elif kind == "tool_use":
            calls.append(ToolCall(str(block.get("id") or f"toolu_{len(calls)}"),
                                  str(block.get("name") or ""),
                                  orjson.dumps(block.get("input") or {}).decode()))
    return CanonicalResponse(
        id=str(data.get("id") or ""), model=str(data.get("model") or model),
        text="".join(texts), tool_calls=calls, finish_reason=stop_reason(data.get("stop_reason")),
        usage=usage_of(data.get("usage")), thinking="".join(thinking),
    )


class AnthropicWire:
    """The anthropic-wire adapter (``Provider``)."""

    wire = "anthropic"

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def send(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> CanonicalResponse:
        body = orjson.dumps(encode_request(req, model, stream=False))
        data = await self.upstream.request_json(
            "POST", join_url(provider.base_url, "/v1/messages"), provider, model.upstream_id,
            deadline=deadline, body=body, headers=headers_for(provider, model.upstream_id, req),
        )
        resp = decode_response(data, provider.name, model.upstream_id)
        if req.surface == "messages" and isinstance(data, dict):
            # same API both sides: the client gets Anthropic's own message back
            return RawResponse(id=resp.id, model=resp.model, text=resp.text,
                               tool_calls=resp.tool_calls, finish_reason=resp.finish_reason,
                               usage=resp.usage, thinking=resp.thinking, raw=data)
        return resp

    async def stream(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> AsyncIterator[Delta]:
        body = orjson.dumps(encode_request(req, model, stream=True))
        parser = SSEParser()
        dec = EventDecoder(provider.name, model.upstream_id)
        chunks = self.upstream.stream_bytes(
            join_url(provider.base_url, "/v1/messages"), provider, model.upstream_id,
            deadline=deadline, body=body, headers=headers_for(provider, model.upstream_id, req),
        )
        relay = req.surface == "messages"  # same API: every event goes to the client
        async for chunk in chunks:
            for ev in parser.feed(chunk):
                for delta in deltas_of(dec, ev, relay):
                    yield delta
            if dec.done:
                return
        for ev in parser.close():
            for delta in deltas_of(dec, ev, relay):
                yield delta
        if not dec.done:
            raise UpstreamConnectError(provider.name, model.upstream_id,
                                       "stream ended before message_stop")

    async def list_models(self, provider: ProviderEntry, *, deadline: float) -> list[str]:
        data = await self.upstream.request_json(
            "GET", join_url(provider.base_url, "/v1/models"), provider, "", deadline=deadline,
            headers=headers_for(provider, ""),
        )
        items = data.get("data") if isinstance(data, dict) else None
        return [str(m["id"]) for m in items or () if isinstance(m, dict) and "id" in m]

    async def probe(self, provider: ProviderEntry, *, deadline: float) -> bool:
        try:
            await self.list_models(provider, deadline=deadline)
        except UpstreamError:
            return False
        return True

    async def embed(
        self, inputs: list[str], model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> Embeddings:
        raise UpstreamError(provider.name, model.upstream_id,
                            "the Anthropic API has no embeddings endpoint")
