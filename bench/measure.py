"""Measurement helpers for bench/run.py: ports, process-tree RSS, the decision path."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import timeit
from pathlib import Path


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    kids = [int(x) for x in out.stdout.split()]
    return kids + [g for k in kids for g in _children(k)]


def rss_tree_kb(pid: int) -> int:
    """Peak resident set (VmHWM) summed over a process and its descendants."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_tree_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / tick


def micro_decision(lock: Path) -> dict[str, float]:
    """µs per classify + decide for prompts of 1 KB, 32 KB and 512 KB (best of 5)."""
    from interlock.runtime.classify import Classifier
    from interlock.runtime.decide import decide
    from interlock.runtime.surfaces.chat import decode_chat
    from interlock.runtime.table import load_table

    table = load_table(lock)
    classifier = Classifier(table.classifier)
    para = (
        "Please review the following notes and tell me which parts are unclear. "
        "The service reads its settings at start, then answers requests in order. "
    )
    out: dict[str, float] = {}
    for label, size in (("1 KB prompt", 1024), ("32 KB prompt", 32 * 1024),
                        ("512 KB prompt", 512 * 1024)):
        text = (para * (size // len(para) + 1))[:size]
        req = decode_chat({"model": "auto", "messages": [{"role": "user", "content": text}]})

        def run(req: object = req) -> None:
            decide(table, classifier.classify(req), req)  # type: ignore[arg-type]

        n = max(3, int(2000 * 1024 / size))
        best = min(timeit.repeat(run, number=n, repeat=5)) / n
        out[f"{label}"] = best * 1e6
    return out
