"""decide(): cells, pins, privacy fail-closed, needs/context/health filters, controls."""

from __future__ import annotations

from typing import Any

import pytest
from interlock.runtime.canonical import CanonicalRequest, Message, Part
from interlock.runtime.classify import Classification, classify
from interlock.runtime.decide import Decision, decide, parse_controls
from interlock.runtime.errors import RequestError
from interlock.runtime.signals import CAPABILITY_BITS, all_cell_keys, caps_mask
from interlock.runtime.table import (
    Candidate,
    Cell,
    ClassifierConfig,
    DecisionTable,
    ModelEntry,
    Pin,
    Policy,
    Price,
    ProviderEntry,
    Speed,
    Terms,
)

CHAT = caps_mask(["streaming", "json"])
FULL = caps_mask(["streaming", "json", "json_schema", "tools", "vision"])


def _provider(name: str, locality: str, dc: str = "none") -> ProviderEntry:
    return ProviderEntry(name=name, wire="openai", base_url=f"http://{name}", locality=locality,
                         auth="none" if locality == "local" else "bearer", data_collection=dc)


def _model(key: str, locality: str, *, caps: int = CHAT, ctx: int = 32_000,
           price: tuple[float, float] = (0.0, 0.0), ttft: float = 300, tps: float = 50,
           ) -> ModelEntry:
    provider, upstream = key.split("/", 1)
    return ModelEntry(key=key, provider=provider, upstream_id=upstream, locality=locality,
                      context_window=ctx, max_output=4096, price=Price(input=price[0],
                      output=price[1]), caps=caps, speed=Speed(ttft_ms=ttft, tokens_per_s=tps),
                      quality={"general": 60})


MODELS = [
    _model("ollama/qwen3:8b", "local", ctx=8192),
    _model("ollama/llava:7b", "local", caps=CHAT | CAPABILITY_BITS["vision"]),
    _model("openai/gpt-4o-mini", "cloud", caps=FULL, ctx=128_000, price=(0.15, 0.6), ttft=400,
           tps=90),
    _model("openai/gpt-4o", "cloud", caps=FULL, ctx=128_000, price=(2.5, 10.0), ttft=500, tps=70),
    _model("groq/llama-3.1-8b-instant", "cloud", caps=CHAT | CAPABILITY_BITS["tools"],
           ctx=128_000, price=(0.05, 0.08), ttft=150, tps=700),
]
BY_KEY = {m.key: m for m in MODELS}


def _cand(key: str, role: str = "fallback", score: float = 0.5) -> Candidate:
    m = BY_KEY[key]
    return Candidate(model=key, provider=m.provider, role=role,  # type: ignore[arg-type]
                     local=m.locality == "local", caps=m.caps, score=score,
                     terms=Terms(quality=score, cost=0, latency=0, locality=0))


def _cell(key: str) -> Cell:
    task, complexity, sensitivity, modality = key.split(".")
    if sensitivity == "private":
        keys = ["ollama/llava:7b"] if modality == "image" else ["ollama/qwen3:8b",
                                                                 "ollama/llava:7b"]
        policy = Policy(allow_cloud=False)
    elif modality == "image":
        keys = ["ollama/llava:7b", "openai/gpt-4o-mini", "openai/gpt-4o"]
        policy = Policy(allow_cloud=True)
    else:
        keys = ["ollama/qwen3:8b", "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"]
        policy = Policy(allow_cloud=True)
    chain = [_cand(k, "primary" if i == 0 else "fallback", 0.9 - i / 10)
             for i, k in enumerate(keys)]
    if sensitivity == "public" and modality == "text":
        chain.append(_cand("openai/gpt-4o", "escalation", 0.3))
    return Cell(key=key, task=task, complexity=complexity, sensitivity=sensitivity,  # type: ignore[arg-type]
                modality=modality, policy=policy, chain=tuple(chain))  # type: ignore[arg-type]


def _table() -> DecisionTable:
    index = {m.key: m.key for m in MODELS} | {m.upstream_id: m.key for m in MODELS}
    index["llama3.1-fast"] = "groq/llama-3.1-8b-instant"
    return DecisionTable(
        generator="test", profile="balanced", weights={"quality": 1.0},
        providers={p.name: p for p in (_provider("ollama", "local"),
                                        _provider("openai", "cloud", "no-training"),
                                        _provider("groq", "cloud", "unknown"))},
        models={m.key: m for m in MODELS}, model_index=index,
        pins=(Pin(prefix="local/", locality="local"), Pin(prefix="ollama/", provider="ollama"),
              Pin(prefix="groq/", provider="groq"), Pin(prefix="openai/", provider="openai")),
        classifier=ClassifierConfig(private_when=("pii", "secrets")),
        cells={k: _cell(k) for k in all_cell_keys()},
    ).with_hash()


TABLE = _table()


