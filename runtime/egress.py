"""Egress control: clients never choose where the router sends traffic, or with what key.

Where a request goes is decided by the compiled table only: provider base URLs and
key variables come from the lock file and the operator's environment.  A client
that tries to steer it - a base URL, an endpoint or an API key in the body, in
``extra_body`` (or ``metadata``), or in a header such as ``OpenAI-Base-URL`` or
``X-Router-Base-URL`` - gets a 400 naming the field, before anything is routed.
Rejecting, not dropping, makes a misconfigured client fail loudly instead of
silently talking to a different place than it believes.

:func:`check_body` runs on the parsed JSON body (the pipeline calls it right after
parsing); :func:`header_refusal` checks header names before the app runs (the gate,
``guard.py``).
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

import re
from collections.abc import Mapping
from typing import Any, Final

from interlock.runtime.errors import RequestError
from interlock.runtime.responses import Refusal

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


#: body keys of the API surfaces that are neither checked names nor containers:
#: skipped with one set lookup (built below by the very rule that checks a key, so
#: a name can only land here if the full check would pass it anyway)
_COMMON_BODY_KEYS: Final = (
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "top_k", "n",
    "max_tokens", "max_completion_tokens", "max_output_tokens", "stop", "stop_sequences",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "user", "tools", "tool_choice", "parallel_tool_calls", "response_format", "seed",
    "system", "input", "instructions", "prompt", "suffix", "echo", "best_of", "store",
    "reasoning", "reasoning_effort", "modalities", "audio", "prediction", "service_tier",
    "thinking", "text", "truncation", "include", "previous_response_id", "conversation",
    "background", "encoding_format", "dimensions", "options", "format", "keep_alive",
    "raw", "images", "think", "x_router_trace",
)
#: every part above contains one of these (a unit test checks it); it selects the
#: ordinary header names below
_PART_CUES: Final = ("url", "api", "upstream", "base", "key", "authorization")
#: header names clients send every day (SDKs, browsers, proxies): skipped with one
#: set lookup; only names without any cue qualify, so none can contain a part
_COMMON_HEADERS: Final = (
    "host", "content-type", "content-length", "transfer-encoding", "user-agent", "accept",
    "accept-encoding", "accept-language", "connection", "keep-alive", "expect", "te",
    "cache-control", "pragma", "cookie", "origin", "referer", "dnt", "priority",
    "x-request-id", "x-correlation-id", "traceparent", "tracestate", "baggage",
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "via",
    "x-stainless-lang", "x-stainless-package-version", "x-stainless-os",
    "x-stainless-arch", "x-stainless-runtime", "x-stainless-runtime-version",
    "x-stainless-async", "x-stainless-retry-count", "x-stainless-read-timeout",
    "x-stainless-timeout", "x-stainless-helper-method", "x-stainless-poll-helper",
    "anthropic-version", "anthropic-beta", "anthropic-dangerous-direct-browser-access",
    "openai-organization", "openai-project", "openai-beta", "x-router-trace",
    "x-router-private", "sec-fetch-mode", "sec-fetch-site", "sec-fetch-dest", "sec-ch-ua",
    "sec-ch-ua-mobile", "sec-ch-ua-platform",
)


def _norm(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _checked(key: str, *, weak: bool) -> bool:
    """The one rule for a body key: does it steer egress (``weak``: generic names too)?"""
    k = _norm(key)
    return k in STRONG_KEYS or (weak and k in WEAK_KEYS)


#: top-level keys that pass every check and are no container: skipped outright
_PLAIN_BODY_KEYS: Final = frozenset(
    k for k in _COMMON_BODY_KEYS if not _checked(k, weak=True) and k not in NESTED)
#: header names that never steer egress: the allowed ones and the cue-free ordinary ones
_PASS_HEADERS: Final = _ALLOWED_HEADERS | frozenset(
    h.encode("latin-1") for h in _COMMON_HEADERS if not any(c in h for c in _PART_CUES))
#: one search for all parts (a match anywhere in the name is a hit, as ``p in name``);
#: on the raw bytes, which latin-1 decodes one byte to one character
_STEERING_HEADER: Final = re.compile(
    b"|".join(re.escape(p.encode("latin-1")) for p in _HEADER_PARTS + _KEY_PARTS)).search


def forbidden_body_field(body: Mapping[str, Any]) -> str | None:
    """The dotted name of the first field that would steer egress, or None."""
    containers = False
    for key in body:
        if key in _PLAIN_BODY_KEYS:
            continue  # the usual keys: one set lookup each
        if not isinstance(key, str):
            continue
        if _checked(key, weak=True):
            return key
        if key in NESTED:
            containers = True
    if containers:
        for outer, weak in NESTED.items():
            inner = body.get(outer)
            if isinstance(inner, Mapping):
                hit = _first(inner, weak=weak)
                if hit is not None:
                    return f"{outer}.{hit}"
    return None


def _first(obj: Mapping[str, Any], *, weak: bool) -> str | None:
    for key in obj:
        if isinstance(key, str) and _checked(key, weak=weak):
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
        if raw in _PASS_HEADERS:
            continue
        if _STEERING_HEADER(raw) is not None:
            return raw.decode("latin-1")
    return None


def header_refusal(headers: list[tuple[bytes, bytes]]) -> Refusal | None:
    """The gate's 400 for a request header that names an upstream URL or key, or None."""
    name = forbidden_header(headers)
    if name is None:
        return None
    return Refusal(400, f"header '{name}' is not accepted: clients cannot choose the "
                   "upstream URL or key", "egress_not_allowed")
