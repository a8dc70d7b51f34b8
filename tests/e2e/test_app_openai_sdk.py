"""The official ``openai`` SDK as the client of a real router (Granian subprocess) in
front of fake upstreams: chat, streaming, tools, structured output, models.list and
errors, on both the Ollama wire (loc-a, the primary) and the OpenAI wire (loc-b)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from e2e.harness import Setup, standard_setup, stop_setup
from fakes.harness import Behaviour, FakeToolCall


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    s = standard_setup()
    yield s
    stop_setup(s)


@pytest.fixture(autouse=True)
def _fresh(setup: Setup) -> None:
    setup.reset()


@pytest.fixture
def client(setup: Setup) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=setup.url + "/v1", api_key="unused", max_retries=0)
    yield c
    c.close()


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}


def test_chat(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Say hello."}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from m-a."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert raw.headers["x-router-model"] == "loc-a/m-a"


def test_an_openai_wire_answer_reaches_the_client_as_it_came(
        setup: Setup, client: openai.OpenAI) -> None:
    """Same API both sides: what the canonical form has no room for is not lost."""
    setup.loc_b.push(Behaviour(
        text="Hello there.",
        answer_extra={"system_fingerprint": "fp_test", "service_tier": "default",
                      "usage": {"prompt_tokens": 12, "completion_tokens": 3,
                                "total_tokens": 15,
                                "prompt_tokens_details": {"cached_tokens": 8},
                                "completion_tokens_details": {"reasoning_tokens": 1}}},
        choice_extra={"logprobs": {"content": [
            {"token": "Hello", "logprob": -0.25, "bytes": [72, 101, 108, 108, 111],
             "top_logprobs": []}], "refusal": None}}))
    c = client.chat.completions.create(
        model="loc-b/m-b", logprobs=True, messages=[{"role": "user", "content": "Hi"}])
    assert c.model == "loc-b/m-b"  # the routed model's name, not the upstream's
    assert c.choices[0].message.content == "Hello there."
    assert c.system_fingerprint == "fp_test" and c.service_tier == "default"
    assert c.usage is not None and c.usage.prompt_tokens_details is not None
    assert c.usage.prompt_tokens_details.cached_tokens == 8
    assert c.usage.completion_tokens_details is not None
    assert c.usage.completion_tokens_details.reasoning_tokens == 1
    lp = c.choices[0].logprobs
    assert lp is not None and lp.content is not None and lp.content[0].token == "Hello"
    assert c.id.startswith("chatcmpl-fake-")  # the upstream's own id
    assert setup.loc_b.bodies()[0]["logprobs"] is True  # and the request went as it came


def test_chat_with_route_auto_and_an_explicit_model(client: openai.OpenAI) -> None:
    c = client.chat.completions.create(model="route-auto",
                                       messages=[{"role": "user", "content": "Hi"}])
    assert c.choices[0].message.content == "Hello from m-a."
    c = client.chat.completions.create(model="loc-b/m-b",
                                       messages=[{"role": "user", "content": "Hi"}])
    assert c.choices[0].message.content == "Hello from m-b."


def test_streaming(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Say hello."}], stream=True,
        stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == "Hello from m-a."
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_streaming_error_after_first_byte_raises_in_the_sdk(
        setup: Setup, client: openai.OpenAI) -> None:
    setup.loc_a.push(Behaviour(text="one two three four", drop="mid_stream", drop_after=2))
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Count."}], stream=True)
    received = ""
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            for choice in chunk.choices:
                received += choice.delta.content or ""
    assert "mid-stream" in str(info.value)
    assert received.startswith("one")


@pytest.mark.parametrize("model", ["auto", "loc-b/m-b"], ids=["ollama-wire", "openai-wire"])
def test_tools(setup: Setup, client: openai.OpenAI, model: str) -> None:
    up = setup.loc_a if model == "auto" else setup.loc_b
    up.push(Behaviour(text="", tool_calls=[FakeToolCall("get_weather", '{"city": "Paris"}')]))
    c = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL])  # type: ignore[list-item]
    msg = c.choices[0].message
    assert c.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls is not None and len(msg.tool_calls) == 1
    call = msg.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert call.id
    sent = up.bodies()[0]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    # the tool result round trip
    c2 = client.chat.completions.create(model=model, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ], tools=[WEATHER_TOOL])  # type: ignore[list-item]
    assert c2.choices[0].message.content
    assert any("18C and sunny" in json.dumps(m) for m in up.bodies()[-1]["messages"])


def test_streamed_tools(setup: Setup, client: openai.OpenAI) -> None:
    setup.loc_a.push(Behaviour(text="", tool_calls=[
        FakeToolCall("get_weather", '{"city": "Oslo"}')]))
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL], stream=True)  # type: ignore[list-item]
    name, args = "", ""
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                name += (tc.function.name or "") if tc.function else ""
                args += (tc.function.arguments or "") if tc.function else ""
    assert name == "get_weather" and json.loads(args) == {"city": "Oslo"}


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                           "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}


@pytest.mark.parametrize("model", ["auto", "loc-b/m-b"], ids=["ollama-wire", "openai-wire"])
def test_structured_output(setup: Setup, client: openai.OpenAI, model: str) -> None:
    up = setup.loc_a if model == "auto" else setup.loc_b
    up.push(Behaviour(text='{"city": "Paris", "population": 2100000}'))
    c = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Largest city in France?"}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}})
    assert json.loads(c.choices[0].message.content or "") == {"city": "Paris",
                                                              "population": 2100000}
    sent = up.bodies()[0]
    if model == "auto":  # Ollama's native API takes the schema as "format"
        assert sent["format"] == SCHEMA
    else:
        assert sent["response_format"]["json_schema"]["schema"] == SCHEMA


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[:2] == ["auto", "route-auto"]
    assert {"loc-a/m-a", "loc-b/m-b", "cloud/m-c"} <= set(ids)


def test_errors_map_to_sdk_exceptions(setup: Setup, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="gpt-nope",
                                       messages=[{"role": "user", "content": "x"}])
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="auto", messages=[])
    setup.loc_a.push(Behaviour(status=401, error_message="invalid key",
                               error_type="authentication_error"))
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="auto",
                                       messages=[{"role": "user", "content": "x"}])
    assert setup.loc_b.requests == []
    with pytest.raises(openai.APIStatusError) as private:
        client.chat.completions.create(model="cloud/m-c",
                                       messages=[{"role": "user", "content": "x"}],
                                       extra_body={"private": True})
    assert private.value.status_code == 503
    assert setup.cloud.connections == 0
