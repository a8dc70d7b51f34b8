"""The compiler's shared semantics, end to end on the fixture config:
which models a table holds, scoring, chains, rules, overrides, emission."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from interlock.compiler.api import (
    compile_config,
    compile_text,
    default_config,
    emit_table,
    write_lock,
)
from interlock.compiler.schema import validate_data
from interlock.runtime.signals import CAPABILITY_BITS, all_cell_keys
from interlock.runtime.table import DecisionTable, load_table, parse_table
from unit.test_compile_fixture import ENV, PROFILE, ROUTER, change, compile_fixture, only


def table_of(tmp_path: Path, **kw: str) -> DecisionTable:
    result = compile_fixture(tmp_path, **kw)
    assert result.table is not None, [d.format() for d in result.diagnostics]
    return result.table


def chain(table: DecisionTable, key: str) -> list[tuple[str, str]]:
    return [(c.model, c.role) for c in table.cells[key].chain]


# --------------------------------------------------------------------------- emission


def test_deterministic_bytes_across_runs_and_directories(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = emit_table(table_of(tmp_path / "a"))
    assert emit_table(table_of(tmp_path / "a")) == a
    assert emit_table(table_of(tmp_path / "b")) == a
    assert a.endswith(b"\n")


def test_table_roundtrip_hash_and_schema(tmp_path: Path) -> None:
    table = table_of(tmp_path)
    raw = emit_table(table)
    assert parse_table(raw) == table
    assert table.hash == table.content_hash()
    assert validate_data("decision-table", table.model_dump(mode="json")) == []
    write_lock(table, tmp_path / "router.lock.json")
    assert load_table(tmp_path / "router.lock.json") == table
    assert sorted(table.cells) == sorted(all_cell_keys())
    assert set(table.embeddings) == {"public", "private"}


def test_sources_name_inputs_with_their_sha256(tmp_path: Path) -> None:
    import hashlib

    table = table_of(tmp_path)
    sources = {s.path: s.sha256 for s in table.sources}
    assert sources["router.yaml"] == hashlib.sha256((tmp_path / "router.yaml").read_bytes()
                                                    ).hexdigest()
    assert {"extra.yaml", "profile.yaml", "pkg:catalog/models.yaml"} <= set(sources)


def test_change_in_input_changes_hash(tmp_path: Path) -> None:
    a = table_of(tmp_path)
    b = table_of(tmp_path, profile=change(PROFILE, "max_candidates: 3", "max_candidates: 2"))
    assert a.hash != b.hash


# --------------------------------------------------------------------------- which models


def test_models_are_the_enabled_ones(tmp_path: Path) -> None:
    table = table_of(tmp_path)
    assert sorted(table.models) == ["acme/fast", "acme/luxe", "acme/smart", "homelab/embed",
                                    "homelab/eye", "homelab/small"]
    assert sorted(table.providers) == ["acme", "homelab"]
    assert table.models["homelab/small"].locality == "local"
    assert table.models["acme/fast"].caps & CAPABILITY_BITS["vision"]
    # missing tasks fall back to general
    assert table.models["acme/fast"].quality["code"] == 70


def test_cloud_provider_models_subset_and_unknown(tmp_path: Path) -> None:
    router = change(ROUTER, "  acme: {}", "  acme: {models: [fast, smart]}")
    assert "acme/luxe" not in table_of(tmp_path, router=router).models
    result = compile_fixture(tmp_path, router=change(ROUTER, "  acme: {}",
                                                     "  acme: {models: [fats]}"))
    messages = [d.message for d in only(result, "E004")]
    assert "unknown model 'fats' for provider 'acme' (did you mean 'fast'?)" in messages
    # the override naming acme/fast now names a model the table does not hold
    assert ("model 'acme/fast' is not available: it is not among the models of provider "
            "'acme' here") in messages


def test_discovery_ollama_latest_and_synthesized() -> None:
    text = "providers:\n  ollama: {}\n"
    found = {"ollama": ["qwen3:8b", "my-own-model:latest", "nomic-embed-text:latest"]}
    table = compile_text(text, environ={}, discovered=found).table
    assert table is not None
    assert "ollama/qwen3:8b" in table.models
    synth = table.models["ollama/my-own-model:latest"]
    assert (synth.context_window, synth.quality["general"], synth.price.input) == (8192, 45, 0)
    assert synth.caps == CAPABILITY_BITS["streaming"] | CAPABILITY_BITS["json"]
    assert table.model_index["my-own-model"] == "ollama/my-own-model:latest"
    embed = [k for k, m in table.models.items() if m.embedding]
    assert len(embed) == 1 and embed[0].startswith("ollama/nomic-embed-text")
    assert table.embeddings["private"].chain[0].model == embed[0]


def test_discovery_off_in_profile_ignores_discovered(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("name: p\nobjectives: {quality: 1, cost: 1, latency: 1}\n"
                                     "discovery: {ollama: false}\n")
    text = "profile: p.yaml\nproviders:\n  ollama: {models: [qwen3:8b]}\n"
    table = compile_text(text, base_dir=tmp_path, environ={},
                         discovered={"ollama": ["gemma3:4b"]}).table
    assert table is not None
    assert sorted(table.models) == ["ollama/qwen3:8b"]


def test_default_config_enables_ollama_and_keyed_clouds() -> None:
    cfg = default_config({"OPENAI_API_KEY": "x", "GROQ_API_KEY": ""})
    assert sorted(cfg.providers) == ["ollama", "openai"]
    result = compile_config(None, environ={"OPENAI_API_KEY": "x"},
                            discovered={"ollama": ["qwen3:8b"]})
    assert result.table is not None
    assert {m.provider for m in result.table.models.values()} == {"ollama", "openai"}
    assert not [d for d in result.diagnostics if d.code == "W007"]


def test_base_url_env_overrides(tmp_path: Path) -> None:
    text = "providers:\n  ollama: {models: [qwen3:8b]}\n"
    table = compile_text(text, environ={"OLLAMA_HOST": "10.0.0.5:11434"}).table
    assert table is not None
    assert table.providers["ollama"].base_url == "http://10.0.0.5:11434"
    table = compile_text(text, environ={}).table
    assert table is not None
    assert table.providers["ollama"].base_url.startswith("http://127.0.0.1")


def test_model_index_keys_ids_and_ambiguity(tmp_path: Path) -> None:
    catalog = (tmp_path / "extra.yaml")
    table = table_of(tmp_path)
    assert table.model_index["small"] == "homelab/small"
    assert table.model_index["acme/fast"] == "acme/fast"
    # a bare id two providers share maps to neither
    text = catalog.read_text().replace("id: eye,", "id: fast,")
    router = change(change(ROUTER, "[small, eye, embed]", "[small, fast, embed]"),
                    "homelab/eye", "homelab/fast")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "extra.yaml").write_text(text)
    (tmp_path / "x" / "profile.yaml").write_text(PROFILE)
    (tmp_path / "x" / "router.yaml").write_text(router)
    table = compile_config(tmp_path / "x" / "router.yaml", environ=ENV).table
    assert table is not None
    assert "fast" not in table.model_index
    assert table.model_index["homelab/fast"] == "homelab/fast"


# --------------------------------------------------------------------------- scoring


def expected_score(quality: float, price_in: float, price_out: float, ttft: float, tps: float,
                   complexity: str, local: bool) -> float:
    """The brief's formula, written out independently."""
    wq, wc, wl = 0.5, 0.3, 0.2
    wq *= {"low": 0.6, "medium": 1.0, "high": 1.5}[complexity]
    total = wq + wc + wl
    wq, wc, wl = wq / total, wc / total, wl / total
    p = (3 * price_in + price_out) / 4
    cost = min(1.0, max(0.0, 1 - math.log10(1 + p) / math.log10(101)))
    t = ttft + {"low": 150, "medium": 400, "high": 1000}[complexity] / tps * 1000
    bonus = 0.1 if local and complexity != "high" else 0.0
    return round(wq * quality / 100 + wc * cost + wl / (1 + t / 2000) + bonus, 4)


