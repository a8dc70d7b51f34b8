"""decide(): the latency budget step and the request controls against OpenRouter's
documented semantics (provider routing and model fallbacks); the latency tracker and
the account pool."""

from __future__ import annotations

from typing import Any

import pytest
from interlock.runtime.accounts import AccountPool, TokenBucket, fails_over
from interlock.runtime.canonical import CanonicalRequest, Message, Part
from interlock.runtime.classify import classify
from interlock.runtime.decide import Decision, decide, parse_controls
from interlock.runtime.errors import RequestError, UpstreamConnectError, UpstreamHTTPError
from interlock.runtime.latency import LatencyTracker
from interlock.runtime.providers.base import KeyNotSetError
from interlock.runtime.table import Account, DecisionTable, ProviderEntry
from unit.test_decide_routing import TABLE

Q = "What is the capital of France?"  # general.low.public.text
CHAIN = ["ollama/qwen3:8b", "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini", "openai/gpt-4o"]


def with_budget(ms: int | None) -> DecisionTable:
    cells = {k: c.model_copy(update={"policy": c.policy.model_copy(
        update={"latency_budget_ms": ms})}) for k, c in TABLE.cells.items()}
    return TABLE.model_copy(update={"cells": cells})


def run(table: DecisionTable = TABLE, *, model: str | None = None,
        controls: dict[str, Any] | None = None, latency: Any = None,
        extra: dict[str, Any] | None = None, private: bool | None = None) -> Decision:
    r = CanonicalRequest(surface="chat", messages=[Message("user", [Part("text", Q)])],
                         model=model, controls=controls or {}, extra=extra or {},
                         private=private)
    return decide(table, classify(r, table.classifier), r, latency=latency)


def models(d: Decision) -> list[str]:
    return [c.model for c in d.candidates]


# --------------------------------------------------------------------------- latency budget


def test_budget_kept_leaves_the_order() -> None:
    # catalog: qwen3 300ms + 150 tok / 50 tok/s = 3300ms
    d = run(with_budget(5000))
    assert models(d) == CHAIN
    assert d.latency is not None and d.latency["moved"] is None
    assert d.latency["expected_ms"]["ollama/qwen3:8b"] == 3300.0


def test_budget_broken_puts_the_first_candidate_that_keeps_it_first() -> None:
    # groq: 150 + 150/700*1000 = 364ms; gpt-4o-mini: 400 + 1667 = 2067ms
    d = run(with_budget(2500))
    assert models(d)[0] == "groq/llama-3.1-8b-instant"
    assert sorted(models(d)) == sorted(CHAIN)
    assert d.latency is not None and d.latency["moved"] == "groq/llama-3.1-8b-instant"
    assert "latency budget 2500ms" in d.reason


def test_budget_uses_the_live_figures_passed_in() -> None:
    tracker = LatencyTracker(TABLE)
    table = with_budget(2500)
    assert models(run(table, latency=tracker.expected_ms))[0] == "groq/llama-3.1-8b-instant"
    # groq got slow (10s answers), gpt-4o-mini is now the first within budget
    for _ in range(30):
        tracker.observe("groq/llama-3.1-8b-instant", total_ms=10_000, output_tokens=150)
    d = run(table, latency=tracker.expected_ms)
    assert models(d)[0] == "openai/gpt-4o-mini"
    assert d.latency is not None and d.latency["source"] == "live"
    # and the local model got fast: it keeps its place
    for _ in range(30):
        tracker.observe("ollama/qwen3:8b", total_ms=500, ttft_ms=100, output_tokens=400)
    assert models(run(table, latency=tracker.expected_ms))[0] == "ollama/qwen3:8b"


def test_budget_nobody_keeps_it_the_order_stands() -> None:
    d = run(with_budget(100))
    assert models(d) == CHAIN
    assert d.latency is not None and "no candidate keeps it" in d.latency["note"]


