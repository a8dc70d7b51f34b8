"""Ingress auth: optional client API keys, hashed, compared in constant time.

Keys live in ``router.yaml`` under ``server.auth.keys``; the decision table holds
each key's sha256 (``router keys hash``) or the name of the environment variable
that holds it - never the raw key, so a lock file can be committed.  With no key
configured, auth is off (and ``router start`` refuses a non-loopback address
unless ``--insecure``, see :func:`check_exposure`).

A client presents its key as ``Authorization: Bearer <key>`` (OpenAI SDKs) or
``x-api-key: <key>`` (Anthropic SDKs).  The key's sha256 is compared with every
configured digest by ``hmac.compare_digest`` (all of them, so the time taken does
not say which key came close).  Each key may be scoped:

* ``models`` - fnmatch patterns over model keys (``ollama/*``) or upstream ids
  (``gpt-4o*``); the pipeline drops every candidate the key may not use
  (:meth:`Principal.allows_model`), and an explicit model outside the scope is a 403;
* ``profiles`` - the table's profile must be one of them, else 403;
* ``private_only`` - every request is private (as if ``X-Router-Private: true``).

:func:`admit` (the gate's check, ``guard.py``) answers 401 (missing or wrong key) and
403 (profile scope) in the error shape of the API the path belongs to, and leaves the
authenticated :class:`Principal` in ``scope["interlock.principal"]`` for the rate
limiter, the idempotency cache and the pipeline.  ``/healthz`` and ``/readyz`` stay open
(orchestrator probes carry no key), and so do the static pages (``/dashboard``,
``/chat``, ``/ui/*``): they hold no data, and the APIs they call need the key.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from interlock.runtime.asgi_types import Scope
from interlock.runtime.decide import Decision
from interlock.runtime.errors import RequestError
from interlock.runtime.responses import Refusal
from interlock.runtime.table import ClientKey, DecisionTable

#: where the middleware leaves the authenticated principal
PRINCIPAL = "interlock.principal"
#: paths that never need a key (liveness and readiness probes)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/dashboard", "/chat"})
#: the pages' static assets: they hold no data (the APIs the pages call stay behind
#: the key, which the pages send once the user enters it)
OPEN_PREFIXES = ("/ui/",)
_PRIVATE_HEADER = (b"x-router-private", b"true")


def hash_key(key: str) -> str:
    """``sha256:<hex>`` of a client key, as router.yaml's ``hash`` holds it."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated client: a key's name and its scopes (never the key)."""

    name: str
    models: tuple[str, ...] = ("*",)
    profiles: tuple[str, ...] = ()
    private_only: bool = False
    rpm: int | None = None
    burst: int | None = None
    _match: Callable[[str], object] | None = field(default=None, repr=False, compare=False)

    @property
    def unrestricted(self) -> bool:
        return self._match is None

    def allows_model(self, key: str) -> bool:
        """True when this principal may use model ``key`` (``provider/upstream_id``)."""
        if self._match is None:
            return True
        if self._match(key):
            return True
        _, _, upstream = key.partition("/")
        return bool(upstream) and bool(self._match(upstream))

    def allows_profile(self, profile: str) -> bool:
        return not self.profiles or profile in self.profiles


def _matcher(patterns: Sequence[str]) -> Callable[[str], object] | None:
    if not patterns or "*" in patterns:
        return None
    # one compiled regex per key, built once at start (not per request)
    rx = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return rx.match


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    principal: Principal


class KeyRing:
    """The configured keys, resolved once per worker (``key_env`` read at start)."""

    def __init__(self, keys: Sequence[ClientKey], environ: Mapping[str, str]) -> None:
        self.enabled = bool(keys)
        #: names of keys whose variable is unset: they authenticate nobody
        self.unresolved: list[str] = []
        entries: list[_Entry] = []
        for k in keys:
            digest = _digest_of(k, environ)
            if digest is None:
                self.unresolved.append(k.name)
                continue
            entries.append(_Entry(digest, Principal(
                k.name, k.models, k.profiles, k.private_only, k.rpm, k.burst,
                _matcher(k.models))))
        self._entries = tuple(entries)

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal whose key is ``presented``, or None."""
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for entry in self._entries:
            # compare against every entry: no early exit that timing could reveal
            if hmac.compare_digest(digest, entry.digest) and found is None:
                found = entry.principal
        return found


