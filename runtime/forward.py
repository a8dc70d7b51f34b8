"""Forwarding a request along its candidates: fallback, retry, one attempt.

Layered like httpx's transports, each layer one job::

    forward / open_stream        the entry points (JSON answer / first delta of a stream)
      └── with_fallbacks         walk the candidates in order; privacy gate; stop at
          │                      the deadline or max_attempts; NoCandidate when all fail
          └── with_retries       retry the same candidate once when the upstream said
              │                  Retry-After and the wait fits the cap and the deadline
              └── send_once      one adapter call under the deadline; records the
                                 Attempt, the upstream time and the provider's health

What moves the chain on (fall back): ``UpstreamConnectError``, ``UpstreamTimeout``,
``UpstreamHTTPError`` with a retryable status (429, 5xx) and any other
``UpstreamError`` marked retryable.  What does not: a non-retryable
``UpstreamHTTPError`` (400/401/403/404/422 ...) propagates unchanged, and the app
returns the upstream's body and status as they came.

Privacy fails closed: a private request is never given to a provider whose
locality is not ``local`` - checked in ``with_fallbacks`` (the candidate is
skipped and recorded) and asserted again in ``send_once`` right before the call,
whatever ``decide`` did.  A private request with no local candidate left gets a
503 that says so.

A stream may fall back until its first delta arrived (nothing has reached the
client before that: the app sends the status line only with the first chunk).
``open_stream`` returns that first delta and the live iterator; failures after
it are the app's to report in-band.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

from interlock.runtime import admission, escalation
from interlock.runtime.accounts import with_accounts
from interlock.runtime.canonical import CanonicalRequest, CanonicalResponse, Delta
from interlock.runtime.errors import (
    Attempt,
    NoCandidateError,
    RequestError,
    UpstreamError,
    UpstreamHTTPError,
)
from interlock.runtime.health import HealthRegistry
from interlock.runtime.providers.base import Provider
from interlock.runtime.table import Candidate, DecisionTable, ModelEntry, ProviderEntry
from interlock.runtime.trace import Diagnostics

T = TypeVar("T")

#: a private request is refused; the message the client reads
PRIVATE_REFUSED = (
    "this request is private and no local model could serve it; "
    "private requests are never sent to a cloud provider"
)


class Upstreams(Protocol):
    """What the forwarder needs from the runtime state."""

    table: DecisionTable
    health: HealthRegistry

    def adapter(self, provider: ProviderEntry) -> Provider: ...


@dataclass(eq=False)
class Exhausted(NoCandidateError):
    """NoCandidateError with a stable machine-readable ``code`` for the error body."""

    code: str = "no_candidate"


class PrivacyViolation(RuntimeError):
    """A private request was about to reach a non-local provider: a bug upstream of
    the forwarder.  Raised instead of sending; never caught as a fallback."""


@dataclass(slots=True)
class Call:
    """One request's forwarding context."""

    req: CanonicalRequest
    candidates: Sequence[Candidate]
    private: bool
    #: absolute ``time.monotonic()`` deadline covering every attempt
    deadline: float
    diag: Diagnostics
    max_attempts: int = 4
    retry_after_cap_s: float = 10.0
    #: retries of the same candidate after a Retry-After
    retries_per_candidate: int = 1
    tried_local: bool = field(default=False)
    #: the cell's verifiers and escalation policy (None: answers are not verified)
    verify: escalation.VerifySpec | None = None


@dataclass(slots=True)
class Answer:
    response: CanonicalResponse
    candidate: Candidate
    model: ModelEntry


@dataclass(slots=True)
class OpenStream:
    """A stream whose first delta arrived: it is committed to this candidate."""

    first: Delta | None
    rest: AsyncIterator[Delta]
    candidate: Candidate
    model: ModelEntry
    attempt: Attempt


Once = Callable[[Upstreams, Call, Candidate, ProviderEntry, ModelEntry], Awaitable[T]]


# -- entry points -------------------------------------------------------------------


async def forward(up: Upstreams, call: Call) -> Answer:
    """A complete (non-streaming) answer from the first candidate that gives one,
    verified and escalated per the cell's policy (``escalation.with_verification``)."""
    admission.request_started(up)  # the retry budget's deposit (issue 8)
    return await escalation.with_verification(up, call, _chain_send)


