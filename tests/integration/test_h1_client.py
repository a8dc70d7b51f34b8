"""The small HTTP/1.1 client (runtime/providers/h1.py) against real sockets on loopback.

Each test runs a scripted asyncio server that reads a request head (and body, by
Content-Length) and answers with the exact bytes the test gives it, so framing,
keep-alive, stale connections, timeouts and codings are checked on the wire.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
from interlock.runtime.providers.h1 import (
    ConnectFailed,
    H1Client,
    ProtocolError,
    Target,
    target_of,
)


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body in a fresh event loop (the suite has no asyncio plugin)."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))
    return run


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]


class Scripted:
    """A loopback server; ``handler(reader, writer, request)`` answers one request and
    returns True to keep the connection open for the next one."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def target(self) -> Target:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        t = target_of(f"http://127.0.0.1:{port}/v1/chat/completions")
        assert t is not None
        return t

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                if not await self.handler(reader, writer, head + body):
                    return
        finally:
            writer.close()


def answer(raw: bytes, keep: bool = True) -> Handler:
    async def h(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> bool:
        w.write(raw)
        await w.drain()
        return keep
    return h


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


@aio
async def test_content_length_answer_and_request_on_the_wire() -> None:
    async with Scripted(answer(OK)) as srv:
        c = H1Client()
        r = await c.request("POST", srv.target, {"Content-Type": "application/json",
                                                 "Authorization": "Bearer k"},
                            b'{"a":1}', timeout=5, connect_timeout=5)
        assert (r.status, r.body) == (200, b'{"ok":true}')
        assert r.headers["content-type"] == "application/json"
        req = srv.requests[0]
        assert req.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert f"Host: {srv.target.authority}\r\n".encode() in req
        assert b"Authorization: Bearer k\r\n" in req
        assert b"Content-Length: 7\r\n" in req and req.endswith(b'\r\n\r\n{"a":1}')
        c.close()


@aio
async def test_keep_alive_reuses_one_connection() -> None:
    async with Scripted(answer(OK)) as srv:
        c = H1Client()
        for _ in range(5):
            r = await c.request("POST", srv.target, {}, b"{}", timeout=5, connect_timeout=5)
            assert r.status == 200
        assert srv.connections == 1 and len(srv.requests) == 5
        c.close()


@aio
async def test_connection_close_is_not_reused() -> None:
    raw = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")
    async with Scripted(answer(raw, keep=False)) as srv:
        c = H1Client()
        for _ in range(3):
            assert (await c.request("GET", srv.target, {}, None, timeout=5,
                                    connect_timeout=5)).body == b'{"ok":true}'
        assert srv.connections == 3
        c.close()


@aio
async def test_chunked_answer_in_tiny_pieces_with_trailer() -> None:
    payload = b'{"text":"' + b"x" * 5000 + b'"}'
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(payload[i:i + 777]), payload[i:i + 777])
                      for i in range(0, len(payload), 777))
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
           + b"0\r\nX-Trailer: yes\r\n\r\n")

    async def dribble(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _q: bytes) -> bool:
        for i in range(0, len(raw), 13):  # split across CRLFs and sizes
            w.write(raw[i:i + 13])
            await w.drain()
            await asyncio.sleep(0)
        return True

    async with Scripted(dribble) as srv:
        c = H1Client()
        for _ in range(2):  # the connection stays usable after a chunked answer
            r = await c.request("POST", srv.target, {}, b"{}", timeout=5, connect_timeout=5)
            assert r.body == payload
        assert srv.connections == 1
        c.close()


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@aio
async def test_compressed_answers_are_decoded(coding: str) -> None:
    body = b'{"hello":"world"}' * 50
    packed = gzip.compress(body) if coding == "gzip" else zlib.compress(body)
    raw = (b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
           % (coding.encode(), len(packed))) + packed
    async with Scripted(answer(raw)) as srv:
        c = H1Client()
        r = await c.request("POST", srv.target, {}, b"{}", timeout=5, connect_timeout=5)
        assert r.body == body
        assert b"Accept-Encoding: identity\r\n" in srv.requests[0]
        c.close()


@aio
async def test_unknown_coding_is_an_error() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nzz"
    async with Scripted(answer(raw)) as srv:
        with pytest.raises(ProtocolError, match="Content-Encoding"):
            await H1Client().request("POST", srv.target, {}, b"{}", timeout=5,
                                     connect_timeout=5)


