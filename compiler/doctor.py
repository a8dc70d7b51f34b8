"""Probes of the outside world for the CLI: Ollama discovery and ``router doctor``.

The compiler itself never touches the network (a compile is a pure function of
its inputs); the CLI asks Ollama what is installed and passes the names in as
``discovered``.  ``router doctor`` goes further: it probes every enabled
provider of a compiled table, checks that key variables are set (never printing
their values) and that the local models the table routes to are installed.

Everything here is synchronous httpx with short timeouts: a doctor that hangs
is worse than one that says "unreachable".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from interlock.compiler import builtin
from interlock.runtime.table import DecisionTable, ProviderEntry

DEFAULT_OLLAMA = "http://127.0.0.1:11434"
PROBE_TIMEOUT_S = 1.5

Status = Literal["ok", "warn", "error"]


def normalize_ollama_url(value: str) -> str:
    """Turn an ``OLLAMA_HOST``-style value into a base URL without a path.

    Ollama accepts ``host``, ``host:port`` and full URLs; ``0.0.0.0`` is a bind
    address, not somewhere to connect to, so it becomes loopback.
    """
    raw = value.strip().rstrip("/")
    if not raw:
        return DEFAULT_OLLAMA
    # Ollama's own rule: a bare host gets port 11434, an explicit scheme its usual port.
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest, port = "http", raw, "11434"
    else:
        port = "443" if scheme == "https" else "80"
    hostport = rest.partition("/")[0]
    if hostport.startswith("["):  # [::1]:11434
        host, _, tail = hostport.partition("]")
        host += "]"
        if tail.startswith(":") and tail[1:].isdigit():
            port = tail[1:]
    elif ":" in hostport:
        host, _, maybe_port = hostport.rpartition(":")
        port = maybe_port if maybe_port.isdigit() else port
    else:
        host = hostport
    if host in ("0.0.0.0", "", "[::]"):
        host = "127.0.0.1"
    return f"{scheme}://{host}:{port}"


def ollama_url(environ: Mapping[str, str], configured: str | None = None) -> str:
    """Where Ollama should be: the config's base_url, else ``OLLAMA_HOST``, else loopback."""
    if configured:
        return strip_api_suffix(configured)
    host = environ.get("OLLAMA_HOST", "")
    return normalize_ollama_url(host) if host else DEFAULT_OLLAMA


def strip_api_suffix(url: str) -> str:
    """``http://h:11434/v1`` or ``.../api`` → ``http://h:11434`` (the native API root)."""
    base = url.rstrip("/")
    for suffix in ("/v1", "/api"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


@dataclass(frozen=True, slots=True)
class OllamaProbe:
    """What ``GET /api/tags`` said: installed model names, or why it failed."""

    url: str
    reachable: bool
    models: tuple[str, ...] = ()
    error: str = ""


def probe_ollama(url: str, *, timeout: float = PROBE_TIMEOUT_S) -> OllamaProbe:
    """Ask Ollama which models are installed; never raises on network trouble."""
    base = strip_api_suffix(url)
    try:
        resp = httpx.get(f"{base}/api/tags", timeout=timeout)
    except httpx.HTTPError as exc:
        return OllamaProbe(base, False, error=_describe(exc))
    if resp.status_code != 200:
        return OllamaProbe(base, False, error=f"GET /api/tags answered {resp.status_code}")
    try:
        body = resp.json()
    except ValueError:
        return OllamaProbe(base, False, error="GET /api/tags did not answer JSON")
    names = []
    for item in body.get("models", []) if isinstance(body, dict) else []:
        if isinstance(item, dict):
            name = item.get("name") or item.get("model")
            if isinstance(name, str) and name:
                names.append(name)
    return OllamaProbe(base, True, tuple(sorted(set(names))))


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unreachable"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def same_ollama_model(a: str, b: str) -> bool:
    """Ollama names match with or without the implicit ``:latest`` tag."""
    return _untag(a) == _untag(b)


def _untag(name: str) -> str:
    return name[: -len(":latest")] if name.endswith(":latest") else name


# --------------------------------------------------------------------------- doctor


@dataclass(slots=True)
class ProviderCheck:
    """The verdict on one enabled provider."""

    name: str
    wire: str
    locality: str
    url: str
    status: Status
    reachable: bool
    detail: str = ""
    keys: list[tuple[str, bool]] = field(default_factory=list)
    missing_models: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DoctorReport:
    checks: list[ProviderCheck]
    status: Status
    next_steps: list[str]

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "providers": [
                {
                    "name": c.name, "wire": c.wire, "locality": c.locality, "url": c.url,
                    "status": c.status, "reachable": c.reachable, "detail": c.detail,
                    "keys": [{"env": env, "set": is_set} for env, is_set in c.keys],
                    "missing_models": c.missing_models, "advice": c.advice,
                }
                for c in self.checks
            ],
            "next_steps": self.next_steps,
        }


def probe_http(url: str, *, headers: Mapping[str, str] | None = None,
               timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, int | None, str]:
    """GET ``url``: (answered at all, status, detail).  Any HTTP status counts as reachable."""
    try:
        resp = httpx.get(url, headers=dict(headers or {}), timeout=timeout)
    except httpx.HTTPError as exc:
        return False, None, _describe(exc)
    return True, resp.status_code, f"HTTP {resp.status_code}"