def _digest_of(k: ClientKey, environ: Mapping[str, str]) -> bytes | None:
    if k.sha256:
        try:
            return bytes.fromhex(k.sha256.removeprefix("sha256:"))
        except ValueError:
            return None
    raw = environ.get(k.key_env or "")
    return hashlib.sha256(raw.encode("utf-8")).digest() if raw else None


def presented_key(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The key from ``Authorization: Bearer`` or ``x-api-key`` (first wins)."""
    api_key: str | None = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1").strip() or None
    return api_key


# -- the gate's check ---------------------------------------------------------------------


def admit(scope: Scope, ring: KeyRing, profile: str | None) -> Refusal | None:
    """401/403 for a request without a valid key, when keys are configured, or None.

    An admitted request carries its :class:`Principal` in ``scope[PRINCIPAL]``
    (and, for a ``private_only`` key, the ``x-router-private: true`` header).
    """
    if not ring.enabled:
        return None
    path = scope["path"]
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return None
    principal = ring.authenticate(presented_key(scope["headers"]))
    if principal is None:
        return Refusal(401, "missing or invalid API key: send it as "
                       "'Authorization: Bearer <key>' or 'x-api-key: <key>'",
                       "invalid_api_key", [(b"www-authenticate", b'Bearer realm="interlock"')])
    if profile is not None and not principal.allows_profile(profile):
        return Refusal(403, f"this API key may not use profile {profile!r}",
                       "profile_not_allowed")
    scope[PRINCIPAL] = principal
    if principal.private_only:
        # the classifier's explicit private flag: later header scans see it
        scope["headers"] = [*scope["headers"], _PRIVATE_HEADER]
    return None


# -- model scope (called by the pipeline after decide) -------------------------------------


def restrict(principal: object, decision: Decision) -> Decision:
    """``decision`` without the candidates the client's key may not use.

    A pinned model outside the key's scope, or a chain left empty by the scope,
    is a 403 (``model_not_allowed``).  No principal (auth off), or a key allowed
    every model, returns ``decision`` unchanged.
    """
    if not isinstance(principal, Principal) or principal.unrestricted:
        return decision
    if decision.pinned is not None and not principal.allows_model(decision.pinned):
        raise RequestError(403, f"API key {principal.name!r} may not use model "
                           f"{decision.pinned!r}", param="model", code="model_not_allowed",
                           type="permission_error")
    kept = [c for c in decision.candidates if principal.allows_model(c.model)]
    if len(kept) == len(decision.candidates):
        return decision
    dropped = [(c, f"not allowed for API key {principal.name!r}")
               for c in decision.candidates if not principal.allows_model(c.model)]
    if not kept and decision.candidates:
        raise RequestError(403, f"API key {principal.name!r} may not use any model that can "
                           "serve this request", param="model", code="model_not_allowed",
                           type="permission_error")
    return replace(decision, candidates=kept, filtered=[*decision.filtered, *dropped])


# -- exposure ------------------------------------------------------------------------------


class InsecureBind(Exception):
    """``router start`` on a non-loopback address with no client keys."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for 0.0.0.0 and real addresses."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_exposure(host: str, table: DecisionTable | None, *, insecure: bool) -> None:
    """Refuse to serve without keys on an address other machines can reach."""
    if insecure or is_loopback(host):
        return
    if table is not None and table.server.auth.keys:
        return
    raise InsecureBind(
        f"refusing to serve on {host}: it is reachable from other machines and no client "
        "API keys are configured, so anyone who can reach it could spend your provider keys "
        "and read private traffic. Add keys under server.auth.keys in router.yaml "
        "(`router keys new` prints one), bind 127.0.0.1, or pass --insecure if something "
        "else (a firewall, an authenticating proxy) already guards the port"
    )
