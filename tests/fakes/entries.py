"""Table entries pointing at a fake upstream, for tests that call adapters or
build a small decision table by hand."""

from __future__ import annotations

from interlock.runtime.signals import CAPABILITY_BITS
from interlock.runtime.table import Account, ModelEntry, Price, ProviderEntry, Speed

from fakes.harness import FakeUpstream

ALL_CHAT_CAPS = sum(v for k, v in CAPABILITY_BITS.items() if k != "embeddings")


def provider_entry(
    up: FakeUpstream, *, name: str, wire: str, locality: str = "local",
    api_key_env: str | None = None, auth: str | None = None,
    timeout_ms: int = 10_000, connect_timeout_ms: int = 2_000,
) -> ProviderEntry:
    """A ``ProviderEntry`` whose base_url is the fake's ``url``.

    ``auth`` defaults to "bearer" when ``api_key_env`` is given, else "none".
    """
    accounts = (Account(name="default", api_key_env=api_key_env),) if api_key_env else ()
    return ProviderEntry.model_validate({
        "name": name, "wire": wire, "base_url": up.url, "locality": locality,
        "auth": auth or ("bearer" if api_key_env else "none"), "accounts": accounts,
        "timeout_ms": timeout_ms, "connect_timeout_ms": connect_timeout_ms,
    })


def model_entry(
    provider: ProviderEntry, upstream_id: str, *, caps: int = ALL_CHAT_CAPS,
    embedding: bool = False, context_window: int = 32_768,
) -> ModelEntry:
    """A ``ModelEntry`` for ``upstream_id`` served by ``provider``."""
    return ModelEntry(
        key=f"{provider.name}/{upstream_id}", provider=provider.name, upstream_id=upstream_id,
        locality=provider.locality, context_window=context_window, max_output=4096,
        price=Price(), caps=caps, speed=Speed(ttft_ms=100, tokens_per_s=50),
        quality={"general": 50.0}, embedding=embedding,
    )