def key_envs(provider: ProviderEntry) -> list[str]:
    """The key variables a provider reads (one per account)."""
    return [a.api_key_env for a in provider.accounts if a.api_key_env]


def check_provider(table: DecisionTable, provider: ProviderEntry, environ: Mapping[str, str],
                   *, timeout: float = PROBE_TIMEOUT_S) -> ProviderCheck:
    """Probe one provider and judge it; local ones must also hold their models."""
    envs = key_envs(provider)
    keys = [(env, bool(environ.get(env))) for env in envs]
    check = ProviderCheck(provider.name, provider.wire, provider.locality, provider.base_url,
                          "ok", False, keys=keys)
    needs_key = provider.auth != "none" and provider.locality == "cloud"
    if needs_key and envs and not any(is_set for _, is_set in keys):
        check.status = "warn"
        check.detail = "no key set"
        check.advice.append(f"export {envs[0]}=... to use {provider.name}")
        return check  # no point probing a provider we cannot call
    routed = [m.upstream_id for m in table.models.values() if m.provider == provider.name]
    if provider.wire == "ollama":
        probe = probe_ollama(provider.base_url, timeout=timeout)
        check.url, check.reachable = probe.url, probe.reachable
        if not probe.reachable:
            check.status, check.detail = "error", probe.error
            check.advice.append(f"start Ollama (`ollama serve`) or set OLLAMA_HOST; "
                                f"tried {probe.url}")
            return check
        check.detail = f"{len(probe.models)} models installed"
        check.missing_models = [m for m in routed
                                if not any(same_ollama_model(m, n) for n in probe.models)]
    else:
        headers = _auth_headers(provider, environ)
        url = _models_url(provider)
        ok, status, detail = probe_http(url, headers=headers, timeout=timeout)
        check.reachable, check.detail = ok, detail
        if not ok:
            check.status = "error"
            check.advice.append(f"{provider.name} is unreachable at {provider.base_url}"
                                + (": is the server running?" if provider.locality == "local"
                                   else ": check the network or the base_url"))
            return check
        if status in (401, 403):
            check.status = "error"
            check.advice.append(f"{provider.name} rejected the key ({detail}): check "
                                + (envs[0] if envs else "its key"))
    if check.missing_models:
        check.status = "error"
        check.advice.extend(f"ollama pull {m}" for m in check.missing_models)
    return check


def _models_url(provider: ProviderEntry) -> str:
    base = provider.base_url.rstrip("/")
    # Anthropic's base URL is the host; its API lives under /v1.
    if provider.wire == "anthropic" and not base.endswith("/v1"):
        base += "/v1"
    return base + "/models"


def _auth_headers(provider: ProviderEntry, environ: Mapping[str, str]) -> dict[str, str]:
    key = next((environ[e] for e in key_envs(provider) if environ.get(e)), "")
    if not key or provider.auth == "none":
        return {}
    if provider.auth == "x-api-key":
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return {"Authorization": f"Bearer {key}"}


def run_doctor(table: DecisionTable, environ: Mapping[str, str], *,
               timeout: float = PROBE_TIMEOUT_S) -> DoctorReport:
    """Check every provider of ``table``; ``status`` is the worst of them."""
    checks = [check_provider(table, p, environ, timeout=timeout)
              for _, p in sorted(table.providers.items())]
    worst: Status = "ok"
    for c in checks:
        if c.status == "error":
            worst = "error"
        elif c.status == "warn" and worst == "ok":
            worst = "warn"
    steps = [a for c in checks for a in c.advice]
    if not any(c.locality == "local" and c.status == "ok" for c in checks):
        steps.append("no local provider is healthy: private requests will be refused")
    if worst == "ok":
        steps.append("all good: `router start` serves this table")
    return DoctorReport(checks, worst, steps)


# --------------------------------------------------------------------------- discovery


def discovery_url(config: Any, profile: str | None, environ: Mapping[str, str]) -> str | None:
    """Where to ask Ollama for installed models, or None when discovery does not apply.

    ``config`` is the parsed router.yaml data (a dict) or None for the built-in
    default (which enables Ollama).  Discovery applies when Ollama is an
    enabled provider and the profile's ``discovery.ollama`` is on; the compiler
    checks the flag again, this only avoids a pointless network probe.
    """
    configured: str | None = None
    if isinstance(config, dict):
        providers = config.get("providers") or {}
        use = providers.get("ollama") if isinstance(providers, dict) else None
        if not isinstance(use, dict) and use is not None:
            return None
        if use is None or use.get("enabled", True) is False:
            return None
        base = use.get("base_url")
        configured = base if isinstance(base, str) else None
        if profile is None and isinstance(config.get("profile"), str):
            profile = config["profile"]
    if not _profile_discovers(profile or "balanced"):
        return None
    return ollama_url(environ, configured)


def _profile_discovers(profile: str) -> bool:
    if profile not in builtin.profile_names():
        return True  # a profile file: let the compiler decide; probing is cheap
    data = builtin.load_builtin_profile(profile).data
    discovery = data.get("discovery") if isinstance(data, dict) else None
    return not (isinstance(discovery, dict) and discovery.get("ollama") is False)
