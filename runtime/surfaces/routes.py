"""The client surfaces beyond chat completions, as app routes.

=============================  ========================================================
POST /v1/messages              Anthropic Messages (``surfaces.messages``)
POST /v1/messages/count_tokens an *estimate* of the input tokens (the classifier's own
                               estimator: characters/4, per-message and per-image
                               costs, tool definitions); no model is called
POST /v1/responses             OpenAI Responses, stateless (``surfaces.responses``)
POST /v1/completions           legacy completions, passed through to openai-wire
                               providers (``surfaces.completions``)
POST /v1/embeddings            embeddings, local first (``surfaces.embeddings``)
POST /api/chat, /api/generate  Ollama's own API (``surfaces.ollama``), NDJSON streams
POST /api/embed                embeddings in Ollama's shape
GET /api/tags, /api/version    the table's models; an API-compatibility version
=============================  ========================================================

The app merges :func:`routes` into its exact-path table.
"""

from __future__ import annotations

import orjson
from interlock.runtime import pipeline
from interlock.runtime.context import Ctx, Handler
from interlock.runtime.errors import RequestError
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.responses import send_bytes
from interlock.runtime.surfaces.completions import COMPLETIONS
from interlock.runtime.surfaces.embeddings import embeddings, ollama_embed
from interlock.runtime.surfaces.messages import MESSAGES, check_version, decode_messages
from interlock.runtime.surfaces.ollama import (
    API_VERSION,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    tags_body,
)
from interlock.runtime.surfaces.responses import RESPONSES


async def messages(ctx: Ctx) -> None:
    await pipeline.serve(ctx, MESSAGES)


async def responses(ctx: Ctx) -> None:
    await pipeline.serve(ctx, RESPONSES)


async def completions(ctx: Ctx) -> None:
    await pipeline.serve(ctx, COMPLETIONS)


async def count_tokens(ctx: Ctx) -> None:
    """``{"input_tokens": N}``: the classifier's estimate (no model call); the
    response carries ``X-Router-Token-Count: estimate`` to say so."""
    state = ctx.state
    body = await pipeline.read_json(ctx)
    check_version(ctx.scope["headers"])  # a malformed version is a 400 here too
    try:
        req = decode_messages(body, count_only=True)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise RequestError(400, f"invalid request body: {exc}", code="invalid_request") from exc
    cls = state.classifier.classify(req, header_private=ctx.meta.private)
    ctx.diag.cell = cls.cell
    headers = diagnostic_headers(ctx.diag, state.table_hash_header)
    headers.append((b"x-router-token-count", b"estimate"))
    await send_bytes(ctx.send, 200, orjson.dumps({"input_tokens": cls.tokens}), headers)


async def ollama_chat(ctx: Ctx) -> None:
    await pipeline.serve(ctx, OLLAMA_CHAT)


async def ollama_generate(ctx: Ctx) -> None:
    await pipeline.serve(ctx, OLLAMA_GENERATE)


async def ollama_tags(ctx: Ctx) -> None:
    state = ctx.state
    body = tags_body(state.table.models, state.table.aliases)
    await send_bytes(ctx.send, 200, body, diagnostic_headers(ctx.diag, state.table_hash_header))


async def ollama_version(ctx: Ctx) -> None:
    await send_bytes(ctx.send, 200, orjson.dumps({"version": API_VERSION}),
                     diagnostic_headers(ctx.diag, ctx.state.table_hash_header))


def routes() -> dict[str, dict[str, Handler]]:
    """Path → method → handler for every surface in this package but chat."""
    return {
        "/v1/messages": {"POST": messages},
        "/v1/messages/count_tokens": {"POST": count_tokens},
        "/v1/responses": {"POST": responses},
        "/v1/completions": {"POST": completions},
        "/v1/embeddings": {"POST": embeddings},
        "/api/chat": {"POST": ollama_chat},
        "/api/generate": {"POST": ollama_generate},
        "/api/embed": {"POST": ollama_embed},
        "/api/tags": {"GET": ollama_tags},
        "/api/version": {"GET": ollama_version},
    }
