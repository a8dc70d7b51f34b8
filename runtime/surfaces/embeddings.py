"""``POST /v1/embeddings``: routed through the table's embedding chains.

The inputs are classified like any request (the PII / secret / code detectors
read them), which picks the chain: ``table.embeddings["public"]`` (local
embedding models first, as the compiler ordered them) or
``table.embeddings["private"]`` (local models only).  A private request never
reaches a cloud provider: the forwarder skips cloud candidates and a private
request with no local embedding model left gets a 503 (fail closed).

``model`` may pin an embedding model by any name of the table's index
(``auto`` / ``route-auto`` / absent route); a pinned cloud model on a private
request is refused the same way.  The answer has OpenAI's shape, vectors as
JSON floats or, with ``encoding_format: "base64"`` (the official SDK's default),
as base64 of little-endian float32, exactly like OpenAI; ``usage`` carries the
upstream's token count (or an estimate when it reports none).
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from interlock.runtime import forward as fwd
from interlock.runtime import pipeline
from interlock.runtime.bodies import ClientDisconnected
from interlock.runtime.canonical import CanonicalRequest, Usage
from interlock.runtime.classify import Classification
from interlock.runtime.context import Ctx, Routed, answered, trace_of
from interlock.runtime.decide import Decision
from interlock.runtime.errors import RequestError, RouterError, UpstreamError
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.providers.base import Embeddings
from interlock.runtime.responses import send_bytes
from interlock.runtime.surfaces.check import bad, opt_bool, opt_str
from interlock.runtime.surfaces.shapes import OLLAMA_ERRORS, OPENAI_ERRORS, ErrorShape
from interlock.runtime.table import (
    Candidate,
    Cell,
    DecisionTable,
    ModelEntry,
    Policy,
    ProviderEntry,
    Terms,
)


@dataclass(slots=True)
class Embedded:
    vectors: Embeddings
    model: ModelEntry


def decode_embeddings(body: Any) -> tuple[CanonicalRequest, str]:
    """(the canonical request with ``inputs``, the encoding format)."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object", code="invalid_body")
    raw = body.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        inputs = raw
    elif isinstance(raw, list) and raw:
        raise bad("input", "token-id inputs are not supported by this router: send text "
                  "(LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))",
                  code="unsupported_parameter")
    else:
        raise bad("input", "'input' must be a string or a non-empty array of strings",
                  code="missing_required" if raw is None else "invalid_type")
    if any(not x for x in inputs):
        raise bad("input", "'input' must not contain empty strings", code="invalid_value")
    fmt = opt_str(body, "encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise bad("encoding_format", "'encoding_format' must be float or base64",
                  code="invalid_value")
    if body.get("dimensions") is not None:
        raise bad("dimensions", "'dimensions' is not supported: the routed model's own size "
                  "is returned", code="unsupported_parameter")
    req = CanonicalRequest(surface="embeddings", messages=[], model=opt_str(body, "model"),
                           private=opt_bool(body, "private"),
                           trace=opt_bool(body, "trace") or False, inputs=inputs, raw=body)
    return req, fmt


def _empty(key: str, private: bool) -> Cell:
    return Cell(key=key, task="embeddings", complexity=None,
                sensitivity="private" if private else "public", modality="text",
                policy=Policy(allow_cloud=not private), chain=())


def _candidate(table: DecisionTable, key: str, cell: Cell) -> Candidate:
    for c in cell.chain:
        if c.model == key:
            return c
    m = table.models[key]
    return Candidate(model=key, provider=m.provider, role="primary",
                     local=m.locality == "local", caps=m.caps, score=0.0,
                     terms=Terms(quality=0, cost=0, latency=0, locality=0),
                     reason="pinned by request")


def decide_embeddings(table: DecisionTable, cls: Classification, req: CanonicalRequest,
                      healthy: Any = None) -> Decision:
    """The embedding candidates for ``req``: its sensitivity's chain, or the pin."""
    private = cls.sensitivity == "private"
    sens = "private" if private else "public"
    cell = table.embeddings.get(sens) or _empty(f"embeddings.{sens}", private)
    pinned: str | None = None
    if req.model is None or req.model in table.aliases:
        base = list(cell.chain)
    else:
        key = table.model_index.get(req.model)
        if key is None or key not in table.models:
            raise RequestError(404, f"the model {req.model!r} does not exist in this router's "
                               "table", param="model", code="model_not_found")
        if not table.models[key].embedding:
            raise bad("model", f"{key} is not an embedding model", code="invalid_value")
        pinned = key
        base = [_candidate(table, key, cell)]
    kept: list[Candidate] = []
    filtered: list[tuple[Candidate, str]] = []
    for c in base:
        if private and not c.local:
            filtered.append((c, "privacy: a private request never goes to a cloud provider"))
        elif healthy is not None and not healthy(c.provider):
            filtered.append((c, f"provider {c.provider} unhealthy"))
        else:
            kept.append(c)
    if not kept:  # health alone emptied it: better a recently failing provider than none
        kept = [c for c, why in filtered if why.startswith("provider ")]
        filtered = [(c, why) for c, why in filtered if not why.startswith("provider ")]
    first = kept[0] if kept else None
    reason = (f"{'pinned' if pinned else 'embeddings.' + sens}: "
              f"{'local' if first.local else 'cloud'} {first.model}" if first is not None
              else f"embeddings.{sens}: no candidate")
    return Decision(cell=cell, candidates=kept, filtered=filtered, pinned=pinned,
                    reason=reason)


