"""Sending responses over raw ASGI, and OpenAI's error shape.

Every error the router itself produces has the body
``{"error": {"message", "type", "param", "code"}}`` (OpenAI's shape, which SDKs
parse into their exception types); NoCandidateError adds ``attempts`` inside
``error`` so that a client sees what was tried.  An upstream's own non-retryable
error is not rebuilt: its body and status go back as they came (see app).
"""

from __future__ import annotations

from typing import Any

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


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: RawHeaders,
    content_type: bytes = JSON,
) -> None:
    """One complete response: start (with ``headers``) and a single body message."""
    headers.append((b"content-type", content_type))
    headers.append((b"content-length", str(len(body)).encode()))
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
