"""Several workers open a new SQLite file at once: every one of them gets it.

Switching a new file to WAL takes a lock that SQLite's busy handler does not wait
for (``interlock.runtime.sqlbusy``).  Before the stores waited, the second of two
workers started with ``--workers 2`` on a fresh request log got "database is
locked" and ran without a log; a first conversations request could fail the same way."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

from interlock.runtime.conversations import ConversationStore
from interlock.runtime.logdb import connect


def _held_for_a_while(path: Path) -> threading.Timer:
    """Another process half way through creating ``path``: a write lock, let go in 0.3 s."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE unrelated (x)")

    def release() -> None:
        other.execute("COMMIT")
        other.close()

    timer = threading.Timer(0.3, release)
    timer.start()
    return timer


def test_connect_waits_for_another_connection_setting_up_the_same_new_file(
        tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    timer = _held_for_a_while(path)
    try:
        conn = connect(path, create=True)
    finally:
        timer.join()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 0
    conn.close()


def test_the_conversation_store_waits_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    timer = _held_for_a_while(path)
    try:
        store = ConversationStore(path)
    finally:
        timer.join()
    try:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        store.close()


def _open_and_write(path: str, start: float, n: int, out: multiprocessing.Queue) -> None:
    time.sleep(max(0.0, start - time.time()))
    try:
        conn = connect(path, create=True)
        conn.execute("INSERT INTO requests (id, ts, surface, status, table_hash, worker, "
                     "latency_ms) VALUES (?, 0, 'chat', 200, 'h', ?, 1.0)", (f"r{n}", n))
        conn.close()
        out.put("ok")
    except Exception as exc:  # reported to the test, which names it
        out.put(f"{type(exc).__name__}: {exc}")


def test_workers_opening_a_new_log_together_all_get_it(tmp_path: Path) -> None:
    # two workers (``--workers 2``) on a fresh file, ten times: without the wait, one
    # of the two lost its log in ~4 tries of 10
    ctx = multiprocessing.get_context("fork")
    for attempt in range(10):
        path = str(tmp_path / f"log-{attempt}.db")
        out: multiprocessing.Queue = ctx.Queue()
        start = time.time() + 0.15  # both at once, as Granian starts its workers
        procs = [ctx.Process(target=_open_and_write, args=(path, start, n, out))
                 for n in range(2)]
        for p in procs:
            p.start()
        results = [out.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(10)
        assert results == ["ok", "ok"], f"attempt {attempt}: {results}"
        conn = connect(path)
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
