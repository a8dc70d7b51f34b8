"""The decision: which candidates of the table may serve a classified request, in order.

``decide(table, cls, req)`` does one dictionary look-up for the cell, then
filters its compiled chain - nothing is re-scored here.  When the request carries
custom tags and the table has a *tag variant* of the cell for one of them (a rule
with ``match.tags``, compiled into ``table.tag_cells``), the variant replaces the
cell: one more look-up per tag; with several, the variant of the earliest rule
(lowest ``rank``) wins.  Privacy is filtered below exactly as for any cell.

1. the model the client named: ``None``/``auto``/``route-auto`` route by the
   cell; a table pin prefix (``local/auto``, ``local/<name>``, ``groq/<id>``)
   routes within that locality or provider; any other name pins that model
   (unknown → 404 ``model_not_found`` with a did-you-mean).  The request's
   ``models`` list (OpenRouter's fallback list) follows a pinned model;
2. privacy, fail-closed: a private request never keeps a cloud candidate,
   whatever pins or controls say (a pinned cloud model leaves no candidate);
3. request controls in OpenRouter's shape - ``allowed_models`` (``*`` wildcards),
   ``provider.{only, ignore, order, allow_fallbacks, sort, max_price,
   data_collection, zdr, require_parameters}`` - validated (400 naming the field);
4. needs (``caps & needs == needs``), context window, health;
5. the latency budget: when the cell has ``policy.latency_budget_ms`` and the
   first candidate's expected latency (live figures, passed in as ``latency``)
   breaks it, the first candidate that keeps it goes first (none keeps it: the
   compiled order stands - its score already weighed latency).  Not applied to a
   pinned model or when the client chose the order (``provider.sort`` /
   ``provider.order``).

Every dropped candidate is kept in ``Decision.filtered`` with its reason.

OpenRouter semantics kept (https://openrouter.ai/docs/features/provider-routing,
.../model-routing): ``models`` are fallbacks in priority order (after ``model``
when one is named); ``order`` is tried first and, with ``allow_fallbacks: true``
(the default), the other candidates follow; ``allow_fallbacks: false`` keeps
only ``order`` (or only the first candidate without ``order``); ``only`` /
``ignore`` filter providers (slugs match case-insensitively); ``sort`` is a
string or ``{by, partition}`` - with ``partition: "model"`` (the default) a
client's own ``models`` list keeps its order, with ``"none"`` (and for routed
chains) every candidate is sorted; ``max_price`` is USD per million tokens
(``prompt``, ``completion``; ``request``/``image`` are accepted but not enforced:
the catalog has no such prices); ``data_collection: deny`` drops providers that
may train on or keep data (``may-train``/``unknown``), ``zdr: true`` keeps only
providers with no retention (``none``) and local ones.  ``quantizations``,
``enforce_distillable_text``, ``preferred_min_throughput`` and
``preferred_max_latency`` are validated and accepted without effect (no catalog
data).  ``require_parameters: true`` additionally requires the ``reasoning``
capability when the request sets ``reasoning``/``reasoning_effort``; the
capabilities a request needs (tools, JSON, vision, streaming) are always required.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from interlock.runtime.canonical import CanonicalRequest
from interlock.runtime.classify import Classification
from interlock.runtime.controls import NO_CONTROLS, Controls, did_you_mean, parse_controls
from interlock.runtime.errors import RequestError
from interlock.runtime.signals import CAPABILITY_BITS, caps_names, cell_key
from interlock.runtime.table import Candidate, Cell, DecisionTable, ModelEntry, Pin, Policy, Terms

_OUT_TOKENS: Final = {"low": 150, "medium": 400, "high": 1000}
_COLLECTING: Final = frozenset({"may-train", "unknown"})
_REASONING: Final = CAPABILITY_BITS["reasoning"]
_REASONING_KEYS: Final = frozenset({"reasoning", "reasoning_effort"})
_NO_KEYS: Final[frozenset[str]] = frozenset()


@dataclass(slots=True)
class Decision:
    """The cell, the candidates still eligible (in order) and why the others are not."""

    cell: Cell
    candidates: list[Candidate]
    filtered: list[tuple[Candidate, str]]  # (candidate, why it was dropped)
    pinned: str | None  # the model key the client pinned, if any
    reason: str  # short ASCII text for X-Router-Reason
    pin: str | None = None  # the table pin prefix used ("local/"), if any
    #: the tag whose variant cell was used (a rule with ``match.tags``), if any
    tag: str | None = None
    controls: Controls = field(default_factory=Controls)
    #: the latency budget step (None: the cell has no budget); see :attr:`latency`
    budget: BudgetStep | None = None

    @property
    def latency(self) -> dict[str, Any] | None:
        """The latency budget step: budget, expected ms per candidate, what moved."""
        return self.budget.to_dict() if self.budget is not None else None

    def explain(self) -> dict[str, Any]:
        """Everything about the decision, JSON-able."""
        return {
            "cell": self.cell.key,
            "policy": self.cell.policy.model_dump(mode="json"),
            "rules": list(self.cell.rules),
            "candidates": [
                {"model": c.model, "provider": c.provider, "role": c.role, "local": c.local,
                 "score": c.score, "reason": c.reason}
                for c in self.candidates
            ],
            "filtered": [{"model": c.model, "reason": r} for c, r in self.filtered],
            "pinned": self.pinned,
            "pin": self.pin,
            "reason": self.reason,
            "tag": self.tag,
            "controls": asdict(self.controls),
            "latency": self.latency,
        }


# --------------------------------------------------------------------------- names

def _unknown(name: str, table: DecisionTable) -> RequestError:
    hint = did_you_mean(name, table.model_index)
    return RequestError(404, f"model {name!r} does not exist in this router{hint}",
                        param="model", code="model_not_found")


def _match_pin(name: str, table: DecisionTable) -> Pin | None:
    best: Pin | None = None
    for pin in table.pins:
        if name.startswith(pin.prefix) and (best is None or len(pin.prefix) > len(best.prefix)):
            best = pin
    return best


def _fits_pin(model: ModelEntry, pin: Pin) -> bool:
    if pin.locality is not None and model.locality != pin.locality:
        return False
    return pin.provider is None or model.provider == pin.provider


def _resolve(name: str, table: DecisionTable, pin: Pin | None = None) -> str:
    """The model key a client-facing name stands for (raises 404 when there is none)."""
    tries = [name] if pin is None else [
        *([f"{pin.provider}/{name}"] if pin.provider else []), name,
    ]
    for n in tries:
        key = n if n in table.models else table.model_index.get(n)
        if key is not None and key in table.models:
            if pin is None or _fits_pin(table.models[key], pin):
                return key
    raise _unknown(name if pin is None else pin.prefix + name, table)


def _resolve_listed(name: str, i: int, table: DecisionTable) -> str:
    """A ``models[i]`` entry's key; an unknown one is a 400 naming that entry."""
    try:
        return _resolve(name, table)
    except RequestError as exc:
        raise RequestError(400, f"models[{i}]: {exc.message}", param=f"models[{i}]",
                           code="model_not_found") from exc


