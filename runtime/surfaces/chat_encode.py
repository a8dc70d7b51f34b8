"""Encoders of the chat-completions surface: the JSON answer, the SSE chunk
stream, and OpenAI-shaped error bodies (``{"error": {message, type, param,
code}}``), whole or in-band after a stream has started.

Stream chunks are built from a pre-encoded prefix and suffix (id, created and
model never change within a stream), so the per-chunk work is one small
``orjson.dumps`` of the delta.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Final

import orjson
from interlock.runtime.canonical import CanonicalResponse, Delta, FinishReason, Usage
from interlock.runtime.errors import (
    NoCandidateError,
    RequestError,
    RouterError,
    UpstreamHTTPError,
)
from interlock.runtime.providers.raw import RawResponse
from interlock.runtime.sse import DONE_EVENT

_TYPES: Final = {400: "invalid_request_error", 401: "authentication_error",
                 403: "permission_error", 404: "invalid_request_error",
                 409: "invalid_request_error", 413: "invalid_request_error",
                 415: "invalid_request_error", 422: "invalid_request_error",
                 429: "rate_limit_error", 503: "service_unavailable"}


def error_type_for(status: int) -> str:
    return _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


def openai_error_body(
    status: int, message: str, type: str | None = None, param: str | None = None,
    code: str | None = None,
) -> bytes:
    """OpenAI's error JSON; ``type`` defaults from the status."""
    return orjson.dumps({"error": {"message": message, "type": type or error_type_for(status),
                                   "param": param, "code": code}})


def error_response(exc: RouterError) -> tuple[int, bytes]:
    """(status, body) to answer ``exc`` with on this surface.

    An upstream's 4xx/5xx keeps its status; its body goes back as it came when it
    is already an OpenAI error object, otherwise its message is wrapped (an
    Ollama ``{"error": "..."}`` becomes ``{"error": {"message": ...}}``).
    """
    if isinstance(exc, RequestError):
        return exc.status, openai_error_body(exc.status, exc.message, exc.type, exc.param,
                                             exc.code)
    if isinstance(exc, UpstreamHTTPError):
        return exc.status, upstream_error_body(exc)
    if isinstance(exc, NoCandidateError):
        return exc.status, openai_error_body(exc.status, exc.message, code="no_candidate")
    return exc.status, openai_error_body(exc.status, str(exc) or exc.message,
                                         code=type(exc).__name__)


def upstream_error_body(exc: UpstreamHTTPError) -> bytes:
    try:
        data = orjson.loads(exc.body) if exc.body else None
    except orjson.JSONDecodeError:
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str) \
            and isinstance(data, dict) and data.get("type") != "error":
        return exc.body  # already OpenAI-shaped (Anthropic's has a top-level "type")
    if isinstance(err, dict):  # e.g. Anthropic {"type": "error", "error": {"type", "message"}}
        message = str(err.get("message") or err)
    elif err is not None:
        message = str(err)
    else:
        message = exc.body.decode("utf-8", "replace")[:2000] or f"upstream answered {exc.status}"
    return openai_error_body(exc.status, f"{exc.provider}: {message}", code="upstream_error")


def _usage(u: Usage | None) -> dict[str, int] | None:
    if u is None:
        return None
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens}


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def encode_chat_response(resp: CanonicalResponse, *, model_name: str) -> dict[str, Any]:
    """A ``chat.completion`` object; ``model_name`` is what the client is told.

    An answer from an openai-wire upstream (``RawResponse``) is relayed as it came
    (:func:`relay_chat_response`); any other is built from the canonical fields."""
    if isinstance(resp, RawResponse) and resp.raw:
        return relay_chat_response(resp.raw, resp, model_name)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": resp.text if resp.text or not resp.tool_calls else None,
        "refusal": None,
    }
    if resp.tool_calls:
        message["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}}
                                 for c in resp.tool_calls]
    if resp.thinking:
        message["reasoning_content"] = resp.thinking
    out: dict[str, Any] = {
        "id": resp.id or new_id(), "object": "chat.completion",
        "created": resp.created or int(time.time()), "model": model_name,
        "choices": [{"index": 0, "message": message, "finish_reason": resp.finish_reason,
                     "logprobs": None}],
    }
    u = resp.usage  # _usage(), inlined: once per answer
    if u is not None:
        out["usage"] = {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
                        "total_tokens": u.input_tokens + u.output_tokens}
    return out


