"""Request headers the router reads, and the diagnostic headers it writes.

Read (one pass over ``scope["headers"]``): ``content-length`` (for the early
413), ``x-router-trace`` and ``x-router-private`` (``1``/``true``/``yes``).

Written on every response, errors included, so that a client can see where a
request went without touching the body:

=====================  ==================================================
X-Router-Provider      the provider that answered (``none`` if none did)
X-Router-Model         its model key, ``provider/upstream_id``
X-Router-Cell          the cell, ``task.complexity.sensitivity.modality``
X-Router-Reason        why this model (the decision's reason, and fallbacks)
X-Router-Attempts      how many upstream attempts were made
X-Router-Table         the decision table's content hash
X-Router-Overhead-Ms   time spent in the router itself, upstream time excluded
X-Router-Request-Tags  custom classifier tags of the request (router.yaml
                       ``tags``), comma-separated; only when some fired
X-Router-Response-Tags what the answer was: refusal, truncated,
                       content_filter, healed, escalated; only when any
X-Router-Escalated     ``from -> to (failed verifiers)`` when a verifier
                       failed and the request escalated
=====================  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from interlock.runtime.asgi_types import RawHeaders, Scope
from interlock.runtime.trace import Diagnostics

_TRUE = frozenset((b"1", b"true", b"yes", b"on"))


@dataclass(slots=True)
class RequestMeta:
    """What the router needs from the request's headers."""

    content_length: int | None = None
    trace: bool = False
    private: bool = False


def scan_headers(scope: Scope) -> RequestMeta:
    """One pass over the request headers (ASGI gives names in lower case)."""
    meta = RequestMeta()
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                meta.content_length = int(value)
            except ValueError:
                meta.content_length = None
        elif name == b"x-router-trace":
            meta.trace = value.strip().lower() in _TRUE
        elif name == b"x-router-private":
            meta.private = value.strip().lower() in _TRUE
    return meta


def _value(text: str) -> bytes:
    """A header-safe value: one line, ASCII (anything else becomes ``?``)."""
    if "\r" in text or "\n" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    return text.encode("ascii", "replace")


#: text -> header value: providers, model keys, cells and reasons repeat from request
#: to request (they come from the table), so each is encoded once.  Bounded: past
#: ``_VALUES_MAX`` entries new texts are encoded every time and not kept.  The empty
#: text is seeded with ``none``; every other text encodes to a non-empty value.
_VALUES: dict[str, bytes] = {"": b"none"}
_VALUES_MAX = 4096


def _cached(text: str) -> bytes:
    value = _VALUES.get(text)
    if value is None:
        value = _value(text) if text else b"none"
        if len(_VALUES) < _VALUES_MAX:
            _VALUES[text] = value
    return value


def diagnostic_headers(diag: Diagnostics, table_hash: bytes) -> RawHeaders:
    """The X-Router-* headers for one response (a fresh list the caller may extend)."""
    values = _VALUES
    headers = [
        (b"x-router-provider", values.get(diag.provider) or _cached(diag.provider)),
        (b"x-router-model", values.get(diag.model) or _cached(diag.model)),
        (b"x-router-cell", values.get(diag.cell) or _cached(diag.cell)),
        (b"x-router-reason", values.get(diag.reason) or _cached(diag.reason)),
        (b"x-router-attempts", b"%d" % len(diag.attempts)),
        (b"x-router-table", table_hash),
        (b"x-router-overhead-ms", b"%.3f" % diag.overhead_ms()),
    ]
    if diag.request_tags or diag.response_tags or diag.escalation is not None:
        headers.extend(_intel_headers(diag))
    return headers


def _intel_headers(diag: Diagnostics) -> RawHeaders:
    out: RawHeaders = []
    if diag.request_tags:
        out.append((b"x-router-request-tags", _value(",".join(diag.request_tags))))
    if diag.response_tags:
        out.append((b"x-router-response-tags", _value(",".join(diag.response_tags))))
    esc = diag.escalation
    if esc is not None and esc.get("to"):
        out.append((b"x-router-escalated",
                    _value(f"{esc['from']} -> {esc['to']} ({esc.get('because', '')})")))
    return out
