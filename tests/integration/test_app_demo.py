"""``router start --demo`` end to end: the demo upstreams are real HTTP servers, and
the demo's own example prompts (the ones it prints, and the README uses) land where
they say: a simple prompt stays local, a hard one goes to the cloud, a private one is
never sent to the cloud."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from e2e.harness import RouterProcess, chat_body
from interlock.runtime.demo import EXAMPLES


@pytest.fixture(scope="module")
def demo() -> Iterator[RouterProcess]:
    with RouterProcess(demo=True) as r:
        yield r


def ask(demo: RouterProcess, body: dict[str, object]) -> httpx.Response:
    return httpx.post(demo.url + "/v1/chat/completions", json=body, timeout=30)


@pytest.mark.parametrize(("what", "prompt", "side"), EXAMPLES, ids=["local", "cloud", "private"])
def test_each_example_lands_where_it_says(demo: RouterProcess, what: str, prompt: str,
                                          side: str) -> None:
    resp = ask(demo, chat_body(prompt))
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-router-provider"] == side
    text = resp.json()["choices"][0]["message"]["content"]
    assert text.startswith(f"[{side}]")  # the demo upstream says who answered
    assert ("private" in what) == (".private." in resp.headers["x-router-cell"])


def test_a_private_hard_prompt_is_never_sent_to_the_cloud(demo: RouterProcess) -> None:
    hard = EXAMPLES[1][1]
    route = httpx.post(demo.url + "/v1/route", json=chat_body(hard, private=True),
                       timeout=30).json()
    assert route["private"] is True
    assert all(c["local"] for c in route["decision"]["candidates"])
    resp = ask(demo, chat_body(hard, private=True))
    assert resp.headers["x-router-provider"] != "demo-cloud"
    assert resp.status_code in (200, 503)


def test_demo_streams(demo: RouterProcess) -> None:
    with httpx.stream("POST", demo.url + "/v1/chat/completions",
                      json=chat_body("Hello there", stream=True), timeout=30) as resp:
        raw = resp.read().decode()
    assert resp.status_code == 200
    assert "[demo-local]" in raw
    assert raw.rstrip().endswith("data: [DONE]")


def test_demo_models_are_listed(demo: RouterProcess) -> None:
    ids = [m["id"] for m in httpx.get(demo.url + "/v1/models", timeout=10).json()["data"]]
    assert {"demo-local/tiny-local", "demo-cloud/big-cloud"} <= set(ids)
