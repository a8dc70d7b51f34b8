"""Golden properties of each built-in profile (properties, not snapshots).

Every profile is compiled with the default config (Ollama with a few installed
models, plus every cloud provider whose key is set - here all of them)."""

from __future__ import annotations

from functools import cache

import pytest
from interlock.compiler import builtin
from interlock.compiler.api import compile_config, emit_table
from interlock.compiler.model import CatalogFile
from interlock.compiler.schema import parse
from interlock.compiler.score import expected_ms
from interlock.runtime.signals import CAPABILITY_BITS
from interlock.runtime.table import Cell, DecisionTable, parse_table

INSTALLED = ["qwen3:8b", "qwen2.5-coder:7b", "gemma3:12b", "llama3.2", "nomic-embed-text"]
PROFILES = ["balanced", "cost", "latency", "privacy-first", "quality"]


def all_keys() -> dict[str, str]:
    env = {}
    for doc in builtin.catalog_files():
        cat, _ = parse("catalog", doc, CatalogFile)
        assert cat is not None
        for spec in cat.providers.values():
            if spec.api_key_env:
                env[spec.api_key_env] = "test-key"
    return env


@cache
def table(profile: str) -> DecisionTable:
    result = compile_config(None, profile=profile, environ=all_keys(),
                            discovered={"ollama": INSTALLED})
    assert result.table is not None, [d.format() for d in result.diagnostics]
    assert not result.errors
    return result.table


def public_text(t: DecisionTable, complexity: str) -> list[Cell]:
    return [c for c in t.cells.values()
            if c.sensitivity == "public" and c.modality == "text" and c.complexity == complexity]


def test_every_builtin_profile_is_tested() -> None:
    assert sorted(builtin.profile_names()) == sorted(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_invariants_hold_for_every_profile(profile: str) -> None:
    t = table(profile)
    assert t.profile == profile
    assert parse_table(emit_table(t)) == t
    assert len(t.cells) == 84
    for key, cell in t.cells.items():
        assert cell.chain, key  # both local and cloud models exist: nothing is empty
        if cell.sensitivity == "private":
            assert all(c.local for c in cell.chain), key
            assert cell.chain[0].role == "primary"
        if cell.modality == "image":
            assert all(c.caps & CAPABILITY_BITS["vision"] for c in cell.chain), key
        assert sum(c.role == "escalation" for c in cell.chain) <= 1
    assert all(c.local for c in t.embeddings["private"].chain)
    assert t.embeddings["private"].chain


def test_balanced_local_for_easy_cloud_for_hard() -> None:
    t = table("balanced")
    assert t.cells["general.low.public.text"].chain[0].local
    for cell in public_text(t, "high"):
        assert not cell.chain[0].local, cell.key
    # a local primary gets a stronger escalation candidate
    easy = t.cells["general.low.public.text"]
    assert easy.chain[-1].role == "escalation" and not easy.chain[-1].local


def test_cost_prefers_local_and_cheap() -> None:
    t = table("cost")
    for task in ("general", "code", "reasoning", "creative"):
        assert t.cells[f"{task}.low.public.text"].chain[0].local, task
    for cell in t.cells.values():
        assert cell.policy.strategy == "price"
        if cell.rules:
            continue
        plain = [c for c in cell.chain if c.role != "escalation"]
        prices = [(3 * t.models[c.model].price.input + t.models[c.model].price.output) / 4
                  for c in plain]
        assert prices == sorted(prices), cell.key
        assert all(t.models[c.model].price.input <= 3.0 for c in cell.chain)


def test_quality_puts_cloud_first_above_low() -> None:
    t = table("quality")
    for complexity in ("medium", "high"):
        for cell in public_text(t, complexity):
            assert not cell.chain[0].local, cell.key
    for cell in t.cells.values():
        assert cell.policy.verify_stream == "buffer"
    code = t.cells["code.high.public.text"]
    assert code.rules == ("top-code",)
    assert code.chain[0].terms.preference > 0


def test_latency_orders_by_expected_time() -> None:
    t = table("latency")
    checked = 0
    for cell in t.cells.values():
        if cell.rules:
            continue
        assert cell.policy.strategy == "latency"
        plain = [c for c in cell.chain if c.role == "fallback"]
        times = [expected_ms(t.models[c.model], cell.complexity) for c in plain]
        assert times == sorted(times), cell.key
        checked += 1
    assert checked > 20
    for cell in public_text(t, "medium"):
        assert not cell.chain[0].local, cell.key  # local.max_complexity: low


def test_privacy_first_keeps_code_private_and_excludes_training_providers() -> None:
    t = table("privacy-first")
    assert "code" in t.classifier.private_when
    banned = {"deepseek", "gemini", "openrouter", "together"}
    for cell in t.cells.values():
        assert not {c.provider for c in cell.chain} & banned, cell.key
    for key in ("code.low.private.text", "code.high.private.text"):
        assert t.cells[key].chain[0].model.startswith("ollama/qwen2.5-coder")
    assert t.cells["general.low.public.text"].chain[0].local
