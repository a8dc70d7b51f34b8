"""The request log's store: batching off the hot path, drops, crash safety, retention,
redaction, the JSONL sink, and the recorder's cost and baseline figures."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest
from interlock.runtime.record import Recorder, RequestRecord, baselines, db_path_for
from interlock.runtime.store import Store, apply_retention, connect, open_recorder
from obs_support import simulate, two_model_table


def rec(i: int, **kw: object) -> RequestRecord:
    base: dict[str, object] = dict(id=f"r{i}", ts=time.time(), surface="chat", status=200,
                                   table_hash="sha256:x", worker=1, client_request_id=str(i))
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


def rows(path: Path) -> list[sqlite3.Row]:
    conn = connect(path)
    try:
        return conn.execute("SELECT * FROM requests ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_records_are_written_in_batches_by_the_writer_process(tmp_path: Path) -> None:
    batches: list[int] = []
    store = Store(tmp_path / "log.db", batch_size=10,
                  on_commit=batches.append)
    try:
        for i in range(25):
            assert store.submit(rec(i)) is True
        assert store.flush(10.0)
        assert sum(batches) == 25 and max(batches) <= 10 and len(batches) >= 3
        got = rows(tmp_path / "log.db")
        assert [r["client_request_id"] for r in got] == [str(i) for i in range(25)]
    finally:
        store.close()


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db", queue_size=5)
    assert store._writer is not None
    writer = store._writer.proc.pid
    os.kill(writer, signal.SIGSTOP)  # nothing is acknowledged: the records stay in flight
    try:
        results = [store.submit(rec(i)) for i in range(8)]
        assert results == [True] * 5 + [False] * 3
        assert store.dropped == 3 and store.pending == 5
    finally:
        os.kill(writer, signal.SIGCONT)
    try:
        assert store.flush(10.0)
        assert store.pending == 0
        assert len(rows(tmp_path / "log.db")) == 5
        conn = connect(tmp_path / "log.db")
        dropped = conn.execute("SELECT value FROM metric_totals WHERE name = "
                               "'interlock_recorder_dropped_records'").fetchone()
        conn.close()
        assert dropped[0] == 3
    finally:
        store.close()


def test_close_writes_what_is_still_queued(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db", batch_size=1000)
    for i in range(7):
        store.submit(rec(i))
    store.close()
    assert len(rows(tmp_path / "log.db")) == 7
    assert store.submit(rec(99)) is False  # closed: dropped, not queued forever


CHILD = textwrap.dedent("""
    import sys, time
    from interlock.runtime.record import RequestRecord
    from interlock.runtime.store import Store
    done = 0
    def committed(n):
        global done
        done += n
        print(done, flush=True)
    store = Store(sys.argv[1], batch_size=200, on_commit=committed)
    i = 0
    while True:
        store.submit(RequestRecord(id=f"r{i}", ts=time.time(), surface="chat", status=200,
                                   table_hash="sha256:x", worker=1, client_request_id=str(i),
                                   reason="x" * 2000, tags=["t" * 100] * 20))
        i += 1
        if i % 50 == 0:
            time.sleep(0.001)
