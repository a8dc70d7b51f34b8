"""The request log's faster writer path (issue 6) stores exactly what the old one did.

``Recorder.capture`` and ``rowbuild.derive`` (one pass over locals), the stored row (the
fields in column order, then the writer's ``stored_row``) and ``metrics.totals_for``
(raw label keys, cached stored keys) were rewritten for speed. The old implementations
live on here, only as the reference: over a generated corpus of requests (successes,
errors, fallbacks, escalations, streams, estimated tokens, unknown models, prompts kept
or not) the records, the stored rows, the ``metric_totals`` deltas, ``GET /v1/logs``
items and the ``/metrics`` text must be identical - the same floats, bit for bit.
"""

from __future__ import annotations

import io
import os
import random
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson
import pytest
from e2e.harness import compile_yaml, config_yaml, prov
from interlock.runtime import metrics
from interlock.runtime.canonical import CanonicalRequest, Usage
from interlock.runtime.classify import Classification, Classifier
from interlock.runtime.decide import Decision, decide
from interlock.runtime.errors import Attempt
from interlock.runtime.logdb import (
    COLUMNS,
    INSERT_SQL,
    SCHEMA_SQL,
    UPSERT_SQL,
    connect,
    ensure_schema,
    frame_row,
)
from interlock.runtime.logwriter import stored_row
from interlock.runtime.record import Recorder, RequestRecord, baselines
from interlock.runtime.redact import prompt_messages
from interlock.runtime.rowbuild import PROMPT_SLOT, RowContext, derive
from interlock.runtime.stats import LogFilter, logs
from interlock.runtime.store import Store
from interlock.runtime.table import DecisionTable
from interlock.runtime.trace import Diagnostics
from obs_support import DEAD, request

# -- the old implementations (reference only) -----------------------------------------

_MTOK = 1_000_000.0
_JSON = frozenset({"tags", "attempts", "verification", "escalation", "prompt"})
_BOOL = frozenset({"stream", "tokens_estimated", "fallback", "escalated"})


def old_build(self: Recorder, diag: Diagnostics, surface: str, status: int,
              cls: Classification | None, decision: Decision | None,
              req: CanonicalRequest | None, usage: Usage | None, error_code: str | None,
              stream: bool, answer: str | None, headers: Sequence[tuple[bytes, bytes]],
              verification: Sequence[Mapping[str, Any]], escalated: bool | None,
              clock: tuple[float, float, float]) -> RequestRecord:
    perf, wall, overhead_ms = clock
    latency_ms = (perf - diag.started) * 1000.0
    rec = RequestRecord(
        id=diag.request_id or self.new_id(), ts=wall - latency_ms / 1000.0,
        surface=surface, status=status, table_hash=self.table_hash, worker=self._worker,
        error_code=error_code, stream=stream, latency_ms=latency_ms,
        overhead_ms=min(overhead_ms, latency_ms), reason=diag.reason,
        cell=diag.cell or None,
    )
    if req is not None:
        rec.requested_model = req.model
        if self.log_prompts:
            rec.source = req
    if cls is not None:
        rec.cell, rec.task, rec.complexity = cls.cell, cls.task, cls.complexity
        rec.sensitivity, rec.modality = cls.sensitivity, cls.modality
        rec.needs, rec.tags, rec.tokens_est = cls.needs, list(cls.tags), cls.tokens
    if decision is not None:
        rec.pinned = decision.pinned
    ok = old_attempts(rec, diag.attempts)
    rec.verification = [dict(v) for v in (verification or diag.checks)]
    rec.escalation = dict(diag.escalation) if diag.escalation else None
    if rec.escalation and rec.escalation.get("to") and rec.escalation["to"] == diag.model:
        rec.escalated = True
    if escalated is not None:
        rec.escalated = escalated
    rec.client_request_id = old_client_id(headers)
    if self.log_prompts and answer is not None:
        rec.answer = answer
    model = self.table.models.get(diag.model) if diag.model else None
    if model is not None and status < 400:
        rec.provider, rec.model, rec.locality = model.provider, model.key, model.locality
        old_tokens(rec, usage, ok, answer)
        cost = (rec.tokens_in * model.price.input + rec.tokens_out * model.price.output) / _MTOK
        rec.cost_usd = cost = round(cost, 10)
        base = baselines(self.table).get(rec.cell or "")
        if base is None:
            rec.baseline_usd = cost
        else:
            rec.baseline_model = base.model
            rec.baseline_usd = round(rec.tokens_in * base.price_in
                                     + rec.tokens_out * base.price_out, 10)
            rec.saved_usd = round(rec.baseline_usd - cost, 10)
    elif diag.provider:
        rec.provider = diag.provider
        rec.model = diag.model or None
    rec.latency_ms = round(rec.latency_ms, 3)
    rec.overhead_ms = round(rec.overhead_ms, 3)
    return rec


