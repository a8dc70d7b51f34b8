"""``router explain-route``: why a request lands where it does, and what would move it.

One code path with the server: the runtime's classifier turns the request into
signals (each with its evidence), the runtime's ``decide`` picks the cell and
filters its chain, and this module only *describes* the result:

* the signals and the evidence behind each (detector, span, masked excerpt);
* the cell, its rules and policy;
* the chain, each candidate's score broken into its terms;
* what was filtered out, at compile time (``cell.excluded``) and for this
  request (``decision.filtered``);
* what would have to change for the runner-up to win: the score gap, how far
  each of its terms would have to move (translated back into a price, a quality
  score or a latency), and which objective weight would flip the order.

The report is plain JSON-able data; ``--format json`` prints it as is and the
text form renders it through ``templates/explain.txt.j2``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interlock.compiler import score
from interlock.compiler.model import Objectives
from interlock.compiler.render import render_template
from interlock.compiler.score import blended_price, expected_ms, quality_of
from interlock.runtime.canonical import CanonicalRequest
from interlock.runtime.classify import Classification, Classifier, Evidence
from interlock.runtime.decide import Decision, decide
from interlock.runtime.latency import OUT_TOKENS, LatencyTracker
from interlock.runtime.signals import CAPABILITY_BITS, caps_names, cell_key
from interlock.runtime.table import Candidate, Cell, DecisionTable, ModelEntry

TERMS = ("quality", "cost", "latency", "locality", "preference")
WEIGHTED = ("quality", "cost", "latency")
_LOG101 = math.log10(101)
_RANKED = re.compile(r"ranked \d+ of \d+")
_EPS = 5e-4  # past the tie, with room for the 4-decimal rounding of terms


# --------------------------------------------------------------------------- raw factors
# The scoring formulas are compiler.score's; these only invert them.


def cell_weights(table: DecisionTable, cell: Cell) -> dict[str, float]:
    """The weights in force in ``cell``: the profile's, quality scaled by complexity."""
    objectives = Objectives(**{t: float(table.weights.get(t, 0.0)) for t in WEIGHTED})
    w = score.cell_weights(objectives, cell.complexity)
    return {"quality": w.quality, "cost": w.cost, "latency": w.latency}


def cost_factor(price: float) -> float:
    return min(1.0, max(0.0, 1 - math.log10(1 + price) / _LOG101))


def price_for_cost_factor(factor: float) -> float:
    """Inverse of :func:`cost_factor`."""
    return float(10 ** ((1 - factor) * _LOG101) - 1)


def latency_factor(ms: float) -> float:
    return 1 / (1 + ms / 2000)


# --------------------------------------------------------------------------- what-if


@dataclass(frozen=True, slots=True)
class Change:
    """One way the runner-up could win: a term of it, or a weight, moving."""

    kind: str  # "term" | "profile" | "weight" | "rule" | "strategy" | "tie"
    term: str
    amount: float  # how much the term must rise / the new weight
    text: str
    #: the fact that would have to hold: a quality score, a blended price (USD/Mtok),
    #: an expected latency (ms), or the new normalised objective weight
    target: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "term": self.term, "amount": round(self.amount, 4),
                "target": None if self.target is None else round(self.target, 4),
                "text": self.text}


def what_would_change(table: DecisionTable, cell: Cell, winner: Candidate,
                      other: Candidate) -> tuple[float, list[Change]]:
    """The score gap between ``winner`` and ``other`` and the changes that would close it."""
    gap = round(winner.score - other.score, 4)
    wm, om = table.models.get(winner.model), table.models.get(other.model)
    strategy = cell.policy.strategy
    changes: list[Change] = []
    if strategy in ("price", "latency", "throughput") and wm and om:
        return gap, [_strategy_change(strategy, wm, om, cell)]
    if winner.terms.preference > other.terms.preference:
        rule = ", ".join(cell.rules) or "a rule"
        changes.append(Change(
            "rule", "preference", winner.terms.preference - other.terms.preference,
            f"{winner.model} is put first by {rule}'s `prefer`; only that list can change it",
        ))
        return gap, changes
    if gap <= 0:
        why = other.reason or "the chain's order"
        text = ("it scores the same and loses on key order" if gap == 0
                else f"it scores higher but is placed after it: {why}")
        return gap, [Change("tie", "", 0.0, text)]
    weights = cell_weights(table, cell)
    need = gap + _EPS
    bonus = max((c.terms.locality for c in cell.chain), default=0.0)
    for term in ("quality", "cost", "latency", "locality"):
        change = _term_change(term, other, om, cell, weights, need, bonus)
        if change:
            changes.append(change)
    if winner.terms.locality > 0 and other.terms.locality == 0:
        lower = winner.terms.locality - need
        if lower >= 0:
            changes.append(Change(
                "profile", "locality", lower,
                f"the profile's local.bonus fell from {winner.terms.locality:.2f} to "
                f"{lower:.2f} (or local.prefer were off)"))
    changes.extend(_weight_changes(table, cell, winner, other, weights))
    pref = _term_change("preference", other, om, cell, weights, need, bonus)
    if pref:
        changes.append(pref)
    return gap, changes


