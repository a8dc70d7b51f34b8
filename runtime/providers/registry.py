"""Which adapter speaks which wire, over one shared ``Upstream``.

The app builds one ``Adapters`` in its lifespan and closes it at shutdown::

    adapters = Adapters()                 # owns an Upstream (one aiohttp session)
    wire = adapters.for_wire(provider.wire)
    resp = await wire.send(req, model, provider, deadline=time.monotonic() + 30)
    await adapters.close()

Wires: ``openai`` (chat completions, plus legacy completions for the
``completions`` surface), ``anthropic`` (Messages API) and ``ollama``.
"""

from __future__ import annotations

from interlock.runtime.providers.anthropic import AnthropicWire
from interlock.runtime.providers.base import Provider, Upstream
from interlock.runtime.providers.legacy import OpenAIWireWithLegacy
from interlock.runtime.providers.ollama import OllamaWire

WIRES = ("openai", "anthropic", "ollama")


def adapter_for(wire: str, upstream: Upstream) -> Provider:
    """A new adapter for ``wire`` on ``upstream``; ValueError for an unknown wire."""
    if wire == "openai":
        return OpenAIWireWithLegacy(upstream)
    if wire == "anthropic":
        return AnthropicWire(upstream)
    if wire == "ollama":
        return OllamaWire(upstream)
    raise ValueError(f"no adapter for wire {wire!r} (known: {', '.join(WIRES)})")


class Adapters:
    """One adapter per wire, sharing one ``Upstream``."""

    def __init__(self, upstream: Upstream | None = None) -> None:
        self.upstream = upstream if upstream is not None else Upstream()
        self._by_wire: dict[str, Provider] = {}

    def for_wire(self, wire: str) -> Provider:
        adapter = self._by_wire.get(wire)
        if adapter is None:
            adapter = self._by_wire[wire] = adapter_for(wire, self.upstream)
        return adapter

    async def close(self) -> None:
        await self.upstream.close()
