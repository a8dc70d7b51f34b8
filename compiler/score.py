"""Scoring: one number per (cell, model), kept as its weighted terms.

* weights: the profile's objectives normalised to sum 1, then the quality weight
  scaled ×0.6 / ×1.0 / ×1.5 for low / medium / high complexity and renormalised;
* quality  = w_q · quality[task] / 100 (missing tasks fall back to ``general``);
* cost     = w_c · (1 − log10(1 + p) / log10(101)), p = (3·input + output) / 4 USD/Mtok,
  clamped to [0, 1] (a free model gets the whole w_c);
* latency  = w_l / (1 + t / 2000), t = ttft + out_tokens / tokens_per_s · 1000 ms with
  150 / 400 / 1000 output tokens for low / medium / high;
* locality = ``local.bonus`` for a local model when ``local.prefer`` and the cell's
  complexity ≤ ``local.max_complexity``;
* preference = 1 − 0.01 · index for a model a matching rule ``prefer``s.

score = the sum, rounded to 4 decimals; ties are broken by model key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from interlock.compiler.model import LocalPolicy, Objectives
from interlock.runtime.signals import COMPLEXITIES, Complexity
from interlock.runtime.table import ModelEntry, Terms

QUALITY_FACTOR: dict[Complexity, float] = {"low": 0.6, "medium": 1.0, "high": 1.5}
OUT_TOKENS: dict[Complexity, int] = {"low": 150, "medium": 400, "high": 1000}
_LOG101 = math.log10(101)


@dataclass(frozen=True)
class Weights:
    quality: float
    cost: float
    latency: float


def base_weights(objectives: Objectives) -> Weights:
    """The objectives normalised to sum 1 (all-zero objectives weigh equally)."""
    total = objectives.quality + objectives.cost + objectives.latency
    if total <= 0:
        return Weights(1 / 3, 1 / 3, 1 / 3)
    return Weights(objectives.quality / total, objectives.cost / total,
                   objectives.latency / total)


def cell_weights(objectives: Objectives, complexity: Complexity | None) -> Weights:
    """Base weights with the quality weight adjusted for the complexity, renormalised."""
    w = base_weights(objectives)
    q = w.quality * (QUALITY_FACTOR[complexity] if complexity else 1.0)
    total = q + w.cost + w.latency
    return Weights(q / total, w.cost / total, w.latency / total)


def blended_price(model: ModelEntry) -> float:
    """USD per Mtok for a typical 3:1 input:output mix."""
    return (3 * model.price.input + model.price.output) / 4


def expected_ms(model: ModelEntry, complexity: Complexity | None) -> float:
    """Time to a whole answer of the cell's typical length (embeddings: ttft only)."""
    tokens = OUT_TOKENS[complexity] if complexity else 0
    return model.speed.ttft_ms + tokens / model.speed.tokens_per_s * 1000


def quality_of(model: ModelEntry, task: str) -> float:
    """0-100 for the task (falls back to general)."""
    return model.quality.get(task, model.quality.get("general", 0.0))


def complexity_rank(complexity: Complexity) -> int:
    return COMPLEXITIES.index(complexity)


def terms_for(
    model: ModelEntry,
    task: str,
    complexity: Complexity | None,
    weights: Weights,
    local: LocalPolicy,
    prefer_index: int | None = None,
) -> tuple[float, Terms]:
    """``(score, terms)`` of ``model`` in a cell; terms are rounded to 4 decimals."""
    quality = weights.quality * quality_of(model, task) / 100
    p = blended_price(model)
    cost = weights.cost * min(1.0, max(0.0, 1 - math.log10(1 + p) / _LOG101))
    latency = weights.latency / (1 + expected_ms(model, complexity) / 2000)
    near = complexity is None or complexity_rank(complexity) <= complexity_rank(
        local.max_complexity)
    locality = local.bonus if (local.prefer and model.locality == "local" and near) else 0.0
    preference = 1 - 0.01 * prefer_index if prefer_index is not None else 0.0
    score = round(quality + cost + latency + locality + preference, 4)
    terms = Terms(quality=round(quality, 4), cost=round(cost, 4), latency=round(latency, 4),
                  locality=round(locality, 4), preference=round(preference, 4))
    return score, terms
