"""Pure logic of the app's layers, with a scripted adapter (no I/O): the forwarder's
privacy gate (independent of decide), retry/fallback rules and the attempt record;
the health registry; body reading; header scanning.  The same behaviour is tested
over real sockets in the other test_app_* modules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fakes.entries import model_entry
from interlock.runtime.bodies import parse_object, read_body
from interlock.runtime.canonical import CanonicalRequest, CanonicalResponse, Delta, Message, Part
from interlock.runtime.errors import (
    RequestError,
    UpstreamConnectError,
    UpstreamHTTPError,
    UpstreamTimeout,
)
from interlock.runtime.forward import (
    Call,
    Exhausted,
    PrivacyViolation,
    forward,
    open_stream,
    send_once,
)
from interlock.runtime.headers import diagnostic_headers, scan_headers
from interlock.runtime.health import HealthRegistry
from interlock.runtime.table import Candidate, DecisionTable, ModelEntry, ProviderEntry, Terms
from interlock.runtime.trace import Diagnostics


def provider(name: str, locality: str) -> ProviderEntry:
    return ProviderEntry(name=name, wire="openai", base_url="http://127.0.0.1:9/v1",
                         locality=locality, auth="none")  # type: ignore[arg-type]


@dataclass
class Scripted:
    """An adapter whose outcomes per provider are scripted; records every call."""

    script: dict[str, list[Any]]
    calls: list[str] = field(default_factory=list)
    wire: str = "openai"

    def _next(self, p: ProviderEntry) -> Any:
        self.calls.append(p.name)
        outcomes = self.script.get(p.name, [])
        out = outcomes.pop(0) if outcomes else "ok"
        if isinstance(out, BaseException):
            raise out
        return out

    async def send(self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
                   deadline: float) -> CanonicalResponse:
        out = self._next(provider)
        if isinstance(out, float):  # a slow upstream; like real adapters, honour the deadline
            left = deadline - time.monotonic()
            await asyncio.sleep(min(out, max(0.0, left)))
            if out > left:
                raise UpstreamTimeout(provider.name, model.upstream_id, "deadline")
        return CanonicalResponse(id="x", model=model.upstream_id, text=f"from {provider.name}")

    async def stream(self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
                     deadline: float) -> AsyncIterator[Delta]:
        self._next(provider)
        yield Delta(text=f"from {provider.name}")

    async def list_models(self, provider: ProviderEntry, *, deadline: float) -> list[str]:
        return []

    async def probe(self, provider: ProviderEntry, *, deadline: float) -> bool:
        return True


class Ups:
    def __init__(self, providers: list[ProviderEntry], script: dict[str, list[Any]]) -> None:
        models = {f"{p.name}/m": model_entry(p, "m") for p in providers}
        self.table = DecisionTable.model_construct(
            providers={p.name: p for p in providers}, models=models)
        self.health = HealthRegistry((p.name, p.locality) for p in providers)
        self.scripted = Scripted(script)

    def adapter(self, provider: ProviderEntry) -> Any:
        return self.scripted


def cand(p: ProviderEntry, role: str = "primary") -> Candidate:
    return Candidate(model=f"{p.name}/m", provider=p.name, role=role,  # type: ignore[arg-type]
                     local=p.locality == "local", caps=0, score=1.0,
                     terms=Terms(quality=0, cost=0, latency=0, locality=0))


def call(cands: list[Candidate], *, private: bool = False, deadline_s: float = 5.0,
         max_attempts: int = 4) -> Call:
    req = CanonicalRequest(surface="chat", messages=[Message("user", [Part("text", "hi")])])
    return Call(req, cands, private, time.monotonic() + deadline_s, Diagnostics(),
                max_attempts=max_attempts, retry_after_cap_s=1.0)


LOCAL, LOCAL2, CLOUD = provider("loc", "local"), provider("loc2", "local"), provider("cl", "cloud")


def test_private_request_skips_cloud_candidates_even_if_decide_let_them_through() -> None:
    ups = Ups([LOCAL, CLOUD], {})
    c = call([cand(CLOUD), cand(LOCAL, "fallback")], private=True)
    answer = asyncio.run(forward(ups, c))
    assert answer.candidate.provider == "loc"
    assert ups.scripted.calls == ["loc"]
    assert [a.outcome for a in c.diag.attempts] == ["skipped", "ok"]
    assert "privacy" in c.diag.attempts[0].error


def test_private_request_with_only_cloud_candidates_is_503_and_calls_nothing() -> None:
    ups = Ups([CLOUD], {})
    c = call([cand(CLOUD)], private=True)
    with pytest.raises(Exhausted) as info:
        asyncio.run(forward(ups, c))
    assert info.value.status == 503 and info.value.code == "private_no_local"
    assert ups.scripted.calls == []
    with pytest.raises(Exhausted):
        asyncio.run(open_stream(ups, call([cand(CLOUD)], private=True)))
    assert ups.scripted.calls == []


def test_send_once_itself_refuses_a_cloud_provider_for_a_private_request() -> None:
    ups = Ups([CLOUD], {})
    c = call([cand(CLOUD)], private=True)
    model = ups.table.models["cl/m"]
    with pytest.raises(PrivacyViolation):
        asyncio.run(send_once(ups, c, cand(CLOUD), CLOUD, model))
    assert ups.scripted.calls == []


@pytest.mark.parametrize("error", [
    UpstreamConnectError("loc", "m", "refused"),
    UpstreamTimeout("loc", "m", "slow"),
    UpstreamHTTPError("loc", "m", 500, b"{}"),
    UpstreamHTTPError("loc", "m", 429, b"{}"),
])
def test_retryable_errors_fall_back(error: Exception) -> None:
    ups = Ups([LOCAL, LOCAL2], {"loc": [error]})
    c = call([cand(LOCAL), cand(LOCAL2, "fallback")])
    assert asyncio.run(forward(ups, c)).candidate.provider == "loc2"
    assert [a.outcome for a in c.diag.attempts] == ["error", "ok"]
    assert ups.health.status("loc") == "degraded"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_propagate_without_fallback(status: int) -> None:
    ups = Ups([LOCAL, LOCAL2], {"loc": [UpstreamHTTPError("loc", "m", status, b"{}")]})
    c = call([cand(LOCAL), cand(LOCAL2, "fallback")])
    with pytest.raises(UpstreamHTTPError) as info:
        asyncio.run(forward(ups, c))
    assert info.value.status == status
    assert ups.scripted.calls == ["loc"]
    assert ups.health.status("loc") == "ok"  # it answered: the provider is up


def test_a_request_error_from_an_adapter_is_the_clients_and_stops_the_chain() -> None:
    ups = Ups([LOCAL, LOCAL2], {"loc": [RequestError(400, "image URL not supported")]})
    with pytest.raises(RequestError):
        asyncio.run(forward(ups, call([cand(LOCAL), cand(LOCAL2)])))
    assert ups.scripted.calls == ["loc"]


def test_retry_after_within_the_cap_retries_the_same_candidate_once() -> None:
    e = UpstreamHTTPError("loc", "m", 429, b"{}", retry_after_s=0.01)
    ups = Ups([LOCAL, LOCAL2], {"loc": [e, UpstreamHTTPError("loc", "m", 429, b"{}",
                                                             retry_after_s=0.01)]})
    c = call([cand(LOCAL), cand(LOCAL2)])
    assert asyncio.run(forward(ups, c)).candidate.provider == "loc2"
    assert ups.scripted.calls == ["loc", "loc", "loc2"]  # one retry, then fall back


def test_retry_after_over_the_cap_or_the_deadline_moves_on() -> None:
    for wait, deadline in ((5.0, 30.0), (0.5, 0.3)):
        e = UpstreamHTTPError("loc", "m", 503, b"{}", retry_after_s=wait)
        ups = Ups([LOCAL, LOCAL2], {"loc": [e]})
        c = call([cand(LOCAL), cand(LOCAL2)], deadline_s=deadline)
        assert asyncio.run(forward(ups, c)).candidate.provider == "loc2"
        assert ups.scripted.calls == ["loc", "loc2"]


def test_max_attempts_and_the_error_lists_every_attempt() -> None:
    errs = {p: [UpstreamHTTPError(p, "m", 500, b"{}")] for p in ("loc", "loc2", "cl")}
    ups = Ups([LOCAL, LOCAL2, CLOUD], errs)
    c = call([cand(LOCAL), cand(LOCAL2), cand(CLOUD)], max_attempts=2)
    with pytest.raises(Exhausted) as info:
        asyncio.run(forward(ups, c))
    assert info.value.status == 502 and info.value.code == "all_candidates_failed"
    assert [a.provider for a in info.value.attempts] == ["loc", "loc2"]
    assert ups.scripted.calls == ["loc", "loc2"]


def test_the_deadline_bounds_a_slow_upstream() -> None:
    ups = Ups([LOCAL, LOCAL2], {"loc": [2.0]})
    c = call([cand(LOCAL), cand(LOCAL2)], deadline_s=0.2)
    t = time.monotonic()
    with pytest.raises(Exhausted) as info:
        asyncio.run(forward(ups, c))
    assert time.monotonic() - t < 1.0
    assert info.value.status == 504
    assert ups.scripted.calls == ["loc"]


def test_upstream_time_is_not_overhead() -> None:
    ups = Ups([LOCAL], {"loc": [0.2]})
    c = call([cand(LOCAL)])
    asyncio.run(forward(ups, c))
    assert c.diag.upstream_s >= 0.2
    assert c.diag.overhead_ms() < 100


# -- health ------------------------------------------------------------------------------


def test_health_opens_after_consecutive_failures_and_half_opens_after_cooldown() -> None:
    now = [100.0]
    h = HealthRegistry([("p", "local")], fail_threshold=3, cooldown_s=10, clock=lambda: now[0])
    h.failure("p", "x")
    h.failure("p", "x")
    assert h.status("p") == "degraded" and h.healthy("p")
    h.failure("p", "x")
    assert h.status("p") == "error" and not h.healthy("p")
    assert h.overall() == "error"
    now[0] += 10.5
    assert h.healthy("p")  # half-open: traffic may try again
    h.success("p")
    assert h.status("p") == "ok" and h.overall() == "ok"
    h.probed("p", False, "connection refused")
    assert not h.healthy("p") and h.snapshot()["providers"]["p"]["probe"] == "connection refused"
    assert h.healthy("unknown-provider")


# -- bodies and headers --------------------------------------------------------------------


def _receiver(chunks: list[bytes]) -> Any:
    msgs = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return msgs.pop(0)

    return receive, msgs


def test_read_body_joins_chunks_and_stops_at_the_limit() -> None:
    receive, _ = _receiver([b"ab", b"cd", b"ef"])
    assert asyncio.run(read_body(receive, 10)) == b"abcdef"
    receive, left = _receiver([b"x" * 6, b"x" * 6, b"x" * 6])
    with pytest.raises(RequestError) as info:
        asyncio.run(read_body(receive, 10))
    assert info.value.status == 413
    assert len(left) == 1  # the third chunk was never read
    receive, left = _receiver([b"x"])
    with pytest.raises(RequestError):
        asyncio.run(read_body(receive, 10, content_length=11))
    assert len(left) == 1  # refused by Content-Length before reading anything


@pytest.mark.parametrize(("raw", "code"), [(b"", "invalid_json"), (b"{", "invalid_json"),
                                           (b"[]", "invalid_type"), (b'"x"', "invalid_type")])
def test_parse_object_refusals(raw: bytes, code: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_object(raw)
    assert info.value.status == 400 and info.value.code == code


def test_scan_headers_and_header_values_are_safe() -> None:
    meta = scan_headers({"headers": [(b"content-length", b"12"), (b"x-router-trace", b"TRUE"),
                                     (b"x-router-private", b"0")]})
    assert meta.content_length == 12 and meta.trace and not meta.private
    d = Diagnostics(reason="fell back \u2192 cloud\r\nX-Evil: 1")
    headers = dict(diagnostic_headers(d, b"sha256:abc"))
    assert b"\r" not in headers[b"x-router-reason"] and b"\n" not in headers[b"x-router-reason"]
    assert headers[b"x-router-provider"] == b"none"