def run(text: str = "What is the capital of France?", *, model: str | None = None,
        controls: dict[str, Any] | None = None, private: bool | None = None,
        healthy: Any = None, **kw: Any) -> tuple[Classification, Decision]:
    r = CanonicalRequest(surface="chat", messages=[Message("user", [Part("text", text)])],
                         model=model, controls=controls or {}, private=private, **kw)
    cls = classify(r, TABLE.classifier)
    return cls, decide(TABLE, cls, r, healthy=healthy)


def models(d: Decision) -> list[str]:
    return [c.model for c in d.candidates]


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize("model", [None, "auto", "route-auto"])
def test_auto_routes_by_cell(model: str | None) -> None:
    cls, d = run(model=model)
    assert d.cell.key == cls.cell == "general.low.public.text"
    assert models(d) == ["ollama/qwen3:8b", "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini",
                         "openai/gpt-4o"]
    assert d.pinned is None and d.filtered == []
    assert d.reason == "cell general.low.public.text: local primary ollama/qwen3:8b"
    assert d.reason.isascii()


def test_private_request_keeps_only_local() -> None:
    cls, d = run("my SSN is 123-45-6789")
    assert cls.sensitivity == "private"
    assert all(c.local for c in d.candidates) and models(d) == ["ollama/qwen3:8b",
                                                                "ollama/llava:7b"]


def test_pinned_model_by_key_name_and_alias() -> None:
    for name in ("openai/gpt-4o-mini", "gpt-4o-mini"):
        _, d = run(model=name)
        assert d.pinned == "openai/gpt-4o-mini" and models(d) == ["openai/gpt-4o-mini"]
        assert d.candidates[0].role == "primary"
        assert d.reason == "pinned: cloud primary openai/gpt-4o-mini"
    _, d = run(model="llama3.1-fast")
    assert d.pinned == "groq/llama-3.1-8b-instant"


def test_pinned_cloud_model_on_private_request_is_refused() -> None:
    _, d = run(model="gpt-4o", private=True)
    assert d.candidates == []
    assert d.reason == "private request: cloud model openai/gpt-4o refused"
    assert [(c.model, why) for c, why in d.filtered] == [
        ("openai/gpt-4o", "private request: cloud model openai/gpt-4o refused")]


def test_privacy_wins_over_models_list_and_pins() -> None:
    _, d = run(model="groq/auto", private=True)  # the private cell holds no groq model
    assert d.candidates == []
    assert d.reason == "pin groq/: no matching candidate in cell general.low.private.text"
    _, d = run(private=True, controls={"models": ["gpt-4o", "qwen3:8b"]})
    assert models(d) == ["ollama/qwen3:8b"]


def test_unknown_model_404_with_suggestion() -> None:
    with pytest.raises(RequestError) as exc:
        run(model="gpt-4o-mni")
    err = exc.value
    assert (err.status, err.param, err.code) == (404, "model", "model_not_found")
    assert "did you mean 'gpt-4o-mini'" in err.message


def test_pin_prefixes() -> None:
    _, d = run(model="local/auto")
    assert models(d) == ["ollama/qwen3:8b", "ollama/llava:7b"] and d.pin == "local/"
    assert d.pinned is None and d.reason.startswith("pin local/: local primary")
    _, d = run(model="local/qwen3:8b")
    assert d.pinned == "ollama/qwen3:8b"
    _, d = run(model="groq/auto")
    assert models(d) == ["groq/llama-3.1-8b-instant"]
    _, d = run(model="groq/llama-3.1-8b-instant")
    assert d.pinned == "groq/llama-3.1-8b-instant"
    with pytest.raises(RequestError) as exc:
        run(model="local/gpt-4o")  # exists, but not local
    assert exc.value.status == 404


# --------------------------------------------------------------------------- filters


def test_needs_filter() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    _, d = run("Extract the names", response_format=schema)
    assert models(d) == ["openai/gpt-4o-mini", "openai/gpt-4o"]
    reasons = dict((c.model, why) for c, why in d.filtered)
    assert reasons["ollama/qwen3:8b"] == "lacks json_schema"


def test_context_filter() -> None:
    _, d = run("word " * 8000)  # ~10k tokens > qwen3's 8192
    reasons = dict((c.model, why) for c, why in d.filtered)
    assert reasons["ollama/qwen3:8b"].startswith("context 8192 <")
    assert "ollama/qwen3:8b" not in models(d)


def test_health_filter() -> None:
    _, d = run(healthy=lambda provider: provider != "ollama")
    assert models(d)[0] == "groq/llama-3.1-8b-instant"
    assert [(c.model, why) for c, why in d.filtered] == [
        ("ollama/qwen3:8b", "provider ollama unhealthy")]


def test_private_with_all_local_unhealthy_is_empty_not_cloud() -> None:
    _, d = run(private=True, healthy=lambda provider: provider != "ollama")
    assert d.candidates == []
    assert d.reason.startswith("cell general.low.private.text: no candidate")


# --------------------------------------------------------------------------- controls


def test_models_list_routes_and_follows_pin() -> None:
    _, d = run(controls={"models": ["gpt-4o", "llama3.1-fast"]})
    assert models(d) == ["openai/gpt-4o", "groq/llama-3.1-8b-instant"]
    _, d = run(model="gpt-4o-mini", controls={"models": ["gpt-4o", "gpt-4o-mini"]})
    assert models(d) == ["openai/gpt-4o-mini", "openai/gpt-4o"]


