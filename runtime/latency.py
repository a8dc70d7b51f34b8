"""Live latency: what each model actually takes, learned from the router's own traffic.

Per model key (``provider/upstream_id``) the tracker keeps exponentially
weighted moving averages of

* ``ttft_ms``       time to first token (streams: the first delta; a plain
                    answer shows only its total, and what its length at the
                    current tokens/s does not explain counts as its ttft),
* ``total_ms``      the whole answer, and
* ``tokens_per_s``  output tokens per second after the first token,

each seeded from the catalog's speed hints (``ModelEntry.speed``) so that a fresh
router already has sensible figures, and moved by every successful answer with
weight ``alpha`` (0.2: the last ~5 answers dominate).

``expected_ms(key, out_tokens)`` = ttft + out_tokens / tokens_per_s, the same
formula the compiler scores with, so a live figure and a compile-time one
compare.  ``decide`` takes these figures through a plain callable (it stays
pure); ``explain-route`` from the CLI has no traffic and shows the seeds.

One tracker per worker (``RuntimeState.latency``); no locks - the event loop is
single-threaded and an update is a few float operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from interlock.runtime.table import DecisionTable, ModelEntry

ALPHA: Final = 0.2
#: expected output tokens per complexity (the compiler's latency term uses the same)
OUT_TOKENS: Final[Mapping[str, int]] = {"low": 150, "medium": 400, "high": 1000}


@dataclass(slots=True)
class Figures:
    """The live figures of one model."""

    ttft_ms: float
    tokens_per_s: float
    total_ms: float | None = None
    samples: int = 0

    def expected_ms(self, out_tokens: int) -> float:
        return self.ttft_ms + out_tokens / max(self.tokens_per_s, 1e-6) * 1000.0

    def to_dict(self, out_tokens: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ttft_ms": round(self.ttft_ms, 1),
            "tokens_per_s": round(self.tokens_per_s, 2),
            "total_ms": None if self.total_ms is None else round(self.total_ms, 1),
            "samples": self.samples,
            "source": "live" if self.samples else "catalog",
        }
        if out_tokens is not None:
            out["expected_ms"] = round(self.expected_ms(out_tokens), 1)
        return out


def _seed(m: ModelEntry) -> Figures:
    return Figures(ttft_ms=float(m.speed.ttft_ms), tokens_per_s=float(m.speed.tokens_per_s))


class LatencyTracker:
    """EWMA latency figures per model, seeded from the table's catalog hints."""

    __slots__ = ("alpha", "_figures", "_models")

    def __init__(self, table: DecisionTable, *, alpha: float = ALPHA) -> None:
        self.alpha = alpha
        self._models = table.models
        self._figures: dict[str, Figures] = {}

    def figures(self, key: str) -> Figures | None:
        """The figures of model ``key`` (its catalog seed until traffic moved it)."""
        f = self._figures.get(key)
        if f is None:
            m = self._models.get(key)
            if m is None:
                return None
            f = self._figures[key] = _seed(m)
        return f

    def expected_ms(self, key: str, out_tokens: int) -> float | None:
        """Expected time for an answer of ``out_tokens`` tokens from ``key``."""
        f = self.figures(key)
        return None if f is None else f.expected_ms(out_tokens)

    def observe(self, key: str, *, total_ms: float, ttft_ms: float | None = None,
                output_tokens: int | None = None) -> None:
        """Fold one successful answer in.

        A stream reports its ``ttft_ms`` (first delta) and its total; tokens per second
        come from the output tokens over the time after the first token.  A plain
        answer shows only its total: the part the current tokens/s does not explain is
        taken as its time to first token (so a model that got slow moves its ttft).
        """
        f = self.figures(key)
        if f is None or total_ms < 0:
            return
        a = self.alpha
        f.samples += 1
        f.total_ms = total_ms if f.total_ms is None else f.total_ms + a * (total_ms - f.total_ms)
        n = output_tokens or 0
        if ttft_ms is None:
            implied = max(0.0, total_ms - n / max(f.tokens_per_s, 1e-6) * 1000.0)
            f.ttft_ms += a * (implied - f.ttft_ms)
            return
        if ttft_ms >= 0:
            f.ttft_ms += a * (ttft_ms - f.ttft_ms)
        gen_ms = total_ms - ttft_ms
        if n > 1 and gen_ms > 1.0:
            f.tokens_per_s += a * (n / (gen_ms / 1000.0) - f.tokens_per_s)

    def snapshot(self, keys: list[str] | None = None, *,
                 out_tokens: int | None = None) -> dict[str, dict[str, Any]]:
        """JSON-able figures of ``keys`` (default: every model seen so far)."""
        names = keys if keys is not None else sorted(self._figures)
        out: dict[str, dict[str, Any]] = {}
        for k in names:
            f = self.figures(k)
            if f is not None:
                out[k] = f.to_dict(out_tokens)
        return out