@pytest.mark.parametrize("key", ["general.low.public.text", "creative.medium.public.text",
                                 "translate.high.public.text"])
def test_scores_follow_the_formula(tmp_path: Path, key: str) -> None:
    table = table_of(tmp_path)
    facts = {"homelab/small": (50, 0, 0, 200, 40, True), "acme/fast": (70, 0.1, 0.4, 300, 150,
                                                                      False),
             "acme/smart": (90, 3, 15, 900, 60, False), "homelab/eye": (45, 0, 0, 400, 20, True)}
    complexity = key.split(".")[1]
    for cand in table.cells[key].chain:
        q, pi, po, ttft, tps, local = facts[cand.model]
        assert cand.score == expected_score(q, pi, po, ttft, tps, complexity, local), cand.model
        t = cand.terms
        assert abs(t.quality + t.cost + t.latency + t.locality + t.preference - cand.score) < 3e-4


def test_chain_sorted_by_score_and_capped(tmp_path: Path) -> None:
    table = table_of(tmp_path)
    for key, cell in table.cells.items():
        plain = [c for c in cell.chain if c.role != "escalation"]
        assert len(plain) <= 3, key
        if not cell.rules:
            scores = [c.score for c in plain]
            if not any(c.model.startswith("homelab") for c in plain) or "public" not in key:
                assert scores == sorted(scores, reverse=True), key


