"""The request log's writer process: rows in on stdin, SQLite transactions out.

Each worker with a request log starts one of these (:class:`interlock.runtime.store.Store`),
so that SQLite, the metric totals, redaction and the JSONL copy cost the worker's
event loop nothing and never hold its GIL (issue 6: the log was the largest cost
left on the request path's process).

The protocol, one pipe each way, newline-framed JSON (orjson never writes a raw
newline inside a document)::

    stdin   {"context": {...}}      first: what captures are derived with
                                    (``rowbuild.RowContext``)
            [dropped, rows, commit, captures]
                                    captures: requests' captured facts, from which
                                    this process derives the records
                                    (``rowbuild.derive``: the common case); rows:
                                    whole records' fields in ``COLUMNS`` order, as the
                                    record holds them (lists and dicts, booleans;
                                    prompt and answer not redacted yet) but the
                                    verdicts and the escalation, which come as JSON
                                    text (``logdb.frame_row``); commit: 1 asks for a
                                    commit now; dropped: how many records the worker
                                    dropped since its last frame
    stdout  done written failed     after each transaction, cumulative: rows taken off
                                    the pipe, rows committed, rows lost to database errors

A transaction holds at most ``--batch-size`` rows and is committed when it is full,
when its oldest row has waited :data:`COMMIT_DELAY_S`, when the worker asks (a
flush: ``GET /v1/logs`` and ``/metrics`` do before they read), or at end of input.
End of input (the worker closed the pipe, exited or was killed) commits what was
read and exits: killing a worker loses nothing it had handed over.  SIGINT and
SIGTERM are ignored for that reason - a Ctrl-C or a service manager's stop reaches
the whole process group, and this process must outlive its worker long enough to
write the worker's last records.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import select
import signal
import sqlite3
import sys
import time
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import IO, Any, Final

import orjson
from interlock.runtime.logdb import (
    BOOL_AT,
    COLUMNS,
    INSERT_SQL,
    JSON_AT,
    TEXT_AT,
    UPSERT_SQL,
    apply_retention,
    connect,
)
from interlock.runtime.metrics import totals_for
from interlock.runtime.rowbuild import RowContext, derive

log = logging.getLogger("interlock.store")

READ_SIZE: Final = 1 << 20
#: the longest a row waits for others to share its transaction.  Longer saves the
#: writer a little CPU under load (~25 µs per row at 50 ms against ~28 at 10 ms, under
#: wrk at 32 connections), but a commit is a burst of CPU on a machine the request
#: path shares: at one connection, p99 was 1.7-2.2 ms with 50 ms and 1.2-1.4 ms with
#: 10 ms (p99 without any log: 0.7-0.9 ms)
COMMIT_DELAY_S: Final = 0.01
#: under load (the rows of the last commit came at :data:`BUSY_RATE` per second or more)
#: a row waits up to this long instead: a larger transaction costs less per row (~3 µs
#: of ~28 under wrk at 32 connections), and there a commit's burst no longer shows in a
#: p99 that queueing sets.  One connection (1,500-1,800 requests/s in bench/) stays below.
BUSY_DELAY_S: Final = 0.05
BUSY_RATE: Final = 3200.0
#: (gen0, gen1, gen2) collector thresholds of this process (see ``main``)
GC_THRESHOLDS: Final = (100_000, 50, 50)
_PROMPT_AT: Final = COLUMNS.index("prompt")
_ANSWER_AT: Final = COLUMNS.index("answer")

#: a row seen by name (``totals_for`` reads records by attribute)
RowView = namedtuple("RowView", COLUMNS)  # type: ignore[misc]  # noqa: PYI024


def stored_row(row: list[Any]) -> list[Any]:
    """``row`` (fields as framed: ``logdb.frame_row``) as the ``requests`` row: lists
    and dicts as JSON text (what came as text stays), booleans as 0/1.  Changes
    ``row`` in place and returns it."""
    for i in JSON_AT:
        value = row[i]
        if value is not None and value.__class__ is not str:
            row[i] = orjson.dumps(value).decode()
    for i in BOOL_AT:
        row[i] = 1 if row[i] else 0
    return row


def _jsonl_record(row: list[Any]) -> dict[str, Any]:
    """``row`` (as framed) as its JSONL object: the columns framed as JSON text decoded."""
    out = dict(zip(COLUMNS, row, strict=True))
    for i in TEXT_AT:
        value = row[i]
        if value.__class__ is str:
            out[COLUMNS[i]] = orjson.loads(value)
    return out


class Writer:
    """Reads frames, writes transactions, reports progress (one per worker)."""

    def __init__(self, conn: sqlite3.Connection, acks: IO[bytes], *, batch_size: int = 256,
                 jsonl: str | None = None, retention_days: float | None = None,
                 max_rows: int | None = None, retention_interval_s: float = 300.0,
                 commit_delay_s: float = COMMIT_DELAY_S,
                 busy_delay_s: float = BUSY_DELAY_S) -> None:
        self.conn = conn
        self.acks = acks
        self.batch_size = max(1, batch_size)
        self.jsonl = jsonl
        self.retention_days = retention_days
        self.max_rows = max_rows
        self.retention_interval_s = retention_interval_s
        self.commit_delay_s = commit_delay_s
        self.busy_delay_s = max(commit_delay_s, busy_delay_s)
        self._busy = False  # the rows of the last commit came at BUSY_RATE or faster
        self.done = 0  # rows taken off the pipe: committed or failed
        self.failed = 0
        self._dropped = 0
        self._redact: Callable[[str], str] | None = None
        #: what captures are derived with (the worker's first frame)
        self.context: RowContext | None = None
        self._next_retention = 0.0

    def run(self, fd: int) -> None:
        """Until end of input on ``fd``: read, and commit when a batch is full, when
        its oldest row has waited ``commit_delay_s``, or when the worker asks."""
        rows: list[list[Any]] = []
        rest = b""
        first = 0.0  # when the oldest row of ``rows`` came
        eof = False
        while not eof:
            now = time.monotonic()
            if rows or self._dropped:
                delay = self.busy_delay_s if self._busy else self.commit_delay_s
                wait: float | None = max(0.0, first + delay - now)
            elif self.retention_days is not None or self.max_rows is not None:
                wait = max(0.0, self._next_retention - now)
            else:
                wait = None  # nothing to do until input comes
            readable, _, _ = select.select([fd], [], [], wait)
            commit = not readable
            if readable:
                data = os.read(fd, READ_SIZE)
                if not data:
                    eof = commit = True
                elif b"\n" not in data:
                    rest += data  # a long frame (a kept 512 KB prompt): read on
                    continue
                else:
                    if not rows:
                        first = time.monotonic()
                    *frames, rest = (rest + data).split(b"\n")
                    for frame in frames:
                        commit = self._take(frame, rows) or commit
                    commit = commit or len(rows) >= self.batch_size
            if commit and (rows or self._dropped):
                span = max(time.monotonic() - first, self.commit_delay_s)
                self._busy = len(rows) >= BUSY_RATE * span
                while rows or self._dropped:
                    batch, rows = rows[:self.batch_size], rows[self.batch_size:]
                    self.write(batch)
            elif commit and readable:
                self._ack()  # a commit asked for with nothing to write: answer it
            self._retain()

    def _take(self, frame: bytes, rows: list[list[Any]]) -> bool:
        """Add a frame's rows to ``rows``; True when the worker asked for a commit now.

        A frame this process cannot read is a bug, never input from outside: it is
        logged and skipped, and its rows (when they can be counted) count as failed."""
        try:
            doc = orjson.loads(frame)
            if isinstance(doc, dict):  # the worker's row context (its first frame)
                self.context = RowContext.from_json(doc["context"])
                return False
            dropped, got, *rest = doc
            self._dropped += int(dropped)
            if not isinstance(got, list):
                raise TypeError(f"rows are {type(got).__name__}, not a list")
            captured = rest[1] if len(rest) > 1 else []
            if not isinstance(captured, list):
                raise TypeError(f"captures are {type(captured).__name__}, not a list")
        except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
            log.error("request log: an unreadable frame of %d bytes was skipped: %s",
                      len(frame), exc)
            return False
        width = len(COLUMNS)
        good = [row for row in got if isinstance(row, list) and len(row) == width]
        bad = len(got) - len(good)
        rows.extend(good)
        if captured:
            bad += self._derive(captured, rows)
        if bad:
            log.error("request log: %d malformed row(s) skipped", bad)
            self.done += bad
            self.failed += bad
        return bool(rest and rest[0])

    def _derive(self, captured: list[Any], rows: list[list[Any]]) -> int:
        """The rows of the worker's captures (``rowbuild.derive``); how many failed."""
        ctx = self.context
        if ctx is None:  # a capture before the context: a bug in the worker
            log.error("request log: %d capture(s) came before the row context",
                      len(captured))
            return len(captured)
        bad = 0
        for raw in captured:
            try:
                rows.append(derive(raw, ctx))
            except (TypeError, ValueError, KeyError, IndexError, AttributeError):
                bad += 1
        return bad

    def write(self, batch: list[list[Any]]) -> None:
        """One transaction: the rows of ``batch`` and the metric totals they add."""
        if any(row[_PROMPT_AT] is not None or row[_ANSWER_AT] is not None for row in batch):
            self._scrub(batch)
        views = [RowView._make(row) for row in batch]
        totals = totals_for(views, dropped=self._dropped)  # type: ignore[arg-type]
        records = [_jsonl_record(row) for row in batch] if self.jsonl else []
        stored = [stored_row(row) for row in batch]
        for attempt in (1, 2):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    self.conn.executemany(INSERT_SQL, stored)
                    self.conn.executemany(UPSERT_SQL,
                                          [(n, lab, v) for (n, lab), v in totals.items()])
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                break
            except sqlite3.Error as exc:
                if attempt == 2:
                    self.failed += len(batch)
                    records = []
                    log.error("request log: a batch of %d record(s) was lost: %s",
                              len(batch), exc)
                else:
                    time.sleep(0.05)
        self.done += len(batch)
        self._dropped = 0
        if records:
            self._append_jsonl(records)
        self._ack()

    @property
    def written(self) -> int:
        return self.done - self.failed

    def _scrub(self, batch: Sequence[list[Any]]) -> None:
        redact = self._redact
        if redact is None:
            from interlock.runtime import redact as module  # only when prompts are kept
            redact = self._redact = module.redact
        for row in batch:
            prompt = row[_PROMPT_AT]
            if prompt:
                row[_PROMPT_AT] = [{**m, "content": redact(m["content"])}
                                   if isinstance(m.get("content"), str) else m
                                   for m in prompt]
            if row[_ANSWER_AT] is not None:
                row[_ANSWER_AT] = redact(row[_ANSWER_AT])

    def _ack(self) -> None:
        try:
            self.acks.write(b"%d %d %d\n" % (self.done, self.written, self.failed))
            self.acks.flush()
        except (BrokenPipeError, ValueError):
            pass  # the worker is gone; the rows are written all the same

    def _append_jsonl(self, records: list[dict[str, Any]]) -> None:
        assert self.jsonl is not None
        try:
            with open(self.jsonl, "ab") as fh:
                fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
        except OSError as exc:
            log.error("request log: cannot append to %s: %s", self.jsonl, exc)

    def _retain(self) -> None:
        if self.retention_days is None and self.max_rows is None:
            return
        if time.monotonic() < self._next_retention:
            return
        self._next_retention = time.monotonic() + self.retention_interval_s
        try:
            apply_retention(self.conn, retention_days=self.retention_days,
                            max_rows=self.max_rows)
        except sqlite3.Error as exc:
            log.warning("request log: retention failed (will retry): %s", exc)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m interlock.runtime.logwriter",
                                description="The request log's writer (started by a worker).")
    p.add_argument("--db", required=True)
    p.add_argument("--jsonl")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--retention-days", type=float)
    p.add_argument("--max-rows", type=int)
    p.add_argument("--retention-interval", type=float, default=300.0)
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(format="[%(levelname)s] %(name)s: %(message)s", level=logging.INFO)
    try:
        conn = connect(args.db, create=True)
    except (OSError, sqlite3.Error) as exc:
        log.error("request log %s cannot be opened: %s; records are dropped", args.db, exc)
        return 1
    writer = Writer(conn, sys.stdout.buffer, batch_size=args.batch_size, jsonl=args.jsonl,
                    retention_days=args.retention_days, max_rows=args.max_rows,
                    retention_interval_s=args.retention_interval)
    # a row is lists and dicts from JSON, without cycles: a collection every 700
    # allocations found nothing and cost ~3% of this process under load
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        writer.run(sys.stdin.fileno())
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
