"""hook_stop_signals: open event streams end when the worker is told to stop."""

from __future__ import annotations

import asyncio
import os
import signal
from types import FrameType

from interlock.runtime.ui import UiRoutes, hook_stop_signals


def test_a_stop_signal_runs_the_hook_then_the_previous_handler() -> None:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    seen: list[str] = []

    def previous(signum: int, frame: FrameType | None) -> None:
        seen.append(f"previous {signum}")

    async def run() -> None:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        assert hook_stop_signals(asyncio.get_running_loop(), lambda: seen.append("stop"))
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # left alone
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if "stop" in seen:
                break
            await asyncio.sleep(0.01)

    try:
        asyncio.run(run())
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert seen == [f"previous {int(signal.SIGTERM)}", "stop"]


def test_nothing_is_hooked_outside_a_server_worker() -> None:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        loop = asyncio.new_event_loop()
        try:
            assert hook_stop_signals(loop, lambda: None) is False
        finally:
            loop.close()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_end_streams_sets_the_old_event_and_starts_a_fresh_one() -> None:
    ui = UiRoutes(heartbeat_s=1.0)
    old = ui.closing
    ui.end_streams()
    assert old.is_set() and not ui.closing.is_set()
