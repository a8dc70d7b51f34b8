"""Decoding the SSE events of an Anthropic Messages stream into ``Delta``.

``message_start`` (id, model, input tokens), ``content_block_start`` /
``content_block_delta`` (``text_delta``, ``input_json_delta``,
``thinking_delta``) / ``content_block_stop``, ``message_delta`` (stop reason,
usage), ``message_stop``, ``ping`` and ``error`` (raised as ``UpstreamError``).
Tool-use blocks get a stable per-call index; a tool call whose block carried no
argument fragment gets ``{}``.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from interlock.runtime.canonical import Delta, FinishReason, Usage
from interlock.runtime.errors import UpstreamError
from interlock.runtime.providers.raw import raw_delta
from interlock.runtime.sse import SSEEvent

_STOP: Final[dict[str, FinishReason]] = {
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
    "tool_use": "tool_calls", "pause_turn": "stop", "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}


def stop_reason(value: Any) -> FinishReason:
    return _STOP.get(value, "stop") if isinstance(value, str) else "stop"


class EventDecoder:
    """The SSE events of a Messages stream → ``Delta`` lists."""

    __slots__ = ("provider", "model", "blocks", "tools", "input_tokens", "done", "args_seen")

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.blocks: dict[int, int] = {}  # content block index → tool index
        self.args_seen: set[int] = set()
        self.tools = 0
        self.input_tokens = 0
        self.done = False

    def decode(self, data: str) -> list[Delta]:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(self.provider, self.model, f"bad stream event: {exc}") from exc
        if not isinstance(obj, dict):
            return []
        kind = obj.get("type")
        if kind == "content_block_delta":
            d = obj.get("delta") or {}
            dk = d.get("type")
            if dk == "text_delta":
                return [Delta(text=str(d.get("text") or ""))]
            if dk == "input_json_delta":
                idx = self.blocks.get(obj.get("index", -1))
                part = str(d.get("partial_json") or "")
                if idx is None or not part:
                    return []
                self.args_seen.add(idx)
                return [Delta(tool_index=idx, tool_arguments=part)]
            if dk == "thinking_delta":
                return [Delta(thinking=str(d.get("thinking") or ""))]
            return []  # signature_delta, citations_delta ...
        if kind == "content_block_start":
            return self._block_start(obj)
        if kind == "content_block_stop":
            idx = self.blocks.get(obj.get("index", -1))
            if idx is not None and idx not in self.args_seen:
                self.args_seen.add(idx)
                return [Delta(tool_index=idx, tool_arguments="{}")]
            return []
        if kind == "message_start":
            msg = obj.get("message") or {}
            usage = msg.get("usage") or {}
            self.input_tokens = int(usage.get("input_tokens") or 0)
            return [Delta(id=msg.get("id"), model=msg.get("model"),
                          usage=Usage(self.input_tokens, 0))]
        if kind == "message_delta":
            d = obj.get("delta") or {}
            u = obj.get("usage") or {}
            usage = Usage(int(u.get("input_tokens") or self.input_tokens),
                          int(u.get("output_tokens") or 0))
            reason = d.get("stop_reason")
            return [Delta(finish_reason=stop_reason(reason) if reason else None, usage=usage)]
        if kind == "message_stop":
            self.done = True
            return []
        if kind == "error":
            err = obj.get("error") or {}
            text = err.get("message") if isinstance(err, dict) else str(err)
            etype = err.get("type") if isinstance(err, dict) else None
            raise UpstreamError(self.provider, self.model, f"error in stream: {etype}: {text}")
        return []  # ping and future event types

    def _block_start(self, obj: dict[str, Any]) -> list[Delta]:
        block = obj.get("content_block") or {}
        kind = block.get("type")
        if kind == "tool_use":
            idx = self.tools
            self.tools += 1
            self.blocks[obj.get("index", idx)] = idx
            start = block.get("input")
            args = orjson.dumps(start).decode() if start else ""
            if args:
                self.args_seen.add(idx)
            return [Delta(tool_index=idx, tool_id=str(block.get("id") or f"toolu_{idx}"),
                          tool_name=str(block.get("name") or ""), tool_arguments=args)]
        if kind == "text" and block.get("text"):
            return [Delta(text=str(block["text"]))]
        if kind == "thinking" and block.get("thinking"):
            return [Delta(thinking=str(block["thinking"]))]
        return []


def deltas_of(dec: EventDecoder, ev: SSEEvent, relay: bool) -> list[Delta]:
    """The deltas of one event; with ``relay``, exactly one per event (but the final
    ``message_stop``, which the client's encoder writes itself), carrying the event."""
    deltas = dec.decode(ev.data)
    if not relay or dec.done:
        return deltas
    d = deltas[0] if deltas else Delta()
    return [raw_delta(d, event=ev.event, data=ev.data)]
