"""The suite's loopback-only guard is active here and in subprocesses."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

OFF_MACHINE = ("192.0.2.1", 9)  # TEST-NET-1; the guard refuses before any packet


def test_a_non_loopback_connect_is_refused_in_process() -> None:
    with socket.socket() as s, pytest.raises(ConnectionRefusedError, match="test network guard"):
        s.connect(OFF_MACHINE)


def test_a_non_loopback_connect_is_refused_in_a_subprocess() -> None:
    code = (
        "import socket\n"
        "s = socket.socket()\n"
        "try:\n"
        f"    s.connect({OFF_MACHINE!r})\n"
        "except ConnectionRefusedError as e:\n"
        "    print('refused', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "test network guard" in out.stdout, out.stdout + out.stderr


def test_loopback_still_works() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