async def embed_once(up: fwd.Upstreams, call: fwd.Call, cand: Candidate,
                     provider: ProviderEntry, model: ModelEntry) -> Embedded:
    """One embeddings attempt (the forwarder's ``once``): the same privacy gate and
    attempt/health bookkeeping as a chat attempt."""
    fwd._privacy_gate(call, provider)  # the last line before bytes leave the machine
    attempt = fwd._begin(call, cand)
    t = time.perf_counter()
    try:
        vectors = await up.adapter(provider).embed(call.req.inputs, model, provider,
                                                   deadline=call.deadline)
    except UpstreamError as exc:
        fwd._failed(up, call, attempt, t, exc)
        raise
    fwd._succeeded(up, call, attempt, t)
    return Embedded(vectors, model)


def _encode(vec: list[float], fmt: str) -> Any:
    if fmt == "base64":
        return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
    return vec


def encode_embeddings(got: Embedded, req: CanonicalRequest, fmt: str) -> dict[str, Any]:
    tokens = got.vectors.input_tokens or sum(max(1, len(x) // 4) for x in req.inputs)
    data = [{"object": "embedding", "index": i, "embedding": _encode(v, fmt)}
            for i, v in enumerate(got.vectors.vectors)]
    return {"object": "list", "data": data, "model": got.model.key,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


Decoder = Callable[[Any], tuple[CanonicalRequest, str]]
Encoder = Callable[[Embedded, CanonicalRequest, str], dict[str, Any]]


def decode_ollama_embed(body: Any) -> tuple[CanonicalRequest, str]:
    """Ollama's ``/api/embed`` body (``model``, ``input``) → (request, "float")."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object", code="invalid_body")
    req, _ = decode_embeddings({k: body.get(k) for k in ("model", "input", "private")})
    return req, "float"


def encode_ollama_embed(got: Embedded, req: CanonicalRequest, fmt: str) -> dict[str, Any]:
    tokens = got.vectors.input_tokens or sum(max(1, len(x) // 4) for x in req.inputs)
    return {"model": got.model.key, "embeddings": got.vectors.vectors, "total_duration": 0,
            "load_duration": 0, "prompt_eval_count": tokens}


async def embeddings(ctx: Ctx) -> None:
    """The ``POST /v1/embeddings`` handler (OpenAI's shape)."""
    await serve_embeddings(ctx, decode_embeddings, encode_embeddings, OPENAI_ERRORS)


async def ollama_embed(ctx: Ctx) -> None:
    """The ``POST /api/embed`` handler (Ollama's shape)."""
    await serve_embeddings(ctx, decode_ollama_embed, encode_ollama_embed, OLLAMA_ERRORS)


async def serve_embeddings(ctx: Ctx, decode: Decoder, encode: Encoder,
                           shape: ErrorShape) -> None:
    """Read, classify, pick the embedding chain, embed with fallback, answer."""
    state = ctx.state
    state.counters.requests += 1
    outcome = pipeline.Outcome("embeddings")
    routed: Routed | None = None
    try:
        req, fmt = decode(await pipeline.read_json(ctx))
        cls = state.classifier.classify(req, header_private=ctx.meta.private)
        decision = decide_embeddings(state.table, cls, req, state.health.healthy)
        ctx.diag.cell = decision.cell.key
        ctx.diag.reason = decision.reason
        routed = Routed(req, cls, decision, cls.sensitivity == "private",
                        ctx.meta.trace or req.trace)
        call = pipeline.make_call(ctx, routed)
        call.verify = None  # verifiers judge generated text, not vectors
        got = await fwd.with_fallbacks(state, call, embed_once)
        answered(ctx, got.model.key, got.model.provider, got.model.locality)
        out = encode(got, req, fmt)
        if routed.trace:
            out["x_router_trace"] = trace_of(ctx, routed)
        outcome.status = 200
        outcome.usage = Usage(got.vectors.input_tokens, 0)
        await send_bytes(ctx.send, 200, orjson.dumps(out),
                         diagnostic_headers(ctx.diag, state.table_hash_header))
    except ClientDisconnected:
        outcome.error = "client_disconnected"
        raise
    except RouterError as exc:
        if ctx.started:
            raise
        await pipeline.send_error(ctx, shape, exc, outcome)
    except BaseException as exc:
        outcome.status = outcome.status or 500
        outcome.error = outcome.error or type(exc).__name__
        raise
    finally:
        pipeline._finished(ctx, routed, outcome)  # the one record per request
