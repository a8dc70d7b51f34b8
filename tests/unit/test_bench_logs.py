"""bench/run.py keeps interlock's request logs to itself: a fresh file per process in
the run's temporary directory (never the user's log), and counts what each wrote."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest
from interlock.runtime.logdb import connect

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def run() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # run.py imports its sibling measure.py
    try:
        return importlib.import_module("run")
    finally:
        sys.path.remove(str(BENCH))


def test_every_interlock_process_logs_to_its_own_file_in_the_run_dir(
        run: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[str, list[str], dict[str, str]]] = []

    def proc(name: str, cmd: list[str], port: int, env: dict[str, str]) -> None:
        started.append((name, cmd, env))  # what Proc would run (no process here)

    monkeypatch.setattr(run, "Proc", proc)
    lock = tmp_path / "bench.lock.json"
    for name, workers in (("interlock", 1), ("interlock-n", 2), ("interlock-r", 1)):
        run.interlock(name, lock, 9102, workers, tmp_path)
    paths = [Path(env["INTERLOCK_DB"]) for _, _, env in started]
    assert all(p.parent == tmp_path for p in paths)
    assert len(set(paths)) == 3
    assert [cmd[cmd.index("--workers") + 1] for _, cmd, _ in started] == ["1", "2", "1"]


def test_log_rows_counts_each_log(run: ModuleType, tmp_path: Path) -> None:
    for name, n in (("interlock", 3), ("interlock-r", 0)):
        conn = connect(tmp_path / f"{name}.db", create=True)
        conn.executemany("INSERT INTO requests (id, ts, surface, status, table_hash, worker, "
                         "latency_ms) VALUES (?, 0, 'chat', 200, 'h', 1, 1.0)",
                         [(f"r{i}",) for i in range(n)])
        conn.close()
    assert run.log_rows(tmp_path) == "interlock 3, interlock-r 0"
    assert run.log_rows(tmp_path / "none") == ""


def test_results_name_the_logs_and_the_machine_at_both_ends(
        run: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "BENCH", tmp_path)
    figures = [run.Figures("upstream (direct)", rps_32=100.0),
               run.Figures("interlock balanced (1 worker)", rps_32=70.0)]
    run.write_results(figures, {"1 KB prompt": 21.5}, "", 15, "--rounds 5", None,
                      "interlock 3, interlock-r 0", {"1 KB prompt": 34.0})
    text = (tmp_path / "RESULTS.md").read_text()
    assert "fresh SQLite file of its own in the run's temporary directory " \
           "(rows: interlock 3, interlock-r 0)" in text
    assert "- 1 KB prompt: 21.5 µs" in text
    assert "the same at the end of the run (how the machine's speed moved): 34.0 µs" in text
