"""The request log: an embedded SQLite store written in batches off the hot path.

Layout (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    requests       one row per request (columns: :data:`COLUMNS`); JSON text in
                   tags, attempts, verification, prompt; ``seq`` is the row id
    metric_totals  (name, labels) → value: cumulative Prometheus counters and
                   histogram buckets, updated in the same transaction as the rows
                   they count, so every worker's /metrics agrees and retention
                   never makes a counter go down

How it is written: the request path calls :meth:`Store.submit`, which appends the
record to a bounded in-memory queue (no lock held across I/O, no waiting; a full
queue drops the record and counts it).  One writer thread per worker wakes every
``flush_interval_s`` (or as soon as ``batch_size`` records wait), builds the
records the request path queued unbuilt, redacts prompts if they are kept, and
writes the batch in one ``BEGIN IMMEDIATE`` transaction.  It builds in chunks of
:data:`BUILD_CHUNK` and releases the GIL between them, so that a big batch (cheap
per record to commit) never stalls the event loop for long.

Why it survives a crash: WAL journal mode with ``synchronous=NORMAL`` - a batch
is either wholly committed or wholly absent after a kill, and the file is never
left half-written; a kill loses at most the batch being written plus what was
still queued.  Several workers (processes) share the file: WAL lets readers run
beside the one writer, and ``busy_timeout`` makes writers wait their turn.

Reading: :func:`connect` opens a connection for queries (``interlock.runtime.stats``);
:func:`row_json` turns a ``requests`` row into the JSON of ``GET /v1/logs``.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Final

import orjson
from interlock.runtime.metrics import totals_for
from interlock.runtime.record import Recorder, RequestRecord, db_path_for
from interlock.runtime.redact import prompt_messages, redact
from interlock.runtime.table import DecisionTable

log = logging.getLogger("interlock.store")

#: 2: the unused index on ``requests(id)`` is dropped (no query looks a record up
#: by id; each index costs the writer thread on every insert)
SCHEMA_VERSION: Final = 2
BUSY_TIMEOUT_MS: Final = 5000

#: the stored fields of a record, in column order
COLUMNS: Final = tuple(f.name for f in fields(RequestRecord) if f.name != "source")
_JSON_COLUMNS: Final = frozenset({"tags", "attempts", "verification", "escalation", "prompt"})
_BOOL_COLUMNS: Final = frozenset({"stream", "tokens_estimated", "fallback", "escalated"})

_SCHEMA: Final = (
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
    "CREATE INDEX IF NOT EXISTS requests_cell ON requests(cell, ts)",
    "CREATE INDEX IF NOT EXISTS requests_model ON requests(model, ts)",
    """CREATE TABLE IF NOT EXISTS metric_totals (
        name TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL,
        PRIMARY KEY (name, labels)
    ) WITHOUT ROWID""",
)
_INSERT: Final = (f"INSERT INTO requests ({', '.join(COLUMNS)}) "
                  f"VALUES ({', '.join('?' for _ in COLUMNS)})")
_UPSERT: Final = ("INSERT INTO metric_totals (name, labels, value) VALUES (?, ?, ?) "
                  "ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value")

#: records the writer thread builds (holding the GIL) before it lets the event loop
#: run: ~32 x 6 µs, well under a millisecond (sqlite3 releases the GIL in each step)
BUILD_CHUNK: Final = 32

Sink = Callable[[list[RequestRecord]], None]
#: a record not built yet (the writer thread calls it)
Pending = Callable[[], RequestRecord]


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
        conn.execute("PRAGMA journal_mode = WAL")
        ensure_schema(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the request log's tables if missing (idempotent, safe from several workers)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for stmt in _SCHEMA:
            conn.execute(stmt)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


#: all stored fields of a record in one C call, and where its JSON and 0/1 columns are
_VALUES: Final = operator.attrgetter(*COLUMNS)
_JSON_AT: Final = tuple(i for i, name in enumerate(COLUMNS) if name in _JSON_COLUMNS)
_BOOL_AT: Final = tuple(i for i, name in enumerate(COLUMNS) if name in _BOOL_COLUMNS)


def record_row(rec: RequestRecord) -> list[Any]:
    """The ``requests`` row of ``rec``, in :data:`COLUMNS` order: lists and dicts as
    JSON text, booleans as 0/1 (writer thread, once per record: no per-column
    lookups by name)."""
    row = list(_VALUES(rec))
    for i in _JSON_AT:
        value = row[i]
        if value is not None:
            row[i] = orjson.dumps(value).decode()
    for i in _BOOL_AT:
        row[i] = 1 if row[i] else 0
    return row


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


def record_json(rec: RequestRecord) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in COLUMNS}


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


class Store:
    """The batching writer: a bounded queue and one thread that owns the connection."""

    def __init__(
        self,
        path: str | Path,
        *,
        jsonl: str | Path | None = None,
        retention_days: float | None = None,
        max_rows: int | None = None,
        batch_size: int = 32,
        flush_interval_s: float = 0.25,
        queue_size: int = 10_000,
        retention_interval_s: float = 300.0,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.jsonl = Path(jsonl) if jsonl else None
        self.retention_days = retention_days
        self.max_rows = max_rows
        # short transactions (issue 6): 256-record transactions cost the writer less
        # per record, but the sqlite3 module takes the GIL back for every row it binds,
        # so a long transaction keeps the event loop waiting: with 256 the p99 at 1
        # connection was 3.3-3.5 ms against 1.8 ms with 32, and the throughput at 32
        # connections was the same within the noise (5,100-6,400 req/s both ways)
        self.batch_size = max(1, batch_size)
        self.flush_interval_s = flush_interval_s
        self.queue_size = max(1, queue_size)
        self.retention_interval_s = retention_interval_s
        #: called (writer thread) with the number of records after each committed batch
        self.on_commit = on_commit
        #: extra consumers of each written batch (e.g. OpenTelemetry spans)
        self.sinks: list[Sink] = []
        #: records not queued because the queue was full (this worker, since start)
        self.dropped = 0
        #: records whose batch could not be written (database errors)
        self.failed = 0
        self.written = 0
        self._queue: deque[RequestRecord | Pending] = deque()
        self._submitted = 0
        self._done = 0
        self._wake = threading.Event()
        self._progress = threading.Condition()
        self._stopping = False
        self._reported_drops = 0
        connect(self.path, create=True).close()  # fail at start-up, not on the first batch
        self._thread = threading.Thread(target=self._run, name="interlock-store", daemon=True)
        self._thread.start()

    # -- the request path --------------------------------------------------------------

    def submit(self, rec: RequestRecord | Pending) -> bool:
        """Queue ``rec`` for the writer; O(1), never blocks.  False if it was dropped.

        ``rec`` may be a callable that builds the record (``Recorder.record``: the
        writer thread does that work, not the request path)."""
        if len(self._queue) >= self.queue_size or self._stopping:
            self.dropped += 1
            return False
        self._queue.append(rec)
        self._submitted += 1
        # Event.set takes a lock: skip it while the writer is already woken
        if len(self._queue) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- control ------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything submitted so far is written (or ``timeout``)."""
        target = self._submitted
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._progress:
            while self._done < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._progress.wait(min(left, 0.05))
                self._wake.set()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    # -- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            conn = connect(self.path, create=True)
        except sqlite3.Error as exc:
            log.error("request log %s cannot be opened: %s; records are dropped", self.path, exc)
            self._stopping = True
            return
        next_retention = 0.0
        try:
            while True:
                self._wake.wait(self.flush_interval_s)
                self._wake.clear()
                stopping = self._stopping
                while self._queue:
                    batch = [self._queue.popleft()
                             for _ in range(min(self.batch_size, len(self._queue)))]
                    self._write(conn, batch)
                    with self._progress:
                        self._done += len(batch)
                        self._progress.notify_all()
                if time.monotonic() >= next_retention:
                    next_retention = time.monotonic() + self.retention_interval_s
                    self._retain(conn)
                if stopping and not self._queue:
                    return
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection,
               queued: list[RequestRecord | Pending]) -> None:
        batch: list[RequestRecord] = []
        rows: list[list[Any]] = []
        for start in range(0, len(queued), BUILD_CHUNK):
            if start:
                time.sleep(0)  # releases the GIL: the event loop runs between chunks
            chunk = self._built(queued[start:start + BUILD_CHUNK])
            for rec in chunk:
                if rec.source is not None or rec.answer is not None:
                    _redact(rec)
                rows.append(record_row(rec))
            batch += chunk
        if not batch:
            return
        drops = self.dropped - self._reported_drops
        if len(batch) > BUILD_CHUNK:
            time.sleep(0)
        totals = totals_for(batch, dropped=drops)
        for attempt in (1, 2):
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT, rows)
                    conn.executemany(_UPSERT, [(n, lab, v) for (n, lab), v in totals.items()])
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                break
            except sqlite3.Error as exc:
                if attempt == 2:
                    self.failed += len(batch)
                    log.error("request log: a batch of %d record(s) was lost: %s",
                              len(batch), exc)
                    return
                time.sleep(0.05)
        self._reported_drops += drops
        self.written += len(batch)
        if self.on_commit is not None:
            self.on_commit(len(batch))
        self._sinks(batch)

    def _built(self, queued: list[RequestRecord | Pending]) -> list[RequestRecord]:
        batch: list[RequestRecord] = []
        for item in queued:
            if isinstance(item, RequestRecord):
                batch.append(item)
                continue
            try:
                batch.append(item())
            except Exception:  # one bad record must not stop the log; say so, go on
                self.failed += 1
                log.exception("request log: a record could not be built")
        return batch

    def _sinks(self, batch: list[RequestRecord]) -> None:
        if self.jsonl is not None:
            try:
                with self.jsonl.open("ab") as fh:
                    for rec in batch:
                        fh.write(orjson.dumps(record_json(rec)) + b"\n")
            except OSError as exc:
                log.error("request log: cannot append to %s: %s", self.jsonl, exc)
        for sink in self.sinks:
            try:
                sink(batch)
            except Exception:  # a sink must not stop the log; say so and go on
                log.exception("request log: sink %r failed", sink)

    def _retain(self, conn: sqlite3.Connection) -> None:
        if self.retention_days is None and self.max_rows is None:
            return
        try:
            apply_retention(conn, retention_days=self.retention_days, max_rows=self.max_rows)
        except sqlite3.Error as exc:
            log.warning("request log: retention failed (will retry): %s", exc)


