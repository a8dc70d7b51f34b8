"""Redaction for stored prompts and answers: secrets and PII never reach the log.

Uses the classifier's own detectors (``interlock.runtime.detectors``): every
span a secret or PII detector reports is replaced by ``[redacted:<detector>]``.
The detectors report a bounded number of findings per pass, so redaction runs
again on its own output until a pass finds nothing; a text that still has
findings after ``MAX_ROUNDS`` passes is withheld entirely rather than stored
half-redacted.  This runs in the request log's writer process, never on the
request path.
"""

from __future__ import annotations

from typing import Any, Final

from interlock.runtime.canonical import CanonicalRequest
from interlock.runtime.detectors.finding import Finding
from interlock.runtime.detectors.pii import detect_pii
from interlock.runtime.detectors.secrets import detect_secrets

MAX_ROUNDS: Final = 64
WITHHELD: Final = "[withheld: too many sensitive values to redact]"


def redact(text: str) -> str:
    """``text`` with every detected secret and PII value replaced by a marker."""
    for _ in range(MAX_ROUNDS):
        findings = detect_secrets(text) + detect_pii(text)
        if not findings:
            return text
        text = _replace(text, findings)
    return WITHHELD


def _replace(text: str, findings: list[Finding]) -> str:
    spans = sorted((f.start, f.end, f.detector) for f in findings)
    merged: list[tuple[int, int, str]] = []
    for start, end, name in spans:
        if merged and start < merged[-1][1]:
            s, e, n = merged[-1]
            merged[-1] = (s, max(e, end), n)
        else:
            merged.append((start, end, name))
    out: list[str] = []
    pos = 0
    for start, end, name in merged:
        out.append(text[pos:start])
        out.append(f"[redacted:{name}]")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def prompt_messages(req: CanonicalRequest, *, scrub: bool = True) -> list[dict[str, Any]]:
    """The request's text, message by message (system first), each redacted.

    Images are noted, not stored; tool calls keep their name only.  ``scrub=False``
    leaves the text as it is, for a caller that redacts each ``content`` itself later
    (the request log's writer process does, before anything is stored).
    """
    clean = redact if scrub else _as_is
    out: list[dict[str, Any]] = []
    if req.system:
        out.append({"role": "system", "content": clean(req.system)})
    for m in req.messages:
        pieces: list[str] = []
        for p in m.parts:
            if p.type in ("text", "tool_result", "thinking"):
                pieces.append(p.text)
            elif p.type == "image":
                pieces.append("[image]")
            elif p.type == "tool_call":
                pieces.append(f"[tool call {p.name or ''}]")
        out.append({"role": m.role, "content": clean("".join(pieces))})
    for text in req.inputs:
        out.append({"role": "input", "content": clean(text)})
    return out


def _as_is(text: str) -> str:
    return text