@aio
async def test_interim_100_continue_is_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    async with Scripted(answer(raw)) as srv:
        r = await H1Client().request("POST", srv.target, {}, b"{}", timeout=5,
                                     connect_timeout=5)
        assert (r.status, r.body) == (200, b'{"ok":true}')


@aio
async def test_read_until_close_without_length() -> None:
    raw = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"old\":1}"
    async with Scripted(answer(raw, keep=False)) as srv:
        r = await H1Client().request("GET", srv.target, {}, None, timeout=5, connect_timeout=5)
        assert r.body == b'{"old":1}'


@aio
async def test_error_status_keeps_headers_and_body() -> None:
    raw = (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Type: application/json"
           b"\r\nContent-Length: 14\r\n\r\n{\"error\":\"no\"}")
    async with Scripted(answer(raw)) as srv:
        r = await H1Client().request("POST", srv.target, {}, b"{}", timeout=5,
                                     connect_timeout=5)
        assert r.status == 429 and r.headers["retry-after"] == "2"
        assert r.body == b'{"error":"no"}'


@aio
async def test_stale_pooled_connection_is_retried_once_on_a_new_one() -> None:
    # the server answers, then closes the idle connection (a keep-alive timeout)
    async def close_after(_r: asyncio.StreamReader, w: asyncio.StreamWriter,
                          _q: bytes) -> bool:
        w.write(OK)
        await w.drain()
        return False

    async with Scripted(close_after) as srv:
        c = H1Client()
        assert (await c.request("POST", srv.target, {}, b"{}", timeout=5,
                                connect_timeout=5)).status == 200
        await asyncio.sleep(0.05)  # the FIN arrives; the pooled connection is now dead
        assert (await c.request("POST", srv.target, {}, b"{}", timeout=5,
                                connect_timeout=5)).status == 200
        assert srv.connections == 2
        c.close()


@pytest.mark.parametrize(("method", "replayed"), [("GET", True), ("POST", False)])
@aio
async def test_reused_connection_dropped_before_any_answer(method: str, replayed: bool) -> None:
    # the race a pool cannot see: the server takes the second request on a kept-alive
    # connection and closes it without a byte of answer (its idle timeout fired, or it
    # crashed); a GET is sent once more, a POST is not (the upstream may have acted)
    seen: dict[int, int] = {}

    async def second_dies(_r: asyncio.StreamReader, w: asyncio.StreamWriter,
                          _q: bytes) -> bool:
        n = seen[id(w)] = seen.get(id(w), 0) + 1
        if n == 2:
            return False
        w.write(OK)
        await w.drain()
        return True

    async with Scripted(second_dies) as srv:
        c = H1Client()
        body = b"{}" if method == "POST" else None
        r = await c.request(method, srv.target, {}, body, timeout=5, connect_timeout=5)
        assert r.status == 200
        if replayed:
            r = await c.request(method, srv.target, {}, body, timeout=5, connect_timeout=5)
            assert r.status == 200
            assert srv.connections == 2 and len(srv.requests) == 3
        else:
            with pytest.raises(ConnectionResetError):
                await c.request(method, srv.target, {}, body, timeout=5, connect_timeout=5)
            assert srv.connections == 1 and len(srv.requests) == 2
        c.close()


@aio
async def test_idle_connections_expire_before_servers_close_them() -> None:
    async with Scripted(answer(OK)) as srv:
        c = H1Client(keepalive_s=0.05)
        for _ in range(2):
            assert (await c.request("POST", srv.target, {}, b"{}", timeout=5,
                                    connect_timeout=5)).status == 200
        assert srv.connections == 1  # reused while fresh
        await asyncio.sleep(0.1)
        assert (await c.request("POST", srv.target, {}, b"{}", timeout=5,
                                connect_timeout=5)).status == 200
        assert srv.connections == 2  # too old: a new connection
        c.close()


@aio
async def test_drop_mid_answer_is_a_reset_not_a_retry() -> None:
    async def cut(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _q: bytes) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\"")
        await w.drain()
        return False

    async with Scripted(cut) as srv:
        with pytest.raises(ConnectionResetError):
            await H1Client().request("POST", srv.target, {}, b"{}", timeout=5,
                                     connect_timeout=5)
        assert srv.connections == 1  # a request that got an answer started is not re-sent


