"""A router (real Granian subprocess) in front of one fake upstream per wire, for the
surface tests (tests/*/test_surface_*.py)::

    ol   ollama wire     local   chat m-o, embedding emb-o
    lo   openai wire     local   chat m-l, and legacy /v1/completions
    an   anthropic wire  cloud   chat claude-x
    cl   openai wire     cloud   chat m-c, embedding emb-c

The chat chain of every cell is ``ol/m-o → lo/m-l → an/claude-x`` (private cells
drop the cloud one; with escalation on, a cell whose primary is local may add
cl/m-c); tests pin a wire with ``model=WIRE_MODELS[wire]``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from e2e.harness import RouterProcess, compile_yaml
from fakes.fixtures import FakeAnthropic, FakeOllama, FakeOpenAI
from fakes.harness import render_text, rough_tokens, split_text
from interlock.runtime.signals import TASKS

#: the model that pins each wire
WIRE_MODELS = {"ollama": "ol/m-o", "openai": "lo/m-l", "anthropic": "an/claude-x"}
CHAT_CAPS = "[streaming, json, json_schema, tools, vision]"


def _model(mid: str, provider: str, local: bool, caps: str) -> list[str]:
    price = "{input: 0, output: 0}" if local else "{input: 0.5, output: 1.5}"
    q = 60 if local else 90
    return [f"  - id: {mid}", f"    provider: {provider}", "    context_window: 32768",
            "    max_output: 4096", f"    price: {price}", f"    capabilities: {caps}",
            f"    quality: {{general: {q}, code: {q}, reasoning: {q}, summarize: {q}, "
            f"extract: {q}, creative: {q}, translate: {q}}}",
            "    speed: {ttft_ms: 100, tokens_per_s: 50}"]


def surface_yaml(ol: str, lo: str, an: str, cl: str) -> str:
    lines = ["profile: balanced", "providers:"]
    for name, wire, loc, url, models in (
            ("ol", "ollama", "local", ol, "[m-o, emb-o]"), ("lo", "openai", "local", lo, "[m-l]"),
            ("an", "anthropic", "cloud", an, None), ("cl", "openai", "cloud", cl, None)):
        lines += [f"  {name}:", f"    wire: {wire}", f"    locality: {loc}", "    auth: none",
                  f"    base_url: {url}", "    timeout_ms: 5000"]
        if models:
            lines.append(f"    models: {models}")
    lines.append("models:")
    lines += _model("m-o", "ol", True, CHAT_CAPS) + _model("emb-o", "ol", True, "[embeddings]")
    lines += _model("m-l", "lo", True, CHAT_CAPS) + _model("claude-x", "an", False, CHAT_CAPS)
    lines += _model("m-c", "cl", False, CHAT_CAPS) + _model("emb-c", "cl", False, "[embeddings]")
    lines.append("overrides:")
    for task in TASKS:
        lines += [f"  {task}:", "    primary: ol/m-o", "    fallbacks: [lo/m-l, an/claude-x]"]
    return "\n".join(lines) + "\n"


class FakeOpenAILegacy(FakeOpenAI):
    """FakeOpenAI plus the legacy ``POST /v1/completions`` (JSON and SSE)."""

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/v1/completions", self.completions)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        got = await self.preamble(request)
        if isinstance(got, web.StreamResponse):
            return got
        b, body = got
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        texts = [render_text(b, {"model": body.get("model", ""),
                                 "messages": [{"role": "user", "content": p}]})
                 for p in prompts]
        finish = b.finish_reason or "stop"
        usage = {"prompt_tokens": sum(rough_tokens(p) for p in prompts),
                 "completion_tokens": sum(rough_tokens(t) for t in texts)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        head = {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
                "model": body.get("model", "")}
        if not body.get("stream"):
            return await self.json_answer(request, b, {**head, "usage": usage, "choices": [
                {"text": t, "index": i, "logprobs": None, "finish_reason": finish}
                for i, t in enumerate(texts)]})
        chunks = []
        for i, t in enumerate(texts):
            for piece in split_text(t, b.chunk_chars):
                chunks.append({**head, "choices": [{"text": piece, "index": i,
                                                    "logprobs": None, "finish_reason": None}]})
            chunks.append({**head, "choices": [{"text": "", "index": i, "logprobs": None,
                                                "finish_reason": finish}]})
        opts = body.get("stream_options")
        if isinstance(opts, dict) and opts.get("include_usage"):
            chunks.append({**head, "choices": [], "usage": usage})
        raw = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
        return await self.stream_chunks(request, b, raw, "text/event-stream")


@dataclass
class Surfaces:
    ol: FakeOllama
    lo: FakeOpenAILegacy
    an: FakeAnthropic
    cl: FakeOpenAI
    router: RouterProcess

    @property
    def url(self) -> str:
        return self.router.url

    def fake(self, wire: str) -> Any:
        return {"ollama": self.ol, "openai": self.lo, "anthropic": self.an}[wire]

    def reset(self) -> None:
        for up in (self.ol, self.lo, self.an, self.cl):
            up.reset()

    def stop(self) -> None:
        self.router.stop()
        for up in (self.ol, self.lo, self.an, self.cl):
            up.stop()


def start_surfaces(env: Mapping[str, str] | None = None) -> Surfaces:
    ol = FakeOllama(models=["m-o", "emb-o"]).start()
    lo = FakeOpenAILegacy(models=["m-l"]).start()
    an = FakeAnthropic(models=["claude-x"]).start()
    cl = FakeOpenAI(models=["m-c", "emb-c"]).start()
    try:
        table = compile_yaml(surface_yaml(ol.url, lo.url, an.url, cl.url))
        environ = {"INTERLOCK_HEALTH_FAILURES": "1000000", "INTERLOCK_BREAKERS": "0",
                   **(env or {})}
        router = RouterProcess(table, env=environ).wait_ready()
    except BaseException:
        for up in (ol, lo, an, cl):
            up.stop()
        raise
    return Surfaces(ol, lo, an, cl, router)
