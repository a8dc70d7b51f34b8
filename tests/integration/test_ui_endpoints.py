"""The pages' endpoints through real Granian: the pages and assets, ``/v1/table``,
the live event stream ``/v1/events`` (relay, heartbeat, clean end on disconnect and
shutdown) and ``/v1/conversations`` (CRUD, errors, same SQLite file as the log)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e.harness import RouterProcess, chat_body, compile_yaml, config_yaml, prov
from fakes.fixtures import FakeOllama, FakeOpenAI
from interlock.runtime.app import InterlockApp
from interlock.runtime.dashboard import ASSETS, CSP
from interlock.runtime.routemap import table_view
from interlock.runtime.table import DecisionTable


def ui_table(loc: Any, cloud: Any) -> DecisionTable:
    """Public requests go to the cloud first; private ones can only go local."""
    return compile_yaml(config_yaml(
        [prov("loc-a", loc, "ollama", "local", ["m-a"]),
         prov("cloud", cloud, "openai", "cloud", ["m-c"], quality=90.0)],
        ["cloud/m-c", "loc-a/m-a"]))


@dataclass
class UiSetup:
    loc: FakeOllama
    cloud: FakeOpenAI
    table: DecisionTable
    router: RouterProcess
    db: Path

    @property
    def url(self) -> str:
        return self.router.url


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiSetup]:
    db = tmp_path_factory.mktemp("ui-db") / "interlock.db"
    loc = FakeOllama(models=["m-a"]).start()
    cloud = FakeOpenAI(models=["m-c"]).start()
    table = ui_table(loc, cloud)
    router = RouterProcess(table, env={"INTERLOCK_DB": str(db),
                                       "INTERLOCK_SSE_HEARTBEAT_S": "0.3"})
    try:
        router.wait_ready()
        yield UiSetup(loc, cloud, table, router, db)
    finally:
        router.stop()
        loc.stop()
        cloud.stop()


# -- pages and the table ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/dashboard", "/chat"])
def test_pages_are_html_with_a_strict_csp(ui: UiSetup, path: str) -> None:
    resp = httpx.get(ui.url + path)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert resp.headers["content-security-policy"] == CSP.decode()
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-router-table"] == ui.table.hash
    assert "<title>" in resp.text and "/ui/common.js" in resp.text


def test_assets_are_served_by_the_router(ui: UiSetup) -> None:
    for name in ASSETS:
        resp = httpx.get(f"{ui.url}/ui/{name}")
        assert resp.status_code == 200, name
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        assert resp.headers["content-type"].startswith(kind)
    assert httpx.get(ui.url + "/ui/nope.js").status_code == 404
    assert httpx.post(ui.url + "/dashboard").status_code == 405


def test_the_table_endpoint_is_the_table_view(ui: UiSetup) -> None:
    resp = httpx.get(ui.url + "/v1/table")
    assert resp.status_code == 200
    body = resp.json()
    assert body == orjson.loads(orjson.dumps(table_view(ui.table)))
    assert body["hash"] == resp.headers["x-router-table"]
    assert len(body["cells"]) == 84


# -- the live event stream --------------------------------------------------------------


def read_events(url: str, out: list[dict[str, Any]], stop: threading.Event,
                ready: threading.Event, comments: list[str]) -> None:
    with httpx.stream("GET", url + "/v1/events", timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        ready.set()
        current: dict[str, Any] = {}
        for line in resp.iter_lines():
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("event: "):
                current["event_field"] = line[7:]
            elif line.startswith("id: "):
                current["id_field"] = int(line[4:])
            elif line.startswith("data: "):
                current.update(orjson.loads(line[6:]))
            elif line == "" and current:
                out.append(current)
                current = {}
            if stop.is_set():
                return


def test_one_request_gives_four_events_in_order(ui: UiSetup) -> None:
    events: list[dict[str, Any]] = []
    comments: list[str] = []
    stop, ready = threading.Event(), threading.Event()
    reader = threading.Thread(target=read_events, args=(ui.url, events, stop, ready, comments),
                              daemon=True)
    reader.start()
    assert ready.wait(5)
    resp = httpx.post(ui.url + "/v1/chat/completions", json=chat_body("Name a colour."))
    assert resp.status_code == 200
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not any(e["event"] == "completed" for e in events):
        time.sleep(0.02)
    stop.set()
    mine = [e for e in events if e["event"] != "message"]
    assert [e["event"] for e in mine] == ["started", "classified", "routed", "completed"]
    assert len({e["id"] for e in mine}) == 1
    assert all(e["event_field"] == e["event"] for e in mine)
    ids = [e["id_field"] for e in mine]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert mine[2]["cell"] == resp.headers["x-router-cell"]
    done = mine[3]
    assert done["model"] == resp.headers["x-router-model"] == "cloud/m-c"
    assert done["status"] == 200 and done["locality"] == "cloud"


def test_heartbeats_keep_a_quiet_stream_alive(ui: UiSetup) -> None:
    # the router under test runs with INTERLOCK_SSE_HEARTBEAT_S=0.3
    with httpx.stream("GET", ui.url + "/v1/events", timeout=5) as resp:
        started = time.monotonic()
        pings = 0
        for line in resp.iter_lines():
            if line == ": ping":
                pings += 1
                if pings == 2:
                    break
        assert time.monotonic() - started < 2.0


async def _events_in_process(close_with: str) -> tuple[list[dict[str, Any]], bool]:
    """Run the app without a server: open /v1/events, then disconnect or shut down."""
    table = compile_yaml(config_yaml([prov("loc", "http://127.0.0.1:9/v1", "openai", "local",
                                       ["m"])]))
    app = InterlockApp(lambda: table, probe=False)
    app.state = await app.startup()
    bus = app.state.recorder.bus
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "GET", "path": "/v1/events", "headers": [],
             "query_string": b""}
    task = asyncio.create_task(app(scope, inbox.get, send))
    for _ in range(200):
        if len(sent) >= 2:
            break
        await asyncio.sleep(0.005)
    listening = bus.listening
    if close_with == "disconnect":
        await inbox.put({"type": "http.disconnect"})
        await asyncio.wait_for(task, 2)
        assert not bus.listening  # the subscription was closed
        await app.shutdown()
    else:
        await app.shutdown()
        await asyncio.wait_for(task, 2)
    return sent, listening


@pytest.mark.parametrize("close_with", ["disconnect", "shutdown"])
def test_the_stream_ends_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 close_with: str) -> None:
    monkeypatch.setenv("INTERLOCK_DB", str(tmp_path / "x.db"))
    sent, listening = asyncio.run(_events_in_process(close_with))
    assert listening
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert sent[1]["body"].startswith(b"retry: 3000\n")
    if close_with == "shutdown":  # the server ends the body properly
        assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


# -- conversations ----------------------------------------------------------------------


def test_conversations_round_trip(ui: UiSetup) -> None:
    created = httpx.post(ui.url + "/v1/conversations")
    assert created.status_code == 201
    conv = created.json()
    assert conv["title"] == "New conversation" and conv["id"].startswith("conv_")
    base = f"{ui.url}/v1/conversations/{conv['id']}"
    msg = httpx.post(base + "/messages", json={"role": "user",
                                                "content": "Summarise the plot of Hamlet briefly"})
    assert msg.status_code == 201 and msg.json()["id"] > 0
    meta = {"model": "loc-a/m-a", "local": True, "cost": 0.0, "saved": 1.5e-05}
    httpx.post(base + "/messages", json={"role": "assistant", "content": "Revenge.",
                                         "meta": meta})
    got = httpx.get(base).json()
    assert got["title"] == "Summarise the plot of Hamlet briefly"
    assert [m["role"] for m in got["messages"]] == ["user", "assistant"]
    assert got["messages"][1]["meta"] == meta
    listed = httpx.get(ui.url + "/v1/conversations").json()["data"]
    assert listed[0]["id"] == conv["id"] and listed[0]["message_count"] == 2
    assert httpx.delete(base).json() == {"id": conv["id"], "object": "conversation",
                                         "deleted": True}
    assert httpx.get(base).status_code == 404


@pytest.mark.parametrize(("method", "path", "body", "status", "param"), [
    ("POST", "/v1/conversations", b"[1]", 400, None),
    ("POST", "/v1/conversations", b'{"title": 5}', 400, "title"),
    ("GET", "/v1/conversations?limit=0", None, 400, "limit"),
    ("GET", "/v1/conversations?limit=x", None, 400, "limit"),
    ("GET", "/v1/conversations/conv_0000", None, 404, "id"),
    ("GET", "/v1/conversations/conv_00000000000000000000", None, 404, "id"),
    ("POST", "/v1/conversations/conv_00000000000000000000/messages",
     b'{"role": "user", "content": "x"}', 404, "id"),
    ("GET", "/v1/conversations/conv_00000000000000000000/messages", None, 405, None),
    ("GET", "/v1/conversations/conv_00000000000000000000/other", None, 404, None),
    ("PUT", "/v1/conversations", b"{}", 405, None),
])
def test_bad_requests_get_the_routers_error_shape(
    ui: UiSetup, method: str, path: str, body: bytes | None, status: int, param: str | None,
) -> None:
    resp = httpx.request(method, ui.url + path, content=body)
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param


def test_message_validation(ui: UiSetup) -> None:
    conv = httpx.post(ui.url + "/v1/conversations", json={}).json()
    url = f"{ui.url}/v1/conversations/{conv['id']}/messages"
    for body, param in [({"role": "tool", "content": "x"}, "role"),
                        ({"role": "user", "content": 3}, "content"),
                        ({"role": "user", "content": "x", "meta": []}, "meta")]:
        resp = httpx.post(url, json=body)
        assert resp.status_code == 400 and resp.json()["error"]["param"] == param


def test_conversations_live_in_the_request_logs_database(ui: UiSetup) -> None:
    conv = httpx.post(ui.url + "/v1/conversations", json={"title": "kept"}).json()
    httpx.post(ui.url + "/v1/chat/completions", json=chat_body("Hello there."))
    db = sqlite3.connect(ui.db)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"conversations", "messages", "requests"} <= tables
        assert db.execute("SELECT title FROM conversations WHERE id = ?",
                          (conv["id"],)).fetchone() == ("kept",)
    finally:
        db.close()


def test_stopping_the_router_ends_open_streams(tmp_path: Path) -> None:
    """Granian waits for open requests before it stops a worker: an open dashboard
    must not keep the router from stopping."""
    table = compile_yaml(config_yaml([prov("loc", "http://127.0.0.1:9/v1", "openai", "local",
                                           ["m"])]))
    router = RouterProcess(table, env={"INTERLOCK_DB": str(tmp_path / "x.db")}).wait_ready()
    ended: list[str] = []

    def follow() -> None:
        try:
            with httpx.stream("GET", router.url + "/v1/events", timeout=30) as resp:
                for _ in resp.iter_lines():
                    pass
            ended.append("clean")
        except httpx.HTTPError as exc:
            ended.append(type(exc).__name__)

    reader = threading.Thread(target=follow, daemon=True)
    try:
        reader.start()
        time.sleep(0.5)
        started = time.monotonic()
        router.proc.terminate()
        router.proc.wait(timeout=10)
        assert time.monotonic() - started < 8
        reader.join(5)
        assert ended == ["clean"]
    finally:
        router.stop()


async def _replayed(last_id: str) -> list[bytes]:
    table = compile_yaml(config_yaml([prov("loc", "http://127.0.0.1:9/v1", "openai", "local",
                                           ["m"])]))
    app = InterlockApp(lambda: table, probe=False)
    app.state = await app.startup()
    bus = app.state.recorder.bus
    other = bus.subscribe()  # another tab keeps the bus recording
    for n in range(3):
        bus.publish({"type": "started", "id": f"r{n}"})
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    bodies: list[bytes] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    scope = {"type": "http", "method": "GET", "path": "/v1/events",
             "headers": [(b"last-event-id", last_id.encode())], "query_string": b""}
    task = asyncio.create_task(app(scope, inbox.get, send))
    await asyncio.sleep(0.1)
    await inbox.put({"type": "http.disconnect"})
    await asyncio.wait_for(task, 2)
    other.close()
    await app.shutdown()
    return bodies


@pytest.mark.parametrize(("last_id", "expected"), [
    ("1", [b"id: 2\n", b"id: 3\n"]), ("3", []), ("junk", []), ("99", []),
])
def test_a_reconnect_with_last_event_id_gets_what_it_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, last_id: str, expected: list[bytes],
) -> None:
    monkeypatch.setenv("INTERLOCK_DB", str(tmp_path / "x.db"))
    bodies = asyncio.run(_replayed(last_id))
    assert bodies[0].startswith(b"retry:")
    assert [b[: b.index(b"\n") + 1] for b in bodies[1:]] == expected
