"""Per-request diagnostics and the decision trace.

``Diagnostics`` is the one small mutable record a request carries through the
app and the forwarder: what was decided, every upstream attempt, and how much
time went to upstreams (so that ``X-Router-Overhead-Ms`` is the router's own
time).  The headers module renders it as ``X-Router-*`` headers.

The *trace* is the whole decision, on request (``"trace": true`` in the body or
an ``X-Router-Trace: 1|true`` header):

* JSON responses get a top-level ``x_router_trace`` object in the body;
* SSE streams end with one SSE *comment* line, ``: x_router_trace {...}``, just
  before ``data: [DONE]``.  A comment, because SSE parsers (the OpenAI and
  Anthropic SDKs included) skip comments, so a client that did not ask for the
  trace, or cannot read it, is unaffected; ``curl -N`` shows it.
* ``POST /v1/route`` always returns it (it is what that endpoint is for).

The trace holds: the table hash, the classification (signals, needs, token
estimate, tags and the evidence for each, with excerpts already masked by the
classifier), the cell and its policy, the ordered candidates with their score
terms, what was filtered out and why, the pin, and every attempt.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from interlock.runtime.errors import Attempt
from interlock.runtime.signals import caps_names
from pydantic import BaseModel


@dataclass(slots=True)
class Diagnostics:
    """What happened to one request; rendered as headers and in the trace."""

    started: float = field(default_factory=time.perf_counter)
    #: the request's id in the request log and the live events (``Recorder.started``)
    request_id: str = ""
    provider: str = ""
    model: str = ""
    cell: str = ""
    reason: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    #: verifier verdicts, one entry per answer checked (runtime/escalation.py)
    checks: list[dict[str, Any]] = field(default_factory=list)
    #: the escalation, when a verifier failed: from, to, because, outcome
    escalation: dict[str, Any] | None = None
    #: custom classifier tags of the request / response classifier tags of the answer
    request_tags: list[str] = field(default_factory=list)
    response_tags: list[str] = field(default_factory=list)
    #: seconds spent waiting on upstreams (subtracted from the overhead)
    upstream_s: float = 0.0
    #: set once the response headers went out (streams): the overhead is frozen there
    frozen_ms: float | None = None

    def overhead_ms(self) -> float:
        if self.frozen_ms is not None:
            return self.frozen_ms
        total = time.perf_counter() - self.started
        return max(0.0, (total - self.upstream_s) * 1000.0)

    def freeze(self) -> None:
        self.frozen_ms = self.overhead_ms()


def plain(value: Any) -> Any:
    """A JSON-ready copy of dataclasses, pydantic models, tuples and sets."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def classification_json(classification: Any) -> dict[str, Any]:
    to_dict = getattr(classification, "to_dict", None)
    data: dict[str, Any] = to_dict() if callable(to_dict) else plain(classification)
    needs = data.get("needs")
    if isinstance(needs, int):
        data["needs_names"] = caps_names(needs)
    return data


def decision_json(decision: Any) -> dict[str, Any]:
    """The decision: its cell (key, policy, rules), candidates with their score terms,
    what was filtered and why, the pin, the reason (``Decision.explain`` plus terms)."""
    explain = getattr(decision, "explain", None)
    out: dict[str, Any] = dict(explain()) if callable(explain) else {}
    cell = getattr(decision, "cell", None)
    out.setdefault("cell", getattr(cell, "key", None))
    out.setdefault("policy", plain(getattr(cell, "policy", None)))
    out.setdefault("rules", plain(getattr(cell, "rules", ())))
    out.setdefault("pinned", getattr(decision, "pinned", None))
    out.setdefault("reason", getattr(decision, "reason", ""))
    out["candidates"] = [_candidate(c) for c in getattr(decision, "candidates", ())]
    out["filtered"] = [
        {"model": c.model, "provider": c.provider, "reason": reason}
        for c, reason in getattr(decision, "filtered", ())
    ]
    out["excluded"] = plain(getattr(cell, "excluded", ()))
    return out


def _candidate(c: Any) -> dict[str, Any]:
    return {
        "model": c.model,
        "provider": c.provider,
        "role": c.role,
        "local": c.local,
        "caps": caps_names(c.caps),
        "score": c.score,
        "terms": plain(c.terms),
        "reason": c.reason,
    }


def attempts_json(attempts: list[Attempt]) -> list[dict[str, Any]]:
    return [
        {
            "provider": a.provider,
            "model": a.model,
            "role": a.role,
            "outcome": a.outcome,
            "status": a.status,
            "error": a.error,
            "latency_ms": round(a.latency_ms, 2),
            **({"account": a.account} if a.account else {}),
        }
        for a in attempts
    ]


def build_trace(
    table_hash: str, classification: Any, decision: Any, diag: Diagnostics | None = None
) -> dict[str, Any]:
    """The full decision trace as a JSON-ready dict."""
    trace: dict[str, Any] = {
        "table": table_hash,
        "classification": classification_json(classification) if classification else None,
        "decision": decision_json(decision) if decision is not None else None,
    }
    if diag is not None:
        trace["attempts"] = attempts_json(diag.attempts)
        trace["verification"] = diag.checks
        trace["escalation"] = diag.escalation
        trace["response_tags"] = list(diag.response_tags)
        trace["answered_by"] = diag.model or None
        trace["overhead_ms"] = round(diag.overhead_ms(), 3)
    return trace
