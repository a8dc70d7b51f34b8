"""What routing changes between two decision tables, cell by cell (like a plan).

``render_text`` prints::

    ~ code.high.public.text: openai/gpt-4.1 [primary], ... → anthropic/claude-... [primary], ...
    ~ code.high.public.text policy.latency_budget_ms: 30000 → 120000
    + model groq/llama-3.3-70b-versatile
    - provider together
    hash sha256:1f… → sha256:9c…
    Plan: 12 cells change routing, 1 policy change, +1/-0 models, +0/-1 providers.

Tag variants (``table.tag_cells``) are diffed as cells keyed ``CELL#TAG``.
Only what a reviewer needs: chains (order and roles) and policies.  Score drifts
that do not reorder a chain are not routing changes and are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interlock.runtime.table import Cell, DecisionTable


@dataclass(frozen=True)
class ChainChange:
    cell: str
    old: tuple[str, ...]
    new: tuple[str, ...]


@dataclass(frozen=True)
class PolicyChange:
    cell: str
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class TableDiff:
    old_hash: str
    new_hash: str
    old_profile: str
    new_profile: str
    chains: list[ChainChange] = field(default_factory=list)
    policies: list[PolicyChange] = field(default_factory=list)
    cells_added: list[str] = field(default_factory=list)
    cells_removed: list[str] = field(default_factory=list)
    models_added: list[str] = field(default_factory=list)
    models_removed: list[str] = field(default_factory=list)
    providers_added: list[str] = field(default_factory=list)
    providers_removed: list[str] = field(default_factory=list)
    providers_changed: list[str] = field(default_factory=list)
    #: other top-level sections that differ (classifier, server, pins, model_index, ...)
    sections_changed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.old_hash != self.new_hash

    @property
    def routing_changed(self) -> bool:
        return bool(self.chains or self.policies or self.cells_added or self.cells_removed)


def chain_of(cell: Cell) -> tuple[str, ...]:
    """``("openai/gpt-4.1 [primary]", "ollama/qwen3:8b [fallback]", ...)``."""
    return tuple(f"{c.model} [{c.role}]" for c in cell.chain)


def _all_cells(table: DecisionTable) -> dict[str, Cell]:
    cells = dict(table.cells)
    cells.update({cell.key: cell for cell in table.embeddings.values()})
    # tag variants diff like cells of their own: "chat.low.public.text#legal"
    cells.update({f"{key}#{tag}": v.cell for tag, variants in table.tag_cells.items()
                  for key, v in variants.items()})
    return cells


def diff_tables(old: DecisionTable, new: DecisionTable) -> TableDiff:
    """Every routing-relevant difference from ``old`` to ``new``."""
    a, b = _all_cells(old), _all_cells(new)
    chains: list[ChainChange] = []
    policies: list[PolicyChange] = []
    for key in sorted(set(a) & set(b)):
        ca, cb = chain_of(a[key]), chain_of(b[key])
        if ca != cb:
            chains.append(ChainChange(key, ca, cb))
        pa = a[key].policy.model_dump(mode="json")
        pb = b[key].policy.model_dump(mode="json")
        for name in sorted(set(pa) | set(pb)):
            if pa.get(name) != pb.get(name):
                policies.append(PolicyChange(key, name, pa.get(name), pb.get(name)))
    changed_providers = sorted(
        name for name in set(old.providers) & set(new.providers)
        if old.providers[name] != new.providers[name]
    )
    sections = [
        name for name in ("classifier", "server", "pins", "model_index", "weights", "aliases")
        if getattr(old, name) != getattr(new, name)
    ]
    return TableDiff(
        old_hash=old.hash, new_hash=new.hash, old_profile=old.profile, new_profile=new.profile,
        chains=chains, policies=policies,
        cells_added=sorted(set(b) - set(a)), cells_removed=sorted(set(a) - set(b)),
        models_added=sorted(set(new.models) - set(old.models)),
        models_removed=sorted(set(old.models) - set(new.models)),
        providers_added=sorted(set(new.providers) - set(old.providers)),
        providers_removed=sorted(set(old.providers) - set(new.providers)),
        providers_changed=changed_providers,
        sections_changed=sections,
    )


def _chain_text(chain: tuple[str, ...]) -> str:
    return ", ".join(chain) if chain else "(empty)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_text(diff: TableDiff) -> str:
    """The plan-like text form (ends with a summary line)."""
    if not diff.changed:
        return f"No changes: the tables are identical ({diff.new_hash}).\n"
    lines: list[str] = []
    if diff.old_profile != diff.new_profile:
        lines.append(f"~ profile: {diff.old_profile} → {diff.new_profile}")
    for key in diff.cells_added:
        lines.append(f"+ cell {key}")
    for key in diff.cells_removed:
        lines.append(f"- cell {key}")
    for ch in diff.chains:
        lines.append(f"~ {ch.cell}: {_chain_text(ch.old)} → {_chain_text(ch.new)}")
    for pc in diff.policies:
        lines.append(f"~ {pc.cell} policy.{pc.field}: {pc.old!r} → {pc.new!r}")
    lines += [f"+ model {m}" for m in diff.models_added]
    lines += [f"- model {m}" for m in diff.models_removed]
    lines += [f"+ provider {p}" for p in diff.providers_added]
    lines += [f"- provider {p}" for p in diff.providers_removed]
    lines += [f"~ provider {p}" for p in diff.providers_changed]
    lines += [f"~ {s}" for s in diff.sections_changed]
    lines.append(f"hash {diff.old_hash} → {diff.new_hash}")
    lines.append(
        f"Plan: {_plural(len(diff.chains), 'cell')} change routing, "
        f"{_plural(len(diff.policies), 'policy change')}, "
        f"+{len(diff.models_added)}/-{len(diff.models_removed)} models, "
        f"+{len(diff.providers_added)}/-{len(diff.providers_removed)} providers."
    )
    return "\n".join(lines) + "\n"


def to_json(diff: TableDiff) -> dict[str, Any]:
    """The machine form (``router diff --format json``)."""
    return {
        "changed": diff.changed,
        "routing_changed": diff.routing_changed,
        "hash": {"old": diff.old_hash, "new": diff.new_hash},
        "profile": {"old": diff.old_profile, "new": diff.new_profile},
        "chains": [{"cell": c.cell, "old": list(c.old), "new": list(c.new)}
                   for c in diff.chains],
        "policies": [{"cell": p.cell, "field": p.field, "old": p.old, "new": p.new}
                     for p in diff.policies],
        "cells": {"added": diff.cells_added, "removed": diff.cells_removed},
        "models": {"added": diff.models_added, "removed": diff.models_removed},
        "providers": {"added": diff.providers_added, "removed": diff.providers_removed,
                      "changed": diff.providers_changed},
        "sections_changed": diff.sections_changed,
    }
