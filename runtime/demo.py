"""``router start --demo``: routing end to end with nothing installed.

Two small upstreams start on loopback, as real HTTP servers speaking the real
wire formats (this is not a shortcut inside the router):

* **demo-local** plays a model on this machine: Ollama's native API
  (``GET /api/tags``, ``GET /api/version``, ``POST /api/chat`` as JSON or an
  NDJSON stream);
* **demo-cloud** plays a hosted provider: OpenAI's chat completions
  (``GET /v1/models``, ``POST /v1/chat/completions`` as JSON or SSE).

A demo ``router.yaml`` defining the two as custom providers (wire, locality,
base_url) and one model each is compiled with the normal compiler and the
router serves it.  Every answer says which side produced it, so a user sees::

    simple prompt            → [demo-local] ...      (stays on this machine)
    hard prompt              → [demo-cloud] ...      (the cloud model's turn)
    private prompt (an email, "private": true)
                             → [demo-local] ... or a 503 - never the cloud
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from interlock.runtime.table import DecisionTable

LOCAL_MODEL = "tiny-local"
CLOUD_MODEL = "big-cloud"

DEMO_CONFIG = """\
# The demo's router.yaml: two custom providers on loopback, one model each.
profile: balanced
providers:
  demo-local:
    wire: ollama
    locality: local
    auth: none
    base_url: {local_url}
    models: [{local_model}]   # a local provider serves only what is installed
  demo-cloud:
    wire: openai
    locality: cloud
    auth: none
    base_url: {cloud_url}
models:
  - id: {local_model}
    provider: demo-local
    family: demo
    context_window: 32768
    max_output: 4096
    price: {{input: 0, output: 0}}
    capabilities: [streaming, json, json_schema, tools]
    quality: {{general: 62, code: 58, reasoning: 52, summarize: 64, extract: 62,
               creative: 60, translate: 58}}
    speed: {{ttft_ms: 60, tokens_per_s: 60}}
  - id: {cloud_model}
    provider: demo-cloud
    family: demo
    context_window: 128000
    max_output: 16384
    price: {{input: 0.4, output: 1.6}}
    capabilities: [streaming, json, json_schema, tools, vision]
    quality: {{general: 90, code: 90, reasoning: 90, summarize: 88, extract: 88,
               creative: 86, translate: 88}}
    speed: {{ttft_ms: 350, tokens_per_s: 90}}
"""


# -- answers ------------------------------------------------------------------------------


def _last_user(body: Any) -> str:
    msgs = body.get("messages") if isinstance(body, dict) else None
    for m in reversed(msgs if isinstance(msgs, list) else []):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content
                                if isinstance(p, dict) and p.get("type") == "text")
    return ""


def answer_text(side: str, model: str, body: Any, *, json_mode: bool) -> str:
    """The demo's answer: which side answered, and an echo of the question."""
    prompt = " ".join(_last_user(body).split())
    short = prompt if len(prompt) <= 80 else prompt[:77] + "..."
    where = "on this machine" if side == "demo-local" else "in the (demo) cloud"
    if json_mode:
        return orjson.dumps({"answered_by": side, "model": model, "where": where,
                             "prompt": short}).decode()
    return f"[{side}] {model} answered {where}. You asked: \"{short}\""


def _words(text: str) -> list[str]:
    out, word = [], ""
    for ch in text:
        word += ch
        if ch == " ":
            out.append(word)
            word = ""
    if word:
        out.append(word)
    return out


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


# -- the two servers ---------------------------------------------------------------------------


