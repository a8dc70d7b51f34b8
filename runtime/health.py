"""Provider health: ok / degraded / error, from start-up probes and real traffic.

Each provider has a small record.  A probe at start sets its first status; after
that, every upstream attempt reports its outcome:

* success resets the provider to ``ok``;
* a failure (connect error, timeout, 429/5xx) counts a consecutive failure: the
  provider is ``degraded`` until ``fail_threshold`` failures in a row make it
  ``error``;
* a provider in ``error`` is *open*: ``healthy()`` says False for ``cooldown_s``
  so decide() skips it, then lets traffic through again (half-open).  One success
  closes it, one more failure re-opens it.

A failed start-up probe opens the provider for one cooldown too, so the first
requests do not each pay for a dead Ollama.  ``healthy`` is the predicate passed to
``decide``; it is one dict look-up and one comparison.

Client-side failures (a 400 the upstream returned) say nothing about the
provider's health and are not reported here.  Circuit breakers with failure
rates and retry budgets (issue 8) can replace the record without changing the
``healthy``/``success``/``failure`` interface.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "degraded", "error", "unknown"]

_RANK: dict[str, int] = {"ok": 0, "unknown": 0, "degraded": 1, "error": 2}


@dataclass(slots=True)
class ProviderHealth:
    name: str
    locality: str
    status: Status = "unknown"
    consecutive_failures: int = 0
    successes: int = 0
    failures: int = 0
    last_error: str = ""
    probe: str = ""
    #: monotonic time until which the provider is skipped (0: not open)
    open_until: float = 0.0


class HealthRegistry:
    """Health of every provider in the table; one instance per worker."""

    def __init__(
        self,
        providers: Iterable[tuple[str, str]],
        *,
        fail_threshold: int = 3,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._p = {name: ProviderHealth(name, locality) for name, locality in providers}
        self._threshold = max(1, fail_threshold)
        self._cooldown = cooldown_s
        self._clock = clock

    def healthy(self, provider: str) -> bool:
        """False while the provider is open (recently in error); unknown names are healthy."""
        h = self._p.get(provider)
        return h is None or h.open_until == 0.0 or h.open_until <= self._clock()

    def success(self, provider: str) -> None:
        h = self._p.get(provider)
        if h is None:
            return
        h.successes += 1
        if h.consecutive_failures or h.status != "ok":
            h.consecutive_failures = 0
            h.open_until = 0.0
            h.status = "ok"

    def failure(self, provider: str, error: str) -> None:
        h = self._p.get(provider)
        if h is None:
            return
        h.failures += 1
        h.consecutive_failures += 1
        h.last_error = error
        if h.consecutive_failures >= self._threshold:
            h.status = "error"
            h.open_until = self._clock() + self._cooldown
        else:
            h.status = "degraded"

    def probed(self, provider: str, ok: bool, detail: str = "") -> None:
        """Record a probe's result (at start, or from a health check)."""
        h = self._p.get(provider)
        if h is None:
            return
        h.probe = detail or ("reachable" if ok else "unreachable")
        if ok:
            h.status = "ok"
            h.consecutive_failures = 0
            h.open_until = 0.0
        else:
            h.status = "error"
            h.last_error = h.probe
            h.open_until = self._clock() + self._cooldown

    def status(self, provider: str) -> Status:
        h = self._p.get(provider)
        return h.status if h is not None else "unknown"

    def overall(self) -> Status:
        """ok when every provider is ok; error when none is usable; else degraded."""
        if not self._p:
            return "error"
        ranks = [_RANK[h.status] for h in self._p.values()]
        if all(r == 0 for r in ranks):
            return "ok"
        if all(r == 2 for r in ranks):
            return "error"
        return "degraded"

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view for ``/healthz``."""
        now = self._clock()
        return {
            "status": self.overall(),
            "providers": {
                h.name: {
                    "status": h.status,
                    "locality": h.locality,
                    "healthy": self.healthy(h.name),
                    "consecutive_failures": h.consecutive_failures,
                    "successes": h.successes,
                    "failures": h.failures,
                    "last_error": h.last_error,
                    "probe": h.probe,
                    "retry_in_s": round(max(0.0, h.open_until - now), 3) if h.open_until else 0,
                }
                for h in self._p.values()
            },
        }
