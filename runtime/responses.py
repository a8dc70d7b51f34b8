"""Sending responses over raw ASGI, and OpenAI's error shape.

Every error the router itself produces has the body
``{"error": {"message", "type", "param", "code"}}`` (OpenAI's shape, which SDKs
parse into their exception types); NoCandidateError adds ``attempts`` inside
``error`` so that a client sees what was tried.  An upstream's own non-retryable
error is not rebuilt: its body and status go back as they came (see app).

``x-should-retry`` on error answers: the gate (``interlock.runtime.guard``) sets
:data:`RETRY_ADVICE` for each request it admits, and :func:`send_bytes` - the one
way the app sends an answer with a status of 400 or more - appends the header
there.  Stamping where the answer is built replaces a ``send`` wrapper around
every request (a closure and an extra await per message).  An app called without
the gate (some tests) sets no advice and answers without the header, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

import orjson
from interlock.runtime.asgi_types import RawHeaders, Send
from interlock.runtime.errors import NoCandidateError, RequestError, RouterError
from interlock.runtime.trace import attempts_json

JSON = b"application/json"
SSE = b"text/event-stream"

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


SHOULD_RETRY = b"x-should-retry"

#: ``status -> b"true" | b"false"``: the gate's x-should-retry rule, set (in the
#: request's task context) for every request the gate admits; None without a gate
RETRY_ADVICE: ContextVar[Callable[[int], bytes] | None] = ContextVar(
    "interlock_retry_advice", default=None)


class Refusal(NamedTuple):
    """A request the gate turns away: the error answer, before the app runs."""

    status: int
    message: str
    code: str
    headers: RawHeaders | None = None


def stamp_retry(status: int, headers: RawHeaders) -> None:
    """Append ``x-should-retry`` to an error answer's ``headers`` (under the gate,
    when the answer does not carry one yet)."""
    advice = RETRY_ADVICE.get()
    if advice is not None and not any(n.lower() == SHOULD_RETRY for n, _ in headers):
        headers.append((SHOULD_RETRY, advice(status)))


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: RawHeaders,
    content_type: bytes = JSON,
) -> None:
    """One complete response: start (with ``headers``) and a single body message."""
    headers.append((b"content-type", content_type))
    headers.append((b"content-length", b"%d" % len(body)))
    if status >= 400:
        stamp_retry(status, headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def error_body(
    status: int,
    message: str,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """An error body in OpenAI's shape."""
    err: dict[str, Any] = {
        "message": message,
        "type": type or _TYPES.get(status, "server_error"),
        "param": param,
        "code": code,
    }
    if extra:
        err.update(extra)
    return orjson.dumps({"error": err})


def error_from(exc: RouterError) -> tuple[int, bytes]:
    """Status and OpenAI-shaped body for one of the router's own errors."""
    if isinstance(exc, RequestError):
        return exc.status, error_body(
            exc.status, exc.message, type=exc.type, param=exc.param, code=exc.code
        )
    if isinstance(exc, NoCandidateError):
        code = getattr(exc, "code", None) or "no_candidate"
        return exc.status, error_body(
            exc.status,
            exc.message,
            type="server_error",
            code=code,
            extra={"attempts": attempts_json(exc.attempts)},
        )
    status = exc.status if 400 <= exc.status <= 599 else 500
    return status, error_body(status, exc.message or str(exc), type="server_error")