def test_budget_never_moves_the_escalation_candidate_or_a_pin() -> None:
    slow = {k: 99_999.0 for k in CHAIN if k != "openai/gpt-4o"}

    def fast_escalation(key: str, n: int) -> float:
        return slow.get(key, 1.0)

    d = run(with_budget(1000), latency=fast_escalation)
    assert models(d)[0] == "ollama/qwen3:8b"  # only the escalation one was faster
    d = run(with_budget(1000), model="ollama/qwen3:8b")
    assert models(d)[0] == "ollama/qwen3:8b"
    assert d.latency is not None and "fixed" in d.latency["note"]


def test_budget_explanation_in_full() -> None:
    # the step keeps numbers on the request path; the explanation is built on demand
    def catalog_ms(key: str) -> float:
        sp = TABLE.models[key].speed
        return round(sp.ttft_ms + 150 / sp.tokens_per_s * 1000.0, 1)

    d = run(with_budget(2500))
    assert d.latency == {
        "budget_ms": 2500, "out_tokens": 150,
        "expected_ms": {k: catalog_ms(k) for k in CHAIN}, "source": "catalog",
        "moved": "groq/llama-3.1-8b-instant", "index": 1,
        "note": "ollama/qwen3:8b expected 3300ms > 2500ms: groq/llama-3.1-8b-instant "
                f"({catalog_ms('groq/llama-3.1-8b-instant'):.0f}ms) goes first",
    }
    d = run(with_budget(5000), latency=lambda key, n: 1234.56)
    assert d.latency == {
        "budget_ms": 5000, "out_tokens": 150, "expected_ms": dict.fromkeys(CHAIN, 1234.6),
        "source": "live", "moved": None, "index": None,
        "note": "ollama/qwen3:8b keeps the budget (1235ms <= 5000ms)",
    }


def test_budget_compares_at_the_precision_it_shows() -> None:
    # 2500.04 ms shows as 2500.0: it keeps a 2500 ms budget, as the note says
    d = run(with_budget(2500), latency=lambda key, n: 2500.04 if key == CHAIN[0] else 10.0)
    assert models(d) == CHAIN and d.latency is not None
    assert d.latency["note"] == "ollama/qwen3:8b keeps the budget (2500ms <= 2500ms)"
    d = run(with_budget(2500), latency=lambda key, n: 2500.06 if key == CHAIN[0] else 10.0)
    assert models(d)[0] == CHAIN[1]


def test_no_budget_no_step() -> None:
    assert run(with_budget(None)).latency is None


# --------------------------------------------------------------------------- controls


def test_models_fallback_list_in_priority_order() -> None:
    # OpenRouter: "Provide an array of model IDs in priority order"
    d = run(controls={"models": ["gpt-4o", "gpt-4o-mini"]})
    assert models(d) == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    # with a model named, the list follows it as its fallbacks
    d = run(model="gpt-4o-mini", controls={"models": ["gpt-4o"]})
    assert models(d) == ["openai/gpt-4o-mini", "openai/gpt-4o"]


def test_unknown_model_in_the_list_is_a_400_naming_the_entry() -> None:
    with pytest.raises(RequestError) as exc:
        run(controls={"models": ["gpt-4o", "gpt-4x"]})
    assert exc.value.status == 400 and exc.value.param == "models[1]"


def test_order_then_the_rest_when_fallbacks_allowed() -> None:
    d = run(controls={"provider": {"order": ["openai", "groq"]}})
    assert models(d) == ["openai/gpt-4o-mini", "openai/gpt-4o", "groq/llama-3.1-8b-instant",
                         "ollama/qwen3:8b"]


def test_order_without_fallbacks_keeps_only_the_ordered_providers() -> None:
    d = run(controls={"provider": {"order": ["groq"], "allow_fallbacks": False}})
    assert models(d) == ["groq/llama-3.1-8b-instant"]
    d = run(controls={"provider": {"allow_fallbacks": False}})
    assert models(d) == ["ollama/qwen3:8b"]


def test_provider_slugs_match_case_insensitively() -> None:
    ctl = parse_controls({"provider": {"only": ["OpenAI"], "ignore": ["Groq"]}}, TABLE)
    assert ctl.only == ("openai",) and ctl.ignore == ("groq",)


def test_only_and_ignore() -> None:
    assert models(run(controls={"provider": {"only": ["openai"]}})) == [
        "openai/gpt-4o-mini", "openai/gpt-4o"]
    assert "groq/llama-3.1-8b-instant" not in models(
        run(controls={"provider": {"ignore": ["groq"]}}))