def _term_change(term: str, cand: Candidate, model: ModelEntry | None, cell: Cell,
                 weights: dict[str, float], need: float, bonus: float) -> Change | None:
    value = float(getattr(cand.terms, term))
    w = weights.get(term, 0.0)
    rise = f"its {term} term rose by {need:.4f}"
    if term in WEIGHTED:
        if w <= 0 or value + need > w + 1e-9:
            return None  # the term is capped at its weight: no amount of this closes the gap
        if model is None:
            return Change("term", term, need, rise)
        target = (value + need) / w
        fact: float
        if term == "quality":
            task = cell.task if cell.task != "embeddings" else "general"
            now, fact = quality_of(model, task), target * 100
            text = f"{rise} ({task} quality {now:.0f} → {fact:.0f})"
        elif term == "cost":
            now_p, fact = blended_price(model), price_for_cost_factor(min(target, 1.0))
            text = f"{rise} (blended price ${now_p:.2f} → ${fact:.2f}/Mtok)"
        else:
            now_ms, fact = expected_ms(model, cell.complexity), 2000 * (1 / target - 1)
            text = f"{rise} (expected latency {now_ms / 1000:.1f}s → {fact / 1000:.1f}s)"
        return Change("term", term, need, text, fact)
    if term == "locality":
        # the bonus is all or nothing and the same for every local model: it only helps a
        # local model that lost it (above local.max_complexity) and only if big enough
        if not cand.local or value > 0 or bonus < need:
            return None
        return Change("term", term, bonus, f"local models were preferred at this complexity "
                      f"(local.max_complexity; the +{bonus:.2f} locality bonus)")
    return Change("term", term, need, "a rule listed it in `prefer` (router.yaml `rules:`), "
                  "which puts it first")


def _weight_changes(table: DecisionTable, cell: Cell, winner: Candidate, other: Candidate,
                    weights: dict[str, float]) -> list[Change]:
    """Which single objective weight, the others shrinking in proportion, flips the order."""
    delta = {t: float(getattr(other.terms, t)) - float(getattr(winner.terms, t))
             for t in TERMS}
    # the raw (unweighted) difference of each weighted term; unknown when its weight is 0
    raw = {t: delta[t] / weights[t] for t in WEIGHTED if weights.get(t, 0) > 0}
    const = delta["locality"] + delta["preference"]
    out: list[Change] = []
    mult = score.QUALITY_FACTOR[cell.complexity] if cell.complexity else 1.0
    for t in WEIGHTED:
        w = weights.get(t, 0.0)
        if t not in raw or w >= 1:
            continue
        rest = sum(weights[s] * raw[s] for s in raw if s != t) / (1 - w)
        denom = raw[t] - rest
        if abs(denom) < 1e-12:
            continue
        root = -(rest + const) / denom
        if not 0 < root < 1 or abs(root - w) < 1e-6:
            continue
        # go past the tie far enough that the runner-up leads by _EPS (terms are rounded)
        step = 1.0 if root > w else -1.0
        new_w = next((root + step * k for k in (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)
                      if 0 < root + step * k < 1
                      and (root + step * k) * raw[t] + (1 - root - step * k) * rest + const
                      >= _EPS), None)
        if new_w is None:
            continue
        total = sum(float(table.weights.get(s, 0.0)) for s in WEIGHTED) or 1.0
        before = float(table.weights.get(t, 0.0)) / total
        after = _objective_for(t, new_w, weights, mult)
        verb = "rose" if new_w > w else "fell"
        out.append(Change(
            "weight", t, new_w,
            f"the {t} weight {verb} from {before:.2f} to {after:.2f} "
            "(the other objectives shrinking in proportion)", after,
        ))
    return out


def _objective_for(term: str, new_cell_w: float, weights: dict[str, float], mult: float) -> float:
    """Translate a cell weight back into the profile's normalised objective weight."""
    w = weights[term]
    scaled = {s: (new_cell_w if s == term else weights[s] * (1 - new_cell_w) / (1 - w))
              for s in WEIGHTED}
    scaled["quality"] /= mult
    total = sum(scaled.values()) or 1.0
    return scaled[term] / total