# --------------------------------------------------------------------------- cells


def test_privacy_and_vision_admission(tmp_path: Path) -> None:
    table = table_of(tmp_path)
    for key, cell in table.cells.items():
        if cell.sensitivity == "private":
            assert not cell.policy.allow_cloud
            assert all(c.local for c in cell.chain), key
            assert {e.model for e in cell.excluded if e.reason.endswith(
                "cloud model in a private cell")} >= {"acme/smart", "acme/luxe"}
        if cell.modality == "image":
            assert all(c.caps & CAPABILITY_BITS["vision"] for c in cell.chain), key
        assert all(not table.models[c.model].embedding for c in cell.chain)
    assert [c.model for c in table.embeddings["private"].chain] == ["homelab/embed"]


def test_every_left_out_model_has_a_reason(tmp_path: Path) -> None:
    table = table_of(tmp_path)
    chat = {k for k, m in table.models.items() if not m.embedding}
    for key, cell in table.cells.items():
        listed = {c.model for c in cell.chain} | {e.model for e in cell.excluded}
        assert listed == chat, key
        assert all(e.reason for e in cell.excluded)


def test_max_price_and_min_quality_filters(tmp_path: Path) -> None:
    table = table_of(tmp_path)
    cell = table.cells["general.high.public.text"]
    reasons = {e.model: e.reason for e in cell.excluded}
    assert reasons["acme/luxe"] == "price 15/75 above max_price 5/20 USD/Mtok"
    assert reasons["homelab/small"] == "quality 50 for general below min_quality 60"
    private = table.cells["general.high.private.text"]
    assert [c.model for c in private.chain] == ["homelab/small", "homelab/eye"]
    assert "kept below min_quality 60" in private.chain[0].reason


def test_local_not_primary_above_max_complexity(tmp_path: Path) -> None:
    profile = change(PROFILE, "high: 60}", "high: 0}")
    table = table_of(tmp_path, profile=profile)
    for key, cell in table.cells.items():
        if cell.complexity == "high" and cell.sensitivity == "public" and cell.chain:
            assert not cell.chain[0].local, key
    assert table.cells["general.high.private.text"].chain[0].local


def test_escalation_appended_after_local_primary(tmp_path: Path) -> None:
    profile = change(PROFILE, "objectives: {quality: 0.5, cost: 0.3, latency: 0.2}",
                     "objectives: {quality: 0.1, cost: 0.8, latency: 0.1}")
    table = table_of(tmp_path, profile=profile)
    cell = table.cells["general.low.public.text"]
    assert cell.chain[0].local
    assert cell.chain[-1].role == "escalation"
    assert cell.chain[-1].model == "acme/smart"  # the best quality within max_price
    assert cell.policy.escalate
    no_esc = table_of(tmp_path, profile=profile + "escalation: {enabled: false}\n")
    assert all(c.role != "escalation" for c in no_esc.cells["general.low.public.text"].chain)


@pytest.mark.parametrize(("strategy", "first"), [("price", "homelab/small"),
                                                 ("latency", "acme/fast"),
                                                 ("throughput", "acme/fast")])
def test_strategies_order_chains(tmp_path: Path, strategy: str, first: str) -> None:
    profile = change(PROFILE, "strategy: score", f"strategy: {strategy}")
    table = table_of(tmp_path, profile=profile)
    cell = table.cells["general.medium.public.text"]
    assert cell.policy.strategy == strategy
    assert cell.chain[0].model == first


