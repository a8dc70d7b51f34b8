"""Request controls, custom tags, latency budgets and provider accounts, end to end:
a real router (Granian subprocess) over fake upstreams.

Chain of every cell (router.yaml overrides): loc/m-a (local) → fast/m-f (local) →
cloud/m-c (cloud, two accounts).  The profile's latency budget is 400 ms and
every model's catalog hint says ~115 ms, so only live traffic can break it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.harness import RouterProcess, compile_yaml
from fakes.harness import Behaviour, FakeUpstream
from fakes.openai_fake import FakeOpenAI
from interlock.runtime.signals import TASKS

PROFILE = """\
name: intel-budget
objectives: {quality: 0.5, cost: 0.3, latency: 0.2}
escalation: {enabled: false, verifiers: []}
budgets:
  latency_ms: {low: 400, medium: 400, high: 400}
"""
ENV = {"INTEL_KEY_ONE": "key-one", "INTEL_KEY_TWO": "key-two",
       "INTERLOCK_HEALTH_FAILURES": "1000000"}


def config(profile: Path, loc: FakeUpstream, fast: FakeUpstream, cloud: FakeUpstream, *,
           weights: tuple[int, int] = (1, 1)) -> str:
    def model(mid: str, provider: str, price: str) -> str:
        return (f"  - {{id: {mid}, provider: {provider}, context_window: 32768, "
                f"max_output: 4096, price: {price}, "
                "capabilities: [streaming, json, tools, vision], quality: {general: 60}, "
                "speed: {ttft_ms: 100, tokens_per_s: 10000}}\n")

    text = f"""\
profile: {profile}
providers:
  loc: {{wire: openai, locality: local, auth: none, base_url: "{loc.url}", models: [m-a]}}
  fast: {{wire: openai, locality: local, auth: none, base_url: "{fast.url}", models: [m-f]}}
  cloud:
    wire: openai
    locality: cloud
    auth: bearer
    base_url: "{cloud.url}"
    accounts:
      - {{name: one, api_key_env: INTEL_KEY_ONE, weight: {weights[0]}}}
      - {{name: two, api_key_env: INTEL_KEY_TWO, weight: {weights[1]}}}
models:
{model("m-a", "loc", "{input: 0, output: 0}")}{model("m-f", "fast", "{input: 0, output: 0}")}\
{model("m-c", "cloud", "{input: 1, output: 2}")}tags:
  - {{name: legal, keywords: [subpoena, non-disclosure agreement], private: true}}
  - {{name: project-x, patterns: ["(?i)\\\\bproject[- ]x\\\\b"]}}
