"""The request log's writer process: what it does when the worker or it dies, when it
is stopped, when the pipe is full, and what the event loop does (and does not) do."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import fields
from pathlib import Path

import orjson
import pytest
from interlock.runtime import logwriter
from interlock.runtime.logdb import COLUMNS, connect, frame_row
from interlock.runtime.record import RequestRecord
from interlock.runtime.store import Store


def rec(i: int, **kw: object) -> RequestRecord:
    base: dict[str, object] = dict(id=f"r{i}", ts=time.time(), surface="chat", status=200,
                                   table_hash="sha256:x", worker=1, client_request_id=str(i),
                                   latency_ms=12.5, attempts=[{"provider": "p", "model": "p/m",
                                                               "outcome": "ok"}])
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


def record_json(rec: RequestRecord) -> dict[str, object]:
    """``rec``'s stored fields by column, as the worker frames them (and JSONL holds them)."""
    return {name: getattr(rec, name) for name in COLUMNS}


def ids(path: Path) -> list[str]:
    conn = connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT client_request_id FROM requests ORDER BY seq")]
    finally:
        conn.close()


def wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_columns_are_the_records_fields_but_source() -> None:
    assert COLUMNS == tuple(f.name for f in fields(RequestRecord) if f.name != "source")


def test_on_the_event_loop_records_are_framed_after_the_request_not_in_submit(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    writer = store._writer
    assert writer is not None

    async def main() -> None:
        for i in range(3):
            assert store.submit(rec(i))
        assert writer.sent == 0  # submit only queues: the request path does no log work
        await asyncio.sleep(0.05)
        assert writer.sent == 3  # one callback framed and sent them
        assert await asyncio.to_thread(store.flush, 10.0)  # as GET /v1/logs does

    try:
        asyncio.run(main())
        assert ids(tmp_path / "log.db") == ["0", "1", "2"]
    finally:
        store.close()


def test_a_loop_that_stopped_before_its_send_does_not_hold_up_the_next(
        tmp_path: Path) -> None:
    # one store used from two asyncio.run() calls (a CLI or test pattern): the first
    # loop ends before its send timer fires; the second loop must still send
    store = Store(tmp_path / "log.db")

    async def submit(i: int) -> None:
        assert store.submit(rec(i))

    async def submit_and_wait(i: int) -> None:
        assert store.submit(rec(i))
        deadline = time.monotonic() + 10
        while store.pending and time.monotonic() < deadline:  # no flush(): the loop sends
            await asyncio.sleep(0.01)

    try:
        asyncio.run(submit(0))
        asyncio.run(submit_and_wait(1))
        assert store.pending == 0
        assert ids(tmp_path / "log.db") == ["0", "1"]
    finally:
        store.close()


def test_a_dead_writer_is_replaced_and_what_it_held_counts_as_failed(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    store = Store(db)
    try:
        for i in range(3):
            store.submit(rec(i))
        assert store.flush(10.0)
        assert store._writer is not None
        first = store._writer.proc
        os.kill(first.pid, signal.SIGSTOP)  # it cannot read: the next two stay unacknowledged
        store.submit(rec(3))
        store.submit(rec(4))
        assert store.writer_up
        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: store._writer is None and store.pending == 0)
        assert store.failed == 2 and not store.writer_up
        assert store.submit(rec(5)) is False  # no writer yet (restart back-off): dropped
        assert store.dropped == 1
        store._restart_at = 0.0  # the back-off is over
        assert store.submit(rec(6)) is True
        assert store._writer is not None and store._writer.proc.pid != first.pid
        assert store.writer_up
        assert store.flush(10.0)
        assert ids(db) == ["0", "1", "2", "6"]
    finally:
        store.close()


def test_ctrl_c_and_sigterm_do_not_stop_the_writer(tmp_path: Path) -> None:
    # a Ctrl-C or a service manager's stop reaches the whole process group; the
    # writer must still be there to write what its worker sends while it stops
    store = Store(tmp_path / "log.db")
    try:
        assert store._writer is not None
        pid = store._writer.proc.pid
        store.submit(rec(0))  # acknowledged: the writer is past installing its handlers
        assert store.flush(10.0)
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        store.submit(rec(1))
        assert store.flush(10.0)
        assert store._writer is not None and store._writer.proc.pid == pid
        assert store._writer.proc.poll() is None
    finally:
        store.close()
    assert ids(tmp_path / "log.db") == ["0", "1"]


def test_a_full_pipe_makes_a_backlog_not_a_wait(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    assert store._writer is not None
    pid = store._writer.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        big = "word " * 60_000  # 300 KB each: 10 of them overflow a 1 MiB pipe
        results = [store.submit(rec(i, answer=big)) for i in range(10)]
        assert results == [True] * 10
        assert store._writer.backlog  # held by the worker, not blocking it
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        assert store.flush(30.0)
        assert ids(tmp_path / "log.db") == [str(i) for i in range(10)]
    finally:
        store.close()


HOST = textwrap.dedent("""
    import sys, time
    from interlock.runtime.record import RequestRecord
    from interlock.runtime.store import Store
    store = Store(sys.argv[1])
    for i in range(int(sys.argv[2])):
        store.submit(RequestRecord(id=f"r{i}", ts=time.time(), surface="chat", status=200,
                                   table_hash="sha256:x", worker=1, client_request_id=str(i)))
    print(store._writer.proc.pid, flush=True)
    time.sleep(60)
""")


def test_a_killed_worker_loses_nothing_it_handed_over(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    host = subprocess.Popen([sys.executable, "-c", HOST, str(db), "500"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        writer = int(host.stdout.readline())
        os.kill(host.pid, signal.SIGKILL)  # no close(), no flush()
    finally:
        host.wait(10)
    # the writer reads to the end of its pipe, commits, and exits on its own
    wait_for(lambda: not os.path.exists(f"/proc/{writer}") or
             open(f"/proc/{writer}/stat").read().split()[2] == "Z", timeout=20)
    assert ids(db) == [str(i) for i in range(500)]


def test_the_writer_skips_an_unreadable_frame_and_reports_progress(tmp_path: Path) -> None:
    conn = connect(tmp_path / "log.db", create=True)
    acks = io.BytesIO()
    jsonl = tmp_path / "log.jsonl"
    writer = logwriter.Writer(conn, acks, jsonl=str(jsonl))
    r, w = os.pipe()
    good = [frame_row(record_json(rec(i)).values()) for i in range(2)]
    os.write(w, b"not json\n" + orjson.dumps([3, good]) + b"\n")
    os.close(w)
    writer.run(r)
    os.close(r)
    assert acks.getvalue().splitlines()[-1] == b"2 2 0"
    rows = conn.execute("SELECT client_request_id, attempts FROM requests").fetchall()
    assert [x[0] for x in rows] == ["0", "1"]
    assert orjson.loads(rows[0][1]) == [{"provider": "p", "model": "p/m", "outcome": "ok"}]
    dropped = conn.execute("SELECT value FROM metric_totals WHERE name = "
                           "'interlock_recorder_dropped_records'").fetchone()
    assert dropped[0] == 3
    lines = [orjson.loads(x) for x in jsonl.read_bytes().splitlines()]
    assert lines == [record_json(rec(i)) | {"ts": lines[i]["ts"]} for i in range(2)]
    conn.close()


def test_a_batch_the_database_refuses_is_counted_not_fatal(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    conn = connect(db, create=True)
    conn.execute("CREATE TRIGGER no BEFORE INSERT ON requests WHEN NEW.id = 'r1' "
                 "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    acks = io.BytesIO()
    writer = logwriter.Writer(conn, acks, batch_size=1)
    r, w = os.pipe()
    rows = [frame_row(record_json(rec(i)).values()) for i in range(3)]
    os.write(w, orjson.dumps([0, rows]) + b"\n")
    os.close(w)
    writer.run(r)
    os.close(r)
    assert acks.getvalue().splitlines()[-1] == b"3 2 1"
    assert [x[0] for x in conn.execute("SELECT id FROM requests")] == ["r0", "r2"]
    conn.close()


@pytest.mark.parametrize("bad", [b"[1]", b"{}", b"[0, 5]"])
def test_odd_frames_do_not_stop_the_writer(tmp_path: Path, bad: bytes) -> None:
    conn = connect(tmp_path / "log.db", create=True)
    writer = logwriter.Writer(conn, io.BytesIO())
    r, w = os.pipe()
    os.write(w, bad + b"\n" + orjson.dumps([0, [frame_row(record_json(rec(7)).values())]]) + b"\n")
    os.close(w)
    writer.run(r)
    os.close(r)
    assert [x[0] for x in conn.execute("SELECT id FROM requests")] == ["r7"]
    conn.close()


def test_a_missing_directory_fails_at_start_up(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises((OSError, sqlite3.Error)):
        Store(blocker / "log.db")


def test_under_load_rows_wait_for_larger_transactions(tmp_path: Path) -> None:
    """Rows that came at BUSY_RATE or faster make the next transaction wait the busy
    delay; a slow trickle is committed after the short one."""
    import threading

    db = tmp_path / "log.db"
    connect(db, create=True).close()
    acks = io.BytesIO()
    writer = logwriter.Writer(None, acks, commit_delay_s=0.01,  # type: ignore[arg-type]
                              busy_delay_s=30.0)
    r, w = os.pipe()

    def run() -> None:  # the connection belongs to the thread that uses it
        writer.conn = connect(db)
        try:
            writer.run(r)
        finally:
            writer.conn.close()

    runner = threading.Thread(target=run)
    runner.start()

    def frame(first: int, n: int) -> bytes:
        rows = [frame_row(record_json(rec(i)).values()) for i in range(first, first + n)]
        return orjson.dumps([0, rows]) + b"\n"

    try:
        os.write(w, frame(0, 1))  # one row: committed after the short delay
        wait_for(lambda: writer.done == 1)
        assert not writer._busy
        os.write(w, frame(1, 200))  # 200 rows at once: far above the rate
        wait_for(lambda: writer.done == 201)
        assert writer._busy
        os.write(w, frame(201, 1))  # waits for company now (30 s), not 10 ms
        time.sleep(0.3)
        assert writer.done == 201
    finally:
        os.close(w)  # end of input commits at once
        runner.join(10.0)
        os.close(r)
    assert writer.done == 202 and writer.failed == 0
    assert len(ids(db)) == 202


def test_verdicts_framed_as_text_are_stored_and_copied_as_json(tmp_path: Path) -> None:
    verdicts = [{"model": "p/m", "stage": "answer", "ok": False,
                 "verdicts": [{"verifier": "empty", "ok": False, "reason": "empty answer"}]}]
    escalation = {"from": "p/m", "to": "q/n", "because": ["empty"]}
    framed = frame_row(record_json(rec(1, verification=verdicts, escalation=escalation,
                                       escalated=True)).values())
    assert framed[COLUMNS.index("verification")] == orjson.dumps(verdicts).decode()
    assert framed[COLUMNS.index("escalation")] == orjson.dumps(escalation).decode()
    conn = connect(tmp_path / "log.db", create=True)
    jsonl = tmp_path / "log.jsonl"
    writer = logwriter.Writer(conn, io.BytesIO(), jsonl=str(jsonl))
    r, w = os.pipe()
    os.write(w, orjson.dumps([0, [framed]]) + b"\n")
    os.close(w)
    writer.run(r)
    os.close(r)
    row = conn.execute("SELECT verification, escalation, escalated FROM requests").fetchone()
    assert (orjson.loads(row[0]), orjson.loads(row[1]), row[2]) == (verdicts, escalation, 1)
    line = orjson.loads(jsonl.read_bytes())
    assert (line["verification"], line["escalation"]) == (verdicts, escalation)
    conn.close()


def test_a_new_log_has_16_kb_pages_and_an_existing_one_keeps_its_own(tmp_path: Path) -> None:
    new = connect(tmp_path / "new.db", create=True)
    assert new.execute("PRAGMA page_size").fetchone()[0] == 16384
    new.close()
    old_path = tmp_path / "old.db"
    old = sqlite3.connect(old_path)
    old.execute("PRAGMA page_size = 4096")
    old.execute("CREATE TABLE t (x)")
    old.close()
    again = connect(old_path, create=True)
    assert again.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert again.execute("SELECT count(*) FROM requests").fetchone()[0] == 0
    again.close()
