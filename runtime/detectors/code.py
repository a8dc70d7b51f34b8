"""The code detector: fenced blocks and code-like line density.

Used twice: as the ``code`` privacy category (profiles where "code counts as
private") and as a cue for ``task=code`` and for complexity (code size).
Excerpts describe the code (``fenced python block, 12 lines``), never quote it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from interlock.runtime.detectors.finding import MAX_FINDINGS_PER_DETECTOR, Finding

# Substrings that mark one code-like line each (statement ends, block openers,
# indented bodies, keywords).  Counted with str.count, which runs in C: a regex
# anchored at every line start costs several times more on a large paste.
_CODE_MARKS: Final = (
    ";\n", "{", "}", "\n    ", "\n\t", "def ", "return ", "import ", "function ", "=>",
)
_FENCE_LANG: Final = re.compile(r"[A-Za-z0-9_+#.-]{0,20}")
_PROSE_FENCE_LANGS: Final = frozenset({"", "text", "txt", "plain", "plaintext", "markdown", "md"})


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """How much of a text is code."""

    fenced: tuple[tuple[int, int, str], ...]  # (start, end, language) per fenced block
    code_lines: int  # code-like lines outside and inside fences
    lines: int
    fenced_lines: int

    @property
    def has_fence(self) -> bool:
        return bool(self.fenced)

    @property
    def has_code_fence(self) -> bool:
        """A fence whose info string names a programming language."""
        return any(lang.lower() not in _PROSE_FENCE_LANGS for _, _, lang in self.fenced)

    @property
    def dense(self) -> bool:
        """Unfenced code: at least 3 code-like lines making up a third of the lines."""
        return self.code_lines >= 3 and self.code_lines * 3 >= self.lines

    @property
    def is_code(self) -> bool:
        return self.has_fence and (self.has_code_fence or self.code_lines >= 2) or self.dense

    @property
    def size_lines(self) -> int:
        """Lines of code, for complexity: fenced lines, else the code-like ones."""
        return max(self.fenced_lines, self.code_lines)


#: Code-like lines are counted in at most this many characters from each end.
SAMPLE: Final = 4000
#: What ``analyze_code`` finds in a short text with no newline and no code mark; the
#: record is frozen, so one shared instance serves every such text.
_ONE_PROSE_LINE: Final = CodeInfo((), 0, 1, 0)


def analyze_code(text: str) -> CodeInfo:
    """Fences anywhere in ``text``; code-like line density in its head and tail.

    Sampling keeps the line scan bounded on huge prompts: a 512 KB paste is
    judged by its first and last few KB, and any fence anywhere still counts.
    """
    if (len(text) <= 2 * SAMPLE and "\n" not in text and ";" not in text and "{" not in text
            and "(" not in text and ">" not in text and "`" not in text and "~" not in text):
        # The usual one-line question: no fence and no code mark (``_maybe_code`` is
        # False); one-character tests (memchr) stand for "=>", "```" and "~~~".
        return _ONE_PROSE_LINE
    fenced: list[tuple[int, int, str]] = []
    fenced_lines = 0
    # A one-character test runs at memchr speed, a three-character search far slower.
    if ("`" in text and "```" in text) or ("~" in text and "~~~" in text):
        pos = 0
        while len(fenced) < 64:
            start, marker = _next_fence(text, pos)
            if start < 0:
                break
            lang_m = _FENCE_LANG.match(text, start + 3)
            lang = lang_m.group() if lang_m else ""
            close = text.find(marker, start + 3 + len(lang))
            end = len(text) if close < 0 else close + 3
            fenced.append((start, end, lang))
            fenced_lines += text.count("\n", start, end)
            pos = end
    sample = text if len(text) <= 2 * SAMPLE else text[:SAMPLE] + "\n" + text[-SAMPLE:]
    code_lines = sum(sample.count(mark) for mark in _CODE_MARKS) if _maybe_code(sample) else 0
    lines = sample.count("\n") + 1
    code_lines = min(code_lines, lines)
    return CodeInfo(tuple(fenced), code_lines, lines, fenced_lines)


def _next_fence(text: str, pos: int) -> tuple[int, str]:
    a = text.find("```", pos)
    b = text.find("~~~", pos)
    if a < 0:
        return b, "~~~"
    if b < 0 or a < b:
        return a, "```"
    return b, "~~~"


def _maybe_code(text: str) -> bool:
    # Most code marks need one of these; a one-line question usually has none.
    return "\n" in text or ";" in text or "{" in text or "(" in text or "=>" in text


def detect_code(text: str, info: CodeInfo | None = None) -> list[Finding]:
    """One finding per fenced block (or one for dense unfenced code)."""
    info = info if info is not None else analyze_code(text)
    if not info.is_code:
        return []
    out = [
        Finding("code", "code_fence", s, e, f"fenced {lang or 'untagged'} block, "
                f"{text.count(chr(10), s, e)} lines")
        for s, e, lang in info.fenced[:MAX_FINDINGS_PER_DETECTOR]
    ]
    if not out:
        out.append(Finding("code", "code_density", 0, len(text),
                           f"{info.code_lines} code-like lines of {info.lines}"))
    return out
