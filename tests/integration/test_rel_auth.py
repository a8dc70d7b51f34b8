"""Ingress auth on a real router: hashed keys, both headers, scopes, 401/403/429 in the
client's own error shape, rate limits with Retry-After, and the SDKs' view of it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from e2e.harness import chat_body
from integration.rel_support import KEY_A, KEY_B, Rig, rel_router

KEYS = {"keys": [
    {"name": "alpha", "hash": "sha256:" + hashlib.sha256(KEY_A.encode()).hexdigest()},
    {"name": "bravo", "key_env": "REL_TEST_KEY_B", "models": ["loc2/*", "m-c"]},
    {"name": "charlie", "hash": "sha256:" + hashlib.sha256(b"ilk-charlie").hexdigest(),
     "rpm": 60, "burst": 2},
    {"name": "secret-only", "key_env": "REL_TEST_KEY_P", "private_only": True},
    {"name": "other-profile", "key_env": "REL_TEST_KEY_Q", "profiles": ["cost"]},
]}
KEY_P = "ilk-test-private-only-5555"
KEY_Q = "ilk-test-other-profile-7777"
KEY_C = "ilk-charlie"


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    env = {"REL_TEST_KEY_B": KEY_B, "REL_TEST_KEY_P": KEY_P, "REL_TEST_KEY_Q": KEY_Q}
    with rel_router({"auth": KEYS}, env=env) as r:
        yield r


@pytest.fixture(autouse=True)
def _fresh(rig: Rig) -> None:
    rig.reset()


def post(rig: Rig, headers: dict[str, str], body: dict[str, object] | None = None,
         path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(rig.url + path, json=body or chat_body(), headers=headers, timeout=30)


def test_no_key_is_a_401_in_openai_shape_and_nothing_is_sent_upstream(rig: Rig) -> None:
    r = post(rig, {})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["type"] == "authentication_error" and err["code"] == "invalid_api_key"
    assert r.headers["x-should-retry"] == "false"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert rig.local.requests == [] and rig.cloud.requests == []


def test_a_wrong_key_is_a_401_in_anthropic_shape_on_messages(rig: Rig) -> None:
    body = {"model": "auto", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    r = post(rig, {"x-api-key": KEY_A + "x"}, body, path="/v1/messages")
    assert r.status_code == 401
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("how", ["bearer", "x-api-key"])
def test_a_valid_key_is_accepted_in_either_header(rig: Rig, how: str) -> None:
    headers = ({"Authorization": f"Bearer {KEY_A}"} if how == "bearer"
               else {"x-api-key": KEY_A})
    r = post(rig, headers)
    assert r.status_code == 200, r.text
    assert r.headers["x-router-model"] == "loc/m-a"


def test_a_key_from_an_environment_variable_works(rig: Rig) -> None:
    r = post(rig, {"Authorization": f"Bearer {KEY_B}"})
    assert r.status_code == 200, r.text


def test_health_probes_need_no_key(rig: Rig) -> None:
    assert httpx.get(rig.url + "/readyz").status_code == 200
    assert httpx.get(rig.url + "/healthz").status_code in (200, 503)
    assert httpx.get(rig.url + "/v1/models").status_code == 401


def test_the_pages_open_without_a_key_but_their_apis_do_not(rig: Rig) -> None:
    page = httpx.get(rig.url + "/dashboard")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert httpx.get(rig.url + "/chat").status_code == 200
    for api in ("/v1/table", "/v1/stats", "/v1/logs", "/v1/conversations"):
        assert httpx.get(rig.url + api).status_code == 401, api


def test_model_scope_drops_disallowed_candidates(rig: Rig) -> None:
    # bravo may use loc2/* and m-c only: the chain's first (loc/m-a) is skipped
    r = post(rig, {"Authorization": f"Bearer {KEY_B}"})
    assert r.status_code == 200, r.text
    assert r.headers["x-router-model"] == "loc2/m-b"
    assert rig.local.requests == []


def test_an_explicit_model_outside_the_scope_is_a_403(rig: Rig) -> None:
    r = post(rig, {"Authorization": f"Bearer {KEY_B}"}, chat_body(model="loc/m-a"))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "model_not_allowed"
    assert r.json()["error"]["type"] == "permission_error"
    assert rig.local.requests == []


def test_a_private_only_key_never_reaches_the_cloud(rig: Rig) -> None:
    from fakes.harness import Behaviour

    rig.local.default = Behaviour(status=500)
    rig.local2.default = Behaviour(status=500)
    r = post(rig, {"Authorization": f"Bearer {KEY_P}"}, chat_body("Say hello."))
    assert r.status_code == 503, r.text
    assert r.headers["x-router-cell"].split(".")[2] == "private"
    assert rig.cloud.connections == 0
    # the same request with a normal key does fall back to the cloud: the key made it private
    r = post(rig, {"Authorization": f"Bearer {KEY_A}"}, chat_body("Say hello."))
    assert r.status_code == 200 and r.headers["x-router-provider"] == "cloud"


def test_a_key_scoped_to_another_profile_is_a_403(rig: Rig) -> None:
    r = post(rig, {"Authorization": f"Bearer {KEY_Q}"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "profile_not_allowed"


def test_rate_limit_is_a_429_with_retry_after_in_the_clients_shape(rig: Rig) -> None:
    # charlie: 60 rpm, burst 2
    codes = [post(rig, {"Authorization": f"Bearer {KEY_C}"}).status_code for _ in range(2)]
    assert codes == [200, 200]
    r = post(rig, {"Authorization": f"Bearer {KEY_C}"})
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert r.headers["retry-after"] == "1"
    assert r.headers["x-should-retry"] == "true"
    body = {"model": "auto", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    r = post(rig, {"x-api-key": KEY_C}, body, path="/v1/messages")
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    time.sleep(1.1)
    assert post(rig, {"Authorization": f"Bearer {KEY_C}"}).status_code == 200


def test_the_openai_sdk_raises_authentication_error_without_retrying(rig: Rig) -> None:
    client = openai.OpenAI(base_url=rig.url + "/v1", api_key="wrong", max_retries=3)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="auto",
                                       messages=[{"role": "user", "content": "hi"}])
    ok = openai.OpenAI(base_url=rig.url + "/v1", api_key=KEY_A, max_retries=0)
    out = ok.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content


def test_the_anthropic_sdk_authenticates_with_x_api_key(rig: Rig) -> None:
    probe = post(rig, {"x-api-key": KEY_A}, {"model": "auto"}, path="/v1/messages")
    if probe.status_code == 404:
        pytest.skip("/v1/messages is not served by this build (surfaces issue)")
    bad = anthropic.Anthropic(base_url=rig.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="auto", max_tokens=20,
                            messages=[{"role": "user", "content": "hi"}])
    ok = anthropic.Anthropic(base_url=rig.url, api_key=KEY_A, max_retries=0)
    out = ok.messages.create(model="auto", max_tokens=20,
                             messages=[{"role": "user", "content": "hi"}])
    assert out.content