overrides:
"""
    for task in TASKS:
        text += f"  {task}: {{primary: loc/m-a, fallbacks: [fast/m-f, cloud/m-c]}}\n"
    return text


@dataclass
class World:
    loc: FakeOpenAI
    fast: FakeOpenAI
    cloud: FakeOpenAI
    router: RouterProcess

    def post(self, text: str = "What is the capital of France?", **kw: Any) -> httpx.Response:
        body = {"model": "auto", "messages": [{"role": "user", "content": text}], **kw}
        return httpx.post(self.router.url + "/v1/chat/completions", json=body, timeout=20)


def _start(tmp: Path, **kw: Any) -> World:
    profile = tmp / "intel-budget.yaml"
    profile.write_text(PROFILE)
    ups = [FakeOpenAI(models=[m]).start() for m in ("m-a", "m-f", "m-c")]
    try:
        table = compile_yaml(config(profile, *ups, **kw))
        router = RouterProcess(table, env=ENV).wait_ready()
    except BaseException:
        for up in ups:
            up.stop()
        raise
    return World(ups[0], ups[1], ups[2], router)


def _stop(w: World) -> None:
    w.router.stop()
    for up in (w.loc, w.fast, w.cloud):
        up.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = _start(tmp_path)
    yield w
    _stop(w)


def calls(up: FakeUpstream) -> int:
    return sum(1 for r in up.requests if r.path == "/v1/chat/completions")


def keys(up: FakeUpstream) -> list[str]:
    return [r.headers.get("Authorization", "") for r in up.requests
            if r.path == "/v1/chat/completions"]


# -- controls ---------------------------------------------------------------------------


@pytest.mark.parametrize("body,param", [
    ({"provider": {"sort": "cheapest"}}, "provider.sort"),
    ({"provider": {"order": ["clowd"]}}, "provider.order[0]"),
    ({"provider": {"max_price": {"prompt": -1}}}, "provider.max_price.prompt"),
    ({"models": ["cloud/m-c", "nope"]}, "models[1]"),
    ({"allowed_models": "cloud/*"}, "allowed_models"),
    ({"private": "yes"}, "private"),
])
def test_a_bad_control_is_a_400_naming_the_field(world: World, body: dict[str, Any],
                                                 param: str) -> None:
    resp = world.post(**body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param
    assert calls(world.loc) == calls(world.fast) == calls(world.cloud) == 0


def test_controls_steer_the_chain(world: World) -> None:
    resp = world.post(models=["cloud/m-c", "fast/m-f"])
    assert resp.headers["x-router-model"] == "cloud/m-c"
    resp = world.post(provider={"ignore": ["loc"]})
    assert resp.headers["x-router-model"] == "fast/m-f"
    resp = world.post(allowed_models=["fast/*", "cloud/*"], provider={"order": ["cloud"]})
    assert resp.headers["x-router-model"] == "cloud/m-c"
    assert calls(world.loc) == 0


def test_allow_fallbacks_false_stops_at_the_ordered_provider(world: World) -> None:
    world.loc.push(Behaviour(status=503))
    resp = world.post(provider={"order": ["loc"], "allow_fallbacks": False})
    assert resp.status_code == 502
    assert calls(world.loc) == 1 and calls(world.fast) == 0 and calls(world.cloud) == 0
    world.loc.push(Behaviour(status=503))
    resp = world.post(provider={"order": ["loc"]})  # allow_fallbacks defaults to true
    assert resp.status_code == 200 and resp.headers["x-router-model"] == "fast/m-f"


# -- tags -------------------------------------------------------------------------------


def test_a_private_tag_keeps_the_request_local_end_to_end(world: World) -> None:
    world.loc.push(Behaviour(status=500))
    world.fast.push(Behaviour(status=500))
    resp = world.post("Draft a reply to this subpoena for our client.")
    assert resp.status_code == 503, resp.text
    assert resp.headers["x-router-request-tags"] == "legal"
    assert resp.headers["x-router-cell"].split(".")[2] == "private"
    assert calls(world.loc) == 1 and calls(world.fast) == 1
    assert world.cloud.connections == 0


def test_tags_in_the_header_and_the_trace(world: World) -> None:
    resp = world.post("Status of Project X and the non-disclosure agreement?", trace=True)
    assert resp.status_code == 200
    assert resp.headers["x-router-request-tags"] == "legal,project-x"
    assert resp.json()["x_router_trace"]["classification"]["tags"] == ["legal", "project-x"]
    assert resp.headers["x-router-model"] == "loc/m-a"
    plain = world.post("Status of project-x?")
    assert plain.headers["x-router-request-tags"] == "project-x"
    assert plain.headers["x-router-cell"].split(".")[2] == "public"
    assert "x-router-request-tags" not in world.post("Hello there").headers


# -- latency budget -----------------------------------------------------------------------


def test_a_primary_that_got_slow_yields_to_a_faster_candidate(world: World) -> None:
    route = httpx.post(world.router.url + "/v1/route", json={"prompt": "hi"}, timeout=10).json()
    assert route["model"] == "loc/m-a"
    assert route["latency"]["figures"]["loc/m-a"]["source"] == "catalog"
    world.loc.default = Behaviour(delay_s=1.0)
    for _ in range(2):  # two 1 s answers: the EWMA ttft passes the 400 ms budget
        assert world.post().headers["x-router-model"] == "loc/m-a"
    resp = world.post()
    assert resp.headers["x-router-model"] == "fast/m-f"
    assert "latency budget 400ms" in resp.headers["x-router-reason"]
    assert calls(world.loc) == 2 and calls(world.fast) == 1
    route = httpx.post(world.router.url + "/v1/route", json={"prompt": "hi"}, timeout=10).json()
    assert route["model"] == "fast/m-f"
    live = route["latency"]["figures"]["loc/m-a"]
    assert live["source"] == "live" and live["samples"] == 2 and live["ttft_ms"] > 400
    assert route["latency"]["budget"]["moved"] == "fast/m-f"


# -- accounts ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 429, 500])
def test_accounts_fail_over_before_the_next_candidate(world: World, status: int) -> None:
    world.cloud.push(Behaviour(status=status))
    resp = world.post(model="cloud/m-c", models=["fast/m-f"], trace=True)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-router-model"] == "cloud/m-c"
    assert keys(world.cloud) == ["Bearer key-one", "Bearer key-two"]
    assert calls(world.fast) == 0
    accounts = [a.get("account") for a in resp.json()["x_router_trace"]["attempts"]]
    assert accounts == ["one", "two"]


def test_both_accounts_failing_moves_to_the_next_candidate(world: World) -> None:
    world.cloud.push(Behaviour(status=429), Behaviour(status=503))
    resp = world.post(model="cloud/m-c", models=["fast/m-f"])
    assert resp.status_code == 200
    assert resp.headers["x-router-model"] == "fast/m-f"
    assert calls(world.cloud) == 2 and calls(world.fast) == 1


def test_a_rejected_key_rests_and_the_other_account_serves(world: World) -> None:
    world.cloud.push(Behaviour(status=401))
    for _ in range(4):
        assert world.post(model="cloud/m-c").status_code == 200
    assert keys(world.cloud) == ["Bearer key-one"] + ["Bearer key-two"] * 4


def test_load_is_spread_by_weight(tmp_path: Path) -> None:
    w = _start(tmp_path, weights=(3, 1))
    try:
        for _ in range(8):
            assert w.post(model="cloud/m-c").status_code == 200
        sent = keys(w.cloud)
        assert sent.count("Bearer key-one") == 6 and sent.count("Bearer key-two") == 2
    finally:
        _stop(w)