def _candidate(key: str, cell: Cell, table: DecisionTable, why: str) -> Candidate:
    for c in cell.chain:
        if c.model == key:
            return c if c.role == "primary" else c.model_copy(update={"role": "primary"})
    m = table.models[key]
    return Candidate(model=key, provider=m.provider, role="primary", local=m.locality == "local",
                     caps=m.caps, score=0.0, terms=Terms(quality=0, cost=0, latency=0, locality=0),
                     reason=why)


def _empty_cell(key: str) -> Cell:
    task, complexity, sensitivity, modality = (key.split(".") + ["", "", "", ""])[:4]
    return Cell.model_validate({
        "key": key, "task": task, "complexity": complexity, "sensitivity": sensitivity,
        "modality": modality, "policy": Policy(allow_cloud=False), "chain": (),
    })


# --------------------------------------------------------------------------- decide


def _is_local(c: Candidate, table: DecisionTable) -> bool:
    # Both the compiled flag and the provider's locality must agree: fail closed.
    prov = table.providers.get(c.provider)
    return c.local and prov is not None and prov.locality == "local"


def _price_key(table: DecisionTable) -> Callable[[Candidate], float]:
    def key(c: Candidate) -> float:
        p = table.models[c.model].price
        return (3 * p.input + p.output) / 4
    return key


