"""``race_disconnect`` with its delayed watcher: a fast answer never starts a watcher
(no task, no extra ``receive()``), a slow one is still cancelled soon after its
client leaves, and nothing is left behind (no task, no pending sweeper).

The end-to-end checks (a real router, a slow upstream, 1,000 disconnects) are in
tests/integration/test_rel_disconnect.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from interlock.runtime import disconnect
from interlock.runtime.bodies import ClientDisconnected
from interlock.runtime.disconnect import WATCH_TICK_S, race_disconnect


class Client:
    """``receive()`` after the body: waits until the client leaves."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.receives = 0

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def _work(seconds: float, result: str = "done") -> str:
    await asyncio.sleep(seconds)
    return result


def _tasks() -> int:
    return sum(1 for t in asyncio.all_tasks() if not t.done())


def test_a_fast_answer_starts_no_watcher() -> None:
    async def go() -> None:
        client = Client()
        base = _tasks()
        for _ in range(200):
            assert await race_disconnect(client.receive, _work(0)) == "done"
        assert client.receives == 0  # no watcher ever asked
        assert _tasks() == base
        await asyncio.sleep(3 * WATCH_TICK_S)
        sweeper = disconnect._sweeper
        assert sweeper is not None and not sweeper.young and not sweeper.old
        assert not sweeper.ticking  # idle: no timer left running

    asyncio.run(go())


def test_a_slow_answer_is_cancelled_soon_after_its_client_leaves() -> None:
    async def go() -> None:
        client = Client()
        cancelled = asyncio.Event()

        async def slow() -> str:
            try:
                await asyncio.sleep(60)
            finally:
                cancelled.set()  # the upstream call is unwound
            return "never"

        async def leave() -> float:
            await asyncio.sleep(0.01)  # before the watcher starts
            client.gone.set()
            return time.monotonic()

        leaving = asyncio.ensure_future(leave())
        with pytest.raises(ClientDisconnected):
            await race_disconnect(client.receive, slow())
        took = time.monotonic() - await leaving
        assert cancelled.is_set()
        assert took < 2 * WATCH_TICK_S + 0.2, took
        assert client.receives == 1

    asyncio.run(go())


def test_a_client_that_leaves_a_running_watch_cancels_at_once() -> None:
    async def go() -> None:
        client = Client()

        async def leave() -> float:
            await asyncio.sleep(3 * WATCH_TICK_S)  # the watcher runs by now
            client.gone.set()
            return time.monotonic()

        leaving = asyncio.ensure_future(leave())
        with pytest.raises(ClientDisconnected):
            await race_disconnect(client.receive, _work(60))
        assert time.monotonic() - await leaving < 0.1

    asyncio.run(go())


def test_a_slow_answer_without_a_disconnect_returns_and_leaves_nothing() -> None:
    async def go() -> None:
        client = Client()
        base = _tasks()
        results = await asyncio.gather(
            *(race_disconnect(client.receive, _work(0.005 * i, str(i))) for i in range(30)))
        assert results == [str(i) for i in range(30)]
        assert 0 < client.receives < 30  # only the slower ones were watched
        await asyncio.sleep(0)
        assert _tasks() == base
        await asyncio.sleep(3 * WATCH_TICK_S)
        sweeper = disconnect._sweeper
        assert sweeper is not None and not sweeper.ticking

    asyncio.run(go())


def test_other_cancellations_and_errors_pass_through() -> None:
    async def go() -> None:
        client = Client()

        async def boom() -> str:
            await asyncio.sleep(2 * WATCH_TICK_S)
            raise ValueError("upstream")

        with pytest.raises(ValueError):
            await race_disconnect(client.receive, boom())
        task = asyncio.ensure_future(race_disconnect(client.receive, _work(60)))
        await asyncio.sleep(3 * WATCH_TICK_S)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_each_event_loop_gets_its_own_sweeper() -> None:
    async def go() -> object:
        client = Client()
        assert await race_disconnect(client.receive, _work(2 * WATCH_TICK_S)) == "done"
        return disconnect._sweeper

    first, second = asyncio.run(go()), asyncio.run(go())
    assert first is not second
