"""Errors on every surface, in that API's own shape, through the official SDKs:
Anthropic's ``{"type": "error", "error": {...}}`` with its statuses (529 when every
upstream was overloaded), upstream errors passed through, in-band errors after a
stream started, the Responses features a stateless router refuses, and the app's
own 404/405/413 on the Anthropic paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from e2e.surface_setup import Surfaces, start_surfaces
from fakes.harness import Behaviour


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


HI: Any = [{"role": "user", "content": "Hi"}]


def anthropic_error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
    err: dict[str, Any] = body["error"]
    return err


# -- Anthropic shape and statuses ------------------------------------------------------------


def test_missing_max_tokens_is_an_anthropic_400(s: Surfaces) -> None:
    r = httpx.post(s.url + "/v1/messages", json={"model": "auto", "messages": HI})
    assert r.status_code == 400
    err = anthropic_error(r)
    assert err["type"] == "invalid_request_error" and "max_tokens" in err["message"]
    assert r.headers["x-router-table"].startswith("sha256:")
    assert not s.ol.requests and not s.an.requests


@pytest.mark.parametrize("body, field", [
    ({"max_tokens": 0, "messages": HI}, "max_tokens"),
    ({"max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages.0.content.0.type"),
    ({"max_tokens": 5, "messages": HI, "temperature": 1.5}, "temperature"),
    ({"max_tokens": 5, "messages": HI, "tools": [{"name": "t"}]}, "tools.0.input_schema"),
    ({"max_tokens": 5, "messages": HI, "tool_choice": {"type": "sometimes"}}, "tool_choice"),
])
def test_validation_errors_name_the_field(s: Surfaces, body: dict[str, Any], field: str) -> None:
    r = httpx.post(s.url + "/v1/messages", json={"model": "auto", **body})
    assert r.status_code == 400
    assert field in anthropic_error(r)["message"]


def test_a_bad_anthropic_version_header_is_refused(s: Surfaces) -> None:
    r = httpx.post(s.url + "/v1/messages", headers={"anthropic-version": "latest"},
                   json={"model": "auto", "max_tokens": 5, "messages": HI})
    assert r.status_code == 400 and "anthropic-version" in anthropic_error(r)["message"]


def test_the_sdk_raises_typed_errors(ant: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as nf:
        ant.messages.create(model="no-such-model", max_tokens=5, messages=HI)
    assert nf.value.status_code == 404
    assert isinstance(nf.value.body, dict)
    assert nf.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as br:
        ant.messages.create(model="auto", max_tokens=5,
                            messages=[{"role": "assistant", "content": [
                                {"type": "tool_result", "tool_use_id": "x", "content": "y"}]}])
    assert "tool_result" in str(br.value)


def test_every_upstream_overloaded_is_529_overloaded(s: Surfaces,
                                                     ant: anthropic.Anthropic) -> None:
    s.ol.default = Behaviour(status=503, error_message="busy")
    s.lo.default = Behaviour(status=429, error_message="slow down")
    s.an.default = Behaviour(status=529, error_message="Overloaded")
    s.cl.default = Behaviour(status=503, error_message="busy")  # the escalation candidate
    with pytest.raises(anthropic.OverloadedError) as exc:
        ant.messages.create(model="auto", max_tokens=5, messages=HI)
    assert exc.value.status_code == 529
    body = exc.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "overloaded_error"
    assert [a["status"] for a in body["error"]["attempts"]] == [503, 429, 529, 503]


def test_anthropic_529_on_the_chat_surface_is_a_502_after_fallbacks(
        s: Surfaces, oai: openai.OpenAI) -> None:
    s.an.default = Behaviour(status=529, error_message="Overloaded")
    with pytest.raises(openai.APIStatusError) as exc:
        oai.chat.completions.create(model="an/claude-x", messages=HI)
    assert exc.value.status_code == 502
    assert "claude-x" in exc.value.message


def test_a_failed_mix_is_not_called_overloaded(s: Surfaces, ant: anthropic.Anthropic) -> None:
    s.ol.default = Behaviour(status=500)
    s.lo.default = Behaviour(status=529)
    s.an.default = Behaviour(status=500)
    s.cl.default = Behaviour(status=500)
    with pytest.raises(anthropic.InternalServerError) as exc:
        ant.messages.create(model="auto", max_tokens=5, messages=HI)
    assert exc.value.status_code == 502
    assert not isinstance(exc.value, anthropic.OverloadedError)


def test_an_anthropic_upstream_error_goes_back_as_it_came(s: Surfaces) -> None:
    s.an.default = Behaviour(status=400, error_message="messages: roles must alternate")
    r = httpx.post(s.url + "/v1/messages", json={"model": "an/claude-x", "max_tokens": 5,
                                                 "messages": HI})
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "messages: roles must alternate"}}
    assert r.headers["x-router-provider"] == "an"


def test_an_openai_upstream_error_is_given_anthropic_shape(s: Surfaces,
                                                           ant: anthropic.Anthropic) -> None:
    s.lo.default = Behaviour(status=400, error_message="context too long")
    with pytest.raises(anthropic.BadRequestError) as exc:
        ant.messages.create(model="lo/m-l", max_tokens=5, messages=HI)
    body = exc.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error", "message": "lo: context too long"}


def test_an_anthropic_upstream_error_on_the_chat_surface_is_openai_shaped(
        s: Surfaces, oai: openai.OpenAI) -> None:
    s.an.default = Behaviour(status=400, error_message="bad image")
    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(model="an/claude-x", messages=HI)
    assert exc.value.message.endswith("an: bad image")


def test_a_private_request_is_refused_in_anthropic_shape_and_the_cloud_untouched(
        s: Surfaces, ant: anthropic.Anthropic) -> None:
    s.ol.default = Behaviour(status=500)
    s.lo.default = Behaviour(status=500)
    with pytest.raises(anthropic.InternalServerError) as exc:
        ant.messages.create(model="auto", max_tokens=5,
                            messages=[{"role": "user", "content": "Hi #no_cloud"}])
    assert exc.value.status_code == 503
    assert "private" in exc.value.message
    assert s.an.connections == 0


# -- in-band errors after the stream started -----------------------------------------------


def test_a_messages_stream_cut_mid_way_raises_in_the_sdk(s: Surfaces,
                                                         ant: anthropic.Anthropic) -> None:
    s.lo.default = Behaviour(text="one two three four", drop="mid_stream", drop_after=2)
    with pytest.raises(anthropic.APIStatusError) as exc:  # noqa: PT012
        with ant.messages.stream(model="lo/m-l", max_tokens=50, messages=HI) as st:
            for _ in st:
                pass
    assert "mid-stream" in str(exc.value)


def test_a_responses_stream_cut_mid_way_ends_with_response_failed(
        s: Surfaces, oai: openai.OpenAI) -> None:
    s.an.default = Behaviour(text="one two three four", drop="mid_stream", drop_after=4)
    events = list(oai.responses.create(model="an/claude-x", input="Hi", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None
    assert "mid-stream" in events[-1].response.error.message
    assert not any(e.type == "response.completed" for e in events)


# -- Responses: what a stateless router refuses --------------------------------------------


@pytest.mark.parametrize("extra, param", [
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"store": True}, "store"),
    ({"background": True}, "background"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"tools": [{"type": "custom", "name": "apply_patch"}]}, "tools[0].type"),
    ({"tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}},
     "tool_choice"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
])
def test_stateful_responses_features_are_a_clear_400(
        s: Surfaces, oai: openai.OpenAI, extra: dict[str, Any], param: str) -> None:
    kw: dict[str, Any] = {"model": "auto", "input": "Hi", **extra}
    with pytest.raises(openai.BadRequestError) as exc:
        oai.responses.create(**kw)
    body = exc.value.body
    assert isinstance(body, dict) and body["param"] == param
    assert body["code"] == "unsupported_parameter"
    assert not s.ol.requests  # refused before any upstream was called


def test_hosted_tools_are_left_out_and_namespaces_flattened(
        s: Surfaces, oai: openai.OpenAI) -> None:
    fn = {"type": "function", "name": "close_agent", "parameters": {"type": "object"}}
    r = oai.responses.create(model="lo/m-l", input="Hi", tools=[  # type: ignore[list-item]
        {"type": "web_search"}, {"type": "namespace", "name": "agents", "tools": [fn]}])
    assert r.output_text == "Hello from m-l."
    sent = s.lo.requests[0].json
    assert [t["function"]["name"] for t in sent["tools"]] == ["close_agent"]


def test_store_false_is_fine(s: Surfaces, oai: openai.OpenAI) -> None:
    r = oai.responses.create(model="auto", input="Hi", store=False)
    assert r.output_text == "Hello from m-o."
    assert r.store is False


# -- the app's own errors on the Anthropic paths ----------------------------------------------


def test_unknown_and_wrong_method_paths_use_the_paths_shape(s: Surfaces) -> None:
    r = httpx.post(s.url + "/v1/messages/batches", json={})
    assert r.status_code == 404 and anthropic_error(r)["type"] == "not_found_error"
    r = httpx.get(s.url + "/v1/messages")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert anthropic_error(r)["type"] == "invalid_request_error"
    r = httpx.post(s.url + "/v1/nothing", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"


def test_an_oversized_body_is_413_request_too_large(s: Surfaces) -> None:
    big = json.dumps({"model": "auto", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]})
    r = httpx.post(s.url + "/v1/messages", content=big,
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and anthropic_error(r)["type"] == "request_too_large"


def test_count_tokens_is_an_estimate_that_grows_with_the_input(
        s: Surfaces, ant: anthropic.Anthropic) -> None:
    short = ant.messages.count_tokens(model="auto", messages=HI)
    raw = ant.messages.with_raw_response.count_tokens(
        model="auto", system="Be brief.", messages=[{"role": "user", "content": "word " * 400}])
    long = raw.parse()
    assert 0 < short.input_tokens < long.input_tokens
    assert 400 <= long.input_tokens <= 800
    assert raw.headers["x-router-token-count"] == "estimate"
    assert not s.ol.requests and not s.an.requests  # no model was called


def test_models_list_reads_in_both_sdks(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    assert [m.id for m in oai.models.list()][:2] == ["auto", "route-auto"]
    listed = ant.models.list()
    assert [m.id for m in listed.data][:2] == ["auto", "route-auto"]
    assert "an/claude-x" in [m.id for m in listed.data]
    assert listed.data[0].type == "model"
