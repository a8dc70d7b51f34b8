"""decode_chat: valid bodies become canonical requests; each bad input is a 400
naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from interlock.runtime.errors import RequestError
from interlock.runtime.surfaces.chat import decode_chat

U = {"role": "user", "content": "hi"}


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [U], **kw}


def test_minimal_and_fields() -> None:
    b = body(temperature=0.5, top_p=1, max_tokens=10, stop="END", seed=3, stream=True,
             stream_options={"include_usage": True}, private=True, trace=True,
             models=["a", "b"], allowed_models=["c"], provider={"order": ["groq"]},
             user="u", frequency_penalty=0.1)
    req = decode_chat(b)
    assert req.surface == "chat" and req.model == "auto" and req.raw is b
    assert (req.temperature, req.top_p, req.max_tokens, req.stop, req.seed) \
        == (0.5, 1.0, 10, ["END"], 3)
    assert req.stream and req.include_usage and req.private is True and req.trace
    assert req.controls == {"models": ["a", "b"], "allowed_models": ["c"],
                            "provider": {"order": ["groq"]}}
    assert req.extra == {"user": "u", "frequency_penalty": 0.1}
    assert req.messages[0].role == "user" and req.messages[0].text() == "hi"


def test_max_completion_tokens_preferred_and_include_usage_needs_stream() -> None:
    req = decode_chat(body(max_tokens=5, max_completion_tokens=9,
                           stream_options={"include_usage": True}))
    assert req.max_tokens == 9 and not req.include_usage


def test_messages_of_every_kind() -> None:
    req = decode_chat({"messages": [
        {"role": "developer", "content": "rules"},
        {"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png",
                                                "detail": "low"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}]},
    ], "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                                                   "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_object"}})
    sys_, usr, asst, tool = req.messages
    assert sys_.role == "system" and req.system == ""
    assert usr.name == "ann"
    img = usr.parts[1]
    assert (img.type, img.media_type, img.data) == ("image", "image/jpeg", "QUJD")
    assert usr.parts[2].image_url == "https://x.test/a.png" and usr.parts[2].data is None
    assert [(p.type, p.tool_call_id, p.name) for p in asst.parts] == [("tool_call", "c1", "f")]
    assert (tool.parts[0].type, tool.parts[0].text, tool.parts[0].tool_call_id) \
        == ("tool_result", "ok", "c1")
    assert req.tools[0].name == "f" and req.tool_choice["function"]["name"] == "f"
    assert req.response_format == {"type": "json_object"}


def test_response_format_text_is_none() -> None:
    assert decode_chat(body(response_format={"type": "text"})).response_format is None


BAD: list[tuple[Any, str | None]] = [
    ([], None),
    ({"model": "auto"}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [U, U, {"role": "robot", "content": "x"}]}, "messages[2].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
     "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "a"}]}]},
     "messages[0].tool_calls[0].function.name"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "a", "function": {"name": "f", "arguments": {"x": 1}}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "assistant"}]}, "messages[0].content"),
    ({"messages": [U], "model": 3}, "model"),
    ({"messages": [U], "temperature": "hot"}, "temperature"),
    ({"messages": [U], "temperature": 3}, "temperature"),
    ({"messages": [U], "temperature": True}, "temperature"),
    ({"messages": [U], "top_p": 1.5}, "top_p"),
    ({"messages": [U], "max_tokens": "10"}, "max_tokens"),
    ({"messages": [U], "max_tokens": 0}, "max_tokens"),
    ({"messages": [U], "max_tokens": 2.5}, "max_tokens"),
    ({"messages": [U], "max_completion_tokens": False}, "max_completion_tokens"),
    ({"messages": [U], "stop": [1]}, "stop"),
    ({"messages": [U], "stop": 7}, "stop"),
    ({"messages": [U], "seed": 1.5}, "seed"),
    # a huge JSON integer parses as a float that is_integer(); it must not reach an
    # upstream encoder as an int beyond 64 bits (found by the schemathesis fuzz test)
    ({"messages": [U], "seed": 1.2345678901234568e+29}, "seed"),
    ({"messages": [U], "seed": 2**63}, "seed"),
    ({"messages": [U], "max_tokens": 1e20}, "max_tokens"),
    ({"messages": [U], "n": 2}, "n"),
    ({"messages": [U], "n": "1"}, "n"),
    ({"messages": [U], "stream": "yes"}, "stream"),
    ({"messages": [U], "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ({"messages": [U], "stream_options": []}, "stream_options"),
    ({"messages": [U], "tools": {}}, "tools"),
    ({"messages": [U], "tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"messages": [U], "tools": [{"type": "function", "function": {"name": ""}}]},
     "tools[0].function.name"),
    ({"messages": [U], "tools": [{"type": "function", "function": {
        "name": "f", "parameters": "x"}}]}, "tools[0].function.parameters"),
    ({"messages": [U], "tool_choice": "always"}, "tool_choice"),
    ({"messages": [U], "response_format": {"type": "xml"}}, "response_format.type"),
    ({"messages": [U], "response_format": {"type": "json_schema"}},
     "response_format.json_schema"),
    ({"messages": [U], "response_format": {"type": "json_schema",
                                           "json_schema": {"schema": {}}}},
     "response_format.json_schema.name"),
    ({"messages": [U], "private": "yes"}, "private"),
    ({"messages": [U], "models": "gpt"}, "models"),
    ({"messages": [U], "provider": ["x"]}, "provider"),
    ({"messages": [U], "functions": []}, "functions"),
]


@pytest.mark.parametrize(("raw", "param"), BAD, ids=[str(p) for _, p in BAD])
def test_bad_input_is_400_naming_the_field(raw: Any, param: str | None) -> None:
    with pytest.raises(RequestError) as ei:
        decode_chat(raw)
    err = ei.value
    assert err.status == 400 and err.type == "invalid_request_error"
    assert err.param == param
    assert err.message
