"""``interlock.Client``: a small synchronous Python client for a running router.

    >>> from interlock import Client
    >>> with Client("http://127.0.0.1:8787") as c:
    ...     c.route("Summarise this paragraph ...")["cell"]
    ...     c.chat("Hello!")["choices"][0]["message"]["content"]
    ...     c.last_route["model"]          # from the X-Router-* headers

Every method returns the parsed JSON body.  The routing headers of the last
response (``X-Router-Provider``, ``-Model``, ``-Cell``, ``-Reason``, ``-Attempts``,
``-Table``, ``-Overhead-Ms``) are kept in ``last_route`` without the prefix, in
lower case.  An error status raises :class:`RouterAPIError` with the status and
the server's message.  Built on httpx (the synchronous side of the project).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

_PREFIX = "x-router-"


class RouterAPIError(Exception):
    """The router (or the upstream, passed through) answered with an error status."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.body = body


class Client:
    """A synchronous client for the router's HTTP API."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8787",
        api_key: str | None = None,
        timeout: float = 120.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self.last_route: dict[str, str] = {}

    # -- API ---------------------------------------------------------------------------

    def route(self, prompt: str | None = None, *, body: dict[str, Any] | None = None,
              **fields: Any) -> dict[str, Any]:
        """Where a request would go, and why (``POST /v1/route``; no model is called).

        Give a prompt, or a whole chat-completions ``body``; extra keyword fields
        (``private=True``, ``tools=[...]``, ``model=...``) are added to the body.
        """
        payload = dict(body) if body is not None else {}
        if prompt is not None:
            payload.setdefault("messages", [{"role": "user", "content": prompt}])
        if "messages" not in payload:
            raise ValueError("route() needs a prompt or a body with messages")
        payload.update(fields)
        return self._json("POST", "/v1/route", payload)

    def chat(self, messages: str | list[dict[str, Any]], model: str = "auto",
             **fields: Any) -> dict[str, Any]:
        """``POST /v1/chat/completions`` (non-streaming); a string is one user message.

        Keyword fields go into the body as they are (``temperature=0``,
        ``private=True``, ``trace=True``, ``response_format={...}``, ...).
        """
        msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
        payload: dict[str, Any] = {"model": model, "messages": msgs, **fields}
        if payload.get("stream"):
            raise ValueError("chat() does not stream; use the openai SDK for streams")
        return self._json("POST", "/v1/chat/completions", payload)

    def embeddings(self, input: str | list[str], model: str = "auto",
                   **fields: Any) -> dict[str, Any]:
        """``POST /v1/embeddings``."""
        return self._json("POST", "/v1/embeddings", {"model": model, "input": input, **fields})

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``: ``auto``, ``route-auto`` and every routable model."""
        return self._json("GET", "/v1/models")

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: status per provider (a 503 body is returned, not raised)."""
        resp = self._http.get("/healthz")
        self._remember(resp)
        data: dict[str, Any] = resp.json()
        return data

    def stats(self) -> dict[str, Any]:
        """``GET /v1/stats`` (served once the request log is enabled)."""
        return self._json("GET", "/v1/stats", feature="stats")

    def logs(self, **filters: Any) -> dict[str, Any]:
        """``GET /v1/logs`` with filters as query parameters (``cell=``, ``model=``...)."""
        params = {k: v for k, v in filters.items() if v is not None}
        return self._json("GET", "/v1/logs", params=params, feature="logs")

    # -- plumbing ------------------------------------------------------------------------

    def _json(self, method: str, path: str, payload: Any = None, *,
              params: dict[str, Any] | None = None, feature: str | None = None
              ) -> dict[str, Any]:
        resp = self._http.request(method, path, json=payload, params=params)
        self._remember(resp)
        if resp.status_code == 404 and feature is not None:
            raise RouterAPIError(
                404, f"this router does not serve {path} ({feature} needs a router version "
                     "with the request log enabled)", _body(resp))
        if resp.status_code >= 400:
            body = _body(resp)
            raise RouterAPIError(resp.status_code, _message(body, resp), body)
        data: dict[str, Any] = resp.json()
        return data

    def _remember(self, resp: httpx.Response) -> None:
        self.last_route = {
            k[len(_PREFIX):]: v for k, v in resp.headers.items() if k.startswith(_PREFIX)
        }

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text


def _message(body: Any, resp: httpx.Response) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        message = err.get("message") if isinstance(err, dict) else None
        if isinstance(message, str):
            return message
        if isinstance(err, str):
            return err
    return resp.reason_phrase or "error"
