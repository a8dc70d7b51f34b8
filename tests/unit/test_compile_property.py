"""Property: for any generated configuration, compilation is deterministic and the
privacy invariant holds (no private cell ever holds a cloud candidate).

Configs vary provider enablement, custom providers of random locality with
random models, discovered Ollama models, objectives, strategies, rules and
overrides.  JSON is YAML, so documents are written with json.dumps.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock.compiler.api import compile_config, emit_table
from interlock.runtime.signals import CAPABILITY_BITS, COMPLEXITIES, MODALITIES, TASKS
from interlock.runtime.table import parse_table

CAPS = ["tools", "vision", "json", "streaming", "embeddings"]
DISCOVERABLE = ["qwen3:8b", "gemma3:12b", "llama3.2", "nomic-embed-text", "homebrew:3b"]


@st.composite
def configs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    providers: dict[str, Any] = {}
    models: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 3))):
        name = f"custom{i}"
        providers[name] = {
            "wire": "openai", "base_url": f"http://10.0.0.{i}/v1",
            "locality": draw(st.sampled_from(["local", "cloud"])),
            "enabled": i == 0 or draw(st.booleans()),
        }
        for j in range(draw(st.integers(1, 3))):
            price = draw(st.sampled_from([0, 0.1, 1, 5, 20]))
            models.append({
                "id": f"m{j}", "provider": name, "context_window": 8192, "max_output": 1024,
                "price": {"input": price, "output": price * 4},
                # the first model of a provider always chats (no embeddings)
                "capabilities": draw(st.lists(st.sampled_from(CAPS[:4] if j == 0 else CAPS),
                                              unique=True, max_size=3)),
                "quality": {"general": draw(st.integers(20, 95))},
                "speed": {"ttft_ms": draw(st.integers(50, 3000)),
                          "tokens_per_s": draw(st.integers(5, 300))},
            })
    discovered: dict[str, list[str]] = {}
    if draw(st.booleans()):
        providers["ollama"] = {}
        discovered["ollama"] = draw(st.lists(st.sampled_from(DISCOVERABLE), unique=True))
    if draw(st.booleans()):
        providers["openai"] = {"models": draw(st.lists(
            st.sampled_from(["gpt-4.1", "gpt-4.1-mini", "gpt-4o-mini"]), unique=True,
            min_size=1))}
    names = sorted({f"{m['provider']}/{m['id']}" for m in models
                    if providers[m["provider"]]["enabled"]})
    picks = st.sampled_from(names) if names else st.nothing()
    rules = []
    for k in range(draw(st.integers(0, 3))):
        match = {key: draw(st.lists(st.sampled_from(values), unique=True, min_size=1,
                                    max_size=2))
                 for key, values in (("task", TASKS), ("complexity", COMPLEXITIES),
                                     ("sensitivity", ["public", "private"]),
                                     ("modality", MODALITIES))
                 if draw(st.booleans())}
        rule: dict[str, Any] = {"name": f"r{k}", "match": match,
                                "locality": draw(st.sampled_from(["any", "local", "cloud"]))}
        if names:
            rule["prefer"] = draw(st.lists(picks, unique=True, max_size=2))
        if draw(st.booleans()):
            rule["strategy"] = draw(st.sampled_from(["score", "price", "latency", "throughput",
                                                     "weighted"]))
        rules.append(rule)
    router: dict[str, Any] = {"profile": "profile.yaml", "providers": providers,
                              "models": models, "rules": rules}
    if names and draw(st.booleans()):
        vision = sorted({f"{m['provider']}/{m['id']}" for m in models
                         if "vision" in m["capabilities"] and "embeddings" not in
                         m["capabilities"] and providers[m["provider"]]["enabled"]})
        if vision:
            task = draw(st.sampled_from(TASKS))
            router["overrides"] = {task: {"primary": draw(st.sampled_from(vision)),
                                          "fallbacks": draw(st.lists(st.sampled_from(vision),
                                                                     max_size=2))}}
    profile = {
        "name": "generated",
        "objectives": {k: draw(st.sampled_from([0, 0.1, 0.5, 1]))
                       for k in ("quality", "cost", "latency")},
        "local": {"prefer": draw(st.booleans()), "bonus": draw(st.sampled_from([0, 0.1, 0.5])),
                  "max_complexity": draw(st.sampled_from(COMPLEXITIES))},
        "escalation": {"enabled": draw(st.booleans()), "only_from_local": draw(st.booleans())},
        "chain": {"strategy": draw(st.sampled_from(["score", "price", "weighted"])),
                  "max_candidates": draw(st.integers(1, 4))},
        "budgets": {"min_quality": {"high": draw(st.sampled_from([0, 50, 90]))}},
    }
    return router, profile, discovered


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_deterministic_and_private_cells_stay_local(
    case: tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]],
) -> None:
    router, profile, discovered = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "router.yaml").write_text(json.dumps(router))
        (root / "profile.yaml").write_text(json.dumps(profile))
        first = compile_config(root / "router.yaml", environ={}, discovered=discovered)
        second = compile_config(root / "router.yaml", environ={}, discovered=discovered)
    assert first.diagnostics == second.diagnostics
    assert (first.table is None) == any(d.is_error for d in first.diagnostics)
    if first.table is None:
        return
    assert second.table is not None
    raw = emit_table(first.table)
    assert raw == emit_table(second.table)
    table = parse_table(raw)
    for key, cell in [*table.cells.items(), *((c.key, c) for c in table.embeddings.values())]:
        for cand in cell.chain:
            local = table.providers[cand.provider].locality == "local"
            assert cand.local == local
            if cell.sensitivity == "private":
                assert local, (key, cand.model)
            if cell.modality == "image" and cell.task != "embeddings":
                assert cand.caps & CAPABILITY_BITS["vision"], (key, cand.model)
        if cell.sensitivity == "private":
            assert not cell.policy.allow_cloud
