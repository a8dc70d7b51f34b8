"""The ``openai`` wire: chat completions as spoken by OpenAI, OpenRouter, Groq,
vLLM, llama.cpp server, LM Studio, Gemini's compatibility endpoint, ...

Requests from the chat-completions surface take a fast path: the client's own
body (``req.raw``) is forwarded with the model replaced and the router's own keys
removed, so nothing the client sent is lost or rebuilt; its answer comes back the
same way (``RawResponse``: only ``model`` renamed, see
``surfaces.chat_encode.relay_chat_response``).  Other surfaces are encoded from, and
answered with, the canonical forms.

Streamed tool calls are normalised here: upstreams differ in whether they repeat
the id on every fragment, and some send every call with ``index`` 0 (a new id
then starts a new call).  The deltas this adapter yields carry a stable index
per call, the id and name once (on the call's first fragment) and argument text.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Final

import orjson
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    FinishReason,
    Message,
    ToolCall,
    Usage,
)
from interlock.runtime.errors import UpstreamConnectError, UpstreamError
from interlock.runtime.providers.base import Embeddings, Upstream, join_url
from interlock.runtime.providers.raw import RawResponse
from interlock.runtime.sse import DONE, SSEParser
from interlock.runtime.table import ModelEntry, ProviderEntry

#: body keys that steer the router and must never reach an upstream
ROUTER_KEYS: Final = frozenset({
    "private", "trace", "models", "allowed_models", "provider", "route", "router",
})

_FINISH: Final[dict[str, FinishReason]] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "content_filter": "content_filter", "function_call": "tool_calls", "eos": "stop",
    "error": "error",
}


def finish_reason(value: Any) -> FinishReason:
    return _FINISH.get(value, "stop") if isinstance(value, str) else "stop"


def usage_of(obj: Any) -> Usage | None:
    if not isinstance(obj, dict):
        return None
    return Usage(int(obj.get("prompt_tokens") or 0), int(obj.get("completion_tokens") or 0))


# -- encoding -------------------------------------------------------------------


def encode_message(m: Message, out: list[dict[str, Any]]) -> None:
    """Append the chat-completions form of ``m`` to ``out``.

    Tool results become one ``tool`` message each (Anthropic-style histories put
    several in one user message); thinking parts are not sent.
    """
    content: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for p in m.parts:
        if p.type == "text":
            content.append({"type": "text", "text": p.text})
        elif p.type == "image":
            url = p.image_url or f"data:{p.media_type or 'image/png'};base64,{p.data or ''}"
            content.append({"type": "image_url", "image_url": {"url": url}})
        elif p.type == "tool_call":
            calls.append({"id": p.tool_call_id, "type": "function",
                          "function": {"name": p.name, "arguments": p.arguments or "{}"}})
        elif p.type == "tool_result":
            out.append({"role": "tool", "tool_call_id": p.tool_call_id, "content": p.text})
    if not content and not calls:
        if not any(p.type == "tool_result" for p in m.parts):
            out.append({"role": m.role, "content": ""})
        return
    msg: dict[str, Any] = {"role": "user" if m.role == "tool" else m.role}
    if not content:
        msg["content"] = None  # an assistant turn that only calls tools
    elif all(c["type"] == "text" for c in content):
        msg["content"] = content[0]["text"] if len(content) == 1 else \
            "".join(c["text"] for c in content)
    else:
        msg["content"] = content
    if calls:
        msg["tool_calls"] = calls
    if m.name:
        msg["name"] = m.name
    out.append(msg)


def encode_request(req: CanonicalRequest, model: ModelEntry, *, stream: bool) -> dict[str, Any]:
    """The chat-completions body for ``req`` aimed at ``model``."""
    raw = req.raw
    if req.surface == "chat" and raw:
        body = raw.copy()  # same keys, same order as filtering key by key
        if not ROUTER_KEYS.isdisjoint(raw):
            for key in ROUTER_KEYS:
                body.pop(key, None)
    else:
        messages: list[dict[str, Any]] = []
        if req.system:
            messages.append({"role": "system", "content": req.system})
        for m in req.messages:
            encode_message(m, messages)
        body = {**req.extra, "messages": messages}
        if req.tools:
            body["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description,
                "parameters": t.parameters or {"type": "object", "properties": {}}}}
                for t in req.tools]
        if req.tool_choice is not None:
            body["tool_choice"] = req.tool_choice
        if req.response_format is not None:
            body["response_format"] = req.response_format
        if req.stop:
            body["stop"] = req.stop
        for key in ("seed", "temperature", "top_p", "max_tokens"):
            value = getattr(req, key)
            if value is not None:
                body[key] = value
    return set_target(body, model, stream)


def set_target(body: dict[str, Any], model: ModelEntry, stream: bool) -> dict[str, Any]:
    """Aim an OpenAI-wire body (chat or legacy completions) at ``model``, streaming or not."""
    body["model"] = model.upstream_id
    body["stream"] = stream
    if stream:
        # always ask for usage: the router records it whether or not the client asked
        opts = body.get("stream_options")
        body["stream_options"] = {**opts, "include_usage": True} if isinstance(opts, dict) \
            else {"include_usage": True}
    else:
        body.pop("stream_options", None)
    return body


# -- decoding -------------------------------------------------------------------


def decode_response(data: Any, provider: str, model: str, *,
                    keep: bool = False) -> CanonicalResponse:
    """A chat-completions JSON answer → ``CanonicalResponse`` (with ``keep``, a
    ``RawResponse`` that also holds ``data``, for a chat client to get it as it came).

    Runs once per answer: ``finish_reason`` and ``usage_of`` are inlined, and an
    answer without tool calls or reasoning skips their work."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices, list):
        raise UpstreamError(provider, model, "answer has no choices")
    choice = choices[0]
    msg = choice.get("message") or {}
    raw_calls = msg.get("tool_calls")
    calls = [
        ToolCall(str(tc.get("id") or f"call_{i}"), str((tc.get("function") or {}).get("name")),
                 str((tc.get("function") or {}).get("arguments") or "{}"))
        for i, tc in enumerate(raw_calls)
    ] if raw_calls else []
    thinking = msg.get("reasoning_content") or msg.get("reasoning") or ""
    reason = choice.get("finish_reason")
    usage = data.get("usage")
    resp = (RawResponse if keep else CanonicalResponse)(
        id=str(data.get("id") or ""), model=str(data.get("model") or model),
        text=msg.get("content") or "", tool_calls=calls,
        finish_reason=_FINISH.get(reason, "stop") if isinstance(reason, str) else "stop",
        usage=Usage(int(usage.get("prompt_tokens") or 0),
                    int(usage.get("completion_tokens") or 0))
        if isinstance(usage, dict) else None,
        thinking=thinking if isinstance(thinking, str) else "",
        created=int(data.get("created") or time.time()),
    )
    if isinstance(resp, RawResponse):
        resp.raw = data
    return resp


