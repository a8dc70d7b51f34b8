"""The provider adapter protocol and the shared HTTP layer under every adapter.

An adapter speaks one *wire* (openai, ollama, later anthropic).  It takes the
canonical request, the table's ``ModelEntry`` and ``ProviderEntry`` and an
absolute deadline (a ``time.monotonic()`` value covering this attempt) and
returns a ``CanonicalResponse`` or an async iterator of ``Delta``.

Two HTTP clients sit under the adapters: non-streaming requests to a plain
``http://`` upstream (a local model server) go through the small keep-alive
client in ``providers/h1.py``, ~10x cheaper per request than aiohttp (see its
docstring); ``https://`` upstreams, streams and URLs with credentials use one
shared aiohttp session.

This module is the one boundary where client, asyncio and OS exceptions become
the runtime's own (``interlock.runtime.errors``):

=====================================  ===================================
what happened                          raised
=====================================  ===================================
connect refused / DNS / reset / drop   ``UpstreamConnectError``
mid-body drop (stream cut)             ``UpstreamConnectError``
deadline, read or connect timeout      ``UpstreamTimeout``
non-2xx answer                         ``UpstreamHTTPError`` (status, body,
                                       content type, Retry-After seconds)
2xx with a body that does not parse    ``UpstreamError``
API key variable not set               ``KeyNotSetError`` (a connect error:
                                       fall back, never retry this provider)
=====================================  ===================================

The response is always released before an error is raised.  ``stream()`` is an
async generator: the request is sent on the first ``__anext__`` (so errors
before the first delta surface there and the caller can still fall back), and
``aclose()`` releases the connection if the caller stops early.
"""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson
from interlock.runtime.canonical import CanonicalRequest, CanonicalResponse, Delta
from interlock.runtime.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
)
from interlock.runtime.providers.h1 import DROPPED, ConnectFailed, H1Client, Target
from interlock.runtime.table import ModelEntry, ProviderEntry

#: error bodies are kept for the client, but never unbounded
MAX_ERROR_BODY = 64 * 1024
#: what ``translate`` handles; everything else (cancellation included) passes through
_IO_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


class KeyNotSetError(UpstreamConnectError):
    """The provider's API key variable is unset: skip this provider, fall back.

    ``retryable`` stays True (the chain moves on); ``retry_same`` is False so a
    retry loop never waits on this provider again within the request.
    """

    retry_same = False


@dataclass(slots=True)
class Embeddings:
    """An embeddings answer: one vector per input, in input order."""

    vectors: list[list[float]]
    input_tokens: int = 0


