"""The observability endpoints: ``GET /v1/stats``, ``GET /v1/logs``, ``GET /metrics``.

All three read the SQLite request log that every worker shares (queries run in
a thread: the serving loop never waits on the disk).  Before reading, the
worker flushes its own writer (at most a second), so a client that just made a
request through this worker sees it.  Records from other workers appear within
their flush interval (0.25 s).

* ``/v1/stats?since=1h`` - totals (requests, local, cloud, escalated, fallen
  back, refused private), latency p50/p95, tokens/s, cost and savings, then the
  same per cell (``by_cell``) and per model (``by_model``); see
  ``interlock.runtime.stats`` for the definitions.  ``&view=analysis`` gives the
  ``router logs analyze`` report instead.
* ``/v1/logs?cell=&model=&provider=&status=&surface=&since=&limit=&after=`` -
  recent records, newest first (``after=<seq>``: the records after that one,
  oldest first - what ``router logs --follow --url`` polls).
* ``/metrics`` - Prometheus text (``interlock.runtime.metrics``).

With the store disabled (``server.store.enabled: false``) these answer 503.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import orjson
from interlock.runtime import metrics, stats
from interlock.runtime.context import Ctx, Handler
from interlock.runtime.errors import RequestError
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.responses import send_bytes
from interlock.runtime.store import connect
from prometheus_client import CONTENT_TYPE_LATEST

T = TypeVar("T")

_FLUSH_S = 1.0


def query(ctx: Ctx) -> dict[str, str]:
    """The query string as {name: last value}."""
    raw = ctx.scope.get("query_string", b"")
    parsed = parse_qs(raw.decode("latin-1"), keep_blank_values=False)
    return {k: v[-1] for k, v in parsed.items()}


async def _read(ctx: Ctx, fn: Callable[[sqlite3.Connection], T]) -> T:
    store = ctx.state.recorder.store
    if store is None:
        raise RequestError(503, "the request log is disabled (server.store.enabled: false)",
                           code="store_disabled", type="server_error")
    path = store.path

    def run() -> T:
        store.flush(_FLUSH_S)
        return _with_conn(path, fn)

    return await asyncio.to_thread(run)


def _with_conn(path: Path, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn = connect(path)
    try:
        return fn(conn)
    finally:
        conn.close()


def _int(q: dict[str, str], name: str, default: int | None) -> int | None:
    value = q.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise RequestError(400, f"{name} must be an integer", param=name,
                           code="invalid_value") from exc


def _since(q: dict[str, str]) -> float | None:
    try:
        return stats.parse_since(q.get("since"))
    except stats.BadQuery as exc:
        raise RequestError(400, str(exc), param=exc.param, code="invalid_value") from exc


async def _json(ctx: Ctx, data: Any) -> None:
    await send_bytes(ctx.send, 200, orjson.dumps(data),
                     diagnostic_headers(ctx.diag, ctx.state.table_hash_header))


async def get_stats(ctx: Ctx) -> None:
    """``GET /v1/stats``."""
    q = query(ctx)
    since = _since(q)
    if q.get("view") == "analysis":  # what `router logs analyze --url` shows
        data = await _read(ctx, lambda conn: stats.analyze(conn, since=since))
    else:
        data = await _read(ctx, lambda conn: stats.stats(conn, since=since))
    data["dropped"] = _dropped(ctx)
    await _json(ctx, data)


async def get_logs(ctx: Ctx) -> None:
    """``GET /v1/logs``."""
    q = query(ctx)
    f = stats.LogFilter(
        cell=q.get("cell"), model=q.get("model"), provider=q.get("provider"),
        status=q.get("status"), surface=q.get("surface"), since=_since(q),
        after=_int(q, "after", None), limit=_int(q, "limit", 50) or 50,
    )
    try:
        f.where()
    except stats.BadQuery as exc:
        raise RequestError(400, str(exc), param=exc.param, code="invalid_value") from exc
    rows = await _read(ctx, lambda conn: stats.logs(conn, f))
    await _json(ctx, {"object": "list", "data": rows,
                      "last_seq": max((r["seq"] for r in rows), default=f.after)})


async def get_metrics(ctx: Ctx) -> None:
    """``GET /metrics`` (Prometheus text exposition)."""
    rows = await _read(ctx, metrics.read_totals)
    body = metrics.render(rows, ctx.state.recorder)
    await send_bytes(ctx.send, 200, body,
                     diagnostic_headers(ctx.diag, ctx.state.table_hash_header),
                     content_type=CONTENT_TYPE_LATEST.encode())


def _dropped(ctx: Ctx) -> int:
    store = ctx.state.recorder.store
    return store.dropped if store is not None else 0


def routes() -> dict[str, dict[str, Handler]]:
    """The routes, for ``InterlockApp``'s table."""
    return {
        "/v1/stats": {"GET": get_stats},
        "/v1/logs": {"GET": get_logs},
        "/metrics": {"GET": get_metrics},
    }