def _strategy_change(strategy: str, wm: ModelEntry, om: ModelEntry, cell: Cell) -> Change:
    if strategy == "price":
        text = (f"the cell orders by price: {om.key} would win if its blended price "
                f"(${blended_price(om):.2f}/Mtok) fell below ${blended_price(wm):.2f}")
        return Change("strategy", "cost", blended_price(om) - blended_price(wm), text)
    if strategy == "latency":
        text = (f"the cell orders by time to first token: {om.key} would win if its "
                f"{om.speed.ttft_ms:.0f}ms fell below {wm.speed.ttft_ms:.0f}ms")
        return Change("strategy", "latency", om.speed.ttft_ms - wm.speed.ttft_ms, text)
    text = (f"the cell orders by throughput: {om.key} would win if its "
            f"{om.speed.tokens_per_s:.0f} tok/s rose above {wm.speed.tokens_per_s:.0f}")
    return Change("strategy", "latency", wm.speed.tokens_per_s - om.speed.tokens_per_s, text)


# --------------------------------------------------------------------------- report pieces


def candidate_json(table: DecisionTable, c: Candidate, *, eligible: bool) -> dict[str, Any]:
    model = table.models.get(c.model)
    return {
        "model": c.model,
        "provider": c.provider,
        "role": c.role,
        "local": c.local,
        "score": c.score,
        "terms": {t: float(getattr(c.terms, t)) for t in TERMS},
        "weight": c.weight,
        "caps": caps_names(c.caps),
        "reason": c.reason,
        "eligible": eligible,
        "price": None if model is None else {"input": model.price.input,
                                             "output": model.price.output},
    }


def runner_up(chain: Sequence[Candidate], winner: Candidate) -> Candidate | None:
    """The best other candidate that could take the primary's place (not escalation)."""
    for c in chain:
        if c.model != winner.model and c.role != "escalation":
            return c
    return None


# --------------------------------------------------------------------------- the report


