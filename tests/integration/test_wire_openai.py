"""The openai-wire adapter against a real fake OpenAI server on loopback."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from fakes.fixtures import (
    Behaviour,
    FakeOpenAI,
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
    UpstreamConnectError,
    UpstreamHTTPError,
    UpstreamTimeout,
)
from interlock.runtime.providers.base import KeyNotSetError
from interlock.runtime.providers.registry import Adapters
from interlock.runtime.surfaces.chat import decode_chat


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["fake-model", "gpt-4o-mini"]) as up:
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
    return CanonicalRequest(surface="messages", messages=[Message("user", [Part("text", text)])])


def send(up: FakeOpenAI, req: CanonicalRequest, *, budget: float = 5.0, **kw: Any
         ) -> CanonicalResponse:
    p = provider_entry(up, name="oa", wire="openai", **kw)
    m = model_entry(p, "gpt-test")
    return run(lambda a: a.for_wire("openai").send(req, m, p,
                                                   deadline=time.monotonic() + budget))


def stream(up: FakeOpenAI, req: CanonicalRequest, *, budget: float = 5.0) -> list[Delta]:
    p = provider_entry(up, name="oa", wire="openai")
    m = model_entry(p, "gpt-test")

    async def go(a: Adapters) -> list[Delta]:
        return [d async for d in a.for_wire("openai").stream(
            req, m, p, deadline=time.monotonic() + budget)]
    return run(go)


def assemble(deltas: list[Delta]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for d in deltas:
        if d.tool_index is None:
            continue
        c = calls.setdefault(d.tool_index, {"id": "", "name": "", "arguments": ""})
        if d.tool_id is not None:
            assert not c["id"], "an id is sent once per call"
            c["id"] = d.tool_id
        if d.tool_name is not None:
            assert not c["name"], "a name is sent once per call"
            c["name"] = d.tool_name
        c["arguments"] += d.tool_arguments
    return calls


def test_plain_text_and_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(text="echo {model}: {last_user}", usage=(11, 7)))
    resp = send(fake_openai, user("ping"))
    assert resp.text == "echo gpt-test: ping"
    assert resp.finish_reason == "stop"
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) \
        == (11, 7)
    (body,) = fake_openai.bodies("/v1/chat/completions")
    assert body["model"] == "gpt-test" and body["stream"] is False
    assert "stream_options" not in body


def test_stream_text_finish_and_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(text="a b c d", usage=(3, 4)))
    deltas = stream(fake_openai, user("x"))
    assert "".join(d.text for d in deltas) == "a b c d"
    assert deltas[0].id and deltas[0].id.startswith("chatcmpl-fake")
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
    usages = [d.usage for d in deltas if d.usage]
    assert len(usages) == 1 and usages[0].output_tokens == 4
    (body,) = fake_openai.bodies()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_chat_fast_path_forwards_raw_body_without_router_keys(fake_openai: FakeOpenAI) -> None:
    raw = {"model": "auto", "messages": [{"role": "user", "content": "hi"}],
           "private": False, "trace": True, "models": ["a"], "provider": {"order": ["x"]},
           "logit_bias": {"50256": -100}, "user": "u1", "temperature": 0.3}
    send(fake_openai, decode_chat(raw))
    (body,) = fake_openai.bodies()
    assert body["model"] == "gpt-test"
    for key in ("private", "trace", "models", "provider"):
        assert key not in body
    assert body["logit_bias"] == {"50256": -100} and body["user"] == "u1"
    assert body["temperature"] == 0.3


def test_parameters_mapped_from_canonical(fake_openai: FakeOpenAI) -> None:
    req = user("hi")
    req.system = "be brief"
    req.stop, req.seed, req.temperature, req.top_p, req.max_tokens = ["END"], 42, 0.1, 0.9, 64
    req.response_format = {"type": "json_schema",
                           "json_schema": {"name": "x", "schema": {"type": "object"}}}
    req.tools = [ToolSpec("get_weather", "weather", {"type": "object",
                                                     "properties": {"city": {"type": "string"}}})]
    req.tool_choice = "auto"
    send(fake_openai, req)
    (body,) = fake_openai.bodies()
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert (body["stop"], body["seed"], body["temperature"], body["top_p"], body["max_tokens"]) \
        == (["END"], 42, 0.1, 0.9, 64)
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == "auto"


def test_images_tool_calls_and_results_encoded(fake_openai: FakeOpenAI) -> None:
    req = CanonicalRequest(surface="messages", messages=[
        Message("user", [Part("text", "what is this"),
                         Part("image", media_type="image/png", data=PNG),
                         Part("image", image_url="https://example.com/a.png")]),
        Message("assistant", [Part("tool_call", tool_call_id="call_9", name="look",
                                   arguments='{"q":1}')]),
        Message("user", [Part("tool_result", text="sunny", tool_call_id="call_9")]),
    ])
    send(fake_openai, req)
    msgs = fake_openai.bodies()[0]["messages"]
    assert msgs[0]["content"][1] == {"type": "image_url",
                                     "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert msgs[0]["content"][2]["image_url"]["url"] == "https://example.com/a.png"
    assert msgs[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "look",
                                                          "arguments": '{"q":1}'}}]}
    assert msgs[2] == {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}


def test_tool_calls_plain_json(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(text="", tool_calls=[FakeToolCall("f", '{"a": 1}', "call_x"),
                                                    FakeToolCall("g", '{"b": 2}', "call_y")]))
    resp = send(fake_openai, user("x"))
    assert resp.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("call_x", "f", '{"a": 1}'), ("call_y", "g", '{"b": 2}')]


@pytest.mark.parametrize("variant", ["split", "repeat_id", "index_zero", "whole", "interleaved"])
def test_streamed_tool_call_variants_assemble_the_same(
    fake_openai: FakeOpenAI, variant: str,
) -> None:
    calls = [FakeToolCall("get_weather", '{"city": "Paris", "unit": "C"}', "call_a"),
             FakeToolCall("get_time", '{"tz": "Europe/Paris"}', "call_b")]
    fake_openai.push(Behaviour(text="", tool_calls=calls, tool_variant=variant))  # type: ignore[arg-type]
    deltas = stream(fake_openai, user("x"))
    assert assemble(deltas) == {
        0: {"id": "call_a", "name": "get_weather", "arguments": calls[0].arguments},
        1: {"id": "call_b", "name": "get_time", "arguments": calls[1].arguments},
    }
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["tool_calls"]


def test_finish_reason_length(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(finish_reason="length"), Behaviour(finish_reason="length"))
    assert send(fake_openai, user("x")).finish_reason == "length"
    assert [d.finish_reason for d in stream(fake_openai, user("x")) if d.finish_reason] \
        == ["length"]


def test_429_with_retry_after_seconds(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(status=429, retry_after="7", error_message="slow down"))
    with pytest.raises(UpstreamHTTPError) as ei:
        send(fake_openai, user("x"))
    err = ei.value
    assert err.status == 429 and err.retryable and err.retry_after_s == 7.0
    assert b"slow down" in err.body and err.content_type.startswith("application/json")


def test_429_with_retry_after_http_date(fake_openai: FakeOpenAI) -> None:
    from email.utils import formatdate
    fake_openai.push(Behaviour(status=429, retry_after=formatdate(time.time() + 30,
                                                                   usegmt=True)))
    with pytest.raises(UpstreamHTTPError) as ei:
        send(fake_openai, user("x"))
    assert ei.value.retry_after_s is not None and 25 <= ei.value.retry_after_s <= 31


def test_500_and_400_statuses(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(status=500), Behaviour(status=400, error_message="bad param"))
    with pytest.raises(UpstreamHTTPError) as e500:
        send(fake_openai, user("x"))
    assert e500.value.status == 500 and e500.value.retryable
    with pytest.raises(UpstreamHTTPError) as e400:
        stream(fake_openai, user("x"))
    assert e400.value.status == 400 and not e400.value.retryable
    assert b"bad param" in e400.value.body


def test_drop_before_headers_is_connect_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(drop="before_headers"), Behaviour(drop="before_headers"))
    with pytest.raises(UpstreamConnectError):
        send(fake_openai, user("x"))
    with pytest.raises(UpstreamConnectError):
        stream(fake_openai, user("x"))


def test_drop_mid_stream_raises_from_the_iterator_after_deltas(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(text="one two three four five", drop="mid_stream",
                               drop_after=3))
    p = provider_entry(fake_openai, name="oa", wire="openai")
    m = model_entry(p, "gpt-test")
    got: list[Delta] = []

    async def go(a: Adapters) -> None:
        async for d in a.for_wire("openai").stream(user("x"), m, p,
                                                   deadline=time.monotonic() + 5):
            got.append(d)
    with pytest.raises(UpstreamConnectError):
        run(go)
    assert "".join(d.text for d in got) == "one two "  # role chunk + 2 text chunks


def test_drop_mid_json_body(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(drop="mid_stream"))
    with pytest.raises(UpstreamConnectError):
        send(fake_openai, user("x"))


def test_slow_upstream_hits_the_deadline(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(delay_s=2.0))
    t0 = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        send(fake_openai, user("x"), budget=0.3)
    assert time.monotonic() - t0 < 1.5


def test_slow_stream_hits_the_deadline_between_chunks(fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Behaviour(text="a b c d e f", chunk_delay_s=0.2))
    with pytest.raises(UpstreamTimeout):
        stream(fake_openai, user("x"), budget=0.5)


def test_connection_refused_is_connect_error() -> None:
    with FakeOpenAI() as up:
        p = provider_entry(up, name="oa", wire="openai")
    m = model_entry(p, "gpt-test")  # the server is gone now
    with pytest.raises(UpstreamConnectError):
        run(lambda a: a.for_wire("openai").send(user("x"), m, p,
                                                deadline=time.monotonic() + 2))


def test_bearer_key_from_env_and_missing_key(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WIRE_TEST_KEY", "sk-test-123")
    send(fake_openai, user("x"), api_key_env="WIRE_TEST_KEY")
    assert fake_openai.requests[0].headers["Authorization"] == "Bearer sk-test-123"
    monkeypatch.delenv("WIRE_TEST_KEY")
    with pytest.raises(KeyNotSetError) as ei:
        send(fake_openai, user("x"), api_key_env="WIRE_TEST_KEY")
    assert ei.value.retryable and not ei.value.retry_same
    assert len(fake_openai.requests) == 1  # nothing was sent without the key


def test_proxy_env_is_ignored(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert send(fake_openai, user("x")).text == "Hello from gpt-test."


def test_list_models_probe_and_embeddings(fake_openai: FakeOpenAI) -> None:
    p = provider_entry(fake_openai, name="oa", wire="openai")
    m = model_entry(p, "text-embed", embedding=True)

    async def go(a: Adapters) -> tuple[list[str], bool, Any]:
        w = a.for_wire("openai")
        dl = time.monotonic() + 5
        return (await w.list_models(p, deadline=dl), await w.probe(p, deadline=dl),
                await w.embed(["a", "b"], m, p, deadline=dl))
    names, ok, emb = run(go)
    assert names == fake_openai.models and ok
    assert len(emb.vectors) == 2 and emb.vectors[0] != emb.vectors[1]
    fake_openai.stop()
    assert run(lambda a: a.for_wire("openai").probe(p, deadline=time.monotonic() + 1)) is False