def _order(cands: list[Candidate], ctl: Controls, table: DecisionTable,
           filtered: list[tuple[Candidate, str]], listed: bool) -> list[Candidate]:
    # partition "model": a client's own models list keeps its order (each of our
    # candidates is one model at one provider, so there is nothing to sort within one)
    if ctl.sort is not None and not (listed and ctl.sort_partition == "model"):
        main = [c for c in cands if c.role != "escalation"]
        tail = [c for c in cands if c.role == "escalation"]
        if ctl.sort == "price":
            main.sort(key=_price_key(table))
        elif ctl.sort == "latency":
            main.sort(key=lambda c: table.models[c.model].speed.ttft_ms)
        else:
            main.sort(key=lambda c: -table.models[c.model].speed.tokens_per_s)
        cands = main + tail
    if ctl.order:
        rank = {p: i for i, p in enumerate(ctl.order)}
        cands = sorted(cands, key=lambda c: rank.get(c.provider, len(rank)))
        if not ctl.allow_fallbacks:
            for c in cands:
                if c.provider not in rank:
                    filtered.append((c, "provider not in provider.order "
                                              "(allow_fallbacks: false)"))
            cands = [c for c in cands if c.provider in rank]
    elif not ctl.allow_fallbacks and len(cands) > 1:
        filtered.extend((c, "allow_fallbacks: false") for c in cands[1:])
        cands = cands[:1]
    return cands


def _drop_reason(c: Candidate, cls: Classification, ctl: Controls, table: DecisionTable,
                 healthy: Callable[[str], bool] | None,
                 req_keys: frozenset[str] = frozenset()) -> str | None:
    """Why ``c`` may not serve this request, or None."""
    model = table.models.get(c.model)
    if model is None:
        return "not in the table's models"
    if cls.sensitivity == "private" and not _is_local(c, table):
        return f"private request: cloud model {c.model} refused"
    if ctl is not NO_CONTROLS:
        why = _control_reason(c, model, ctl, table, req_keys)
        if why is not None:
            return why
    missing = cls.needs & ~c.caps
    if missing:
        return "lacks " + ",".join(caps_names(missing))
    if cls.tokens > model.context_window:
        return f"context {model.context_window} < ~{cls.tokens} tokens"
    if healthy is not None and not healthy(c.provider):
        return f"provider {c.provider} unhealthy"
    return None


def _control_reason(c: Candidate, model: ModelEntry, ctl: Controls, table: DecisionTable,
                    req_keys: frozenset[str]) -> str | None:
    """Why the request's routing controls rule ``c`` out, or None."""
    if ctl.allowed_models and not any(
        fnmatch.fnmatchcase(c.model, pat) or fnmatch.fnmatchcase(model.upstream_id, pat)
        for pat in ctl.allowed_models
    ):
        return "not in allowed_models"
    if ctl.only and c.provider not in ctl.only:
        return "provider not in provider.only"
    if c.provider in ctl.ignore:
        return "provider in provider.ignore"
    if (ctl.deny_data_collection or ctl.zdr) and not _is_local(c, table):
        dc = table.providers[c.provider].data_collection
        if ctl.deny_data_collection and dc in _COLLECTING:
            return f"data_collection: deny (provider {dc})"
        if ctl.zdr and dc != "none":
            return f"zdr: provider retention is {dc}"
    if ctl.require_parameters and _REASONING_KEYS & req_keys and not c.caps & _REASONING:
        return "require_parameters: no reasoning support"
    if ctl.max_price_prompt is not None and model.price.input > ctl.max_price_prompt:
        return f"price {model.price.input}/Mtok above max_price.prompt"
    if ctl.max_price_completion is not None and model.price.output > ctl.max_price_completion:
        return f"price {model.price.output}/Mtok above max_price.completion"
    return None


