"""Encoders of the Responses surface: the ``response`` object and its typed SSE
events, each with a ``sequence_number``::

    response.created · response.in_progress
    per message item:   response.output_item.added · response.content_part.added
                        · response.output_text.delta* · response.output_text.done
                        · response.content_part.done · response.output_item.done
    per function call:  response.output_item.added
                        · response.function_call_arguments.delta*
                        · response.function_call_arguments.done · response.output_item.done
    response.completed  (response.incomplete when the output hit max_output_tokens;
                        response.failed when the upstream failed mid-stream)

Function-call items stay open until the end, so argument fragments of parallel
calls may arrive in any order: each event names its item (``item_id``,
``output_index``).  A thinking/reasoning answer becomes one ``reasoning`` item
with the text as its summary.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Final

import orjson
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    FinishReason,
    ToolCall,
    Usage,
)

_INCOMPLETE: Final = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def usage_json(u: Usage | None) -> dict[str, Any]:
    u = u or Usage()
    return {"input_tokens": u.input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": u.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.input_tokens + u.output_tokens}


def envelope(rid: str, created: int, model: str, req: CanonicalRequest, *, status: str,
             output: list[dict[str, Any]], usage: Usage | None = None,
             finish: FinishReason | None = None) -> dict[str, Any]:
    """The ``response`` object around ``output`` (request settings echoed back)."""
    raw = req.raw
    text = raw.get("text") if isinstance(raw.get("text"), dict) else None
    incomplete = _INCOMPLETE.get(finish or "") if status != "in_progress" else None
    if incomplete:
        status = "incomplete"
    return {
        "id": rid, "object": "response", "created_at": created, "status": status,
        "background": False, "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": req.system or None, "max_output_tokens": req.max_tokens,
        "model": model, "output": output,
        "parallel_tool_calls": bool(req.extra.get("parallel_tool_calls", True)),
        "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "store": False, "temperature": req.temperature, "top_p": req.top_p,
        "text": {"format": (text or {}).get("format") or {"type": "text"}},
        "tool_choice": raw.get("tool_choice") or "auto", "tools": raw.get("tools") or [],
        "truncation": "disabled", "metadata": raw.get("metadata") or {},
        "usage": usage_json(usage) if status != "in_progress" else None, "user": None,
    }


def _message_item(iid: str, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] \
        if status == "completed" else []
    return {"type": "message", "id": iid, "status": status, "role": "assistant",
            "content": content}


def _call_item(iid: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": iid, "call_id": call.id, "name": call.name,
            "arguments": call.arguments, "status": status}


def _reasoning_item(text: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": _id("rs_"),
            "summary": [{"type": "summary_text", "text": text}]}


def encode_response(resp: CanonicalResponse, *, model_name: str,
                    req: CanonicalRequest) -> dict[str, Any]:
    """A Responses ``response`` object for a complete answer."""
    output: list[dict[str, Any]] = []
    if resp.thinking:
        output.append(_reasoning_item(resp.thinking))
    if resp.text or not resp.tool_calls:
        output.append(_message_item(_id("msg_"), resp.text, "completed"))
    output += [_call_item(_id("fc_"), c, "completed") for c in resp.tool_calls]
    rid = resp.id if resp.id.startswith("resp_") else _id("resp_")
    return envelope(rid, resp.created or int(time.time()), model_name, req, status="completed",
                    output=output, usage=resp.usage, finish=resp.finish_reason)


class _Call:
    __slots__ = ("item_id", "output_index", "call")

    def __init__(self, item_id: str, output_index: int, call: ToolCall) -> None:
        self.item_id = item_id
        self.output_index = output_index
        self.call = call


class ResponsesStreamEncoder:
    """Deltas → Responses SSE events (``StreamEncoder``)."""

    __slots__ = ("_model", "_req", "_id", "_created", "_seq", "_started", "_output",
                 "_msg", "_msg_index", "_text", "_thinking", "_calls", "usage",
                 "finish_reason")

    def __init__(self, *, model_name: str, req: CanonicalRequest) -> None:
        self._model = model_name
        self._req = req
        self._id = _id("resp_")
        self._created = int(time.time())
        self._seq = 0
        self._started = False
        #: finished output items by output_index (None: still open)
        self._output: list[dict[str, Any] | None] = []
        self._msg: str | None = None  # the open message item's id
        self._msg_index = 0
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._calls: dict[int, _Call] = {}
        self.usage: Usage | None = None
        self.finish_reason: FinishReason | None = None

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **data}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _envelope(self, status: str) -> dict[str, Any]:
        output = [o for o in self._output if o is not None] if status != "in_progress" else []
        return envelope(self._id, self._created, self._model, self._req, status=status,
                        output=output, usage=self.usage, finish=self.finish_reason)

    def _start(self) -> bytes:
        self._started = True
        snap = self._envelope("in_progress")
        return (self._event("response.created", {"response": snap})
                + self._event("response.in_progress", {"response": snap}))

    def _flush_thinking(self) -> bytes:
        if not self._thinking:
            return b""
        item = _reasoning_item("".join(self._thinking))
        self._thinking.clear()
        index = len(self._output)
        self._output.append(item)
        return (self._event("response.output_item.added", {"output_index": index, "item": item})
                + self._event("response.output_item.done", {"output_index": index,
                                                            "item": item}))

    def _open_message(self) -> bytes:
        out = self._flush_thinking()
        self._msg = _id("msg_")
        self._msg_index = len(self._output)
        self._output.append(None)
        self._text = []
        where = {"item_id": self._msg, "output_index": self._msg_index}
        return out + self._event("response.output_item.added", {
            "output_index": self._msg_index,
            "item": _message_item(self._msg, "", "in_progress"),
        }) + self._event("response.content_part.added", {
            **where, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
        })

    def _close_message(self) -> bytes:
        if self._msg is None:
            return b""
        text = "".join(self._text)
        iid, index = self._msg, self._msg_index
        self._msg = None
        item = _message_item(iid, text, "completed")
        self._output[index] = item
        where = {"item_id": iid, "output_index": index, "content_index": 0}
        return (self._event("response.output_text.done", {**where, "text": text,
                                                          "logprobs": []})
                + self._event("response.content_part.done", {**where,
                                                             "part": item["content"][0]})
                + self._event("response.output_item.done", {"output_index": index,
                                                            "item": item}))

    def encode(self, d: Delta) -> bytes:
        if d.usage is not None:
            self.usage = d.usage
        out = b"" if self._started else self._start()
        if d.thinking:
            self._thinking.append(d.thinking)
        if d.text:
            if self._msg is None:
                out += self._open_message()
            self._text.append(d.text)
            out += self._event("response.output_text.delta", {
                "item_id": self._msg, "output_index": self._msg_index, "content_index": 0,
                "delta": d.text, "logprobs": []})
        if d.tool_index is not None:
            out += self._tool(d)
        if d.finish_reason is not None:
            self.finish_reason = d.finish_reason
        return out

    def _tool(self, d: Delta) -> bytes:
        assert d.tool_index is not None
        out = b""
        call = self._calls.get(d.tool_index)
        if call is None:
            out += self._close_message() + self._flush_thinking()
            call = _Call(_id("fc_"), len(self._output),
                         ToolCall(d.tool_id or f"call_{d.tool_index}", d.tool_name or "", ""))
            self._calls[d.tool_index] = call
            self._output.append(None)
            out += self._event("response.output_item.added", {
                "output_index": call.output_index,
                "item": _call_item(call.item_id, call.call, "in_progress")})
        elif d.tool_name and not call.call.name:
            call.call.name = d.tool_name
        if d.tool_arguments:
            call.call.arguments += d.tool_arguments
            out += self._event("response.function_call_arguments.delta", {
                "item_id": call.item_id, "output_index": call.output_index,
                "delta": d.tool_arguments})
        return out

    def _close_calls(self) -> bytes:
        out = b""
        for c in self._calls.values():
            item = _call_item(c.item_id, c.call, "completed")
            self._output[c.output_index] = item
            out += self._event("response.function_call_arguments.done", {
                "item_id": c.item_id, "output_index": c.output_index, "name": c.call.name,
                "arguments": c.call.arguments})
            out += self._event("response.output_item.done", {
                "output_index": c.output_index, "item": item})
        self._calls.clear()
        return out

    def close(self, comment: bytes = b"") -> bytes:
        """Close every open item, then ``response.completed`` (or ``.incomplete``)."""
        out = b"" if self._started else self._start()
        if not self._output and not self._thinking and self._msg is None:
            out += self._open_message()  # an empty answer is still one (empty) message
        out += self._close_message() + self._flush_thinking() + self._close_calls()
        final = self._envelope("completed")
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        return out + comment + self._event(kind, {"response": final})

    def fail(self, message: str, comment: bytes = b"") -> bytes:
        """End a started stream with ``response.failed`` carrying the error."""
        out = b"" if self._started else self._start()
        final = self._envelope("failed")
        final["status"] = "failed"
        final["error"] = {"code": "server_error", "message": message}
        return out + comment + self._event("response.failed", {"response": final})
