"""The legacy completions surface (``POST /v1/completions``), passed through.

The body is checked (``prompt`` a string or a list of strings; token-id prompts
are refused: the classifier needs text), classified like any request (the
prompt is its one user message) and sent, as it came with the model replaced, to
the first openai-wire candidate (``Surface.wires``): see
``interlock.runtime.providers.legacy``.  The answer comes back as the upstream
sent it, with ``model`` rewritten to the routed model key; streams relay the
upstream's chunks the same way (its usage chunk only when the client asked with
``stream_options.include_usage``).
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from interlock.runtime.asgi_types import RawHeaders
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    FinishReason,
    Message,
    Part,
    Usage,
)
from interlock.runtime.errors import RequestError
from interlock.runtime.providers.raw import RawDelta, RawResponse
from interlock.runtime.sse import DONE_EVENT
from interlock.runtime.surfaces.chat_encode import encode_error_chunk
from interlock.runtime.surfaces.check import bad, opt_bool, opt_int, opt_number, opt_str
from interlock.runtime.surfaces.shapes import OPENAI_ERRORS
from interlock.runtime.surfaces.spec import Surface


def decode_completions(body: Any) -> CanonicalRequest:
    """Validate a legacy completions body and build the canonical request."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object", code="invalid_body")
    model = opt_str(body, "model")
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = prompt
    elif isinstance(prompt, list) and prompt:
        raise bad("prompt", "token-id prompts are not supported by this router: send the "
                  "prompt as text", code="unsupported_parameter")
    else:
        raise bad("prompt", "'prompt' must be a string or a non-empty array of strings",
                  code="missing_required" if prompt is None else "invalid_type")
    stream = opt_bool(body, "stream") or False
    so = body.get("stream_options")
    include_usage = bool(isinstance(so, dict) and so.get("include_usage") is True)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in stop or () if isinstance(s, str)]
    return CanonicalRequest(
        surface="completions", messages=[Message("user", [Part("text", "\n".join(prompts))])],
        model=model, stream=stream, include_usage=include_usage and stream,
        max_tokens=opt_int(body, "max_tokens", minimum=1),
        temperature=opt_number(body, "temperature", 0.0, 2.0),
        top_p=opt_number(body, "top_p", 0.0, 1.0), stop=stops,
        private=opt_bool(body, "private"), trace=opt_bool(body, "trace") or False,
        raw=body,
    )


def encode_completion(resp: CanonicalResponse, *, model_name: str) -> dict[str, Any]:
    """The upstream's ``text_completion`` object with the routed model name."""
    if isinstance(resp, RawResponse) and resp.raw:
        return {**resp.raw, "model": model_name}
    usage = resp.usage or Usage()
    return {"id": resp.id or "cmpl-router", "object": "text_completion",
            "created": resp.created, "model": model_name,
            "choices": [{"text": resp.text, "index": 0, "logprobs": None,
                         "finish_reason": resp.finish_reason}],
            "usage": {"prompt_tokens": usage.input_tokens,
                      "completion_tokens": usage.output_tokens,
                      "total_tokens": usage.input_tokens + usage.output_tokens}}


class CompletionsStreamEncoder:
    """The upstream's legacy chunks, relayed with the routed model name."""

    __slots__ = ("_model", "_include_usage", "usage", "finish_reason")

    def __init__(self, *, model_name: str, include_usage: bool) -> None:
        self._model = model_name
        self._include_usage = include_usage
        self.usage: Usage | None = None
        self.finish_reason: FinishReason | None = None

    def encode(self, d: Delta) -> bytes:
        if d.usage is not None:
            self.usage = d.usage
        if d.finish_reason is not None:
            self.finish_reason = d.finish_reason
        raw = d.raw if isinstance(d, RawDelta) else None
        if raw is None:
            return b""
        if not raw.get("choices") and not self._include_usage:
            return b""  # the usage chunk the router asked for on its own behalf
        return b"data: " + orjson.dumps({**raw, "model": self._model}) + b"\n\n"

    def close(self, comment: bytes = b"") -> bytes:
        return comment + DONE_EVENT

    def fail(self, message: str, comment: bytes = b"") -> bytes:
        return encode_error_chunk(message, code="upstream_stream_error") + comment + DONE_EVENT


def _decode(body: dict[str, Any], headers: RawHeaders) -> CanonicalRequest:
    return decode_completions(body)


def _encode(resp: CanonicalResponse, model_name: str, req: CanonicalRequest) -> dict[str, Any]:
    return encode_completion(resp, model_name=model_name)


def _encoder(req: CanonicalRequest, model_name: str) -> CompletionsStreamEncoder:
    return CompletionsStreamEncoder(model_name=model_name, include_usage=req.include_usage)


#: ``POST /v1/completions`` (legacy; openai-wire providers only)
COMPLETIONS: Final = Surface("completions", _decode, _encode, _encoder, OPENAI_ERRORS,
                             wires=frozenset({"openai"}))
