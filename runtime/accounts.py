"""Accounts: several keys for one provider, load spread by weight, local rate limits,
fail-over between them before the chain moves on.

A provider's ``accounts`` (router.yaml ``providers.X.accounts``: ``name``,
``api_key_env``, ``weight``, ``rpm``) each become a :class:`Slot` holding

* a *view* of the provider whose only account is this one (built once), so
  the wire adapters - which authenticate with a provider's first account - need
  no change: the forwarder passes the view instead of the provider;
* a token bucket when ``rpm`` is set (capacity ``rpm``, refilled at ``rpm``/60
  per second): an account out of tokens is not tried;
* a cool-down: after a 401/403 the account rests 60 s (its key is wrong or
  revoked), after a 429 for the upstream's Retry-After (10 s without one).

:meth:`AccountPool.plan` orders the usable accounts for one attempt: the first
by *smooth weighted round robin* (deterministic, and over any window the
accounts serve in proportion to their weights), the rest by weight.  The
forward layer :func:`with_accounts` walks that plan: a 401/403/429/5xx answer
or an unset key moves to the next account of the same provider; any other
error, or the last account's failure, goes up to the fallback layer as usual.

A provider with one account and no ``rpm`` is not managed (no plan, no cost).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import orjson
from interlock.runtime.errors import UpstreamError, UpstreamHTTPError
from interlock.runtime.providers.base import KeyNotSetError
from interlock.runtime.table import Account, DecisionTable, ProviderEntry

T = TypeVar("T")

AUTH_COOLDOWN_S: Final = 60.0
RATE_COOLDOWN_S: Final = 10.0
_FAIL_OVER: Final = frozenset({401, 403, 429})


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` per second."""

    __slots__ = ("capacity", "rate", "tokens", "stamp")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until a token is available."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


@dataclass(slots=True, eq=False)
class Slot:
    """One account of one provider."""

    account: Account
    view: ProviderEntry
    bucket: TokenBucket | None = None
    resting_until: float = 0.0
    current: float = field(default=0.0)  # smooth weighted round robin state

    @property
    def name(self) -> str:
        return self.account.name


class AccountPool:
    """Every managed provider's accounts (one pool per worker, on ``RuntimeState``)."""

    __slots__ = ("_slots", "_clock")

    def __init__(self, table: DecisionTable, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        now = clock()
        self._slots: dict[str, list[Slot]] = {}
        for name, p in table.providers.items():
            if len(p.accounts) > 1 or any(a.rpm for a in p.accounts):
                self._slots[name] = [
                    Slot(a, p.model_copy(update={"accounts": (a,)}),
                         TokenBucket(float(a.rpm), a.rpm / 60.0, now) if a.rpm else None)
                    for a in p.accounts
                ]

    def managed(self, provider: str) -> bool:
        return provider in self._slots

    def slots(self, provider: str) -> list[Slot]:
        return list(self._slots.get(provider, ()))

    def plan(self, provider: str) -> list[Slot]:
        """The accounts to try, in order (resting ones left out)."""
        now = self._clock()
        ready = [s for s in self._slots.get(provider, ()) if s.resting_until <= now]
        if len(ready) <= 1:
            return ready
        total = sum(s.account.weight for s in ready)
        for s in ready:
            s.current += s.account.weight
        first = max(ready, key=lambda s: s.current)
        first.current -= total
        rest = sorted((s for s in ready if s is not first), key=lambda s: -s.account.weight)
        return [first, *rest]

    def take(self, slot: Slot) -> bool:
        """Spend one request of the account's rate limit (True: it may be used now)."""
        return slot.bucket is None or slot.bucket.take(self._clock())

    def wait_s(self, provider: str) -> float:
        """How long until some account of ``provider`` has a token again."""
        now = self._clock()
        waits = [s.bucket.wait_s(now) if s.bucket else 0.0
                 for s in self._slots.get(provider, ()) if s.resting_until <= now]
        return min(waits, default=RATE_COOLDOWN_S)

    def failed(self, slot: Slot, exc: UpstreamError) -> None:
        """Rest an account after an answer that says its key is bad or throttled."""
        status = exc.status
        if status in (401, 403):
            slot.resting_until = self._clock() + AUTH_COOLDOWN_S
        elif status == 429:
            wait = exc.retry_after_s if isinstance(exc, UpstreamHTTPError) else None
            slot.resting_until = self._clock() + (wait if wait is not None else RATE_COOLDOWN_S)


def fails_over(exc: UpstreamError) -> bool:
    """Does this error move to the provider's next account?  401/403/429/5xx and an
    unset key do; a connection error or a timeout is the provider's, not the key's."""
    if isinstance(exc, UpstreamHTTPError):
        return exc.status in _FAIL_OVER or exc.status >= 500
    return isinstance(exc, KeyNotSetError)


def rate_limited(provider: ProviderEntry, model: str, wait_s: float) -> UpstreamHTTPError:
    """The error when every account of a provider is out of its local rpm budget."""
    body = orjson.dumps({"error": {
        "message": f"every account of {provider.name} is at its rpm limit",
        "type": "rate_limit_error", "code": "account_rpm",
    }})
    return UpstreamHTTPError(provider.name, model, 429, body, retry_after_s=round(wait_s, 3))


# --------------------------------------------------------------------------- the layer

Once = Callable[[Any, Any, Any, ProviderEntry, Any], Awaitable[T]]


def with_accounts(once: Once[T]) -> Once[T]:
    """Wrap a one-attempt function (``send_once``/``stream_once``) so that a managed
    provider's accounts are tried in the pool's order, failing over between them.

    ``up.accounts`` is the pool (absent: no accounts management); each account
    attempt is an ``Attempt`` of its own, named by ``Attempt.account``.
    """

    async def layer(up: Any, call: Any, cand: Any, provider: ProviderEntry, model: Any) -> T:
        pool: AccountPool | None = getattr(up, "accounts", None)
        if pool is None or not pool.managed(provider.name):
            return await once(up, call, cand, provider, model)
        last: UpstreamError | None = None
        for slot in pool.plan(provider.name):
            if not pool.take(slot):
                continue  # this account is at its rpm: the next one may not be
            try:
                result = await once(up, call, cand, slot.view, model)
            except UpstreamError as exc:
                _name_last(call, slot.name)
                if not fails_over(exc):
                    raise
                pool.failed(slot, exc)
                last = exc
                continue
            _name_last(call, slot.name)
            return result
        if last is not None:
            raise last
        raise rate_limited(provider, model.upstream_id, pool.wait_s(provider.name))

    return layer


def _name_last(call: Any, account: str) -> None:
    attempts = call.diag.attempts
    if attempts and hasattr(attempts[-1], "account"):
        attempts[-1].account = account
