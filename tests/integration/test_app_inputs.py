"""Bad input never breaks the router: each gets a 4xx in OpenAI's error shape, the
X-Router-* headers, and the server keeps serving.  Plus /v1/models, /readyz, 404/405.
The router runs under real Granian in a subprocess (see e2e.harness)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from e2e.harness import Setup, chat_body, standard_setup, stop_setup

ROUTER_HEADERS = ("x-router-provider", "x-router-model", "x-router-cell", "x-router-reason",
                  "x-router-attempts", "x-router-table", "x-router-overhead-ms")


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    s = standard_setup(server={"max_body_bytes": 4096})
    yield s
    stop_setup(s)


@pytest.fixture(autouse=True)
def _fresh(setup: Setup) -> None:
    setup.reset()


def assert_openai_error(resp: httpx.Response, status: int, param: str | None = None) -> Any:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    if param is not None:
        assert err["param"] == param
    for name in ROUTER_HEADERS:
        assert name in resp.headers, name
    return err


def still_serving(setup: Setup) -> None:
    resp = httpx.post(setup.url + "/v1/chat/completions", json=chat_body("Hello"), timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "Hello from m-a."


BAD_BODIES: list[tuple[str, bytes, int, str | None]] = [
    ("invalid json", b'{"model": "auto", "messages": [', 400, None),
    ("empty body", b"", 400, None),
    ("not an object", b'[{"role": "user"}]', 400, None),
    ("messages missing", b'{"model": "auto"}', 400, "messages"),
    ("messages not a list", b'{"messages": "hi"}', 400, "messages"),
    ("model not a string", b'{"model": 42, "messages": [{"role": "user", "content": "x"}]}',
     400, "model"),
    ("temperature wrong type",
     b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 400,
     "temperature"),
    ("message not an object", b'{"messages": [42]}', 400, None),
    ("unknown model",
     b'{"model": "gpt-nope", "messages": [{"role": "user", "content": "x"}]}', 404, "model"),
]


@pytest.mark.parametrize(("name", "raw", "status", "param"), BAD_BODIES,
                         ids=[b[0] for b in BAD_BODIES])
def test_bad_body_is_a_4xx_in_openai_shape(setup: Setup, name: str, raw: bytes, status: int,
                                           param: str | None) -> None:
    resp = httpx.post(setup.url + "/v1/chat/completions", content=raw,
                      headers={"content-type": "application/json"}, timeout=10)
    assert_openai_error(resp, status, param)
    assert setup.loc_a.requests == [] and setup.cloud.requests == []
    still_serving(setup)


def test_body_over_the_limit_is_413_by_content_length(setup: Setup) -> None:
    big = orjson.dumps(chat_body("x" * 10_000))
    resp = httpx.post(setup.url + "/v1/chat/completions", content=big, timeout=10)
    err = assert_openai_error(resp, 413)
    assert "4096" in err["message"]
    still_serving(setup)


def test_chunked_body_over_the_limit_is_413(setup: Setup) -> None:
    def chunks() -> Iterator[bytes]:  # no content-length: the limit applies while reading
        yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 1000
        yield b'"}]}'

    resp = httpx.post(setup.url + "/v1/chat/completions", content=chunks(), timeout=10)
    assert_openai_error(resp, 413)
    still_serving(setup)


def test_unknown_path_is_404_and_wrong_method_405(setup: Setup) -> None:
    err = assert_openai_error(httpx.get(setup.url + "/v1/nothing", timeout=10), 404)
    assert err["code"] == "unknown_url"
    resp = httpx.get(setup.url + "/v1/chat/completions", timeout=10)
    err = assert_openai_error(resp, 405)
    assert resp.headers["allow"] == "POST"
    resp = httpx.post(setup.url + "/v1/models", timeout=10)
    assert_openai_error(resp, 405)
    still_serving(setup)


def test_models_lists_auto_and_every_chat_model(setup: Setup) -> None:
    resp = httpx.get(setup.url + "/v1/models", timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids[:2] == ["auto", "route-auto"]
    assert set(ids[2:]) == {"loc-a/m-a", "loc-b/m-b", "cloud/m-c"}
    owners = {m["id"]: m["owned_by"] for m in body["data"]}
    assert owners["cloud/m-c"] == "cloud"
    assert all(m["object"] == "model" for m in body["data"])
    assert resp.headers["x-router-table"].startswith("sha256:")


def test_readyz_names_the_table(setup: Setup) -> None:
    resp = httpx.get(setup.url + "/readyz", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["ready"] is True
    assert resp.json()["table"] == resp.headers["x-router-table"]
