"""Request limits: header size and count, per-key rate limits, per-provider concurrency.

The body size limit (413 before the body is read) lives in ``bodies``; the
per-request deadline in ``forward``.  Here:

* :func:`header_limit_refusal` - more than ``server.limits.max_headers`` header
  fields, or more than ``max_header_bytes`` of them in all, is a 431 before the
  app runs (the gate, ``guard.py``, calls it first);
* :class:`RateLimiter` / :func:`rate_refusal` - a token bucket per client key
  (``rpm`` per minute, ``burst`` deep, default ``rpm``); an empty bucket is a 429
  with ``Retry-After`` (whole seconds, rounded up) in the client's error shape;
* :class:`ProviderSlots` - ``max_concurrency`` upstream requests per provider at
  most; a request that finds its provider full waits for a slot up to
  ``server.limits.queue_ms`` (and never past its deadline), then falls back to
  the next candidate (:class:`ProviderBusy` is a retryable upstream error that
  does not count against the provider's health).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import chain

from interlock.runtime.asgi_types import Scope
from interlock.runtime.auth import PRINCIPAL, Principal
from interlock.runtime.errors import UpstreamConnectError
from interlock.runtime.responses import Refusal
from interlock.runtime.table import DecisionTable, LimitDefaults, ProviderEntry

Clock = Callable[[], float]


# -- headers -------------------------------------------------------------------------------


def headers_too_large(
    headers: list[tuple[bytes, bytes]], limits: LimitDefaults
) -> str | None:
    """Why the request's headers exceed the limits, or None."""
    count = len(headers)
    if count > limits.max_headers:
        return (f"too many request header fields ({count}; "
                f"the limit is {limits.max_headers})")
    # name + value per field, plus ": " and CRLF as on the wire (summed in C)
    size = sum(map(len, chain.from_iterable(headers))) + 4 * count
    if size > limits.max_header_bytes:
        return (f"request header fields are too large ({size} bytes; "
                f"the limit is {limits.max_header_bytes})")
    return None


def header_limit_refusal(
    headers: list[tuple[bytes, bytes]], limits: LimitDefaults
) -> Refusal | None:
    """The gate's 431 for header fields that are too many or too large, or None."""
    why = headers_too_large(headers, limits)
    if why is None:
        return None
    return Refusal(431, why, "request_header_fields_too_large")


# -- rate limits ---------------------------------------------------------------------------


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, at most ``capacity``; starts full."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take one token: 0.0 when granted, else the seconds until one is there."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per client key that has an ``rpm``."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._clock = clock

    def check(self, principal: Principal) -> float:
        """0.0 when the request may go, else the seconds to wait (Retry-After)."""
        if principal.rpm is None:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(principal.name)
        if bucket is None:
            cap = float(principal.burst or principal.rpm)
            bucket = TokenBucket(principal.rpm / 60.0, cap, cap, now)
            self._buckets[principal.name] = bucket
        return bucket.take(now)


def rate_refusal(scope: Scope, limiter: RateLimiter) -> Refusal | None:
    """The gate's 429 (with ``Retry-After``) once the client key's bucket is empty."""
    principal = scope.get(PRINCIPAL)
    if principal is None or not isinstance(principal, Principal) or principal.rpm is None:
        return None  # no key, or a key without a rate: RateLimiter.check is 0.0
    wait = limiter.check(principal)
    if wait <= 0.0:
        return None
    seconds = max(1, math.ceil(wait))
    return Refusal(429,
                   f"rate limit of {principal.rpm} requests per minute reached for "
                   f"API key {principal.name!r}; retry in {seconds}s",
                   "rate_limit_exceeded",
                   [(b"retry-after", str(seconds).encode())])


# -- provider concurrency ------------------------------------------------------------------


class ProviderBusy(UpstreamConnectError):
    """Every slot of the provider stayed taken: move on to the next candidate."""

    retry_same = False


class ProviderSlots:
    """A semaphore per provider that has ``max_concurrency``."""

    def __init__(self, providers: Mapping[str, ProviderEntry], queue_s: float) -> None:
        self._caps = {name: p.max_concurrency for name, p in providers.items()
                      if p.max_concurrency}
        self._sems = {name: asyncio.Semaphore(cap) for name, cap in self._caps.items()}
        self._busy = dict.fromkeys(self._caps, 0)
        self._queue_s = queue_s

    def limited(self, provider: str) -> bool:
        return provider in self._sems

    def in_use(self, provider: str) -> int:
        """Slots taken right now (0 for an unlimited provider)."""
        return self._busy.get(provider, 0)

    async def acquire(self, provider: str, model: str, deadline: float) -> bool:
        """Take a slot (True), or False for an unlimited provider (nothing to release).

        Raises :class:`ProviderBusy` when no slot frees up within the queue time
        or before the deadline.
        """
        sem = self._sems.get(provider)
        if sem is None:
            return False
        if not sem.locked():
            await sem.acquire()
            self._busy[provider] += 1
            return True
        wait = min(self._queue_s, deadline - time.monotonic())
        if wait <= 0:
            raise ProviderBusy(provider, model, "every concurrency slot is taken")
        try:
            async with asyncio.timeout(wait):
                await sem.acquire()
        except TimeoutError:
            raise ProviderBusy(
                provider, model, f"every concurrency slot stayed taken for {wait:.2f}s"
            ) from None
        self._busy[provider] += 1
        return True

    def release(self, provider: str) -> None:
        sem = self._sems.get(provider)
        if sem is not None:
            self._busy[provider] -= 1
            sem.release()


class Limits:
    """``state.limits``: what the gate's limit checks and the forwarder consult."""

    def __init__(self, table: DecisionTable, clock: Clock = time.monotonic) -> None:
        self.settings = table.server.limits
        self.rates = RateLimiter(clock)
        self.slots = ProviderSlots(table.providers, self.settings.queue_ms / 1000.0)
