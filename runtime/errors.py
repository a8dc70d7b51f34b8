"""The runtime's exception tree.  Library exceptions are translated into these
at exactly one boundary (the provider adapters); nothing else catches httpx or
aiohttp errors.

    RouterError                      anything the router answers with an error
    ├── RequestError                 the client's fault: 4xx, never retried
    │     (status, message, param, code)
    ├── UpstreamError                one attempt at one provider failed
    │   ├── UpstreamConnectError     could not connect / connection dropped → fall back
    │   ├── UpstreamTimeout          deadline or read timeout → fall back
    │   └── UpstreamHTTPError        a status from upstream; retryable on 429/5xx,
    │                                returned to the client as-is on other 4xx
    └── NoCandidateError             every candidate failed or was filtered out;
          (status, attempts)         keeps each attempt's error by name
"""

from __future__ import annotations

from dataclasses import dataclass, field


class RouterError(Exception):
    status: int = 500
    message: str = ""


class RequestError(RouterError):
    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type


class UpstreamError(RouterError):
    retryable: bool = True

    def __init__(self, provider: str, model: str, message: str) -> None:
        super().__init__(f"{provider}/{model}: {message}")
        self.provider = provider
        self.model = model
        self.message = message
        self.status = 502


class UpstreamConnectError(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    def __init__(self, provider: str, model: str, message: str) -> None:
        super().__init__(provider, model, message)
        self.status = 504


class UpstreamHTTPError(UpstreamError):
    def __init__(
        self, provider: str, model: str, status: int, body: bytes,
        *, content_type: str = "application/json", retry_after_s: float | None = None,
    ) -> None:
        super().__init__(provider, model, f"upstream answered {status}")
        self.status = status
        self.body = body
        self.content_type = content_type
        self.retry_after_s = retry_after_s
        self.retryable = status == 429 or status >= 500


@dataclass(slots=True)
class Attempt:
    provider: str
    model: str
    outcome: str  # "ok", "error", "skipped"
    status: int | None = None
    error: str = ""
    latency_ms: float = 0.0
    role: str = "primary"
    #: the provider account used, when the provider has several (runtime/accounts.py)
    account: str = ""


@dataclass
class NoCandidateError(RouterError):
    status_code: int
    reason: str
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = self.status_code
        self.message = self.reason
        super().__init__(self.reason)
