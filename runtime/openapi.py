"""The router's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Built from the app's own route table, so it lists exactly the operations this
build serves: each served (path, method) whose description is known here is
documented; :func:`undocumented` names the rest (a test keeps it empty).  The
request schemas describe what the router accepts, loosely where the upstream
APIs are loose (message content, tools); they drive schemathesis in the tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from interlock import __version__

JSON = "application/json"

_ERROR: dict[str, Any] = {
    "description": "an error in the API's own error shape",
    "content": {JSON: {"schema": {"type": "object"}}},
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
        "content": {"type": "string"},
    },
}
_ROUTER_FIELDS: dict[str, Any] = {
    "private": {"type": "boolean", "description": "never leave this machine"},
    "trace": {"type": "boolean", "description": "attach the routing trace"},
}
_CHAT = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "model": {"type": "string", "description": "auto, a model key, an id or a pin"},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "stream": {"type": "boolean"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "seed": {"type": "integer"},
        "stop": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
        **_ROUTER_FIELDS,
    },
}
_MESSAGES_LIST: dict[str, Any] = {
    "type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["role", "content"],
        "properties": {"role": {"type": "string", "enum": ["user", "assistant"]},
                       "content": {"type": "string"}}}}
_MESSAGES = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "system": {"type": "string"},
        "messages": _MESSAGES_LIST,
        "stream": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
_EMBEDDINGS = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "model": {"type": "string"},
        "input": {"oneOf": [{"type": "string"},
                            {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
        **_ROUTER_FIELDS,
    },
}
_ROUTE = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string"},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "model": {"type": "string"},
        **_ROUTER_FIELDS,
    },
}


def _op(summary: str, body: dict[str, Any] | None = None, *, ok: str = "answer",
        content: str = JSON, errors: Iterable[int] = (400, 401, 413, 429)) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": ok, "content": {content: {"schema": {}}}},
                      **{str(s): _ERROR for s in errors}},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    return op


#: every operation the router may serve, by (path, method)
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/chat/completions", "POST"): _op("OpenAI chat completions (JSON or SSE)", _CHAT,
                                          errors=(400, 401, 403, 404, 413, 422, 429, 502,
                                                  503, 504)),
    ("/v1/messages", "POST"): _op("Anthropic messages (JSON or SSE)", _MESSAGES,
                                  errors=(400, 401, 403, 404, 413, 429, 502, 503, 504)),
    ("/v1/embeddings", "POST"): _op("OpenAI embeddings", _EMBEDDINGS,
                                    errors=(400, 401, 404, 413, 429, 502, 503, 504)),
    ("/v1/route", "POST"): _op("dry run: where a request would go, and why", _ROUTE),
    ("/v1/models", "GET"): _op("the models and routing aliases", errors=(401,)),
    ("/healthz", "GET"): _op("provider health", errors=(503,)),
    ("/readyz", "GET"): _op("readiness", errors=(503,)),
    ("/openapi.json", "GET"): _op("this document", errors=(401,)),
    ("/metrics", "GET"): _op("Prometheus metrics", ok="text exposition", content="text/plain",
                             errors=(401,)),
    ("/v1/stats", "GET"): _op("request statistics", errors=(400, 401)),
    ("/v1/logs", "GET"): _op("the request log", errors=(400, 401)),
    ("/dashboard", "GET"): _op("the dashboard page", ok="HTML", content="text/html",
                               errors=(401,)),
    ("/v1/responses", "POST"): _op("OpenAI Responses (stateless; JSON or SSE)", {
        "type": "object", "required": ["input"],
        "properties": {"model": {"type": "string"},
                       "input": {"oneOf": [{"type": "string"}, {"type": "array",
                                                                "items": _MESSAGE}]},
                       "instructions": {"type": "string"}, "stream": {"type": "boolean"},
                       "max_output_tokens": {"type": "integer", "minimum": 16},
                       **_ROUTER_FIELDS}},
        errors=(400, 401, 403, 404, 413, 429, 502, 503, 504)),
    ("/v1/completions", "POST"): _op("OpenAI legacy completions", {
        "type": "object", "required": ["prompt"],
        "properties": {"model": {"type": "string"}, "prompt": {"type": "string"},
                       "max_tokens": {"type": "integer", "minimum": 1},
                       "stream": {"type": "boolean"}, **_ROUTER_FIELDS}},
        errors=(400, 401, 403, 404, 413, 429, 502, 503, 504)),
    ("/v1/messages/count_tokens", "POST"): _op("Anthropic token count (an estimate)", {
        "type": "object", "required": ["model", "messages"],
        "properties": {"model": {"type": "string"},
                       "messages": _MESSAGES_LIST}}),
    # the minimal Ollama-native surface (interlock.runtime.surfaces.ollama)
    ("/api/chat", "POST"): _op("Ollama chat (JSON or NDJSON)", {
        "type": "object", "required": ["model", "messages"],
        "properties": {"model": {"type": "string", "minLength": 1},
                       "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
                       "stream": {"type": "boolean"}, "private": {"type": "boolean"}}},
        content="application/x-ndjson", errors=(400, 401, 404, 413, 429, 502, 503, 504)),
    ("/api/generate", "POST"): _op("Ollama generate (JSON or NDJSON)", {
        "type": "object", "required": ["model", "prompt"],
        "properties": {"model": {"type": "string", "minLength": 1},
                       "prompt": {"type": "string", "minLength": 1},
                       "system": {"type": "string"}, "stream": {"type": "boolean"}}},
        content="application/x-ndjson", errors=(400, 401, 404, 413, 429, 502, 503, 504)),
    ("/api/embed", "POST"): _op("Ollama embeddings", _EMBEDDINGS,
                                errors=(400, 401, 404, 413, 429, 502, 503, 504)),
    ("/api/tags", "GET"): _op("the models, in Ollama's list shape", errors=(401,)),
    ("/api/version", "GET"): _op("an Ollama API-compatibility version", errors=(401,)),
    ("/v1/table", "GET"): _op("the loaded decision table", errors=(401,)),
    ("/v1/events", "GET"): _op("live request events (SSE)", ok="event stream",
                               content="text/event-stream", errors=(401,)),
    ("/v1/conversations", "GET"): _op("the chat page's saved conversations", errors=(401,)),
    ("/v1/conversations", "POST"): _op("start a saved conversation", {
        "type": "object", "properties": {"title": {"type": "string"}}}),
    ("/chat", "GET"): _op("the chat page", ok="HTML", content="text/html", errors=(401,)),
    **{(f"/ui/{name}", "GET"): _op(f"a static asset of the pages ({name})", ok="asset",
                                   content=ctype, errors=(401,))
       for name, ctype in (("charts.js", "text/javascript"), ("chat.js", "text/javascript"),
                           ("common.js", "text/javascript"),
                           ("dashboard.js", "text/javascript"), ("ui.css", "text/css"))},
}


def build(routes: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the served ``routes`` ({path: methods})."""
    paths: dict[str, dict[str, Any]] = {}
    for path in sorted(routes):
        for method in sorted(routes[path]):
            op = OPERATIONS.get((path, method))
            if op is not None:
                paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "interlock", "version": __version__,
                 "description": "A local-first LLM router: OpenAI- and Anthropic-compatible."},
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}},
        "security": [{}, {"bearer": []}, {"apiKey": []}],
        "paths": paths,
    }


def undocumented(routes: Mapping[str, Iterable[str]]) -> list[str]:
    """Served operations this module has no description for (should be none)."""
    return [f"{m} {p}" for p in sorted(routes) for m in sorted(routes[p])
            if (p, m) not in OPERATIONS]


def handler(routes: Mapping[str, Iterable[str]]) -> Any:
    """The ``GET /openapi.json`` handler over the app's (live) route table."""
    cached: list[bytes] = []

    async def openapi_json(ctx: Any) -> None:
        from interlock.runtime.headers import diagnostic_headers
        from interlock.runtime.responses import send_bytes

        if not cached:  # built on first use: every route is registered by then
            cached.append(orjson.dumps(build(routes)))
        await send_bytes(ctx.send, 200, cached[0],
                         diagnostic_headers(ctx.diag, ctx.state.table_hash_header))

    return openapi_json
