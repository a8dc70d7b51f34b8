"""The ollama-wire adapter against a real fake Ollama server on loopback."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from fakes.fixtures import (
    Behaviour,
    FakeOllama,
    FakeToolCall,
    model_entry,
    provider_entry,
)
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    Message,
    Part,
    ToolSpec,
)
from interlock.runtime.errors import (
    RequestError,
    UpstreamConnectError,
    UpstreamHTTPError,
    UpstreamTimeout,
)
from interlock.runtime.providers.registry import Adapters
from interlock.runtime.surfaces.chat import decode_chat


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama(models=["fake-model:latest", "qwen3:8b"]) as up:
        yield up


T = TypeVar("T")
PNG = base64.b64encode(b"\x89PNG fake").decode()


def run(fn: Callable[[Adapters], Awaitable[T]]) -> T:
    async def main() -> T:
        adapters = Adapters()
        try:
            return await fn(adapters)
        finally:
            await adapters.close()
    return asyncio.run(main())


def user(text: str) -> CanonicalRequest:
    return CanonicalRequest(surface="chat", messages=[Message("user", [Part("text", text)])])


def entries(up: FakeOllama) -> tuple[Any, Any]:
    p = provider_entry(up, name="ollama", wire="ollama")
    return p, model_entry(p, "qwen3:8b")


def send(up: FakeOllama, req: CanonicalRequest, *, budget: float = 5.0) -> CanonicalResponse:
    p, m = entries(up)
    return run(lambda a: a.for_wire("ollama").send(req, m, p,
                                                   deadline=time.monotonic() + budget))


def stream(up: FakeOllama, req: CanonicalRequest, *, budget: float = 5.0) -> list[Delta]:
    p, m = entries(up)

    async def go(a: Adapters) -> list[Delta]:
        return [d async for d in a.for_wire("ollama").stream(
            req, m, p, deadline=time.monotonic() + budget)]
    return run(go)


def test_plain_and_usage(fake_ollama: FakeOllama) -> None:
    fake_ollama.push(Behaviour(text="hi from {model}", usage=(12, 5)))
    resp = send(fake_ollama, user("x"))
    assert resp.text == "hi from qwen3:8b" and resp.finish_reason == "stop"
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) \
        == (12, 5)
    (rec,) = fake_ollama.requests
    assert rec.path == "/api/chat" and rec.json["stream"] is False
    assert rec.json["messages"] == [{"role": "user", "content": "x"}]


def test_stream_ndjson(fake_ollama: FakeOllama) -> None:
    fake_ollama.push(Behaviour(text="uno dos tres", usage=(4, 3), chunk_chars=2))
    deltas = stream(fake_ollama, user("x"))
    assert "".join(d.text for d in deltas) == "uno dos tres"
    (last,) = [d for d in deltas if d.finish_reason]
    assert last.finish_reason == "stop" and last.usage is not None \
        and last.usage.output_tokens == 3
    assert fake_ollama.bodies()[0]["stream"] is True


def test_stream_survives_arbitrary_framing(fake_ollama: FakeOllama) -> None:
    body = (b'{"model":"m","message":{"role":"assistant","content":"h\xc3\xa9"},"done":false}\n'
            b'{"model":"m","message":{"role":"assistant","content":"llo"},"done":false}\r\n'
            b'{"model":"m","message":{"role":"assistant","content":""},"done":true,'
            b'"done_reason":"length","prompt_eval_count":1,"eval_count":2}\n')
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    fake_ollama.push(Behaviour(raw_chunks=pieces))
    deltas = stream(fake_ollama, user("x"))
    assert "".join(d.text for d in deltas) == "héllo"
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["length"]


def test_options_format_and_tools_mapping(fake_ollama: FakeOllama) -> None:
    req = decode_chat({
        "model": "auto", "messages": [{"role": "system", "content": "sys"},
                                      {"role": "user", "content": "q"}],
        "temperature": 0.2, "top_p": 0.5, "seed": 7, "stop": ["X", "Y"], "max_tokens": 99,
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "r", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object"}}}],
    })
    send(fake_ollama, req)
    body = fake_ollama.bodies()[0]
    assert body["options"] == {"temperature": 0.2, "top_p": 0.5, "seed": 7,
                               "stop": ["X", "Y"], "num_predict": 99}
    assert body["format"] == {"type": "object", "properties": {"a": {"type": "string"}}}
    assert body["tools"] == [{"type": "function", "function": {
        "name": "f", "description": "", "parameters": {"type": "object"}}}]
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    for key in ("private", "trace", "temperature", "response_format"):
        assert key not in body


def test_json_object_format(fake_ollama: FakeOllama) -> None:
    req = user("x")
    req.response_format = {"type": "json_object"}
    send(fake_ollama, req)
    assert fake_ollama.bodies()[0]["format"] == "json"


def test_images_inline_base64_and_http_refused(fake_ollama: FakeOllama) -> None:
    req = decode_chat({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]})
    send(fake_ollama, req)
    assert fake_ollama.bodies()[0]["messages"][0] == {"role": "user", "content": "what",
                                                      "images": [PNG]}
    req = decode_chat({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    with pytest.raises(RequestError) as ei:
        send(fake_ollama, req)
    assert ei.value.status == 400 and ei.value.param == "messages[0].content[0]"
    assert len(fake_ollama.requests) == 1  # the refused request never left


def test_tool_history_arguments_become_objects(fake_ollama: FakeOllama) -> None:
    req = decode_chat({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "-3C"},
    ]})
    send(fake_ollama, req)
    msgs = fake_ollama.bodies()[0]["messages"]
    assert msgs[1] == {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}
    assert msgs[2] == {"role": "tool", "content": "-3C", "tool_name": "get_weather"}


def test_tool_calls_answer_ids_synthesised_deterministically(fake_ollama: FakeOllama) -> None:
    calls = [FakeToolCall("f", '{"a": 1}'), FakeToolCall("g", '{"b": [1, 2]}')]
    fake_ollama.push(Behaviour(text="", tool_calls=calls), Behaviour(text="", tool_calls=calls),
                     Behaviour(text="", tool_calls=calls))
    req = user("x")
    req.tools = [ToolSpec("f"), ToolSpec("g")]
    first = send(fake_ollama, req)
    second = send(fake_ollama, req)
    assert first.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("f", '{"a":1}'),
                                                                 ("g", '{"b":[1,2]}')]
    ids = [c.id for c in first.tool_calls]
    assert ids == [c.id for c in second.tool_calls] and len(set(ids)) == 2
    deltas = stream(fake_ollama, req)
    tool = [d for d in deltas if d.tool_index is not None]
    assert [(d.tool_index, d.tool_id, d.tool_name) for d in tool] == [
        (0, ids[0], "f"), (1, ids[1], "g")]
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["tool_calls"]


def test_tool_call_ids_kept_when_ollama_sends_them() -> None:
    with FakeOllama(tool_call_ids=True) as up:
        up.push(Behaviour(text="", tool_calls=[FakeToolCall("f", "{}", "call_abc")]))
        assert [c.id for c in send(up, user("x")).tool_calls] == ["call_abc"]


def test_done_reason_length(fake_ollama: FakeOllama) -> None:
    fake_ollama.push(Behaviour(finish_reason="length"))
    assert send(fake_ollama, user("x")).finish_reason == "length"


def test_unknown_model_404_with_ollama_error_body() -> None:
    with FakeOllama(models=["llama3:latest"], strict_models=True) as up:
        with pytest.raises(UpstreamHTTPError) as ei:
            send(up, user("x"))
    assert ei.value.status == 404 and not ei.value.retryable
    assert b"not found" in ei.value.body


def test_503_retry_after_and_drops(fake_ollama: FakeOllama) -> None:
    fake_ollama.push(Behaviour(status=503, retry_after="2"),
                     Behaviour(drop="before_headers"),
                     Behaviour(text="a b c d", drop="mid_stream", drop_after=2))
    with pytest.raises(UpstreamHTTPError) as ei:
        send(fake_ollama, user("x"))
    assert ei.value.retryable and ei.value.retry_after_s == 2.0
    assert b'"error"' in ei.value.body
    with pytest.raises(UpstreamConnectError):
        send(fake_ollama, user("x"))
    with pytest.raises(UpstreamConnectError):
        stream(fake_ollama, user("x"))


def test_stream_that_ends_without_done_is_an_error(fake_ollama: FakeOllama) -> None:
    fake_ollama.push(Behaviour(raw_chunks=[
        b'{"model":"m","message":{"role":"assistant","content":"partial"},"done":false}\n']))
    with pytest.raises(UpstreamConnectError, match="before done"):
        stream(fake_ollama, user("x"))


def test_error_line_mid_stream(fake_ollama: FakeOllama) -> None:
    fake_ollama.push(Behaviour(raw_chunks=[
        b'{"model":"m","message":{"role":"assistant","content":"a"},"done":false}\n',
        b'{"error":"model runner crashed"}\n']))
    with pytest.raises(Exception, match="runner crashed"):
        stream(fake_ollama, user("x"))


def test_deadline(fake_ollama: FakeOllama) -> None:
    fake_ollama.push(Behaviour(delay_s=2.0))
    with pytest.raises(UpstreamTimeout):
        stream(fake_ollama, user("x"), budget=0.3)


def test_tags_probe_version_embed(fake_ollama: FakeOllama) -> None:
    p, _ = entries(fake_ollama)
    m = model_entry(p, "nomic-embed-text", embedding=True)

    async def go(a: Adapters) -> tuple[list[str], bool, Any]:
        w = a.for_wire("ollama")
        dl = time.monotonic() + 5
        return (await w.list_models(p, deadline=dl), await w.probe(p, deadline=dl),
                await w.embed(["x", "y", "z"], m, p, deadline=dl))
    names, ok, emb = run(go)
    assert names == ["fake-model:latest", "qwen3:8b"] and ok
    assert len(emb.vectors) == 3 and emb.input_tokens > 0
    assert [r.path for r in fake_ollama.requests] == ["/api/tags", "/api/version", "/api/embed"]
