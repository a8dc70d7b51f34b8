"""Queries over the request log: ``/v1/stats``, ``/v1/logs`` and ``router logs analyze``.

All functions take an open connection (``store.connect``) and return JSON-ready
data; the HTTP handlers run them in a thread, the CLI calls them directly.

Definitions used throughout:

* *answered*: status < 400 and a model answered; *local*/*cloud*: the locality
  of that model; ``local_share`` = local / answered;
* *escalated*: answered by an escalation candidate; *fallen back*: answered after
  at least one failed attempt;
* latency percentiles are nearest-rank over answered requests (p50, p95);
* ``tokens_per_s`` = output tokens / generation seconds, summed over the
  requests that report a rate (a token-weighted mean, not a mean of rates);
* ``cost_usd``, ``baseline_usd``, ``saved_usd``: sums of the records' estimates
  (see ``interlock.runtime.record``).
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from interlock.runtime.store import row_json

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_LIMIT: Final = 1000


class BadQuery(ValueError):
    """A query parameter that cannot be understood (the message names it)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def parse_since(value: str | None, *, now: float | None = None, param: str = "since"
                ) -> float | None:
    """``30m``, ``2h``, ``7d``, ``1w`` (ago), unix seconds, or an ISO 8601 time."""
    if value is None or not value.strip():
        return None
    now = time.time() if now is None else now
    m = _DURATION.match(value.lower())
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadQuery(param, f"{value!r} is not a duration (30m, 2h, 7d), "
                              "unix seconds or an ISO 8601 time") from exc
    return dt.timestamp()


@dataclass(slots=True)
class LogFilter:
    """Filters of ``/v1/logs`` and ``router logs``; ``cell`` may use ``*`` wildcards."""

    cell: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str | None = None  # "ok", "error", or a status code
    surface: str | None = None
    since: float | None = None
    after: int | None = None  # only rows with seq > after (following)
    limit: int = 50

    def where(self) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        if self.cell:
            if "*" in self.cell:
                parts.append("cell GLOB ?")
            else:
                parts.append("cell = ?")
            params.append(self.cell)
        if self.model:
            parts.append("(model = ? OR model LIKE ? OR requested_model = ?)")
            params += [self.model, f"%/{self.model}", self.model]
        if self.provider:
            parts.append("provider = ?")
            params.append(self.provider)
        if self.surface:
            parts.append("surface = ?")
            params.append(self.surface)
        if self.status:
            st = self.status.lower()
            if st == "ok":
                parts.append("status < 400")
            elif st == "error":
                parts.append("status >= 400")
            elif st.isdigit():
                parts.append("status = ?")
                params.append(int(st))
            else:
                raise BadQuery("status", f"{self.status!r} is not ok, error or a status code")
        if self.since is not None:
            parts.append("ts >= ?")
            params.append(self.since)
        if self.after is not None:
            parts.append("seq > ?")
            params.append(self.after)
        return (" WHERE " + " AND ".join(parts)) if parts else "", params


def logs(conn: sqlite3.Connection, f: LogFilter, *, prompts: bool = True
         ) -> list[dict[str, Any]]:
    """Matching records, newest first (oldest first when following with ``after``)."""
    where, params = f.where()
    order = "ASC" if f.after is not None else "DESC"
    limit = max(1, min(f.limit, MAX_LIMIT))
    rows = conn.execute(f"SELECT * FROM requests{where} ORDER BY seq {order} LIMIT ?",
                        (*params, limit)).fetchall()
    out = [row_json(r) for r in rows]
    if not prompts:
        for r in out:
            r.pop("prompt", None)
            r.pop("answer", None)
    return out


def _since_clause(since: float | None) -> tuple[str, list[Any]]:
    return ("WHERE ts >= ?", [since]) if since is not None else ("", [])


def _and(where: str, cond: str) -> str:
    return f"{where} AND {cond}" if where else f"WHERE {cond}"


