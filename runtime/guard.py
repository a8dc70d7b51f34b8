"""The gate in front of the app: the request checks, in one place, and their refusals.

:func:`secure` wraps :class:`~interlock.runtime.app.InterlockApp` in one
:class:`Gate`, which runs these checks in this order, each as a plain function
call (no middleware layer, no coroutine per check)::

    header limits    431: too many / too large header fields       limits.py
    egress headers   400: a header that names an upstream URL or key egress.py
    client keys      401/403 (when configured)                     auth.py
    rate limit       429 + Retry-After: the key's bucket is empty  limits.py
    Idempotency-Key  coalesce duplicates, 422 on reuse             idempotency.py
    the app          routing, the pipeline                         app.py

A failed check is answered at once (:func:`refuse`) in the error shape of the
path's API, and the request goes no further.  The settings come from the app's
state (built in lifespan), read once per request before anything is awaited -
the same moment every former middleware layer read them - so the gate is built
before the table is loaded.  Lifespan and other non-HTTP messages go straight
to the app.

``x-should-retry`` tells the OpenAI and Anthropic SDKs whether to retry: the
router already walked its fallbacks and retried within its retry budget, so an
error it answers is final (``false``) - except a 429 of its own rate limiter, a
408, and a 503 while no table is loaded yet (``true``).  SDKs that honour the
header then stop multiplying attempts during an outage.  The header is added
where error answers are built: :func:`refuse` for the gate's own, and
``responses.send_bytes`` (the one way the app sends a status >= 400) for the
app's, through the :data:`~interlock.runtime.responses.RETRY_ADVICE` the gate
sets per request.  A unit test checks that no other code sends an error status.
"""

from __future__ import annotations

from interlock.runtime.app import InterlockApp
from interlock.runtime.asgi_types import ASGIApp, RawHeaders, Receive, Scope, Send
from interlock.runtime.auth import admit
from interlock.runtime.egress import header_refusal
from interlock.runtime.idempotency import idempotency_key, serve_idempotent
from interlock.runtime.limits import header_limit_refusal, rate_refusal
from interlock.runtime.responses import RETRY_ADVICE, SHOULD_RETRY, Refusal, stamp_retry
from interlock.runtime.state import RuntimeState

__all__ = ["RETRYABLE", "SHOULD_RETRY", "Gate", "refuse", "secure"]

#: statuses a client may retry as they are (the request itself was fine)
RETRYABLE = frozenset({408, 429})


async def refuse(
    scope: Scope, send: Send, status: int, message: str, code: str,
    extra: RawHeaders | None = None,
) -> None:
    """An error answer from the gate, in the error shape of the path's API."""
    from interlock.runtime.surfaces.shapes import shape_for_path

    status, body = shape_for_path(scope.get("path", "")).body(status, message, code=code)
    headers: RawHeaders = [(b"content-type", b"application/json"),
                           (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    if status >= 400:
        stamp_retry(status, headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _screen(scope: Scope, state: RuntimeState | None) -> Refusal | None:
    """The synchronous checks, in order: the first refusal, or None to go on.

    Leaves the authenticated principal in the scope (``auth.admit``)."""
    if state is not None:
        refusal = header_limit_refusal(scope["headers"], state.limits.settings)
        if refusal is not None:
            return refusal
    refusal = header_refusal(scope["headers"])
    if refusal is not None:
        return refusal
    if state is None:
        return None
    refusal = admit(scope, state.auth, state.table.profile)
    if refusal is not None:
        return refusal
    return rate_refusal(scope, state.limits.rates)


class Gate:
    """The router's ASGI entry: the checks of the module doc, then the app."""

    __slots__ = ("app", "_advice")

    def __init__(self, app: InterlockApp) -> None:
        self.app = app
        # bound once: the per-request cost of the x-should-retry rule is one
        # ContextVar.set/reset, not a closure
        self._advice = self.should_retry

    def should_retry(self, status: int) -> bytes:
        """The ``x-should-retry`` value for an error answer with ``status``."""
        retry = status in RETRYABLE or (status == 503 and self.app.state is None)
        return b"true" if retry else b"false"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        token = RETRY_ADVICE.set(self._advice)
        try:
            state = app.state
            refusal = _screen(scope, state)
            if refusal is not None:
                await refuse(scope, send, *refusal)
                return
            if (state is not None and state.idempotency is not None
                    and scope["method"] == "POST"):
                key = idempotency_key(scope["headers"])
                if key is not None:
                    await serve_idempotent(app.http, scope, receive, send, state.idempotency,
                                           key, state.table.server.max_body_bytes)
                    return
            await app.http(scope, receive, send)
        finally:
            RETRY_ADVICE.reset(token)


def secure(app: InterlockApp) -> ASGIApp:
    """The app behind the gate (see module doc)."""
    return Gate(app)
