"""The openai wire's answer decoding, its raw-body fast path and the chat surface's
answer encoding give what they gave before issue 6 (the old code is kept below).

``decode_response`` now inlines ``finish_reason``/``usage_of`` and skips the tool-call
comprehension for an answer without calls; ``encode_request`` copies the client's
body and drops router keys only when one is there; ``encode_chat_response`` inlines
``_usage``.  Equal results, equal key order (bodies are serialised), equal errors.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.runtime.canonical import CanonicalRequest, CanonicalResponse, ToolCall, Usage
from interlock.runtime.errors import UpstreamError
from interlock.runtime.providers import openai
from interlock.runtime.providers.openai import ROUTER_KEYS, finish_reason, usage_of
from interlock.runtime.surfaces import chat_encode
from interlock.runtime.table import ModelEntry, Price, Speed

# ----------------------------------------------------------------- the old code, verbatim


def old_decode_response(data: Any, provider: str, model: str) -> CanonicalResponse:
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) \
            or not data["choices"]:
        raise UpstreamError(provider, model, "answer has no choices")
    choice = data["choices"][0]
    msg = choice.get("message") or {}
    calls = [
        ToolCall(str(tc.get("id") or f"call_{i}"), str((tc.get("function") or {}).get("name")),
                 str((tc.get("function") or {}).get("arguments") or "{}"))
        for i, tc in enumerate(msg.get("tool_calls") or [])
    ]
    thinking = msg.get("reasoning_content") or msg.get("reasoning") or ""
    return CanonicalResponse(
        id=str(data.get("id") or ""), model=str(data.get("model") or model),
        text=msg.get("content") or "", tool_calls=calls,
        finish_reason=finish_reason(choice.get("finish_reason")),
        usage=usage_of(data.get("usage")),
        thinking=thinking if isinstance(thinking, str) else "",
        created=int(data.get("created") or time.time()),
    )


def old_raw_body(req: CanonicalRequest, model: ModelEntry, *, stream: bool) -> dict[str, Any]:
    # encode_request's chat fast path as it was (the rest of the function is unchanged)
    body = {k: v for k, v in req.raw.items() if k not in ROUTER_KEYS}
    body["model"] = model.upstream_id
    body["stream"] = stream
    if stream:
        opts = body.get("stream_options")
        body["stream_options"] = {**opts, "include_usage": True} if isinstance(opts, dict) \
            else {"include_usage": True}
    else:
        body.pop("stream_options", None)
    return body


def _old_usage(u: Usage | None) -> dict[str, int] | None:
    if u is None:
        return None
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens}


def old_encode_chat_response(resp: CanonicalResponse, *, model_name: str) -> dict[str, Any]:
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
        "id": resp.id or chat_encode.new_id(), "object": "chat.completion",
        "created": resp.created or int(time.time()), "model": model_name,
        "choices": [{"index": 0, "message": message, "finish_reason": resp.finish_reason,
                     "logprobs": None}],
    }
    usage = _old_usage(resp.usage)
    if usage is not None:
        out["usage"] = usage
    return out


# ----------------------------------------------------------------- decode_response

_BENCH = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
          "model": "bench-model", "choices": [{"index": 0, "message": {
              "role": "assistant", "content": "Hello from the bench upstream."},
              "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}}

ANSWERS: list[Any] = [
    _BENCH,
    {**_BENCH, "usage": None},
    {**_BENCH, "usage": {"prompt_tokens": None, "completion_tokens": "3"}},
    {**_BENCH, "usage": {}},
    {**_BENCH, "usage": []},
    {**_BENCH, "created": None, "id": None, "model": None},
    {**_BENCH, "created": 0, "id": 5, "model": 7},
    {"choices": [{"message": {"content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
        {"function": {"name": "g"}}, {"function": None}, {}]}, "finish_reason": "tool_calls"}]},
    {"choices": [{"message": {"content": "x", "tool_calls": []}, "finish_reason": "length"}]},
    {"choices": [{"message": {"content": "x", "tool_calls": None}}]},
    {"choices": [{"message": {"content": "x", "reasoning_content": "think"},
                  "finish_reason": "content_filter"}]},
    {"choices": [{"message": {"content": "x", "reasoning": "hmm"}, "finish_reason": "eos"}]},
    {"choices": [{"message": {"content": "x", "reasoning": ["not", "a", "str"]},
                  "finish_reason": ["odd"]}]},
    {"choices": [{"message": {"content": "x"}, "finish_reason": "function_call"}]},
    {"choices": [{"message": {"content": "x"}, "finish_reason": "weird"}]},
    {"choices": [{"message": {"content": "x"}, "finish_reason": None}]},
    {"choices": [{"message": None}]},
    {"choices": [{}]},
    {"choices": [{"message": {"content": ""}}, {"message": {"content": "second"}}]},
    # errors
    {"choices": []},
    {"choices": None},
    {"choices": {}},
    {"choices": "abc"},
    {"choices": 0},
    {"choices": {"0": {}}},
    {},
    [],
    None,
    "text",
    {"error": {"message": "boom"}},
    {"choices": ["not a dict"]},
    {"choices": [{"message": "not a dict"}]},
    {**_BENCH, "usage": {"prompt_tokens": "x"}},
    {"choices": [{"message": {"content": "x", "tool_calls": {"a": 1}}}]},
]


def _outcome(fn: Any, data: Any) -> Any:
    try:
        resp = fn(data, "prov", "model-x")
    except Exception as exc:  # the same error, same message
        return type(exc).__name__, str(exc)
    if not data.get("created"):
        resp.created = -1  # the clock: both took time.time()
    return resp


@pytest.mark.parametrize("data", ANSWERS)
def test_decode_response_gives_what_it_gave(data: Any) -> None:
    assert _outcome(openai.decode_response, data) == _outcome(old_decode_response, data)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(
                         ["id", "function", "name", "arguments", "content", "message",
                          "finish_reason", "usage", "prompt_tokens", "completion_tokens",
                          "reasoning", "reasoning_content", "tool_calls", "choices"]),
                         inner, max_size=4), max_leaves=12)


@settings(max_examples=2000, deadline=None)
@given(_JSON)
def test_decode_response_on_generated_json(data: Any) -> None:
    for shaped in (data, {"choices": [data]}, {"choices": [{"message": data}]},
                   {"choices": [{"message": {"tool_calls": data}}], "usage": data}):
        assert _outcome(openai.decode_response, shaped) == \
            _outcome(old_decode_response, shaped)


# ----------------------------------------------------------------- the raw body

MODEL = ModelEntry(key="p/m", provider="p", upstream_id="m-up", locality="cloud",
                   context_window=1, max_output=1, price=Price(), caps=0,
                   speed=Speed(ttft_ms=1, tokens_per_s=1), quality={})
RAWS: list[dict[str, Any]] = [
    {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    {"messages": [], "model": "auto", "private": True, "trace": 1, "temperature": 0.2},
    {"route": "x", "router": {}, "models": ["a"], "allowed_models": [], "provider": {},
     "model": "auto", "stream": True, "stream_options": {"include_usage": False}},
    {"stream_options": None, "model": "m", "user": "u"},
    {"z": 1, "a": 2, "private": False, "model": "auto", "n": 1},
]


@pytest.mark.parametrize("raw", RAWS)
@pytest.mark.parametrize("stream", [False, True])
def test_the_raw_body_is_what_it_was(raw: dict[str, Any], stream: bool) -> None:
    req = CanonicalRequest(surface="chat", messages=[], raw=raw)
    before = orjson.dumps(raw)
    new = openai.encode_request(req, MODEL, stream=stream)
    old = old_raw_body(req, MODEL, stream=stream)
    assert orjson.dumps(new) == orjson.dumps(old)  # same keys, same order
    assert new is not raw and orjson.dumps(raw) == before  # the client's body untouched


# ----------------------------------------------------------------- the chat answer

RESPONSES = [
    CanonicalResponse(id="r1", model="m", text="hi", usage=Usage(3, 4), created=5),
    CanonicalResponse(id="", model="m", text="", created=0),
    CanonicalResponse(id="r2", model="m", text="", tool_calls=[ToolCall("c", "f", "{}")],
                      finish_reason="tool_calls", usage=Usage(), created=7, thinking="t"),
    CanonicalResponse(id="r3", model="m", text="x", tool_calls=[ToolCall("c", "f", "{}")],
                      created=9, usage=None),
]


@pytest.mark.parametrize("resp", RESPONSES)
def test_the_chat_answer_is_what_it_was(resp: CanonicalResponse) -> None:
    new = chat_encode.encode_chat_response(resp, model_name="auto")
    old = old_encode_chat_response(resp, model_name="auto")
    if not resp.id:
        assert new["id"].startswith("chatcmpl-") and old["id"].startswith("chatcmpl-")
        new["id"] = old["id"] = "x"
    if not resp.created:
        assert abs(new["created"] - old["created"]) <= 1
        new["created"] = old["created"] = 0
    assert orjson.dumps(new) == orjson.dumps(old)