def percentiles(conn: sqlite3.Connection, column: str, group: str | None,
                since: float | None) -> dict[Any, dict[str, float | None]]:
    """Nearest-rank p50/p95 of ``column`` over answered rows, per ``group`` (or one)."""
    where, params = _since_clause(since)
    where = _and(where, f"status < 400 AND {column} IS NOT NULL")
    g = group or "NULL"
    sql = f"""
        WITH r AS (
          SELECT {g} AS g, {column} AS v,
                 ROW_NUMBER() OVER (PARTITION BY {g} ORDER BY {column}) AS rn,
                 COUNT(*) OVER (PARTITION BY {g}) AS n
          FROM requests {where})
        SELECT g, MIN(CASE WHEN rn >= (n * 50 + 99) / 100 THEN v END) AS p50,
                  MIN(CASE WHEN rn >= (n * 95 + 99) / 100 THEN v END) AS p95
        FROM r GROUP BY g"""
    return {row[0]: {"p50": _r(row[1]), "p95": _r(row[2])}
            for row in conn.execute(sql, params)}


_AGG: Final = """
    COUNT(*) AS requests,
    COALESCE(SUM(status < 400), 0) AS ok,
    COALESCE(SUM(status >= 400), 0) AS errors,
    COALESCE(SUM(status < 400 AND locality = 'local'), 0) AS local,
    COALESCE(SUM(status < 400 AND locality = 'cloud'), 0) AS cloud,
    COALESCE(SUM(escalated), 0) AS escalated,
    COALESCE(SUM(fallback), 0) AS fallen_back,
    COALESCE(SUM(tokens_in), 0) AS tokens_in,
    COALESCE(SUM(tokens_out), 0) AS tokens_out,
    SUM(CASE WHEN tokens_per_s > 0 THEN tokens_out END) AS rate_tokens,
    SUM(CASE WHEN tokens_per_s > 0 THEN tokens_out / tokens_per_s END) AS rate_seconds,
    COALESCE(SUM(cost_usd), 0) AS cost_usd,
    COALESCE(SUM(baseline_usd), 0) AS baseline_usd,
    COALESCE(SUM(saved_usd), 0) AS saved_usd"""


def _group(row: sqlite3.Row) -> dict[str, Any]:
    answered = row["local"] + row["cloud"]
    rate = (row["rate_tokens"] / row["rate_seconds"]
            if row["rate_seconds"] else None)
    return {
        "requests": row["requests"], "ok": row["ok"], "errors": row["errors"],
        "local": row["local"], "cloud": row["cloud"],
        "escalated": row["escalated"], "fallen_back": row["fallen_back"],
        "local_share": _r(row["local"] / answered, 4) if answered else None,
        "tokens_in": row["tokens_in"], "tokens_out": row["tokens_out"],
        "tokens_per_s": _r(rate, 1),
        "cost_usd": _r(row["cost_usd"], 6), "baseline_usd": _r(row["baseline_usd"], 6),
        "saved_usd": _r(row["saved_usd"], 6),
    }


def stats(conn: sqlite3.Connection, *, since: float | None = None) -> dict[str, Any]:
    """The ``GET /v1/stats`` document."""
    where, params = _since_clause(since)
    total = conn.execute(f"SELECT {_AGG}, MIN(ts) AS first, MAX(ts) AS last "
                         f"FROM requests {where}", params).fetchone()
    out: dict[str, Any] = {"object": "stats", "since": since, "until": time.time(),
                           "first": total["first"], "last": total["last"]}
    out.update(_group(total))
    refused = conn.execute("SELECT COUNT(*) FROM requests "
                           + _and(where, "error_code = 'private_no_local'"), params)
    out["refused_private"] = refused.fetchone()[0]
    lat = percentiles(conn, "latency_ms", None, since).get(None, {"p50": None, "p95": None})
    ttft = percentiles(conn, "ttft_ms", None, since).get(None, {"p50": None, "p95": None})
    out["latency_ms"] = lat
    out["ttft_ms"] = ttft
    out["by_cell"] = _by(conn, "cell", since)
    out["by_model"] = _by(conn, "model", since, extra="provider, locality,")
    return out


