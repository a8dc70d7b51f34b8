"""The fake upstreams speak the real protocols: the official SDKs parse them.
Also checks the fakes' bookkeeping (requests, connections) that other tests rely on."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from fakes.fixtures import (
    Behaviour,
    FakeAnthropic,
    FakeOllama,
    FakeOpenAI,
    FakeToolCall,
)


def test_openai_sdk_reads_the_fake_stream_with_tools_and_usage() -> None:
    with FakeOpenAI(models=["gpt-4o-mini"]) as up:
        up.push(Behaviour(text="Hi {model}", tool_calls=[FakeToolCall("f", '{"x": 1}', "c1")],
                          tool_variant="split", usage=(5, 6)))
        client = openai.OpenAI(base_url=up.url, api_key="k", max_retries=0)
        chunks = list(client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hey"}], stream=True,
            stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hi gpt-4o-mini"
        args = "".join(tc.function.arguments or "" for c in chunks if c.choices
                       for tc in c.choices[0].delta.tool_calls or [] if tc.function)
        assert args == '{"x": 1}'
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
        assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]
        assert up.connections >= 1 and len(up.requests) == 2
        assert up.requests[0].headers["Authorization"] == "Bearer k"


def test_openai_sdk_sees_the_fake_error_shape_and_retry_after() -> None:
    with FakeOpenAI() as up:
        up.push(Behaviour(status=429, retry_after="1", error_message="quota"))
        client = openai.OpenAI(base_url=up.url, api_key="k", max_retries=0)
        with pytest.raises(openai.RateLimitError) as ei:
            client.chat.completions.create(model="m", messages=[{"role": "user",
                                                                 "content": "x"}])
        assert ei.value.response.headers["retry-after"] == "1"
        assert "quota" in str(ei.value)


def test_anthropic_sdk_reads_the_fake_stream() -> None:
    with FakeAnthropic() as up:
        up.push(Behaviour(text="Bonjour", tool_calls=[FakeToolCall("f", '{"a": 2}', "tu_1")]))
        client = anthropic.Anthropic(base_url=up.url, api_key="k", max_retries=0)
        with client.messages.stream(model="claude-x", max_tokens=50,
                                    messages=[{"role": "user", "content": "hi"}]) as s:
            final = s.get_final_message()
        assert final.content[0].type == "text" and final.content[0].text == "Bonjour"
        tool = final.content[1]
        assert tool.type == "tool_use" and tool.input == {"a": 2} and tool.id == "tu_1"
        assert final.stop_reason == "tool_use"
        assert "anthropic-version" in up.requests[0].headers


def test_anthropic_fake_error_shape() -> None:
    with FakeAnthropic() as up:
        up.push(Behaviour(status=529, error_message="overloaded"))
        client = anthropic.Anthropic(base_url=up.url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as ei:
            client.messages.create(model="m", max_tokens=5,
                                   messages=[{"role": "user", "content": "x"}])
        assert ei.value.status_code == 529
        assert ei.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_ollama_fake_defaults_to_streaming_and_counts_connections() -> None:
    with FakeOllama() as up, FakeOpenAI() as idle:
        r = httpx.post(up.url + "/api/chat", json={"model": "m", "messages": [
            {"role": "user", "content": "x"}]})
        lines = [ln for ln in r.text.splitlines() if ln]
        assert r.headers["content-type"].startswith("application/x-ndjson")
        assert len(lines) > 1 and '"done":true' in lines[-1]
        assert up.connections == 1 and idle.connections == 0 and idle.requests == []
        up.reset()
        assert up.connections == 0 and up.requests == []
