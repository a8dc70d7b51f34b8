"""Secrets stay secret: canary values planted as a provider key, a client key (and a
wrong one), and a secret inside a prompt must not appear in any output of the
router - responses (errors and traces included), its stdout/stderr, the request
store on disk (SQLite, JSONL), /metrics, /v1/stats, /v1/logs, the live events, the
dashboard and every other GET page."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e.harness import chat_body
from fakes.harness import Behaviour
from integration.rel_support import Rig, rel_router
from interlock.runtime.table import Account

PROVIDER_KEY = "sk-proj-CANARYprovider7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e"
CLIENT_KEY = "ilk-CANARYclient-4b8d2f6a0c9e1b3d5f7a9c2e4b6d8f0a"
WRONG_KEY = "ilk-CANARYwrong-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d"
PROMPT_SECRET = "ghp_CANARYprompt0123456789abcdefghijklmnopq"
CANARIES = {"provider key": PROVIDER_KEY, "client key": CLIENT_KEY, "wrong key": WRONG_KEY,
            "prompt secret": PROMPT_SECRET}
# distinctive middles: a partial leak (a truncated key) is a leak too
FRAGMENTS = {name: value[8:30] for name, value in CANARIES.items()}


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    server = {"log_prompts": True, "auth": {"keys": [
        {"name": "canary", "hash": "sha256:" + hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}]}}
    patch = {"cloud": {"auth": "bearer",
                       "accounts": (Account(name="default", api_key_env="REL_CANARY_PK"),)}}
    with rel_router(server, env={"REL_CANARY_PK": PROVIDER_KEY}, patch=patch) as r:
        yield r


def _leaks(text: str) -> list[str]:
    return [name for name, frag in FRAGMENTS.items() if frag in text]


def test_no_output_contains_a_planted_secret(rig: Rig) -> None:
    good = {"Authorization": f"Bearer {CLIENT_KEY}"}
    url = rig.url
    outputs: dict[str, str] = {}
    events: list[bytes] = []

    def watch() -> None:
        try:
            with httpx.stream("GET", url + "/v1/events", headers=good, timeout=4) as r:
                for chunk in r.iter_bytes():
                    events.append(chunk)
        except httpx.HTTPError:
            pass

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    secret_prompt = f"Here is my token {PROMPT_SECRET}, fix the CI config."
    calls = [
        ("chat", "POST", "/v1/chat/completions", good, chat_body("Say hello.", trace=True)),
        ("chat-secret", "POST", "/v1/chat/completions", good, chat_body(secret_prompt,
                                                                         trace=True)),
        ("chat-secret-stream", "POST", "/v1/chat/completions", good,
         chat_body(secret_prompt, stream=True, trace=True)),
        ("cloud", "POST", "/v1/chat/completions", good, chat_body("hi", model="cloud/m-c",
                                                                   trace=True)),
        ("route", "POST", "/v1/route", good, {"prompt": secret_prompt}),
        ("wrong-key", "POST", "/v1/chat/completions", {"Authorization": f"Bearer {WRONG_KEY}"},
         chat_body("hi")),
        ("wrong-x-api-key", "POST", "/v1/messages", {"x-api-key": WRONG_KEY},
         {"model": "auto", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
    ]
    for name, method, path, headers, body in calls:
        r = httpx.request(method, url + path, json=body, headers=headers, timeout=30)
        outputs[name] = r.text + repr(dict(r.headers))
    # the cloud failing with its own error (its key is ours): the error body and trace
    rig.cloud.push(Behaviour(status=401, error_message="invalid key"))
    r = httpx.post(url + "/v1/chat/completions", headers=good,
                   json=chat_body("hi", model="cloud/m-c", trace=True), timeout=30)
    outputs["cloud-401"] = r.text + repr(dict(r.headers))
    for path in ("/metrics", "/v1/stats", "/v1/logs", "/dashboard", "/healthz", "/v1/table",
                 "/openapi.json", "/chat", "/v1/models", "/ui/dashboard.js"):
        r = httpx.get(url + path, headers=good, timeout=30)
        outputs["GET " + path] = f"{r.status_code} {r.text}"
    t.join(6)
    outputs["events"] = b"".join(events).decode("utf-8", "replace")
    outputs["server log"] = rig.router.log()
    for f in Path(rig.data_dir).rglob("*"):
        if f.is_file():
            outputs[f"file {f.name}"] = f.read_bytes().decode("utf-8", "replace")

    # positive controls: the canaries were really used
    cloud_auth = [req.headers.get("Authorization") for req in rig.cloud.requests]
    assert f"Bearer {PROVIDER_KEY}" in cloud_auth
    assert "chat-secret" in outputs and outputs["GET /v1/logs"].startswith("200")
    assert any(name.startswith("file ") for name in outputs), "no store file on disk"
    assert any(PROMPT_SECRET[:4] in text for text in outputs.values())  # the prefix stays
    leaks = {name: _leaks(text) for name, text in outputs.items() if _leaks(text)}
    assert leaks == {}, leaks
