"""POST /v1/route (a dry run: no model is called), GET /healthz, and the Python
client ``interlock.Client`` against a real router."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from e2e.harness import Setup, chat_body, standard_setup, stop_setup
from interlock import Client
from interlock.runtime.client import RouterAPIError


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    s = standard_setup()
    yield s
    stop_setup(s)


@pytest.fixture(autouse=True)
def _fresh(setup: Setup) -> None:
    setup.reset()


def nothing_called(setup: Setup) -> None:
    assert setup.loc_a.requests == [] and setup.loc_b.requests == []
    assert setup.cloud.requests == []


def test_route_explains_without_calling_a_model(setup: Setup) -> None:
    resp = httpx.post(setup.url + "/v1/route", json=chat_body("Translate 'good morning' "
                                                              "into French."), timeout=10)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["model"] == "loc-a/m-a" and data["provider"] == "loc-a"
    assert data["cell"] == data["classification"]["cell"] == resp.headers["x-router-cell"]
    assert data["classification"]["task"] in ("translate", "general")
    assert [c["model"] for c in data["decision"]["candidates"]] == [
        "loc-a/m-a", "loc-b/m-b", "cloud/m-c"]
    assert {"quality", "cost", "latency", "locality"} <= set(
        data["decision"]["candidates"][0]["terms"])
    assert data["table"] == resp.headers["x-router-table"]
    assert "would call loc-a/m-a" in data["explanation"]
    assert data["refused"] is False
    nothing_called(setup)


def test_route_accepts_a_bare_prompt(setup: Setup) -> None:
    resp = httpx.post(setup.url + "/v1/route", json={"prompt": "hello"}, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["model"] == "loc-a/m-a"
    bad = httpx.post(setup.url + "/v1/route", json={"prompt": 3}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "prompt"
    nothing_called(setup)


def test_route_with_a_pin_and_with_an_unknown_model(setup: Setup) -> None:
    data = httpx.post(setup.url + "/v1/route", json=chat_body(model="cloud/m-c"),
                      timeout=10).json()
    assert data["model"] == "cloud/m-c" and data["decision"]["pinned"] == "cloud/m-c"
    resp = httpx.post(setup.url + "/v1/route", json=chat_body(model="nope/x"), timeout=10)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "model_not_found"
    nothing_called(setup)


def test_healthz_reports_every_provider(setup: Setup) -> None:
    resp = httpx.get(setup.url + "/healthz", timeout=10)
    assert resp.status_code == 200
    data = resp.json()
    assert set(data["providers"]) == {"loc-a", "loc-b", "cloud"}
    assert data["status"] in ("ok", "degraded")
    assert data["providers"]["cloud"]["locality"] == "cloud"
    assert data["table"] == resp.headers["x-router-table"]


def test_client_route_chat_models(setup: Setup) -> None:
    with Client(setup.url) as client:
        route = client.route("Summarise this text: the cat sat on the mat.")
        assert route["model"] == "loc-a/m-a"
        nothing_called(setup)
        answer = client.chat("Say hello.")
        assert answer["choices"][0]["message"]["content"] == "Hello from m-a."
        assert client.last_route["model"] == "loc-a/m-a"
        assert client.last_route["provider"] == "loc-a"
        ids = [m["id"] for m in client.models()["data"]]
        assert "auto" in ids and "cloud/m-c" in ids
        assert client.health()["providers"]["loc-a"]["locality"] == "local"
        private = client.route("hello", private=True)
        assert private["private"] is True


def test_client_errors_are_raised_with_status_and_message(setup: Setup) -> None:
    with Client(setup.url) as client:
        with pytest.raises(RouterAPIError) as info:
            client.chat("hi", model="no-such-model")
        assert info.value.status == 404 and "no-such-model" in info.value.message
        # the request log's endpoints (issue 7) answer; a bad filter is a 400
        assert client.stats()["object"] == "stats"
        assert client.logs(cell="general.low.public.text")["object"] == "list"
        with pytest.raises(RouterAPIError) as info:
            client.logs(status="sometimes")
        assert info.value.status == 400 and "status" in info.value.message
