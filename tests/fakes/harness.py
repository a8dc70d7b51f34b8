"""The machinery shared by every fake upstream: a real aiohttp server on
127.0.0.1 (ephemeral port) running in a background thread with its own event
loop, a script of behaviours, a record of requests and a connection counter.

See ``fakes.fixtures`` for the public API summary.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import orjson
from aiohttp import web
from multidict import CIMultiDict

ToolVariant = Literal["split", "repeat_id", "index_zero", "whole", "interleaved"]
Drop = Literal["before_headers", "mid_stream"]


@dataclass
class FakeToolCall:
    """A tool call the fake answers with.  ``arguments`` is JSON text."""

    name: str
    arguments: str = "{}"
    id: str | None = None  # default: call_<n>


@dataclass
class Behaviour:
    """How the fake answers one request.  Every field has a harmless default.

    ``text`` may contain ``{model}`` (the model name the request carried) and
    ``{last_user}`` (the text of the last user message): echo mode for tests.
    """

    text: str = "Hello from {model}."
    #: latency before the status line and headers
    delay_s: float = 0.0
    #: delay before each streamed chunk
    chunk_delay_s: float = 0.0
    #: answer with this status and the wire's error body
    status: int = 200
    error_message: str = "fake upstream error"
    error_type: str | None = None
    #: Retry-After header value (seconds or an HTTP date), sent with errors
    retry_after: str | None = None
    #: "before_headers": close the socket right after reading the request;
    #: "mid_stream": send ``drop_after`` chunks (or part of a JSON body), then cut
    drop: Drop | None = None
    drop_after: int = 1
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    #: how tool calls are streamed (openai wire):
    #: split       id+name in the first delta, arguments in later fragments (OpenAI)
    #: repeat_id   like split but id and name repeated on every fragment
    #: index_zero  every call sent with index 0, a new call starts with a new id
    #: whole       each call complete in one delta
    #: interleaved fragments of parallel calls interleaved (index tells them apart)
    tool_variant: ToolVariant = "split"
    #: override the finish reason ("length", ...); default stop / tool_calls
    finish_reason: str | None = None
    #: (input, output) token counts; default derived from the request and answer
    usage: tuple[int, int] | None = None
    #: split the answer text into pieces of this many characters (0: by word)
    chunk_chars: int = 0
    #: send these raw byte chunks as the streamed body, verbatim (framing tests)
    raw_chunks: list[bytes] | None = None
    #: extra response headers
    headers: dict[str, str] = field(default_factory=dict)
    #: openai wire, JSON answers: keys set on the answer object (system_fingerprint,
    #: service_tier, a detailed usage ...) and on its first choice (logprobs ...)
    answer_extra: dict[str, Any] = field(default_factory=dict)
    choice_extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    headers: CIMultiDict[str]  # case-insensitive, like HTTP
    body: bytes
    json: Any


_WORDS = re.compile(r"\S+\s*|\s+")


def split_text(text: str, chunk_chars: int) -> list[str]:
    if not text:
        return []
    if chunk_chars > 0:
        return [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
    return _WORDS.findall(text)


def last_user_text(body: Any) -> str:
    msgs = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(msgs, list):
        return ""
    for m in reversed(msgs):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return "".join(
                    p.get("text", "") for p in c if isinstance(p, dict) and p.get("type") == "text"
                )
    return ""


def render_text(b: Behaviour, body: Any) -> str:
    model = body.get("model", "") if isinstance(body, dict) else ""
    return b.text.replace("{model}", str(model)).replace("{last_user}", last_user_text(body))


def rough_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class FakeUpstream:
    """Base class: subclasses add routes in ``routes()``.

    Use as a context manager (``with FakeOpenAI() as up``) or call
    ``start()``/``stop()``.  Everything public is safe to call from the test's
    thread while the server runs in its own.
    """

    #: path prefix of the provider base URL the catalog would use ("/v1" or "")
    base_path = ""

    def __init__(self, *, models: list[str] | None = None) -> None:
        self.models: list[str] = list(models) if models is not None else ["fake-model"]
        self.default = Behaviour()
        self._script: deque[Behaviour] = deque()
        self.requests: list[Recorded] = []
        self.connections = 0
        self.port = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None

    # -- public API -------------------------------------------------------------

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The provider ``base_url`` as the catalog writes it (``/v1`` for openai)."""
        return self.root + self.base_path

    def push(self, *behaviours: Behaviour) -> None:
        """Queue behaviours; each generation request consumes one, then ``default``."""
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        """Forget requests, connections and queued behaviours; restore the default."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.connections = 0
            self.default = Behaviour()

    def bodies(self, path: str | None = None) -> list[Any]:
        """The JSON bodies received (optionally only for ``path``)."""
        return [r.json for r in list(self.requests) if path is None or r.path == path]

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, daemon=True,
                                        name=type(self).__name__)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        loop.close()
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for subclasses ----------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def error_body(self, b: Behaviour) -> bytes:
        raise NotImplementedError

    async def preamble(self, request: web.Request) -> tuple[Behaviour, Any] | web.StreamResponse:
        """Record the request, pick a behaviour and apply delay/drop/status.

        Returns (behaviour, parsed body) to go on, or a finished response.
        """
        body = await self.record(request)
        b = self.next_behaviour()
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        if b.drop == "before_headers":
            cut(request)
            return web.Response(status=200)
        if b.status >= 300:
            headers = dict(b.headers)
            if b.retry_after is not None:
                headers["Retry-After"] = b.retry_after
            return web.Response(status=b.status, body=self.error_body(b),
                                content_type="application/json", headers=headers)
        return b, body

    async def record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            parsed: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        self.requests.append(Recorded(request.method, request.path, CIMultiDict(request.headers),
                                      raw, parsed))
        return parsed

    async def stream_chunks(
        self, request: web.Request, b: Behaviour, chunks: list[bytes], content_type: str,
    ) -> web.StreamResponse:
        """Write ``chunks`` one by one with the behaviour's delays and drop."""
        resp = web.StreamResponse(status=200, headers={"Content-Type": content_type, **b.headers})
        await resp.prepare(request)
        for i, chunk in enumerate(b.raw_chunks if b.raw_chunks is not None else chunks):
            if b.drop == "mid_stream" and i >= b.drop_after:
                cut(request)
                return resp
            if b.chunk_delay_s:
                await asyncio.sleep(b.chunk_delay_s)
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def json_answer(
        self, request: web.Request, b: Behaviour, payload: Any,
    ) -> web.StreamResponse:
        data = orjson.dumps(payload)
        if b.drop == "mid_stream":
            # announce the full length, send half, cut: the client sees a short body
            resp = web.StreamResponse(status=200, headers={
                "Content-Type": "application/json", "Content-Length": str(len(data))})
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            cut(request)
            return resp
        return web.Response(body=data, content_type="application/json", headers=b.headers)

    # -- internals ---------------------------------------------------------------

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        self._runner = runner
        server = runner.server
        assert server is not None

        def factory() -> Any:
            self.connections += 1
            return server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()


def cut(request: web.Request) -> None:
    """Drop the connection abruptly (RST where possible)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