def old_tokens(rec: RequestRecord, usage: Usage | None, ok: Attempt | None,
               answer: str | None) -> None:
    if usage is not None and (usage.input_tokens or usage.output_tokens):
        rec.tokens_in, rec.tokens_out = usage.input_tokens, usage.output_tokens
    else:
        rec.tokens_estimated = True
        rec.tokens_in = rec.tokens_est
        rec.tokens_out = (len(answer) + 3) // 4 if answer else 0
    upstream_ms = ok.latency_ms if ok is not None else 0.0
    if rec.stream and ok is not None:
        rec.ttft_ms = upstream_ms
        gen_ms = rec.latency_ms - rec.overhead_ms - upstream_ms
    else:
        gen_ms = upstream_ms
    if rec.tokens_out and gen_ms > 0:
        rec.tokens_per_s = round(rec.tokens_out / (gen_ms / 1000.0), 2)
    if rec.ttft_ms is not None:
        rec.ttft_ms = round(rec.ttft_ms, 3)


def old_attempts(rec: RequestRecord, attempts: list[Attempt]) -> Attempt | None:
    ok: Attempt | None = None
    tried = 0
    for a in attempts:
        rec.attempts.append({"provider": a.provider, "model": a.model, "role": a.role,
                             "outcome": a.outcome, "status": a.status, "error": a.error,
                             "latency_ms": round(a.latency_ms, 3)})
        if a.outcome != "skipped":
            tried += 1
        if a.outcome == "ok":
            ok = a
    rec.fallback = tried > 1 and ok is not None
    rec.escalated = ok is not None and ok.role == "escalation"
    return ok


