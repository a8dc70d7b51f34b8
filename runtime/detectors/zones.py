"""Where in a text the detectors should look: cheap C-level scans for candidate zones.

Python's regex engine scans at roughly 4 ns per character when a pattern does
not start with a literal, so running a dozen detector regexes over a 512 KB
prompt would take tens of milliseconds.  Instead the text is mapped once through
``str.translate`` to a *shape* (all digits become ``0``, separators ``.``), the
shape is searched with ``str.find`` for literals every candidate must contain
(``00.00``, ``000000`` ...), and the regexes run only inside small windows around
those hits (``finditer(text, start, end)``; look-behinds still see the real text).
"""

from __future__ import annotations

import re
import string
from typing import Final

Window = tuple[int, int]


def translation_table(mapping: dict[str, str], size: int = 256) -> str:
    """A ``str.translate`` table as a string: ``table[ord(c)]``, ``c`` itself if unmapped.

    Faster than the dict of ``str.maketrans``: a dict raises and swallows a KeyError
    for each unmapped character, a string answers every index below ``size``; past
    its end the IndexError leaves the character as it is, as a dict miss does.
    """
    size = max([size, *(ord(c) + 1 for c in mapping)])
    return "".join(mapping.get(chr(i), chr(i)) for i in range(size))


_DIGIT_SHAPE: Final = translation_table(
    {**{c: "0" for c in string.digits}, **{c: "." for c in " .()/-"}}
)
# Every phone, card, SSN, national ID and IBAN contains one of these in the shape;
# "0.0.0" catches IPv4 addresses with one-digit octets (10.0.0.1, 8.8.8.8).
_NUMERIC_NEEDLES: Final = ("00.00", "000000", "0.0.0")
_IPV6_NEEDLES: Final = ("::", "0:0")
_SPACE: Final = re.compile(r"\s")
_TOKEN_SHAPE: Final = translation_table(
    {c: ("a" if c in string.ascii_letters + string.digits + "_-" else " ")
     for c in map(chr, range(128))}
)
#: A secret's body is a run of at least this many [A-Za-z0-9_-] characters.
MIN_RUN: Final = 16
_RUN: Final = "a" * MIN_RUN


def merge(windows: list[Window]) -> list[Window]:
    """Sorted, non-overlapping windows covering the same characters."""
    if len(windows) < 2:
        return windows
    windows.sort()
    out = [windows[0]]
    for s, e in windows[1:]:
        ps, pe = out[-1]
        if s <= pe:
            out[-1] = (ps, max(pe, e))
        else:
            out.append((s, e))
    return out


def _end_at_space(text: str, end: int) -> int:
    # A window must not cut a token in two: a cut number could pass a check it fails whole.
    if end >= len(text):
        return len(text)
    m = _SPACE.search(text, end, end + 160)
    return m.start() if m is not None else end


def around(text: str, hits: list[int], before: int, after: int) -> list[Window]:
    """Merged windows ``[hit - before, hit + after]``, ending at whitespace."""
    return merge([
        (max(0, h - before), _end_at_space(text, h + after)) for h in hits
    ])


def find_all(hay: str, needle: str, limit: int = 4096) -> list[int]:
    """Start offsets of ``needle`` in ``hay`` (at most ``limit`` of them)."""
    out: list[int] = []
    i = hay.find(needle)
    while i >= 0 and len(out) < limit:
        out.append(i)
        i = hay.find(needle, i + len(needle))
    return out


def digit_shape(text: str) -> str:
    """``text`` with every ASCII digit as ``0`` and `` .()/-`` as ``.`` (same length)."""
    return text.translate(_DIGIT_SHAPE)


def numeric_windows(text: str, shape: str | None = None) -> list[Window]:
    """Windows around digit groups long enough to be a phone, card, ID or IBAN."""
    shape = digit_shape(text) if shape is None else shape
    hits: list[int] = []
    for needle in _NUMERIC_NEEDLES:
        hits += find_all(shape, needle)
    return around(text, hits, 48, 64)


def ipv6_windows(text: str, shape: str | None = None) -> list[Window]:
    """Windows around ``::`` and digit:digit, which every IPv6 candidate we check has."""
    hits: list[int] = []
    if ":" not in text:
        return []
    hits += find_all(text, "::")
    shape = digit_shape(text) if shape is None else shape
    hits += find_all(shape, "0:0")
    return around(text, hits, 40, 44)


def char_windows(text: str, ch: str, before: int, after: int) -> list[Window]:
    """Windows around each occurrence of ``ch`` (a memchr-speed scan)."""
    return around(text, find_all(text, ch), before, after) if ch in text else []


def token_runs(text: str, limit: int = 8192) -> list[Window]:
    """Runs of at least ``MIN_RUN`` characters from [A-Za-z0-9_-]: where keys live."""
    shape = text.translate(_TOKEN_SHAPE)
    out: list[Window] = []
    i = shape.find(_RUN)
    while i >= 0 and len(out) < limit:
        j = shape.find(" ", i + MIN_RUN)
        j = len(shape) if j < 0 else j
        out.append((i, j))
        i = shape.find(_RUN, j)
    return out
