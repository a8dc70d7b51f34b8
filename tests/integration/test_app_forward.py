"""Forwarding through real Granian to fake upstreams: answers, fallback, retries,
pass-through of client errors, the X-Router-* headers and the trace.

Chain in every cell: loc-a (Ollama wire, local) → loc-b (OpenAI wire, local) →
cloud (OpenAI wire).  Provider timeout 1 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from e2e.harness import Setup, chat_body, standard_setup, stop_setup
from fakes.harness import Behaviour, FakeUpstream


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    s = standard_setup(timeout_ms=1000)
    yield s
    stop_setup(s)


@pytest.fixture(autouse=True)
def _fresh(setup: Setup) -> None:
    setup.reset()


def post(setup: Setup, body: dict[str, object] | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(setup.url + "/v1/chat/completions", json=body or chat_body(),
                      headers=headers, timeout=20)


def content(resp: httpx.Response) -> str:
    text: str = resp.json()["choices"][0]["message"]["content"]
    return text


def chat_calls(up: FakeUpstream) -> int:
    reqs = up.requests
    return sum(1 for r in reqs if r.path in ("/api/chat", "/v1/chat/completions"))


def test_the_primary_local_model_answers(setup: Setup) -> None:
    resp = post(setup)
    assert resp.status_code == 200, resp.text
    assert content(resp) == "Hello from m-a."
    assert resp.headers["x-router-provider"] == "loc-a"
    assert resp.headers["x-router-model"] == "loc-a/m-a"
    assert resp.headers["x-router-attempts"] == "1"
    assert resp.headers["x-router-cell"].count(".") == 3
    assert resp.headers["x-router-table"].startswith("sha256:")
    assert float(resp.headers["x-router-overhead-ms"]) >= 0
    assert resp.headers["x-router-reason"] != "none"
    # the upstream got the model's own name and the user's message
    sent = setup.loc_a.bodies("/api/chat")[0]
    assert sent["model"] == "m-a"
    assert sent["messages"][-1]["content"] == "Say hello."
    assert chat_calls(setup.loc_b) == chat_calls(setup.cloud) == 0


@pytest.mark.parametrize("failure", [
    Behaviour(status=500),
    Behaviour(status=503),
    Behaviour(status=429),
    Behaviour(drop="before_headers"),
    Behaviour(delay_s=1.6),  # past the provider's 1 s timeout
], ids=["500", "503", "429-no-retry-after", "connection-dropped", "timeout"])
def test_falls_back_to_the_next_candidate(setup: Setup, failure: Behaviour) -> None:
    setup.loc_a.push(failure)
    resp = post(setup)
    assert resp.status_code == 200, resp.text
    assert content(resp) == "Hello from m-b."
    assert resp.headers["x-router-model"] == "loc-b/m-b"
    assert resp.headers["x-router-attempts"] == "2"
    assert "fallback" in resp.headers["x-router-reason"]
    assert chat_calls(setup.loc_a) == 1 and chat_calls(setup.loc_b) == 1
    assert chat_calls(setup.cloud) == 0


def test_falls_back_down_the_whole_chain_to_the_cloud(setup: Setup) -> None:
    setup.loc_a.push(Behaviour(status=500))
    setup.loc_b.push(Behaviour(status=502))
    resp = post(setup)
    assert resp.status_code == 200, resp.text
    assert content(resp) == "Hello from m-c."
    assert resp.headers["x-router-provider"] == "cloud"
    assert resp.headers["x-router-attempts"] == "3"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried_and_come_back_as_they_came(
        setup: Setup, status: int) -> None:
    setup.loc_a.push(Behaviour(status=500))  # a fallback first, then the client error
    setup.loc_b.push(Behaviour(status=status, error_message=f"upstream says {status}",
                               error_type="invalid_request_error"))
    resp = post(setup)
    assert resp.status_code == status
    err = resp.json()["error"]
    assert err["message"] == f"upstream says {status}"  # the upstream's own body
    assert resp.headers["x-router-provider"] == "loc-b"
    assert resp.headers["x-router-attempts"] == "2"
    assert chat_calls(setup.cloud) == 0


def test_an_ollama_error_body_is_given_openai_shape(setup: Setup) -> None:
    setup.loc_a.push(Behaviour(status=400, error_message="invalid option"))
    resp = post(setup)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert "invalid option" in err["message"] and "type" in err
    assert chat_calls(setup.loc_b) == 0


def test_retry_after_that_fits_is_honoured_on_the_same_candidate(setup: Setup) -> None:
    setup.loc_a.push(Behaviour(status=429, retry_after="0.4"))
    t = time.monotonic()
    resp = post(setup)
    elapsed = time.monotonic() - t
    assert resp.status_code == 200, resp.text
    assert content(resp) == "Hello from m-a."
    assert chat_calls(setup.loc_a) == 2 and chat_calls(setup.loc_b) == 0
    assert resp.headers["x-router-attempts"] == "2"
    assert elapsed >= 0.4
    # the wait was upstream time, not router overhead
    assert float(resp.headers["x-router-overhead-ms"]) < 300


def test_retry_after_too_long_moves_on(setup: Setup) -> None:
    setup.loc_a.push(Behaviour(status=429, retry_after="120"))
    t = time.monotonic()
    resp = post(setup)
    assert time.monotonic() - t < 5
    assert resp.status_code == 200
    assert content(resp) == "Hello from m-b."
    assert chat_calls(setup.loc_a) == 1


def test_every_candidate_failing_is_a_502_listing_each_attempt(setup: Setup) -> None:
    setup.loc_a.push(Behaviour(status=500))
    setup.loc_b.push(Behaviour(drop="before_headers"))
    setup.cloud.push(Behaviour(status=503))
    resp = post(setup)
    assert resp.status_code == 502, resp.text
    err = resp.json()["error"]
    assert err["code"] == "all_candidates_failed"
    attempts = err["attempts"]
    assert [a["model"] for a in attempts] == ["loc-a/m-a", "loc-b/m-b", "cloud/m-c"]
    assert [a["status"] for a in attempts] == [500, 502, 503]
    assert "UpstreamHTTPError" in attempts[0]["error"]
    assert "UpstreamConnectError" in attempts[1]["error"]
    assert resp.headers["x-router-attempts"] == "3"
    assert post(setup).status_code == 200  # and the router keeps serving


def test_an_explicit_model_pins_it(setup: Setup) -> None:
    resp = post(setup, chat_body(model="loc-b/m-b"))
    assert resp.status_code == 200
    assert content(resp) == "Hello from m-b."
    assert chat_calls(setup.loc_a) == 0
    resp = post(setup, chat_body(model="cloud/m-c"))
    assert content(resp) == "Hello from m-c."


def test_trace_in_the_body_on_request(setup: Setup) -> None:
    setup.loc_a.push(Behaviour(status=500))
    resp = post(setup, chat_body(trace=True))
    assert resp.status_code == 200
    trace = resp.json()["x_router_trace"]
    assert trace["table"] == resp.headers["x-router-table"]
    assert trace["classification"]["cell"] == resp.headers["x-router-cell"]
    assert [c["model"] for c in trace["decision"]["candidates"]][:2] == ["loc-a/m-a",
                                                                        "loc-b/m-b"]
    assert [a["outcome"] for a in trace["attempts"]] == ["error", "ok"]
    assert trace["answered_by"] == "loc-b/m-b"
    # "trace" steers the router: it is not forwarded upstream
    assert "trace" not in setup.loc_b.bodies("/v1/chat/completions")[0]


@pytest.mark.parametrize("value", ["1", "true"])
def test_trace_by_header(setup: Setup, value: str) -> None:
    resp = post(setup, headers={"X-Router-Trace": value})
    assert "x_router_trace" in resp.json()


def test_no_trace_unless_asked(setup: Setup) -> None:
    assert "x_router_trace" not in post(setup).json()
