"""Egress control: clients never choose where the router sends traffic, or with what key.

Where a request goes is decided by the compiled table only: provider base URLs and
key variables come from the lock file and the operator's environment.  A client
that tries to steer it - a base URL, an endpoint or an API key in the body, in
``extra_body`` (or ``metadata``), or in a header such as ``OpenAI-Base-URL`` or
``X-Router-Base-URL`` - gets a 400 naming the field, before anything is routed.
Rejecting, not dropping, makes a misconfigured client fail loudly instead of
silently talking to a different place than it believes.

:func:`check_body` runs on the parsed JSON body (the pipeline calls it right after
parsing); :class:`EgressHeaderMiddleware` checks header names before the app runs.
Header names that are ordinary (``Authorization`` and ``x-api-key`` carry the
client's key *to the router*, ``Idempotency-Key`` is not a credential) pass.

What else keeps egress closed (see SECURITY.md): redirects from upstreams are
never followed and proxy environment variables are ignored
(``providers/base.py``: ``allow_redirects=False``, ``trust_env=False``); the router
never fetches URLs it finds in a request (an image link goes to the provider as a
link, and Ollama-wire models refuse links); a private request is only ever sent to
``local`` providers (``forward``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from interlock.runtime.asgi_types import ASGIApp, Receive, Scope, Send
from interlock.runtime.errors import RequestError

#: body keys that pick a destination or carry a credential, whatever their
#: container (compared normalised: lower case, ``-`` as ``_``)
STRONG_KEYS: Final = frozenset({
    "api_base", "base_url", "baseurl", "api_url", "api_host", "api_endpoint",
    "endpoint_url", "azure_endpoint", "azure_deployment", "upstream_url", "target_url",
    "http_proxy", "https_proxy", "api_key", "apikey", "api_token", "access_token",
    "auth_token", "api_secret", "aws_access_key_id", "aws_secret_access_key",
    "vertex_credentials", "extra_headers", "default_headers", "custom_llm_provider",
})
#: generic names refused at the top level and in ``extra_body`` only (``metadata``
#: is free-form user data where ``url`` or ``host`` may mean anything)
WEAK_KEYS: Final = frozenset({
    "endpoint", "upstream", "host", "url", "proxy", "proxies", "token", "secret",
    "credentials", "headers",
})
#: containers whose keys are checked too (the SDKs' ``extra_body`` is merged at the
#: top level on the wire, but a client may also send it literally)
NESTED: Final = {"extra_body": True, "metadata": False, "router": True, "route": True}
#: header-name fragments that would steer egress (checked on lower-case names)
_HEADER_PARTS: Final = ("base-url", "base_url", "baseurl", "api-base", "api_base",
                        "upstream-url", "target-url", "endpoint-url", "x-router-upstream",
                        "x-router-base", "proxy-url")
_KEY_PARTS: Final = ("api-key", "api_key", "apikey", "provider-key", "upstream-key",
                     "upstream-authorization", "provider-authorization")
_ALLOWED_HEADERS: Final = frozenset({b"x-api-key", b"authorization", b"idempotency-key"})
#: every part above contains one of these (a unit test checks it): ordinary headers
#: (host, content-type, user-agent...) are cleared with six substring tests, not 18
_PART_CUES: Final = ("url", "api", "upstream", "base", "key", "authorization")


def _norm(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def forbidden_body_field(body: Mapping[str, Any]) -> str | None:
    """The dotted name of the first field that would steer egress, or None."""
    hit = _first(body, weak=True)
    if hit is not None:
        return hit
    for outer, weak in NESTED.items():
        inner = body.get(outer)
        if isinstance(inner, Mapping):
            hit = _first(inner, weak=weak)
            if hit is not None:
                return f"{outer}.{hit}"
    return None


def _first(obj: Mapping[str, Any], *, weak: bool) -> str | None:
    for key in obj:
        if not isinstance(key, str):
            continue
        k = _norm(key)
        if k in STRONG_KEYS or (weak and k in WEAK_KEYS):
            return key
    return None


def check_body(body: Mapping[str, Any]) -> None:
    """Raise a 400 when the body names a destination or a credential."""
    name = forbidden_body_field(body)
    if name is not None:
        raise RequestError(
            400,
            f"'{name}' is not accepted: clients cannot choose the upstream URL or key; "
            "the router's configuration decides where requests go",
            param=name, code="egress_not_allowed",
        )


def forbidden_header(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The first header name that would steer egress, or None."""
    for raw, _ in headers:
        if raw in _ALLOWED_HEADERS:
            continue
        name = raw.decode("latin-1")
        if not any(c in name for c in _PART_CUES):
            continue
        if any(p in name for p in _HEADER_PARTS) or any(p in name for p in _KEY_PARTS):
            return name
    return None


class EgressHeaderMiddleware:
    """400 for a request header that names an upstream URL or key."""

    def __init__(self, app: ASGIApp, enabled: Callable[[], bool] = lambda: True) -> None:
        self.app = app
        self._enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._enabled():
            name = forbidden_header(scope["headers"])
            if name is not None:
                from interlock.runtime.guard import refuse

                await refuse(scope, send, 400,
                             f"header '{name}' is not accepted: clients cannot choose the "
                             "upstream URL or key", "egress_not_allowed")
                return
        await self.app(scope, receive, send)
