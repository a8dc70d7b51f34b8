"""Streaming through real Granian: SSE chunks in chat-completions format, fallback
before the first byte, an in-band error (never a silent truncation) after it, the
trace as a final SSE comment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from e2e.harness import Setup, chat_body, sse_events, standard_setup, stop_setup
from fakes.harness import Behaviour


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    s = standard_setup(timeout_ms=1000)
    yield s
    stop_setup(s)


@pytest.fixture(autouse=True)
def _fresh(setup: Setup) -> None:
    setup.reset()


def stream(setup: Setup, body: dict[str, Any] | None = None,
           headers: dict[str, str] | None = None) -> tuple[httpx.Response, list[str]]:
    payload = body or chat_body("Say hello.", stream=True)
    with httpx.stream("POST", setup.url + "/v1/chat/completions", json=payload,
                      headers=headers, timeout=20) as resp:
        raw = resp.read().decode()
    return resp, sse_events(raw)


def text_of(events: list[str]) -> str:
    out = []
    for e in events:
        if e.startswith(":") or e == "[DONE]":
            continue
        chunk = orjson.loads(e)
        for choice in chunk.get("choices", []):
            out.append(choice["delta"].get("content") or "")
    return "".join(out)


def test_a_stream_in_chat_completions_format(setup: Setup) -> None:
    resp, events = stream(setup)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-router-model"] == "loc-a/m-a"
    assert resp.headers["x-router-attempts"] == "1"
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert text_of(events) == "Hello from m-a."


def test_include_usage_adds_one_usage_chunk(setup: Setup) -> None:
    _, events = stream(setup, chat_body("Hi", stream=True,
                                        stream_options={"include_usage": True}))
    usage = [orjson.loads(e) for e in events[:-1] if "usage" in orjson.loads(e)]
    assert len(usage) == 1 and usage[0]["choices"] == []
    assert usage[0]["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("failure", [
    Behaviour(status=500), Behaviour(status=429), Behaviour(drop="before_headers"),
    Behaviour(delay_s=1.6),
], ids=["500", "429", "dropped", "timeout"])
def test_falls_back_before_the_first_byte(setup: Setup, failure: Behaviour) -> None:
    setup.loc_a.push(failure)
    resp, events = stream(setup)
    assert resp.status_code == 200
    assert resp.headers["x-router-model"] == "loc-b/m-b"
    assert resp.headers["x-router-attempts"] == "2"
    assert text_of(events) == "Hello from m-b."
    assert events[-1] == "[DONE]"


def test_a_failure_after_the_first_byte_is_an_in_band_error(setup: Setup) -> None:
    setup.loc_a.push(Behaviour(text="one two three four five six", drop="mid_stream",
                               drop_after=3))
    resp, events = stream(setup)
    assert resp.status_code == 200  # the status went out with the first chunk
    assert resp.headers["x-router-model"] == "loc-a/m-a"
    payloads = [orjson.loads(e) for e in events if e != "[DONE]" and not e.startswith(":")]
    errors = [p for p in payloads if "error" in p]
    assert len(errors) == 1, events
    assert errors[0]["error"]["code"] == "upstream_stream_error"
    assert "loc-a" in errors[0]["error"]["message"]
    assert payloads[-1] is errors[0]  # nothing after the error but [DONE]
    assert events[-1] == "[DONE]"
    assert text_of([e for e in events if "error" not in e]).startswith("one ")
    # no fallback once bytes reached the client
    assert setup.loc_b.requests == [] and setup.cloud.requests == []


def test_client_error_before_the_first_byte_passes_through(setup: Setup) -> None:
    setup.loc_a.push(Behaviour(status=401, error_message="bad key"))
    resp, _ = stream(setup)
    assert resp.status_code == 401
    assert setup.loc_b.requests == []


def test_all_failing_before_the_first_byte_is_a_json_error(setup: Setup) -> None:
    for up in (setup.loc_a, setup.loc_b, setup.cloud):
        up.push(Behaviour(status=500))
    with httpx.stream("POST", setup.url + "/v1/chat/completions",
                      json=chat_body(stream=True), timeout=20) as resp:
        body = orjson.loads(resp.read())
    assert resp.status_code == 502
    assert len(body["error"]["attempts"]) == 3


def test_stream_trace_is_a_final_sse_comment(setup: Setup) -> None:
    _, events = stream(setup, chat_body(stream=True, trace=True))
    assert events[-1] == "[DONE]"
    comment = events[-2]
    assert comment.startswith(": x_router_trace ")
    trace = orjson.loads(comment[len(": x_router_trace "):])
    assert trace["answered_by"] == "loc-a/m-a"
    assert trace["decision"]["candidates"][0]["model"] == "loc-a/m-a"
    _, plain = stream(setup)
    assert not any(e.startswith(":") for e in plain)


def test_stream_of_tool_calls(setup: Setup) -> None:
    from fakes.harness import FakeToolCall

    setup.loc_a.push(Behaviour(text="", tool_calls=[
        FakeToolCall("get_weather", '{"city": "Paris"}')]))
    body = chat_body("Weather in Paris?", stream=True, tools=[{
        "type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}])
    _, events = stream(setup, body)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for e in events[:-1]:
        for choice in orjson.loads(e)["choices"]:
            finish = choice.get("finish_reason") or finish
            for tc in choice["delta"].get("tool_calls", []):
                entry = calls.setdefault(tc["index"], {"name": "", "arguments": ""})
                entry["name"] += tc.get("function", {}).get("name") or ""
                entry["arguments"] += tc.get("function", {}).get("arguments") or ""
    assert calls[0]["name"] == "get_weather"
    assert orjson.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert finish == "tool_calls"


def test_a_client_that_disconnects_stops_the_upstream_stream(setup: Setup) -> None:
    import time

    setup.loc_a.push(Behaviour(text=" ".join(["word"] * 40), chunk_delay_s=0.05))
    before = setup.router.log().count("transport error")
    with httpx.stream("POST", setup.url + "/v1/chat/completions", json=chat_body(stream=True),
                      timeout=10) as resp:
        next(resp.iter_raw())  # the first chunk arrived; now hang up
    time.sleep(2.5)  # the whole stream would take 2 s
    # Granian logs every send to a closed connection: had the router kept pumping the
    # upstream after the client left, there would be one line per remaining chunk
    assert setup.router.log().count("transport error") - before <= 2
    assert httpx.post(setup.url + "/v1/chat/completions", json=chat_body(),
                      timeout=10).status_code == 200