class ToolIndexer:
    """Stable per-call indices over the upstream's tool-call fragments."""

    __slots__ = ("_by_upstream", "_ids", "_named", "count")

    def __init__(self) -> None:
        self._by_upstream: dict[int, int] = {}  # upstream index → current call
        self._ids: dict[str, int] = {}
        self._named: set[int] = set()
        self.count = 0

    def delta(self, frag: dict[str, Any]) -> Delta:
        up_index = frag.get("index")
        up = up_index if isinstance(up_index, int) else 0
        fid = frag.get("id") or None
        fn = frag.get("function") or {}
        if fid is not None and fid in self._ids:
            idx, new = self._ids[fid], False
        elif fid is not None or up not in self._by_upstream or (
                fn.get("name") and self._by_upstream[up] in self._named):
            # a new id, an unseen index, or a second name at the same index: a new call
            idx, new = self.count, True
            self.count += 1
            fid = fid or f"call_{idx}"
            self._ids[fid] = idx
        else:
            idx, new = self._by_upstream[up], False
        self._by_upstream[up] = idx
        name = fn.get("name") or None
        if idx in self._named:
            name = None
        elif name is not None:
            self._named.add(idx)
        return Delta(tool_index=idx, tool_id=fid if new else None, tool_name=name,
                     tool_arguments=fn.get("arguments") or "")