async def _chain_send(up: Upstreams, call: Call) -> Answer:
    return await with_fallbacks(up, call, _SEND)


async def open_stream(up: Upstreams, call: Call) -> OpenStream:
    """The first candidate whose stream yields a first delta (or ends cleanly)."""
    admission.request_started(up)
    return await with_fallbacks(up, call, _STREAM)


# -- layers ------------------------------------------------------------------------


async def with_fallbacks(up: Upstreams, call: Call, once: Once[T]) -> T:
    table = up.table
    for cand in call.candidates:
        provider = table.providers.get(cand.provider)
        model = table.models.get(cand.model)
        if provider is None or model is None:
            continue  # a table that passed validation never gets here
        if call.private and provider.locality != "local":
            call.diag.attempts.append(Attempt(
                provider=cand.provider, model=cand.model, outcome="skipped",
                error="privacy: a private request never goes to a cloud provider",
                role=cand.role,
            ))
            continue
        tried = _attempts(call)
        if tried >= call.max_attempts or time.monotonic() >= call.deadline:
            break
        # circuit breakers and the retry budget (issue 8, runtime/admission.py)
        verdict = admission.admit(up, call.diag.attempts, cand.provider, cand.model, cand.role,
                                  tried)
        if verdict == "skip":
            continue
        if verdict == "stop":
            break
        try:
            return await with_retries(up, call, cand, provider, model, once)
        except UpstreamError as exc:
            if not exc.retryable:
                raise  # the client's problem (400/401/...): back as it came
    raise exhausted(call)


async def with_retries(
    up: Upstreams, call: Call, cand: Candidate, provider: ProviderEntry, model: ModelEntry,
    once: Once[T],
) -> T:
    retries = 0
    # a slot of a provider with max_concurrency (issue 8), else just the call
    limited = admission.slot_limited(up, cand.provider)
    while True:
        try:
            if not limited:
                return await once(up, call, cand, provider, model)
            return await admission.hold_slot(
                up, cand.provider, cand.model, call.deadline, call.diag.attempts, cand.role,
                lambda: once(up, call, cand, provider, model))
        except UpstreamHTTPError as exc:
            wait = exc.retry_after_s
            if (
                not exc.retryable
                or wait is None
                or retries >= call.retries_per_candidate
                or wait > call.retry_after_cap_s
                or time.monotonic() + wait >= call.deadline
                or _attempts(call) >= call.max_attempts
                or not admission.retry_allowed(up)
            ):
                raise
            retries += 1
            t = time.perf_counter()
            await asyncio.sleep(wait)
            call.diag.upstream_s += time.perf_counter() - t


async def send_once(
    up: Upstreams, call: Call, cand: Candidate, provider: ProviderEntry, model: ModelEntry,
) -> Answer:
    _privacy_gate(call, provider)
    attempt = _begin(call, cand)
    t = time.perf_counter()
    try:
        # the adapter enforces the deadline (its aiohttp timeout is capped by it) and
        # raises UpstreamTimeout itself: no second timer on the hot path
        response = await up.adapter(provider).send(
            call.req, model, provider, deadline=call.deadline
        )
    except UpstreamError as exc:
        _failed(up, call, attempt, t, exc)
        raise
    except RequestError as exc:
        attempt.outcome, attempt.status, attempt.error = "error", exc.status, exc.message
        raise
    _succeeded(up, call, attempt, t)
    _observe(up, model.key, attempt.latency_ms, None, response)
    return Answer(response, cand, model)


async def stream_once(
    up: Upstreams, call: Call, cand: Candidate, provider: ProviderEntry, model: ModelEntry,
) -> OpenStream:
    _privacy_gate(call, provider)
    attempt = _begin(call, cand)
    t = time.perf_counter()
    it = up.adapter(provider).stream(call.req, model, provider, deadline=call.deadline)
    first: Delta | None
    try:
        first = await anext(it)
    except StopAsyncIteration:
        first = None
    except UpstreamError as exc:
        await _close(it)
        _failed(up, call, attempt, t, exc)
        raise
    except RequestError as exc:
        await _close(it)
        attempt.outcome, attempt.status, attempt.error = "error", exc.status, exc.message
        raise
    except BaseException:
        await _close(it)
        raise
    _succeeded(up, call, attempt, t)
    return OpenStream(first, it, cand, model, attempt)


