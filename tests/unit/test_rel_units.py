"""Unit tests of the reliability/security building blocks: key ring and scopes,
exposure check, egress field checks, header limits, token buckets, provider slots,
circuit breakers, the retry budget, the idempotency cache, the OpenAPI builder and
the `router keys` helpers."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from click.testing import CliRunner
from interlock.compiler.api import compile_text
from interlock.compiler.cli import cli
from interlock.compiler.cli_keys import key_hash, new_key
from interlock.runtime.auth import (
    InsecureBind,
    KeyRing,
    Principal,
    check_exposure,
    hash_key,
    is_loopback,
    presented_key,
)
from interlock.runtime.breaker import Breakers, RetryBudget
from interlock.runtime.egress import check_body, forbidden_body_field, forbidden_header
from interlock.runtime.errors import RequestError
from interlock.runtime.idempotency import IdempotencyCache, Recorded, fingerprint
from interlock.runtime.limits import (
    ProviderBusy,
    ProviderSlots,
    RateLimiter,
    TokenBucket,
    headers_too_large,
)
from interlock.runtime.table import (
    BreakerDefaults,
    ClientKey,
    IdempotencyDefaults,
    LimitDefaults,
    ProviderEntry,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- auth -------------------------------------------------------------------------------


def test_keyring_matches_hashed_and_env_keys_and_nothing_else() -> None:
    ring = KeyRing([ClientKey(name="a", sha256=hashlib.sha256(b"key-a").hexdigest()),
                    ClientKey(name="b", key_env="K_B"), ClientKey(name="c", key_env="UNSET")],
                   {"K_B": "key-b"})
    assert ring.enabled and ring.unresolved == ["c"]
    assert ring.authenticate("key-a").name == "a"  # type: ignore[union-attr]
    assert ring.authenticate("key-b").name == "b"  # type: ignore[union-attr]
    for wrong in ("key-c", "", None, "key-a ", "KEY-A"):
        assert ring.authenticate(wrong) is None
    assert not KeyRing([], {}).enabled


def test_hash_helpers_agree() -> None:
    assert hash_key("abc") == key_hash("abc") == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    k = new_key()
    assert k.startswith("ilk-") and len(k) > 40 and new_key() != k


def test_presented_key_reads_bearer_then_x_api_key() -> None:
    assert presented_key([(b"authorization", b"Bearer  abc ")]) == "abc"
    assert presented_key([(b"x-api-key", b"xyz")]) == "xyz"
    assert presented_key([(b"x-api-key", b"xyz"), (b"authorization", b"Bearer abc")]) == "abc"
    assert presented_key([(b"authorization", b"Basic abc")]) is None


def test_principal_model_scope_uses_wildcards_on_keys_and_ids() -> None:
    ring = KeyRing([ClientKey(name="s", sha256=hashlib.sha256(b"k").hexdigest(),
                              models=("ollama/*", "gpt-4o-mini"))], {})
    p = ring.authenticate("k")
    assert isinstance(p, Principal) and not p.unrestricted
    assert p.allows_model("ollama/qwen3:8b")
    assert p.allows_model("openai/gpt-4o-mini")
    assert not p.allows_model("openai/gpt-4o")
    assert not p.allows_model("anthropic/claude")


def test_exposure_check_refuses_public_binds_without_keys() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("example.com")
    check_exposure("127.0.0.1", None, insecure=False)
    check_exposure("0.0.0.0", None, insecure=True)
    with pytest.raises(InsecureBind):
        check_exposure("0.0.0.0", None, insecure=False)


def test_the_lock_file_holds_hashes_and_variable_names_never_a_key() -> None:
    raw = "ilk-super-secret-raw-key-value"
    text = (
        "providers:\n  ollama: {models: [qwen3:8b]}\n"
        "server:\n  auth:\n    keys:\n"
        f"      - {{name: a, hash: '{key_hash(raw)}', models: ['ollama/*'], rpm: 10}}\n"
        "      - {name: b, key_env: MY_ROUTER_KEY, private_only: true}\n")
    result = compile_text(text, environ={"MY_ROUTER_KEY": raw})
    assert result.table is not None, [d.format() for d in result.diagnostics]
    lock = result.table.canonical_bytes().decode()
    assert raw not in lock
    assert hashlib.sha256(raw.encode()).hexdigest() in lock and "MY_ROUTER_KEY" in lock
    keys = result.table.server.auth.keys
    assert keys[0].rpm == 10 and keys[1].private_only


@pytest.mark.parametrize("entry", ["{name: a}", "{name: a, hash: 'sha256:abc'}",
                                   "{name: a, hash: 'sk-raw', key_env: X}",
                                   "{name: a, key_env: X, bogus: 1}"])
def test_bad_key_entries_are_config_errors(entry: str) -> None:
    text = f"providers:\n  ollama: {{models: [qwen3:8b]}}\nserver:\n  auth:\n    keys: [{entry}]\n"
    result = compile_text(text, environ={})
    assert result.table is None and any(d.code == "E101" for d in result.diagnostics)


def test_router_keys_cli() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["keys", "hash", "abc"])
    assert out.exit_code == 0 and key_hash("abc") in out.output
    out = runner.invoke(cli, ["keys", "hash"], input="abc\n")
    assert out.exit_code == 0 and key_hash("abc") in out.output
    out = runner.invoke(cli, ["keys", "new", "--name", "ci"])
    assert out.exit_code == 0 and "name: ci" in out.output and "hash: sha256:" in out.output


def test_router_start_refuses_a_public_address_without_keys() -> None:
    out = CliRunner().invoke(cli, ["start", "--host", "0.0.0.0", "--demo"])
    assert out.exit_code != 0 and "refusing to serve on 0.0.0.0" in out.output


# -- egress -----------------------------------------------------------------------------


def test_egress_body_checks() -> None:
    assert forbidden_body_field({"model": "x", "messages": []}) is None
    assert forbidden_body_field({"Base-URL": "x"}) == "Base-URL"
    assert forbidden_body_field({"extra_body": {"api_key": "x"}}) == "extra_body.api_key"
    assert forbidden_body_field({"metadata": {"url": "x"}}) is None  # free-form user data
    assert forbidden_body_field({"metadata": {"api_base": "x"}}) == "metadata.api_base"
    with pytest.raises(RequestError) as info:
        check_body({"api_base": "http://x"})
    assert info.value.status == 400 and info.value.param == "api_base"


def test_egress_header_checks() -> None:
    ok = [(b"authorization", b"Bearer x"), (b"x-api-key", b"k"), (b"idempotency-key", b"1"),
          (b"openai-organization", b"o"), (b"anthropic-version", b"2023-06-01")]
    assert forbidden_header(ok) is None
    assert forbidden_header([(b"openai-base-url", b"x")]) == "openai-base-url"
    assert forbidden_header([(b"x-provider-api-key", b"x")]) == "x-provider-api-key"


# -- limits -----------------------------------------------------------------------------


def test_header_limits() -> None:
    lim = LimitDefaults(max_headers=3, max_header_bytes=100)
    assert headers_too_large([(b"a", b"1")] * 3, lim) is None
    assert "too many" in (headers_too_large([(b"a", b"1")] * 4, lim) or "")
    assert "too large" in (headers_too_large([(b"a", b"x" * 200)], lim) or "")


def test_token_bucket_refills_at_its_rate() -> None:
    b = TokenBucket(rate=1.0, capacity=2.0, tokens=2.0, stamp=0.0)
    assert b.take(0.0) == 0.0 and b.take(0.0) == 0.0
    assert b.take(0.0) == pytest.approx(1.0)
    assert b.take(0.5) == pytest.approx(0.5)
    assert b.take(1.0) == 0.0


def test_rate_limiter_is_per_key() -> None:
    clock = Clock()
    rl = RateLimiter(clock)
    a = Principal("a", rpm=60, burst=1)
    b = Principal("b", rpm=60, burst=1)
    assert rl.check(a) == 0.0 and rl.check(b) == 0.0
    assert rl.check(a) > 0.0
    clock.t += 1.0
    assert rl.check(a) == 0.0
    assert rl.check(Principal("free")) == 0.0  # no rpm: unlimited


def _provider(cap: int | None) -> ProviderEntry:
    return ProviderEntry(name="p", wire="openai", base_url="http://127.0.0.1:1", locality="local",
                         auth="none", max_concurrency=cap)


def test_provider_slots_wait_then_refuse() -> None:
    async def run() -> None:
        slots = ProviderSlots({"p": _provider(1), "q": _provider(None)}, queue_s=0.1)
        assert await slots.acquire("q", "m", time.monotonic() + 5) is False  # unlimited
        assert await slots.acquire("p", "m", time.monotonic() + 5) is True
        assert slots.in_use("p") == 1
        t = time.monotonic()
        with pytest.raises(ProviderBusy):
            await slots.acquire("p", "m", time.monotonic() + 5)
        assert 0.08 < time.monotonic() - t < 0.5
        asyncio.get_running_loop().call_later(0.05, slots.release, "p")
        assert await slots.acquire("p", "m", time.monotonic() + 5) is True
        slots.release("p")
        assert slots.in_use("p") == 0

    asyncio.run(run())


# -- breakers and the retry budget ------------------------------------------------------


def test_breaker_opens_half_opens_with_one_probe_and_closes() -> None:
    clock = Clock()
    b = Breakers(BreakerDefaults(failures=2, cooldown_ms=1000, min_calls=100), clock)
    assert b.allow("p", "p/m")
    b.failure("p", "p/m")
    b.failure("p", "p/m")
    assert b.state_of("p") == "open" and not b.allow("p", "p/m")
    assert not b.allow("p", "p/other")  # the provider breaker covers its other models
    clock.t += 1.0
    assert b.allow("p", "p/m")  # the probe
    assert b.state_of("p") == "half_open"
    assert not b.allow("p", "p/m")  # only one probe at a time
    b.success("p", "p/m")
    assert b.state_of("p") == "closed" and b.allow("p", "p/m")


def test_the_count_of_tripped_breakers_follows_every_transition() -> None:
    """allow()/available() skip their checks while no breaker is tripped: the count
    must come back to 0 when the last one closes, and a re-opened probe counts once."""
    clock = Clock()
    b = Breakers(BreakerDefaults(failures=1, cooldown_ms=1000, min_calls=100), clock)
    assert b.tripped == 0
    b.failure("p", "p/m")  # provider and model breakers open
    b.failure("q", "q/m")
    assert b.tripped == 4
    assert not b.available("q") and not b.allow("q", "q/m")  # no fast path now
    b.failure("p", "p/m")  # already open: no double count
    assert b.tripped == 4
    clock.t += 1.0
    assert b.allow("p", "p/m")  # half-open probes: still tripped
    assert b.tripped == 4
    b.failure("p", "p/m")  # the probe failed: open again, counted once
    assert b.tripped == 4
    clock.t += 1.0
    assert b.allow("p", "p/m")
    b.success("p", "p/m")
    assert b.tripped == 2 and b.state_of("p") == "closed"
    b.success("p", "p/m")  # closed already: nothing changes
    assert b.tripped == 2
    assert b.allow("q", "q/m")  # q's probe (its cooldown is over)
    b.success("q", "q/m")
    assert b.tripped == 0 and b.available("q") and b.allow("q", "q/m")


def test_a_failed_probe_reopens_and_a_lost_probe_expires() -> None:
    clock = Clock()
    b = Breakers(BreakerDefaults(failures=1, cooldown_ms=1000, min_calls=100), clock)
    b.failure("p", "p/m")
    clock.t += 1.0
    assert b.allow("p", "p/m")
    b.failure("p", "p/m")
    assert b.state_of("p") == "open" and not b.allow("p", "p/m")
    clock.t += 1.0
    assert b.allow("p", "p/m")  # probe claimed, never reported (client went away)
    clock.t += 1.0
    assert b.allow("p", "p/m")  # expired after a cooldown: another probe may go


def test_breaker_opens_on_failure_rate() -> None:
    b = Breakers(BreakerDefaults(failures=100, failure_rate=0.5, window=10, min_calls=4),
                 Clock())
    for ok in (True, False, True, False):
        (b.success if ok else b.failure)("p", "p/m")
    assert b.state_of("p") == "open"


def test_retry_budget_caps_retries_at_the_ratio_plus_reserve() -> None:
    budget = RetryBudget(0.2, 10)
    retries = 0
    for _ in range(1000):  # a total outage: every request wants 2 more attempts
        budget.deposit()
        retries += sum(budget.withdraw() for _ in range(2))
    assert retries <= 0.2 * 1000 + 10
    assert retries >= 0.2 * 1000 - 1
    assert budget.denied > 0
    off = RetryBudget(0.2, 0, enabled=False)
    assert all(off.withdraw() for _ in range(10))


def test_disabled_breakers_never_open() -> None:
    b = Breakers(BreakerDefaults(failures=1), Clock(), enabled=False)
    for _ in range(5):
        b.failure("p", "p/m")
    assert b.allow("p", "p/m")


# -- idempotency ------------------------------------------------------------------------


def test_idempotency_cache_run_wait_conflict_and_ttl() -> None:
    async def run() -> None:
        clock = Clock()
        cache = IdempotencyCache(IdempotencyDefaults(ttl_s=10, max_entries=2), clock)
        fp = fingerprint("POST", "/v1/chat/completions", b"{}")
        verdict, entry = cache.begin(("-", "k"), fp)
        assert verdict == "run" and entry is not None
        v2, e2 = cache.begin(("-", "k"), fp)
        assert v2 == "wait" and e2 is entry
        assert cache.begin(("-", "k"), fingerprint("POST", "/x", b"{}"))[0] == "conflict"
        answer = Recorded(200, ((b"a", b"b"),), b"body")
        cache.finish(("-", "k"), entry, answer)
        assert await entry.done is answer
        assert cache.begin(("-", "k"), fp)[0] == "wait"
        clock.t += 11
        assert cache.begin(("-", "k"), fp)[0] == "run"  # expired

    asyncio.run(run())


def test_idempotency_cache_does_not_keep_5xx_and_is_bounded() -> None:
    async def run() -> None:
        cache = IdempotencyCache(IdempotencyDefaults(ttl_s=100, max_entries=3), Clock())
        _, e = cache.begin(("-", "bad"), b"f")
        assert e is not None
        cache.finish(("-", "bad"), e, Recorded(502, (), b"x"))
        assert await e.done is not None  # the waiters got it
        assert cache.begin(("-", "bad"), b"f")[0] == "run"  # but it was not kept
        for i in range(10):
            _, e = cache.begin(("-", f"k{i}"), b"f")
            assert e is not None
            cache.finish(("-", f"k{i}"), e, Recorded(200, (), b"x"))
        assert len(cache) <= 4

    asyncio.run(run())