class ChunkDecoder:
    """SSE ``data`` payloads of a chat-completions stream → ``Delta`` lists."""

    __slots__ = ("provider", "model", "tools", "first", "finished", "done")

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.tools = ToolIndexer()
        self.first = True
        self.finished = False
        self.done = False

    def decode(self, data: str) -> list[Delta]:
        if data == DONE:
            self.done = True
            return []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(self.provider, self.model, f"bad stream chunk: {exc}") from exc
        if not isinstance(obj, dict):
            return []
        if "error" in obj and not obj.get("choices"):
            err = obj["error"]
            text = err.get("message") if isinstance(err, dict) else str(err)
            raise UpstreamError(self.provider, self.model, f"error in stream: {text}")
        out: list[Delta] = []
        choices = obj.get("choices")
        if choices:
            c = choices[0]
            d = c.get("delta") or {}
            content = d.get("content")
            thinking = d.get("reasoning_content") or d.get("reasoning")
            if content or thinking:
                out.append(Delta(text=content or "",
                                 thinking=thinking if isinstance(thinking, str) else ""))
            for frag in d.get("tool_calls") or ():
                out.append(self.tools.delta(frag))
            fr = c.get("finish_reason")
            if fr:
                self.finished = True
                out.append(Delta(finish_reason=finish_reason(fr)))
        usage = obj.get("usage")
        if usage:
            out.append(Delta(usage=usage_of(usage)))
        if self.first:
            self.first = False
            if not out:
                out.append(Delta())
            out[0].id = obj.get("id")
            out[0].model = obj.get("model")
        return out


class OpenAIWire:
    """The openai-wire adapter (``Provider``)."""

    wire = "openai"

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        #: base_url → its /chat/completions URL (one per provider, built once)
        self._chat_urls: dict[str, str] = {}

    def chat_url(self, base_url: str) -> str:
        url = self._chat_urls.get(base_url)
        if url is None:
            url = self._chat_urls[base_url] = join_url(base_url, "/chat/completions")
        return url

    async def send(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> CanonicalResponse:
        body = orjson.dumps(encode_request(req, model, stream=False))
        url = self._chat_urls.get(provider.base_url) or self.chat_url(provider.base_url)
        data = await self.upstream.request_json(
            "POST", url, provider, model.upstream_id, deadline=deadline, body=body,
        )
        # same API both sides: the chat client gets the upstream's own answer back
        return decode_response(data, provider.name, model.upstream_id,
                               keep=req.surface == "chat")

    async def stream(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> AsyncIterator[Delta]:
        body = orjson.dumps(encode_request(req, model, stream=True))
        parser = SSEParser()
        dec = ChunkDecoder(provider.name, model.upstream_id)
        chunks = self.upstream.stream_bytes(
            self.chat_url(provider.base_url), provider, model.upstream_id,
            deadline=deadline, body=body,
        )
        async for chunk in chunks:
            for ev in parser.feed(chunk):
                for delta in dec.decode(ev.data):
                    yield delta
            if dec.done:
                return
        for ev in parser.close():
            for delta in dec.decode(ev.data):
                yield delta
        if not dec.done and not dec.finished:
            raise UpstreamConnectError(provider.name, model.upstream_id,
                                       "stream ended before its finish")

    async def list_models(self, provider: ProviderEntry, *, deadline: float) -> list[str]:
        data = await self.upstream.request_json(
            "GET", join_url(provider.base_url, "/models"), provider, "", deadline=deadline,
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
        body = orjson.dumps({"model": model.upstream_id, "input": inputs})
        data = await self.upstream.request_json(
            "POST", join_url(provider.base_url, "/embeddings"), provider, model.upstream_id,
            deadline=deadline, body=body,
        )
        try:
            rows = sorted(data["data"], key=lambda r: r.get("index", 0))
            vectors = [[float(x) for x in r["embedding"]] for r in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(provider.name, model.upstream_id,
                                f"bad embeddings answer: {exc}") from exc
        tokens = int((data.get("usage") or {}).get("prompt_tokens") or 0)
        return Embeddings(vectors=vectors, input_tokens=tokens)