def _by(conn: sqlite3.Connection, column: str, since: float | None, extra: str = ""
        ) -> list[dict[str, Any]]:
    where, params = _since_clause(since)
    where = _and(where, f"{column} IS NOT NULL")
    pct = percentiles(conn, "latency_ms", column, since)
    rows = conn.execute(f"SELECT {column} AS key, {extra} {_AGG} FROM requests {where} "
                        f"GROUP BY {column} ORDER BY requests DESC, key", params).fetchall()
    out = []
    for row in rows:
        item: dict[str, Any] = {column: row["key"]}
        if extra:
            item["provider"], item["locality"] = row["provider"], row["locality"]
        item.update(_group(row))
        item["latency_ms"] = pct.get(row["key"], {"p50": None, "p95": None})
        out.append(item)
    return out


def analyze(conn: sqlite3.Connection, *, since: float | None = None, top: int = 5
            ) -> dict[str, Any]:
    """``router logs analyze``: local share, savings, the slowest cells, failure rates."""
    s = stats(conn, since=since)
    where, params = _since_clause(since)
    slow = sorted((c for c in s["by_cell"] if c["latency_ms"]["p95"] is not None),
                  key=lambda c: -float(c["latency_ms"]["p95"]))[:top]
    failing_cells = sorted(
        ({"cell": c["cell"], "requests": c["requests"], "errors": c["errors"],
          "error_rate": _r(c["errors"] / c["requests"], 4)} for c in s["by_cell"]
         if c["errors"]), key=lambda c: (-float(c["error_rate"]), c["cell"]))[:top]
    attempts = conn.execute(
        f"""SELECT json_extract(a.value, '$.model') AS model, COUNT(*) AS n,
                   SUM(json_extract(a.value, '$.outcome') = 'error') AS failed
            FROM requests, json_each(requests.attempts) AS a
            {_and(where, "json_extract(a.value, '$.outcome') != 'skipped'")}
            GROUP BY model ORDER BY failed * 1.0 / n DESC, model""", params).fetchall()
    codes = conn.execute(
        f"SELECT error_code, COUNT(*) AS n FROM requests {_and(where, 'status >= 400')} "
        f"GROUP BY error_code ORDER BY n DESC LIMIT ?", (*params, top)).fetchall()
    leaks = conn.execute(
        "SELECT COUNT(*) FROM requests "
        + _and(where, "sensitivity = 'private' AND locality = 'cloud'"), params).fetchone()
    private = conn.execute(
        "SELECT COUNT(*) FROM requests " + _and(where, "sensitivity = 'private'"),
        params).fetchone()
    n = s["requests"]
    return {
        "object": "analysis", "since": since, "first": s["first"], "last": s["last"],
        "requests": n, "errors": s["errors"],
        "error_rate": _r(s["errors"] / n, 4) if n else None,
        "local_share": s["local_share"], "local": s["local"], "cloud": s["cloud"],
        "fallback_rate": _r(s["fallen_back"] / n, 4) if n else None,
        "escalation_rate": _r(s["escalated"] / n, 4) if n else None,
        "cost_usd": s["cost_usd"], "baseline_usd": s["baseline_usd"],
        "saved_usd": s["saved_usd"],
        "saved_share": _r(s["saved_usd"] / s["baseline_usd"], 4) if s["baseline_usd"] else None,
        "latency_ms": s["latency_ms"],
        "private_requests": private[0], "private_served_by_cloud": leaks[0],
        "slowest_cells": [{"cell": c["cell"], "requests": c["requests"], **c["latency_ms"]}
                          for c in slow],
        "failing_cells": failing_cells,
        "attempt_failures": [
            {"model": r["model"], "attempts": r["n"], "failed": r["failed"],
             "failure_rate": _r(r["failed"] / r["n"], 4)} for r in attempts if r["n"]],
        "error_codes": [{"error_code": r["error_code"], "requests": r["n"]} for r in codes],
    }


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)
