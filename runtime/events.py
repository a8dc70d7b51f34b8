"""The in-process event bus: a live feed of what each request is doing.

Events are small JSON-ready dicts with a ``type`` - ``started``, ``classified``,
``routed``, ``completed`` - the request's ``id`` and ``seq`` (this bus's running
number).  ``Recorder`` (``interlock.runtime.record``) emits them; the dashboard's
SSE feed subscribes::

    sub = state.recorder.bus.subscribe()
    try:
        while True:
            event = await sub.get(timeout=15.0)   # None on timeout: send a heartbeat
            ...
    finally:
        sub.close()

(``async for event in sub`` works too.)

Why a ring buffer and not one queue per subscriber: publishing is then O(1)
whatever the number of subscribers - one ``deque.append`` and, only if someone is
waiting, waking one shared future - and it never blocks.  A subscriber that falls
more than ``capacity`` events behind skips what it missed and counts it in
``dropped``; nothing waits for a slow reader.

Publish and subscribe from the serving loop's thread (the bus is not
thread-safe, by design: it is per worker).  With several Granian workers each
worker has its own bus, so a feed shows the requests of the worker that serves
it; the SQLite store is the cross-worker view.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Final

Event = dict[str, Any]

#: the event types, in the order a request emits them
EVENT_TYPES: Final = ("started", "classified", "routed", "completed")


class EventBus:
    """A bounded broadcast of events to any number of async subscribers."""

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._ring: deque[tuple[int, Event]] = deque(maxlen=capacity)
        self._seq = 0
        self._wake: asyncio.Future[None] | None = None
        self._subscribers = 0
        #: True when someone subscribed: emitters skip building events otherwise.
        #: A plain attribute, kept in step by subscribe/unsubscribe: every request
        #: reads it several times, and a property call costs more than the read.
        self.listening = False

    @property
    def seq(self) -> int:
        """The number of the last event published."""
        return self._seq

    def publish(self, event: Event) -> None:
        """Add ``event`` (it gets a ``seq``); O(1), never blocks, never raises."""
        self._seq += 1
        event["seq"] = self._seq
        self._ring.append((self._seq, event))
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    def subscribe(self, *, replay: int = 0) -> Subscription:
        """A new subscription; it sees events published from now on, plus up to
        ``replay`` recent ones still in the buffer."""
        start = max(self._seq - max(0, replay), self._ring[0][0] - 1 if self._ring else 0)
        self._subscribers += 1
        self.listening = True
        return Subscription(self, start)

    async def _changed(self) -> None:
        if self._wake is None or self._wake.done():
            self._wake = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._wake)

    def _unsubscribe(self) -> None:
        self._subscribers -= 1
        self.listening = self._subscribers > 0

    def _after(self, pos: int) -> tuple[list[Event], int, int]:
        """Events newer than ``pos``, the new position and how many were lost."""
        ring = self._ring
        if not ring or pos >= self._seq:
            return [], pos, 0
        oldest = ring[0][0]
        lost = max(0, oldest - pos - 1)
        skip = max(0, pos + 1 - oldest)
        items = [ev for i, (_, ev) in enumerate(ring) if i >= skip]
        return items, self._seq, lost


class Subscription:
    """One reader of an :class:`EventBus`; close it when done (or use ``async with``)."""

    def __init__(self, bus: EventBus, pos: int) -> None:
        self._bus = bus
        self._pos = pos
        self._pending: deque[Event] = deque()
        self._closed = False
        #: events this subscriber missed because it fell behind
        self.dropped = 0

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event; ``None`` if ``timeout`` seconds pass without one."""
        if self._closed:
            raise RuntimeError("the subscription is closed")
        while not self._pending:
            items, self._pos, lost = self._bus._after(self._pos)
            self.dropped += lost
            if items:
                self._pending.extend(items)
                break
            if timeout is None:
                await self._bus._changed()
            else:
                try:
                    await asyncio.wait_for(self._bus._changed(), timeout)
                except TimeoutError:
                    return None
        return self._pending.popleft()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._unsubscribe()

    async def aclose(self) -> None:
        """Close (the async-generator spelling, for callers that expect one)."""
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        event = await self.get()
        assert event is not None  # no timeout: get() waits for one
        return event

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