def explain_request(table: DecisionTable, body: Any, *,
                    headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Classify and decide ``body`` (a chat or messages request) and describe the result."""
    from interlock.compiler import cases

    req = cases.decode_body(body)
    header_private = any(k.lower() == "x-router-private" and v.strip().lower() in
                         ("1", "true", "yes", "on") for k, v in (headers or {}).items())
    cls = Classifier(table.classifier).classify(req, header_private=header_private)
    decision = decide(table, cls, req, latency=LatencyTracker(table).expected_ms)
    signals = [
        _signal("task", cls.task, cls.evidence),
        _signal("complexity", cls.complexity, cls.evidence),
        _signal("sensitivity", cls.sensitivity, cls.evidence),
        _signal("modality", cls.modality, cls.evidence),
        _signal("needs", ", ".join(caps_names(cls.needs)) or "nothing special", cls.evidence),
        _signal("tokens", str(cls.tokens), cls.evidence),
    ]
    if cls.tags:
        signals.append(_signal("tags", ", ".join(cls.tags), cls.evidence, source="tag"))
    kind = "request" if isinstance(body, dict) and set(body) != {"messages"} else "prompt"
    return build_report(table, decision, signals, {"kind": kind, "surface": req.surface})


def explain_synthetic(table: DecisionTable, *, task: str, complexity: str, private: bool,
                      image: bool) -> dict[str, Any]:
    """Describe a cell given on the command line (no classification, no request)."""
    sensitivity = "private" if private else "public"
    modality = "image" if image else "text"
    key = cell_key(task, complexity, sensitivity, modality)
    needs = CAPABILITY_BITS["vision"] if image else 0
    cls = Classification(task=task, complexity=complexity,  # type: ignore[arg-type]
                         sensitivity=sensitivity, modality=modality,  # type: ignore[arg-type]
                         needs=needs, tokens=0, tags=[], evidence=[], cell=key)
    req = CanonicalRequest(surface="chat", messages=[])
    decision = decide(table, cls, req, latency=LatencyTracker(table).expected_ms)
    given = [{"detector": "command line", "span": None, "excerpt": "", "note": "given"}]
    signals = [
        {"signal": "task", "value": task, "evidence": given},
        {"signal": "complexity", "value": complexity, "evidence": given},
        {"signal": "sensitivity", "value": sensitivity, "evidence": given},
        {"signal": "modality", "value": modality, "evidence": given},
    ]
    return build_report(table, decision, signals, {"kind": "synthetic", "surface": None})


def _signal(name: str, value: str, evidence: Sequence[Evidence], *,
            source: str | None = None) -> dict[str, Any]:
    return {
        "signal": name,
        "value": value,
        "evidence": [
            {"detector": e.detector, "span": list(e.span) if e.span else None,
             "excerpt": e.excerpt, "note": e.note, "value": e.value}
            for e in evidence if e.signal == (source or name)
        ],
    }


def build_report(table: DecisionTable, decision: Decision, signals: list[dict[str, Any]],
                 source: dict[str, Any]) -> dict[str, Any]:
    """The explain-route data: JSON as is, text through ``explain.txt.j2``."""
    cell = decision.cell
    eligible = {c.model for c in decision.candidates}
    chain = [candidate_json(table, c, eligible=c.model in eligible) for c in cell.chain]
    filtered = [{"model": e.model, "stage": "compile", "reason": e.reason}
                for e in cell.excluded]
    filtered += [{"model": c.model, "stage": "request", "reason": why}
                 for c, why in decision.filtered]
    first = decision.candidates[0] if decision.candidates else None
    what_if, note = _what_if(table, cell, decision)
    report: dict[str, Any] = {
        "table": {"hash": table.hash, "profile": table.profile},
        "input": source,
        "signals": signals,
        "cell": {
            "key": cell.key, "rules": list(cell.rules),
            # the tag whose variant of the cell routed this request (a rule on match.tags)
            "tag": decision.tag,
            "policy": cell.policy.model_dump(mode="json"),
        },
        "weights": {k: round(v, 4) for k, v in cell_weights(table, cell).items()},
        "chain": chain,
        "filtered": filtered,
        "decision": {
            "model": first.model if first else None,
            "provider": first.provider if first else None,
            "local": first.local if first else None,
            "refused": first is None,
            "pinned": decision.pinned,
            "reason": decision.reason,
            "candidates": [c.model for c in decision.candidates],
        },
        "what_if": what_if,
        "what_if_note": note,
        "latency": latency_report(table, decision),
    }
    return report


#: what the CLI's latency figures are: it has no traffic of its own
LATENCY_SOURCE = ("catalog seeds: explain-route from the CLI sees no live traffic; a running "
                  "router's POST /v1/route shows its live EWMA figures")


def latency_report(table: DecisionTable, decision: Decision) -> dict[str, Any]:
    """The latency figures decide() used (the catalog's seeds here) and its budget step."""
    cell = decision.cell
    out_tokens = OUT_TOKENS.get(cell.complexity or "medium", 400)
    keys = [c.model for c in decision.candidates]
    return {
        "source": LATENCY_SOURCE,
        "out_tokens": out_tokens,
        "budget_ms": cell.policy.latency_budget_ms,
        "figures": LatencyTracker(table).snapshot(keys, out_tokens=out_tokens),
        "budget": decision.latency,
    }


def render_text(report: dict[str, Any]) -> str:
    """The report as text (``templates/explain.txt.j2``); the rows are pre-formatted here
    so the template only lays them out."""
    return render_template(
        "explain.txt.j2", r=report,
        chain_rows=[_chain_row(i, c) for i, c in enumerate(report["chain"], start=1)],
        filtered_rows=_filtered_rows(report["filtered"]),
    ).rstrip() + "\n"


def _filtered_rows(filtered: list[dict[str, Any]]) -> list[list[str]]:
    """One row per exclusion; many models dropped for the same reason share a row."""
    by_reason: dict[tuple[str, str], list[str]] = {}
    for f in filtered:
        # "ranked 7 of 14; chain.max_candidates is 4" differs only in the rank: one group
        reason = _RANKED.sub("ranked below the chain", f["reason"])
        by_reason.setdefault((f["stage"], reason), []).append(f["model"])
    rows = []
    for (stage, reason), models in by_reason.items():
        when = "at compile" if stage == "compile" else "this request"
        if len(models) > 3:
            providers = sorted({m.split("/", 1)[0] for m in models})
            rows.append([f"{len(models)} models ({', '.join(providers)})", when, reason])
        else:
            rows.extend([m, when, reason] for m in models)
    return rows


def _chain_row(i: int, c: dict[str, Any]) -> list[str]:
    t = c["terms"]
    price = c["price"]
    return [
        str(i), c["model"], c["role"], f"{c['score']:.4f}",
        f"{t['quality']:.4f}", f"{t['cost']:.4f}", f"{t['latency']:.4f}",
        f"{t['locality']:.4f}", f"{t['preference']:.4f}",
        "-" if price is None else f"{price['input']:g}/{price['output']:g}",
        "" if c["eligible"] else "(filtered for this request)",
    ]


def _what_if(table: DecisionTable, cell: Cell, decision: Decision
             ) -> tuple[dict[str, Any] | None, str]:
    if not decision.candidates:
        if cell.policy.allow_cloud:
            return None, "nothing can serve this request: every candidate was filtered out"
        return None, ("a private request with no local candidate is refused; install a local "
                      "model that fits (see `router doctor`)")
    winner = decision.candidates[0]
    other = runner_up(decision.candidates, winner)
    if other is None:
        return None, f"{winner.model} is the only candidate left for this request"
    gap, changes = what_would_change(table, cell, winner, other)
    others = [{"model": c.model, "gap": round(winner.score - c.score, 4)}
              for c in decision.candidates if c.model not in (winner.model, other.model)
              and c.role != "escalation"]
    return {
        "winner": winner.model, "runner_up": other.model, "gap": gap,
        "changes": [c.to_json() for c in changes], "others": others,
    }, ""
