"""Flatten: one ordered chain per cell of the signal space (84 chat cells + embeddings).

Per cell: find the first matching rule (router.yaml's, then the profile's), admit
the models the cell allows (image → vision; private → local only; the rule's
locality and excludes; max_price; min_quality, except that a private cell keeps
its local models), order them by score or by the strategy, keep
``chain.max_candidates`` (a local model above ``local.max_complexity`` is never
primary in a public cell), then append one escalation candidate when the primary
is local.  ``overrides.<task>`` replace the chain of every cell of the task, minus
cloud models in private cells.  Every model left out is listed with its reason.

Rules with ``match.tags`` never shape a base cell: for every tag they name, each
cell they match gets a *tag variant* - the same cell built with the first such
rule (in rule order) instead of the tag-less one.  The runtime swaps the variant
in when the request carries the tag (one dict look-up per tag; see decide.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from interlock.compiler.diagnostics import dotted
from interlock.compiler.resolve import Resolved, ResolvedRule, Where
from interlock.compiler.score import (
    Weights,
    blended_price,
    cell_weights,
    complexity_rank,
    expected_ms,
    quality_of,
    terms_for,
)
from interlock.runtime.signals import (
    CAPABILITY_BITS,
    COMPLEXITIES,
    MODALITIES,
    SENSITIVITIES,
    TASKS,
    Complexity,
    Modality,
    Role,
    Sensitivity,
    Task,
    cell_key,
)
from interlock.runtime.table import (
    Candidate,
    Cell,
    Excluded,
    ModelEntry,
    Policy,
    Price,
    Strategy,
    TagVariant,
    Terms,
)

_VISION = CAPABILITY_BITS["vision"]
_STRATEGY_WORD = {"score": "highest score", "weighted": "weighted share",
                  "price": "cheapest", "latency": "fastest", "throughput": "highest throughput"}


@dataclass
class Flat:
    """The flattened cells plus what check.py needs to position its diagnostics."""

    cells: dict[str, Cell]
    embeddings: dict[str, Cell]
    #: (cell key, model key) → the override node that put the model there
    origins: dict[tuple[str, str], Where] = field(default_factory=dict)
    #: cell key → the rule that shaped it
    cell_rules: dict[str, ResolvedRule] = field(default_factory=dict)
    #: tag → cell key → the cell as the first rule on that tag shapes it
    tag_cells: dict[str, dict[str, TagVariant]] = field(default_factory=dict)
    #: (tag, cell key) → the tag rule behind that variant
    tag_rules: dict[tuple[str, str], ResolvedRule] = field(default_factory=dict)


def _fmt(x: float) -> str:
    return f"{x:g}"


def matches(rule: ResolvedRule, task: str, complexity: str, sensitivity: str,
            modality: str, tag: str | None = None) -> bool:
    """Does ``rule`` cover the cell - for a request without tags (``tag`` None: tag rules
    never do) or for the tag variant of ``tag`` (only rules naming the tag do)?"""
    m = rule.match
    if (m.tags is None) != (tag is None) or (tag is not None and tag not in (m.tags or ())):
        return False
    return all(allowed is None or value in allowed for allowed, value in (
        (m.task, task), (m.complexity, complexity), (m.sensitivity, sensitivity),
        (m.modality, modality)))


class _Flattener:
    def __init__(self, r: Resolved) -> None:
        self.r = r
        self.p = r.profile
        self.chat = {k: m for k, m in sorted(r.models.items()) if not m.embedding}
        self.flat = Flat(cells={}, embeddings={})

    def run(self) -> Flat:
        for t in TASKS:
            for c in COMPLEXITIES:
                for s in SENSITIVITIES:
                    for mo in MODALITIES:
                        self.flat.cells[cell_key(t, c, s, mo)] = self.cell(t, c, s, mo)
        self.tag_variants()
        for s in SENSITIVITIES:
            self.flat.embeddings[s] = self.embeddings(s)
        return self.flat

    # -- one chat cell --------------------------------------------------------

    def tag_variants(self) -> None:
        tags = sorted({t for r in self.r.rules for t in (r.match.tags or ())})
        for tag in tags:
            variants: dict[str, TagVariant] = {}
            for t in TASKS:
                for c in COMPLEXITIES:
                    for s in SENSITIVITIES:
                        for mo in MODALITIES:
                            found = next(((i, r) for i, r in enumerate(self.r.rules)
                                          if matches(r, t, c, s, mo, tag)), None)
                            if found is None:
                                continue
                            rank, rule = found
                            key = cell_key(t, c, s, mo)
                            variants[key] = TagVariant(rule=rule.name, rank=rank,
                                                       cell=self.cell(t, c, s, mo, rule))
                            self.flat.tag_rules[(tag, key)] = rule
            if variants:
                self.flat.tag_cells[tag] = variants

    def cell(self, task: Task, cx: Complexity, sens: Sensitivity, mod: Modality,
             tag_rule: ResolvedRule | None = None) -> Cell:
        key = cell_key(task, cx, sens, mod)
        rule = tag_rule or next((r for r in self.r.rules if matches(r, task, cx, sens, mod)),
                                None)
        policy = self.policy(cx, sens, rule)
        weights = cell_weights(self.p.objectives, cx)
        prefer = {k: i for i, k in enumerate(rule.prefer)} if rule else {}
        scored = {k: terms_for(m, task, cx, weights, self.p.local, prefer.get(k))
                  for k, m in self.chat.items()}
        admitted: list[str] = []
        notes: dict[str, str] = {}
        excluded: dict[str, str] = {}
        below: dict[str, float] = {}
        for k, m in self.chat.items():
            why = self.refuse(m, sens, mod, rule, policy)
            if why is not None:
                excluded[k] = why
            elif quality_of(m, task) < policy.min_quality:
                below[k] = quality_of(m, task)
            else:
                admitted.append(k)
        floor = _fmt(policy.min_quality)
        # min_quality is a floor while something reaches it; a private cell keeps its
        # local models regardless (a private request has nowhere else to go), and a
        # public cell nothing reaches keeps what it has rather than refusing everything.
        keep = sens == "private" or not admitted
        why_kept = ("a private request has nowhere else to go" if sens == "private"
                    else "no model in this cell reaches it")
        for k, q in below.items():
            if keep:
                admitted.append(k)
                notes[k] = f"kept below min_quality {floor} (quality {_fmt(q)}): {why_kept}"
            else:
                excluded[k] = f"quality {_fmt(q)} for {task} below min_quality {floor}"
        order = sorted(admitted, key=self.sort_key(policy.strategy, cx, scored, prefer))
        chain = self.chain(order, scored, task, cx, sens, policy, prefer, notes, rule)
        in_chain = {c.model for c in chain}
        for rank, k in enumerate(order, start=1):
            if k not in in_chain:
                excluded[k] = (f"ranked {rank} of {len(order)}; chain.max_candidates is "
                               f"{self.p.chain.max_candidates}")
        rules: tuple[str, ...] = (rule.name,) if rule else ()
        if rule and tag_rule is None:
            self.flat.cell_rules[key] = rule
        ov = self.r.overrides.get(task)
        if ov and ov.entries:
            chain, excluded, note = self.apply_override(key, chain, excluded, sens, task, cx,
                                                        weights, policy)
            rules += (note,)
        policy = policy.model_copy(
            update={"escalate": any(c.role == "escalation" for c in chain)})
        return Cell(
            key=key, task=task, complexity=cx, sensitivity=sens, modality=mod, policy=policy,
            chain=tuple(chain), rules=rules,
            excluded=tuple(Excluded(model=k, reason=v) for k, v in sorted(excluded.items())),
        )

    def policy(self, cx: Complexity, sens: Sensitivity, rule: ResolvedRule | None) -> Policy:
        b = self.p.budgets
        price = rule.max_price if rule and rule.max_price else b.max_price
        min_q = rule.min_quality if rule and rule.min_quality is not None else getattr(
            b.min_quality, cx)
        verifiers = rule.verifiers if rule and rule.verifiers is not None else tuple(
            self.p.escalation.verifiers)
        return Policy(
            allow_cloud=sens == "public" and not (rule and rule.locality == "local"),
            strategy=(rule.strategy if rule and rule.strategy else self.p.chain.strategy),
            verifiers=tuple(verifiers), verify_stream=self.p.escalation.verify_stream,
            escalate=False,
            latency_budget_ms=(rule.latency_budget_ms if rule and rule.latency_budget_ms
                               else b.latency_ms.get(cx)),
            max_price=Price(input=price.input, output=price.output) if price else None,
            min_quality=float(min_q),
            only_from_local=self.p.escalation.only_from_local,
            confidence_threshold=(self.p.escalation.confidence_threshold
                                  if "confidence" in verifiers else None),
        )

    def refuse(self, m: ModelEntry, sens: str, mod: str, rule: ResolvedRule | None,
               policy: Policy) -> str | None:
        """Why ``m`` may not be in the cell (None: admitted; min_quality is separate)."""
        if sens == "private" and m.locality != "local":
            return "cloud model in a private cell"
        if mod == "image" and not m.caps & _VISION:
            return "no vision"
        if rule and rule.locality != "any" and m.locality != rule.locality:
            return f"rule '{rule.name}' allows {rule.locality} models only"
        if rule and m.key in rule.exclude:
            return f"excluded by rule '{rule.name}'"
        cap = policy.max_price
        if cap and (m.price.input > cap.input or m.price.output > cap.output):
            return (f"price {_fmt(m.price.input)}/{_fmt(m.price.output)} above max_price "
                    f"{_fmt(cap.input)}/{_fmt(cap.output)} USD/Mtok")
        return None

    def sort_key(self, strategy: Strategy, cx: Complexity | None,
                 scored: dict[str, tuple[float, Terms]],
                 prefer: dict[str, int]) -> Callable[[str], tuple[int, int, float, float, str]]:
        models = self.r.models

        def key(k: str) -> tuple[int, int, float, float, str]:
            m, score = models[k], scored[k][0]
            first = (0, prefer[k]) if k in prefer else (1, 0)
            by = {"price": blended_price(m), "latency": expected_ms(m, cx),
                  "throughput": -m.speed.tokens_per_s}.get(strategy, -score)
            return (*first, by, -score, k)

        return key

    def chain(self, order: list[str], scored: dict[str, tuple[float, Terms]], task: str,
              cx: Complexity, sens: str, policy: Policy, prefer: dict[str, int],
              notes: dict[str, str], rule: ResolvedRule | None) -> list[Candidate]:
        max_rank = complexity_rank(self.p.local.max_complexity)
        models = self.r.models

        def blocked(k: str) -> bool:
            return (sens == "public" and models[k].locality == "local"
                    and complexity_rank(cx) > max_rank)

        pool = [k for k in order if not blocked(k)] or order
        n_primary = self.p.chain.weighted_top if policy.strategy == "weighted" else 1
        limit = self.p.chain.max_candidates
        primaries = pool[: min(n_primary, limit)]
        rest = [k for k in order if k not in primaries][: limit - len(primaries)]
        out: list[Candidate] = []
        for k in primaries:
            if k in prefer and rule:
                why = f"preferred by rule '{rule.name}'"
            else:
                why = _STRATEGY_WORD[policy.strategy]
            if blocked(k):
                why += (f"; above local.max_complexity {self.p.local.max_complexity} but "
                        "nothing else admits this cell")
            weight = scored[k][0] if policy.strategy == "weighted" else 1.0
            out.append(self.candidate(k, "primary", scored[k], why, notes, weight))
        for i, k in enumerate(rest, start=2):
            why = f"fallback {i - len(primaries)}"
            if blocked(k):
                why += f" (local above local.max_complexity {self.p.local.max_complexity})"
            out.append(self.candidate(k, "fallback", scored[k], why, notes))
        esc = self.escalation(out, order, scored, task)
        if esc:
            out.append(esc)
        return out

    def candidate(self, k: str, role: Role, scored: tuple[float, Terms], why: str,
                  notes: dict[str, str], weight: float = 1.0) -> Candidate:
        m = self.r.models[k]
        if k in notes:
            why += "; " + notes[k]
        return Candidate(model=k, provider=m.provider, role=role, local=m.locality == "local",
                         caps=m.caps, score=scored[0], terms=scored[1], weight=weight,
                         reason=why)

    def escalation(self, chain: list[Candidate], allowed: list[str],
                   scored: dict[str, tuple[float, Terms]], task: str) -> Candidate | None:
        esc = self.p.escalation
        if not esc.enabled or not chain:
            return None
        primary = self.r.models[chain[0].model]
        if primary.locality != "local" and esc.only_from_local:
            return None
        pq = quality_of(primary, task)
        taken = {c.model for c in chain}
        better = [k for k in allowed
                  if k not in taken and quality_of(self.r.models[k], task) > pq]
        if not better:
            return None
        best = min(better, key=lambda k: (-quality_of(self.r.models[k], task),
                                          -scored[k][0], k))
        q = quality_of(self.r.models[best], task)
        return self.candidate(best, "escalation", scored[best],
                              f"escalation: quality {_fmt(q)} > primary's {_fmt(pq)}", {})

    # -- overrides --------------------------------------------------------------

    def apply_override(self, key: str, computed: list[Candidate], excluded: dict[str, str],
                       sens: Sensitivity, task: Task, cx: Complexity, weights: Weights,
                       policy: Policy) -> tuple[list[Candidate], dict[str, str], str]:
        ov = self.r.overrides[task]
        label = f"overrides.{task}"
        entries = list(ov.entries)
        if not any(role == "primary" for _, role, _ in entries) and computed:
            top = computed[0]
            entries.insert(0, (top.model, "primary", ()))
        chain: list[Candidate] = []
        dropped: dict[str, str] = {}
        for k, role, path in entries:
            m = self.r.models[k]
            if sens == "private" and m.locality != "local":
                dropped[k] = f"{label}: cloud model in a private cell"
                continue
            if any(c.model == k for c in chain):
                continue
            scored = terms_for(m, task, cx, weights, self.p.local)
            why = dotted(path) if path else "computed primary"
            chain.append(self.candidate(k, role, scored, why, {}))
            if path:
                self.flat.origins[(key, k)] = Where(ov.where.doc, path)
        if not chain:
            excluded.update(dropped)
            return computed, excluded, f"{label} (no local model: computed chain kept)"
        if not any(c.role == "primary" for c in chain):
            # the override's primary cannot serve this cell (cloud in a private cell)
            first = chain[0]
            chain[0] = first.model_copy(update={
                "role": "primary", "reason": first.reason + " (promoted: the primary is cloud)"})
        taken = {c.model for c in chain}
        scores = {k: terms_for(self.r.models[k], task, cx, weights, self.p.local)
                  for k in self.chat}
        # admissible here: not filtered out (models cut only by max_candidates count)
        allowed = [k for k in self.chat
                   if k in taken or excluded.get(k, "ranked ").startswith("ranked ")]
        allowed = [k for k in allowed if sens == "public" or self.chat[k].locality == "local"]
        esc = self.escalation(chain, allowed, scores, task)
        if esc:
            chain.append(esc)
        out = {k: f"not in {label}" for k in self.chat if k not in {c.model for c in chain}}
        out.update({k: v for k, v in excluded.items() if k not in taken})
        out.update(dropped)
        return chain, out, label

    # -- embeddings -------------------------------------------------------------

    def embeddings(self, sens: Sensitivity) -> Cell:
        weights = cell_weights(self.p.objectives, None)
        emb = {k: m for k, m in sorted(self.r.models.items()) if m.embedding}
        excluded = {k: "cloud model in a private cell" for k, m in emb.items()
                    if sens == "private" and m.locality != "local"}
        scored = {k: terms_for(m, "general", None, weights, self.p.local)
                  for k, m in emb.items() if k not in excluded}
        order = sorted(scored, key=lambda k: (-scored[k][0], k))
        limit = self.p.chain.max_candidates
        for rank, k in enumerate(order[limit:], start=limit + 1):
            excluded[k] = f"ranked {rank} of {len(order)}; chain.max_candidates is {limit}"
        chain = [self.candidate(k, "primary" if i == 0 else "fallback", scored[k],
                                "highest score" if i == 0 else f"fallback {i}", {})
                 for i, k in enumerate(order[:limit])]
        policy = Policy(allow_cloud=sens == "public", strategy="score")
        return Cell(key=f"embeddings.{sens}", task="embeddings", complexity=None,
                    sensitivity=sens, modality="text", policy=policy, chain=tuple(chain),
                    excluded=tuple(Excluded(model=k, reason=v)
                                   for k, v in sorted(excluded.items())))


def flatten(resolved: Resolved) -> Flat:
    """Every cell's chain, policy and exclusions."""
    return _Flattener(resolved).run()
