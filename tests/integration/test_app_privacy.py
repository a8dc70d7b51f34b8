"""Privacy fails closed: a private request never reaches a cloud provider, whatever
fails, on every path (routing, fallback, explicit model id, streaming).  The cloud
fake must receive zero connections: no probe, no request, nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from e2e.harness import Setup, chat_body, standard_setup, stop_setup
from fakes.harness import Behaviour


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    s = standard_setup(timeout_ms=1000)  # probes off: the cloud is never touched
    yield s
    stop_setup(s)


@pytest.fixture(autouse=True)
def _fresh(setup: Setup) -> None:
    setup.reset()


PRIVATE_WAYS = [
    ("body flag", chat_body("Say hello.", private=True), {}),
    ("header", chat_body("Say hello."), {"X-Router-Private": "true"}),
    ("no_cloud tag", chat_body("Say hello. #no_cloud"), {}),
    ("email address", chat_body("Write to jane.doe@acme-corp.com about the invoice."), {}),
]


def fail_every_local(setup: Setup) -> None:
    setup.loc_a.default = Behaviour(status=500)
    setup.loc_b.default = Behaviour(status=503)


@pytest.mark.parametrize(("how", "body", "headers"), PRIVATE_WAYS,
                         ids=[w[0] for w in PRIVATE_WAYS])
def test_private_request_is_served_locally(setup: Setup, how: str, body: dict[str, object],
                                           headers: dict[str, str]) -> None:
    resp = httpx.post(setup.url + "/v1/chat/completions", json=body, headers=headers,
                      timeout=20)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-router-provider"] in ("loc-a", "loc-b")
    assert ".private." in resp.headers["x-router-cell"]
    assert setup.cloud.connections == 0


@pytest.mark.parametrize(("how", "body", "headers"), PRIVATE_WAYS,
                         ids=[w[0] for w in PRIVATE_WAYS])
def test_every_local_failing_gives_503_and_the_cloud_gets_no_connection(
        setup: Setup, how: str, body: dict[str, object], headers: dict[str, str]) -> None:
    fail_every_local(setup)
    resp = httpx.post(setup.url + "/v1/chat/completions", json=body, headers=headers,
                      timeout=20)
    assert resp.status_code == 503, resp.text
    err = resp.json()["error"]
    assert err["code"] == "private_no_local"
    assert "private" in err["message"] and "cloud" in err["message"]
    assert [a["model"] for a in err["attempts"]] == ["loc-a/m-a", "loc-b/m-b"]
    assert setup.cloud.connections == 0
    assert setup.cloud.requests == []


def test_the_same_request_not_private_does_fall_back_to_the_cloud(setup: Setup) -> None:
    fail_every_local(setup)  # control: proves the cloud would have been used
    resp = httpx.post(setup.url + "/v1/chat/completions", json=chat_body(), timeout=20)
    assert resp.status_code == 200
    assert resp.headers["x-router-provider"] == "cloud"
    assert setup.cloud.connections >= 1


def test_an_explicit_cloud_model_on_a_private_request_is_refused(setup: Setup) -> None:
    resp = httpx.post(setup.url + "/v1/chat/completions",
                      json=chat_body(model="cloud/m-c", private=True), timeout=20)
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "private_no_local"
    assert setup.cloud.connections == 0
    resp = httpx.post(setup.url + "/v1/chat/completions", json=chat_body(model="m-c"),
                      headers={"X-Router-Private": "1"}, timeout=20)
    assert resp.status_code == 503
    assert setup.cloud.connections == 0


def test_private_stream_with_every_local_failing(setup: Setup) -> None:
    fail_every_local(setup)
    with httpx.stream("POST", setup.url + "/v1/chat/completions",
                      json=chat_body(private=True, stream=True), timeout=20) as resp:
        resp.read()
    assert resp.status_code == 503
    assert setup.cloud.connections == 0


def test_private_timeouts_and_drops_do_not_reach_the_cloud(setup: Setup) -> None:
    setup.loc_a.default = Behaviour(delay_s=1.6)
    setup.loc_b.default = Behaviour(drop="before_headers")
    resp = httpx.post(setup.url + "/v1/chat/completions", json=chat_body(private=True),
                      timeout=20)
    assert resp.status_code == 503
    assert setup.cloud.connections == 0


def test_route_dry_run_of_a_private_request_names_no_cloud(setup: Setup) -> None:
    resp = httpx.post(setup.url + "/v1/route", json=chat_body(private=True), timeout=20)
    assert resp.status_code == 200
    data = resp.json()
    assert data["private"] is True
    assert all(c["local"] for c in data["decision"]["candidates"])
    assert setup.cloud.connections == 0 and setup.loc_a.requests == []
