"""The request log, the worker's side: records go to a writer process, off the event loop.

How a record travels: the request path calls :meth:`Store.submit` when a request
ends.  That appends the request's *capture* (``Recorder.capture``: its facts in one
flat list) to a queue, and, every :data:`SEND_DELAY_S` (5 ms), a callback on the
event loop writes the queued captures (the verdicts as JSON text) as one frame to the
pipe of the worker's writer process (:mod:`interlock.runtime.logwriter`).  That
process does everything else - it derives the records from the captures
(``interlock.runtime.rowbuild``, with the row context each writer gets as its first
frame), the JSON text of the list columns, redaction of kept prompts, the Prometheus
totals, the SQLite transaction, the JSONL copy, retention - on its own interpreter, so
the request log never holds the worker's GIL (issue 6: with the writer as a thread of
the worker, the log was the largest cost left in the worker process; deriving the
records on the event loop was the largest part of what was left there).  A whole
record (built in the worker when live listeners want it) is framed as its fields in
column order (``logdb.frame_row``).

Never blocking, never unbounded: the pipe is non-blocking; what the pipe cannot
take waits in a backlog retried from the loop; a record is dropped and counted
(``interlock_recorder_dropped_records``) when ``queue_size`` records are already
between the request path and the database.

Crash behaviour: the writer commits each transaction whole (WAL, see
:mod:`interlock.runtime.logdb`).  A worker killed mid-run loses only the records of
its last 5 ms: what it had written to the pipe, the writer still reads,
commits, and then exits on end of input.  A writer that dies is restarted (after
1 s, then up to 30 s between tries); the records it had not acknowledged are
counted as failed, and records are dropped and counted while there is none.

:meth:`Store.flush` waits until everything submitted so far is committed - the
writer acknowledges each transaction - which is what ``GET /v1/logs`` and
``/metrics`` do before they read.  Extra consumers of the built records (the
OpenTelemetry span sink) run on a thread of the worker: they need the records
as objects.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import os
import select
import sqlite3
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Final

import orjson
from interlock.runtime.logdb import (
    COLUMNS,
    apply_retention,
    connect,
    frame_row,
    iter_batches,
    row_json,
)
from interlock.runtime.record import Recorder, RequestRecord, db_path_for, record_from
from interlock.runtime.redact import prompt_messages
from interlock.runtime.rowbuild import PROMPT_SLOT, VERIFICATION_SLOT, RowContext
from interlock.runtime.table import DecisionTable

__all__ = ["COLUMNS", "Store", "apply_retention", "connect", "iter_batches", "open_recorder",
           "row_json"]

log = logging.getLogger("interlock.store")

Sink = Callable[[list[RequestRecord]], None]
#: a request's captured facts (``Recorder.capture``): the writer derives the record
Capture = list[Any]

#: all stored fields of a record, in column order, in one C call
_VALUES: Final = operator.attrgetter(*COLUMNS)
#: the writer's pipe: 1 MiB (the Linux default for an unprivileged process's maximum)
#: holds ~2,000 typical records, so a writer that is briefly not scheduled does not
#: make the loop keep a backlog
PIPE_SIZE: Final = 1 << 20
_F_SETPIPE_SZ: Final = 1031
RESTART_S: Final = (1.0, 30.0)
#: how long a record waits in the worker for others to share its frame: each frame
#: is a write and wakes the writer, so one per loop iteration cost the loop and the
#: writer more than the records themselves (measured under wrk at 32 connections)
SEND_DELAY_S: Final = 0.005


class _Writer:
    """One writer process and the thread that reads its acknowledgements."""

    def __init__(self, store: Store) -> None:
        cmd = [sys.executable, "-m", "interlock.runtime.logwriter", "--db", str(store.path),
               "--batch-size", str(store.batch_size),
               "--retention-interval", str(store.retention_interval_s)]
        if store.jsonl is not None:
            cmd += ["--jsonl", str(store.jsonl)]
        if store.retention_days is not None:
            cmd += ["--retention-days", str(store.retention_days)]
        if store.max_rows is not None:
            cmd += ["--max-rows", str(store.max_rows)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.fd = self.stdin.fileno()
        os.set_blocking(self.fd, False)
        try:
            import fcntl
            fcntl.fcntl(self.fd, _F_SETPIPE_SZ, PIPE_SIZE)
        except (OSError, ImportError):  # a lower limit (pipe-max-size), or not Linux:
            pass                          # the default size works too (the backlog absorbs)
        #: rows framed for this process; rows it took (committed or lost) and lost,
        #: as acknowledged
        self.sent = 0
        self.done = 0
        self.failed = 0
        self.backlog = bytearray()
        self.thread = threading.Thread(target=store._acks, args=(self,),
                                       name="interlock-store-acks", daemon=True)
        self.thread.start()


class Store:
    """The worker's handle on the request log (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        jsonl: str | Path | None = None,
        retention_days: float | None = None,
        max_rows: int | None = None,
        batch_size: int = 256,
        queue_size: int = 10_000,
        retention_interval_s: float = 300.0,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.jsonl = Path(jsonl) if jsonl else None
        self.retention_days = retention_days
        self.max_rows = max_rows
        #: the most records in one transaction (the writer commits sooner when idle)
        self.batch_size = max(1, batch_size)
        self.queue_size = max(1, queue_size)
        self.retention_interval_s = retention_interval_s
        #: called (a thread of the worker) with the number of records of each commit
        self.on_commit = on_commit
        #: consumers of the built records (e.g. OpenTelemetry spans), on a worker thread;
        #: a sink with an ``active`` attribute that is False is skipped (no thread wakes)
        self.sinks: list[Sink] = []
        #: records not taken because too many were in flight or there was no writer
        self.dropped = 0
        #: records lost: not built (a bug), or the database refused the batch, or the
        #: writer died before it acknowledged them
        self.failed = 0
        self.written = 0
        self._lock = threading.Lock()  # the list, the pipe, the writer
        self._progress = threading.Condition()
        #: appended by submit() (no lock: deque appends and pops are atomic), emptied
        #: by _send() on the loop or on a thread that flushes
        self._queued: deque[RequestRecord | Capture] = deque()
        #: the loops on which a send / a backlog retry is scheduled (a loop, not a flag:
        #: a loop that stopped before its timer ran must not block the next one)
        self._scheduled: asyncio.AbstractEventLoop | None = None
        self._retry: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._reported_drops = 0
        #: records submitted and settled (committed, failed or lost), over all writers
        self._submitted = 0
        self._settled = 0
        self._restart_at = 0.0
        self._restarts = 0
        self._sink_queue: deque[list[RequestRecord]] = deque()
        self._sink_wake = threading.Event()
        self._sink_thread: threading.Thread | None = None
        #: what captures are derived with: the first frame of every writer
        self._row_context: RowContext | None = None
        connect(self.path, create=True).close()  # fail at start-up, not on the first batch
        self._writer: _Writer | None = _Writer(self)

    def set_row_context(self, ctx: RowContext) -> None:
        """What captures are derived with (``Recorder`` sets it; each new writer gets it
        as its first frame, so it comes before any capture on the pipe)."""
        with self._lock:
            self._row_context = ctx
            if self._writer is not None:
                self._greet(self._writer)

    def _greet(self, writer: _Writer) -> None:
        """Queue the row context as ``writer``'s first frame (before any capture)."""
        if self._row_context is not None:
            writer.backlog += orjson.dumps({"context": self._row_context.to_json()}) + b"\n"

    # -- the request path --------------------------------------------------------------

    def submit(self, rec: RequestRecord | Capture) -> bool:
        """Take ``rec`` for the log; O(1), never blocks.  False if it was dropped.

        ``rec`` is usually a request's capture (``Recorder.capture``: the writer process
        derives the record, see ``interlock.runtime.rowbuild``).  What was submitted is
        framed on the event loop within :data:`SEND_DELAY_S`, after the answer went
        out (at once, when no event loop runs in this thread)."""
        if self._closing or self._submitted - self._settled >= self.queue_size \
                or (self._writer is None and not self._revive()):
            self.dropped += 1
            return False
        self._queued.append(rec)
        self._submitted += 1
        loop = asyncio._get_running_loop()
        if loop is None:
            self._send()
        elif self._scheduled is not loop:
            self._scheduled = loop
            loop.call_later(SEND_DELAY_S, self._send)
        return True

    @property
    def writer_up(self) -> bool:
        """True while the writer process runs (False between a death and its restart)."""
        writer = self._writer
        return writer is not None and writer.proc.poll() is None

    @property
    def pending(self) -> int:
        """Records submitted and not yet committed (or lost)."""
        return self._submitted - self._settled

    def _send(self, commit: bool = False) -> None:
        """Build what was queued, frame it and write it to the writer's pipe (with
        ``commit``, asking the writer to commit at once rather than batch on)."""
        self._scheduled = None
        with self._lock:
            pop = self._queued.popleft
            queued = [pop() for _ in range(len(self._queued))]
            writer = self._writer
            if writer is None:
                self._settle(len(queued), lost=len(queued))
                return
            built, captured = self._prepared(queued)
            if built or captured or commit or self.dropped != self._reported_drops:
                frame = self._frame(built, captured, commit)
                writer.sent += len(built) + len(captured)
                writer.backlog += frame
            if writer.backlog:
                self._pump(writer)
        if (built or captured) and self.sinks and any(getattr(s, "active", True)
                                                      for s in self.sinks):
            self._to_sinks(built + self._derived(captured))

    def _prepared(self, queued: list[RequestRecord | Capture]
                  ) -> tuple[list[RequestRecord], list[Capture]]:
        """The records to frame whole, and the captures to frame as they are (each with
        its prompt as messages and its verdicts as JSON text)."""
        out: list[RequestRecord] = []
        captured: list[Capture] = []
        for item in queued:
            if item.__class__ is list:  # a capture: the writer derives it
                raw: Capture = item
                src = raw[PROMPT_SLOT]
                if src is not None:  # prompts are kept: the writer redacts them
                    raw[PROMPT_SLOT] = prompt_messages(src, scrub=False)
                verdicts = raw[VERIFICATION_SLOT]
                if verdicts:  # as JSON text: the writer stores it as it comes
                    raw[VERIFICATION_SLOT] = orjson.dumps(verdicts).decode()
                captured.append(raw)
                continue
            rec: RequestRecord = item  # type: ignore[assignment]
            if rec.source is not None:  # prompts are kept: the writer redacts them
                src, rec.source = rec.source, None
                rec.prompt = prompt_messages(src, scrub=False)
            out.append(rec)
        return out, captured

    def _derived(self, captured: list[Capture]) -> list[RequestRecord]:
        """The records of ``captured``, built here (for the span sinks)."""
        ctx = self._row_context
        if ctx is None:
            return []
        return [record_from(raw, ctx) for raw in captured]

    def _frame(self, built: list[RequestRecord], captured: list[Capture],
               commit: bool) -> bytes:
        """``[dropped, rows, commit, captures]``: whole rows (``logdb.frame_row``) and
        captures; ``commit`` 1 asks the writer to commit at once."""
        drops = self.dropped - self._reported_drops
        self._reported_drops = self.dropped
        rows = [frame_row(_VALUES(rec)) for rec in built]
        ask = 1 if commit else 0
        try:
            return orjson.dumps([drops, rows, ask, captured]) + b"\n"
        except TypeError:  # a value JSON cannot hold (a bug): lose that record only
            good: list[list[Any]] = []
            kept: list[RequestRecord] = []
            for rec, row in zip(built, rows, strict=True):
                if self._storable(row, rec.id):
                    good.append(row)
                    kept.append(rec)
            built[:] = kept
            captured[:] = [raw for raw in captured if self._storable(raw, raw[0])]
            return orjson.dumps([drops, good, ask, captured]) + b"\n"

    def _storable(self, row: list[Any], rid: object) -> bool:
        try:
            orjson.dumps(row)
        except TypeError as exc:
            log.error("request log: record %s cannot be stored: %s", rid, exc)
            self._settle(1, lost=1)
            return False
        return True

    def _pump(self, writer: _Writer) -> None:
        """Write as much of the backlog as the pipe takes; come back later for the rest."""
        try:
            n = os.write(writer.fd, writer.backlog)
        except BlockingIOError:
            n = 0
        except OSError:  # the writer is gone (EPIPE): its ack thread reports it
            writer.backlog.clear()
            return
        del writer.backlog[:n]
        if writer.backlog:
            loop = asyncio._get_running_loop()
            if loop is not None and self._retry is not loop:
                self._retry = loop
                loop.call_later(0.005, self._retried)

    def _retried(self) -> None:
        self._retry = None
        self._send()

    # -- control ------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything submitted so far is committed (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        self._drain(deadline)
        target = self._submitted
        with self._progress:
            while self._settled < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(min(left, 0.05))
        return True

    def _drain(self, deadline: float) -> None:
        """Send what is queued, ask for a commit, and wait (this thread) until the
        pipe took all of it."""
        self._send(commit=True)
        while True:
            with self._lock:
                writer = self._writer
                if writer is None or not writer.backlog:
                    return
                self._pump(writer)
                if not writer.backlog:
                    return
                fd = writer.fd
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                select.select([], [fd], [], min(left, 0.05))
            except (OSError, ValueError):
                return

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then let the writer finish and exit."""
        deadline = time.monotonic() + timeout
        self._closing = True  # from here on, submit() drops
        self._drain(deadline)
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.stdin.close()
            except OSError:
                pass
            try:
                writer.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("request log: the writer did not finish in time; stopping it")
                writer.proc.kill()
                writer.proc.wait()
            writer.thread.join(max(0.1, deadline - time.monotonic()))
        if self._sink_thread is not None:
            self._sink_queue.append([])  # the stop mark
            self._sink_wake.set()
            self._sink_thread.join(max(0.1, deadline - time.monotonic()))

    # -- the writer's acknowledgements (a thread per writer) ---------------------------

    def _acks(self, writer: _Writer) -> None:
        assert writer.proc.stdout is not None
        for line in writer.proc.stdout:
            try:
                done, _written, failed = (int(x) for x in line.split())
            except ValueError:
                continue
            new, lost = done - writer.done, failed - writer.failed
            writer.done, writer.failed = done, failed
            committed = new - lost
            self.written += committed
            self._settle(new, lost=lost)
            if committed and self.on_commit is not None:
                self.on_commit(committed)
        code = writer.proc.wait()
        with self._lock:
            if self._writer is writer:  # not a close(): it died
                self._writer = None
                self._restart_at = time.monotonic() + min(
                    RESTART_S[1], RESTART_S[0] * 2 ** min(self._restarts, 5))
                self._restarts += 1
                log.error("request log: the writer process exited (code %s); "
                          "%d record(s) lost; restarting it", code, writer.sent - writer.done)
        lost = writer.sent - writer.done
        if lost:
            self._settle(lost, lost=lost)

    def _revive(self) -> bool:
        """Start a new writer if the last one died long enough ago (request path)."""
        if self._closing or time.monotonic() < self._restart_at:
            return False
        with self._lock:
            if self._writer is None and not self._closing:
                try:
                    self._writer = _Writer(self)
                    self._greet(self._writer)
                except OSError as exc:
                    log.error("request log: cannot start the writer: %s", exc)
                    self._restart_at = time.monotonic() + RESTART_S[1]
                    return False
        return True

    def _settle(self, n: int, *, lost: int = 0) -> None:
        with self._progress:
            self._settled += n
            self.failed += lost
            self._progress.notify_all()

    # -- sinks --------------------------------------------------------------------------

    def _to_sinks(self, built: list[RequestRecord]) -> None:
        if self._sink_thread is None:
            self._sink_thread = threading.Thread(target=self._run_sinks, daemon=True,
                                                 name="interlock-store-sinks")
            self._sink_thread.start()
        self._sink_queue.append(built)
        self._sink_wake.set()

    def _run_sinks(self) -> None:
        while True:
            self._sink_wake.wait()
            self._sink_wake.clear()
            while self._sink_queue:
                batch = self._sink_queue.popleft()
                if not batch:
                    return
                for sink in self.sinks:
                    try:
                        sink(batch)
                    except Exception:  # a sink must not stop the log; say so and go on
                        log.exception("request log: sink %r failed", sink)


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
