"""Limits on a real router: 413 before a slow chunked body is sent, 431 for headers,
the per-request deadline, and the per-provider concurrency cap (wait, then fall back)."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from e2e.harness import chat_body
from fakes.harness import Behaviour
from integration.rel_support import Rig, rel_router

LIMIT = 100_000


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    server = {"max_body_bytes": LIMIT, "deadline_ms": 1500,
              "limits": {"max_headers": 30, "max_header_bytes": 4096}}
    with rel_router(server, timeout_ms=10_000) as r:
        yield r


def test_a_slow_chunked_body_gets_413_before_the_rest_is_sent(rig: Rig) -> None:
    port = int(rig.url.rsplit(":", 1)[1])
    total_planned = 4 * 1024 * 1024
    chunk = b"x" * 16_384
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent, answer = 0, b""
        while sent < total_planned:
            try:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                break  # the server closed the connection after answering
            sent += len(chunk)
            ready, _, _ = select.select([s], [], [], 0.02)
            if ready:
                answer = s.recv(65536)
                break
        if not answer:
            s.settimeout(5)
            answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"request_too_large" in answer
    # the answer came right after the limit was crossed, long before the body was done
    assert LIMIT < sent <= LIMIT + 8 * len(chunk), sent


def test_a_declared_oversize_body_is_refused_without_reading_it(rig: Rig) -> None:
    r = httpx.post(rig.url + "/v1/chat/completions", content=b"{" + b" " * (LIMIT + 10) + b"}",
                   headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 413 and r.headers["x-should-retry"] == "false"


def test_too_many_headers_is_a_431(rig: Rig) -> None:
    headers = {f"x-filler-{i}": "1" for i in range(40)}
    r = httpx.post(rig.url + "/v1/chat/completions", json=chat_body(), headers=headers,
                   timeout=10)
    assert r.status_code == 431, r.text
    assert r.json()["error"]["code"] == "request_header_fields_too_large"


def test_oversized_headers_are_a_431(rig: Rig) -> None:
    r = httpx.post(rig.url + "/v1/chat/completions", json=chat_body(),
                   headers={"x-big": "y" * 5000}, timeout=10)
    assert r.status_code == 431, r.text
    ok = httpx.post(rig.url + "/v1/chat/completions", json=chat_body(),
                    headers={"x-small": "y" * 500}, timeout=10)
    assert ok.status_code == 200


def test_the_deadline_covers_every_attempt(rig: Rig) -> None:
    rig.reset()
    for up in (rig.local, rig.local2, rig.cloud):
        up.default = Behaviour(delay_s=4)
    t = time.monotonic()
    r = httpx.post(rig.url + "/v1/chat/completions", json=chat_body(), timeout=20)
    took = time.monotonic() - t
    rig.reset()
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] == "deadline_exceeded"
    assert 1.3 < took < 3.0, took


def _fire(url: str, n: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(
            lambda _: httpx.post(url + "/v1/chat/completions", json=chat_body(), timeout=20),
            range(n)))


def test_a_full_provider_makes_requests_fall_back_after_the_queue_time() -> None:
    with rel_router({"limits": {"queue_ms": 300}}, chain=["loc2/m-b", "loc/m-a"],
                    local2_concurrency=1) as rig:
        rig.local2.default = Behaviour(delay_s=1.5)
        rs = _fire(rig.url, 3)
        assert [r.status_code for r in rs] == [200, 200, 200]
        served = sorted(r.headers["x-router-provider"] for r in rs)
        assert served == ["loc", "loc", "loc2"], served
        assert len(rig.local2.requests) == 1
        busy = [r for r in rs if r.headers["x-router-provider"] == "loc"]
        assert all(r.headers["x-router-attempts"] == "2" for r in busy)


def test_a_full_provider_is_waited_for_within_the_queue_time() -> None:
    with rel_router({"limits": {"queue_ms": 5000}}, chain=["loc2/m-b", "loc/m-a"],
                    local2_concurrency=1) as rig:
        rig.local2.default = Behaviour(delay_s=0.4)
        t = time.monotonic()
        rs = _fire(rig.url, 3)
        took = time.monotonic() - t
        assert [r.headers["x-router-provider"] for r in rs] == ["loc2"] * 3
        assert rig.local.requests == []
        assert took >= 1.1, took  # one at a time: 3 x 0.4 s
