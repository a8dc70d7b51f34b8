"""Response healing: make a model's almost-JSON answer parse, and say what was done.

Local models asked for JSON often answer with the JSON wrapped in a Markdown
fence, with a sentence before or after it, or cut off by ``max_tokens``.  Before
the ``json``/``json_schema`` verifiers judge an answer, :func:`heal_json` tries,
in order, and stops at the first text that parses:

1. the text as it is (the common case costs one ``orjson.loads``);
2. ``fence``    - the body of the first ```` ``` ```` fence (``json`` or no language);
3. ``trim``     - the span from the first ``{``/``[`` to its matching closer,
                  dropping prose around it;
4. ``close``    - a truncated document closed: an open string is closed, a
                  dangling ``,``/``:``/key is cut back to the last complete member,
                  and the open brackets are closed in order.  Only structure is
                  added - no value is invented - so the result is a prefix of
                  what the model meant.

``Healed.steps`` names what was applied (it goes into the trace, the request log
and ``X-Router-Response-Tags``); ``Healed.text`` is what the client gets when
healing made the answer valid.  The function never raises and is linear in the
length of the text (the closing step tries at most ``MAX_CUTS`` cut points).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

#: how many cut points (from the end) the closing step tries before giving up
MAX_CUTS: Final = 12
_FENCE: Final = re.compile(r"```[ \t]*(?:json|JSON|json5|javascript|js)?[ \t]*\r?\n(.*?)(?:```|\Z)",
                           re.DOTALL)
_CLOSER: Final = {"{": "}", "[": "]"}
_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class Healed:
    """The outcome of healing: the text to use, whether it parses, and what was done."""

    text: str
    ok: bool
    steps: tuple[str, ...] = ()
    value: Any = None

    @property
    def changed(self) -> bool:
        return bool(self.steps)


def _parse(text: str) -> Any:
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError, ValueError, RecursionError):
        return _MISSING


def heal_json(text: str) -> Healed:
    """Try to turn ``text`` into valid JSON (see the module docstring).  Never raises."""
    value = _parse(text)
    if value is not _MISSING:
        return Healed(text, True, (), value)
    steps: list[str] = []
    body = text
    m = _FENCE.search(body)
    if m is not None:
        body = m.group(1)
        steps.append("fence")
        value = _parse(body)
        if value is not _MISSING:
            return Healed(body.strip(), True, tuple(steps), value)
    start = _first_open(body)
    if start < 0:
        return Healed(text, False, ())
    end = _matching_close(body, start)
    if end >= 0:
        candidate = body[start:end + 1]
        value = _parse(candidate)
        if value is not _MISSING:
            if candidate != body.strip():
                steps.append("trim")
            return Healed(candidate, True, tuple(steps), value)
        return Healed(text, False, ())  # complete but broken inside: not ours to guess
    if start > 0 and body[:start].strip():
        steps.append("trim")
    closed = _close(body[start:])
    if closed is not None:
        value = _parse(closed)
        if value is not _MISSING:
            steps.append("close")
            return Healed(closed, True, tuple(steps), value)
    return Healed(text, False, ())


def _first_open(text: str) -> int:
    a, b = text.find("{"), text.find("[")
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)


def _matching_close(text: str, start: int) -> int:
    """Index of the bracket closing the one at ``start`` (strings respected), or -1."""
    depth = 0
    in_str = False
    esc = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i
            if depth < 0:
                return -1
    return -1


def _close(text: str) -> str | None:
    """Close a truncated JSON document that starts with ``{`` or ``[``, or None."""
    stack: list[str] = []
    in_str = False
    esc = False
    # cut points: (index to cut at, the closers needed there); a cut right after an
    # opening bracket or right before a comma leaves a complete prefix
    cuts: list[tuple[int, str]] = []
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append(_CLOSER[ch])
            cuts.append((i + 1, "".join(reversed(stack))))
        elif ch in "}]":
            if not stack or stack[-1] != ch:
                return None  # mismatched: not a truncation
            stack.pop()
            if not stack:
                return None  # complete before the end: trailing garbage, not ours
        elif ch == ",":
            cuts.append((i, "".join(reversed(stack))))
        if len(cuts) > 4 * MAX_CUTS:
            del cuts[: 2 * MAX_CUTS]  # only the last few are ever tried
    if not stack:
        return None
    closers = "".join(reversed(stack))
    tries: list[str] = []
    if in_str:
        head = text[:-1] if esc else text
        tries.append(head + '"' + closers)
    else:
        tries.append(text.rstrip().rstrip(",") + closers)
    for cut, need in reversed(cuts[-MAX_CUTS:]):
        tries.append(text[:cut].rstrip().rstrip(",") + need)
    for candidate in tries:
        if _parse(candidate) is not _MISSING:
            return candidate
    return None
