"""Idempotency-Key on a real router: concurrent duplicates make one upstream call and
all get the same status, headers and body; a reused key with another body is a 422."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from e2e.harness import chat_body
from fakes.harness import Behaviour
from integration.rel_support import Rig, rel_router


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with rel_router() as r:
        yield r


def post(rig: Rig, key: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(rig.url + "/v1/chat/completions", json=body,
                      headers={"Idempotency-Key": key}, timeout=30)


def test_concurrent_duplicates_make_one_upstream_call_and_get_the_same_answer(rig: Rig) -> None:
    rig.reset()
    rig.local.default = Behaviour(delay_s=0.8, text="answer {last_user}")
    body = chat_body("Count to three.")
    with ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(lambda _: post(rig, "k-concurrent-1", body), range(8)))
    assert len(rig.local.requests) == 1
    first = rs[0]
    assert first.status_code == 200
    for r in rs[1:]:
        assert r.status_code == first.status_code
        assert r.content == first.content
        assert r.headers.multi_items() == first.headers.multi_items() or \
            _same_but_date(r, first)
    # a later duplicate within the TTL is replayed too
    again = post(rig, "k-concurrent-1", body)
    assert again.content == first.content and len(rig.local.requests) == 1


def _same_but_date(a: httpx.Response, b: httpx.Response) -> bool:
    # the HTTP server adds its own Date header per response
    strip = [(k, v) for k, v in a.headers.multi_items() if k.lower() != "date"]
    return strip == [(k, v) for k, v in b.headers.multi_items() if k.lower() != "date"]


def test_the_same_key_with_a_different_body_is_a_422(rig: Rig) -> None:
    rig.reset()
    assert post(rig, "k-reuse", chat_body("one")).status_code == 200
    r = post(rig, "k-reuse", chat_body("two"))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_key_reused"
    assert r.headers["x-should-retry"] == "false"
    assert len(rig.local.requests) == 1


def test_different_keys_are_independent_and_no_key_is_not_deduplicated(rig: Rig) -> None:
    rig.reset()
    body = chat_body("same body")
    post(rig, "k-a", body)
    post(rig, "k-b", body)
    httpx.post(rig.url + "/v1/chat/completions", json=body, timeout=30)
    httpx.post(rig.url + "/v1/chat/completions", json=body, timeout=30)
    assert len(rig.local.requests) == 4


def test_an_error_answer_is_shared_with_waiters_but_not_kept(rig: Rig) -> None:
    rig.reset()
    for up in (rig.local, rig.local2, rig.cloud):
        up.default = Behaviour(status=503, delay_s=0.5)
    body = chat_body("will fail")
    with ThreadPoolExecutor(4) as pool:
        rs = list(pool.map(lambda _: post(rig, "k-err", body), range(4)))
    assert {r.status_code for r in rs} == {502}
    assert len({r.content for r in rs}) == 1
    assert len(rig.local.requests) == 1
    rig.reset()
    r = post(rig, "k-err", body)  # a 5xx was not kept: the retry runs again
    assert r.status_code == 200 and len(rig.local.requests) == 1


def test_streams_are_not_deduplicated(rig: Rig) -> None:
    rig.reset()
    body = chat_body("stream me", stream=True)
    a = post(rig, "k-stream", body)
    b = post(rig, "k-stream", body)
    assert a.status_code == b.status_code == 200
    assert len(rig.local.requests) == 2


def test_an_invalid_key_is_a_400(rig: Rig) -> None:
    r = post(rig, "x" * 300, chat_body())
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_idempotency_key"
