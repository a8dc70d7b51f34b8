"""The ``ollama`` wire: Ollama's native API (``/api/chat``, ``/api/tags``,
``/api/embed``, ``/api/version``).

Differences from chat completions that this adapter absorbs:

- images travel as raw base64 strings in ``message.images``; ``data:`` URLs are
  unwrapped, http(s) URLs are refused with a 400 (Ollama cannot fetch them and
  the router does not fetch on a client's behalf);
- tool-call arguments are a JSON *object* (both ways), tool calls may have no id
  (one is synthesised, deterministically) and tool results name the tool
  (``tool_name``) rather than the call id;
- ``format`` is "json" or a JSON schema; sampling parameters live in ``options``
  (``max_tokens`` is ``num_predict``);
- streams are NDJSON, ending with a ``done: true`` line carrying ``done_reason``
  and the token counts (``prompt_eval_count``, ``eval_count``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    FinishReason,
    ToolCall,
    Usage,
)
from interlock.runtime.errors import RequestError, UpstreamConnectError, UpstreamError
from interlock.runtime.providers.base import Embeddings, Upstream, join_url
from interlock.runtime.sse import NDJSONSplitter
from interlock.runtime.table import ModelEntry, ProviderEntry


def synth_id(index: int, name: str, arguments: str) -> str:
    """A deterministic id for a tool call Ollama sent without one."""
    digest = hashlib.sha1(f"{index}:{name}:{arguments}".encode()).hexdigest()[:16]
    return f"call_{digest}"


def _image_b64(url: str | None, data: str | None, where: str) -> str:
    if data:
        return data
    if url and url.startswith("data:"):
        head, sep, payload = url.partition(",")
        if sep and head.endswith(";base64"):
            return payload
        raise RequestError(400, "image data URLs must be base64-encoded for this model",
                           param=where, code="invalid_image")
    raise RequestError(
        400, "this model is served by Ollama, which needs images inline: send a "
        "data:image/...;base64,... URL instead of a link", param=where, code="invalid_image",
    )


def _arguments_object(text: str | None) -> Any:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return text  # not JSON: let Ollama judge it rather than inventing an object
    return value


def encode_request(req: CanonicalRequest, model: ModelEntry, *, stream: bool) -> dict[str, Any]:
    """The ``/api/chat`` body for ``req`` aimed at ``model``."""
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": req.system})
    names: dict[str, str] = {}  # tool call id → tool name, for tool results
    for i, m in enumerate(req.messages):
        texts: list[str] = []
        images: list[str] = []
        calls: list[dict[str, Any]] = []
        for j, p in enumerate(m.parts):
            if p.type == "text":
                texts.append(p.text)
            elif p.type == "image":
                images.append(_image_b64(p.image_url, p.data, f"messages[{i}].content[{j}]"))
            elif p.type == "tool_call":
                if p.tool_call_id and p.name:
                    names[p.tool_call_id] = p.name
                calls.append({"function": {"name": p.name,
                                           "arguments": _arguments_object(p.arguments)}})
            elif p.type == "tool_result":
                result: dict[str, Any] = {"role": "tool", "content": p.text}
                tool_name = p.name or names.get(p.tool_call_id or "")
                if tool_name:
                    result["tool_name"] = tool_name
                messages.append(result)
        if not texts and not images and not calls:
            if not any(p.type == "tool_result" for p in m.parts):
                messages.append({"role": m.role, "content": ""})
            continue
        msg: dict[str, Any] = {"role": "user" if m.role == "tool" else m.role,
                               "content": "".join(texts)}
        if images:
            msg["images"] = images
        if calls:
            msg["tool_calls"] = calls
        messages.append(msg)
    body: dict[str, Any] = {"model": model.upstream_id, "messages": messages, "stream": stream}
    if req.tools:
        body["tools"] = [{"type": "function", "function": {
            "name": t.name, "description": t.description,
            "parameters": t.parameters or {"type": "object", "properties": {}}}}
            for t in req.tools]
    rf = req.response_format
    if rf:
        if rf.get("type") == "json_object":
            body["format"] = "json"
        elif rf.get("type") == "json_schema":
            schema = (rf.get("json_schema") or {}).get("schema")
            body["format"] = schema if isinstance(schema, dict) else "json"
    options: dict[str, Any] = {}
    if req.temperature is not None:
        options["temperature"] = req.temperature
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.seed is not None:
        options["seed"] = req.seed
    if req.stop:
        options["stop"] = list(req.stop)
    if req.max_tokens is not None:
        options["num_predict"] = req.max_tokens
    if options:
        body["options"] = options
    return body


def _finish(done_reason: Any, tools: bool) -> FinishReason:
    if done_reason == "length":
        return "length"
    return "tool_calls" if tools else "stop"


def _usage(obj: dict[str, Any]) -> Usage | None:
    if "prompt_eval_count" not in obj and "eval_count" not in obj:
        return None
    return Usage(int(obj.get("prompt_eval_count") or 0), int(obj.get("eval_count") or 0))


def _tool_call(tc: Any, index: int) -> ToolCall:
    fn = tc.get("function") or {} if isinstance(tc, dict) else {}
    name = str(fn.get("name") or "")
    args = fn.get("arguments")
    text = args if isinstance(args, str) else orjson.dumps(args if args is not None else {})\
        .decode()
    tid = tc.get("id") if isinstance(tc, dict) else None
    return ToolCall(str(tid) if tid else synth_id(index, name, text), name, text)


def decode_response(data: Any, provider: str, model: str) -> CanonicalResponse:
    """An ``/api/chat`` JSON answer → ``CanonicalResponse``."""
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise UpstreamError(provider, model, "answer has no message")
    msg = data["message"]
    calls = [_tool_call(tc, i) for i, tc in enumerate(msg.get("tool_calls") or [])]
    thinking = msg.get("thinking")
    return CanonicalResponse(
        id=f"ollama-{int(time.time() * 1000)}", model=str(data.get("model") or model),
        text=str(msg.get("content") or ""), tool_calls=calls,
        finish_reason=_finish(data.get("done_reason"), bool(calls)),
        usage=_usage(data), thinking=thinking if isinstance(thinking, str) else "",
        created=int(time.time()),
    )


class OllamaWire:
    """The ollama-wire adapter (``Provider``)."""

    wire = "ollama"

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def send(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> CanonicalResponse:
        body = orjson.dumps(encode_request(req, model, stream=False))
        data = await self.upstream.request_json(
            "POST", join_url(provider.base_url, "/api/chat"), provider, model.upstream_id,
            deadline=deadline, body=body,
        )
        if isinstance(data, dict) and "error" in data and "message" not in data:
            raise UpstreamError(provider.name, model.upstream_id, str(data["error"]))
        return decode_response(data, provider.name, model.upstream_id)

    async def stream(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> AsyncIterator[Delta]:
        body = orjson.dumps(encode_request(req, model, stream=True))
        lines = NDJSONSplitter()
        state = _StreamState(provider.name, model.upstream_id)
        async for chunk in self.upstream.stream_bytes(
            join_url(provider.base_url, "/api/chat"), provider, model.upstream_id,
            deadline=deadline, body=body,
        ):
            for line in lines.feed(chunk):
                for delta in state.decode(line):
                    yield delta
            if state.done:
                return
        for line in lines.close():
            for delta in state.decode(line):
                yield delta
        if not state.done:
            raise UpstreamConnectError(provider.name, model.upstream_id,
                                       "stream ended before done")

    async def list_models(self, provider: ProviderEntry, *, deadline: float) -> list[str]:
        """The installed models (``/api/tags``), by name (e.g. ``qwen3:8b``)."""
        data = await self.upstream.request_json(
            "GET", join_url(provider.base_url, "/api/tags"), provider, "", deadline=deadline,
        )
        items = data.get("models") if isinstance(data, dict) else None
        return [str(m.get("name") or m.get("model")) for m in items or ()
                if isinstance(m, dict) and (m.get("name") or m.get("model"))]

    async def probe(self, provider: ProviderEntry, *, deadline: float) -> bool:
        try:
            data = await self.upstream.request_json(
                "GET", join_url(provider.base_url, "/api/version"), provider, "",
                deadline=deadline,
            )
        except UpstreamError:
            return False
        return isinstance(data, dict) and "version" in data

    async def embed(
        self, inputs: list[str], model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> Embeddings:
        body = orjson.dumps({"model": model.upstream_id, "input": inputs})
        data = await self.upstream.request_json(
            "POST", join_url(provider.base_url, "/api/embed"), provider, model.upstream_id,
            deadline=deadline, body=body,
        )
        try:
            vectors = [[float(x) for x in v] for v in data["embeddings"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(provider.name, model.upstream_id,
                                f"bad embeddings answer: {exc}") from exc
        return Embeddings(vectors=vectors, input_tokens=int(data.get("prompt_eval_count") or 0))


class _StreamState:
    __slots__ = ("provider", "model", "first", "done", "tools")

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.first = True
        self.done = False
        self.tools = 0

    def decode(self, line: bytes) -> list[Delta]:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(self.provider, self.model, f"bad stream line: {exc}") from exc
        if not isinstance(obj, dict):
            return []
        if "error" in obj:
            raise UpstreamError(self.provider, self.model, f"error in stream: {obj['error']}")
        out: list[Delta] = []
        msg = obj.get("message") or {}
        text = msg.get("content") or ""
        thinking = msg.get("thinking") or ""
        if text or thinking:
            out.append(Delta(text=text, thinking=thinking))
        for tc in msg.get("tool_calls") or ():
            call = _tool_call(tc, self.tools)
            out.append(Delta(tool_index=self.tools, tool_id=call.id, tool_name=call.name,
                             tool_arguments=call.arguments))
            self.tools += 1
        if obj.get("done"):
            self.done = True
            out.append(Delta(finish_reason=_finish(obj.get("done_reason"), self.tools > 0),
                             usage=_usage(obj)))
        if self.first:
            self.first = False
            if not out:
                out.append(Delta())
            out[0].model = obj.get("model")
        return out
