"""The middleware stack around the app, composed in one place, and its refusals.

:func:`secure` wraps :class:`~interlock.runtime.app.InterlockApp` (outermost first)::

    ShouldRetryMiddleware   every error answer carries x-should-retry (true/false)
    HeaderLimitMiddleware   431: too many / too large header fields
    EgressHeaderMiddleware  400: a header that names an upstream URL or key
    AuthMiddleware          401/403: client API keys (when configured)
    RateLimitMiddleware     429 + Retry-After: the key's token bucket is empty
    IdempotencyMiddleware   Idempotency-Key: coalesce duplicates, 422 on reuse
    InterlockApp            lifespan, routing, the pipeline

Each layer reads its settings from the app's state (built in lifespan) per
request, so the stack is built once, before the table is loaded.  Lifespan and
other non-HTTP messages pass straight through.

``x-should-retry`` tells the OpenAI and Anthropic SDKs whether to retry: the
router already walked its fallbacks and retried within its retry budget, so an
error it answers is final (``false``) - except a 429 of its own rate limiter, a
408, and a 503 while no table is loaded yet (``true``).  SDKs that honour the
header then stop multiplying attempts during an outage.
"""

from __future__ import annotations

from interlock.runtime.app import InterlockApp
from interlock.runtime.asgi_types import ASGIApp, Message, RawHeaders, Receive, Scope, Send
from interlock.runtime.auth import AuthMiddleware
from interlock.runtime.egress import EgressHeaderMiddleware
from interlock.runtime.idempotency import IdempotencyMiddleware
from interlock.runtime.limits import HeaderLimitMiddleware, RateLimitMiddleware

SHOULD_RETRY = b"x-should-retry"
#: statuses a client may retry as they are (the request itself was fine)
RETRYABLE = frozenset({408, 429})


async def refuse(
    scope: Scope, send: Send, status: int, message: str, code: str,
    extra: RawHeaders | None = None,
) -> None:
    """An error answer from a middleware, in the error shape of the path's API."""
    from interlock.runtime.surfaces.shapes import shape_for_path

    status, body = shape_for_path(scope.get("path", "")).body(status, message, code=code)
    headers: RawHeaders = [(b"content-type", b"application/json"),
                           (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class ShouldRetryMiddleware:
    """Adds ``x-should-retry`` to every error answer that does not carry one."""

    def __init__(self, app: ASGIApp, ready: ReadyFn) -> None:
        self.app = app
        self._ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ready = self._ready

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                headers = list(message.get("headers", ()))
                if not any(n.lower() == SHOULD_RETRY for n, _ in headers):
                    status = message["status"]
                    retry = status in RETRYABLE or (status == 503 and not ready())
                    headers.append((SHOULD_RETRY, b"true" if retry else b"false"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, stamped)


class ReadyFn:
    """``ready()``: True once the app has its state (a named callable for typing)."""

    def __init__(self, app: InterlockApp) -> None:
        self._app = app

    def __call__(self) -> bool:
        return self._app.state is not None


def secure(app: InterlockApp) -> ASGIApp:
    """The app wrapped in the reliability and security middleware (see module doc)."""

    inner: ASGIApp = IdempotencyMiddleware(
        app,
        lambda: app.state.idempotency if app.state is not None else None,
        lambda: app.state.table.server.max_body_bytes if app.state is not None else 0,
    )
    inner = RateLimitMiddleware(
        inner, lambda: app.state.limits.rates if app.state is not None else None)
    inner = AuthMiddleware(
        inner,
        lambda: app.state.auth if app.state is not None else None,
        lambda: app.state.table.profile if app.state is not None else None,
    )
    inner = EgressHeaderMiddleware(inner)
    inner = HeaderLimitMiddleware(
        inner, lambda: app.state.limits.settings if app.state is not None else None)
    return ShouldRetryMiddleware(inner, ReadyFn(app))
