"""diff_tables / render_text / to_json: what routing changes between two tables."""

from __future__ import annotations

from pathlib import Path

from interlock.compiler.diff import diff_tables, render_text, to_json
from interlock.runtime.table import DecisionTable
from unit.test_compile_fixture import PROFILE, ROUTER, change, compile_fixture


def compiled(tmp_path: Path, name: str, **kw: str) -> DecisionTable:
    (tmp_path / name).mkdir()
    result = compile_fixture(tmp_path / name, **kw)
    assert result.table is not None, [d.format() for d in result.diagnostics]
    return result.table


def test_identical_tables_have_no_changes(tmp_path: Path) -> None:
    a, b = compiled(tmp_path, "a"), compiled(tmp_path, "b")
    d = diff_tables(a, b)
    assert not d.changed and not d.routing_changed
    assert d.chains == [] and d.policies == []
    assert render_text(d) == f"No changes: the tables are identical ({a.hash}).\n"
    assert to_json(d)["changed"] is False


def test_chain_changes_cell_by_cell(tmp_path: Path) -> None:
    old = compiled(tmp_path, "old")
    # drop the code override: code cells go back to the scored chains
    new = compiled(tmp_path, "new", router=change(
        ROUTER, "overrides:\n  code:\n    primary: acme/smart\n"
        "    fallbacks: [homelab/eye, acme/fast]\n", ""))
    d = diff_tables(old, new)
    assert d.changed and d.routing_changed
    changed = {c.cell: c for c in d.chains}
    # exactly the cells whose chains differ are listed
    expected = {k for k in old.cells
                if [(c.model, c.role) for c in old.cells[k].chain]
                != [(c.model, c.role) for c in new.cells[k].chain]}
    assert set(changed) == expected
    assert all(k.startswith("code.") for k in expected)
    c = changed["code.low.public.text"]
    assert c.old == ("acme/smart [primary]", "homelab/eye [fallback]", "acme/fast [fallback]")
    assert c.new == tuple(f"{x.model} [{x.role}]" for x in new.cells["code.low.public.text"].chain)
    text = render_text(d)
    assert (f"~ code.low.public.text: {', '.join(c.old)} → {', '.join(c.new)}") in text
    assert text.splitlines()[-2] == f"hash {old.hash} → {new.hash}"
    assert text.splitlines()[-1].startswith(f"Plan: {len(expected)} cells change routing, ")


def test_policy_models_and_providers(tmp_path: Path) -> None:
    old = compiled(tmp_path, "old")
    new = compiled(
        tmp_path, "new",
        profile=change(PROFILE, "latency_ms: {low: 5000,", "latency_ms: {low: 4000,"),
        router=change(ROUTER, "  acme: {}", "  acme: {models: [fast, smart]}"),
    )
    d = diff_tables(old, new)
    assert d.models_removed == ["acme/luxe"]
    assert d.models_added == [] and d.providers_added == [] and d.providers_removed == []
    budget = [p for p in d.policies if p.field == "latency_budget_ms"]
    assert {p.cell.split(".")[1] for p in budget} == {"low"}
    assert all((p.old, p.new) == (5000, 4000) for p in budget)
    text = render_text(d)
    assert "- model acme/luxe" in text
    assert "~ general.low.public.text policy.latency_budget_ms: 5000 → 4000" in text
    data = to_json(d)
    assert data["models"] == {"added": [], "removed": ["acme/luxe"]}
    assert {"cell": "general.low.public.text", "field": "latency_budget_ms", "old": 5000,
            "new": 4000} in data["policies"]
    assert data["hash"] == {"old": old.hash, "new": new.hash}


def test_provider_added_and_sections(tmp_path: Path) -> None:
    old = compiled(tmp_path, "old")
    new = compiled(tmp_path, "new", router=ROUTER + "server: {deadline_ms: 1000}\n"
                   "private_when: [pii]\n")
    d = diff_tables(old, new)
    assert d.sections_changed == ["classifier", "server"]
    assert not d.routing_changed
    assert "~ server" in render_text(d)
    router = (change(ROUTER, "  acme: {}", "  acme: {enabled: false}")
              .replace("primary: acme/smart", "primary: homelab/eye")
              .replace("[homelab/eye, acme/fast]", "[]"))
    none = compiled(tmp_path, "none", router=router)
    d2 = diff_tables(old, none)
    assert d2.providers_removed == ["acme"]
    assert "- provider acme" in render_text(d2)
    assert diff_tables(none, old).providers_added == ["acme"]
