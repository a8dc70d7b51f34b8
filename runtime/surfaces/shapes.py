"""Error shapes: how each client API spells an error, and which status it uses.

Every error the router answers - its own (``RequestError``, ``NoCandidateError``
...), an upstream's non-retryable error passed through, a 404/405/413/500 from
the app - is built by the :class:`ErrorShape` of the surface the path belongs to
(:func:`shape_for_path`):

==========  ==============================================================
openai      ``{"error": {"message", "type", "param", "code"}}`` (chat
            completions, Responses, completions, embeddings, the rest)
anthropic   ``{"type": "error", "error": {"type", "message"}}`` with
            Anthropic's types; a request no candidate could serve because
            every upstream was overloaded (429/503/529) is a ``529
            overloaded_error``, as Anthropic's own API answers
ollama      ``{"error": "message"}`` (the ``/api/*`` paths)
==========  ==============================================================

An upstream's error body keeps its status; it goes back unchanged when it is
already in the client's shape, otherwise its message is re-wrapped.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from interlock.runtime.errors import (
    NoCandidateError,
    RequestError,
    RouterError,
    UpstreamHTTPError,
)
from interlock.runtime.surfaces.chat_encode import (
    error_type_for,
    openai_error_body,
    upstream_error_body,
)
from interlock.runtime.trace import attempts_json

_ANTHROPIC_TYPES: Final = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
    409: "invalid_request_error", 413: "request_too_large", 415: "invalid_request_error",
    422: "invalid_request_error", 429: "rate_limit_error", 500: "api_error",
    504: "timeout_error", 529: "overloaded_error",
}
#: upstream statuses that mean "busy, try later"
_OVERLOAD: Final = frozenset({429, 503, 529})


def upstream_message(exc: UpstreamHTTPError) -> str:
    """The human message inside an upstream's error body, whatever its shape."""
    try:
        data = orjson.loads(exc.body) if exc.body else None
    except orjson.JSONDecodeError:
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        msg = err.get("message")
        return str(msg) if msg is not None else str(err)
    if err is not None:
        return str(err)
    return exc.body.decode("utf-8", "replace")[:2000] or f"upstream answered {exc.status}"


def _code(exc: RouterError) -> str:
    return str(getattr(exc, "code", None) or "no_candidate")


class ErrorShape:
    """The OpenAI error shape (the default); subclasses override ``body``/``upstream``."""

    name = "openai"

    def body(
        self, status: int, message: str, *, type: str | None = None, param: str | None = None,
        code: str | None = None, extra: dict[str, Any] | None = None,
    ) -> tuple[int, bytes]:
        """(status, body) for an error the router itself produces."""
        if extra:
            err = {"message": message, "type": type or error_type_for(status),
                   "param": param, "code": code, **extra}
            return status, orjson.dumps({"error": err})
        return status, openai_error_body(status, message, type, param, code)

    def upstream(self, exc: UpstreamHTTPError) -> tuple[int, bytes]:
        """(status, body) for an upstream's non-retryable error, passed through."""
        return exc.status, upstream_error_body(exc)

    def router_error(self, exc: RouterError) -> tuple[int, bytes]:
        """(status, body) for any ``RouterError``."""
        if isinstance(exc, UpstreamHTTPError):
            return self.upstream(exc)
        if isinstance(exc, RequestError):
            return self.body(exc.status, exc.message, type=exc.type, param=exc.param,
                             code=exc.code)
        if isinstance(exc, NoCandidateError):
            return self.no_candidate(exc)
        status = exc.status if 400 <= exc.status <= 599 else 500
        return self.body(status, exc.message or str(exc), type="server_error")

    def no_candidate(self, exc: NoCandidateError) -> tuple[int, bytes]:
        return self.body(exc.status, exc.message, type="server_error", code=_code(exc),
                         extra={"attempts": attempts_json(exc.attempts)})


class AnthropicShape(ErrorShape):
    """``{"type": "error", "error": {"type", "message"}}`` with Anthropic's statuses."""

    name = "anthropic"

    def body(
        self, status: int, message: str, *, type: str | None = None, param: str | None = None,
        code: str | None = None, extra: dict[str, Any] | None = None,
    ) -> tuple[int, bytes]:
        kind = _ANTHROPIC_TYPES.get(status) or ("invalid_request_error" if status < 500
                                                 else "api_error")
        err: dict[str, Any] = {"type": kind, "message": message}
        if extra:
            err.update(extra)
        return status, orjson.dumps({"type": "error", "error": err})

    def upstream(self, exc: UpstreamHTTPError) -> tuple[int, bytes]:
        try:
            data = orjson.loads(exc.body) if exc.body else None
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict) and data.get("type") == "error" \
                and isinstance(data.get("error"), dict):
            return exc.status, exc.body  # already Anthropic-shaped
        return self.body(exc.status, f"{exc.provider}: {upstream_message(exc)}")

    def no_candidate(self, exc: NoCandidateError) -> tuple[int, bytes]:
        tried = [a for a in exc.attempts if a.outcome == "error"]
        status = exc.status
        if tried and all(a.status in _OVERLOAD for a in tried):
            status = 529  # every upstream was busy: Anthropic's "overloaded"
        return self.body(status, exc.message, extra={
            "code": _code(exc), "attempts": attempts_json(exc.attempts)})


class OllamaShape(ErrorShape):
    """Ollama's ``{"error": "message"}``."""

    name = "ollama"

    def body(
        self, status: int, message: str, *, type: str | None = None, param: str | None = None,
        code: str | None = None, extra: dict[str, Any] | None = None,
    ) -> tuple[int, bytes]:
        return status, orjson.dumps({"error": message})

    def upstream(self, exc: UpstreamHTTPError) -> tuple[int, bytes]:
        return self.body(exc.status, f"{exc.provider}: {upstream_message(exc)}")


OPENAI_ERRORS: Final = ErrorShape()
ANTHROPIC_ERRORS: Final = AnthropicShape()
OLLAMA_ERRORS: Final = OllamaShape()


def shape_for_path(path: str) -> ErrorShape:
    """The error shape of the API ``path`` belongs to (unknown paths: OpenAI's)."""
    if path.startswith("/v1/messages"):
        return ANTHROPIC_ERRORS
    if path.startswith("/api/"):
        return OLLAMA_ERRORS
    return OPENAI_ERRORS
