"""Encoders of the Anthropic Messages surface: the ``message`` JSON object and the
SSE event stream, in Anthropic's exact event order::

    message_start · ping
    (content_block_start · content_block_delta* · content_block_stop)*
    message_delta (stop_reason, usage) · message_stop

Blocks are strictly sequential (one open at a time), as the API promises.
Upstreams of other wires may interleave the argument fragments of parallel tool
calls; the first call streams as it comes, fragments of the others are kept and
each of those calls is sent as one complete block when its turn comes, so every
``tool_use`` block still receives exactly its own arguments.

An anthropic-wire upstream's stream is relayed event by event instead
(``RawDelta``; only ``model`` in ``message_start`` is renamed), so signatures,
redacted thinking and every field Anthropic adds reach the client.

Stop reasons: stop → end_turn, length → max_tokens, tool_calls → tool_use
(also when an upstream said "stop" but sent tool calls), content_filter → refusal.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import orjson
from interlock.runtime.canonical import CanonicalResponse, Delta, FinishReason, Usage
from interlock.runtime.providers.raw import RawDelta, RawResponse

_STOP: Final = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "refusal", "error": "end_turn"}


def new_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def stop_reason(reason: FinishReason | None, tools: bool) -> str:
    if tools and reason in (None, "stop", "tool_calls"):
        return "tool_use"
    return _STOP.get(reason or "stop", "end_turn")


def tool_input(arguments: str) -> Any:
    """A tool call's argument JSON text as the object Anthropic's ``input`` wants."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _usage(u: Usage | None) -> dict[str, int]:
    u = u or Usage()
    return {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens}


def relayed_content(content: list[Any], text: str) -> list[Any]:
    """An upstream message's content blocks as relayed to the client.

    Unchanged when their text blocks still read ``text`` (the usual case).  When the
    router changed the answer's text, the text blocks give way to one block with the
    new text, where the first of them was; thinking and tool_use blocks keep their
    places, and the text blocks' citations go with the old text."""
    texts = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
    if "".join(str(b.get("text") or "") for b in texts) == text:
        return content
    out: list[Any] = []
    placed = False
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            if not placed and text:
                out.append({"type": "text", "text": text})
            placed = True
            continue
        out.append(block)
    if not placed and text:
        out.append({"type": "text", "text": text})
    return out


def encode_message(resp: CanonicalResponse, *, model_name: str) -> dict[str, Any]:
    """A Messages API ``message`` object; ``model_name`` is what the client is told.

    An answer from an anthropic-wire upstream (``RawResponse``) is returned as it
    came, with only ``model`` replaced - and its text, when verification changed it
    (a confidence line stripped, JSON healed: :func:`relayed_content`)."""
    if isinstance(resp, RawResponse) and resp.raw:
        out = {**resp.raw, "model": model_name}
        blocks = out.get("content")
        if isinstance(blocks, list):
            out["content"] = relayed_content(blocks, resp.text)
        return out
    content: list[dict[str, Any]] = []
    if resp.thinking:
        content.append({"type": "thinking", "thinking": resp.thinking, "signature": ""})
    if resp.text:
        content.append({"type": "text", "text": resp.text})
    for c in resp.tool_calls:
        content.append({"type": "tool_use", "id": c.id, "name": c.name,
                        "input": tool_input(c.arguments)})
    rid = resp.id if resp.id.startswith("msg_") else new_id()
    return {
        "id": rid, "type": "message", "role": "assistant", "model": model_name,
        "content": content, "stop_reason": stop_reason(resp.finish_reason, bool(resp.tool_calls)),
        "stop_sequence": None, "usage": _usage(resp.usage),
    }


def event(name: bytes, data: bytes) -> bytes:
    """One named SSE event."""
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


def error_event(message: str, kind: str = "api_error") -> bytes:
    """Anthropic's in-stream error event (the SDKs raise on it)."""
    return event(b"error", orjson.dumps({"type": "error",
                                         "error": {"type": kind, "message": message}}))


_PING: Final = event(b"ping", b'{"type":"ping"}')
_STOP_EVENT: Final = event(b"message_stop", b'{"type":"message_stop"}')


