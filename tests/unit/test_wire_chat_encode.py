"""Chat-completions encoders: JSON answers, SSE chunk streams, error bodies;
the output is validated with the official openai SDK's own types."""

from __future__ import annotations

from typing import Any

import orjson
from interlock.runtime.canonical import CanonicalResponse, Delta, ToolCall, Usage
from interlock.runtime.errors import (
    NoCandidateError,
    RequestError,
    UpstreamHTTPError,
    UpstreamTimeout,
)
from interlock.runtime.providers.openai import ChunkDecoder
from interlock.runtime.sse import SSEParser
from interlock.runtime.surfaces.chat import (
    ChatStreamEncoder,
    encode_chat_response,
    encode_error_chunk,
    error_response,
    openai_error_body,
)
from openai.types.chat import ChatCompletion, ChatCompletionChunk


def events(raw: bytes) -> list[str]:
    p = SSEParser()
    return [e.data for e in p.feed(raw) + p.close()]


def test_encode_response_text_and_usage() -> None:
    resp = CanonicalResponse(id="r1", model="up", text="hello", usage=Usage(3, 2), created=5)
    out = encode_chat_response(resp, model_name="ollama/qwen3:8b")
    cc = ChatCompletion.model_validate(out)
    assert cc.model == "ollama/qwen3:8b" and cc.choices[0].message.content == "hello"
    assert cc.usage is not None and cc.usage.total_tokens == 5
    assert cc.choices[0].finish_reason == "stop"


def test_encode_response_tool_calls() -> None:
    resp = CanonicalResponse(id="", model="m", tool_calls=[ToolCall("c1", "f", '{"a":1}')],
                             finish_reason="tool_calls")
    out = encode_chat_response(resp, model_name="m")
    cc = ChatCompletion.model_validate(out)
    msg = cc.choices[0].message
    assert msg.content is None and msg.tool_calls is not None
    assert msg.tool_calls[0].function.arguments == '{"a":1}'
    assert cc.id.startswith("chatcmpl-") and "usage" not in out


def run_encoder(deltas: list[Delta], include_usage: bool) -> list[dict[str, Any] | str]:
    enc = ChatStreamEncoder(model_name="auto", include_usage=include_usage, id="chatcmpl-1",
                            created=9)
    raw = b"".join(enc.encode(d) for d in deltas) + enc.finish()
    out: list[dict[str, Any] | str] = []
    for data in events(raw):
        if data == "[DONE]":
            out.append(data)
            continue
        obj = orjson.loads(data)
        ChatCompletionChunk.model_validate(obj)
        out.append(obj)
    return out


def test_stream_text_role_first_finish_usage_done() -> None:
    chunks = run_encoder([Delta(text="Hel", id="up-1"), Delta(text="lo"),
                          Delta(finish_reason="stop"), Delta(usage=Usage(4, 2))], True)
    assert chunks[-1] == "[DONE]"
    objs = [c for c in chunks if isinstance(c, dict)]
    assert objs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in objs
                   if c["choices"]) == "Hello"
    usage_chunks = [c for c in objs if c.get("usage")]
    assert len(usage_chunks) == 1 and usage_chunks[0] is objs[-1]
    assert usage_chunks[0]["choices"] == [] and usage_chunks[0]["usage"]["total_tokens"] == 6
    assert [c["choices"][0]["finish_reason"] for c in objs if c["choices"]
            and c["choices"][0]["finish_reason"]] == ["stop"]
    assert all(c["id"] == "chatcmpl-1" and c["model"] == "auto" for c in objs)


def test_stream_without_include_usage_has_no_usage_chunk_but_records_it() -> None:
    enc = ChatStreamEncoder(model_name="m")
    raw = enc.encode(Delta(text="x")) + enc.encode(Delta(usage=Usage(1, 1))) + enc.finish()
    assert b'"usage"' not in raw and raw.endswith(b"data: [DONE]\n\n")
    assert enc.usage == Usage(1, 1) and enc.finish_reason == "stop"


def test_usage_chunk_is_emitted_once_even_if_upstream_repeats_it() -> None:
    chunks = run_encoder([Delta(text="a", usage=Usage(1, 1)), Delta(usage=Usage(2, 2)),
                          Delta(finish_reason="stop", usage=Usage(3, 3))], True)
    usage = [c for c in chunks if isinstance(c, dict) and c.get("usage")]
    assert len(usage) == 1 and usage[0]["usage"]["completion_tokens"] == 3


