"""The runtime state: everything a worker builds once, in lifespan, and shares.

One object, no module globals: the table, the classifier built from its config,
one adapter per wire over one shared aiohttp session, the health registry and a
few counters.  Derived bytes that every response needs (the table hash header,
the ``/v1/models`` body) are computed here once.

``RuntimeState`` satisfies the forwarder's ``Upstreams`` protocol
(``table``, ``health``, ``adapter(provider)``).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import orjson
from interlock.runtime.accounts import AccountPool
from interlock.runtime.auth import KeyRing
from interlock.runtime.breaker import Breakers
from interlock.runtime.classify import Classifier
from interlock.runtime.health import HealthRegistry
from interlock.runtime.idempotency import IdempotencyCache
from interlock.runtime.latency import LatencyTracker
from interlock.runtime.limits import Limits
from interlock.runtime.otel import span_sink
from interlock.runtime.providers.base import Provider
from interlock.runtime.providers.registry import Adapters
from interlock.runtime.record import Recorder
from interlock.runtime.store import open_recorder
from interlock.runtime.table import DecisionTable, ProviderEntry


@dataclass(slots=True)
class Counters:
    """Per-worker totals; the request log and stats (a later issue) go further."""

    requests: int = 0
    errors: int = 0
    fallbacks: int = 0
    local: int = 0
    cloud: int = 0
    refused_private: int = 0


class RuntimeState:
    """What a worker serves with.  Build with :func:`build_state` inside a loop."""

    def __init__(
        self,
        table: DecisionTable,
        *,
        classifier: Classifier,
        adapters: Adapters,
        health: HealthRegistry,
    ) -> None:
        self.table = table
        self.classifier = classifier
        self.adapters = adapters
        self.health = health
        self.counters = Counters()
        self.started = time.time()
        self.table_hash = table.hash or table.content_hash()
        self.table_hash_header = self.table_hash.encode("ascii")
        self.models_body = models_list(table)
        self.deadline_s = table.server.deadline_ms / 1000.0
        #: the request log and live events (OBS); build_state gives it the store
        self.recorder = Recorder(table)
        #: live latency figures (INTEL): EWMA per model, seeded from the catalog
        self.latency = LatencyTracker(table)
        #: provider accounts (INTEL): weighted spread, rpm buckets, fail-over
        self.accounts = AccountPool(table)
        # REL (issue 8): client keys, limits, circuit breakers, Idempotency-Key cache
        self.auth = KeyRing(table.server.auth.keys, os.environ)
        self.limits = Limits(table)
        self.breakers = Breakers(table.server.breaker, enabled=os.environ.get(
            "INTERLOCK_BREAKERS", "1").strip().lower() not in ("0", "false", "no", "off"))
        self.idempotency = IdempotencyCache(table.server.idempotency)

    def adapter(self, provider: ProviderEntry) -> Provider:
        return self.adapters.for_wire(provider.wire)

    async def probe(self, timeout_s: float = 1.5) -> None:
        """Probe every provider that has a model in the table (concurrently)."""
        names = {m.provider for m in self.table.models.values()}
        providers = [p for n, p in self.table.providers.items() if n in names]
        if not providers:
            return
        deadline = time.monotonic() + timeout_s
        results = await asyncio.gather(
            *(self._probe_one(p, deadline) for p in providers), return_exceptions=True
        )
        for p, result in zip(providers, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                self.health.probed(p.name, False, f"probe failed: {type(result).__name__}")
            else:
                ok, detail = result
                self.health.probed(p.name, ok, detail)

    async def _probe_one(self, p: ProviderEntry, deadline: float) -> tuple[bool, str]:
        ok = await self.adapter(p).probe(p, deadline=deadline)
        return ok, "reachable" if ok else "probe failed"

    async def close(self) -> None:
        await self.adapters.close()
        await asyncio.to_thread(self.recorder.close)


def models_list(table: DecisionTable) -> bytes:
    """``GET /v1/models`` in OpenAI's list shape: the routing aliases, then every
    chat model of the table by key (embedding models are not chat models)."""
    created = 0
    data: list[dict[str, Any]] = [
        {"id": name, "object": "model", "created": created, "owned_by": "interlock"}
        for name in ("auto", "route-auto")
    ]
    for key in sorted(table.models):
        m = table.models[key]
        if m.embedding:
            continue
        data.append({"id": key, "object": "model", "created": created, "owned_by": m.provider})
    # the same list also reads as Anthropic's (GET /v1/models with the anthropic SDK)
    for item in data:
        item.update(type="model", display_name=item["id"], created_at="1970-01-01T00:00:00Z")
    return orjson.dumps({"object": "list", "data": data, "has_more": False,
                         "first_id": data[0]["id"], "last_id": data[-1]["id"]})


def make_classifier(table: DecisionTable) -> Classifier:
    return Classifier(table.classifier)


async def build_state(
    table: DecisionTable,
    *,
    probe: bool = True,
    fail_threshold: int = 3,
    cooldown_s: float = 10.0,
) -> RuntimeState:
    """Build the state for ``table`` (inside the serving loop) and probe providers."""
    health = HealthRegistry(
        ((name, p.locality) for name, p in table.providers.items()),
        fail_threshold=fail_threshold,
        cooldown_s=cooldown_s,
    )
    state = RuntimeState(
        table,
        classifier=make_classifier(table),
        adapters=Adapters(),
        health=health,
    )
    state.recorder = await asyncio.to_thread(open_recorder, table, os.environ,
                                             spans=span_sink())
    if probe:
        await state.probe()
    return state
