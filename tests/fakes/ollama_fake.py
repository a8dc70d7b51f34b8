"""A fake Ollama upstream: /api/chat (JSON and NDJSON stream), /api/tags,
/api/embed, /api/version and ``GET /``, speaking Ollama's native protocol.
See ``fakes.fixtures``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from fakes.harness import Behaviour, FakeUpstream, render_text, rough_tokens, split_text
from fakes.openai_fake import fake_vector

_CREATED_AT = "2025-01-01T00:00:00.000000Z"


class FakeOllama(FakeUpstream):
    """Ollama's native API on 127.0.0.1; ``url`` is the bare root.

    ``strict_models``: answer 404 (as Ollama does) for a model not in ``models``
    (names match with or without ``:latest``).  ``tool_call_ids``: include an
    ``id`` in tool calls, as recent Ollama versions do; off by default so the
    adapter's id synthesis is exercised.
    """

    def __init__(self, *, models: list[str] | None = None, strict_models: bool = False,
                 tool_call_ids: bool = False) -> None:
        super().__init__(models=models if models is not None else ["fake-model:latest"])
        self.strict_models = strict_models
        self.tool_call_ids = tool_call_ids
        self.version = "0.6.5"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat", self.chat)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_post("/api/embed", self.embed)
        app.router.add_get("/api/version", self.get_version)
        app.router.add_get("/", self.hello)

    def error_body(self, b: Behaviour) -> bytes:
        return orjson.dumps({"error": b.error_message})

    def _known(self, model: str) -> bool:
        names = {m.removesuffix(":latest") for m in self.models}
        return model.removesuffix(":latest") in names

    async def hello(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return web.Response(text="Ollama is running")

    async def get_version(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return web.Response(body=orjson.dumps({"version": self.version}),
                            content_type="application/json")

    async def tags(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        models = [{
            "name": m, "model": m, "modified_at": _CREATED_AT, "size": 1_000_000,
            "digest": "0" * 64,
            "details": {"format": "gguf", "family": "fake", "parameter_size": "1B",
                        "quantization_level": "Q4_0"},
        } for m in self.models]
        return web.Response(body=orjson.dumps({"models": models}),
                            content_type="application/json")

    async def embed(self, request: web.Request) -> web.StreamResponse:
        got = await self.preamble(request)
        if isinstance(got, web.StreamResponse):
            return got
        b, body = got
        inputs = body.get("input", "")
        items = inputs if isinstance(inputs, list) else [inputs]
        return await self.json_answer(request, b, {
            "model": body.get("model", ""),
            "embeddings": [fake_vector(str(t)) for t in items],
            "total_duration": 1000, "load_duration": 10,
            "prompt_eval_count": sum(rough_tokens(str(t)) for t in items),
        })

    async def chat(self, request: web.Request) -> web.StreamResponse:
        got = await self.preamble(request)
        if isinstance(got, web.StreamResponse):
            return got
        b, body = got
        model = str(body.get("model", ""))
        if self.strict_models and not self._known(model):
            return web.Response(status=404, content_type="application/json",
                                body=orjson.dumps({"error": f"model '{model}' not found"}))
        text = render_text(b, body)
        prompt_tokens, completion_tokens = b.usage or (
            rough_tokens(orjson.dumps(body.get("messages", [])).decode()), rough_tokens(text))
        tool_calls: list[dict[str, Any]] = []
        for i, c in enumerate(b.tool_calls):
            call: dict[str, Any] = {"function": {"index": i, "name": c.name,
                                                 "arguments": orjson.loads(c.arguments)}}
            if self.tool_call_ids:
                call["id"] = c.id or f"call_{i}"
            tool_calls.append(call)
        final = {
            "model": model, "created_at": _CREATED_AT,
            "done": True, "done_reason": b.finish_reason or "stop",
            "total_duration": 5_000_000, "load_duration": 1_000_000,
            "prompt_eval_count": prompt_tokens, "prompt_eval_duration": 1_000_000,
            "eval_count": completion_tokens, "eval_duration": 3_000_000,
        }
        if body.get("stream", True) is False:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return await self.json_answer(request, b, {**final, "message": message})

        def line(obj: dict[str, Any]) -> bytes:
            return orjson.dumps(obj) + b"\n"

        lines = [line({"model": model, "created_at": _CREATED_AT,
                       "message": {"role": "assistant", "content": piece}, "done": False})
                 for piece in split_text(text, b.chunk_chars)]
        if tool_calls:
            lines.append(line({"model": model, "created_at": _CREATED_AT,
                               "message": {"role": "assistant", "content": "",
                                           "tool_calls": tool_calls},
                               "done": False}))
        lines.append(line({**final, "message": {"role": "assistant", "content": ""}}))
        return await self.stream_chunks(request, b, lines, "application/x-ndjson")
