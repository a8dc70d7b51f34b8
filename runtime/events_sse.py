"""``GET /v1/events``: the recorder's live event bus as a Server-Sent Events stream.

Every request the router serves emits four events on ``state.recorder``'s
in-process bus — ``started``, ``classified``, ``routed``, ``completed`` — and
this endpoint relays each as one SSE message::

    id: 17
    event: routed
    data: {"event": "routed", "id": "...", "cell": "code.low.public.text", ...}

The data is the event's JSON form with its kind repeated under ``"event"`` (so
that a plain ``onmessage`` reader, or ``curl -N``, sees it too).  A comment line
(``: ping``) goes out every ``heartbeat_s`` seconds of silence, which keeps
proxies from timing the connection out and lets the client notice a dead one.

A client that reconnects with ``Last-Event-ID`` (the ``id`` of the last message
it saw; the bus's ``seq``) first gets the events it missed, as far as the bus's
ring buffer still holds them.

The stream ends cleanly when the client goes away (``http.disconnect`` cancels
the handler; the subscription is closed on the way out), when the recorder ends
the subscription, or when the app shuts down (``closing`` is set).  Events are
per worker: with several Granian workers, each stream sees the requests of the
worker that serves it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

import orjson
from interlock.runtime.context import Ctx
from interlock.runtime.disconnect import cancel_on_disconnect
from interlock.runtime.errors import RequestError
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.responses import SSE
from interlock.runtime.trace import plain

HELLO = b"retry: 3000\n: interlock live events\n\n"
PING = b": ping\n\n"
_HEADERS = [
    (b"content-type", SSE),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def event_json(event: Any) -> dict[str, Any]:
    """An event from the bus as a JSON-ready dict with its kind under ``"event"``.

    Accepts what a bus may reasonably carry: a mapping, an object with
    ``to_json()``/``to_dict()``, a dataclass or a pydantic model.
    """
    data: Any
    for name in ("to_json", "to_dict"):
        method = getattr(event, name, None)
        if callable(method):
            data = method()
            break
    else:
        data = dict(event) if isinstance(event, Mapping) else plain(event)
    if not isinstance(data, dict):
        raise TypeError(f"a bus event must serialise to an object, not {type(data).__name__}")
    out: dict[str, Any] = dict(data)
    kind = _kind(event, out)
    out["event"] = kind
    return out


def _kind(event: Any, data: dict[str, Any]) -> str:
    for key in ("event", "kind", "type"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
        attr = getattr(event, key, None)
        if isinstance(attr, str) and attr and not dataclasses.is_dataclass(attr):
            return attr
    return "message"


def subscriber_of(recorder: Any) -> Callable[..., AsyncIterator[Any]] | None:
    """The recorder's ``subscribe`` (on the recorder itself or on its ``bus``)."""
    for owner in (recorder, getattr(recorder, "bus", None)):
        subscribe = getattr(owner, "subscribe", None)
        if callable(subscribe):
            return cast(Callable[..., AsyncIterator[Any]], subscribe)
    return None


def _last_event_id(ctx: Ctx) -> int | None:
    for name, value in ctx.scope["headers"]:
        if name == b"last-event-id":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _subscribe(subscribe: Callable[..., AsyncIterator[Any]], recorder: Any,
               last_id: int | None) -> AsyncIterator[Any]:
    """Subscribe; a client that reconnects with ``Last-Event-ID`` first gets the
    events it missed that the bus still holds (same worker: ids are its ``seq``)."""
    bus = getattr(recorder, "bus", recorder)
    current = getattr(bus, "seq", None)
    if last_id is not None and isinstance(current, int) and 0 <= last_id < current:
        try:
            return subscribe(replay=current - last_id)
        except TypeError:  # a bus without replay
            pass
    return subscribe()


def frame(seq: int, data: dict[str, Any]) -> bytes:
    """One SSE message (``id``, ``event``, ``data``) for an event dict."""
    kind = str(data.get("event", "message")).replace("\n", " ").replace("\r", " ")
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        seq, kind.encode("ascii", "replace"), orjson.dumps(data, default=str)
    )


async def stream_events(ctx: Ctx, *, heartbeat_s: float, closing: asyncio.Event) -> None:
    """Serve one ``GET /v1/events`` connection until the client, the bus or the app ends."""
    subscribe = subscriber_of(getattr(ctx.state, "recorder", None))
    if subscribe is None:
        raise RequestError(503, "live events need the request recorder, which is not running",
                           code="no_recorder")
    relay = _Relay(_subscribe(subscribe, ctx.state.recorder, _last_event_id(ctx)))
    # start waiting for the first event *before* the headers go out: a subscription
    # made by an async generator only exists once it runs, and a client that saw
    # the 200 must not miss the request it makes next
    relay.wait_next()
    await asyncio.sleep(0)
    headers = diagnostic_headers(ctx.diag, ctx.state.table_hash_header)
    headers.extend(_HEADERS)
    try:
        async with cancel_on_disconnect(ctx.receive):
            await ctx.send({"type": "http.response.start", "status": 200, "headers": headers})
            ctx.started = True
            await _body(ctx, HELLO)
            await relay.pump(ctx, heartbeat_s, closing)
            await ctx.send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await relay.close()


class _Relay:
    """One subscription and the pending wait for its next event."""

    def __init__(self, events: AsyncIterator[Any]) -> None:
        self.events = events
        self.pending: asyncio.Future[Any] | None = None
        self.seq = 0

    def wait_next(self) -> asyncio.Future[Any]:
        self.pending = asyncio.ensure_future(self._next())
        return self.pending

    async def _next(self) -> Any:
        return await self.events.__anext__()

    async def pump(self, ctx: Ctx, heartbeat_s: float, closing: asyncio.Event) -> None:
        """Relay events (and a ping per ``heartbeat_s`` of silence) until the bus ends
        or ``closing`` is set."""
        closed = asyncio.ensure_future(closing.wait())
        try:
            pending = self.pending or self.wait_next()
            while True:
                done, _ = await asyncio.wait(
                    {pending, closed}, timeout=heartbeat_s, return_when=asyncio.FIRST_COMPLETED
                )
                if closed in done:
                    return
                if not done:
                    await _body(ctx, PING)
                    continue
                try:
                    event = pending.result()
                except StopAsyncIteration:
                    return
                self.seq += 1
                data = event_json(event)
                seq = data.get("seq")
                await _body(ctx, frame(seq if isinstance(seq, int) else self.seq, data))
                pending = self.wait_next()
        finally:
            closed.cancel()

    async def close(self) -> None:
        if self.pending is not None and not self.pending.done():
            self.pending.cancel()
            # let the cancellation reach the subscription before closing it
            await asyncio.wait({self.pending})
        # an async generator has aclose(); the recorder's subscription has close()
        for name in ("aclose", "close"):
            method = getattr(self.events, name, None)
            if callable(method):
                result = method()
                if inspect.isawaitable(result):
                    await result
                return


async def _body(ctx: Ctx, chunk: bytes) -> None:
    await ctx.send({"type": "http.response.body", "body": chunk, "more_body": True})
