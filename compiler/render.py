"""Text rendering for the CLI: the sandboxed template environment and plain tables.

Every template the CLI renders (``router init``'s starter config, the
explain-route report) goes through :func:`template_env`, a
``SandboxedEnvironment``: values from configs, prompts and catalogs are data in
the context, never template source, and the sandbox stops a template from
reaching into Python objects it was not given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from interlock.compiler.diagnostics import Diagnostic
from interlock.compiler.model import CatalogFile, Profile
from interlock.runtime.signals import caps_names
from interlock.runtime.table import DecisionTable
from jinja2.sandbox import SandboxedEnvironment

if TYPE_CHECKING:
    from interlock.compiler.cases import CaseResult
    from interlock.compiler.doctor import DoctorReport


def template_env() -> SandboxedEnvironment:
    """The one jinja2 environment: sandboxed, strict about undefined names, text output."""
    env = SandboxedEnvironment(
        loader=jinja2.PackageLoader("interlock.compiler", "templates"),
        autoescape=False,  # plain text and YAML, never HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["price"] = fmt_price
    env.filters["tokens"] = fmt_tokens
    env.filters["caps"] = lambda mask: ",".join(caps_names(int(mask)))
    env.filters["num"] = fmt_num
    env.filters["signed"] = fmt_signed
    env.globals["table"] = format_table
    return env


def render_template(name: str, **context: Any) -> str:
    """Render ``compiler/templates/<name>`` with ``context``."""
    return template_env().get_template(name).render(**context)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
                 right: Sequence[int] = (), indent: int = 0) -> str:
    """Aligned columns separated by two spaces; ``right`` lists right-aligned columns."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    pad = " " * indent
    lines = []
    for row in cells:
        parts = [
            v.rjust(widths[i]) if i in right else v.ljust(widths[i])
            for i, v in enumerate(row)
        ]
        lines.append(pad + "  ".join(parts).rstrip())
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return fmt_num(value)
    return str(value)


def fmt_num(value: float, digits: int = 4) -> str:
    """A score-like number with fixed decimals (``0.4120``)."""
    return f"{value:.{digits}f}"


def fmt_signed(value: float, digits: int = 4) -> str:
    return f"{value:+.{digits}f}"


def fmt_price(value: float) -> str:
    """USD per million tokens: ``0``, ``0.15``, ``2.50``, ``15``."""
    if value == 0:
        return "0"
    if value >= 10:
        return f"{value:g}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value < 0.1 else f"{value:.2f}"


