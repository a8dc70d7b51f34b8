"""x-should-retry is stamped where error answers are built, so every error answer
must be built in one of those places.

The gate (``guard.py``) no longer wraps ``send``: ``responses.send_bytes`` and
``guard.refuse`` add the header, and ``idempotency._send_recorded`` replays an
answer recorded with it.  This test reads the runtime's source and fails if any
other code sends an ``http.response.start`` whose status is not a literal 200 -
such a path would answer an error without the header.
"""

from __future__ import annotations

import ast
from pathlib import Path

import interlock.runtime

RUNTIME = Path(interlock.runtime.__file__).parent
#: (module, function) allowed to send any status: they stamp (or replay) the header
STAMPING = {("responses.py", "send_bytes"), ("guard.py", "refuse"),
            ("idempotency.py", "_send_recorded")}


def _starts(tree: ast.AST) -> list[tuple[str, ast.Dict]]:
    """Every dict literal ``{"type": "http.response.start", ...}`` and its function."""
    found: list[tuple[str, ast.Dict]] = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Dict) and any(
                    isinstance(k, ast.Constant) and k.value == "type"
                    and isinstance(v, ast.Constant) and v.value == "http.response.start"
                    for k, v in zip(node.keys, node.values, strict=True)):
                found.append((fn.name, node))
    return found


def test_only_the_stamping_helpers_send_an_error_status() -> None:
    seen = set()
    offenders = []
    for path in sorted(RUNTIME.rglob("*.py")):
        rel = path.relative_to(RUNTIME).as_posix()
        for fn, node in _starts(ast.parse(path.read_text(encoding="utf-8"))):
            seen.add((rel, fn))
            status = next((v for k, v in zip(node.keys, node.values, strict=True)
                           if isinstance(k, ast.Constant) and k.value == "status"), None)
            literal_ok = isinstance(status, ast.Constant) and status.value == 200
            if not literal_ok and (rel, fn) not in STAMPING:
                offenders.append(f"{rel}:{node.lineno} in {fn}()")
    assert not offenders, ("these send a non-200 start without x-should-retry; use "
                           f"responses.send_bytes: {offenders}")
    assert STAMPING <= seen  # the allowed senders still exist (the test is not stale)