@aio
async def test_timeout_closes_the_connection() -> None:
    async def never(_r: asyncio.StreamReader, _w: asyncio.StreamWriter, _q: bytes) -> bool:
        await asyncio.sleep(10)
        return False

    async with Scripted(never) as srv:
        c = H1Client()
        with pytest.raises(TimeoutError):
            await c.request("POST", srv.target, {}, b"{}", timeout=0.2, connect_timeout=5)
        assert not c._idle.get((srv.target.host, srv.target.port))


@aio
async def test_cancelled_request_never_returns_to_the_pool() -> None:
    gate = asyncio.Event()

    async def slow(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _q: bytes) -> bool:
        await gate.wait()
        w.write(OK)
        return True

    async with Scripted(slow) as srv:
        c = H1Client()
        task = asyncio.create_task(c.request("POST", srv.target, {}, b"{}", timeout=5,
                                             connect_timeout=5))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        assert not c._idle.get((srv.target.host, srv.target.port))
        c.close()


@aio
async def test_connection_refused() -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    t = target_of(f"http://127.0.0.1:{port}/x")
    assert t is not None
    with pytest.raises(ConnectFailed):
        await H1Client().request("GET", t, {}, None, timeout=5, connect_timeout=5)


@pytest.mark.parametrize("raw", [
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno-colon-here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000,
])
@aio
async def test_malformed_answers_are_protocol_errors(raw: bytes) -> None:
    async with Scripted(answer(raw, keep=False)) as srv:
        with pytest.raises(ProtocolError):
            await H1Client().request("POST", srv.target, {}, b"{}", timeout=5,
                                     connect_timeout=5)


@aio
async def test_header_injection_is_refused_before_sending() -> None:
    async with Scripted(answer(OK)) as srv:
        with pytest.raises(ValueError):
            await H1Client().request("POST", srv.target, {"X-Evil": "a\r\nHost: other"},
                                     b"{}", timeout=5, connect_timeout=5)
        assert srv.requests == []


def test_target_of_only_plain_http_without_credentials() -> None:
    assert target_of("https://api.openai.com/v1/chat/completions") is None
    assert target_of("http://user:pw@127.0.0.1:8080/v1") is None
    assert target_of("http://127.0.0.1:99999/v1") is None
    t = target_of("http://[::1]:11434/api/chat?x=1")
    assert t == Target("::1", 11434, "[::1]:11434", "/api/chat?x=1")
    assert target_of("http://localhost/v1") == Target("localhost", 80, "localhost", "/v1")


def test_connects_are_visible_to_audit_hooks() -> None:
    # the suite's loopback guard (tests/netguard) relies on the socket.connect audit
    # event; the client must not connect natively inside the event loop
    import subprocess
    import sys
    code = (
        "import asyncio, sys\n"
        "seen = []\n"
        "sys.addaudithook(lambda e, a: seen.append(a[1]) if e == 'socket.connect' else None)\n"
        "from interlock.runtime.providers.h1 import H1Client, target_of\n"
        "async def main():\n"
        "    s = await asyncio.start_server(lambda r, w: w.close(), '127.0.0.1', 0)\n"
        "    port = s.sockets[0].getsockname()[1]\n"
        "    try:\n"
        "        await H1Client().request('GET', target_of(f'http://127.0.0.1:{port}/'), {},"
        " None, timeout=2, connect_timeout=2)\n"
        "    except ConnectionError:\n"
        "        pass\n"
        "    print(any(isinstance(a, tuple) and a[1] == port for a in seen))\n"
        "import uvloop\n"
        "uvloop.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "True", out.stderr


def test_a_client_outlives_its_event_loop() -> None:
    # one client used from two asyncio.run() calls (a test or CLI pattern): the second
    # loop must not pick up a connection of the first
    import threading

    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            async with Scripted(answer(OK)) as srv:
                holder["srv"] = srv
                ready.set()
                while not holder.get("stop"):
                    await asyncio.sleep(0.01)
        asyncio.run(main())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(10)
    srv = holder["srv"]
    c = H1Client()

    async def one() -> int:
        r = await c.request("POST", srv.target, {}, b"{}", timeout=5, connect_timeout=5)
        return r.status

    try:
        assert asyncio.run(one()) == 200
        assert asyncio.run(one()) == 200
        assert srv.connections == 2
    finally:
        holder["stop"] = True
        t.join(10)