def relay_chat_response(raw: dict[str, Any], resp: CanonicalResponse,
                        model_name: str) -> dict[str, Any]:
    """An openai-wire upstream's ``chat.completion`` as the client gets it.

    Everything the upstream sent stays (``system_fingerprint``, ``service_tier``,
    ``logprobs``, the usage details, every choice of ``n``), with ``model`` renamed.
    What a client may rely on and a local server may leave out is filled in (``id``,
    ``object``, ``created``, the first choice's ``index`` and ``finish_reason``), and
    the first choice's content is the verified text when verification changed it (a
    confidence line stripped, JSON healed)."""
    out = {**raw, "model": model_name}
    if not out.get("id"):
        out["id"] = resp.id or new_id()
    if "object" not in out:
        out["object"] = "chat.completion"
    if not out.get("created"):
        out["created"] = resp.created or int(time.time())
    choices = out.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return out
    first = choices[0]
    msg = first.get("message")
    content = msg.get("content") if isinstance(msg, dict) else None
    text_changed = isinstance(msg, dict) and (
        isinstance(content, str) or content is None) and (content or "") != resp.text
    no_reason = not isinstance(first.get("finish_reason"), str)
    if text_changed or no_reason or "index" not in first:
        fixed = {**first, "index": first.get("index", 0)}
        if no_reason:
            fixed["finish_reason"] = resp.finish_reason
        if text_changed and isinstance(msg, dict):
            fixed["message"] = {**msg, "content": resp.text}
        out["choices"] = [fixed, *choices[1:]]
    return out


def encode_error_chunk(
    message: str, *, type: str = "server_error", code: str | None = None,
    param: str | None = None,
) -> bytes:
    """An in-band error event for a stream that already started.

    The OpenAI SDKs raise on a chunk carrying ``error``.  No ``[DONE]`` follows:
    a client that ignores the error still sees a stream that did not finish.
    """
    return b"data: " + orjson.dumps({"error": {"message": message, "type": type,
                                               "param": param, "code": code}}) + b"\n\n"


class ChatStreamEncoder:
    """Deltas → ``chat.completion.chunk`` SSE bytes.

    ``encode(delta)`` returns the bytes to send for one delta (possibly empty);
    the first call also emits the role chunk.  ``finish()`` emits the finish
    chunk if the upstream sent none, exactly one usage chunk when the client
    asked (``include_usage``), then ``data: [DONE]``.
    """

    __slots__ = ("_head", "_tail", "_include_usage", "_started", "_finished", "usage",
                 "finish_reason", "_tools")

    def __init__(self, *, model_name: str, include_usage: bool = False,
                 id: str | None = None, created: int | None = None) -> None:
        self._head = (b'data: {"id":' + orjson.dumps(id or new_id())
                      + b',"object":"chat.completion.chunk","created":'
                      + str(created or int(time.time())).encode()
                      + b',"model":' + orjson.dumps(model_name))
        self._tail = b',"logprobs":null}]}\n\n'
        self._include_usage = include_usage
        self._started = False
        self._finished = False
        self._tools = False
        #: the last usage the upstream reported (for records), None if none
        self.usage: Usage | None = None
        self.finish_reason: FinishReason | None = None

    def _chunk(self, delta: bytes, finish: bytes = b"null") -> bytes:
        return (self._head + b',"choices":[{"index":0,"delta":' + delta
                + b',"finish_reason":' + finish + self._tail)

    def start(self) -> bytes:
        """The role chunk (sent once; ``encode`` sends it if needed)."""
        if self._started:
            return b""
        self._started = True
        return self._chunk(b'{"role":"assistant","content":""}')

    def encode(self, d: Delta) -> bytes:
        out = b"" if self._started else self.start()
        if d.usage is not None:
            self.usage = d.usage
        if self._finished:
            return out
        if d.text or d.thinking:
            body: dict[str, Any] = {"content": d.text} if d.text else {}
            if d.thinking:
                body["reasoning_content"] = d.thinking
            out += self._chunk(orjson.dumps(body))
        if d.tool_index is not None:
            self._tools = True
            tc: dict[str, Any] = {"index": d.tool_index}
            if d.tool_id is not None:
                tc["id"] = d.tool_id
                tc["type"] = "function"
            fn: dict[str, str] = {"arguments": d.tool_arguments}
            if d.tool_name is not None:
                fn = {"name": d.tool_name, "arguments": d.tool_arguments}
            tc["function"] = fn
            out += self._chunk(orjson.dumps({"tool_calls": [tc]}))
        if d.finish_reason is not None:
            out += self._finish(d.finish_reason)
        return out

    def _finish(self, reason: FinishReason) -> bytes:
        self._finished = True
        if reason == "stop" and self._tools:
            reason = "tool_calls"
        self.finish_reason = reason
        return self._chunk(b"{}", b'"' + reason.encode() + b'"')

    def finish(self, comment: bytes = b"") -> bytes:
        """Close the stream: finish chunk if missing, one usage chunk if asked,
        ``comment`` (an SSE comment line, e.g. the trace), then [DONE]."""
        out = self.start()
        if not self._finished:
            out += self._finish("stop")
        if self._include_usage:
            usage = _usage(self.usage) or _usage(Usage())
            out += self._head + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"
        return out + comment + DONE_EVENT

    def close(self, comment: bytes = b"") -> bytes:
        """The normal end of the stream (``StreamEncoder`` protocol)."""
        return self.finish(comment)

    def fail(self, message: str, comment: bytes = b"") -> bytes:
        """End a started stream with an in-band error chunk, then [DONE]."""
        return encode_error_chunk(message, code="upstream_stream_error") + comment + DONE_EVENT
