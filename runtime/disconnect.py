"""Stop work for a client that went away.

Granian does not cancel an ASGI app whose client disconnected (a ``send`` to a
closed connection is dropped with a log line), so a long stream would keep its
upstream generating for nobody.  ``cancel_on_disconnect`` watches ``receive()``
for ``http.disconnect`` (after the body was read, that is the only message left)
and cancels the request's task; the cancellation is turned into
:class:`ClientDisconnected` so the app ends the request quietly, and every
``finally`` on the way (closing the upstream response) runs.

``race_disconnect`` does the same for one non-streaming piece of work, with a
delay: its watcher starts only once the work has run for one to two ticks of
``WATCH_TICK_S`` (25 ms), i.e. after 25 to 50 ms.  Most non-streaming answers
come sooner, and for them the watch costs two set operations instead of a task,
an extra ``receive()`` and a cancellation (the largest per-request cost of the
old watch).  One sweeper per event loop does the ticking: a loop timer that runs
only while races are in flight and starts the watchers of the races that outlived
a whole tick.  A client that leaves a slow request is therefore noticed at most
50 ms later than with an immediate watcher (its ``http.disconnect`` waits in
``receive()`` until the watcher asks); the upstream call is cancelled then, as
before.  Streams (``cancel_on_disconnect``) watch from the start: they are long
anyway, and a stream's client leaving mid-answer is the common case.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from interlock.runtime.asgi_types import Receive
from interlock.runtime.bodies import ClientDisconnected

T = TypeVar("T")

#: the sweeper's tick: a non-streaming request that has run for one to two ticks
#: (25 to 50 ms) gets its disconnect watcher
WATCH_TICK_S = 0.025


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


class _Watch:
    """The delayed disconnect watch of one :func:`race_disconnect` call."""

    __slots__ = ("task", "receive", "gone", "watcher")

    def __init__(self, task: asyncio.Task[Any], receive: Receive) -> None:
        self.task = task
        self.receive = receive
        self.gone = False
        self.watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """The request outlived the delay: watch for its client from now on."""
        self.watcher = self.task.get_loop().create_task(self._watch())

    async def _watch(self) -> None:
        receive = self.receive
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.task.cancel()


class _Sweeper:
    """One per event loop: starts the watchers of the races that outlived a tick.

    ``young`` holds the races that began since the last tick, ``old`` those that
    were already running at it; each tick starts the watchers of ``old`` and ages
    ``young``.  A race that ends leaves both sets, so its watcher never starts.
    """

    __slots__ = ("loop", "young", "old", "ticking")

    #: the timer runs in an empty context, not in that of the request that set it
    _CONTEXT = contextvars.Context()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.young: set[_Watch] = set()
        self.old: set[_Watch] = set()
        self.ticking = False

    def add(self, watch: _Watch) -> None:
        self.young.add(watch)
        if not self.ticking:
            self.ticking = True
            self.loop.call_later(WATCH_TICK_S, self._tick, context=self._CONTEXT)

    def remove(self, watch: _Watch) -> None:
        self.young.discard(watch)
        self.old.discard(watch)

    def _tick(self) -> None:
        due, self.old, self.young = self.old, self.young, set()
        for watch in due:
            watch.start()
        if self.old:
            self.loop.call_later(WATCH_TICK_S, self._tick, context=self._CONTEXT)
        else:
            self.ticking = False  # nothing in flight: the next race starts the timer


#: the sweeper of the loop that last ran a race (a worker has one loop; a race on
#: another loop gets a sweeper of its own, and keeps using the one it registered with)
_sweeper: _Sweeper | None = None


def _sweeper_for(loop: asyncio.AbstractEventLoop) -> _Sweeper:
    global _sweeper
    sweeper = _sweeper
    if sweeper is None or sweeper.loop is not loop:
        sweeper = _sweeper = _Sweeper(loop)
    return sweeper


async def race_disconnect(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """``await work``, unless the client disconnects first (then ClientDisconnected).

    ``work`` runs in the calling task (no task of its own, no ``asyncio.wait``).
    Once it has run for 25 to 50 ms (see the module doc), a watcher task cancels
    the caller when ``http.disconnect`` comes, and the cancellation unwinds
    ``work`` (closing the upstream call) first.
    """
    task = asyncio.current_task()
    if task is None:  # not in a task (cannot happen under an ASGI server)
        return await work
    watch = _Watch(task, receive)
    sweeper = _sweeper_for(task.get_loop())
    sweeper.add(watch)
    try:
        return await work
    except asyncio.CancelledError:
        if not watch.gone:
            raise
        task.uncancel()
        raise ClientDisconnected() from None
    finally:
        sweeper.remove(watch)
        if watch.watcher is not None:
            watch.watcher.cancel()
