"""What the forwarder asks before and after each upstream attempt (issue 8).

``forward.with_fallbacks`` and ``forward.with_retries`` call these small hooks so
that the reliability rules stay in one place:

* :func:`request_started` - one deposit into the retry budget per request;
* :func:`admit` - before an attempt: ``"skip"`` when the provider's or the model's
  circuit breaker is open (recorded as a skipped attempt, "circuit open"),
  ``"stop"`` when this would be a retry (not the request's first attempt) and the
  retry budget is spent, else ``"go"`` (claiming a half-open probe);
* :func:`retry_allowed` - before retrying the same candidate after Retry-After;
* :func:`succeeded` / :func:`failed` - every outcome feeds the breakers;
* :func:`hold_slot` - a slot of a provider with ``max_concurrency`` around the
  attempt (held by a stream until it is closed); a provider whose slots stay taken
  raises :class:`~interlock.runtime.limits.ProviderBusy`, which the fallback loop
  treats like a connect error (next candidate) without blaming the provider.

Every hook is a no-op for an ``Upstreams`` without ``breakers``/``limits`` (unit
tests that build a bare forwarding context).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar

from interlock.runtime.breaker import Breakers
from interlock.runtime.errors import Attempt, UpstreamError
from interlock.runtime.limits import Limits, ProviderBusy

T = TypeVar("T")
Verdict = Literal["go", "skip", "stop"]


def _breakers(up: object) -> Breakers | None:
    b = getattr(up, "breakers", None)
    return b if isinstance(b, Breakers) else None


def _limits(up: object) -> Limits | None:
    lim = getattr(up, "limits", None)
    return lim if isinstance(lim, Limits) else None


def request_started(up: object) -> None:
    b = _breakers(up)
    if b is not None:
        b.budget.deposit()


def admit(up: object, attempts: list[Attempt], provider: str, model: str, role: str,
          tried: int) -> Verdict:
    """May the next attempt (``tried`` attempts were made already) go ahead?"""
    b = _breakers(up)
    if b is None:
        return "go"
    if not (b.available(provider) and b.available(model)):
        attempts.append(Attempt(provider=provider, model=model, outcome="skipped",
                                error="circuit open: recent failures; probing again after "
                                      "the cooldown", role=role))
        return "skip"
    if tried >= 1 and not b.budget.withdraw():
        attempts.append(Attempt(provider=provider, model=model, outcome="skipped",
                                error="retry budget exhausted: too many retries across "
                                      "requests (upstream outage?)", role=role))
        return "stop"
    if not b.allow(provider, model):  # lost a half-open probe race
        attempts.append(Attempt(provider=provider, model=model, outcome="skipped",
                                error="circuit half-open: another request is probing",
                                role=role))
        return "skip"
    return "go"


def retry_allowed(up: object) -> bool:
    b = _breakers(up)
    return b is None or b.budget.withdraw()


def succeeded(up: object, provider: str, model: str) -> None:
    b = _breakers(up)
    if b is not None:
        b.success(provider, model)


def failed(up: object, provider: str, model: str, exc: UpstreamError) -> None:
    b = _breakers(up)
    if b is None or isinstance(exc, ProviderBusy):
        return
    if exc.retryable:
        b.failure(provider, model)
    else:
        b.success(provider, model)  # it answered (a 4xx): the provider is up


def slot_limited(up: object, provider: str) -> bool:
    """True when ``provider`` has a concurrency limit (then use :func:`hold_slot`)."""
    lim = _limits(up)
    return lim is not None and lim.slots.limited(provider)


async def hold_slot(up: object, provider: str, model: str, deadline: float,
                    attempts: list[Attempt], role: str,
                    call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` holding a concurrency slot of ``provider`` (if it is limited)."""
    lim = _limits(up)
    if lim is None or not lim.slots.limited(provider):
        return await call()
    try:
        await lim.slots.acquire(provider, model, deadline)
    except ProviderBusy as exc:
        attempts.append(Attempt(provider=provider, model=model, outcome="skipped",
                                error=f"busy: {exc.message}", role=role))
        raise
    try:
        result = await call()
    except BaseException:
        lim.slots.release(provider)
        raise
    rest = getattr(result, "rest", None)
    if rest is not None and hasattr(result, "first"):
        # a stream: the slot stays taken until the stream is closed
        setattr(result, "rest", _Releasing(rest, lambda: lim.slots.release(provider)))  # noqa: B010
        return result
    lim.slots.release(provider)
    return result


class _Releasing:
    """An async iterator that frees the slot once: at its end, on an error, or on
    ``aclose`` (also when it was never iterated)."""

    def __init__(self, it: AsyncIterator[Any], release: Callable[[], None]) -> None:
        self._it = it
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> _Releasing:
        return self

    async def __anext__(self) -> Any:
        try:
            return await anext(self._it)
        except BaseException:
            self._free()
            raise

    async def aclose(self) -> None:
        self._free()
        aclose = getattr(self._it, "aclose", None)
        if aclose is not None:
            await aclose()

    def _free(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()
