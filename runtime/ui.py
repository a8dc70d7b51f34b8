"""The router's user-facing pages and their endpoints, in one object the app mounts.

=============================  ====================================================
``GET /dashboard``             live feed, totals, charts, route map
``GET /chat``                  try the router; conversations
``GET /ui/<asset>``            their stylesheet and scripts (``dashboard.ASSETS``)
``GET /v1/events``             the live request events, SSE (``events_sse``)
``GET /v1/table``              the loaded table, compact and secret-free (``routemap``)
``/v1/conversations[/...]``    the chat page's conversations (``chatpage``)
=============================  ====================================================

:class:`UiRoutes` is built with the app (the pages are rendered then, once) and
closed at shutdown (open event streams end, the conversation store closes).
Open event streams also end as soon as the worker is told to stop (SIGINT or
SIGTERM, see :func:`hook_stop_signals`): Granian waits for open requests before
it shuts the app down, and an event stream would otherwise never end.
``routes`` are exact paths; ``prefixes`` map a path prefix to its handlers (the
conversation ids).  The heartbeat interval of ``/v1/events`` comes from
``INTERLOCK_SSE_HEARTBEAT_S`` (default 15 seconds).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

from interlock.runtime.chatpage import COLLECTION, PREFIX, ConversationsApi
from interlock.runtime.context import Ctx, Handler
from interlock.runtime.dashboard import Pages
from interlock.runtime.events_sse import stream_events
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.responses import send_bytes
from interlock.runtime.routemap import table_body

HEARTBEAT_ENV: Final = "INTERLOCK_SSE_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S: Final = 15.0

Routes = dict[str, dict[str, Handler]]


def heartbeat_from_environ() -> float:
    raw = os.environ.get(HEARTBEAT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_HEARTBEAT_S
    except ValueError:
        return DEFAULT_HEARTBEAT_S
    return value if value > 0 else DEFAULT_HEARTBEAT_S


def hook_stop_signals(loop: asyncio.AbstractEventLoop, on_stop: Callable[[], None]) -> bool:
    """Call ``on_stop`` (in ``loop``) when the process gets SIGINT or SIGTERM, then the
    handler that was there before.

    Why: Granian stops a worker gracefully - it waits for open requests to end
    before the lifespan shutdown - and an event stream never ends by itself, so an
    open dashboard would keep ``router start`` from stopping.  The worker's own
    handler (asyncio's, installed by Granian) is kept and still runs.  Nothing is
    hooked where the handler is the default or ignored (not a server worker), or
    off the main thread (where signal handlers cannot be set); returns whether
    anything was hooked.
    """
    hooked = False
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous = signal.getsignal(sig)
        except ValueError:
            return hooked
        if not callable(previous):
            continue

        def handler(signum: int, frame: FrameType | None,
                    previous: Callable[[int, FrameType | None], Any] = previous) -> None:
            loop.call_soon_threadsafe(on_stop)
            previous(signum, frame)

        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread
            return hooked
        hooked = True
    return hooked


class UiRoutes:
    """Pages, assets, the live event stream, the table view and conversations."""

    def __init__(self, *, heartbeat_s: float | None = None) -> None:
        self.pages = Pages()
        self.heartbeat_s = heartbeat_from_environ() if heartbeat_s is None else heartbeat_s
        self.conversations = ConversationsApi()
        self.closing = asyncio.Event()
        #: table hash → the /v1/table body (one entry: a worker serves one table)
        self._table_bodies: dict[str, bytes] = {}
        self._signals_hooked = False

    @property
    def routes(self) -> Routes:
        routes: Routes = {path: {"GET": self.pages.serve} for path in self.pages.paths}
        routes["/v1/events"] = {"GET": self.events}
        routes["/v1/table"] = {"GET": self.table}
        routes[COLLECTION] = {"GET": self.conversations.collection,
                              "POST": self.conversations.collection}
        return routes

    @property
    def prefixes(self) -> Routes:
        item = self.conversations.item
        return {PREFIX: {"GET": item, "POST": item, "DELETE": item}}

    async def events(self, ctx: Ctx) -> None:
        if not self._signals_hooked:
            self._signals_hooked = True
            hook_stop_signals(asyncio.get_running_loop(), self.end_streams)
        await stream_events(ctx, heartbeat_s=self.heartbeat_s, closing=self.closing)

    def end_streams(self) -> None:
        """End every open event stream (a later stream gets a fresh ``closing``)."""
        closing, self.closing = self.closing, asyncio.Event()
        closing.set()

    async def table(self, ctx: Ctx) -> None:
        state = ctx.state
        body = self._table_bodies.get(state.table_hash)
        if body is None:
            body = table_body(state.table)
            self._table_bodies = {state.table_hash: body}
        await send_bytes(ctx.send, 200, body,
                         diagnostic_headers(ctx.diag, state.table_hash_header))

    async def close(self) -> None:
        """End the open event streams and close the conversation store."""
        self.end_streams()
        await self.conversations.close()
