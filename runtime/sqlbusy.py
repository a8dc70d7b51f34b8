"""Opening a SQLite file that other processes may be setting up at the same moment.

Granian starts a router's workers together, and each opens the same files: the
request log, the conversations.  Whichever comes first creates the file and switches
it to WAL; switching takes a lock that SQLite's busy handler (``busy_timeout``) does
not wait for, so a worker arriving meanwhile got SQLITE_BUSY at once.  With
``--workers 2`` on a fresh request log that happened in 4 tries of 10, and that
worker ran without a log; a first conversations request could fail the same way.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Final, TypeVar

T = TypeVar("T")

_BUSY: Final = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
RETRY_S: Final = 0.01


def until_not_busy(step: Callable[[], T], timeout_s: float) -> T:
    """``step()``, tried again while SQLite says the database is busy or locked, for up
    to ``timeout_s``; any other error, or the last busy one, is raised as it came."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) not in _BUSY \
                    or time.monotonic() >= deadline:
                raise
            time.sleep(RETRY_S)
