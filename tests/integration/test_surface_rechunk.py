"""Re-chunking: an upstream's stream cut at arbitrary byte boundaries (inside UTF-8
characters, between ``\\r`` and ``\\n``, inside ``data:`` lines) must give the client
exactly the events it gets from the same stream in one piece, on every surface
from every wire.  Hypothesis picks the cut points; the fake upstream sends the
pieces separately (``Behaviour.raw_chunks``, a small delay between them) to a real
router under Granian."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from e2e.surface_setup import WIRE_MODELS, Surfaces, start_surfaces
from fakes.harness import Behaviour, FakeToolCall
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TEXT = "Grüße ☕ 日本語 — naïve 🎉 done."
CALLS = [FakeToolCall("get_weather", '{"city": "Zürich ☀"}', id="call_a"),
         FakeToolCall("get_time", '{"tz": "Asia/東京"}', id="call_b")]
TOOLS = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
         for n in ("get_weather", "get_time")]
VOLATILE = frozenset({"id", "created", "created_at", "item_id", "system_fingerprint"})
SURFACE_BODIES: dict[str, dict[str, Any]] = {
    "chat": {"messages": [{"role": "user", "content": "Hi"}], "tools": TOOLS,
             "stream_options": {"include_usage": True}},
    "messages": {"max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}],
                 "tools": [{"name": t["function"]["name"], "input_schema": {"type": "object"}}
                           for t in TOOLS]},
    "responses": {"input": "Hi", "tools": [{"type": "function", "name": t["function"]["name"],
                                            "parameters": {"type": "object"}} for t in TOOLS]},
}
PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages",
         "responses": "/v1/responses"}


@pytest.fixture(scope="module")
def s() -> Iterator[Surfaces]:
    setup = start_surfaces()
    yield setup
    setup.stop()


def upstream_bytes(s: Surfaces, wire: str, crlf: bool) -> bytes:
    """The fake's own stream for TEXT + CALLS, fetched once straight from the fake."""
    model = WIRE_MODELS[wire].split("/")[1]
    msgs = [{"role": "user", "content": "Hi"}]
    fake = s.fake(wire)
    fake.reset()
    fake.default = Behaviour(text=TEXT, tool_calls=CALLS, tool_variant="interleaved",
                             chunk_chars=3)
    if wire == "openai":
        url, body = fake.url + "/chat/completions", {
            "model": model, "messages": msgs, "stream": True,
            "stream_options": {"include_usage": True}}
    elif wire == "anthropic":
        url, body = fake.url + "/v1/messages", {"model": model, "messages": msgs,
                                                "max_tokens": 100, "stream": True}
    else:
        url, body = fake.url + "/api/chat", {"model": model, "messages": msgs, "stream": True}
    raw = httpx.post(url, json=body, timeout=10).content
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def client_events(s: Surfaces, surface: str, wire: str, pieces: list[bytes]) -> list[Any]:
    fake = s.fake(wire)
    fake.reset()
    fake.default = Behaviour(raw_chunks=pieces, chunk_delay_s=0.001 if len(pieces) > 1 else 0)
    body = {"model": WIRE_MODELS[wire], "stream": True, **SURFACE_BODIES[surface]}
    with httpx.stream("POST", s.url + PATHS[surface], json=body, timeout=20) as r:
        assert r.status_code == 200
        raw = r.read().decode("utf-8")  # strict: a split character would fail here
    events: list[Any] = []
    for block in raw.split("\n\n"):
        name, data = "", None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            events.append((name, data if data == "[DONE]" else scrub(orjson.loads(data))))
    return events


def cut(raw: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted(set(points)), len(raw)]
    return [raw[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]


_BASELINE: dict[tuple[str, str, bool], tuple[bytes, list[Any]]] = {}


def baseline(s: Surfaces, surface: str, wire: str, crlf: bool) -> tuple[bytes, list[Any]]:
    """The upstream bytes and the client's events for them in one piece, computed once
    (the fakes number their ids, so the bytes must not change between examples)."""
    key = (surface, wire, crlf)
    if key not in _BASELINE:
        raw = upstream_bytes(s, wire, crlf)
        _BASELINE[key] = (raw, client_events(s, surface, wire, [raw]))
    return _BASELINE[key]


def answer_of(surface: str, events: list[Any]) -> tuple[str, list[Any]]:
    """(text, parsed tool arguments in call order) as the client would assemble them."""
    text, args = "", {}
    for _, e in events:
        if e == "[DONE]":
            continue
        if surface == "chat":
            for ch in e["choices"]:
                text += ch["delta"].get("content") or ""
                for tc in ch["delta"].get("tool_calls") or ():
                    args[tc["index"]] = args.get(tc["index"], "") + tc["function"]["arguments"]
        elif surface == "messages" and e["type"] == "content_block_delta":
            d = e["delta"]
            if d["type"] == "text_delta":
                text += d["text"]
            else:
                args[e["index"]] = args.get(e["index"], "") + d["partial_json"]
        elif surface == "responses" and e["type"] == "response.completed":
            for k, o in enumerate(e["response"]["output"]):
                if o["type"] == "message":
                    text += o["content"][0]["text"]
                else:
                    args[k] = o["arguments"]
    return text, [orjson.loads(args[k]) for k in sorted(args)]


@pytest.mark.parametrize("wire", ["openai", "anthropic", "ollama"])
@pytest.mark.parametrize("surface", ["chat", "messages", "responses"])
def test_the_baseline_is_a_complete_answer(s: Surfaces, surface: str, wire: str) -> None:
    _, events = baseline(s, surface, wire, False)
    assert answer_of(surface, events) == (TEXT, [orjson.loads(c.arguments) for c in CALLS])


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), crlf=st.booleans())
@pytest.mark.parametrize("wire", ["openai", "anthropic", "ollama"])
@pytest.mark.parametrize("surface", ["chat", "messages", "responses"])
def test_rechunked_upstream_gives_the_same_client_events(
        s: Surfaces, surface: str, wire: str, data: st.DataObject, crlf: bool) -> None:
    raw, expected = baseline(s, surface, wire, crlf)
    points = data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=10), label="cuts")
    # always include a cut inside a multi-byte character and one between \r and \n
    multi = raw.index("ü".encode()) + 1
    extra = [multi]
    if crlf:
        extra.append(raw.index(b"\r\n") + 1)
    assert client_events(s, surface, wire, cut(raw, points + extra)) == expected
