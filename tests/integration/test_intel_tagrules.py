"""Rules on custom tags, end to end: a real router (Granian subprocess) over fake
upstreams.  The profile prefers the local model; the rule ``legal-to-cloud`` sends
public requests tagged ``legal`` to the cloud model.  ``router explain-route`` on the
same router.yaml names the tag and the rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from e2e.harness import RouterProcess, compile_yaml
from fakes.harness import FakeUpstream
from fakes.openai_fake import FakeOpenAI
from interlock.compiler.cli import cli

PROFILE = """\
name: intel-tags
objectives: {quality: 0.2, cost: 0.6, latency: 0.2}
local: {prefer: true, bonus: 0.3, max_complexity: high}
escalation: {enabled: false, verifiers: []}
"""
ENV = {"TAGS_CLOUD_KEY": "key-cloud", "INTERLOCK_HEALTH_FAILURES": "1000000"}


def config(profile: Path, loc: FakeUpstream, cloud: FakeUpstream) -> str:
    def model(mid: str, provider: str, price: str, quality: int) -> str:
        return (f"  - {{id: {mid}, provider: {provider}, context_window: 32768, "
                f"max_output: 4096, price: {price}, capabilities: [streaming, json, tools], "
                f"quality: {{general: {quality}}}, speed: {{ttft_ms: 100, tokens_per_s: 1000}}}}\n")

    return f"""\
profile: {profile}
providers:
  loc: {{wire: openai, locality: local, auth: none, base_url: "{loc.url}", models: [m-a]}}
  cloud: {{wire: openai, locality: cloud, auth: bearer, base_url: "{cloud.url}",
          api_key_env: TAGS_CLOUD_KEY}}
models:
{model("m-a", "loc", "{input: 0, output: 0}", 60)}\
{model("m-c", "cloud", "{input: 3, output: 15}", 80)}\
tags:
  - {{name: legal, keywords: [subpoena, non-disclosure agreement]}}
rules:
  - name: legal-to-cloud
    match: {{tags: [legal], sensitivity: [public]}}
    prefer: [cloud/m-c]
    locality: cloud
"""


@dataclass
class World:
    loc: FakeOpenAI
    cloud: FakeOpenAI
    router: RouterProcess
    config_path: Path

    def post(self, text: str, **headers: str) -> httpx.Response:
        body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
        return httpx.post(self.router.url + "/v1/chat/completions", json=body,
                          headers=headers, timeout=20)


def calls(up: FakeUpstream) -> int:
    return sum(1 for r in up.requests if r.path == "/v1/chat/completions")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("tags")
    profile = tmp / "intel-tags.yaml"
    profile.write_text(PROFILE)
    loc, cloud = FakeOpenAI(models=["m-a"]).start(), FakeOpenAI(models=["m-c"]).start()
    router: RouterProcess | None = None
    try:
        text = config(profile, loc, cloud)
        (tmp / "router.yaml").write_text(text)
        table = compile_yaml(text)
        assert "legal" in table.tag_cells
        router = RouterProcess(table, env=ENV).wait_ready()
        yield World(loc, cloud, router, tmp / "router.yaml")
    finally:
        if router is not None:
            router.stop()
        loc.stop()
        cloud.stop()


def test_untagged_prompt_goes_local(world: World) -> None:
    before = (calls(world.loc), calls(world.cloud))
    r = world.post("What is the capital of France?")
    assert r.status_code == 200, r.text
    assert r.headers["x-router-model"] == "loc/m-a"
    assert "x-router-request-tags" not in r.headers
    assert (calls(world.loc), calls(world.cloud)) == (before[0] + 1, before[1])


def test_tagged_prompt_is_routed_by_the_tag_rule(world: World) -> None:
    before = (calls(world.loc), calls(world.cloud))
    r = world.post("We received a subpoena; what should we do first?")
    assert r.status_code == 200, r.text
    assert r.headers["x-router-request-tags"] == "legal"
    assert r.headers["x-router-model"] == "cloud/m-c"
    assert " tag legal: cloud primary cloud/m-c" in r.headers["x-router-reason"]
    assert (calls(world.loc), calls(world.cloud)) == (before[0], before[1] + 1)
    assert world.cloud.requests[-1].headers.get("Authorization") == "Bearer key-cloud"


def test_private_tagged_prompt_stays_local(world: World) -> None:
    before = (calls(world.loc), calls(world.cloud))
    r = world.post("We received a subpoena; what should we do first?",
                   **{"X-Router-Private": "true"})
    assert r.status_code == 200, r.text
    assert r.headers["x-router-request-tags"] == "legal"
    assert r.headers["x-router-model"] == "loc/m-a"
    assert (calls(world.loc), calls(world.cloud)) == (before[0] + 1, before[1])


def test_explain_route_names_the_tag_rule(world: World) -> None:
    result = CliRunner(env=ENV).invoke(
        cli, ["explain-route", "-c", str(world.config_path), "--no-discover",
              "We received a subpoena; what should we do first?"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("route      cloud/m-c (cloud)")
    cell_line = next(line for line in out.splitlines() if line.startswith("cell "))
    assert "(tag variant: legal)" in cell_line and "rules: legal-to-cloud" in cell_line
    assert "tags" in out and "subpoena" in out
