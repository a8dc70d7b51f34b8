"""Circuit breakers, the retry budget and x-should-retry on a real router."""

from __future__ import annotations

import time

import httpx
import openai
from e2e.harness import chat_body
from fakes.harness import Behaviour
from integration.rel_support import rel_router


def post(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=chat_body(), timeout=20)


def test_a_breaker_opens_after_consecutive_failures_and_a_probe_closes_it() -> None:
    server = {"breaker": {"failures": 3, "cooldown_ms": 1000, "min_calls": 100}}
    with rel_router(server) as rig:
        rig.local.default = Behaviour(status=500)
        for _ in range(3):
            r = post(rig.url)
            assert r.status_code == 200 and r.headers["x-router-provider"] == "loc2"
        assert len(rig.local.requests) == 3
        # open: loc is skipped without a request
        r = post(rig.url)
        assert r.headers["x-router-provider"] == "loc2"
        assert len(rig.local.requests) == 3
        assert r.headers["x-router-attempts"] == "2"  # one skipped ("circuit open"), one ok
        # after the cooldown one probe goes through; loc has recovered: closed again
        rig.local.default = Behaviour()
        time.sleep(1.1)
        r = post(rig.url)
        assert r.headers["x-router-provider"] == "loc" and len(rig.local.requests) == 4
        r = post(rig.url)
        assert r.headers["x-router-provider"] == "loc" and len(rig.local.requests) == 5


def test_a_breaker_opens_on_a_failure_rate() -> None:
    server = {"breaker": {"failures": 100, "failure_rate": 0.5, "window": 10, "min_calls": 6,
                          "cooldown_ms": 60_000}}
    with rel_router(server) as rig:
        # fail, ok, fail, ok ... never 2 failures in a row; the 7th call is 4/7 failures
        rig.local.push(*[Behaviour(status=503) if i % 2 == 0 else Behaviour()
                         for i in range(7)])
        for _ in range(7):
            assert post(rig.url).status_code == 200
        assert len(rig.local.requests) == 7
        r = post(rig.url)
        assert r.headers["x-router-provider"] == "loc2"
        assert len(rig.local.requests) == 7  # open


def test_retries_stay_within_the_budget_during_a_total_outage() -> None:
    reserve, n = 5, 100
    # breakers that never open, so only the budget limits retries
    server = {"breaker": {"failures": 10_000, "failure_rate": 1.0, "min_calls": 10_000,
                          "retry_ratio": 0.2, "retry_reserve": reserve}}
    with rel_router(server) as rig:
        for up in (rig.local, rig.local2, rig.cloud):
            up.default = Behaviour(status=503)
        attempts = []
        for _ in range(n):
            r = post(rig.url)
            assert r.status_code == 502, r.text
            assert r.headers["x-should-retry"] == "false"
            attempts.append(len(rig.local.requests) + len(rig.local2.requests)
                            + len(rig.cloud.requests))
        total = attempts[-1]
        retries = total - n  # every request made its first attempt
        assert 0 < retries <= 0.2 * n + reserve, retries
        # once the reserve is spent the ratio holds: the last half retried <= 20%
        late = attempts[-1] - attempts[n // 2 - 1] - n // 2
        assert late <= 0.2 * (n // 2) + 1, late
        # a recovered upstream gets full service again (the first attempt always goes)
        rig.local.default = Behaviour()
        assert post(rig.url).status_code == 200


def test_terminal_errors_stop_the_sdk_from_multiplying_attempts() -> None:
    with rel_router() as rig:
        for up in (rig.local, rig.local2, rig.cloud):
            up.default = Behaviour(status=503)
        sent: list[str] = []
        http = httpx.Client(event_hooks={"request": [lambda req: sent.append(str(req.url))]})
        client = openai.OpenAI(base_url=rig.url + "/v1", api_key="x", max_retries=3,
                               http_client=http)
        try:
            client.chat.completions.create(model="auto",
                                           messages=[{"role": "user", "content": "hi"}])
            raise AssertionError("expected an error")
        except openai.APIStatusError as exc:
            assert exc.status_code == 502
            assert exc.response.headers["x-should-retry"] == "false"
        assert len(sent) == 1, sent  # the SDK did not retry the router's final answer
        assert len(rig.local.requests) + len(rig.local2.requests) == 2
