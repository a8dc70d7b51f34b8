"""Static checks over the flattened table and the rules/budgets that produced it.

Table invariants (:func:`check_cells`, usable on any table):

* E001 a public cell with no candidate (W012 instead for image cells when no enabled
  model has vision at all; W011 for private cells with no local model);
* E002 a cloud candidate in a private cell - the privacy invariant;
* E003 a candidate lacking a capability its cell needs (vision in image cells,
  embeddings in the embeddings cells; embedding models never serve chat).

Config checks: W005 shadowed rules (:func:`check_rules`), E006 contradictory
budgets (:func:`check_budgets`).  E004 and W007 come from ``resolve``.

Tag variants (:func:`check_tag_cells`) get the same invariants (E002 above all: a
tag rule saying ``locality: cloud`` never puts a cloud model in a private cell),
positioned at the tag rule.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from interlock.compiler.diagnostics import Diagnostic
from interlock.compiler.flatten import Flat, matches
from interlock.compiler.load import Loaded
from interlock.compiler.model import Budgets, PriceSpec
from interlock.compiler.resolve import Resolved, ResolvedRule, Where
from interlock.compiler.score import quality_of
from interlock.runtime.signals import (
    CAPABILITY_BITS,
    COMPLEXITIES,
    MODALITIES,
    SENSITIVITIES,
    TASKS,
    cell_key,
)
from interlock.runtime.table import Cell, ModelEntry

_VISION = CAPABILITY_BITS["vision"]
_EMBED = CAPABILITY_BITS["embeddings"]


def _cells_text(keys: list[str], what: str) -> str:
    if len(keys) == 1:
        return keys[0]
    shown = ", ".join(keys[:3]) + (", …" if len(keys) > 3 else "")
    return f"{len(keys)} {what} ({shown})"


def _exclusion_hint(cell: Cell) -> str:
    if not cell.excluded:
        return "no enabled model: enable a provider under providers: or install a local model"
    counts = Counter(e.reason.split(" (")[0] for e in cell.excluded)
    top = "; ".join(f"{n} × {reason}" for reason, n in sorted(counts.items(),
                                                              key=lambda x: (-x[1], x[0]))[:3])
    return f"every model was excluded: {top}"


def check_cells(
    cells: Mapping[str, Cell],
    embeddings: Mapping[str, Cell],
    models: Mapping[str, ModelEntry],
    *,
    doc: Loaded | None = None,
    flat: Flat | None = None,
) -> list[Diagnostic]:
    """E001/W011/W012/E002/E003 over the flat cells (positions from ``flat`` when given)."""
    diags: list[Diagnostic] = []
    origins = flat.origins if flat else {}
    rules = flat.cell_rules if flat else {}
    any_vision = any(m.caps & _VISION for m in models.values() if not m.embedding)

    def at(code: str, message: str, where: Where | None, hint: str = "") -> Diagnostic:
        if where is not None:
            return where.diag(code, message, hint=hint)
        if doc is not None:
            return doc.diag(code, message, ("providers",) if _has(doc, "providers") else (),
                            hint=hint, key=True)
        return Diagnostic(code, "warning" if code.startswith("W") else "error", message,
                          hint=hint)

    if not any(not m.embedding for m in models.values()):
        # one error, not one per cell: nothing at all can answer a chat request
        return [at("E001", "no candidate for any cell: no chat model is enabled", None,
                   "enable a provider under providers:, or install a local model (e.g. "
                   "`ollama pull qwen3:8b`) and list it under providers.ollama.models")]
    private_empty: list[str] = []
    image_empty: list[str] = []
    missing: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for key, cell in cells.items():
        rule = rules.get(key)
        if not cell.chain:
            if cell.modality == "image" and not any_vision:
                image_empty.append(key)
            elif cell.sensitivity == "private":
                private_empty.append(key)
            else:
                diags.append(at("E001", f"no candidate for {key}",
                                rule.where if rule else None, _exclusion_hint(cell)))
        for c in cell.chain:
            local = c.local and models.get(c.model, None) is not None and \
                models[c.model].locality == "local"
            if cell.sensitivity == "private" and not local:
                diags.append(at("E002", f"cloud model '{c.model}' in private cell {key}",
                                origins.get((key, c.model)),
                                "private cells may hold local models only"))
            if cell.modality == "image" and not c.caps & _VISION:
                missing[(c.model, "vision", key.split(".")[0])].append(key)
            if c.caps & _EMBED and models.get(c.model) and models[c.model].embedding:
                missing[(c.model, "chat", key.split(".")[0])].append(key)
    for sens, cell in embeddings.items():
        for c in cell.chain:
            if sens == "private" and not c.local:
                diags.append(at("E002", f"cloud model '{c.model}' in private cell {cell.key}",
                                None, "private cells may hold local models only"))
            if not c.caps & _EMBED:
                missing[(c.model, "embeddings", "embeddings")].append(cell.key)
    for (model, cap, _task), keys in sorted(missing.items()):
        where = next((origins[(k, model)] for k in keys if (k, model) in origins), None)
        what = (f"'{model}' is an embedding model and cannot serve" if cap == "chat"
                else f"'{model}' lacks {cap}, needed by")
        diags.append(at("E003", f"{what} {_cells_text(keys, 'cells')}", where,
                        "use a model with this capability here (`router catalog list "
                        f"--capability {cap}`)" if cap != "chat" else "use a chat model"))
    if image_empty:
        diags.append(at("W012", "no enabled model has vision: image requests will be refused",
                        None, "enable a provider with a vision model, or install one locally "
                        "(e.g. gemma3)"))
    if private_empty:
        every = len(private_empty) == sum(1 for c in cells.values() if c.sensitivity == "private")
        every = every or (not any_vision and len(private_empty) == sum(
            1 for c in cells.values() if c.sensitivity == "private" and c.modality == "text"))
        where_text = ("every private cell" if every and len(private_empty) > 1
                      else _cells_text(private_empty, "private cells"))
        diags.append(at("W011", f"private requests in {where_text} will be refused: "
                        "no local model", None,
                        "install a local model (e.g. `ollama pull qwen3:8b`) and list it under "
                        "providers.ollama.models, or let discovery find it"))
    return diags


def _has(doc: Loaded, key: str) -> bool:
    return isinstance(doc.data, dict) and key in doc.data


def _rule_cells(rule: ResolvedRule) -> set[str]:
    # A tag rule covers (tag, cell) pairs: it neither shadows nor is shadowed by a
    # tag-less rule, only by an earlier rule on the same tags.
    tags: tuple[str | None, ...] = (None,) if rule.match.tags is None else tuple(
        rule.match.tags)
    return {f"{cell_key(t, c, s, m)}#{tag or ''}" for tag in tags for t in TASKS
            for c in COMPLEXITIES for s in SENSITIVITIES for m in MODALITIES
            if matches(rule, t, c, s, m, tag)}


def check_rules(rules: Iterable[ResolvedRule]) -> list[Diagnostic]:
    """W005: a rule none of whose cells reaches it (earlier rules take them all)."""
    diags: list[Diagnostic] = []
    earlier: list[tuple[ResolvedRule, set[str]]] = []
    for rule in rules:
        cells = _rule_cells(rule)
        if not cells:
            diags.append(rule.where.diag(
                "W005", f"rule '{rule.name}' can never match: its match is empty",
                hint="an empty list matches nothing; leave the key out to match everything"))
        else:
            covering = [r.name for r, rc in earlier if rc & cells]
            taken = set().union(*(rc for _, rc in earlier)) if earlier else set()
            if cells <= taken:
                names = ", ".join(f"'{n}'" for n in covering)
                diags.append(rule.where.diag(
                    "W005", f"rule '{rule.name}' can never match: earlier rule"
                    f"{'s' if len(covering) > 1 else ''} {names} "
                    f"{'cover' if len(covering) > 1 else 'covers'} every cell it matches",
                    hint="the first matching rule wins; move this rule up or narrow the "
                         "earlier one"))
        earlier.append((rule, cells))
    return diags


def check_tag_cells(flat: Flat, models: Mapping[str, ModelEntry]) -> list[Diagnostic]:
    """E001/E002/E003/W011 over the tag variants, positioned at the tag rule."""
    diags: list[Diagnostic] = []
    # (rule name, code, tag) → cell keys, so one rule yields one diagnostic per problem
    found: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    where: dict[str, ResolvedRule] = {}
    for tag, variants in flat.tag_cells.items():
        for key, v in variants.items():
            rule, cell = flat.tag_rules[(tag, key)], v.cell
            where[rule.name] = rule
            if not cell.chain and flat.cells[key].chain:
                code = "W011" if cell.sensitivity == "private" else "E001"
                found[(rule.name, code, tag, "")].append(key)
            for c in cell.chain:
                m = models.get(c.model)
                if cell.sensitivity == "private" and not (
                        c.local and m is not None and m.locality == "local"):
                    found[(rule.name, "E002", tag, c.model)].append(key)
                if cell.modality == "image" and not c.caps & _VISION:
                    found[(rule.name, "E003", tag, c.model)].append(key)
    for (name, code, tag, model), keys in sorted(found.items()):
        rule, cells = where[name], _cells_text(sorted(keys), "cells")
        if code == "W011":
            diags.append(rule.where.diag(
                "W011", f"rule '{name}': private requests tagged '{tag}' in {cells} will be "
                "refused: the rule admits no local model",
                hint="add `sensitivity: [public]` to the rule's match, or allow local models"))
        elif code == "E001":
            diags.append(rule.where.diag(
                "E001", f"rule '{name}': no candidate for {cells} when tagged '{tag}'",
                hint=_exclusion_hint(flat.tag_cells[tag][sorted(keys)[0]].cell)))
        elif code == "E002":
            diags.append(rule.where.diag(
                "E002", f"rule '{name}': cloud model '{model}' in private cell {cells} "
                f"(tag '{tag}')", hint="private cells may hold local models only"))
        else:
            diags.append(rule.where.diag(
                "E003", f"rule '{name}': '{model}' lacks vision, needed by {cells} "
                f"(tag '{tag}')", hint="use a model with vision here"))
    return diags


def _fits(m: ModelEntry, cap: PriceSpec) -> bool:
    return m.price.input <= cap.input and m.price.output <= cap.output


def _conflict(models: list[ModelEntry], cap: PriceSpec, min_q: float) -> bool:
    """True when some model is cheap enough, some good enough, but none both."""
    best_q = {m.key: max(quality_of(m, t) for t in TASKS) for m in models}
    cheap = [m for m in models if _fits(m, cap)]
    good = [m for m in models if best_q[m.key] >= min_q]
    return bool(cheap) and bool(good) and not any(best_q[m.key] >= min_q for m in cheap)


def check_budgets(r: Resolved) -> list[Diagnostic]:
    """E006: latency budgets shrinking with complexity; max_price + min_quality unmet."""
    diags: list[Diagnostic] = []
    doc = r.profile_doc
    b: Budgets = r.profile.budgets
    given = [(c, b.latency_ms[c]) for c in COMPLEXITIES if c in b.latency_ms]
    for (lo, lo_ms), (hi, hi_ms) in zip(given, given[1:], strict=False):
        if hi_ms < lo_ms:
            diags.append(doc.diag(
                "E006", f"latency budget for {hi} ({hi_ms} ms) is below {lo} ({lo_ms} ms)",
                ("budgets", "latency_ms", hi),
                hint="harder requests take longer: budgets should grow with complexity"))
    chat = [m for m in r.models.values() if not m.embedding]
    if b.max_price is not None:
        for c in COMPLEXITIES:
            q = float(getattr(b.min_quality, c))
            if q > 0 and _conflict(chat, b.max_price, q):
                diags.append(doc.diag(
                    "E006", f"no enabled model costs at most {b.max_price.input:g}/"
                    f"{b.max_price.output:g} USD/Mtok and reaches quality {q:g}",
                    ("budgets", "min_quality", c),
                    hint="raise budgets.max_price or lower budgets.min_quality"))
    for rule in r.rules:
        cap = rule.max_price or b.max_price
        if rule.min_quality is None or cap is None:
            continue
        pool = [m for m in chat if rule.locality in ("any", m.locality)]
        if _conflict(pool, cap, rule.min_quality):
            diags.append(rule.where.diag(
                "E006", f"rule '{rule.name}': no enabled model costs at most {cap.input:g}/"
                f"{cap.output:g} USD/Mtok and reaches quality {rule.min_quality:g}",
                "min_quality", hint="raise max_price or lower min_quality"))
    return diags


def check_all(r: Resolved, flat: Flat) -> list[Diagnostic]:
    """Every static check of a compiled configuration."""
    return [
        *check_cells(flat.cells, flat.embeddings, r.models, doc=r.config_doc, flat=flat),
        *check_tag_cells(flat, r.models),
        *check_rules(r.rules),
        *check_budgets(r),
    ]
