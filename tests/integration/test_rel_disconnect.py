"""Client disconnects cancel the upstream call within 1 s (streaming or not), and 1,000
disconnects leave no connection, task or file descriptor behind.

The upstream is a slow fake that notes when the router's connection to it closes.
Tasks are counted inside the router's worker by a test-only ``sitecustomize`` thread
that writes the number of pending asyncio tasks to a file (nothing in the router
itself exposes them)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from e2e.harness import RouterProcess, prov
from fakes.harness import FakeUpstream
from integration.rel_support import open_fds, table_for

TASK_PROBE = '''
import asyncio, gc, os, threading, time
_out = os.environ.get("REL_TASKS_FILE")
if _out:
    def _count():
        while True:
            time.sleep(0.25)
            n = sum(1 for o in gc.get_objects()
                    if isinstance(o, asyncio.Task) and not o.done())
            with open(_out + "." + str(os.getpid()), "w") as f:
                f.write(str(n))
    threading.Thread(target=_count, daemon=True).start()
'''


class SlowUpstream(FakeUpstream):
    """OpenAI-wire upstream that never finishes in time and records closed connections."""

    base_path = "/v1"

    def __init__(self) -> None:
        super().__init__(models=["slow"])
        self.active = 0
        self.closed_at: list[float] = []
        self.started_at: list[float] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.list_models)

    async def list_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.active += 1
        self.started_at.append(time.monotonic())
        try:
            if body.get("stream"):
                resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await resp.prepare(request)
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0,
                         "model": "slow", "choices": [{"index": 0, "delta": {"content": "a"},
                                                       "finish_reason": None}]}
                for _ in range(600):  # a minute of tokens
                    if _closing(request):
                        break
                    await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                    await asyncio.sleep(0.1)
                return resp
            for _ in range(600):  # a minute before the answer
                if _closing(request):
                    break
                await asyncio.sleep(0.1)
            return web.json_response({})
        finally:
            self.closed_at.append(time.monotonic())
            self.active -= 1


def _closing(request: web.Request) -> bool:
    t = request.transport
    return t is None or t.is_closing()


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SlowUpstream, RouterProcess,
                                                                     Path]]:
    tmp = tmp_path_factory.mktemp("tasks")
    (tmp / "sitecustomize.py").write_text(TASK_PROBE)
    up = SlowUpstream().start()
    router = None
    try:
        table = table_for([prov("slow", up, "openai", "local", ["slow"], timeout_ms=120_000)],
                          ["slow/slow"])
        env = {"PYTHONPATH": str(tmp), "REL_TASKS_FILE": str(tmp / "tasks"),
               "INTERLOCK_HEALTH_FAILURES": "1000000", "INTERLOCK_BREAKERS": "0"}
        router = RouterProcess(table, env=env).wait_ready()
        yield up, router, tmp / "tasks"
    finally:
        if router is not None:
            router.stop()
        up.stop()


def _request(port: int, stream: bool) -> socket.socket:
    body = orjson.dumps({"model": "auto", "stream": stream,
                         "messages": [{"role": "user", "content": "Say hello."}]})
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    return s


def _wait(cond: object, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_disconnect_cancels_the_upstream_call_within_a_second(
        slow: tuple[SlowUpstream, RouterProcess, Path], stream: bool) -> None:
    up, router, _ = slow
    port = int(router.url.rsplit(":", 1)[1])
    n = len(up.started_at)
    s = _request(port, stream)
    assert _wait(lambda: len(up.started_at) > n and up.active > 0, 10), "upstream never called"
    if stream:
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    time.sleep(0.3)
    gone = time.monotonic()
    s.close()
    assert _wait(lambda: up.active == 0, 3), "the upstream call is still running"
    assert up.closed_at[-1] - gone < 1.0, up.closed_at[-1] - gone


def _tasks(base: Path) -> int:
    counts = [int(p.read_text() or 0) for p in base.parent.glob(base.name + ".*")]
    return max(counts) if counts else -1


def test_a_thousand_disconnects_leave_nothing_behind(
        slow: tuple[SlowUpstream, RouterProcess, Path]) -> None:
    up, router, tasks_file = slow
    port = int(router.url.rsplit(":", 1)[1])
    assert _wait(lambda: up.active == 0, 5)
    time.sleep(0.6)
    fds_before, tasks_before = open_fds(router.proc.pid), _tasks(tasks_file)
    assert tasks_before >= 0, "the task probe is not running in the router"
    started = len(up.started_at)
    done = threading.Event()

    def one(i: int) -> None:
        s = _request(port, stream=i % 2 == 1)
        time.sleep(0.05 + (i % 5) * 0.02)
        s.close()

    with ThreadPoolExecutor(50) as pool:
        list(pool.map(one, range(1000)))
    done.set()
    assert _wait(lambda: up.active == 0, 10), f"{up.active} upstream calls still open"
    time.sleep(1.0)
    fds_after, tasks_after = open_fds(router.proc.pid), _tasks(tasks_file)
    # most requests reached the upstream before their client left (others were cut earlier)
    assert len(up.started_at) - started > 500
    assert fds_after <= fds_before + 4, (fds_before, fds_after)
    assert tasks_after <= tasks_before + 2, (tasks_before, tasks_after)
