"""Loopback-only guard for every Python process the test suite starts.

The test suite puts this directory on ``PYTHONPATH`` (see ``tests/conftest.py``),
so every subprocess (routers under Granian, fakes, the CLI) installs an audit
hook that refuses any TCP connect to an address outside 127.0.0.0/8 and ::1
*before* it happens.  A test that would send traffic off the machine fails with
a connection error instead.  Tests that need their own sitecustomize set
PYTHONPATH themselves and call ``install()`` from theirs if they want it.
"""

from __future__ import annotations

import sys
from typing import Any


def _loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect":
        return
    addr = args[1]
    if isinstance(addr, tuple) and addr and isinstance(addr[0], str) and not _loopback(addr[0]):
        raise ConnectionRefusedError(111, f"test network guard: {addr[0]} is not loopback")


def install() -> None:
    sys.addaudithook(_hook)


install()