def old_client_id(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"x-request-id" or name == b"x-client-request-id":
            return value.decode("latin-1")[:128]
    return None


def record_row(rec: RequestRecord) -> list[Any]:
    """The row the writer stores for ``rec``: its fields in column order as the worker
    frames them (``frame_row``), through the writer's ``stored_row``."""
    return stored_row(frame_row(getattr(rec, name) for name in COLUMNS))


def built(recorder: Recorder, args: tuple[Any, ...]) -> RequestRecord:
    """The record ``recorder`` builds in process for one corpus case."""
    return recorder.record_of(recorder.capture(*args))


def old_record_row(rec: RequestRecord) -> tuple[Any, ...]:
    out: list[Any] = []
    for name in COLUMNS:
        value = getattr(rec, name)
        if name in _JSON:
            value = None if value is None else orjson.dumps(value).decode()
        elif name in _BOOL:
            value = int(bool(value))
        out.append(value)
    return tuple(out)


def old_totals_for(batch: Sequence[RequestRecord], *, dropped: int = 0) -> metrics.Totals:
    """Every record adds to the stored keys directly (``_observe`` per histogram)."""
    t: metrics.Totals = {}
    key, add = metrics._key, metrics._add
    dur, ttft, over = metrics.HISTOGRAMS
    for r in batch:
        loc = r.locality or "none"
        cell = r.cell or "none"
        add(t, key("interlock_requests", surface=r.surface, cell=cell, locality=loc,
                   status=str(r.status)), 1.0)
        for a in r.attempts:
            add(t, key("interlock_upstream_attempts", provider=str(a["provider"]),
                       model=str(a["model"]), outcome=str(a["outcome"])), 1.0)
        if r.tokens_in:
            add(t, key("interlock_tokens", direction="input", locality=loc), r.tokens_in)
        if r.tokens_out:
            add(t, key("interlock_tokens", direction="output", locality=loc), r.tokens_out)
        if r.provider and r.cost_usd:
            add(t, key("interlock_cost_usd", provider=r.provider), r.cost_usd)
        if r.baseline_usd:
            add(t, key("interlock_baseline_cost_usd"), r.baseline_usd)
        if r.saved_usd:
            add(t, key("interlock_savings_usd"), r.saved_usd)
        if r.fallback:
            add(t, key("interlock_fallbacks", cell=cell), 1.0)
        if r.escalated:
            add(t, key("interlock_escalations", cell=cell), 1.0)
        metrics._observe(t, dur, r.latency_ms / 1000.0, surface=r.surface, locality=loc)
        if r.ttft_ms is not None:
            metrics._observe(t, ttft, r.ttft_ms / 1000.0, locality=loc)
        metrics._observe(t, over, r.overhead_ms / 1000.0)
    if dropped:
        add(t, key("interlock_recorder_dropped_records"), float(dropped))
    return t


# -- the corpus ---------------------------------------------------------------------

TEXTS = [
    "Say hello in one short sentence.",
    "Write a Python function that parses ISO dates and explain the edge cases step by step.",
    "My card is 4111 1111 1111 1111, is that safe?",
    "Translate 'good morning' to French.",
    "Prove that the square root of two is irrational, then generalise the argument.",
    "",
]


def _corpus(table: DecisionTable, n: int, seed: int) -> list[tuple[Any, ...]]:
    """``n`` argument tuples for ``Recorder.capture`` (after ``self``), varied on every
    input."""
    rng = random.Random(seed)
    clf = Classifier(table.classifier)
    models = list(table.models) + ["gone/unknown-model"]
    providers = sorted({m.provider for m in table.models.values()}) + ["elsewhere"]
    routed = []
    for text in TEXTS:
        for stream in (False, True):
            req = request(text, stream=stream)
            cls = clf.classify(req)
            routed.append((req, cls, decide(table, cls, req)))
    out = []
    for i in range(n):
        req, cls, decision = rng.choice(routed)
        diag = Diagnostics()
        diag.started = 1000.0 + rng.random()
        diag.request_id = f"t-{i:x}"
        diag.cell = rng.choice(["", cls.cell, "other.cell"])
        diag.reason = rng.choice(["", decision.reason, "x" * 40])
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            diag.attempts.append(Attempt(
                rng.choice(providers), rng.choice(models),
                rng.choice(["ok", "error", "skipped"]), rng.choice([None, 200, 500, 429]),
                rng.choice(["", "UpstreamHTTPError: upstream answered 500"]),
                rng.choice([0.0, rng.random() * 3000, 1e-7, 12.3455]),
                role=rng.choice(["primary", "fallback", "escalation"])))
        if rng.random() < 0.8:
            diag.model = rng.choice(models)
            diag.provider = rng.choice(providers)
        elif rng.random() < 0.5:
            diag.provider = rng.choice(providers)
        if rng.random() < 0.3:
            diag.checks = [{"model": diag.model, "stage": "answer", "ok": rng.random() < 0.5,
                            "verdicts": [{"verifier": "empty", "ok": True}]}]
        if rng.random() < 0.2:
            diag.escalation = {"from": rng.choice(models), "to": rng.choice([diag.model, "", None]),
                               "because": "verifier", "outcome": "ok"}
        status = rng.choice([200, 200, 200, 201, 400, 429, 500, 502])
        usage = rng.choice([None, Usage(), Usage(12, 7), Usage(0, 30), Usage(1234, 0),
                            Usage(rng.randrange(1, 10**6), rng.randrange(1, 10**5))])
        answer = rng.choice([None, "", "Hello there, benchmark!", "y" * rng.randrange(1, 999)])
        headers: list[tuple[bytes, bytes]] = [(b"host", b"127.0.0.1")]
        if rng.random() < 0.4:
            headers.append((rng.choice([b"x-request-id", b"x-client-request-id"]),
                            ("c" * rng.randrange(1, 200)).encode()))
        verification = rng.choice([(), (), ({"verifier": "json", "ok": False},)])
        escalated = rng.choice([None, None, True, False])
        perf = diag.started + rng.choice([0.0, 1e-5, rng.random(), rng.random() * 100])
        clock = (perf, 1.79e9 + rng.random() * 1e6,
                 rng.choice([0.0, rng.random(), rng.random() * 200_000]))
        none_cls = rng.random() < 0.15
        out.append((diag, rng.choice(["chat", "messages", "responses"]), status,
                    None if none_cls else cls, None if none_cls else decision,
                    None if none_cls and rng.random() < 0.5 else req, usage,
                    None if status < 400 else rng.choice(["upstream_error", "Timeout"]),
                    req.stream, answer, headers, verification, escalated, clock))
    return out


@pytest.fixture(scope="module")
def table() -> DecisionTable:
    """loc/m-a (local), cloud/m-c and dear/m-d with prices of many digits (so that
    every rounding shows), m-c the baseline of the cells."""
    yaml = config_yaml(
        [prov("loc", DEAD, "ollama", "local", ["m-a"]),
         prov("cloud", DEAD, "openai", "cloud", ["m-c"], quality=90.0),
         prov("dear", DEAD, "openai", "cloud", ["m-d"], quality=95.0)],
        ["loc/m-a", "cloud/m-c", "dear/m-d"])
    prices = iter(["{input: 0.3333337, output: 1.7777771}",
                   "{input: 3.1415926535, output: 14.142135623}"])
    yaml = re.sub(r"\{input: 0\.5, output: 1\.5\}", lambda _: next(prices), yaml)
    table = compile_yaml(yaml)
    assert table.models["dear/m-d"].price.input == 3.1415926535
    return table


def _same(a: Any, b: Any) -> bool:
    """Equal, and the same types all the way down (1 is not 1.0, True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a.hex() == b.hex()
    return bool(a == b)


@pytest.mark.parametrize("log_prompts", [False, True])
def test_records_rows_and_totals_equal_the_old_build(table: DecisionTable,
                                                     log_prompts: bool) -> None:
    recorder = Recorder(table, log_prompts=log_prompts)
    cases = _corpus(table, 3000, seed=6 + log_prompts)
    old = [old_build(recorder, *args) for args in cases]
    new = [built(recorder, args) for args in cases]
    for o, n in zip(old, new, strict=True):
        for f in fields(RequestRecord):
            assert _same(getattr(o, f.name), getattr(n, f.name)), (f.name, o, n)
        assert _same(list(old_record_row(o)), record_row(n))
    for size in (1, 7, 32, 256):
        for k in range(0, len(old), size):
            got = metrics.totals_for(new[k:k + size], dropped=k % 3)
            want = old_totals_for(old[k:k + size], dropped=k % 3)
            assert got.keys() == want.keys()
            assert all(_same(got[key], want[key]) for key in want), k


def test_a_record_without_an_id_gets_the_same_shape_of_id(table: DecisionTable) -> None:
    recorder = Recorder(table)
    args = list(_corpus(table, 1, seed=1)[0])
    args[0].request_id = ""
    rec = built(recorder, args)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", rec.id)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", recorder.new_id())


def _old_db(path: Path, recs: list[RequestRecord]) -> sqlite3.Connection:
    """The rows and totals as the old writer stored them (one batch per 32 records)."""
    conn = connect(path, create=True)
    for k in range(0, len(recs), 32):
        batch = recs[k:k + 32]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_SQL, [old_record_row(r) for r in batch])
        conn.executemany(UPSERT_SQL, [(n, lab, v) for (n, lab), v in
                                   old_totals_for(batch).items()])
        conn.execute("COMMIT")
    return conn


def test_stored_rows_logs_and_metrics_are_byte_for_byte_the_same(table: DecisionTable,
                                                                  tmp_path: Path) -> None:
    recorder = Recorder(table)
    cases = _corpus(table, 700, seed=11)
    old = [old_build(recorder, *args) for args in cases]
    store = Store(tmp_path / "new.db", batch_size=32)
    try:
        for args in cases:  # whole records, as Recorder.record submits with live listeners
            store.submit(built(recorder, args))
        assert store.flush(30.0)
    finally:
        store.close()
    _assert_stored_as_by_the_old_build(tmp_path, old)


def _assert_stored_as_by_the_old_build(tmp_path: Path, old: list[RequestRecord]) -> None:
    """``new.db`` holds the rows, log items, totals and metrics the old build stores."""
    was = _old_db(tmp_path / "old.db", old)
    now = connect(tmp_path / "new.db")
    try:
        for sql in ("SELECT * FROM requests ORDER BY seq",
                    "SELECT name, labels, value FROM metric_totals ORDER BY name, labels"):
            a, b = was.execute(sql).fetchall(), now.execute(sql).fetchall()
            assert [tuple(r) for r in a] == [tuple(r) for r in b]
            assert _same([tuple(r) for r in a], [tuple(r) for r in b])
        f = LogFilter(limit=500)
        assert orjson.dumps(logs(was, f)) == orjson.dumps(logs(now, f))
        assert metrics.render(metrics.read_totals(was)) == \
            metrics.render(metrics.read_totals(now))
    finally:
        was.close()
        now.close()


_SCHEMA_1_INDEXES = {
    "DROP INDEX IF EXISTS requests_id": "CREATE INDEX requests_id ON requests(id)",
    "DROP INDEX IF EXISTS requests_cell": "CREATE INDEX requests_cell ON requests(cell, ts)",
    "DROP INDEX IF EXISTS requests_model": "CREATE INDEX requests_model ON requests(model, ts)",
}


def test_a_schema_1_log_keeps_its_rows_and_only_the_ts_index(tmp_path: Path) -> None:
    assert set(_SCHEMA_1_INDEXES) <= set(SCHEMA_SQL)
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    for stmt in SCHEMA_SQL:  # schema 1 made the indexes that schemas 2 and 3 drop
        conn.execute(_SCHEMA_1_INDEXES.get(stmt, stmt))
    conn.execute("INSERT INTO requests (id, ts, surface, status, table_hash, worker, "
                 "latency_ms) VALUES ('kept', 1.0, 'chat', 200, 'h', 1, 2.0)")
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'requests_id'").fetchone()
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    conn = connect(path, create=True)
    try:
        ensure_schema(conn)  # again: a no-op
        names = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests'")}
        assert names == {"requests_ts"}
        assert conn.execute("SELECT id FROM requests").fetchall()[0][0] == "kept"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    finally:
        conn.close()


def test_record_row_keeps_bools_and_json_as_before() -> None:
    rec = RequestRecord(id="r", ts=time.time(), surface="chat", status=200, table_hash="h",
                        worker=1, stream=True, tags=["a"], escalation={"to": "m"},
                        fallback=False, prompt=[{"role": "user", "content": "hi"}])
    assert _same(record_row(rec), list(old_record_row(rec)))


@pytest.mark.parametrize("log_prompts", [False, True])
def test_a_capture_sent_as_json_derives_the_same_row(table: DecisionTable,
                                                     log_prompts: bool) -> None:
    """What the writer process derives from a capture that crossed the pipe as JSON is
    what the worker derives from it in memory, and what the old build stored."""
    recorder = Recorder(table, log_prompts=log_prompts)
    ctx = RowContext.from_json(orjson.loads(orjson.dumps(recorder.row_context.to_json())))
    assert ctx == recorder.row_context
    for args in _corpus(table, 2000, seed=21 + log_prompts):
        raw = recorder.capture(*args)
        old = old_build(recorder, *args)
        if raw[PROMPT_SLOT] is not None:  # the store turns the request into messages
            raw[PROMPT_SLOT] = prompt_messages(raw[PROMPT_SLOT], scrub=False)
            old.prompt, old.source = raw[PROMPT_SLOT], None
        here = derive(raw, recorder.row_context)
        there = derive(orjson.loads(orjson.dumps(raw)), ctx)
        assert _same(stored_row(list(here)), stored_row(list(there)))
        assert _same(stored_row(there), list(old_record_row(old)))


def test_captures_store_the_same_rows_logs_and_metrics_as_the_old_build(
        table: DecisionTable, tmp_path: Path) -> None:
    recorder = Recorder(table)
    cases = _corpus(table, 700, seed=12)
    old = [old_build(recorder, *args) for args in cases]
    store = Store(tmp_path / "new.db", batch_size=32)
    store.set_row_context(recorder.row_context)
    try:
        for args in cases:  # as Recorder.record queues them: captured, not built
            assert store.submit(recorder.capture(*args))
        assert store.flush(30.0)
        assert store.failed == 0
    finally:
        store.close()
    _assert_stored_as_by_the_old_build(tmp_path, old)


def test_a_capture_before_the_row_context_is_counted_as_failed(tmp_path: Path,
                                                               table: DecisionTable) -> None:
    from interlock.runtime import logwriter
    recorder = Recorder(table)
    raw = recorder.capture(*_corpus(table, 1, seed=3)[0])
    conn = connect(tmp_path / "log.db", create=True)
    writer = logwriter.Writer(conn, io.BytesIO())
    rows: list[list[Any]] = []
    writer._take(orjson.dumps([0, [], 0, [raw]]), rows)
    assert (rows, writer.failed, writer.done) == ([], 1, 1)
    writer._take(orjson.dumps({"context": recorder.row_context.to_json()}), rows)
    assert writer._take(orjson.dumps([0, [], 1, [raw, ["not", "a", "capture"]]]), rows)
    assert len(rows) == 1 and (writer.failed, writer.done) == (2, 2)
    conn.close()


def test_a_sink_gets_records_derived_from_captures(table: DecisionTable,
                                                   tmp_path: Path) -> None:
    """Span sinks need record objects: the store derives them from the captures it sends
    (the verdicts decoded back from the JSON text they were framed as)."""
    recorder = Recorder(table)
    cases = _corpus(table, 60, seed=5)
    got: list[RequestRecord] = []
    store = Store(tmp_path / "log.db")
    store.set_row_context(recorder.row_context)
    store.sinks.append(got.extend)
    try:
        for args in cases:
            store.submit(recorder.capture(*args))
        assert store.flush(10.0)
    finally:
        store.close()
    want = [built(recorder, args) for args in cases]
    assert [r.id for r in got] == [w.id for w in want]
    for r, w in zip(got, want, strict=True):
        for f in fields(RequestRecord):
            assert _same(getattr(r, f.name), getattr(w, f.name)), f.name


def test_a_restarted_writer_gets_the_row_context_again(table: DecisionTable,
                                                       tmp_path: Path) -> None:
    """A writer that died is replaced; the new one derives captures too (the store sends
    it the row context first, as it did to the first one)."""
    import signal

    recorder = Recorder(table)
    cases = _corpus(table, 4, seed=9)
    store = Store(tmp_path / "log.db")
    store.set_row_context(recorder.row_context)
    try:
        assert store.submit(recorder.capture(*cases[0]))
        assert store.flush(10.0)
        assert store._writer is not None
        first = store._writer.proc
        os.kill(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while store._writer is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        store._restart_at = 0.0  # the back-off is over
        for args in cases[1:]:
            assert store.submit(recorder.capture(*args))
        assert store._writer is not None and store._writer.proc.pid != first.pid
        assert store.flush(10.0)
        assert store.failed == 0
    finally:
        store.close()
    conn = connect(tmp_path / "log.db")
    try:
        got = [r[0] for r in conn.execute("SELECT id FROM requests ORDER BY seq")]
    finally:
        conn.close()
    assert got == [args[0].request_id for args in cases]
