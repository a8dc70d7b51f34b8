"""Stop work for a client that went away.

Granian does not cancel an ASGI app whose client disconnected (a ``send`` to a
closed connection is dropped with a log line), so a long stream would keep its
upstream generating for nobody.  ``cancel_on_disconnect`` watches ``receive()``
for ``http.disconnect`` (after the body was read, that is the only message left)
and cancels the request's task; the cancellation is turned into
:class:`ClientDisconnected` so the app ends the request quietly, and every
``finally`` on the way (closing the upstream response) runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from interlock.runtime.asgi_types import Receive
from interlock.runtime.bodies import ClientDisconnected

T = TypeVar("T")


@asynccontextmanager
async def cancel_on_disconnect(receive: Receive) -> AsyncIterator[None]:
    task = asyncio.current_task()
    if task is None:  # not in a task (cannot happen under an ASGI server)
        yield
        return
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        yield
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        raise ClientDisconnected() from None
    finally:
        watcher.cancel()


async def race_disconnect(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """``await work``, unless the client disconnects first (then ClientDisconnected).

    ``work`` runs in the calling task (no task of its own, no ``asyncio.wait``: on
    the non-streaming hot path that machinery cost more than the rest of the
    bookkeeping); a watcher task cancels the caller when ``http.disconnect`` comes,
    and the cancellation unwinds ``work`` (closing the upstream call) first.
    """
    task = asyncio.current_task()
    if task is None:  # not in a task (cannot happen under an ASGI server)
        return await work
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        raise ClientDisconnected() from None
    finally:
        watcher.cancel()