@pytest.mark.parametrize("sort,first", [
    ("price", "ollama/qwen3:8b"),
    ({"by": "latency"}, "groq/llama-3.1-8b-instant"),
    ({"by": "throughput", "partition": "none"}, "groq/llama-3.1-8b-instant"),
])
def test_sort_string_or_object(sort: Any, first: str) -> None:
    d = run(controls={"provider": {"sort": sort}})
    assert models(d)[0] == first
    assert d.candidates[-1].role == "escalation"  # escalation stays last


def test_sort_partition_model_keeps_a_client_models_list() -> None:
    listed = {"models": ["gpt-4o", "llama3.1-fast"]}
    d = run(controls={**listed, "provider": {"sort": "price"}})
    assert models(d) == ["openai/gpt-4o", "groq/llama-3.1-8b-instant"]
    d = run(controls={**listed, "provider": {"sort": {"by": "price", "partition": "none"}}})
    assert models(d) == ["groq/llama-3.1-8b-instant", "openai/gpt-4o"]


def test_max_price_prompt_and_completion_per_million_tokens() -> None:
    d = run(controls={"provider": {"max_price": {"prompt": 1, "completion": "2"}}})
    assert "openai/gpt-4o" not in models(d) and "openai/gpt-4o-mini" in models(d)
    # request / image are accepted (OpenRouter fields) but the catalog has no such prices
    d = run(controls={"provider": {"max_price": {"request": 0.01, "image": 0}}})
    assert models(d) == CHAIN


def test_zdr_keeps_zero_retention_and_local_providers() -> None:
    # openai: no-training, groq: unknown → neither is zero-retention
    assert models(run(controls={"provider": {"zdr": True}})) == ["ollama/qwen3:8b"]


def test_require_parameters_reasoning() -> None:
    d = run(controls={"provider": {"require_parameters": True}},
            extra={"reasoning_effort": "high"})
    assert models(d) == []  # no model of the test table has the reasoning capability
    assert all("require_parameters" in why for _, why in d.filtered)
    assert models(run(extra={"reasoning_effort": "high"})) == CHAIN


def test_private_beats_every_control() -> None:
    d = run(private=True, controls={"provider": {"order": ["openai"], "only": ["openai"]}})
    assert models(d) == []
    assert all("private" in why or "provider.only" in why for _, why in d.filtered)


