"""Circuit breakers per provider and per model, and the retry budget.

A :class:`Breaker` is *closed* (traffic flows) until either ``failures``
consecutive failures, or a failure rate of at least ``failure_rate`` over the
last ``window`` calls (once ``min_calls`` were seen), *opens* it.  An open breaker
refuses every call for ``cooldown_ms``; then it is *half-open*: exactly one call
(the probe) goes through.  A probe that succeeds closes the breaker; one that
fails opens it for another cooldown.  A probe that never reports (its client went
away) is forgotten after one cooldown, so a breaker cannot stay stuck half-open.

:class:`Breakers` (``state.breakers``) keeps one breaker per provider and one per
model key; a call needs both to allow it.  The forwarder asks
:meth:`Breakers.allow` right before each attempt and skips the candidate when it
says no (recorded as a skipped attempt, "circuit open"), and reports every
outcome.  Only upstream failures count (connect errors, timeouts, 429/5xx); an
upstream's 4xx is the client's problem and counts as a success of the provider.

:class:`RetryBudget` caps the attempts made beyond the first of each request:
every request deposits ``retry_ratio`` (0.2) of a token, every retry or fallback
costs one, and the balance never exceeds ``max(retry_reserve, 1)``.  A router that
has served nothing may spend its reserve (so a cold start can still fall back);
during a total upstream outage, retries stay at most ``retry_ratio`` of requests
plus that reserve.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from interlock.runtime.table import BreakerDefaults

BreakerState = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]


@dataclass(slots=True)
class Breaker:
    """One circuit (see the module docstring for the rules)."""

    name: str
    state: BreakerState = "closed"
    consecutive: int = 0
    #: the last ``window`` outcomes, True for a failure
    recent: deque[bool] = field(default_factory=deque)
    until: float = 0.0
    probe_started: float = 0.0
    probing: bool = False
    opened: int = 0

    def permits(self, now: float) -> bool:
        """Would a call go through now (without claiming a probe)?"""
        if self.state == "closed":
            return True
        if self.state == "open":
            return now >= self.until
        return not self.probing or now >= self.until  # half-open: one probe at a time

    def claim(self, now: float, cooldown: float) -> None:
        """The call :meth:`permits` allowed is going ahead."""
        if self.state == "closed":
            return
        self.state = "half_open"
        self.probing = True
        self.probe_started = now
        self.until = now + cooldown  # a probe that never reports frees the slot then


class Breakers:
    """``state.breakers``: a breaker per provider and per model key."""

    def __init__(self, settings: BreakerDefaults, clock: Clock = time.monotonic, *,
                 enabled: bool = True) -> None:
        #: False (``INTERLOCK_BREAKERS=0``): no breaker opens and retries are not
        #: budgeted - for test suites whose cases must not influence each other
        self.enabled = enabled
        self.settings = settings
        self._clock = clock
        self._cooldown = settings.cooldown_ms / 1000.0
        self._b: dict[str, Breaker] = {}
        #: how many breakers are not closed (open or half-open): while none is (the
        #: usual state), a request's checks are one comparison each
        self.tripped = 0
        self.budget = RetryBudget(settings.retry_ratio, settings.retry_reserve,
                                  enabled=enabled)

    def _get(self, name: str) -> Breaker:
        b = self._b.get(name)
        if b is None:
            b = self._b[name] = Breaker(name, recent=deque(maxlen=self.settings.window))
        return b

    def available(self, provider: str) -> bool:
        """Non-claiming check of a provider's breaker (a ``healthy`` predicate)."""
        if not self.tripped:
            return True
        b = self._b.get(provider)
        return b is None or not self.enabled or b.permits(self._clock())

    def allow(self, provider: str, model: str) -> bool:
        """May an attempt at ``model`` of ``provider`` go now?  Claims half-open probes."""
        if not self.tripped or not self.enabled:
            return True  # every breaker closed: permits() says yes, claim() does nothing
        now = self._clock()
        pb, mb = self._get(provider), self._get(model)
        if not (pb.permits(now) and mb.permits(now)):
            return False
        pb.claim(now, self._cooldown)
        mb.claim(now, self._cooldown)
        return True

    def success(self, provider: str, model: str) -> None:
        for b in (self._get(provider), self._get(model)):
            b.consecutive = 0
            b.recent.append(False)
            if b.state != "closed":
                b.state, b.probing, b.until = "closed", False, 0.0
                b.recent.clear()
                self.tripped -= 1

    def failure(self, provider: str, model: str) -> None:
        if not self.enabled:
            return
        now = self._clock()
        s = self.settings
        for b in (self._get(provider), self._get(model)):
            b.consecutive += 1
            b.recent.append(True)
            if b.state == "half_open":
                self._open(b, now)
                continue
            if b.state == "open":
                continue
            rate_hit = (len(b.recent) >= s.min_calls
                        and sum(b.recent) / len(b.recent) >= s.failure_rate)
            if b.consecutive >= s.failures or rate_hit:
                self._open(b, now)

    def release(self, provider: str, model: str) -> None:
        """An attempt ended without an outcome (cancelled): free a claimed probe."""
        for b in (self._b.get(provider), self._b.get(model)):
            if b is not None and b.state == "half_open" and b.probing:
                b.probing = False
                b.until = 0.0

    def _open(self, b: Breaker, now: float) -> None:
        if b.state == "closed":
            self.tripped += 1
        b.state, b.probing, b.until = "open", False, now + self._cooldown
        b.opened += 1

    def state_of(self, name: str) -> BreakerState:
        b = self._b.get(name)
        return b.state if b is not None else "closed"

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready view (health endpoints, tests)."""
        now = self._clock()
        return {
            "breakers": {
                b.name: {"state": b.state, "consecutive_failures": b.consecutive,
                         "opened": b.opened,
                         "retry_in_s": round(max(0.0, b.until - now), 3)
                         if b.state != "closed" else 0}
                for b in self._b.values()
            },
            "retry_budget": self.budget.snapshot(),
        }


class RetryBudget:
    """Retries (attempts beyond a request's first) as a share of requests."""

    def __init__(self, ratio: float, reserve: int, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.ratio = ratio
        self.cap = float(max(reserve, 1))
        self.balance = float(reserve)
        self.requests = 0
        self.retries = 0
        self.denied = 0

    def deposit(self) -> None:
        """A request started."""
        self.requests += 1
        self.balance = min(self.cap, self.balance + self.ratio)

    def withdraw(self) -> bool:
        """May one more attempt be made for a request that already made one?"""
        if self.balance >= 1.0 or not self.enabled:
            self.balance = max(0.0, self.balance - 1.0)
            self.retries += 1
            return True
        self.denied += 1
        return False

    def snapshot(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.retries, "denied": self.denied,
                "balance": round(self.balance, 3)}