def test_weighted_strategy_has_weighted_primaries(tmp_path: Path) -> None:
    profile = change(PROFILE, "strategy: score", "strategy: weighted, weighted_top: 2")
    table = table_of(tmp_path, profile=profile)
    cell = table.cells["general.medium.public.text"]
    primaries = [c for c in cell.chain if c.role == "primary"]
    assert len(primaries) == 2
    assert [c.weight for c in primaries] == [c.score for c in primaries]


def test_rule_prefer_forces_first_and_records_rule(tmp_path: Path) -> None:
    router = change(ROUTER, "overrides:\n  code:\n    primary: acme/smart\n"
                    "    fallbacks: [homelab/eye, acme/fast]\n", "")
    table = table_of(tmp_path, router=router)
    cell = table.cells["code.high.public.text"]
    assert cell.chain[0].model == "acme/smart"
    assert cell.chain[0].terms.preference == 1.0
    assert cell.rules == ("code-smart",)
    assert table.cells["summarize.low.public.text"].rules == ("summaries",)


def test_rule_locality_and_policy_fields(tmp_path: Path) -> None:
    router = ROUTER + ("  - name: local-translate\n    match: {task: [translate]}\n"
                       "    locality: local\n    latency_budget_ms: 1234\n"
                       "    verifiers: [empty]\n")
    table = table_of(tmp_path, router=router)
    cell = table.cells["translate.low.public.text"]
    assert all(c.local for c in cell.chain)
    assert not cell.policy.allow_cloud
    assert cell.policy.latency_budget_ms == 1234
    assert cell.policy.verifiers == ("empty",)
    assert table.cells["general.medium.public.text"].policy.latency_budget_ms == 20000


def test_override_replaces_chain_and_drops_cloud_in_private(tmp_path: Path) -> None:
    table = table_of(tmp_path)
    assert chain(table, "code.low.public.text") == [
        ("acme/smart", "primary"), ("homelab/eye", "fallback"), ("acme/fast", "fallback")]
    private = chain(table, "code.low.private.text")
    assert private[0] == ("homelab/eye", "primary")
    assert all(m.startswith("homelab/") for m, _ in private)
    assert "overrides.code" in table.cells["code.low.public.text"].rules


def test_classifier_server_and_pins(tmp_path: Path) -> None:
    router = ROUTER + ("private_when: [pii, tag:internal]\ntags:\n  - name: internal\n"
                       "    keywords: [confidential]\n    private: true\n"
                       "server: {deadline_ms: 1000, max_attempts: 2}\n")
    table = table_of(tmp_path, router=router)
    assert table.classifier.private_when == ("pii", "tag:internal")
    assert table.classifier.tags[0].keywords == ("confidential",)
    assert (table.server.deadline_ms, table.server.max_attempts) == (1000, 2)
    assert [p.prefix for p in table.pins] == ["local/"]
    assert table.profile == "test"
    assert table.weights == {"quality": 0.5, "cost": 0.3, "latency": 0.2}


def test_unknown_tag_and_bad_regex(tmp_path: Path) -> None:
    router = ROUTER + ("private_when: [tag:internl]\ntags:\n  - name: internal\n"
                       "    patterns: ['(unclosed']\n")
    result = compile_fixture(tmp_path, router=router)
    assert result.table is None
    assert only(result, "E004")[0].message == "unknown tag 'internl' (did you mean 'internal'?)"
    assert only(result, "E101")[0].path == "tags[0].patterns[0]"


def test_compile_text_reports_yaml_errors() -> None:
    result = compile_text("providers: [\n", environ={})
    assert result.table is None
    [d] = result.diagnostics
    assert (d.code, d.file, d.line) == ("E100", "router.yaml", 2)


def test_schema_errors_are_collected_together(tmp_path: Path) -> None:
    router = change(change(ROUTER, "  acme: {}", "  acme: {enabled: 3, weird: 1}"),
                    "profile: profile.yaml", "profile: profile.yaml\nprofle: x")
    result = compile_fixture(tmp_path, router=router)
    assert result.table is None
    messages = sorted(d.message for d in result.diagnostics if d.code == "E101")
    assert messages == ["expected true or false, got number 3",
                        "unknown key 'profle' (did you mean 'profile'?)",
                        "unknown key 'weird' (did you mean 'wire'?)"]
