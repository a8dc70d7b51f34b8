"""router stats / logs / logs --follow / logs analyze / logs replay, via CliRunner on a
request log written by the real Recorder and Store."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from interlock.compiler.cli import cli
from interlock.runtime.record import Recorder
from interlock.runtime.store import Store
from obs_support import simulate, two_model_table

PUBLIC = ["Say hello.", "What is the capital of France?", "Tell me a joke about cats."]
PRIVATE = ["Summarise this for me #no_cloud", "Draft a note, keep it local #no_cloud"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "log.db"
    table = two_model_table()
    recorder = Recorder(table, Store(path))
    for text in PUBLIC:
        simulate(recorder, table, text, usage=(1000, 1000))
    simulate(recorder, table, PUBLIC[0], fail_first=True, usage=(1000, 1000))
    for text in PRIVATE:
        simulate(recorder, table, text, usage=(1000, 1000))
    simulate(recorder, table, PUBLIC[1], status=502, error_code="all_candidates_failed")
    assert recorder.flush(10.0)
    recorder.close()
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    return result


def test_stats_text_and_json(db: Path) -> None:
    text = run("stats", "--db", str(db))
    assert text.exit_code == 0, text.output
    assert "requests   7 (ok 6, errors 1)" in text.output
    assert "local 5 (83.3%) · cloud 1" in text.output
    assert "fallen back 1" in text.output
    data = json.loads(run("stats", "--db", str(db), "--format", "json").output)
    # 6 answers × (1000 in at $0.5/M + 1000 out at $1.5/M) = $0.012 baseline; the one
    # cloud answer cost $0.002
    assert data["baseline_usd"] == pytest.approx(0.012)
    assert data["cost_usd"] == pytest.approx(0.002)
    assert data["saved_usd"] == pytest.approx(0.010)
    assert "$0.0100 saved (83.3%)" in text.output


def test_logs_lists_and_filters(db: Path) -> None:
    out = run("logs", "--db", str(db), "-n", "3")
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 3
    assert "502 all_candidates_failed" in lines[-1]  # oldest first, the newest last
    cloud = run("logs", "--db", str(db), "--model", "cloud/m-c")
    assert cloud.output.count("\n") == 1 and "[fallback]" in cloud.output
    private = run("logs", "--db", str(db), "--cell", "*.private.*", "--format", "json")
    rows = [json.loads(line) for line in private.output.splitlines()]
    assert len(rows) == 2 and all(r["locality"] == "local" for r in rows)
    bad = run("logs", "--db", str(db), "--status", "sometimes")
    assert bad.exit_code == 2 and "status" in bad.output


def test_a_missing_log_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    out = run("stats", "--db", str(tmp_path / "nope.db"))
    assert out.exit_code == 1 and "no request log here" in out.output
    assert not (tmp_path / "nope.db").exists()


def test_follow_prints_new_requests_as_they_arrive(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    table = two_model_table()
    recorder = Recorder(table, Store(path))
    simulate(recorder, table, "before we started watching")
    assert recorder.flush(5.0)

    def later() -> None:
        time.sleep(0.6)
        simulate(recorder, table, "Say hello.", usage=(11, 22))
        simulate(recorder, table, "x #no_cloud", usage=(33, 44))
        recorder.flush(5.0)

    writer = threading.Thread(target=later)
    writer.start()
    try:
        out = run("logs", "--db", str(path), "--follow", "--interval", "0.1",
                  "--stop-after", "2.0")
    finally:
        writer.join()
        recorder.close()
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 3
    assert "in 11 out 22" in lines[1] and "in 33 out 44" in lines[2]
    assert ".private." in lines[2]


def test_analyze_report(db: Path) -> None:
    out = run("logs", "analyze", "--db", str(db))
    assert out.exit_code == 0, out.output
    assert "local share     83.3% (local 5, cloud 1)" in out.output
    assert "2 private request(s), 0 answered by a cloud model" in out.output
    assert "slowest cells (p95)" in out.output
    assert "upstream attempts by model" in out.output
    assert "all_candidates_failed" in out.output
    data = json.loads(run("logs", "analyze", "--db", str(db), "--format", "json").output)
    assert data["fallback_rate"] == round(1 / 7, 4)


def test_replay_with_a_table_that_sends_public_requests_to_the_cloud(db: Path,
                                                                     tmp_path: Path) -> None:
    cloud_first = two_model_table(["cloud/m-c", "loc/m-a"])
    lock = tmp_path / "new.lock.json"
    lock.write_bytes(cloud_first.canonical_bytes())
    out = run("logs", "replay", "--table", str(lock), "--db", str(db), "--format", "json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output[out.output.index("{"):])
    assert report["requests"] == 7 and report["table"] == cloud_first.hash
    # the 3 public local answers and the failed public request move to the cloud; the
    # fallback was already answered by the cloud; private ones stay local
    assert report["changed"] == 4
    assert report["local_share"] == {"old": round(5 / 6, 4), "new": round(2 / 7, 4)}
    assert report["cost_usd"]["old"] == pytest.approx(0.002)
    assert report["cost_usd"]["new"] > report["cost_usd"]["old"]
    moves = {(m["from"], m["to"]) for m in report["moves"]}
    assert ("loc/m-a", "cloud/m-c") in moves
    same = tmp_path / "same.lock.json"
    same.write_bytes(two_model_table().canonical_bytes())
    text = run("logs", "replay", "--table", str(same), "--db", str(db))
    assert text.exit_code == 0, text.output
    assert "routing     2 would change" in text.output  # the fallback and the failure
    assert "local share 83.3% → 100.0%" in text.output
