"""Pure translation logic of the surfaces and the anthropic wire: decoders, the stream
encoders' exact event order, stop-reason mapping, error shapes, and the anthropic
stream decoder fed one byte at a time."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fakes.entries import model_entry, provider_entry
from fakes.harness import FakeUpstream
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    Message,
    Part,
    ToolCall,
    Usage,
)
from interlock.runtime.errors import Attempt, NoCandidateError, RequestError, UpstreamHTTPError
from interlock.runtime.providers import anthropic as wire
from interlock.runtime.sse import SSEParser
from interlock.runtime.surfaces.chat_encode import ChatStreamEncoder
from interlock.runtime.surfaces.messages import decode_messages
from interlock.runtime.surfaces.messages_encode import MessagesStreamEncoder, encode_message
from interlock.runtime.surfaces.responses import decode_responses
from interlock.runtime.surfaces.responses_encode import ResponsesStreamEncoder
from interlock.runtime.surfaces.shapes import (
    ANTHROPIC_ERRORS,
    OLLAMA_ERRORS,
    OPENAI_ERRORS,
    shape_for_path,
)


def sse(raw: bytes) -> list[tuple[str, Any]]:
    p = SSEParser()
    return [(e.event, orjson.loads(e.data) if e.data != "[DONE]" else e.data)
            for e in p.feed(raw) + p.close()]


def _anthropic_stream() -> bytes:
    def ev(name: str, data: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\r\ndata: " + orjson.dumps(data) + b"\r\n\r\n"

    return b"".join([
        ev("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 12}}}),
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "thinking", "thinking": ""}}),
        ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "thinking_delta", "thinking": "hmm…"}}),
        ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ev("content_block_start", {"type": "content_block_start", "index": 1,
                                   "content_block": {"type": "text", "text": ""}}),
        ev("ping", {"type": "ping"}),
        ev("content_block_delta", {"type": "content_block_delta", "index": 1,
                                   "delta": {"type": "text_delta", "text": "Grüße ☕"}}),
        ev("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ev("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "toolu_9", "name": "f", "input": {}}}),
        ev("content_block_delta", {"type": "content_block_delta", "index": 2,
                                   "delta": {"type": "input_json_delta", "partial_json": '{"a"'}}),
        ev("content_block_delta", {"type": "content_block_delta", "index": 2,
                                   "delta": {"type": "input_json_delta", "partial_json": ": 1}"}}),
        ev("content_block_stop", {"type": "content_block_stop", "index": 2}),
        ev("content_block_start", {"type": "content_block_start", "index": 3, "content_block": {
            "type": "tool_use", "id": "toolu_10", "name": "g", "input": {}}}),
        ev("content_block_stop", {"type": "content_block_stop", "index": 3}),
        ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                             "usage": {"output_tokens": 7}}),
        ev("message_stop", {"type": "message_stop"}),
    ])


def _decode_anthropic(pieces: list[bytes]) -> list[Delta]:
    parser, dec, out = SSEParser(), wire.EventDecoder("an", "claude-x"), []
    for piece in pieces:
        for e in parser.feed(piece):
            out += dec.decode(e.data)
    for e in parser.close():
        out += dec.decode(e.data)
    assert dec.done
    return out


def test_the_anthropic_stream_decoder_is_independent_of_chunking() -> None:
    raw = _anthropic_stream()
    whole = _decode_anthropic([raw])
    assert _decode_anthropic([raw[i:i + 1] for i in range(len(raw))]) == whole
    assert "".join(d.text for d in whole) == "Grüße ☕"
    assert "".join(d.thinking for d in whole) == "hmm…"
    calls: dict[int, list[str]] = {}
    for d in whole:
        if d.tool_index is not None:
            slot = calls.setdefault(d.tool_index, ["", "", ""])
            slot[0] = d.tool_id or slot[0]
            slot[1] = d.tool_name or slot[1]
            slot[2] += d.tool_arguments
    assert calls == {0: ["toolu_9", "f", '{"a": 1}'], 1: ["toolu_10", "g", "{}"]}
    assert whole[-1].finish_reason == "tool_calls"
    assert whole[-1].usage == Usage(12, 7)


def test_an_error_event_in_an_anthropic_stream_raises() -> None:
    dec = wire.EventDecoder("an", "m")
    with pytest.raises(Exception, match="overloaded_error"):
        dec.decode('{"type": "error", "error": {"type": "overloaded_error", "message": "x"}}')


@pytest.mark.parametrize("theirs, ours", [("end_turn", "stop"), ("stop_sequence", "stop"),
                                          ("max_tokens", "length"), ("tool_use", "tool_calls"),
                                          ("refusal", "content_filter")])
def test_stop_reasons_both_ways(theirs: str, ours: Any) -> None:
    assert wire.stop_reason(theirs) == ours
    resp = CanonicalResponse(id="x", model="m", text="t", finish_reason=ours)
    if theirs != "stop_sequence":
        assert encode_message(resp, model_name="m")["stop_reason"] == theirs


# -- the messages stream encoder ------------------------------------------------------------


def test_messages_stream_event_order_with_interleaved_parallel_calls() -> None:
    enc = MessagesStreamEncoder(model_name="lo/m-l")
    deltas = [Delta(id="x"), Delta(text="Hi "), Delta(text="there"),
              Delta(tool_index=0, tool_id="c0", tool_name="f", tool_arguments=""),
              Delta(tool_index=1, tool_id="c1", tool_name="g", tool_arguments=""),
              Delta(tool_index=0, tool_arguments='{"a":'),
              Delta(tool_index=1, tool_arguments='{"b":'),
              Delta(tool_index=0, tool_arguments="1}"),
              Delta(tool_index=1, tool_arguments="2}"),
              Delta(finish_reason="tool_calls"), Delta(usage=Usage(5, 9))]
    raw = b"".join(enc.encode(d) for d in deltas) + enc.close()
    events = sse(raw)
    assert [name for name, _ in events] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    blocks: dict[int, str] = {}
    for name, data in events:
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            blocks[data["index"]] = blocks.get(data["index"], "") + data["delta"]["partial_json"]
    assert blocks == {1: '{"a":1}', 2: '{"b":2}'}
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [b.get("id") for b in starts] == [None, "c0", "c1"]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"] == {"input_tokens": 5, "output_tokens": 9}


def test_messages_stream_without_any_delta_still_opens_and_closes() -> None:
    enc = MessagesStreamEncoder(model_name="m")
    names = [n for n, _ in sse(enc.close())]
    assert names == ["message_start", "ping", "message_delta", "message_stop"]


def test_messages_stream_failure_is_an_error_event() -> None:
    enc = MessagesStreamEncoder(model_name="m")
    raw = enc.encode(Delta(text="a")) + enc.fail("boom", b": trace\n\n")
    assert sse(raw)[-1] == ("error", {"type": "error",
                                      "error": {"type": "api_error", "message": "boom"}})
    assert b": trace" in raw


# -- chat and responses encoders --------------------------------------------------------------


def test_chat_include_usage_sends_exactly_one_usage_chunk() -> None:
    enc = ChatStreamEncoder(model_name="m", include_usage=True)
    raw = (enc.encode(Delta(text="a", usage=Usage(1, 1))) + enc.encode(Delta(usage=Usage(3, 4)))
           + enc.encode(Delta(finish_reason="stop")) + enc.close())
    events = [e for _, e in sse(raw)]
    assert events[-1] == "[DONE]"
    usage = [e for e in events[:-1] if e.get("usage")]
    assert usage == [events[-2]] and usage[0]["usage"]["total_tokens"] == 7


def test_responses_stream_sequence_numbers_and_order() -> None:
    req = decode_responses({"model": "auto", "input": "hi"})
    enc = ResponsesStreamEncoder(model_name="m", req=req)
    raw = (enc.encode(Delta(text="a")) + enc.encode(Delta(text="b"))
           + enc.encode(Delta(tool_index=0, tool_id="c0", tool_name="f", tool_arguments="{}"))
           + enc.encode(Delta(finish_reason="tool_calls")) + enc.close())
    events = [d for _, d in sse(raw)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    final = events[-1]["response"]
    assert [o["type"] for o in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["call_id"] == "c0"


# -- decoders -----------------------------------------------------------------------------------


def test_decode_messages_reads_both_system_forms_and_every_block() -> None:
    body = {"model": "auto", "max_tokens": 10, "system": [{"type": "text", "text": "A"},
                                                          {"type": "text", "text": "B"}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "t", "signature": "sig"},
                    {"type": "tool_use", "id": "tu1", "name": "f", "input": {"q": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "tu1", "is_error": True,
                     "content": [{"type": "text", "text": "bad"}]}]}],
            "tool_choice": {"type": "any"}, "stop_sequences": ["X"]}
    req = decode_messages(body)
    assert req.system == "A\n\nB"
    assert decode_messages({**body, "system": "S"}).system == "S"
    assert [p.type for m in req.messages for p in m.parts] == [
        "text", "image", "thinking", "tool_call", "tool_result"]
    call = req.messages[1].parts[1]
    assert (call.tool_call_id, call.name, orjson.loads(call.arguments or "")) == (
        "tu1", "f", {"q": 1})
    result = req.messages[2].parts[0]
    assert (result.tool_call_id, result.text, result.is_error) == ("tu1", "bad", True)
    assert req.tool_choice == "required" and req.stop == ["X"] and req.max_tokens == 10


def test_decode_responses_groups_parallel_calls_into_one_assistant_turn() -> None:
    req = decode_responses({"model": "m", "instructions": "Sys", "input": [
        {"role": "user", "content": "q"},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "let me check"}]},
        {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "g", "arguments": "{}"},
        {"type": "reasoning", "summary": []},
        {"type": "function_call_output", "call_id": "a", "output": "1"},
        {"type": "function_call_output", "call_id": "b", "output": "2"}]})
    assert req.system == "Sys"
    assert [m.role for m in req.messages] == ["user", "assistant", "tool", "tool"]
    assert [p.type for p in req.messages[1].parts] == ["text", "tool_call", "tool_call"]


def test_decode_responses_refuses_stateful_features() -> None:
    with pytest.raises(RequestError) as exc:
        decode_responses({"model": "m", "input": "x", "previous_response_id": "resp_1"})
    assert exc.value.status == 400 and exc.value.param == "previous_response_id"


# -- the anthropic request encoder --------------------------------------------------------------


def test_chat_history_becomes_alternating_anthropic_turns() -> None:
    up = FakeUpstream()
    up.port = 1
    model = model_entry(provider_entry(up, name="an", wire="anthropic"), "claude-x")
    req = CanonicalRequest(surface="chat", messages=[
        Message("system", [Part("text", "Sys")]),
        Message("user", [Part("text", "q")]),
        Message("assistant", [Part("tool_call", tool_call_id="c1", name="f", arguments="{}"),
                              Part("tool_call", tool_call_id="c2", name="g",
                                   arguments='{"x": 1}')]),
        Message("tool", [Part("tool_result", text="r1", tool_call_id="c1")]),
        Message("tool", [Part("tool_result", text="r2", tool_call_id="c2")]),
        Message("user", [Part("text", "and?"),
                         Part("image", image_url="data:image/jpeg;base64,QUJD")]),
    ], response_format={"type": "json_object"})
    body = wire.encode_request(req, model, stream=False)
    assert body["system"].startswith("Sys\n\n") and "JSON" in body["system"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in body["messages"][2]["content"]] == [
        "tool_result", "tool_result", "text", "image"]
    assert body["messages"][2]["content"][3]["source"] == {
        "type": "base64", "media_type": "image/jpeg", "data": "QUJD"}
    assert body["messages"][1]["content"][1]["input"] == {"x": 1}


def test_unsigned_thinking_is_not_sent_back_to_anthropic() -> None:
    up = FakeUpstream()
    up.port = 1
    model = model_entry(provider_entry(up, name="an", wire="anthropic"), "claude-x")
    body = {"model": "auto", "max_tokens": 5, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t",
                                           "signature": ""},
                                          {"type": "text", "text": "a"}]},
        {"role": "user", "content": "more"}]}
    sent = wire.encode_request(decode_messages(body), model, stream=True)
    assert sent["messages"][1]["content"] == [{"type": "text", "text": "a"}]
    assert sent["stream"] is True and sent["model"] == "claude-x"


# -- error shapes --------------------------------------------------------------------------------


def test_error_shapes_by_path() -> None:
    assert shape_for_path("/v1/messages/count_tokens") is ANTHROPIC_ERRORS
    assert shape_for_path("/api/chat") is OLLAMA_ERRORS
    assert shape_for_path("/v1/responses") is OPENAI_ERRORS
    status, body = ANTHROPIC_ERRORS.body(413, "too big")
    assert (status, orjson.loads(body)) == (413, {"type": "error", "error": {
        "type": "request_too_large", "message": "too big"}})
    assert orjson.loads(OLLAMA_ERRORS.body(404, "nope")[1]) == {"error": "nope"}


@pytest.mark.parametrize("statuses, expected", [([503, 429, 529], 529), ([503, 500], 502),
                                                 ([], 502)])
def test_anthropic_overloaded_only_when_every_attempt_was_busy(
        statuses: list[int], expected: int) -> None:
    attempts = [Attempt("p", "m", "error", status=s) for s in statuses]
    status, body = ANTHROPIC_ERRORS.router_error(NoCandidateError(502, "all failed", attempts))
    assert status == expected
    assert orjson.loads(body)["error"]["type"] == (
        "overloaded_error" if expected == 529 else "api_error")


def test_upstream_bodies_are_reshaped_only_when_foreign() -> None:
    anth = orjson.dumps({"type": "error", "error": {"type": "x", "message": "m"}})
    oai = orjson.dumps({"error": {"message": "m", "type": "t", "param": None, "code": None}})
    ant_exc = UpstreamHTTPError("an", "c", 400, anth)
    oai_exc = UpstreamHTTPError("lo", "m", 400, oai)
    assert ANTHROPIC_ERRORS.upstream(ant_exc) == (400, anth)
    assert OPENAI_ERRORS.upstream(oai_exc) == (400, oai)
    assert orjson.loads(OPENAI_ERRORS.upstream(ant_exc)[1])["error"]["message"] == "an: m"
    assert orjson.loads(ANTHROPIC_ERRORS.upstream(oai_exc)[1])["error"]["message"] == "lo: m"


def test_encode_message_json() -> None:
    resp = CanonicalResponse(id="chatcmpl-1", model="m", text="hi", thinking="why",
                             tool_calls=[ToolCall("c", "f", '{"a": [1]}')],
                             finish_reason="stop", usage=Usage(3, 4))
    out = encode_message(resp, model_name="lo/m-l")
    assert out["id"].startswith("msg_") and out["model"] == "lo/m-l"
    assert [b["type"] for b in out["content"]] == ["thinking", "text", "tool_use"]
    assert out["content"][2]["input"] == {"a": [1]}
    assert out["stop_reason"] == "tool_use"
    assert out["usage"] == {"input_tokens": 3, "output_tokens": 4}


def test_decode_responses_reads_custom_tool_calls_and_skips_hosted_records() -> None:
    req = decode_responses({"model": "m", "input": [
        {"role": "user", "content": "patch it"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "*** x"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "done"}]})
    assert [m.role for m in req.messages] == ["user", "assistant", "tool"]
    call = req.messages[1].parts[0]
    assert (call.name, orjson.loads(call.arguments or "")) == ("apply_patch", {"input": "*** x"})
    assert req.messages[2].parts[0].text == "done"