@pytest.mark.parametrize("controls,param", [
    ({"provider": {"sort": {"by": "cost"}}}, "provider.sort.by"),
    ({"provider": {"sort": {"by": "price", "partition": "all"}}}, "provider.sort.partition"),
    ({"provider": {"sort": {"order": "price"}}}, "provider.sort.order"),
    ({"provider": {"zdr": "yes"}}, "provider.zdr"),
    ({"provider": {"enforce_distillable_text": 1}}, "provider.enforce_distillable_text"),
    ({"provider": {"preferred_max_latency": -1}}, "provider.preferred_max_latency"),
    ({"provider": {"preferred_min_throughput": {"p42": 10}}},
     "provider.preferred_min_throughput.p42"),
    ({"provider": {"ignore": ["openai", "nope"]}}, "provider.ignore[1]"),
    ({"provider": {"max_price": {"request": "x"}}}, "provider.max_price.request"),
])
def test_more_controls_validated(controls: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as exc:
        parse_controls(controls, TABLE)
    assert exc.value.status == 400 and exc.value.param == param


def test_accepted_controls_without_effect() -> None:
    ctl = parse_controls({"provider": {"quantizations": ["int4"], "preferred_max_latency": 2,
                                       "preferred_min_throughput": {"p90": 50},
                                       "enforce_distillable_text": True}}, TABLE)
    assert ctl == parse_controls({}, TABLE)


# --------------------------------------------------------------------------- latency tracker


def test_tracker_seeds_then_moves_with_traffic() -> None:
    t = LatencyTracker(TABLE)
    f = t.figures("groq/llama-3.1-8b-instant")
    assert f is not None and (f.ttft_ms, f.tokens_per_s, f.samples) == (150, 700, 0)
    assert t.expected_ms("groq/llama-3.1-8b-instant", 700) == pytest.approx(1150)
    t.observe("groq/llama-3.1-8b-instant", ttft_ms=650, total_ms=1650, output_tokens=100)
    f = t.figures("groq/llama-3.1-8b-instant")
    assert f is not None
    assert f.ttft_ms == pytest.approx(150 + 0.2 * 500)
    assert f.tokens_per_s == pytest.approx(700 + 0.2 * (100 - 700))
    assert f.samples == 1 and t.snapshot()["groq/llama-3.1-8b-instant"]["source"] == "live"
    assert t.figures("nope/nope") is None and t.expected_ms("nope/nope", 1) is None


def test_tracker_plain_answer_moves_ttft_by_what_length_does_not_explain() -> None:
    t = LatencyTracker(TABLE)
    # qwen3: 50 tok/s; 100 tokens explain 2000ms of a 5000ms answer → implied ttft 3000
    t.observe("ollama/qwen3:8b", total_ms=5000, output_tokens=100)
    f = t.figures("ollama/qwen3:8b")
    assert f is not None and f.ttft_ms == pytest.approx(300 + 0.2 * (3000 - 300))


# --------------------------------------------------------------------------- accounts


def _pool(accounts: list[Account], clock: list[float]) -> tuple[AccountPool, ProviderEntry]:
    p = ProviderEntry(name="acme", wire="openai", base_url="http://x", locality="cloud",
                      auth="bearer", accounts=tuple(accounts))
    table = TABLE.model_copy(update={"providers": {**TABLE.providers, "acme": p}})
    return AccountPool(table, clock=lambda: clock[0]), p


def test_weighted_spread_is_proportional_and_deterministic() -> None:
    pool, _ = _pool([Account(name="a", api_key_env="A", weight=3),
                     Account(name="b", api_key_env="B", weight=1)], [0.0])
    firsts = [pool.plan("acme")[0].name for _ in range(8)]
    assert firsts.count("a") == 6 and firsts.count("b") == 2
    plan = pool.plan("acme")
    assert len(plan) == 2 and plan[0] is not plan[1]
    assert plan[0].view.accounts == (plan[0].account,)  # the view the adapter gets


def test_single_account_without_rpm_is_not_managed() -> None:
    pool, _ = _pool([Account(name="a", api_key_env="A")], [0.0])
    assert not pool.managed("acme") and pool.plan("acme") == []


def test_rpm_bucket_and_cooldowns() -> None:
    clock = [0.0]
    pool, _ = _pool([Account(name="a", api_key_env="A", rpm=2),
                     Account(name="b", api_key_env="B")], clock)
    a = next(s for s in pool.slots("acme") if s.name == "a")
    assert pool.take(a) and pool.take(a) and not pool.take(a)
    clock[0] = 30.0  # half a minute refills one request
    assert pool.take(a) and not pool.take(a)
    b = next(s for s in pool.slots("acme") if s.name == "b")
    pool.failed(b, UpstreamHTTPError("acme", "m", 401, b""))
    assert [s.name for s in pool.plan("acme")] == ["a"]
    clock[0] = 30.0 + 61
    assert {s.name for s in pool.plan("acme")} == {"a", "b"}
    pool.failed(b, UpstreamHTTPError("acme", "m", 429, b"", retry_after_s=5))
    clock[0] += 4
    assert [s.name for s in pool.plan("acme")] == ["a"]
    clock[0] += 2
    assert len(pool.plan("acme")) == 2


def test_token_bucket_wait() -> None:
    b = TokenBucket(1, 1 / 60, 0.0)
    assert b.take(0.0) and not b.take(0.0)
    assert b.wait_s(30.0) == pytest.approx(30.0)


def test_what_fails_over_between_accounts() -> None:
    for status in (401, 403, 429, 500, 503):
        assert fails_over(UpstreamHTTPError("p", "m", status, b""))
    for status in (400, 404, 422):
        assert not fails_over(UpstreamHTTPError("p", "m", status, b""))
    assert fails_over(KeyNotSetError("p", "m", "unset"))
    assert not fails_over(UpstreamConnectError("p", "m", "refused"))
