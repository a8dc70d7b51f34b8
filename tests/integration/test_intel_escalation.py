"""Verifiers and escalation end to end: a real router (Granian subprocess) over fake
upstreams that return the failing answer; each test asserts which upstream was
called and how often.

Providers: ``loc`` (OpenAI wire, local, quality 60) is every cell's primary;
``loc2`` (Ollama wire, local, quality 70) and ``cloud`` (OpenAI wire, cloud, 90).
The compiler appends the escalation candidate itself: ``cloud/m-c`` in public
cells, ``loc2/m-b`` in private ones (a private request escalates locally only).
The profile runs every verifier and buffers streams (``verify_stream: buffer``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e.harness import RouterProcess, compile_yaml, config_yaml, prov, sse_events
from fakes.harness import Behaviour, FakeToolCall, FakeUpstream
from fakes.ollama_fake import FakeOllama
from fakes.openai_fake import FakeOpenAI

PROFILE = """\
name: intel-test
objectives: {quality: 0.5, cost: 0.3, latency: 0.2}
escalation:
  enabled: true
  verifiers: [empty, thin, truncated, refusal, json, json_schema, tool_call, code_syntax,
              confidence]
  verify_stream: buffer
  confidence_threshold: 0.5
"""


@dataclass
class World:
    loc: FakeOpenAI
    loc2: FakeOllama
    cloud: FakeOpenAI
    router: RouterProcess

    def reset(self) -> None:
        for up in (self.loc, self.loc2, self.cloud):
            up.reset()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    profile = Path(tmp_path_factory.mktemp("intel")) / "intel-test.yaml"
    profile.write_text(PROFILE)
    loc = FakeOpenAI(models=["m-a"]).start()
    loc2 = FakeOllama(models=["m-b"]).start()
    cloud = FakeOpenAI(models=["m-c"]).start()
    router = None
    try:
        table = compile_yaml(config_yaml(
            [prov("loc", loc, "openai", "local", ["m-a"], quality=60.0),
             prov("loc2", loc2, "ollama", "local", ["m-b"], quality=70.0),
             prov("cloud", cloud, "openai", "cloud", ["m-c"], quality=90.0)],
            ["loc/m-a"], profile=str(profile),
            # escalations draw on the retry budget (issue 8): give this module plenty
            server={"breaker": "{retry_reserve: 100000}"}))
        router = RouterProcess(table, env={"INTERLOCK_HEALTH_FAILURES": "1000000"})
        router.wait_ready()
        yield World(loc, loc2, cloud, router)
    finally:
        if router is not None:
            router.stop()
        for up in (loc, loc2, cloud):
            up.stop()


@pytest.fixture(autouse=True)
def _fresh(world: World) -> None:
    world.reset()


def calls(up: FakeUpstream) -> int:
    return sum(1 for r in up.requests if r.path in ("/api/chat", "/v1/chat/completions"))


def post(world: World, text: str = "What is the capital of France?",
         **kw: Any) -> httpx.Response:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], "trace": True,
            **kw}
    return httpx.post(world.router.url + "/v1/chat/completions", json=body, timeout=20)


def content(resp: httpx.Response) -> str:
    text: str = resp.json()["choices"][0]["message"]["content"] or ""
    return text


def verdicts(resp: httpx.Response, model: str) -> dict[str, bool]:
    checks = resp.json()["x_router_trace"]["verification"]
    entry = next(c for c in checks if c["model"] == model)
    return {v["verifier"]: v["ok"] for v in entry["verdicts"]}


def assert_escalated(resp: httpx.Response, world: World, failed: str) -> None:
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-router-model"] == "cloud/m-c"
    assert content(resp) == "Hello from m-c."
    assert resp.headers["x-router-escalated"].startswith("loc/m-a -> cloud/m-c")
    assert failed in resp.headers["x-router-escalated"]
    assert "escalated" in resp.headers["x-router-response-tags"].split(",")
    assert verdicts(resp, "loc/m-a")[failed] is False
    trace = resp.json()["x_router_trace"]
    assert trace["escalation"]["from"] == "loc/m-a" and trace["escalation"]["to"] == "cloud/m-c"
    assert [a["model"] for a in trace["attempts"]] == ["loc/m-a", "cloud/m-c"]
    assert calls(world.loc) == 1 and calls(world.cloud) == 1 and calls(world.loc2) == 0


# -- a good answer is not escalated ------------------------------------------------------


def test_a_good_local_answer_stays_local(world: World) -> None:
    resp = post(world)
    assert resp.status_code == 200
    assert resp.headers["x-router-model"] == "loc/m-a"
    assert "x-router-escalated" not in resp.headers
    assert all(verdicts(resp, "loc/m-a").values())
    assert calls(world.loc) == 1 and calls(world.cloud) == 0


# -- each verifier ---------------------------------------------------------------------


@pytest.mark.parametrize("failing,verifier", [
    (Behaviour(text=""), "empty"),
    (Behaviour(text="I'm sorry, but I can't help with that request."), "refusal"),
    (Behaviour(text="Lo siento, pero no puedo ayudarte con eso."), "refusal"),
    (Behaviour(text="The capital of France is", finish_reason="length"), "truncated"),
    (Behaviour(text="Paris.\nconfidence: 0.2"), "confidence"),
], ids=["empty", "refusal-en", "refusal-es", "truncated", "low-confidence"])
def test_a_failing_answer_escalates(world: World, failing: Behaviour, verifier: str) -> None:
    world.loc.push(failing)
    assert_escalated(post(world), world, verifier)


def test_thin_summary_escalates(world: World) -> None:
    world.loc.push(Behaviour(text="Short."))
    text = "Summarize this article in three sentences: " + "The council met on Tuesday. " * 20
    resp = post(world, text)
    assert resp.json()["x_router_trace"]["classification"]["task"] == "summarize"
    assert_escalated(resp, world, "thin")


def test_invalid_json_escalates(world: World) -> None:
    world.loc.push(Behaviour(text="Sure! Here you go: name is Ada"))
    resp = post(world, "Give me a JSON object with a name.",
                response_format={"type": "json_object"})
    assert_escalated(resp, world, "json")


def test_json_failing_the_schema_escalates(world: World) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}},
              "required": ["age"], "additionalProperties": False}
    world.loc.push(Behaviour(text='{"age": "forty"}'))
    resp = post(world, "How old is Ada? Answer in JSON.", response_format={
        "type": "json_schema", "json_schema": {"name": "age", "schema": schema}})
    assert_escalated(resp, world, "json_schema")
    reason = next(v["reason"] for v in resp.json()["x_router_trace"]["verification"][0]
                  ["verdicts"] if v["verifier"] == "json_schema")
    assert "age" in reason


def test_fenced_truncated_json_is_healed_not_escalated(world: World) -> None:
    world.loc.push(Behaviour(text='Here it is:\n```json\n{"name": "Ada", "langs": ["en", "fr"'))
    resp = post(world, "Give me a JSON object with a name.",
                response_format={"type": "json_object"})
    assert resp.status_code == 200
    assert resp.headers["x-router-model"] == "loc/m-a"
    assert orjson.loads(content(resp)) == {"name": "Ada", "langs": ["en", "fr"]}
    assert "healed" in resp.headers["x-router-response-tags"].split(",")
    check = resp.json()["x_router_trace"]["verification"][0]
    assert check["healed"] == ["fence", "close"] and check["ok"] is True
    assert calls(world.cloud) == 0


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


@pytest.mark.parametrize("call", [
    FakeToolCall("get_stock_price", '{"symbol": "ACME"}'),
    FakeToolCall("get_weather", '{"town": "Paris"}'),
    FakeToolCall("get_weather", '{"city": '),
], ids=["unknown-tool", "args-fail-schema", "args-not-json"])
def test_bad_tool_calls_escalate(world: World, call: FakeToolCall) -> None:
    world.loc.push(Behaviour(text="", tool_calls=[call]))
    world.cloud.push(Behaviour(text="", tool_calls=[FakeToolCall("get_weather",
                                                                 '{"city": "Paris"}')]))
    resp = post(world, "What is the weather in Paris?", tools=TOOLS)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-router-model"] == "cloud/m-c"
    msg = resp.json()["choices"][0]["message"]
    assert msg["tool_calls"][0]["function"]["name"] == "get_weather"
    assert verdicts(resp, "loc/m-a")["tool_call"] is False
    assert calls(world.loc) == 1 and calls(world.cloud) == 1


def test_valid_tool_call_stays_local(world: World) -> None:
    world.loc.push(Behaviour(text="", tool_calls=[FakeToolCall("get_weather",
                                                               '{"city": "Paris"}')]))
    resp = post(world, "What is the weather in Paris?", tools=TOOLS)
    assert resp.headers["x-router-model"] == "loc/m-a"
    assert calls(world.cloud) == 0


def test_code_that_does_not_parse_escalates(world: World) -> None:
    world.loc.push(Behaviour(text="Here:\n```python\ndef parse(s):\n    return s.split(\n```\n"))
    resp = post(world, "Write a Python function that splits a CSV line into fields.")
    assert resp.json()["x_router_trace"]["classification"]["task"] == "code"
    assert_escalated(resp, world, "code_syntax")


def test_code_that_parses_stays_local(world: World) -> None:
    world.loc.push(Behaviour(text="Here:\n```python\ndef parse(s):\n    return s.split(',')\n"
                                  "```\n"))
    resp = post(world, "Write a Python function that splits a CSV line into fields.")
    assert resp.headers["x-router-model"] == "loc/m-a"
    assert calls(world.cloud) == 0


def test_confidence_is_asked_for_and_stripped(world: World) -> None:
    world.loc.push(Behaviour(text="Paris.\nconfidence: 0.9"))
    resp = post(world)
    assert resp.headers["x-router-model"] == "loc/m-a"
    assert content(resp) == "Paris."
    sent = world.loc.bodies("/v1/chat/completions")[0]
    assert "confidence: 0.x" in sent["messages"][0]["content"]
    assert resp.json()["x_router_trace"]["verification"][0]["confidence"] == 0.9
    assert calls(world.cloud) == 0


# -- privacy ---------------------------------------------------------------------------


def test_a_private_request_escalates_only_to_a_local_model(world: World) -> None:
    world.loc.push(Behaviour(text="I cannot help with that."))
    resp = post(world, private=True)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-router-model"] == "loc2/m-b"
    assert resp.headers["x-router-escalated"].startswith("loc/m-a -> loc2/m-b")
    assert calls(world.loc) == 1 and calls(world.loc2) == 1
    assert world.cloud.connections == 0 and calls(world.cloud) == 0


def test_private_escalation_failing_keeps_the_local_answer(world: World) -> None:
    world.loc.push(Behaviour(text="I cannot help with that."))
    world.loc2.push(Behaviour(status=500))
    resp = post(world, private=True)
    assert resp.status_code == 200
    assert resp.headers["x-router-model"] == "loc/m-a"
    assert "refusal" in resp.headers["x-router-response-tags"].split(",")
    esc = resp.json()["x_router_trace"]["escalation"]
    assert esc["to"] == "loc2/m-b" and esc["outcome"] == "failed"
    assert world.cloud.connections == 0


# -- what is not escalated -------------------------------------------------------------


def test_a_cloud_answer_is_not_verified_when_only_from_local(world: World) -> None:
    world.loc.push(Behaviour(status=503))
    world.cloud.push(Behaviour(text="I'm sorry, but I can't help with that."))
    resp = post(world)
    assert resp.status_code == 200
    assert resp.headers["x-router-model"] == "cloud/m-c"
    assert "x-router-escalated" not in resp.headers
    assert resp.headers["x-router-response-tags"] == "refusal"
    assert calls(world.loc) == 1 and calls(world.cloud) == 1


def test_an_unverified_cloud_answer_loses_the_confidence_line_it_was_asked_for(
        world: World) -> None:
    world.loc.push(Behaviour(status=503))
    world.cloud.push(Behaviour(text="Paris.\nconfidence: 0.9"))
    resp = post(world)
    assert resp.headers["x-router-model"] == "cloud/m-c"
    sent = world.cloud.bodies("/v1/chat/completions")[0]
    assert "confidence: 0.x" in sent["messages"][0]["content"]  # asked, as of every model
    assert content(resp) == "Paris."  # ... but never shown to the client


def test_escalation_target_down_returns_the_first_answer(world: World) -> None:
    world.loc.push(Behaviour(text="", finish_reason="length"))
    world.cloud.push(Behaviour(status=500))
    resp = post(world)
    assert resp.status_code == 200
    assert resp.headers["x-router-model"] == "loc/m-a"
    assert set(resp.headers["x-router-response-tags"].split(",")) == {"truncated"}
    assert calls(world.loc) == 1 and calls(world.cloud) == 1


# -- streams (verify_stream: buffer) ---------------------------------------------------


def _stream(world: World, **kw: Any) -> httpx.Response:
    body = {"model": "auto", "stream": True,
            "messages": [{"role": "user", "content": "What is the capital of France?"}], **kw}
    return httpx.post(world.router.url + "/v1/chat/completions", json=body, timeout=20)


def _streamed_text(resp: httpx.Response) -> str:
    out = ""
    for ev in sse_events(resp.text):
        if ev.startswith(":") or ev == "[DONE]":
            continue
        for choice in orjson.loads(ev).get("choices", []):
            out += choice.get("delta", {}).get("content") or ""
    return out


def test_a_buffered_stream_is_verified_and_escalated(world: World) -> None:
    world.loc.push(Behaviour(text="I'm sorry, but I can't assist with that."))
    resp = _stream(world)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-router-model"] == "cloud/m-c"
    assert _streamed_text(resp) == "Hello from m-c."
    assert sse_events(resp.text)[-1] == "[DONE]"
    assert calls(world.loc) == 1 and calls(world.cloud) == 1
    # buffered: the upstream call itself was not a stream
    assert world.loc.bodies("/v1/chat/completions")[0]["stream"] is False


def test_a_buffered_stream_that_passes_streams_the_local_answer(world: World) -> None:
    resp = _stream(world, stream_options={"include_usage": True})
    assert resp.headers["x-router-model"] == "loc/m-a"
    assert _streamed_text(resp) == "Hello from m-a."
    assert calls(world.cloud) == 0
