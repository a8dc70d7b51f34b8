"""/v1/stats, /v1/logs and /metrics through the real app (Granian subprocess) over
fake upstreams; the request log it writes; the CLI reading it (--db and --url)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from e2e.harness import Setup, chat_body, standard_setup, stop_setup
from fakes.harness import Behaviour
from interlock.compiler.cli import cli
from interlock.runtime.store import connect


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("obs") / "router.db"


@pytest.fixture(scope="module")
def setup(db: Path) -> Iterator[Setup]:
    s = standard_setup(env={"INTERLOCK_DB": str(db)})
    try:
        post(s, chat_body("Say hello."), {"x-request-id": "client-1"})
        s.loc_a.push(Behaviour(status=500))
        post(s, chat_body("Say hello again."))
        with httpx.stream("POST", s.url + "/v1/chat/completions", timeout=20,
                          json=chat_body("Stream it.", stream=True)) as resp:
            assert resp.status_code == 200
            resp.read()
        post(s, {"model": "auto", "messages": "not a list"}, expect=400)
        yield s
    finally:
        stop_setup(s)


def post(s: Setup, body: dict[str, Any], headers: dict[str, str] | None = None,
         expect: int = 200) -> httpx.Response:
    resp = httpx.post(s.url + "/v1/chat/completions", json=body, headers=headers, timeout=20)
    assert resp.status_code == expect, resp.text
    return resp


def get(s: Setup, path: str, **params: Any) -> httpx.Response:
    resp = httpx.get(s.url + path, params=params, timeout=20)
    assert resp.status_code == 200, resp.text
    return resp


def test_stats(setup: Setup) -> None:
    s = get(setup, "/v1/stats").json()
    assert s["object"] == "stats"
    assert s["requests"] == 4 and s["ok"] == 3 and s["errors"] == 1
    assert s["local"] == 3 and s["cloud"] == 0 and s["local_share"] == 1.0
    assert s["fallen_back"] == 1
    assert s["latency_ms"]["p50"] > 0 and s["latency_ms"]["p95"] >= s["latency_ms"]["p50"]
    assert s["ttft_ms"]["p50"] is not None  # the stream
    assert s["saved_usd"] > 0 and s["cost_usd"] == 0
    models = {m["model"]: m["requests"] for m in s["by_model"]}
    assert models == {"loc-a/m-a": 2, "loc-b/m-b": 1}
    assert sum(c["requests"] for c in s["by_cell"]) == 3  # the bad body has no cell
    later = get(setup, "/v1/stats", since=str(time.time() + 60)).json()
    assert later["requests"] == 0


def test_logs(setup: Setup) -> None:
    data = get(setup, "/v1/logs", limit=10).json()
    rows = data["data"]
    assert [r["status"] for r in rows] == [400, 200, 200, 200]  # newest first
    bad, stream, fell, first = rows
    assert first["client_request_id"] == "client-1"
    assert first["model"] == "loc-a/m-a" and first["locality"] == "local"
    assert first["attempts"][0]["outcome"] == "ok" and first["tokens_out"] > 0
    assert first["table_hash"].startswith("sha256:") and first["prompt"] is None
    assert fell["fallback"] is True and fell["model"] == "loc-b/m-b"
    assert [a["outcome"] for a in fell["attempts"]] == ["error", "ok"]
    assert stream["stream"] is True and stream["ttft_ms"] is not None
    assert bad["error_code"] and bad["cell"] is None
    assert len({r["id"] for r in rows}) == 4
    only = get(setup, "/v1/logs", model="m-b").json()["data"]
    assert [r["model"] for r in only] == ["loc-b/m-b"]
    assert [r["status"] for r in get(setup, "/v1/logs", status="error").json()["data"]] == [400]
    after = get(setup, "/v1/logs", after=first["seq"]).json()["data"]
    assert [r["seq"] for r in after] == [fell["seq"], stream["seq"], bad["seq"]]
    resp = httpx.get(setup.url + "/v1/logs", params={"status": "nope"}, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "status"


def test_metrics(setup: Setup) -> None:
    resp = get(setup, "/metrics")
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert "# TYPE interlock_requests_total counter" in text
    assert 'locality="local",status="200",surface="chat"} ' in text
    assert 'interlock_requests_total{cell="none",locality="none",status="400",' \
           'surface="chat"} 1.0' in text
    assert 'interlock_upstream_attempts_total{model="loc-a/m-a",outcome="error",' \
           'provider="loc-a"} 1.0' in text
    assert "interlock_request_duration_seconds_bucket" in text
    assert "interlock_table_info{hash=\"sha256:" in text
    assert "interlock_recorder_writer_up 1.0" in text
    assert "interlock_recorder_failed_records_total 0.0" in text


def test_the_store_is_on_disk_and_the_cli_reads_it(setup: Setup, db: Path) -> None:
    with connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 4
    runner = CliRunner()
    local = runner.invoke(cli, ["stats", "--db", str(db), "--format", "json"])
    remote = runner.invoke(cli, ["stats", "--url", setup.url, "--format", "json"])
    assert local.exit_code == 0 and remote.exit_code == 0, local.output + remote.output
    a, b = json.loads(local.output), json.loads(remote.output)
    assert a["requests"] == b["requests"] == 4 and a["by_model"] == b["by_model"]
    logs = runner.invoke(cli, ["logs", "--url", setup.url, "--model", "m-b"])
    assert logs.exit_code == 0, logs.output
    assert "loc-b/m-b (local)" in logs.output and "[fallback]" in logs.output
    report = runner.invoke(cli, ["logs", "analyze", "--url", setup.url])
    assert report.exit_code == 0 and "local share     100.0%" in report.output
