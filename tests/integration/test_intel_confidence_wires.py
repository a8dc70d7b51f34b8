"""The confidence verifier asks for a ``confidence: 0.x`` line in the API of the body
that is forwarded, and strips it from what the client gets, on the anthropic wire
too: a real router (Granian subprocess) over a fake Anthropic upstream, the official
``anthropic`` and ``openai`` SDKs as clients.

The fake answers a ``system`` role among the messages with the real API's 400, so a
body built for the wrong API fails here as it would against Anthropic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from e2e.harness import RouterProcess, compile_yaml, config_yaml, prov
from fakes.anthropic_fake import FakeAnthropic
from fakes.harness import Behaviour
from interlock.runtime.verify import CONFIDENCE_INSTRUCTION

# the quality profile's setting that matters here: cloud answers are verified too
PROFILE = """\
name: confidence-test
objectives: {quality: 0.5, cost: 0.3, latency: 0.2}
escalation:
  enabled: true
  verifiers: [empty, refusal, confidence]
  only_from_local: false
  confidence_threshold: 0.5
"""


@dataclass
class World:
    claude: FakeAnthropic
    router: RouterProcess


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    profile = Path(tmp_path_factory.mktemp("conf")) / "confidence-test.yaml"
    profile.write_text(PROFILE)
    claude = FakeAnthropic(models=["claude-x"]).start()
    router = None
    try:
        table = compile_yaml(config_yaml(
            [prov("claude", claude, "anthropic", "cloud", ["claude-x"], quality=90.0)],
            ["claude/claude-x"], profile=str(profile)))
        router = RouterProcess(table, env={"INTERLOCK_HEALTH_FAILURES": "1000000"})
        router.wait_ready()
        yield World(claude, router)
    finally:
        if router is not None:
            router.stop()
        claude.stop()


@pytest.fixture(autouse=True)
def _fresh(world: World) -> None:
    world.claude.reset()


def sent(world: World) -> dict[str, Any]:
    bodies = world.claude.bodies()
    assert len(bodies) == 1
    body: dict[str, Any] = bodies[0]
    assert all(m["role"] in ("user", "assistant") for m in body["messages"])
    return body


def messages_client(world: World) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=world.router.url, api_key="unused", max_retries=0)


def test_messages_with_a_string_system_prompt(world: World) -> None:
    world.claude.push(Behaviour(text="Paris.\nconfidence: 0.9"))
    with messages_client(world) as c:
        msg = c.messages.create(model="auto", max_tokens=100, system="Be brief.",
                                messages=[{"role": "user", "content": "Capital of France?"}])
    assert [b.text for b in msg.content if b.type == "text"] == ["Paris."]
    assert msg.model == "claude/claude-x"
    assert sent(world)["system"] == f"Be brief.\n\n{CONFIDENCE_INSTRUCTION}"


def test_messages_with_system_blocks_keep_them_and_their_cache_control(world: World) -> None:
    world.claude.push(Behaviour(text="Paris.\nconfidence: 0.9"))
    block = {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
    with messages_client(world) as c:
        msg = c.messages.create(model="auto", max_tokens=100,
                                system=[block],  # type: ignore[list-item]
                                messages=[{"role": "user", "content": "Capital of France?"}])
    assert [b.text for b in msg.content if b.type == "text"] == ["Paris."]
    assert sent(world)["system"] == [block, {"type": "text", "text": CONFIDENCE_INSTRUCTION}]


def test_messages_without_a_system_prompt(world: World) -> None:
    world.claude.push(Behaviour(text="Paris.\nconfidence: 0.9"))
    with messages_client(world) as c:
        msg = c.messages.create(model="auto", max_tokens=100,
                                messages=[{"role": "user", "content": "Capital of France?"}])
    assert [b.text for b in msg.content if b.type == "text"] == ["Paris."]
    assert sent(world)["system"] == CONFIDENCE_INSTRUCTION


def test_an_answer_without_the_line_is_relayed_as_it_came(world: World) -> None:
    world.claude.push(Behaviour(text="Paris."))
    with messages_client(world) as c:
        raw = c.messages.with_raw_response.create(
            model="auto", max_tokens=100,
            messages=[{"role": "user", "content": "Capital of France?"}])
    msg = raw.parse()
    assert [b.text for b in msg.content if b.type == "text"] == ["Paris."]
    assert msg.id.startswith("msg_fake_")  # the upstream's own message, not rebuilt


def test_chat_to_the_anthropic_wire(world: World) -> None:
    """A chat body is rebuilt for Anthropic from the canonical request (its system
    prompt included): this path worked before the fix and must keep working."""
    world.claude.push(Behaviour(text="Paris.\nconfidence: 0.9"))
    with openai.OpenAI(base_url=world.router.url + "/v1", api_key="unused",
                       max_retries=0) as c:
        out = c.chat.completions.create(model="auto", messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"}])
    assert out.choices[0].message.content == "Paris."
    assert CONFIDENCE_INSTRUCTION in sent(world)["system"]