def test_allowed_models_wildcards() -> None:
    _, d = run(controls={"allowed_models": ["openai/*"]})
    assert models(d) == ["openai/gpt-4o-mini", "openai/gpt-4o"]
    _, d = run(controls={"allowed_models": ["gpt-4o*"]})
    assert models(d) == ["openai/gpt-4o-mini", "openai/gpt-4o"]


def test_provider_only_ignore_order_fallbacks() -> None:
    _, d = run(controls={"provider": {"only": ["openai", "groq"]}})
    assert models(d) == ["groq/llama-3.1-8b-instant", "openai/gpt-4o-mini", "openai/gpt-4o"]
    _, d = run(controls={"provider": {"ignore": ["groq"]}})
    assert "groq/llama-3.1-8b-instant" not in models(d)
    _, d = run(controls={"provider": {"order": ["openai", "groq"]}})
    assert models(d) == ["openai/gpt-4o-mini", "openai/gpt-4o", "groq/llama-3.1-8b-instant",
                         "ollama/qwen3:8b"]
    _, d = run(controls={"provider": {"order": ["openai"], "allow_fallbacks": False}})
    assert models(d) == ["openai/gpt-4o-mini", "openai/gpt-4o"]
    _, d = run(controls={"provider": {"allow_fallbacks": False}})
    assert models(d) == ["ollama/qwen3:8b"]


def test_provider_sort_keeps_escalation_last() -> None:
    _, d = run(controls={"provider": {"sort": "price"}})
    assert models(d) == ["ollama/qwen3:8b", "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini",
                         "openai/gpt-4o"]
    _, d = run(controls={"provider": {"sort": "latency"}})
    assert models(d)[:3] == ["groq/llama-3.1-8b-instant", "ollama/qwen3:8b",
                             "openai/gpt-4o-mini"]
    _, d = run(controls={"provider": {"sort": "throughput"}})
    assert models(d)[:3] == ["groq/llama-3.1-8b-instant", "openai/gpt-4o-mini",
                             "ollama/qwen3:8b"]
    assert d.candidates[-1].role == "escalation"


def test_max_price_and_data_collection() -> None:
    _, d = run(controls={"provider": {"max_price": {"prompt": 0.1, "completion": "0.5"}}})
    assert models(d) == ["ollama/qwen3:8b", "groq/llama-3.1-8b-instant"]
    _, d = run(controls={"provider": {"data_collection": "deny"}})
    assert "groq/llama-3.1-8b-instant" not in models(d)  # groq: unknown retention
    assert "openai/gpt-4o-mini" in models(d)


@pytest.mark.parametrize("controls,param", [
    ({"models": "gpt-4o"}, "models"),
    ({"models": [""]}, "models"),
    ({"allowed_models": [1]}, "allowed_models"),
    ({"provider": []}, "provider"),
    ({"provider": {"sort": "cheapest"}}, "provider.sort"),
    ({"provider": {"order": ["opneai"]}}, "provider.order[0]"),
    ({"provider": {"only": "openai"}}, "provider.only"),
    ({"provider": {"allow_fallbacks": "no"}}, "provider.allow_fallbacks"),
    ({"provider": {"data_collection": "maybe"}}, "provider.data_collection"),
    ({"provider": {"max_price": {"prompt": -1}}}, "provider.max_price.prompt"),
    ({"provider": {"max_price": {"tokens": 1}}}, "provider.max_price.tokens"),
    ({"provider": {"max_price": 3}}, "provider.max_price"),
    ({"provider": {"quantizations": "int4"}}, "provider.quantizations"),
    ({"provider": {"colour": "red"}}, "provider.colour"),
    ({"route": "fallback"}, "route"),
])
def test_controls_validation(controls: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as exc:
        parse_controls(controls, TABLE)
    assert exc.value.status == 400 and exc.value.param == param


def test_unknown_provider_suggestion() -> None:
    with pytest.raises(RequestError, match="did you mean 'openai'"):
        parse_controls({"provider": {"order": ["opneai"]}}, TABLE)


def test_explain_is_json_able() -> None:
    import json

    _, d = run(controls={"provider": {"ignore": ["groq"]}})
    data = d.explain()
    json.dumps(data)
    assert data["cell"] == "general.low.public.text"
    assert data["filtered"] == [{"model": "groq/llama-3.1-8b-instant",
                                 "reason": "provider in provider.ignore"}]
    assert data["controls"]["ignore"] == ["groq"] or data["controls"]["ignore"] == ("groq",)


def test_missing_cell_gives_empty_decision() -> None:
    table = TABLE.model_copy(update={"cells": {}})
    r = CanonicalRequest(surface="chat", messages=[Message("user", [Part("text", "hi")])])
    cls = classify(r, table.classifier)
    d = decide(table, cls, r)
    assert d.candidates == [] and d.cell.key == cls.cell
    assert d.reason.endswith("no candidate (empty chain)")