class Provider(Protocol):
    """What every wire adapter provides."""

    wire: str

    async def send(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> CanonicalResponse:
        """One non-streaming attempt."""
        ...

    def stream(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> AsyncIterator[Delta]:
        """One streaming attempt; errors are raised from the iterator."""
        ...

    async def list_models(self, provider: ProviderEntry, *, deadline: float) -> list[str]:
        """The model ids the provider serves right now (discovery)."""
        ...

    async def probe(self, provider: ProviderEntry, *, deadline: float) -> bool:
        """A cheap health check: True when the provider answers at all sanely."""
        ...

    async def embed(
        self, inputs: list[str], model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> Embeddings:
        """Embed ``inputs`` with an embedding model."""
        ...


def api_key(provider: ProviderEntry, model: str = "") -> str | None:
    """The key for ``provider`` (its first account), or None for auth "none".

    Raises ``KeyNotSetError`` when the provider needs a key and the variable is
    unset or empty.
    """
    if provider.auth == "none":
        return None
    env = provider.accounts[0].api_key_env if provider.accounts else None
    key = os.environ.get(env) if env else None
    if not key:
        raise KeyNotSetError(
            provider.name, model,
            f"API key variable {env} is not set" if env else "no API key variable configured",
        )
    return key


def auth_headers(provider: ProviderEntry, model: str = "") -> dict[str, str]:
    """Static provider headers plus authentication, per the provider's auth style."""
    headers = dict(provider.headers)
    key = api_key(provider, model)
    if key is not None:
        if provider.auth == "bearer":
            headers["Authorization"] = "Bearer " + key
        else:  # x-api-key
            headers["x-api-key"] = key
    return headers


def join_url(base_url: str, path: str) -> str:
    """``base_url`` + ``path``; a base without a scheme (``OLLAMA_HOST`` style) gets http."""
    base = base_url if "://" in base_url else "http://" + base_url
    return base.rstrip("/") + path


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def timeout_for(
    provider: ProviderEntry, deadline: float, *, stream: bool = False,
) -> aiohttp.ClientTimeout:
    """The attempt's timeouts: the provider's own, capped by the deadline.

    A plain request may take ``timeout_ms`` in all; a stream may run until the
    deadline but may not stall for more than ``timeout_ms`` between reads (a long
    generation is not a hung one).
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        remaining = 0.001  # already late: fail fast with a timeout, not a hang
    limit = provider.timeout_ms / 1000.0
    connect = min(remaining, provider.connect_timeout_ms / 1000.0)
    if stream:
        return aiohttp.ClientTimeout(total=remaining, sock_read=min(remaining, limit),
                                     sock_connect=connect, connect=connect)
    total = min(remaining, limit)
    return aiohttp.ClientTimeout(total=total, sock_connect=connect, connect=connect)


class Upstream:
    """One aiohttp session shared by every adapter (pooling, keep-alive).

    The session is created lazily inside the running loop and closed by
    ``close()`` at shutdown.  Redirects are never followed and proxy environment
    variables are ignored (``trust_env=False``): a request meant for a local
    provider must not leave the machine through an HTTP proxy.
    """

    def __init__(self, *, limit: int = 256, limit_per_host: int = 0) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        #: plain-http JSON requests (local upstreams) go through the small client
        self.h1 = H1Client()

    def session(self) -> aiohttp.ClientSession:
        s = self._session
        if s is None or s.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=self._limit_per_host,
                ttl_dns_cache=300, enable_cleanup_closed=False,
            )
            s = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=True,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                skip_auto_headers=("User-Agent",),
            )
            self._session = s
        return s

    async def close(self) -> None:
        self.h1.close()
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # -- requests -----------------------------------------------------------------

    async def request_json(
        self, method: str, url: str, provider: ProviderEntry, model: str, *,
        deadline: float, body: bytes | None = None, headers: dict[str, str] | None = None,
    ) -> Any:
        """Send a request and return the parsed JSON of a 2xx answer."""
        raw = await self.request_bytes(
            method, url, provider, model, deadline=deadline, body=body, headers=headers,
        )
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(provider.name, model, f"invalid JSON from upstream: {exc}") \
                from exc

    async def request_bytes(
        self, method: str, url: str, provider: ProviderEntry, model: str, *,
        deadline: float, body: bytes | None = None, headers: dict[str, str] | None = None,
    ) -> bytes:
        """Send a request and return the body of a 2xx answer."""
        hdrs = headers if headers is not None else auth_headers(provider, model)
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        target = self.h1.target(url)
        if target is not None:  # plain http: the small client (providers/h1.py)
            return await self._h1_bytes(method, target, provider, model, deadline, body, hdrs)
        try:
            async with self.session().request(
                method, url, data=body, headers=hdrs, allow_redirects=False,
                timeout=timeout_for(provider, deadline),
            ) as resp:
                if resp.status >= 300:
                    await raise_for_status(resp, provider.name, model)
                return await resp.read()
        except _IO_ERRORS as exc:
            raise translate(exc, provider.name, model) from exc

    async def _h1_bytes(self, method: str, target: Target, provider: ProviderEntry,
                        model: str, deadline: float, body: bytes | None,
                        headers: dict[str, str]) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            remaining = 0.001  # already late: fail fast with a timeout, not a hang
        try:
            reply = await self.h1.request(
                method, target, headers, body,
                timeout=min(remaining, provider.timeout_ms / 1000.0),
                connect_timeout=provider.connect_timeout_ms / 1000.0,
            )
        except (TimeoutError, OSError, ValueError) as exc:
            raise translate(exc, provider.name, model) from exc
        if reply.status >= 300:
            raise UpstreamHTTPError(
                provider.name, model, reply.status, reply.body[:MAX_ERROR_BODY],
                content_type=reply.headers.get("content-type", "application/json"),
                retry_after_s=parse_retry_after(reply.headers.get("retry-after")),
            )
        return reply.body

    async def stream_bytes(
        self, url: str, provider: ProviderEntry, model: str, *,
        deadline: float, body: bytes, headers: dict[str, str] | None = None,
    ) -> AsyncIterator[bytes]:
        """POST ``body`` and yield the 2xx answer's body as it arrives.

        ``headers`` replaces the default (static provider headers plus auth)."""
        hdrs = headers if headers is not None else auth_headers(provider, model)
        hdrs["Content-Type"] = "application/json"
        try:
            async with self.session().post(
                url, data=body, headers=hdrs, allow_redirects=False,
                timeout=timeout_for(provider, deadline, stream=True),
            ) as resp:
                if resp.status >= 300:
                    await raise_for_status(resp, provider.name, model)
                async for chunk in resp.content.iter_any():
                    yield chunk
        except _IO_ERRORS as exc:
            raise translate(exc, provider.name, model) from exc


async def raise_for_status(resp: aiohttp.ClientResponse, provider: str, model: str) -> None:
    """Read (a bounded part of) an error answer and raise ``UpstreamHTTPError``.

    A 3xx is an error too: redirects are not followed.
    """
    try:
        body = await resp.content.read(MAX_ERROR_BODY)
    except (TimeoutError, aiohttp.ClientError):
        body = b""  # the status is what matters; a broken error body must not hide it
    ctype = resp.headers.get("Content-Type", "application/json")
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    resp.release()
    raise UpstreamHTTPError(
        provider, model, resp.status, body, content_type=ctype, retry_after_s=retry_after,
    )


def translate(exc: BaseException, provider: str, model: str) -> UpstreamError:
    """Map an aiohttp/asyncio/OS exception to the runtime's tree."""
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(provider, model, "timed out" + _detail(exc))
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamConnectError(provider, model, "connection dropped mid-body" + _detail(exc))
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return UpstreamConnectError(provider, model, "server disconnected")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectError(provider, model, "cannot connect" + _detail(exc))
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamConnectError(provider, model, type(exc).__name__ + _detail(exc))
    if isinstance(exc, ConnectionResetError) and str(exc) == DROPPED:
        return UpstreamConnectError(provider, model, "server disconnected")
    if isinstance(exc, ConnectFailed):
        return UpstreamConnectError(provider, model, "cannot connect" + _detail(exc))
    return UpstreamConnectError(provider, model, type(exc).__name__ + _detail(exc))


def _detail(exc: BaseException) -> str:
    text = str(exc)
    return f": {text}" if text else ""
