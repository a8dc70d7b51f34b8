"""The request log's database: its schema, connections, retention and row shape.

Layout (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    requests       one row per request (columns: :data:`COLUMNS`); JSON text in
                   tags, attempts, verification, escalation, prompt; ``seq`` is the row id
    metric_totals  (name, labels) -> value: cumulative Prometheus counters and
                   histogram buckets, updated in the same transaction as the rows
                   they count, so every worker's /metrics agrees and retention
                   never makes a counter go down

WAL journal mode with ``synchronous=NORMAL``: a batch is either wholly committed or
wholly absent after a kill, and the file is never left half-written.  Several
writers (one per worker) share the file: WAL lets readers run beside the one
writer, and ``busy_timeout`` makes writers wait their turn.

This module imports only the standard library, orjson and ``sqlbusy`` (standard
library only): the log's writer process (``interlock.runtime.logwriter``) uses it
and should start fast.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import orjson
from interlock.runtime.sqlbusy import until_not_busy

#: 2: the unused index on ``requests(id)`` is dropped (no query looks a record up
#: by id; each index costs the writer on every insert).
#: 3: the ``(cell, ts)`` and ``(model, ts)`` indexes are dropped too.  Together they
#: cost the writer ~8 µs of its ~26 µs per row (replaying bench rows), and no query
#: was faster for them: on a 300,000-row log, ``router stats`` over the last hour
#: took 118 ms with them and 57 ms without, and ``/v1/logs?cell=...`` 173 ms with
#: them and 2 ms without (the planner chose the cell index, then sorted by seq).
#: ``requests(ts)`` stays.
SCHEMA_VERSION: Final = 3
BUSY_TIMEOUT_MS: Final = 5000
#: the page size of a new log.  A row is ~1 KB (the verdicts are a third of it):
#: 16 KB pages cost the writer's inserts ~10% less than SQLite's default 4 KB
#: (7.7 against 8.6 µs per row, 60-row transactions, bench rows), and the WAL's
#: automatic checkpoint (1,000 pages) lets it grow to 16 MB, not 4.
PAGE_SIZE: Final = 16384

#: the stored fields of a record, in column order (``RequestRecord``'s fields but the
#: transient ``source``; a test holds the two together).  Spelled out here so that the
#: writer process imports neither the record nor the decision table.
COLUMNS: Final = (
    "id", "ts", "surface", "status", "table_hash", "worker", "error_code", "stream",
    "requested_model", "cell", "task", "complexity", "sensitivity", "modality", "needs",
    "tags", "tokens_est", "pinned", "reason", "attempts", "provider", "model", "locality",
    "tokens_in", "tokens_out", "tokens_estimated", "tokens_per_s", "ttft_ms", "latency_ms",
    "overhead_ms", "cost_usd", "baseline_usd", "saved_usd", "baseline_model", "fallback",
    "escalated", "verification", "escalation", "client_request_id", "prompt", "answer",
)
_JSON_COLUMNS: Final = frozenset({"tags", "attempts", "verification", "escalation", "prompt"})
_BOOL_COLUMNS: Final = frozenset({"stream", "tokens_estimated", "fallback", "escalated"})

SCHEMA_SQL: Final = (
    """CREATE TABLE IF NOT EXISTS requests (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL, ts REAL NOT NULL, surface TEXT NOT NULL, status INTEGER NOT NULL,
        table_hash TEXT NOT NULL, worker INTEGER NOT NULL, error_code TEXT,
        stream INTEGER NOT NULL DEFAULT 0, requested_model TEXT, cell TEXT, task TEXT,
        complexity TEXT, sensitivity TEXT, modality TEXT, needs INTEGER NOT NULL DEFAULT 0,
        tags TEXT, tokens_est INTEGER NOT NULL DEFAULT 0, pinned TEXT, reason TEXT,
        attempts TEXT, provider TEXT, model TEXT, locality TEXT,
        tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,
        tokens_estimated INTEGER NOT NULL DEFAULT 0, tokens_per_s REAL, ttft_ms REAL,
        latency_ms REAL NOT NULL, overhead_ms REAL NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0, baseline_usd REAL NOT NULL DEFAULT 0,
        saved_usd REAL NOT NULL DEFAULT 0, baseline_model TEXT,
        fallback INTEGER NOT NULL DEFAULT 0, escalated INTEGER NOT NULL DEFAULT 0,
        verification TEXT, escalation TEXT, client_request_id TEXT, prompt TEXT, answer TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts)",
    "DROP INDEX IF EXISTS requests_id",  # made by schema 1
    "DROP INDEX IF EXISTS requests_cell",  # made by schemas 1 and 2
    "DROP INDEX IF EXISTS requests_model",
    """CREATE TABLE IF NOT EXISTS metric_totals (
        name TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL,
        PRIMARY KEY (name, labels)
    ) WITHOUT ROWID""",
)
INSERT_SQL: Final = (f"INSERT INTO requests ({', '.join(COLUMNS)}) "
                  f"VALUES ({', '.join('?' for _ in COLUMNS)})")