async def _local_chat(request: web.Request) -> web.StreamResponse:
    """Ollama ``POST /api/chat``: JSON, or NDJSON when ``stream`` is not false."""
    body = await request.json(loads=orjson.loads)
    model = str(body.get("model", LOCAL_MODEL))
    fmt = body.get("format")
    text = answer_text("demo-local", model, body, json_mode=fmt is not None)
    prompt_tokens = _tokens(_last_user(body))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    final = {"model": model, "created_at": created, "done": True, "done_reason": "stop",
             "total_duration": 1_000_000, "prompt_eval_count": prompt_tokens,
             "eval_count": _tokens(text)}
    if body.get("stream", True) is False:
        return web.Response(body=orjson.dumps({
            **final, "message": {"role": "assistant", "content": text}}),
            content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    for word in _words(text):
        await resp.write(orjson.dumps({"model": model, "created_at": created, "done": False,
                                       "message": {"role": "assistant", "content": word}})
                         + b"\n")
    await resp.write(orjson.dumps({**final, "message": {"role": "assistant", "content": ""}})
                     + b"\n")
    await resp.write_eof()
    return resp


async def _local_tags(request: web.Request) -> web.StreamResponse:
    return web.json_response({"models": [{"name": LOCAL_MODEL, "model": LOCAL_MODEL,
                                          "size": 1, "details": {"family": "demo"}}]},
                             dumps=lambda o: orjson.dumps(o).decode())


async def _local_version(request: web.Request) -> web.StreamResponse:
    return web.json_response({"version": "0.0.0-demo"})


async def _cloud_chat(request: web.Request) -> web.StreamResponse:
    """OpenAI ``POST /v1/chat/completions``: JSON, or SSE with ``stream: true``."""
    body = await request.json(loads=orjson.loads)
    model = str(body.get("model", CLOUD_MODEL))
    json_mode = isinstance(body.get("response_format"), dict) and \
        body["response_format"].get("type") in ("json_object", "json_schema")
    text = answer_text("demo-cloud", model, body, json_mode=json_mode)
    cid, created = "chatcmpl-demo" + uuid.uuid4().hex[:12], int(time.time())
    usage = {"prompt_tokens": _tokens(_last_user(body)), "completion_tokens": _tokens(text)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if not body.get("stream"):
        return web.Response(body=orjson.dumps({
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": usage}), content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({
            "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"

    await resp.write(chunk({"role": "assistant", "content": ""}))
    for word in _words(text):
        await resp.write(chunk({"content": word}))
    await resp.write(chunk({}, "stop"))
    opts = body.get("stream_options")
    if isinstance(opts, dict) and opts.get("include_usage"):
        await resp.write(b"data: " + orjson.dumps({
            "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage}) + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _cloud_models(request: web.Request) -> web.StreamResponse:
    return web.json_response({"object": "list", "data": [
        {"id": CLOUD_MODEL, "object": "model", "created": 0, "owned_by": "demo-cloud"}]})


def local_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/chat", _local_chat)
    app.router.add_get("/api/tags", _local_tags)
    app.router.add_get("/api/version", _local_version)
    app.router.add_get("/", lambda r: _text("Ollama is running"))
    return app


def cloud_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _cloud_chat)
    app.router.add_get("/v1/models", _cloud_models)
    return app


async def _text(text: str) -> web.StreamResponse:
    return web.Response(text=text)


class DemoUpstreams:
    """Both demo servers on 127.0.0.1 (ephemeral ports), in one background thread."""

    def __init__(self) -> None:
        self.local_port = 0
        self.cloud_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    @property
    def cloud_url(self) -> str:
        return f"http://127.0.0.1:{self.cloud_port}/v1"

    def start(self) -> DemoUpstreams:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="interlock-demo",
                                        daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self.local_port = await self._serve(local_app())
        self.cloud_port = await self._serve(cloud_app())

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        port: int = runner.addresses[-1][1]
        return port

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

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    def __enter__(self) -> DemoUpstreams:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the demo table and the demo server -------------------------------------------------------


def demo_config(local_url: str, cloud_url: str) -> str:
    """The demo's router.yaml text for upstreams at these URLs."""
    return DEMO_CONFIG.format(local_url=local_url, cloud_url=cloud_url,
                              local_model=LOCAL_MODEL, cloud_model=CLOUD_MODEL)


def demo_table(local_url: str, cloud_url: str) -> DecisionTable:
    """Compile the demo config with the normal compiler (no discovery, no keys)."""
    from interlock.compiler.api import compile_text
    from interlock.runtime.server import _table_of

    result = compile_text(demo_config(local_url, cloud_url), origin="demo router.yaml",
                          environ={})
    return _table_of(result, "the demo config")


#: The demo's three example prompts: (what it shows, prompt, the side that answers).
#: The README quick start and tests/integration/test_app_demo.py use these.
EXAMPLES: tuple[tuple[str, str, str], ...] = (
    ("stays local (a simple question)", "What is a haiku?", "demo-local"),
    ("goes to the cloud (a hard, multi-step problem)",
     "Design a distributed rate limiter: first analyze the requirements, then compare "
     "token bucket and sliding window approaches step by step, prove the consistency "
     "guarantees, and finally derive the complexity of each design with a rigorous "
     "trade-off analysis.", "demo-cloud"),
    ("private (an email address): never sent to the cloud",
     "Draft a reply to jane.doe@acme-corp.com about Tuesday.", "demo-local"),
)


def examples(base: str) -> list[str]:
    """The demo's curls, ready to paste."""
    url = f"{base}/v1/chat/completions"
    lines: list[str] = []
    for what, prompt, _side in EXAMPLES:
        body = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
        lines.append(f"# {what}:")
        lines.append(f"curl -s {url} -H 'content-type: application/json' -d '{body.decode()}'")
    lines.append(f"# why each went where it went: POST the same bodies to {base}/v1/route")
    return lines


def serve_demo(
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    workers: int = 1,
    environ: Mapping[str, str] | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Start the demo upstreams, compile the demo table and serve it until Ctrl-C."""
    from interlock.runtime.server import serve_table

    with DemoUpstreams() as ups:
        table = demo_table(ups.local_url, ups.cloud_url)
        echo(f"demo: demo-local (Ollama wire, local) at {ups.local_url}")
        echo(f"demo: demo-cloud (OpenAI wire, plays the cloud) at {ups.cloud_url}")
        echo(f"demo: table {table.hash[:19]}... (profile {table.profile})")
        echo("status: ok (demo)")
        for line in examples(f"http://{host}:{port}"):
            echo(line)
        serve_table(table, host=host, port=port, workers=workers, environ=environ, echo=echo)