#: one attempt, across a managed provider's accounts (built once, not per request)
_SEND: Final = with_accounts(send_once)
_STREAM: Final = with_accounts(stream_once)


# -- helpers -----------------------------------------------------------------------


def _privacy_gate(call: Call, provider: ProviderEntry) -> None:
    # Defence in depth: decide() and with_fallbacks() already filter; this is the
    # last line before bytes leave the machine.
    if call.private and provider.locality != "local":
        raise PrivacyViolation(
            f"refused to send a private request to {provider.name} ({provider.locality})"
        )
    if provider.locality == "local":
        call.tried_local = True


def _observe(up: Upstreams, key: str, total_ms: float, ttft_ms: float | None,
             response: CanonicalResponse | None) -> None:
    # live latency (runtime/latency.py; streams report at their end, streaming.py);
    # absent on test doubles of the state
    tracker = getattr(up, "latency", None)
    if tracker is not None:
        out = response.usage.output_tokens if response and response.usage else None
        tracker.observe(key, total_ms=total_ms, ttft_ms=ttft_ms, output_tokens=out)


def _attempts(call: Call) -> int:
    attempts = call.diag.attempts
    if not attempts:
        return 0
    return sum(1 for a in attempts if a.outcome != "skipped")


def _begin(call: Call, cand: Candidate) -> Attempt:
    attempt = Attempt(provider=cand.provider, model=cand.model, outcome="pending", role=cand.role)
    call.diag.attempts.append(attempt)
    return attempt


def _succeeded(up: Upstreams, call: Call, attempt: Attempt, started: float) -> None:
    elapsed = time.perf_counter() - started
    call.diag.upstream_s += elapsed
    attempt.outcome = "ok"
    attempt.status = 200
    attempt.latency_ms = elapsed * 1000.0
    up.health.success(attempt.provider)
    admission.succeeded(up, attempt.provider, attempt.model)


def _failed(
    up: Upstreams, call: Call, attempt: Attempt, started: float, exc: UpstreamError
) -> None:
    elapsed = time.perf_counter() - started
    call.diag.upstream_s += elapsed
    attempt.outcome = "error"
    attempt.status = exc.status
    attempt.error = f"{type(exc).__name__}: {exc.message}"
    attempt.latency_ms = elapsed * 1000.0
    if exc.retryable:
        up.health.failure(attempt.provider, attempt.error)
    else:
        up.health.success(attempt.provider)  # it answered: the provider is up
    admission.failed(up, attempt.provider, attempt.model, exc)


def stream_failed(up: Upstreams, attempt: Attempt, exc: UpstreamError) -> None:
    """Record a failure after a stream was committed (reported in-band by the app)."""
    attempt.outcome = "error"
    attempt.status = exc.status
    attempt.error = f"{type(exc).__name__} mid-stream: {exc.message}"
    up.health.failure(attempt.provider, attempt.error)
    admission.failed(up, attempt.provider, attempt.model, exc)


async def _close(it: AsyncIterator[Delta]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


def exhausted(call: Call) -> Exhausted:
    """The error for a request no candidate could serve, keeping every attempt."""
    attempts = list(call.diag.attempts)
    tried = [a for a in attempts if a.outcome != "skipped"]
    if call.private and not tried:
        return Exhausted(503, PRIVATE_REFUSED, attempts, code="private_no_local")
    if call.private:
        return Exhausted(
            503,
            "this request is private and every local candidate failed; "
            "private requests are never sent to a cloud provider",
            attempts, code="private_no_local",
        )
    if not tried:
        return Exhausted(503, "no model in this request's cell can serve it", attempts,
                         code="no_candidate")
    if time.monotonic() >= call.deadline:
        return Exhausted(504, f"the deadline ran out after {len(tried)} attempt(s)", attempts,
                         code="deadline_exceeded")
    names = ", ".join(f"{a.model} ({a.error or a.outcome})" for a in tried)
    return Exhausted(502, f"every candidate failed: {names}", attempts,
                     code="all_candidates_failed")
