"""relay_chat_response: an openai-wire answer as a chat client gets it."""

from __future__ import annotations

from typing import Any

from interlock.runtime.canonical import CanonicalResponse
from interlock.runtime.providers.openai import decode_response
from interlock.runtime.providers.raw import RawResponse
from interlock.runtime.surfaces.chat_encode import encode_chat_response, relay_chat_response


def answer(**kw: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-up", "object": "chat.completion", "created": 1700000000,
            "model": "upstream-id", "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Paris."}},
                        {"index": 1, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Lyon."}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                      "prompt_tokens_details": {"cached_tokens": 4}}, **kw}


def test_kept_only_for_a_chat_client() -> None:
    assert isinstance(decode_response(answer(), "p", "m", keep=True), RawResponse)
    assert not isinstance(decode_response(answer(), "p", "m"), RawResponse)


def test_everything_the_upstream_sent_stays_but_the_model_name() -> None:
    data = answer()
    out = encode_chat_response(decode_response(data, "p", "m", keep=True),
                               model_name="prov/model")
    assert out == {**data, "model": "prov/model"}
    assert data["model"] == "upstream-id"  # the upstream's object is not changed


def test_verified_text_replaces_the_first_choice_content_only() -> None:
    data = answer()
    resp = decode_response(data, "p", "m", keep=True)
    resp.text = "Paris (healed)."
    out = encode_chat_response(resp, model_name="x")
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Paris (healed)."}
    assert out["choices"][1] == data["choices"][1]
    assert data["choices"][0]["message"]["content"] == "Paris."


def test_what_a_local_server_left_out_is_filled_in() -> None:
    data = {"choices": [{"message": {"role": "assistant", "content": "Hi."}}]}
    resp = decode_response(data, "p", "m", keep=True)
    out = relay_chat_response(data, resp, "loc/m")
    assert out["id"].startswith("chatcmpl-") and out["object"] == "chat.completion"
    assert isinstance(out["created"], int) and out["created"] > 0
    assert out["choices"] == [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "Hi."}}]


def test_a_tool_call_answer_keeps_its_null_content() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    data = answer(choices=[{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [call]}}])
    out = encode_chat_response(decode_response(data, "p", "m", keep=True), model_name="x")
    assert out["choices"] == data["choices"]


def test_a_canonical_answer_is_still_built() -> None:
    out = encode_chat_response(CanonicalResponse(id="r", model="m", text="Hi."),
                               model_name="x")
    assert out["choices"][0]["message"]["content"] == "Hi."
    assert out["choices"][0]["message"]["refusal"] is None