UPSERT_SQL: Final = ("INSERT INTO metric_totals (name, labels, value) VALUES (?, ?, ?) "
                  "ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value")

#: where a row's JSON text and 0/1 columns are
JSON_AT: Final = tuple(i for i, name in enumerate(COLUMNS) if name in _JSON_COLUMNS)
BOOL_AT: Final = tuple(i for i, name in enumerate(COLUMNS) if name in _BOOL_COLUMNS)
#: the JSON columns the worker sends as JSON text (the writer reads the others:
#: ``attempts`` for the metric totals, ``prompt`` to redact it; ``tags`` is nearly
#: always empty).  The verdicts are a third of a typical row: decoding them from the
#: frame and encoding them again cost the writer ~2.3 µs per row, encoding them once
#: costs the worker ~0.4 (the writer's replay micro-benchmark, bench rows).
TEXT_AT: Final = tuple(COLUMNS.index(name) for name in ("verification", "escalation"))


def frame_row(values: Iterable[Any]) -> list[Any]:
    """A record's stored fields (in ``COLUMNS`` order) as the worker frames them for the
    writer: as the record holds them, but the :data:`TEXT_AT` columns as JSON text."""
    row = list(values)
    for i in TEXT_AT:
        value = row[i]
        if value is not None:
            row[i] = orjson.dumps(value).decode()
    return row


def connect(path: str | Path, *, create: bool = False) -> sqlite3.Connection:
    """A configured connection (WAL, busy timeout, rows by name) to the store at ``path``.

    Without ``create`` a missing file is an error (``FileNotFoundError``), so that a
    typo in ``--db`` does not silently create an empty log.
    """
    p = Path(path)
    if not create and not p.exists():
        raise FileNotFoundError(2, "no request log here (wrong --db or INTERLOCK_DB?)", str(p))
    if create:
        p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), timeout=BUSY_TIMEOUT_MS / 1000.0, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if create:
        _set_up(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _set_up(conn: sqlite3.Connection) -> None:
    """Page size, WAL and the schema of a log that other workers may be opening at the
    same moment (``sqlbusy``: the switch to WAL is not covered by the busy timeout)."""
    def steps() -> None:
        # a new file only: the page size of an existing database stays what it is
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode = WAL")
        ensure_schema(conn)

    until_not_busy(steps, BUSY_TIMEOUT_MS / 1000.0)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the request log's tables if missing (idempotent, safe from several workers)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for stmt in SCHEMA_SQL:
            conn.execute(stmt)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def row_json(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
    """A ``requests`` row as JSON-ready data (the shape of ``GET /v1/logs`` items)."""
    out: dict[str, Any] = {}
    for name in row.keys():  # noqa: SIM118 - sqlite3.Row has keys(), not iteration by key
        value = row[name]
        if name in _JSON_COLUMNS and isinstance(value, str):
            value = orjson.loads(value)
        elif name in _BOOL_COLUMNS and value is not None:
            value = bool(value)
        out[name] = value
    return out


def apply_retention(conn: sqlite3.Connection, *, retention_days: float | None,
                    max_rows: int | None, now: float | None = None) -> int:
    """Delete records older than ``retention_days`` and beyond the newest ``max_rows``.

    Returns how many rows went.  Counters in ``metric_totals`` are untouched.
    """
    now = time.time() if now is None else now
    deleted = 0
    if retention_days is not None:
        cur = conn.execute("DELETE FROM requests WHERE ts < ?", (now - retention_days * 86400,))
        deleted += max(0, cur.rowcount)
    if max_rows is not None:
        cur = conn.execute(
            "DELETE FROM requests WHERE seq <= "
            "(SELECT seq FROM requests ORDER BY seq DESC LIMIT 1 OFFSET ?)", (max_rows,))
        deleted += max(0, cur.rowcount)
    return deleted


def iter_batches(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = (),
                 size: int = 500) -> Iterable[list[sqlite3.Row]]:
    """Run ``sql`` and yield its rows in lists of ``size`` (large scans, replay)."""
    cur = conn.execute(sql, tuple(params))
    while True:
        rows = cur.fetchmany(size)
        if not rows:
            return
        yield rows
