"""The 3×3 matrix: every client surface (chat completions, Anthropic messages, OpenAI
Responses) through the router to every wire (openai, anthropic, ollama), plain and
streaming, text and parallel tool calls; the official ``openai`` and ``anthropic``
SDKs are the clients, the router runs under real Granian in front of fake upstreams.

Also: what each upstream received (tools, tool results, images, system prompts,
max tokens translated into its own wire), stop reasons, usage, and tool-call
argument assembly for every way an openai-wire upstream may stream tool calls.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
import pytest
from e2e.harness import sse_events
from e2e.surface_setup import WIRE_MODELS, Surfaces, start_surfaces
from fakes.harness import Behaviour, FakeToolCall

WIRES = ["openai", "anthropic", "ollama"]
SURFACES = ["chat", "messages", "responses"]
CALLS = [FakeToolCall("get_weather", '{"city": "Paris", "unit": "c"}', id="call_w1"),
         FakeToolCall("get_time", '{"tz": "Europe/Paris"}', id="call_t2")]
PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake-image-bytes").decode()


@pytest.fixture(scope="module")
def s() -> Iterator[Surfaces]:
    setup = start_surfaces()
    yield setup
    setup.stop()


@pytest.fixture(autouse=True)
def _fresh(s: Surfaces) -> None:
    s.reset()


@pytest.fixture(scope="module")
def oai(s: Surfaces) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0)
    yield c
    c.close()


@pytest.fixture(scope="module")
def ant(s: Surfaces) -> Iterator[anthropic.Anthropic]:
    c = anthropic.Anthropic(base_url=s.url, api_key="unused", max_retries=0)
    yield c
    c.close()


@dataclass
class Result:
    """What a client got, in one normal form for every surface."""

    text: str = ""
    calls: list[tuple[str, str, Any]] = field(default_factory=list)  # (id, name, args)
    finish: str = ""  # stop / length / tool_calls
    input_tokens: int = 0
    output_tokens: int = 0


_ANTHROPIC_STOP = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def tool_spec(surface: str) -> list[dict[str, Any]]:
    names = [("get_weather", "Weather for a city"), ("get_time", "Time in a zone")]
    if surface == "chat":
        return [{"type": "function", "function": {"name": n, "description": d,
                                                  "parameters": PARAMS}} for n, d in names]
    if surface == "messages":
        return [{"name": n, "description": d, "input_schema": PARAMS} for n, d in names]
    return [{"type": "function", "name": n, "description": d, "parameters": PARAMS}
            for n, d in names]


def ask(surface: str, oai: openai.OpenAI, ant: anthropic.Anthropic, model: str, *,
        stream: bool, tools: bool = False, prompt: str = "Say hello.") -> Result:
    """One request on ``surface`` through its official SDK, normalised."""
    if surface == "chat":
        return _chat(oai, model, prompt, stream, tools)
    if surface == "messages":
        return _messages(ant, model, prompt, stream, tools)
    return _responses(oai, model, prompt, stream, tools)


def _chat(oai: openai.OpenAI, model: str, prompt: str, stream: bool, tools: bool) -> Result:
    kw: dict[str, Any] = {"tools": tool_spec("chat")} if tools else {}
    msgs: Any = [{"role": "user", "content": prompt}]
    if not stream:
        c = oai.chat.completions.create(model=model, messages=msgs, **kw)
        m = c.choices[0].message
        assert c.usage is not None
        return Result(m.content or "", [(t.id, t.function.name, json.loads(t.function.arguments))
                                        for t in m.tool_calls or []],
                      c.choices[0].finish_reason, c.usage.prompt_tokens,
                      c.usage.completion_tokens)
    out = Result()
    parts: dict[int, list[str]] = {}
    for chunk in oai.chat.completions.create(model=model, messages=msgs, stream=True,
                                             stream_options={"include_usage": True}, **kw):
        if chunk.usage is not None:
            out.input_tokens, out.output_tokens = (chunk.usage.prompt_tokens,
                                                   chunk.usage.completion_tokens)
        for ch in chunk.choices:
            out.text += ch.delta.content or ""
            out.finish = ch.finish_reason or out.finish
            for tc in ch.delta.tool_calls or []:
                slot = parts.setdefault(tc.index, ["", "", ""])
                slot[0] = tc.id or slot[0]
                slot[1] = (tc.function.name if tc.function else None) or slot[1]
                slot[2] += (tc.function.arguments if tc.function else None) or ""
    out.calls = [(i, n, json.loads(a)) for i, n, a in (parts[k] for k in sorted(parts))]
    return out


def _messages(ant: anthropic.Anthropic, model: str, prompt: str, stream: bool,
              tools: bool) -> Result:
    kw: dict[str, Any] = {"tools": tool_spec("messages")} if tools else {}
    msgs: Any = [{"role": "user", "content": prompt}]
    if stream:
        with ant.messages.stream(model=model, max_tokens=512, messages=msgs, **kw) as st:
            m = st.get_final_message()
    else:
        m = ant.messages.create(model=model, max_tokens=512, messages=msgs, **kw)
    text = "".join(b.text for b in m.content if b.type == "text")
    calls = [(b.id, b.name, b.input) for b in m.content if b.type == "tool_use"]
    return Result(text, calls, _ANTHROPIC_STOP.get(m.stop_reason or "", m.stop_reason or ""),
                  m.usage.input_tokens, m.usage.output_tokens)


def _responses(oai: openai.OpenAI, model: str, prompt: str, stream: bool,
               tools: bool) -> Result:
    kw: dict[str, Any] = {"tools": tool_spec("responses")} if tools else {}
    if stream:
        final, text, args = None, "", {}
        for ev in oai.responses.create(model=model, input=prompt, stream=True, **kw):
            if ev.type == "response.output_text.delta":
                text += ev.delta
            elif ev.type == "response.function_call_arguments.delta":
                args[ev.item_id] = args.get(ev.item_id, "") + ev.delta
            elif ev.type in ("response.completed", "response.incomplete"):
                final = ev.response
        assert final is not None, "no terminal event"
        r = final
        assert text == r.output_text  # the deltas add up to the final text
        assert args == {o.id: o.arguments for o in r.output if o.type == "function_call"}
    else:
        r = oai.responses.create(model=model, input=prompt, **kw)
    calls = [(o.call_id, o.name, json.loads(o.arguments)) for o in r.output
             if o.type == "function_call"]
    finish = "length" if r.status == "incomplete" else "tool_calls" if calls else "stop"
    assert r.usage is not None
    return Result(r.output_text, calls, finish, r.usage.input_tokens, r.usage.output_tokens)


# -- the matrix ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("surface", SURFACES)
def test_text(s: Surfaces, oai: openai.OpenAI, ant: anthropic.Anthropic, surface: str,
              wire: str, stream: bool) -> None:
    s.fake(wire).default = Behaviour(text="Grüße from {model}: naïve café ☕.")
    got = ask(surface, oai, ant, WIRE_MODELS[wire], stream=stream)
    upstream_model = WIRE_MODELS[wire].split("/")[1]
    assert got.text == f"Grüße from {upstream_model}: naïve café ☕."
    assert got.calls == []
    assert got.finish == "stop"
    assert got.output_tokens > 0 and got.input_tokens > 0
    assert len(s.fake(wire).requests) == 1  # pinned: no other upstream was asked
    others = [w for w in WIRES if w != wire]
    assert all(not s.fake(w).requests for w in others)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("surface", SURFACES)
def test_parallel_tool_calls(s: Surfaces, oai: openai.OpenAI, ant: anthropic.Anthropic,
                             surface: str, wire: str, stream: bool) -> None:
    s.fake(wire).default = Behaviour(text="", tool_calls=CALLS)
    got = ask(surface, oai, ant, WIRE_MODELS[wire], stream=stream, tools=True,
              prompt="Weather and time in Paris?")
    assert [(n, a) for _, n, a in got.calls] == [
        ("get_weather", {"city": "Paris", "unit": "c"}), ("get_time", {"tz": "Europe/Paris"})]
    ids = [i for i, _, _ in got.calls]
    if wire == "ollama":  # Ollama sends no ids: the router makes stable, distinct ones
        assert len(set(ids)) == 2 and all(ids)
    else:  # the upstream's ids are kept
        assert ids == ["call_w1", "call_t2"]
    assert got.finish == "tool_calls"
    body = s.fake(wire).requests[0].json
    if wire == "anthropic":
        assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time"]
        assert body["tools"][0]["input_schema"] == PARAMS
    else:
        assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time"]
        assert body["tools"][0]["function"]["parameters"] == PARAMS


@pytest.mark.parametrize("variant", ["split", "repeat_id", "index_zero", "whole",
                                     "interleaved"])
@pytest.mark.parametrize("surface", SURFACES)
def test_tool_call_streaming_variants_of_openai_wire_upstreams(
        s: Surfaces, oai: openai.OpenAI, ant: anthropic.Anthropic, surface: str,
        variant: str) -> None:
    s.lo.default = Behaviour(text="", tool_calls=CALLS, tool_variant=variant)  # type: ignore[arg-type]
    got = ask(surface, oai, ant, WIRE_MODELS["openai"], stream=True, tools=True)
    assert got.calls == [("call_w1", "get_weather", {"city": "Paris", "unit": "c"}),
                         ("call_t2", "get_time", {"tz": "Europe/Paris"})]
    assert got.finish == "tool_calls"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("surface", SURFACES)
def test_length_stop_reason(s: Surfaces, oai: openai.OpenAI, ant: anthropic.Anthropic,
                            surface: str, wire: str, stream: bool) -> None:
    s.fake(wire).default = Behaviour(text="cut", finish_reason="length")
    got = ask(surface, oai, ant, WIRE_MODELS[wire], stream=stream)
    assert got.text == "cut"
    assert got.finish == "length"


@pytest.mark.parametrize("wire", WIRES)
def test_chat_include_usage_gives_exactly_one_usage_chunk_before_done(
        s: Surfaces, wire: str) -> None:
    s.fake(wire).default = Behaviour(text="one two three", usage=(11, 3))
    body = {"model": WIRE_MODELS[wire], "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Count."}]}
    with httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=20) as r:
        events = sse_events(r.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    with_usage = [c for c in chunks if c.get("usage")]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert with_usage[0]["choices"] == []
    assert with_usage[0]["usage"] == {"prompt_tokens": 11, "completion_tokens": 3,
                                      "total_tokens": 14}


# -- what the upstream received -----------------------------------------------------------


def _history(surface: str) -> dict[str, Any]:
    """A body with a system prompt, an image, and a finished parallel tool turn."""
    img_note = "What is in this image?"
    if surface == "chat":
        return {"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": img_note},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_w1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_t2", "type": "function",
                 "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}}]},
            {"role": "tool", "tool_call_id": "call_w1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_t2", "content": "noon"},
        ], "tools": tool_spec("chat")}
    if surface == "messages":
        return {"system": [{"type": "text", "text": "Be brief."}], "max_tokens": 300,
                "tools": tool_spec("messages"), "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": img_note},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_w1", "name": "get_weather",
                 "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_t2", "name": "get_time",
                 "input": {"tz": "CET"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_w1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "call_t2",
                 "content": [{"type": "text", "text": "noon"}]}]}]}
    return {"instructions": "Be brief.", "tools": tool_spec("responses"), "input": [
        {"role": "user", "content": [
            {"type": "input_text", "text": img_note},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}]},
        {"type": "function_call", "call_id": "call_w1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "call_id": "call_t2", "name": "get_time",
         "arguments": '{"tz": "CET"}'},
        {"type": "function_call_output", "call_id": "call_w1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_t2", "output": "noon"}]}


_PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages",
          "responses": "/v1/responses"}


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("surface", SURFACES)
def test_history_with_system_image_and_tool_results_is_translated(
        s: Surfaces, surface: str, wire: str) -> None:
    body = {"model": WIRE_MODELS[wire], **_history(surface)}
    r = httpx.post(s.url + _PATHS[surface], json=body, timeout=20)
    assert r.status_code == 200, r.text
    got = s.fake(wire).requests[0].json
    if wire == "openai":
        msgs = got["messages"]
        assert msgs[0] == {"role": "system", "content": "Be brief."}
        assert msgs[1]["content"][1] == {"type": "image_url", "image_url": {
            "url": f"data:image/png;base64,{PNG}"}}
        assert [c["id"] for c in msgs[2]["tool_calls"]] == ["call_w1", "call_t2"]
        assert json.loads(msgs[2]["tool_calls"][0]["function"]["arguments"]) == {
            "city": "Paris"}
        assert [(m["role"], m["tool_call_id"], m["content"]) for m in msgs[3:5]] == [
            ("tool", "call_w1", "sunny"), ("tool", "call_t2", "noon")]
    elif wire == "anthropic":
        system = got["system"]
        assert system in ("Be brief.", [{"type": "text", "text": "Be brief."}])
        msgs = got["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
        assert msgs[0]["content"][1]["source"] == {"type": "base64",
                                                   "media_type": "image/png", "data": PNG}
        assert [(b["id"], b["input"]) for b in msgs[1]["content"]] == [
            ("call_w1", {"city": "Paris"}), ("call_t2", {"tz": "CET"})]
        results = [(b["tool_use_id"], b["content"]) for b in msgs[2]["content"]]
        assert [r[0] for r in results] == ["call_w1", "call_t2"]
        assert results[0][1] == "sunny"
        assert "max_tokens" in got and got["max_tokens"] >= 1
    else:
        msgs = got["messages"]
        assert msgs[0] == {"role": "system", "content": "Be brief."}
        assert msgs[1]["images"] == [PNG]
        assert [c["function"]["arguments"] for c in msgs[2]["tool_calls"]] == [
            {"city": "Paris"}, {"tz": "CET"}]
        assert [(m["role"], m.get("tool_name"), m["content"]) for m in msgs[3:5]] == [
            ("tool", "get_weather", "sunny"), ("tool", "get_time", "noon")]


def test_messages_to_anthropic_is_forwarded_as_sent(s: Surfaces,
                                                    ant: anthropic.Anthropic) -> None:
    ant.messages.create(
        model="an/claude-x", max_tokens=77, metadata={"user_id": "u-1"},
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        stop_sequences=["END"], messages=[{"role": "user", "content": "Hi"}],
        extra_body={"trace": True, "temperature": 0.3, "top_k": 5},
        extra_headers={"anthropic-beta": "context-management-2025-06-27"})
    got = s.an.requests[0]
    assert got.json["model"] == "claude-x" and got.json["max_tokens"] == 77
    assert got.json["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert got.json["metadata"] == {"user_id": "u-1"} and got.json["top_k"] == 5
    assert got.json["stop_sequences"] == ["END"] and got.json["temperature"] == 0.3
    assert "trace" not in got.json  # the router's own key never leaves
    assert got.headers["anthropic-version"] == "2023-06-01"
    assert got.headers["anthropic-beta"] == "context-management-2025-06-27"  # passed on


def test_chat_to_anthropic_maps_parameters(s: Surfaces, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(
        model="an/claude-x", temperature=1.7, top_p=0.9, stop=["END"],
        tools=tool_spec("chat"), tool_choice="required",  # type: ignore[arg-type]
        messages=[{"role": "system", "content": "One."}, {"role": "system", "content": "Two."},
                  {"role": "user", "content": "Hi"}])
    got = s.an.requests[0].json
    assert got["system"] == "One.\n\nTwo."
    assert got["temperature"] == 1.0  # Anthropic's range is [0, 1]
    assert got["top_p"] == 0.9 and got["stop_sequences"] == ["END"]
    assert got["tool_choice"] == {"type": "any"}
    assert got["max_tokens"] == 4096  # the model's max_output when the client gave none
    assert got["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


def test_messages_to_openai_maps_parameters(s: Surfaces, ant: anthropic.Anthropic) -> None:
    ant.messages.create(
        model="lo/m-l", max_tokens=33, stop_sequences=["END"], extra_body={"temperature": 0.5},
        extra_headers={"anthropic-beta": "x-2025-01-01"},
        tools=tool_spec("messages"), tool_choice={"type": "tool", "name": "get_time"},  # type: ignore[arg-type]
        system="Be brief.", messages=[{"role": "user", "content": "Hi"}])
    got = s.lo.requests[0].json
    assert "anthropic-beta" not in s.lo.requests[0].headers  # only for Anthropic itself
    assert got["max_tokens"] == 33 and got["stop"] == ["END"] and got["temperature"] == 0.5
    assert got["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert got["messages"][0] == {"role": "system", "content": "Be brief."}


def test_responses_json_schema_output_reaches_the_upstream(s: Surfaces,
                                                           oai: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
              "additionalProperties": False}
    s.lo.default = Behaviour(text='{"a": 1}')
    r = oai.responses.create(model="lo/m-l", input="Give a.", max_output_tokens=50,
                             text={"format": {"type": "json_schema", "name": "A",
                                              "schema": schema, "strict": True}})
    assert json.loads(r.output_text) == {"a": 1}
    got = s.lo.requests[0].json
    assert got["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "A", "schema": schema, "strict": True}}
    assert got["max_tokens"] == 50


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
def test_the_responses_stream_helper_of_the_sdk(s: Surfaces, oai: openai.OpenAI,
                                                tools: bool) -> None:
    s.lo.default = Behaviour(text="", tool_calls=CALLS) if tools else Behaviour()
    kw: dict[str, Any] = {"tools": tool_spec("responses")} if tools else {}
    with oai.responses.stream(model="lo/m-l", input="Hi", **kw) as st:
        r = st.get_final_response()
    if tools:
        assert [(o.call_id, o.name, json.loads(o.arguments)) for o in r.output
                if o.type == "function_call"] == [
            ("call_w1", "get_weather", {"city": "Paris", "unit": "c"}),
            ("call_t2", "get_time", {"tz": "Europe/Paris"})]
    else:
        assert r.output_text == "Hello from m-l."


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_messages_from_anthropic_keep_thinking_signatures_and_redacted_blocks(
        s: Surfaces, ant: anthropic.Anthropic, stream: bool) -> None:
    s.an.thinking = "Let me think…"
    s.an.default = Behaviour(text="", tool_calls=CALLS[:1])
    try:
        kw: dict[str, Any] = {"model": "an/claude-x", "max_tokens": 2048,
                              "thinking": {"type": "enabled", "budget_tokens": 1024},
                              "tools": tool_spec("messages"), "messages": HI_MSG}
        if stream:
            with ant.messages.stream(**kw) as st:
                m = st.get_final_message()
        else:
            m = ant.messages.create(**kw)
    finally:
        s.an.thinking = None
    kinds = [b.type for b in m.content]
    assert kinds == ["thinking", "redacted_thinking", "tool_use"]
    assert m.content[0].thinking == "Let me think…"  # type: ignore[union-attr]
    assert m.content[0].signature.startswith("sig-msg_fake_")  # type: ignore[union-attr]
    assert m.content[1].data.startswith("opaque-")  # type: ignore[union-attr]
    assert m.model == "an/claude-x" and m.stop_reason == "tool_use"
    # the next turn sends them back: they reach Anthropic signed, as they came
    history = [*HI_MSG, {"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                          for b in m.content]},
               {"role": "user", "content": [{"type": "tool_result",
                                             "tool_use_id": m.content[2].id,  # type: ignore[union-attr]
                                             "content": "sunny"}]}]
    s.an.reset()
    ant.messages.create(**{**kw, "messages": history})
    sent = s.an.requests[0].json["messages"][1]["content"]
    assert [b["type"] for b in sent] == ["thinking", "redacted_thinking", "tool_use"]
    assert sent[0]["signature"] == m.content[0].signature  # type: ignore[union-attr]


HI_MSG: list[Any] = [{"role": "user", "content": "Weather?"}]