def _redact(rec: RequestRecord) -> None:
    """Fill ``prompt`` from the request (redacted) and redact ``answer``."""
    src, rec.source = rec.source, None
    if src is not None:
        rec.prompt = prompt_messages(src)
    if rec.answer is not None:
        rec.answer = redact(rec.answer)


def open_recorder(table: DecisionTable, environ: Mapping[str, str],
                  *, spans: Sink | None = None) -> Recorder:
    """The recorder for a worker serving ``table``: with a store when it is enabled
    (and can be opened - if not, a warning, and the router serves without a log)."""
    settings = table.server.store
    store: Store | None = None
    if settings.enabled:
        path = db_path_for(table, environ)
        try:
            store = Store(path, jsonl=settings.jsonl, retention_days=settings.retention_days,
                          max_rows=settings.max_rows)
        except (OSError, sqlite3.Error) as exc:
            log.warning("request log disabled: cannot open %s: %s", path, exc)
    return Recorder(table, store, spans=spans)


def iter_batches(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = (),
                 size: int = 500) -> Iterable[list[sqlite3.Row]]:
    """Run ``sql`` and yield its rows in lists of ``size`` (large scans, replay)."""
    cur = conn.execute(sql, tuple(params))
    while True:
        rows = cur.fetchmany(size)
        if not rows:
            return
        yield rows
