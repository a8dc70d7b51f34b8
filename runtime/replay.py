"""Replay the request log against another decision table: the what-if before shipping.

Each logged request is decided again with the new table from what the record
kept - the signals (task, complexity, sensitivity, modality), the needs bits,
the token estimate, the tags and the model the client asked for.  No prompt is
needed (and none is re-classified: a changed classifier config, e.g. a new
``private_when``, does not show here; only routing, prices and chains do).

The new route is the first candidate the new table's ``decide`` keeps (health
is not considered); its cost is the record's tokens at the new model's prices.
It is compared with what actually happened (the logged model, locality, cost).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from interlock.runtime.canonical import CanonicalRequest
from interlock.runtime.classify import Classification
from interlock.runtime.decide import decide
from interlock.runtime.errors import RequestError
from interlock.runtime.signals import cell_key
from interlock.runtime.table import DecisionTable

_MTOK = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Replayed:
    """One logged request: what happened, and what the new table would do."""

    seq: int
    cell: str
    old_model: str | None
    old_locality: str | None
    old_cost: float
    new_model: str | None
    new_locality: str | None
    new_cost: float
    #: why the new table serves no model ("refused: private", "404: ..."), else ""
    new_problem: str = ""

    @property
    def changed(self) -> bool:
        return self.old_model != self.new_model


def classification_of(row: sqlite3.Row | dict[str, Any]) -> Classification | None:
    """The stored signals as a Classification (None if the request was never classified)."""
    if not row["task"] or not row["complexity"] or not row["sensitivity"] or not row["modality"]:
        return None
    tags = row["tags"]
    if isinstance(tags, str):
        tags = orjson.loads(tags)
    return Classification(
        task=row["task"], complexity=row["complexity"], sensitivity=row["sensitivity"],
        modality=row["modality"], needs=int(row["needs"] or 0),
        tokens=int(row["tokens_est"] or 0), tags=list(tags or []), evidence=[],
        cell=cell_key(row["task"], row["complexity"], row["sensitivity"], row["modality"]),
    )


def replay_row(table: DecisionTable, row: sqlite3.Row | dict[str, Any]) -> Replayed | None:
    cls = classification_of(row)
    if cls is None:
        return None
    req = CanonicalRequest(surface=row["surface"] or "chat", messages=[],
                           model=row["requested_model"])
    problem = ""
    new_model = new_loc = None
    new_cost = 0.0
    try:
        decision = decide(table, cls, req)
    except RequestError as exc:
        problem = f"{exc.status}: {exc.message}"
    else:
        first = decision.candidates[0] if decision.candidates else None
        if first is None:
            problem = ("refused: private, no local model" if cls.private
                       else "no candidate")
        else:
            m = table.models[first.model]
            new_model, new_loc = m.key, m.locality
            tokens_in = int(row["tokens_in"] or 0) or cls.tokens
            new_cost = (tokens_in * m.price.input
                        + int(row["tokens_out"] or 0) * m.price.output) / _MTOK
    return Replayed(
        seq=int(row["seq"]), cell=cls.cell, old_model=row["model"],
        old_locality=row["locality"] if row["status"] < 400 else None,
        old_cost=float(row["cost_usd"] or 0.0), new_model=new_model, new_locality=new_loc,
        new_cost=new_cost, new_problem=problem,
    )


def replay(table: DecisionTable, rows: Iterable[sqlite3.Row | dict[str, Any]]
           ) -> Iterator[Replayed | None]:
    """Replay each row (None for rows that were never classified)."""
    for row in rows:
        yield replay_row(table, row)


def summarize(results: Iterable[Replayed | None], *, table_hash: str, top: int = 10
              ) -> dict[str, Any]:
    """Totals old vs new: routing changes, local share, cost; the biggest moves."""
    n = skipped = changed = 0
    old_local = old_answered = new_local = new_answered = 0
    old_cost = new_cost = 0.0
    new_refused = 0
    moves: Counter[tuple[str, str, str]] = Counter()
    for r in results:
        if r is None:
            skipped += 1
            continue
        n += 1
        old_cost += r.old_cost
        new_cost += r.new_cost
        if r.old_locality is not None:
            old_answered += 1
            old_local += r.old_locality == "local"
        if r.new_model is not None:
            new_answered += 1
            new_local += r.new_locality == "local"
        else:
            new_refused += 1
        if r.changed:
            changed += 1
            moves[(r.cell, r.old_model or "-", r.new_model or f"({r.new_problem})")] += 1
    return {
        "object": "replay", "table": table_hash, "requests": n, "skipped": skipped,
        "changed": changed, "changed_share": round(changed / n, 4) if n else None,
        "local_share": {
            "old": round(old_local / old_answered, 4) if old_answered else None,
            "new": round(new_local / new_answered, 4) if new_answered else None,
        },
        "cost_usd": {"old": round(old_cost, 6), "new": round(new_cost, 6),
                     "delta": round(new_cost - old_cost, 6)},
        "unserved": {"new": new_refused},
        "moves": [{"cell": c, "from": a, "to": b, "requests": k}
                  for (c, a, b), k in moves.most_common(top)],
    }