def test_stream_tool_calls_and_finish_fixed_to_tool_calls() -> None:
    chunks = run_encoder([
        Delta(tool_index=0, tool_id="c1", tool_name="f", tool_arguments=""),
        Delta(tool_index=0, tool_arguments='{"a":'),
        Delta(tool_index=1, tool_id="c2", tool_name="g", tool_arguments="{}"),
        Delta(tool_index=0, tool_arguments="1}"),
        Delta(finish_reason="stop"),
    ], False)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for c in chunks:
        if not isinstance(c, dict):
            continue
        ch = c["choices"][0]
        finish = ch["finish_reason"] or finish
        for tc in ch["delta"].get("tool_calls", []):
            slot = calls.setdefault(tc["index"], {"id": "", "name": "", "args": ""})
            slot["id"] += tc.get("id", "")
            slot["name"] += tc["function"].get("name", "")
            slot["args"] += tc["function"]["arguments"]
    assert calls == {0: {"id": "c1", "name": "f", "args": '{"a":1}'},
                     1: {"id": "c2", "name": "g", "args": "{}"}}
    assert finish == "tool_calls"


def test_finish_without_upstream_finish_still_closes_properly() -> None:
    chunks = run_encoder([Delta(text="x")], False)
    assert chunks[-1] == "[DONE]"
    last = chunks[-2]
    assert isinstance(last, dict) and last["choices"][0]["finish_reason"] == "stop"


def test_openai_stream_passes_through_decoder_and_encoder_unchanged() -> None:
    """Upstream chunks → ChunkDecoder → ChatStreamEncoder keeps text, tools, usage."""
    up = [
        {"id": "u", "model": "gpt", "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                       "content": ""}}]},
        {"id": "u", "choices": [{"index": 0, "delta": {"content": "héllo"}}]},
        {"id": "u", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "c1", "type": "function",
             "function": {"name": "f", "arguments": "{}"}}]}}]},
        {"id": "u", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"id": "u", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6}},
    ]
    dec = ChunkDecoder("p", "gpt")
    deltas = [d for obj in up for d in dec.decode(orjson.dumps(obj).decode())]
    assert dec.decode("[DONE]") == [] and dec.done
    chunks = run_encoder(deltas, True)
    objs = [c for c in chunks if isinstance(c, dict)]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in objs
                   if c["choices"]) == "héllo"
    assert objs[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 6,
                                 "total_tokens": 11}


def test_error_bodies() -> None:
    body = orjson.loads(openai_error_body(400, "bad", param="messages", code="x"))
    assert body == {"error": {"message": "bad", "type": "invalid_request_error",
                              "param": "messages", "code": "x"}}
    assert orjson.loads(openai_error_body(500, "boom"))["error"]["type"] == "server_error"
    chunk = encode_error_chunk("upstream died", code="upstream_error")
    (data,) = events(chunk)
    assert orjson.loads(data)["error"]["message"] == "upstream died"
    assert b"[DONE]" not in chunk


def test_error_response_for_each_error_kind() -> None:
    st, b = error_response(RequestError(413, "too big", code="body_too_large"))
    assert st == 413 and orjson.loads(b)["error"]["code"] == "body_too_large"
    native = b'{"error":{"message":"quota","type":"insufficient_quota","param":null,"code":"q"}}'
    st, b = error_response(UpstreamHTTPError("openai", "m", 429, native))
    assert st == 429 and b == native
    st, b = error_response(UpstreamHTTPError("ollama", "m", 404, b'{"error":"model not found"}'))
    assert st == 404 and orjson.loads(b)["error"]["message"] == "ollama: model not found"
    st, b = error_response(UpstreamHTTPError("x", "m", 502, b"<html>bad gateway</html>",
                                             content_type="text/html"))
    assert st == 502 and "bad gateway" in orjson.loads(b)["error"]["message"]
    st, b = error_response(NoCandidateError(503, "private request: no local model answered"))
    assert st == 503 and orjson.loads(b)["error"]["type"] == "service_unavailable"
    st, b = error_response(UpstreamTimeout("p", "m", "timed out"))
    assert st == 504 and orjson.loads(b)["error"]["type"] == "server_error"