def fmt_tokens(n: int) -> str:
    """A context size the way people say it: ``8k``, ``128k``, ``1M``."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.2g}M".replace(".0M", "M")
    if n >= 1024:
        k = n / 1024 if n % 1024 == 0 else n / 1000
        return f"{round(k)}k"
    return str(n)


def bullet(lines: Iterable[str], *, mark: str = "-", indent: int = 2) -> str:
    pad = " " * indent
    return "\n".join(f"{pad}{mark} {line}" for line in lines)


# --------------------------------------------------------------------------- validate / compile


def validation_json(name: str, ok: bool, diagnostics: Sequence[Diagnostic],
                    table: DecisionTable | None) -> dict[str, Any]:
    errors = sum(d.is_error for d in diagnostics)
    return {
        "config": name,
        "valid": ok,
        "errors": errors,
        "warnings": len(diagnostics) - errors,
        "diagnostics": [d.to_json() for d in diagnostics],
        "table": None if table is None else {
            "hash": table.hash, "profile": table.profile, "cells": len(table.cells),
            "models": len(table.models),
        },
    }


def validation_text(name: str, ok: bool, diagnostics: Sequence[Diagnostic],
                    table: DecisionTable | None) -> str:
    lines = [d.format(with_hint=True) for d in diagnostics]
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    counts = f"{errors} error(s), {warnings} warning(s)"
    if ok and table is not None:
        lines.append(f"{name}: valid ({counts}); profile {table.profile}, "
                     f"{len(table.models)} models, {len(table.cells)} cells")
    else:
        lines.append(f"{name}: invalid ({counts})")
    return "\n".join(lines)


def compile_summary(output: Path, table: DecisionTable) -> str:
    local = sum(1 for m in table.models.values() if m.locality == "local")
    refused = sum(1 for c in table.cells.values() if not c.chain)
    text = (f"wrote {output}  {table.hash[:19]}…\n"
            f"  profile {table.profile}: {len(table.providers)} providers, "
            f"{len(table.models)} models ({local} local), {len(table.cells)} cells")
    if refused:
        text += f", {refused} with no candidate (requests there are refused)"
    return text


# --------------------------------------------------------------------------- profiles / catalog


def profile_row(p: Profile) -> dict[str, Any]:
    o = p.objectives
    total = (o.quality + o.cost + o.latency) or 1.0
    local = (f"+{p.local.bonus:g} up to {p.local.max_complexity}" if p.local.prefer else "no")
    return {
        "name": p.name,
        "weights": f"{o.quality / total:.2f}/{o.cost / total:.2f}/{o.latency / total:.2f}",
        "local": local,
        "private_when": ",".join(p.privacy.private_when),
        "description": " ".join(p.description.split()),
    }


def first_sentence(text: str) -> str:
    head, sep, _ = text.partition(". ")
    return head + "." if sep else text


def profile_summary(p: Profile) -> str:
    r = profile_row(p)
    esc = p.escalation
    lines = [
        f"{p.name}: {r['description']}",
        f"  objectives     quality/cost/latency {r['weights']} (normalised)",
        f"  local          prefer {r['local']}",
        f"  private when   {r['private_when'] or 'only when flagged'}",
        f"  escalation     {'on' if esc.enabled else 'off'}; verifiers "
        f"{','.join(esc.verifiers) or 'none'}; stream {esc.verify_stream}",
        f"  chain          strategy {p.chain.strategy}, up to {p.chain.max_candidates}",
        f"  discovery      ollama {'on' if p.discovery.ollama else 'off'}",
    ]
    if p.budgets.latency_ms:
        lines.append("  latency budget " + ", ".join(
            f"{k} {v} ms" for k, v in p.budgets.latency_ms.items()))
    if p.rules:
        lines.append("  rules          " + ", ".join(r.name for r in p.rules))
    if p.pins:
        lines.append("  pins           " + ", ".join(pin.prefix for pin in p.pins))
    return "\n".join(lines)


def catalog_rows(cat: CatalogFile, *, providers: set[str], caps: set[str]
                 ) -> list[dict[str, Any]]:
    rows = []
    for m in cat.models:
        if providers and m.provider not in providers:
            continue
        if caps and not caps <= set(m.capabilities):
            continue
        spec = cat.providers.get(m.provider)
        rows.append({
            "key": f"{m.provider}/{m.id}",
            "provider": m.provider,
            "locality": spec.locality if spec else "?",
            "context": m.context_window,
            "price_in": m.price.input,
            "price_out": m.price.output,
            "capabilities": list(m.capabilities),
            "quality": m.quality.general,
        })
    return rows


def catalog_text(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "no model matches"
    body = format_table(
        ["key", "provider", "locality", "context", "$in", "$out", "capabilities"],
        [[r["key"], r["provider"], r["locality"], fmt_tokens(r["context"]),
          fmt_price(r["price_in"]), fmt_price(r["price_out"]), ",".join(r["capabilities"])]
         for r in rows],
        right=[3, 4, 5],
    )
    return body + f"\n{len(rows)} models; prices in USD per million tokens"


# --------------------------------------------------------------------------- models


def model_rows(table: DecisionTable) -> list[dict[str, Any]]:
    names: dict[str, list[str]] = {}
    for name, key in table.model_index.items():
        if name != key:
            names.setdefault(key, []).append(name)
    primary_in = {k: 0 for k in table.models}
    for cell in table.cells.values():
        for c in cell.chain:
            if c.role == "primary" and c.model in primary_in:
                primary_in[c.model] += 1
    return [
        {
            "key": key, "provider": m.provider, "locality": m.locality,
            "context": m.context_window, "price_in": m.price.input, "price_out": m.price.output,
            "capabilities": caps_names(m.caps), "embedding": m.embedding,
            "primary_cells": primary_in[key], "aliases": sorted(names.get(key, [])),
        }
        for key, m in sorted(table.models.items())
    ]


def models_text(rows: Sequence[dict[str, Any]], table: DecisionTable) -> str:
    if not rows:
        return "no routable model: enable a provider or install a local model"
    body = format_table(
        ["model", "locality", "context", "$in", "$out", "primary in", "capabilities"],
        [[r["key"], r["locality"], fmt_tokens(r["context"]), fmt_price(r["price_in"]),
          fmt_price(r["price_out"]),
          "embeddings" if r["embedding"] else f"{r['primary_cells']} cells",
          ",".join(r["capabilities"])] for r in rows],
        right=[2, 3, 4, 5],
    )
    return (body + f"\n{len(rows)} models; profile {table.profile}; "
            "clients may also send `auto` (route) or a `local/` prefix")


# --------------------------------------------------------------------------- test / doctor


def case_results_text(path: str, table: DecisionTable, results: Sequence[CaseResult], *,
                      quiet: bool = False) -> str:
    lines = [f"{path}  (profile {table.profile}, table {table.hash[:19]}…)"]
    for r in results:
        if r.passed and quiet:
            continue
        o = r.outcome
        where = "refused" if o.refused else f"{o.model}"
        mark = "PASS" if r.passed else "FAIL"
        lines.append(f"  {mark}  {r.case.name}  → {o.cell} {where}")
        lines.extend(f"          {f}" for f in r.failures)
    return "\n".join(lines)


_MARK = {"ok": "ok   ", "warn": "warn ", "error": "ERROR"}


def doctor_text(report: DoctorReport) -> str:
    lines = []
    for c in report.checks:
        keys = ", ".join(f"{env} {'set' if ok else 'unset'}" for env, ok in c.keys)
        lines.append(f"{_MARK[c.status]} {c.name:<11} {c.locality:<5} {c.url}  {c.detail}"
                     + (f"  [{keys}]" if keys else ""))
        if c.missing_models:
            lines.append(f"      missing models: {', '.join(c.missing_models)}")
    lines.append(f"status: {report.status}")
    if report.next_steps:
        lines.append("next:")
        lines.extend(f"  - {s}" for s in report.next_steps)
    return "\n".join(lines)