""")


@pytest.mark.parametrize("commits_before_kill", [3, 12])
def test_sigkill_mid_run_loses_at_most_the_unwritten_tail(tmp_path: Path,
                                                          commits_before_kill: int) -> None:
    db = tmp_path / "crash.db"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        acked = 0
        for _ in range(commits_before_kill):
            line = proc.stdout.readline()
            assert line, "the writer process died"
            acked = int(line)
        os.kill(proc.pid, signal.SIGKILL)  # mid-run: the writer is busy writing
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = [int(r[0]) for r in conn.execute(
            "SELECT client_request_id FROM requests ORDER BY seq")]
        # every acknowledged batch is there, and what is there is a gap-free prefix:
        # batches are all-or-nothing
        assert len(ids) >= acked > 0
        assert ids == list(range(len(ids)))
        conn.execute("INSERT INTO metric_totals VALUES ('x', '{}', 1)")  # still writable
    finally:
        conn.close()
    again = Store(db)
    again.submit(rec(10**6))
    assert again.flush(10.0)
    again.close()


def test_retention_by_age_and_by_row_count(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    now = time.time()
    store = Store(db)
    for i in range(10):
        store.submit(rec(i, ts=now - (10 - i) * 86400))  # 10 .. 1 days old
    assert store.flush(10.0)
    store.close()
    conn = connect(db)
    assert apply_retention(conn, retention_days=5.5, max_rows=None, now=now) == 5
    left = [r[0] for r in conn.execute("SELECT client_request_id FROM requests ORDER BY seq")]
    assert left == ["5", "6", "7", "8", "9"]
    assert apply_retention(conn, retention_days=None, max_rows=2, now=now) == 3
    left = [r[0] for r in conn.execute("SELECT client_request_id FROM requests ORDER BY seq")]
    assert left == ["8", "9"]
    # counters are not rows: retention never makes a Prometheus counter go down
    total = conn.execute("SELECT SUM(value) FROM metric_totals "
                         "WHERE name = 'interlock_requests'").fetchone()[0]
    assert total == 10
    conn.close()


def test_the_writer_applies_retention_itself(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    store = Store(db, max_rows=3, retention_interval_s=0.0)
    for i in range(6):
        store.submit(rec(i))
    assert store.flush(10.0)
    deadline = time.monotonic() + 5
    while len(rows(db)) > 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    store.close()
    assert [r["client_request_id"] for r in rows(db)] == ["3", "4", "5"]


CANARY = "sk-proj-Q7v3XfK9mZ2pL8wR4tY6uI1oA5sD0gH3jK7lN9bV2cX4zQ8e"
EMAIL = "jane.canary@acme-corp.io"


@pytest.mark.parametrize("log_prompts", [True, False])
def test_prompts_are_redacted_or_not_stored(tmp_path: Path, log_prompts: bool) -> None:
    table = two_model_table(log_prompts=str(log_prompts).lower())
    assert table.server.log_prompts is log_prompts
    db, jsonl = tmp_path / "log.db", tmp_path / "log.jsonl"
    recorder = Recorder(table, Store(db, jsonl=jsonl))
    text = f"My key is {CANARY} and mail {EMAIL}; please summarise the meeting notes."
    simulate(recorder, table, text, answer=f"Sure. I saw {CANARY} and wrote to {EMAIL}.")
    assert recorder.flush(10.0)
    recorder.close()
    raw_db = b"".join(p.read_bytes() for p in tmp_path.glob("log.db*"))
    raw_jsonl = jsonl.read_bytes()
    for raw in (raw_db, raw_jsonl):
        assert CANARY.encode() not in raw and CANARY[8:30].encode() not in raw
        assert EMAIL.encode() not in raw
    (row,) = rows(db)
    line = orjson.loads(raw_jsonl.splitlines()[0])
    if log_prompts:
        prompt = orjson.loads(row["prompt"])
        assert prompt[0]["role"] == "user"
        assert "summarise the meeting notes" in prompt[0]["content"]
        assert "[redacted:" in prompt[0]["content"]
        assert row["answer"].startswith("Sure. I saw [redacted:")
        assert line["prompt"] == prompt
    else:
        assert row["prompt"] is None and row["answer"] is None
        assert line["prompt"] is None and line["answer"] is None
        assert b"meeting notes" not in raw_db and b"meeting notes" not in raw_jsonl


def test_cost_baseline_and_savings(tmp_path: Path) -> None:
    table = two_model_table()
    recorder = Recorder(table)  # no store: the record is still built and returned
    local = simulate(recorder, table, "Say hello.", usage=(1000, 500))
    assert local.locality == "local" and local.model == "loc/m-a"
    assert local.cost_usd == 0.0
    assert local.baseline_model == "cloud/m-c"
    # 1000 in at $0.5/M + 500 out at $1.5/M
    assert local.baseline_usd == pytest.approx(0.0005 + 0.00075)
    assert local.saved_usd == pytest.approx(local.baseline_usd)
    fell_back = simulate(recorder, table, "Say hello.", fail_first=True, usage=(1000, 500))
    assert fell_back.model == "cloud/m-c" and fell_back.fallback
    assert fell_back.cost_usd == pytest.approx(0.00125)
    assert fell_back.saved_usd == pytest.approx(0.0)
    assert [a["outcome"] for a in fell_back.attempts] == ["error", "ok"]
    failed = simulate(recorder, table, "Say hello.", status=502, error_code="all_failed")
    assert failed.cost_usd == failed.saved_usd == 0 and failed.model is None


def test_private_cells_use_the_cheapest_comparable_cloud_model_as_baseline() -> None:
    table = two_model_table()
    b = baselines(table)
    private = [k for k, c in table.cells.items() if c.sensitivity == "private"]
    public = [k for k, c in table.cells.items() if c.sensitivity == "public"]
    assert private and public
    assert all(not any(not c.local for c in table.cells[k].chain) for k in private)
    for k in private + public:
        base = b[k]
        assert base is not None and base.model == "cloud/m-c", k


def test_the_db_path_rules(tmp_path: Path) -> None:
    table = two_model_table()
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert db_path_for(table, env) == tmp_path / "xdg" / "interlock" / "interlock.db"
    configured = table.model_copy(update={"server": table.server.model_copy(update={
        "store": table.server.store.model_copy(update={"path": str(tmp_path / "c.db")})})})
    assert db_path_for(configured, env) == tmp_path / "c.db"
    env["INTERLOCK_DB"] = str(tmp_path / "env.db")
    assert db_path_for(configured, env) == tmp_path / "env.db"


def test_open_recorder_respects_enabled_false(tmp_path: Path) -> None:
    table = two_model_table()
    off = table.model_copy(update={"server": table.server.model_copy(update={
        "store": table.server.store.model_copy(update={"enabled": False})})})
    assert open_recorder(off, {"INTERLOCK_DB": str(tmp_path / "x.db")}).store is None
    assert not (tmp_path / "x.db").exists()
    on = open_recorder(table, {"INTERLOCK_DB": str(tmp_path / "x.db")})
    try:
        assert on.store is not None and (tmp_path / "x.db").exists()
    finally:
        on.close()