def decide(
    table: DecisionTable, cls: Classification, req: CanonicalRequest, *,
    healthy: Callable[[str], bool] | None = None,
    latency: Callable[[str, int], float | None] | None = None,
) -> Decision:
    """The ordered candidates for ``req`` (see the module docstring).

    ``healthy(provider_name)`` says whether a provider may be tried now;
    ``latency(model_key, out_tokens)`` is the expected milliseconds of an answer
    (``LatencyTracker.expected_ms``: live figures; None: the catalog's hints).
    Raises ``RequestError`` 404 for an unknown model, 400 for bad controls.
    """
    cell = table.cells.get(cls.cell) or _empty_cell(cls.cell)
    tag = None
    if cls.tags and table.tag_cells:
        tag, cell = tag_variant(table, cls.tags, cls.cell, cell)
    ctl = parse_controls(req.controls, table)
    name = req.model
    pinned: str | None = None
    pin: Pin | None = None
    if name is None or name in table.aliases:
        if ctl.models:
            base = [_candidate(_resolve_listed(n, i, table), cell, table, "request models list")
                    for i, n in enumerate(ctl.models)]
        else:
            base = list(cell.chain)
    else:
        pin = _match_pin(name, table)
        rest = name[len(pin.prefix):] if pin is not None else ""
        if pin is not None and (rest in ("", "auto") or rest in table.aliases):
            twin = table.cells.get(cell_key(cls.task, cls.complexity, "private", cls.modality))
            chain = list(cell.chain) + (list(twin.chain) if twin is not None else [])
            seen: set[str] = set()
            base = []
            for c in chain:
                if c.model not in seen and c.model in table.models and _fits_pin(
                    table.models[c.model], pin
                ):
                    seen.add(c.model)
                    base.append(c)
        else:
            pinned = _resolve(rest, table, pin) if pin is not None else _resolve(name, table)
            base = [_candidate(pinned, cell, table, "pinned by request")]
        for i, n in enumerate(ctl.models):  # OpenRouter: the pinned model's fallbacks
            key = _resolve_listed(n, i, table)
            if all(c.model != key for c in base):
                base.append(_candidate(key, cell, table, "request models list"))
    filtered: list[tuple[Candidate, str]] = []
    kept: list[Candidate] = []
    req_keys = (frozenset(_REASONING_KEYS & req.extra.keys()) if ctl.require_parameters
                else _NO_KEYS)
    for c in base:
        why = _drop_reason(c, cls, ctl, table, healthy, req_keys)
        if why is None:
            kept.append(c)
        else:
            filtered.append((c, why))
    listed = bool(ctl.models) or pinned is not None
    kept = _order(kept, ctl, table, filtered, listed)
    budget: BudgetStep | None = None
    if cell.policy.latency_budget_ms is not None and kept:
        budget = _budget(kept, cell, table, latency,
                         fixed=pinned is not None or ctl.sort is not None or bool(ctl.order))
        if budget.index is not None:
            kept.insert(0, kept.pop(budget.index))
    reason = _reason(cell.key if tag is None else f"{cell.key} tag {tag}", kept, filtered,
                     pinned, pin)
    if budget is not None and budget.index is not None:
        reason = f"{reason} (latency budget {budget.budget_ms}ms)"[:200]
    return Decision(
        cell=cell, candidates=kept, filtered=filtered, pinned=pinned,
        reason=reason, pin=pin.prefix if pin is not None else None, controls=ctl, tag=tag,
        budget=budget,
    )


def tag_variant(table: DecisionTable, tags: list[str], key: str,
                cell: Cell) -> tuple[str | None, Cell]:
    """The (tag, cell) a tagged request routes by: the variant of the earliest tag rule
    covering ``key``, or (None, ``cell``) when no tag of the request has one."""
    best = None
    best_tag: str | None = None
    for t in tags:
        variants = table.tag_cells.get(t)
        v = variants.get(key) if variants is not None else None
        if v is not None and (best is None or v.rank < best.rank):
            best, best_tag = v, t
    return (best_tag, best.cell) if best is not None else (None, cell)


