"""Stats math on a known set of records, log filters, the Prometheus exposition,
the live event bus and the OpenTelemetry spans."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from interlock.runtime import metrics, stats
from interlock.runtime.events import EventBus
from interlock.runtime.record import Recorder, RequestRecord
from interlock.runtime.store import Store, connect
from obs_support import simulate, two_model_table

NOW = time.time()


def r(i: int, **kw: object) -> RequestRecord:
    base: dict[str, object] = dict(id=f"r{i}", ts=NOW - 100 + i, surface="chat", status=200,
                                   table_hash="sha256:x", worker=1)
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


KNOWN = [
    # ten local answers in cell A, latencies 10..100 ms, 10 tokens/s-ish figures
    *[r(i, cell="a.low.public.text", model="loc/m", provider="loc", locality="local",
        latency_ms=10.0 * (i + 1), tokens_in=100, tokens_out=50, tokens_per_s=50.0,
        baseline_usd=0.001, saved_usd=0.001, attempts=[{"provider": "loc", "model": "loc/m",
        "role": "primary", "outcome": "ok", "status": 200, "error": "", "latency_ms": 1.0}])
      for i in range(10)],
    # four cloud answers in cell B, one after a fallback, one escalated
    *[r(10 + i, cell="b.high.public.text", model="cloud/c", provider="cloud",
        locality="cloud", latency_ms=1000.0 + i, tokens_in=200, tokens_out=100,
        tokens_per_s=100.0, cost_usd=0.002, baseline_usd=0.002, fallback=i == 0,
        escalated=i == 1, ttft_ms=300.0 + i, stream=True)
      for i in range(4)],
    # two errors in cell B: no model answered
    *[r(20 + i, cell="b.high.public.text", status=502, error_code="all_candidates_failed",
        latency_ms=5.0, attempts=[{"provider": "cloud", "model": "cloud/c", "role": "primary",
        "outcome": "error", "status": 500, "error": "boom", "latency_ms": 4.0}])
      for i in range(2)],
    # a private request refused long ago (outside ?since)
    r(30, ts=NOW - 7200, cell="a.low.private.text", sensitivity="private", status=503,
      error_code="private_no_local", latency_ms=1.0),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stats") / "log.db"
    store = Store(path)
    for rec in KNOWN:
        store.submit(rec)
    assert store.flush(10.0)
    store.close()
    return path


def test_totals(db: Path) -> None:
    with connect(db) as conn:
        s = stats.stats(conn)
    assert s["requests"] == 17 and s["ok"] == 14 and s["errors"] == 3
    assert (s["local"], s["cloud"]) == (10, 4)
    assert s["local_share"] == round(10 / 14, 4)
    assert (s["escalated"], s["fallen_back"], s["refused_private"]) == (1, 1, 1)
    assert s["cost_usd"] == pytest.approx(0.008)
    assert s["baseline_usd"] == pytest.approx(0.018)
    assert s["saved_usd"] == pytest.approx(0.010)
    assert (s["tokens_in"], s["tokens_out"]) == (1800, 900)
    # token-weighted: (500 + 400 tokens) / (500/50 + 400/100 seconds)
    assert s["tokens_per_s"] == pytest.approx(900 / 14, abs=0.1)
    # nearest rank over the 14 answered: p50 = 7th = 70 ms, p95 = 14th = 1003 ms
    assert s["latency_ms"] == {"p50": 70.0, "p95": 1003.0}
    assert s["ttft_ms"] == {"p50": 301.0, "p95": 303.0}


def test_by_cell_and_by_model(db: Path) -> None:
    with connect(db) as conn:
        s = stats.stats(conn)
    cells = {c["cell"]: c for c in s["by_cell"]}
    a, b = cells["a.low.public.text"], cells["b.high.public.text"]
    assert (a["requests"], a["local"], a["errors"]) == (10, 10, 0)
    assert a["latency_ms"] == {"p50": 50.0, "p95": 100.0}
    assert (b["requests"], b["cloud"], b["errors"], b["fallen_back"]) == (6, 4, 2, 1)
    assert b["latency_ms"] == {"p50": 1001.0, "p95": 1003.0}
    models = {m["model"]: m for m in s["by_model"]}
    assert set(models) == {"loc/m", "cloud/c"}
    assert models["cloud/c"]["locality"] == "cloud"
    assert models["cloud/c"]["cost_usd"] == pytest.approx(0.008)
    assert models["loc/m"]["tokens_per_s"] == 50.0


def test_since_excludes_older_records(db: Path) -> None:
    with connect(db) as conn:
        s = stats.stats(conn, since=stats.parse_since("1h"))
    assert s["requests"] == 16 and s["refused_private"] == 0


def test_parse_since() -> None:
    assert stats.parse_since("30m", now=10_000.0) == 10_000.0 - 1800
    assert stats.parse_since("2d", now=10**6) == 10**6 - 172800
    assert stats.parse_since("1700000000") == 1_700_000_000.0
    assert stats.parse_since("2024-01-01T00:00:00Z") == 1704067200.0
    assert stats.parse_since(None) is None
    with pytest.raises(stats.BadQuery, match="since"):
        stats.parse_since("yesterday-ish")


def test_log_filters(db: Path) -> None:
    with connect(db) as conn:
        def ids(**kw: object) -> list[str]:
            return [x["id"] for x in stats.logs(conn, stats.LogFilter(**kw))]  # type: ignore[arg-type]

        assert ids(limit=3) == ["r30", "r21", "r20"]  # newest first (by seq)
        assert ids(cell="b.*", status="error") == ["r21", "r20"]
        assert ids(model="c", limit=100) == ["r13", "r12", "r11", "r10"]
        assert ids(provider="loc", limit=2) == ["r9", "r8"]
        assert ids(status="503") == ["r30"]
        seq = stats.logs(conn, stats.LogFilter(limit=100))[-1]["seq"]  # the first row
        assert ids(after=seq, limit=2) == ["r1", "r2"]  # following: oldest first
        with pytest.raises(stats.BadQuery):
            stats.LogFilter(status="weird").where()


def test_analyze_report(db: Path) -> None:
    with connect(db) as conn:
        a = stats.analyze(conn)
    assert a["slowest_cells"][0]["cell"] == "b.high.public.text"
    assert a["failing_cells"][0] == {"cell": "a.low.private.text", "requests": 1, "errors": 1,
                                     "error_rate": 1.0}
    fails = {m["model"]: m for m in a["attempt_failures"]}
    assert fails["cloud/c"] == {"model": "cloud/c", "attempts": 2, "failed": 2,
                                "failure_rate": 1.0}
    assert fails["loc/m"]["failed"] == 0
    assert a["private_served_by_cloud"] == 0
    assert a["saved_share"] == pytest.approx(0.010 / 0.018, abs=1e-4)


def test_metrics_exposition(db: Path) -> None:
    with connect(db) as conn:
        text = metrics.render(metrics.read_totals(conn)).decode()
    assert ('interlock_requests_total{cell="a.low.public.text",locality="local",'
            'status="200",surface="chat"} 10.0') in text
    assert ('interlock_requests_total{cell="b.high.public.text",locality="none",'
            'status="502",surface="chat"} 2.0') in text
    assert 'interlock_upstream_attempts_total{model="cloud/c",outcome="error",' \
           'provider="cloud"} 2.0' in text
    assert 'interlock_tokens_total{direction="output",locality="cloud"} 400.0' in text
    assert "interlock_savings_usd_total 0.01" in text
    assert 'interlock_fallbacks_total{cell="b.high.public.text"} 1.0' in text
    assert "# TYPE interlock_request_duration_seconds histogram" in text
    assert ('interlock_request_duration_seconds_bucket{le="0.05",locality="local",'
            'surface="chat"} 5.0') in text
    assert ('interlock_request_duration_seconds_count{locality="cloud",surface="chat"} 4.0'
            in text)
    assert 'interlock_time_to_first_token_seconds_bucket{le="0.5",locality="cloud"} 4.0' in text


def test_event_bus_fans_out_and_drops_for_slow_readers() -> None:
    async def run() -> None:
        bus = EventBus(capacity=4)
        assert not bus.listening
        bus.publish({"type": "started", "id": "early"})  # nobody listens: just buffered
        fast, slow = bus.subscribe(), bus.subscribe()
        assert bus.listening
        for i in range(3):
            bus.publish({"type": "started", "id": str(i)})
        assert [(await fast.get(1.0) or {})["id"] for _ in range(3)] == ["0", "1", "2"]
        for i in range(3, 10):
            bus.publish({"type": "started", "id": str(i)})
        got = [(await slow.get(1.0) or {})["id"] for _ in range(4)]
        assert got == ["6", "7", "8", "9"] and slow.dropped == 6
        assert await slow.get(timeout=0.05) is None
        waiter = asyncio.ensure_future(fast.__anext__())
        await asyncio.sleep(0.01)
        bus.publish({"type": "completed", "id": "late"})
        # fast fell behind too (3..5 left the 4-event ring while it was not reading)
        assert (await asyncio.wait_for(waiter, 1.0))["id"] == "6" and fast.dropped == 3
        fast.close()
        slow.close()
        assert not bus.listening
        replayed = bus.subscribe(replay=2)
        assert [(await replayed.get(1.0) or {})["id"] for _ in range(2)] == ["9", "late"]
        replayed.close()

    asyncio.run(run())


def test_recorder_emits_the_four_events_in_order() -> None:
    table = two_model_table()

    async def run() -> list[dict[str, object]]:
        recorder = Recorder(table)
        simulate(recorder, table, "Say hello.")  # nobody listens: no events kept
        sub = recorder.subscribe()
        simulate(recorder, table, "Say hello.")
        events = [await sub.get(1.0) for _ in range(4)]
        assert await sub.get(0.05) is None
        sub.close()
        return [e for e in events if e is not None]

    events = asyncio.run(run())
    assert [e["type"] for e in events] == ["started", "classified", "routed", "completed"]
    assert len({e["id"] for e in events}) == 1
    assert events[1]["cell"] == events[2]["cell"] == events[3]["cell"]
    assert events[2]["model"] == "loc/m-a" and events[2]["local"] is True
    done = events[3]
    assert done["model"] == "loc/m-a" and done["locality"] == "local" and done["status"] == 200
    assert done["saved_usd"] > 0


def test_otel_spans_follow_the_genai_conventions(tmp_path: Path) -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from interlock.runtime.otel import span_sink
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    table = two_model_table()
    recorder = Recorder(table, Store(tmp_path / "log.db"),
                        spans=span_sink(provider))
    simulate(recorder, table, "Say hello.", fail_first=True, usage=(12, 34))
    assert recorder.flush(10.0)
    recorder.close()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    req = spans["chat auto"]
    assert req.kind.name == "SERVER"
    assert req.attributes["gen_ai.operation.name"] == "chat"
    assert req.attributes["gen_ai.response.model"] == "cloud/m-c"
    assert req.attributes["gen_ai.provider.name"] == "cloud"
    assert req.attributes["gen_ai.usage.input_tokens"] == 12
    assert req.attributes["gen_ai.usage.output_tokens"] == 34
    assert req.attributes["interlock.fallback"] is True
    attempts = [s for s in exporter.get_finished_spans() if s.kind.name == "CLIENT"]
    assert [s.attributes["gen_ai.request.model"] for s in attempts] == ["loc/m-a", "cloud/m-c"]
    assert all(s.parent is not None and s.parent.span_id == req.context.span_id
               for s in attempts)
    assert attempts[0].status.status_code.name == "ERROR"


def test_otel_sink_waits_for_an_sdk_without_a_thread(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With the API installed but no SDK configured, the store hands the span sink
    nothing (no sink thread); once a provider is set, the next batches get spans."""
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from interlock.runtime import otel
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    current: list[object] = [trace.ProxyTracerProvider()]
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: current[0])
    sink = otel.span_sink()
    assert sink is not None and not sink.active  # type: ignore[attr-defined]
    table = two_model_table()
    store = Store(tmp_path / "log.db")
    recorder = Recorder(table, store, spans=sink)
    simulate(recorder, table, "Say hello.")
    assert recorder.flush(10.0)
    assert store._sink_thread is None and store.written == 1

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    current[0] = provider
    sink._tracer = provider.get_tracer("interlock")  # type: ignore[attr-defined]
    assert sink.active  # type: ignore[attr-defined]
    simulate(recorder, table, "Say hello again.")
    assert recorder.flush(10.0)
    recorder.close()
    assert store._sink_thread is not None
    assert [s.name for s in exporter.get_finished_spans() if s.kind.name == "SERVER"] \
        == ["chat auto"]


def test_otel_is_a_no_op_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from interlock.runtime import otel

    real = builtins.__import__

    def no_otel(name: str, *a: object, **kw: object) -> object:
        if name.startswith("opentelemetry"):
            raise ImportError(name)
        return real(name, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_otel)
    assert otel.span_sink() is None
