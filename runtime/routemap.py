"""``GET /v1/table``: the loaded decision table in a compact form for the route map.

The dashboard draws the table as a grid (rows: task × complexity, columns:
sensitivity × modality) with each cell's chain.  It needs the axes, each cell's
chain (model, role, locality, score) and policy in brief, and enough about each
model (provider, locality, price per million tokens, capabilities) to colour the
chips and, on the chat page, to price an answer.

Nothing secret can leave through here: providers are given by name, wire,
locality and auth *kind* only, plus the *names* of the environment variables
their keys are read from (never a value).  Base URLs (which may carry
credentials in their user-info) and static extra headers (which may carry a
token) are left out altogether.

Each cell also names its *cloud-only baseline* model (``record.baselines``, the
rule the request log prices savings by), so the chat page computes an answer's
cost and saving exactly as the log does.

The body is built once per table (it is a pure function of it) and cached by
the caller as bytes.
"""

from __future__ import annotations

from typing import Any

import orjson
from interlock.runtime.record import Baseline, baselines
from interlock.runtime.signals import (
    COMPLEXITIES,
    MODALITIES,
    SENSITIVITIES,
    TASKS,
    caps_names,
)
from interlock.runtime.table import Cell, DecisionTable

_ROLE = {"primary": "p", "fallback": "f", "escalation": "e"}


def table_view(table: DecisionTable) -> dict[str, Any]:
    """The compact, secret-free view of ``table`` the dashboard and chat page use."""
    used = {c.model for cell in table.cells.values() for c in cell.chain}
    used |= {c.model for cell in table.embeddings.values() for c in cell.chain}
    models = {
        key: {
            "provider": m.provider,
            "local": m.locality == "local",
            "price": [m.price.input, m.price.output],
            "caps": caps_names(m.caps),
            "context": m.context_window,
            "embedding": m.embedding,
            "in_chains": key in used,
        }
        for key, m in sorted(table.models.items())
    }
    providers = {
        name: {
            "wire": p.wire,
            "local": p.locality == "local",
            "auth": p.auth,
            "key_env": [a.api_key_env for a in p.accounts if a.api_key_env],
            "data_collection": p.data_collection,
        }
        for name, p in sorted(table.providers.items())
    }
    base = baselines(table)
    return {
        "object": "decision_table",
        "hash": table.hash or table.content_hash(),
        "profile": table.profile,
        "profile_description": table.profile_description,
        "weights": table.weights,
        "axes": {
            "task": list(TASKS),
            "complexity": list(COMPLEXITIES),
            "sensitivity": list(SENSITIVITIES),
            "modality": list(MODALITIES),
        },
        "roles": {"p": "primary", "f": "fallback", "e": "escalation"},
        "providers": providers,
        "models": models,
        "cells": {key: _cell(cell, base.get(key)) for key, cell in table.cells.items()},
        "embeddings": {
            key: _cell(cell, base.get(cell.key)) for key, cell in table.embeddings.items()
        },
    }


def _cell(cell: Cell, baseline: Baseline | None) -> dict[str, Any]:
    policy = cell.policy
    out: dict[str, Any] = {
        # [model key, role letter, local, score]: four fields, 84 cells, small body
        "chain": [[c.model, _ROLE[c.role], c.local, c.score] for c in cell.chain],
        "cloud": policy.allow_cloud,
        "strategy": policy.strategy,
        # the request log's cloud-only baseline model: what "saved" is measured against
        "baseline": baseline.model if baseline is not None else None,
    }
    if policy.verifiers:
        out["verifiers"] = list(policy.verifiers)
    if policy.escalate:
        out["escalate"] = True
    if policy.latency_budget_ms is not None:
        out["latency_ms"] = policy.latency_budget_ms
    if cell.rules:
        out["rules"] = list(cell.rules)
    if cell.excluded:
        out["excluded"] = len(cell.excluded)
    return out


def table_body(table: DecisionTable) -> bytes:
    """``table_view`` serialised (built once per table by the caller)."""
    return orjson.dumps(table_view(table))
