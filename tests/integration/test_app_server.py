"""The server around the app: lifespan failure stops it, start-up probes, health
from traffic, the total deadline, max_attempts, a refused connection.  Each test
runs its own router under real Granian."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.harness import (
    RouterProcess,
    chat_body,
    compile_yaml,
    config_yaml,
    free_port,
    prov,
)
from fakes.fixtures import FakeOllama, FakeOpenAI
from fakes.harness import Behaviour
from interlock.runtime.app import InterlockApp
from interlock.runtime.table import DecisionTable, TableError


@pytest.fixture
def ups() -> Iterator[tuple[FakeOllama, FakeOpenAI]]:
    with FakeOllama(models=["m-a"]) as a, FakeOpenAI(models=["m-c"]) as c:
        yield a, c  # type: ignore[misc]


def two_provider_table(a: FakeOllama, c: FakeOpenAI, *, dead_first: bool = False,
                       server: dict[str, Any] | None = None,
                       timeout_ms: int = 5000) -> DecisionTable:
    provs = [prov("loc-a", a, "ollama", "local", ["m-a"], timeout_ms=timeout_ms),
             prov("cloud", c, "openai", "cloud", ["m-c"], timeout_ms=timeout_ms)]
    chain = ["loc-a/m-a", "cloud/m-c"]
    if dead_first:
        provs.insert(0, prov("dead", f"http://127.0.0.1:{free_port()}/v1", "openai", "local",
                             ["m-x"]))
        chain.insert(0, "dead/m-x")
    return compile_yaml(config_yaml(provs, chain, server=server))


def post(url: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=body or chat_body(), timeout=30)


# -- lifespan ------------------------------------------------------------------------------


def test_lifespan_startup_failure_is_reported_and_raised() -> None:
    def load() -> DecisionTable:
        raise TableError("router.lock.json: content hash mismatch")

    app = InterlockApp(load)
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    with pytest.raises(TableError):
        asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "content hash mismatch" in sent[0]["message"]
    assert app.state is None


def test_granian_stops_when_the_table_fails_to_load(tmp_path: Path) -> None:
    bad = tmp_path / "router.lock.json"
    bad.write_text('{"format": 1, "hash": "sha256:0"}')
    port = free_port()
    env = {**os.environ, "INTERLOCK_TABLE": str(bad), "INTERLOCK_PROBE": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--port",
         str(port), "interlock.runtime.server:app_factory"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "could not load its decision table" in out
    assert "not a valid decision table" in out


def test_router_start_refuses_a_broken_lock_file_before_serving(tmp_path: Path) -> None:
    bad = tmp_path / "router.lock.json"
    bad.write_text("{not json")
    router = RouterProcess(table_path=bad)
    try:
        assert router.proc.wait(timeout=60) != 0
        assert "not valid JSON" in router.log()
    finally:
        router.stop()


def test_granian_serves_the_factory_from_a_config_file(
        tmp_path: Path, ups: tuple[FakeOllama, FakeOpenAI]) -> None:
    a, c = ups
    text = config_yaml([prov("loc-a", a, "ollama", "local", ["m-a"]),
                        prov("cloud", c, "openai", "cloud", ["m-c"])], ["loc-a/m-a", "cloud/m-c"])
    (tmp_path / "router.yaml").write_text(text)
    port = free_port()
    env = {**os.environ, "INTERLOCK_CONFIG": str(tmp_path / "router.yaml"),
           "INTERLOCK_PROBE": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--port",
         str(port), "interlock.runtime.server:app_factory"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        resp = post(url)
        assert resp.status_code == 200
        assert resp.headers["x-router-model"] == "loc-a/m-a"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# -- health, probes, limits ------------------------------------------------------------------


def test_connection_refused_falls_back(ups: tuple[FakeOllama, FakeOpenAI]) -> None:
    a, c = ups
    with RouterProcess(two_provider_table(a, c, dead_first=True)) as r:
        resp = post(r.url, chat_body(trace=True))
        assert resp.status_code == 200
        assert resp.headers["x-router-model"] == "loc-a/m-a"
        first = resp.json()["x_router_trace"]["attempts"][0]
        assert first["model"] == "dead/m-x" and "UpstreamConnectError" in first["error"]


def test_startup_probe_marks_a_dead_provider_and_skips_it(
        ups: tuple[FakeOllama, FakeOpenAI]) -> None:
    a, c = ups
    with RouterProcess(two_provider_table(a, c, dead_first=True), probe=True) as r:
        health = httpx.get(r.url + "/healthz", timeout=10).json()
        assert health["providers"]["dead"]["status"] == "error"
        assert health["providers"]["loc-a"]["status"] == "ok"
        assert health["status"] == "degraded"
        resp = post(r.url)
        assert resp.status_code == 200
        assert resp.headers["x-router-attempts"] == "1"  # dead was not even tried
        assert resp.headers["x-router-model"] == "loc-a/m-a"


def test_consecutive_failures_put_a_provider_in_error(
        ups: tuple[FakeOllama, FakeOpenAI]) -> None:
    a, c = ups
    env = {"INTERLOCK_HEALTH_FAILURES": "2", "INTERLOCK_HEALTH_COOLDOWN_S": "60"}
    with RouterProcess(two_provider_table(a, c), env=env) as r:
        a.default = Behaviour(status=500)
        for _ in range(2):
            assert post(r.url).headers["x-router-model"] == "cloud/m-c"
        calls = len(a.requests)
        health = httpx.get(r.url + "/healthz", timeout=10).json()
        assert health["providers"]["loc-a"]["status"] == "error"
        assert health["providers"]["loc-a"]["healthy"] is False
        resp = post(r.url)
        assert resp.headers["x-router-attempts"] == "1"  # skipped while in error
        assert len(a.requests) == calls
        # a private request still tries the local provider rather than nothing
        a.default = Behaviour()
        resp = post(r.url, chat_body(private=True))
        assert resp.status_code == 200 and resp.headers["x-router-model"] == "loc-a/m-a"
        assert httpx.get(r.url + "/healthz", timeout=10).json()["providers"]["loc-a"][
            "status"] == "ok"


def test_one_deadline_covers_every_attempt(ups: tuple[FakeOllama, FakeOpenAI]) -> None:
    a, c = ups
    table = two_provider_table(a, c, server={"deadline_ms": 1500})
    with RouterProcess(table) as r:
        a.default = Behaviour(delay_s=3)
        t = time.monotonic()
        resp = post(r.url)
        elapsed = time.monotonic() - t
        assert resp.status_code == 504, resp.text
        assert resp.json()["error"]["code"] == "deadline_exceeded"
        assert 1.4 <= elapsed < 2.8
        assert c.requests == []  # no time left for the fallback


def test_max_attempts_caps_the_chain(ups: tuple[FakeOllama, FakeOpenAI]) -> None:
    a, c = ups
    table = two_provider_table(a, c, dead_first=True, server={"max_attempts": 2})
    with RouterProcess(table) as r:
        a.default = Behaviour(status=500)
        resp = post(r.url)
        assert resp.status_code == 502
        assert len(resp.json()["error"]["attempts"]) == 2
        assert c.requests == []


def test_readiness_summary_names_keys_but_never_their_values(
        ups: tuple[FakeOllama, FakeOpenAI]) -> None:
    from interlock.runtime.server import readiness

    a, c = ups
    text = config_yaml([prov("loc-a", a, "ollama", "local", ["m-a"]),
                        prov("cloud", c, "openai", "cloud", ["m-c"])], ["loc-a/m-a", "cloud/m-c"])
    text = text.replace(f"    auth: none\n    base_url: {c.url}",
                        f"    auth: bearer\n    api_key_env: IL_TEST_KEY\n    base_url: {c.url}")
    table = compile_yaml(text)
    status, lines = readiness(table, {"IL_TEST_KEY": "sk-canary-5d1e"}, "http://127.0.0.1:1")
    out = "\n".join(lines)
    assert status == "ok", out
    assert "IL_TEST_KEY set" in out and "sk-canary-5d1e" not in out
    assert "try it: curl" in out
    status, lines = readiness(table, {})
    assert status == "degraded"
    assert any("IL_TEST_KEY" in line and line.startswith("next:") for line in lines)
    dead = compile_yaml(config_yaml([prov("loc-a", f"http://127.0.0.1:{free_port()}", "ollama",
                                          "local", ["m-a"])], ["loc-a/m-a"]))
    status, lines = readiness(dead, {})
    assert status == "error"
    assert any("private requests will be refused" in line for line in lines)


def test_the_default_config_discovers_ollama_models(ups: tuple[FakeOllama, FakeOpenAI]) -> None:
    from interlock.runtime.server import table_from_environ

    a, _ = ups
    a.models = ["qwen3:8b", "llama3.2:latest"]
    table = table_from_environ({"OLLAMA_HOST": a.root})
    assert {"ollama/qwen3:8b", "ollama/llama3.2:latest"} <= set(table.models)
    assert table.providers["ollama"].base_url.rstrip("/") == a.root
    assert not any(p.locality == "cloud" for p in table.providers.values())  # no keys set
    with pytest.raises(TableError) as info:  # nothing installed, no keys: say what to do
        table_from_environ({"OLLAMA_HOST": f"127.0.0.1:{free_port()}"})
    assert "router start --demo" in str(info.value)


def test_two_workers_each_load_the_table(ups: tuple[FakeOllama, FakeOpenAI]) -> None:
    a, c = ups
    with RouterProcess(two_provider_table(a, c), workers=2) as r:
        hashes = {post(r.url).headers["x-router-table"] for _ in range(8)}
        assert len(hashes) == 1 and hashes.pop().startswith("sha256:")
        assert len([x for x in a.requests if x.path == "/api/chat"]) == 8


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, parent in parents.items() if parent == p]
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_each_worker_has_a_log_writer_and_none_outlives_the_router(
        tmp_path: Path, ups: tuple[FakeOllama, FakeOpenAI]) -> None:
    a, c = ups
    db = tmp_path / "log.db"
    with RouterProcess(two_provider_table(a, c), workers=2,
                       env={"INTERLOCK_DB": str(db)}) as r:
        for _ in range(20):
            assert post(r.url).status_code == 200
        writers = [p for p in _descendants(r.proc.pid)
                   if b"interlock.runtime.logwriter" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(writers) == 2
    # stopped (SIGTERM): the workers closed their logs, the writers wrote and exited
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in writers):
        assert time.monotonic() < deadline, "a log writer outlived its router"
        time.sleep(0.05)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 20
    finally:
        conn.close()