@dataclass(slots=True)
class BudgetStep:
    """What the latency budget step saw and did, kept as numbers: the request path
    only compares them, and the explanation (:meth:`to_dict`, for ``explain-route``,
    ``/v1/route`` and traces) is built when someone asks for it."""

    budget_ms: int
    out_tokens: int
    #: the kept candidates' model keys and expected ms (unrounded), in chain order
    models: list[str]
    expected: list[float]
    live: bool
    fixed: bool
    #: the position (in ``models``) of the candidate that goes first; None: no move
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        figures = {m: round(ms, 1) for m, ms in zip(self.models, self.expected, strict=True)}
        first_model = self.models[0]
        first = figures[first_model]
        budget_ms = self.budget_ms
        i = self.index
        if i is not None:
            name = self.models[i]
            moved: str | None = name
            note = (f"{first_model} expected {first:.0f}ms > {budget_ms}ms: {name} "
                    f"({figures[name]:.0f}ms) goes first")
        else:
            moved = None
            note = (f"{first_model} keeps the budget ({first:.0f}ms <= {budget_ms}ms)"
                    if first <= budget_ms else
                    "over budget, but the client fixed the order (pin/sort/order)"
                    if self.fixed else
                    f"{first_model} breaks the budget; no candidate keeps it")
        return {
            "budget_ms": budget_ms, "out_tokens": self.out_tokens, "expected_ms": figures,
            "source": "live" if self.live else "catalog",
            "moved": moved, "index": i, "note": note,
        }


def _budget(kept: list[Candidate], cell: Cell, table: DecisionTable,
            latency: Callable[[str, int], float | None] | None, *, fixed: bool,
            ) -> BudgetStep:
    """The latency budget step: expected ms per candidate and which one (if any) moves
    first (``BudgetStep.index``).  Compared at the precision the explanation shows
    (0.1 ms), so what it says is what was decided."""
    budget_ms = cell.policy.latency_budget_ms or 0
    out_tokens = _OUT_TOKENS.get(cell.complexity or "medium", 400)
    models = [c.model for c in kept]
    expected: list[float] = []
    for key in models:  # expected ms: live figures, else the catalog's speed hints
        ms = latency(key, out_tokens) if latency is not None else None
        if ms is None:
            sp = table.models[key].speed
            ms = sp.ttft_ms + out_tokens / max(sp.tokens_per_s, 1e-6) * 1000.0
        expected.append(ms)
    step = BudgetStep(budget_ms, out_tokens, models, expected, latency is not None, fixed)
    if fixed or round(expected[0], 1) <= budget_ms:
        return step
    # the first candidate (in chain order, escalation excluded) that keeps the budget;
    # when none does, the compiled order stands: its score already weighed latency
    for i in range(1, len(kept)):
        if kept[i].role != "escalation" and round(expected[i], 1) <= budget_ms:
            step.index = i
            break
    return step


def _reason(key: str, kept: list[Candidate], filtered: list[tuple[Candidate, str]],
            pinned: str | None, pin: Pin | None) -> str:
    if kept:
        first = kept[0]
        how = "pinned" if pinned else f"pin {pin.prefix}" if pin else f"cell {key}"
        where = "local" if first.local else "cloud"
        text = f"{how}: {where} {first.role} {first.model}"
    elif filtered:
        text = f"cell {key}: no candidate ({filtered[0][1]})" if not pinned else filtered[0][1]
    elif pin is not None:
        text = f"pin {pin.prefix}: no matching candidate in cell {key}"
    else:
        text = f"cell {key}: no candidate (empty chain)"
    # Header-safe: printable ASCII only, bounded.
    # (ASCII and printable is exactly " ".."~": the common case skips the per-char pass)
    if text.isascii() and text.isprintable():
        return text[:200]
    safe = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return safe[:200]