class MessagesStreamEncoder:
    """Deltas → Anthropic Messages SSE events (``StreamEncoder``)."""

    __slots__ = ("_model", "_id", "_started", "_next", "_open", "_open_tool", "_closed",
                 "_pending", "_tools", "_relayed", "usage", "finish_reason")

    def __init__(self, *, model_name: str, id: str | None = None) -> None:
        self._model = model_name
        self._id = id or new_id()
        self._started = False
        self._next = 0  # the next content block index
        self._open: str | None = None  # "text" | "thinking" | "tool_use"
        self._open_tool: int | None = None
        self._closed: set[int] = set()
        #: tool calls waiting for their block: index → [id, name, argument text]
        self._pending: dict[int, list[str]] = {}
        self._tools = False
        self._relayed = False
        self.usage: Usage | None = None
        self.finish_reason: FinishReason | None = None

    def _start(self) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": self._id, "type": "message", "role": "assistant", "model": self._model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": _usage(Usage(self.usage.input_tokens if self.usage else 0, 0))}
        return event(b"message_start", orjson.dumps({"type": "message_start",
                                                     "message": message})) + _PING

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        if self._open_tool is not None:
            self._closed.add(self._open_tool)
        self._open = None
        self._open_tool = None
        return event(b"content_block_stop", b'{"type":"content_block_stop","index":%d}'
                     % (self._next - 1))

    def _open_block(self, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        self._open = str(block["type"])
        out += event(b"content_block_start", orjson.dumps({
            "type": "content_block_start", "index": self._next, "content_block": block}))
        self._next += 1
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return event(b"content_block_delta", orjson.dumps({
            "type": "content_block_delta", "index": self._next - 1, "delta": delta}))

    def encode(self, d: Delta) -> bytes:
        if isinstance(d, RawDelta) and d.event is not None:
            return self._relay(d)
        if d.usage is not None:
            self.usage = d.usage
        out = b"" if self._started else self._start()
        if d.thinking:
            if self._open != "thinking":
                out += self._open_block({"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta({"type": "thinking_delta", "thinking": d.thinking})
        if d.text:
            if self._open != "text":
                out += self._open_block({"type": "text", "text": ""})
            out += self._delta({"type": "text_delta", "text": d.text})
        if d.tool_index is not None:
            out += self._tool(d)
        if d.finish_reason is not None:
            self.finish_reason = d.finish_reason
        return out

    def _relay(self, d: RawDelta) -> bytes:
        """An anthropic-wire upstream's own event, relayed (only the model renamed)."""
        self._relayed = True
        if d.usage is not None:
            self.usage = d.usage
        if d.finish_reason is not None:
            self.finish_reason = d.finish_reason
        data = (d.data or "").encode()
        if d.event == "message_start":
            self._started = True
            obj = orjson.loads(data)
            if isinstance(obj.get("message"), dict):
                obj["message"]["model"] = self._model
            data = orjson.dumps(obj)
        return event((d.event or "message").encode(), data)

    def _tool(self, d: Delta) -> bytes:
        idx = d.tool_index
        assert idx is not None
        self._tools = True
        if self._open == "tool_use" and self._open_tool == idx:
            if d.tool_arguments:
                return self._delta({"type": "input_json_delta", "partial_json": d.tool_arguments})
            return b""
        if idx in self._closed:
            return b""  # a fragment after its block closed: nothing valid left to send
        if self._open == "tool_use" or idx in self._pending:
            slot = self._pending.setdefault(idx, ["", "", ""])
            slot[0] = d.tool_id or slot[0]
            slot[1] = d.tool_name or slot[1]
            slot[2] += d.tool_arguments
            return b""
        return self._tool_block(idx, d.tool_id or f"toolu_{idx}", d.tool_name or "",
                                d.tool_arguments)

    def _tool_block(self, idx: int, tid: str, name: str, args: str) -> bytes:
        out = self._open_block({"type": "tool_use", "id": tid, "name": name, "input": {}})
        self._open_tool = idx
        if args:
            out += self._delta({"type": "input_json_delta", "partial_json": args})
        return out

    def _flush(self) -> bytes:
        out = self._close_block()
        for idx in sorted(self._pending):
            tid, name, args = self._pending[idx]
            out += self._tool_block(idx, tid or f"toolu_{idx}", name, args) + self._close_block()
        self._pending.clear()
        return out

    def close(self, comment: bytes = b"") -> bytes:
        """Close the open block, send waiting tool calls, message_delta, message_stop."""
        if self._relayed:  # the upstream's message_delta went out already
            return comment + _STOP_EVENT
        out = b"" if self._started else self._start()
        out += self._flush()
        delta = {"type": "message_delta",
                 "delta": {"stop_reason": stop_reason(self.finish_reason, self._tools),
                           "stop_sequence": None},
                 "usage": _usage(self.usage)}
        return out + event(b"message_delta", orjson.dumps(delta)) + comment + _STOP_EVENT

    def fail(self, message: str, comment: bytes = b"") -> bytes:
        """End a started stream with Anthropic's ``error`` event."""
        out = b"" if self._started else self._start()
        return out + error_event(message) + comment
