"""Helpers for the observability tests (tests/*/test_obs_*.py): a small two-model
table (one local, one cloud) and records made by the real Recorder."""

from __future__ import annotations

from typing import Any

from e2e.harness import compile_yaml, config_yaml, prov
from interlock.runtime.canonical import CanonicalRequest, Message, Part, Usage
from interlock.runtime.classify import Classifier
from interlock.runtime.decide import decide
from interlock.runtime.errors import Attempt
from interlock.runtime.record import Recorder, RequestRecord
from interlock.runtime.table import DecisionTable
from interlock.runtime.trace import Diagnostics

DEAD = "http://127.0.0.1:9"


def two_model_table(chain: list[str] | None = None, **server: Any) -> DecisionTable:
    """loc/m-a (local, free) and cloud/m-c (0.5 in / 1.5 out per Mtok); ``chain``
    overrides every task (default: local first)."""
    return compile_yaml(config_yaml(
        [prov("loc", DEAD, "ollama", "local", ["m-a"]),
         prov("cloud", DEAD, "openai", "cloud", ["m-c"], quality=90.0)],
        chain or ["loc/m-a", "cloud/m-c"], server=server or None))


def request(text: str, **kw: Any) -> CanonicalRequest:
    return CanonicalRequest(surface="chat", messages=[Message("user", [Part("text", text)])],
                            **kw)


def simulate(rec: Recorder, table: DecisionTable, text: str, *, status: int = 200,
             fail_first: bool = False, usage: tuple[int, int] = (100, 50),
             latency_ms: float = 100.0, stream: bool = False, answer: str | None = None,
             **kw: Any) -> RequestRecord:
    """Classify and decide ``text`` for real, fake the attempts, record it."""
    req = request(text, stream=stream)
    cls = Classifier(table.classifier).classify(req)
    decision = decide(table, cls, req)
    diag = Diagnostics()
    diag.cell = cls.cell
    diag.reason = decision.reason
    cands = list(decision.candidates)
    if fail_first and len(cands) > 1:
        first = cands.pop(0)
        diag.attempts.append(Attempt(first.provider, first.model, "error", 500,
                                     "UpstreamHTTPError: upstream answered 500", 10.0,
                                     role=first.role))
    if status < 400 and cands:
        c = cands[0]
        diag.attempts.append(Attempt(c.provider, c.model, "ok", 200, "", latency_ms,
                                     role=c.role))
        diag.provider, diag.model = c.provider, c.model
    rec.started(diag, surface="chat", model=None, stream=stream)
    rec.classified(diag, cls)
    rec.routed(diag, decision)
    return rec.record(diag, surface="chat", status=status, classification=cls,
                      decision=decision, req=req, usage=Usage(*usage), stream=stream,
                      answer=answer, **kw)
