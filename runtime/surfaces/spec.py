"""What a client surface is, to the pipeline (``interlock.runtime.pipeline``).

A :class:`Surface` bundles everything that differs between client APIs (chat
completions, Anthropic messages, Responses, legacy completions):

* ``decode(body, headers)`` - a parsed JSON body (and the raw ASGI headers) to a
  ``CanonicalRequest``; bad input raises ``RequestError`` (400, naming ``param``);
* ``encode_response(resp, model_name, req)`` - a ``CanonicalResponse`` to the
  API's JSON object (a dict: the pipeline may add ``x_router_trace`` to it);
* ``stream_encoder(req, model_name)`` - a fresh :class:`StreamEncoder` for one
  streamed answer;
* ``errors`` - the :class:`~interlock.runtime.surfaces.shapes.ErrorShape`: the
  API's error body, its status codes and how an upstream's error is passed on;
* ``wires`` - the provider wires that can serve it (None: all).

Everything else (body limit, parsing, classify, decide, forward, fallback, the
``X-Router-*`` headers, the trace) is the pipeline's and the same for all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from interlock.runtime.asgi_types import RawHeaders
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    FinishReason,
    Usage,
)
from interlock.runtime.decide import Decision
from interlock.runtime.surfaces.shapes import ErrorShape
from interlock.runtime.table import DecisionTable


class StreamEncoder(Protocol):
    """Deltas → the API's stream bytes (SSE events).

    ``encode`` is called per delta (it emits any opening events itself on the
    first call); exactly one of ``close`` (normal end) or ``fail`` (an upstream
    failure after the stream started: an in-band error event) ends the stream.
    ``comment`` (an SSE comment line: the trace) goes just before the stream's
    terminal event.  ``usage`` / ``finish_reason`` are what the upstream reported
    (for the request record).
    """

    usage: Usage | None
    finish_reason: FinishReason | None

    def encode(self, d: Delta) -> bytes: ...

    def close(self, comment: bytes = b"") -> bytes: ...

    def fail(self, message: str, comment: bytes = b"") -> bytes: ...


Decode = Callable[[dict[str, Any], RawHeaders], CanonicalRequest]
EncodeResponse = Callable[[CanonicalResponse, str, CanonicalRequest], dict[str, Any]]
EncoderFactory = Callable[[CanonicalRequest, str], StreamEncoder]


@dataclass(frozen=True, slots=True)
class Surface:
    """One client API, as the generic pipeline sees it."""

    name: str
    decode: Decode
    encode_response: EncodeResponse
    stream_encoder: EncoderFactory
    errors: ErrorShape
    #: only providers of these wires may serve it (None: any wire; legacy completions
    #: are passed through to openai-wire providers only)
    wires: frozenset[str] | None = None
    #: the content type of its streams (Ollama's API streams NDJSON)
    media_type: bytes = b"text/event-stream"


def only_wires(table: DecisionTable, decision: Decision, wires: frozenset[str]) -> None:
    """Move the candidates whose provider speaks another wire to ``filtered``."""
    kept = []
    for c in decision.candidates:
        provider = table.providers.get(c.provider)
        if provider is not None and provider.wire in wires:
            kept.append(c)
        else:
            wire = provider.wire if provider is not None else "?"
            decision.filtered.append((c, f"wire {wire}: this endpoint needs "
                                         f"{'/'.join(sorted(wires))}"))
    if len(kept) != len(decision.candidates):
        decision.candidates = kept
        if not kept:
            decision.reason = f"no candidate speaks {'/'.join(sorted(wires))}"
