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
    """``await work``, unless the client disconnects first (then ClientDisconnected)."""
    job = asyncio.ensure_future(work)

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait((job, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not job.done():
            # the client left (or we were cancelled ourselves): stop the upstream call
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    if job.cancelled() and watcher.done() and not watcher.cancelled():
        raise ClientDisconnected()
    return job.result()
