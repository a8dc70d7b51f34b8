"""A frozen copy of the classifier and its detectors as they were before issue 6.

Not a test module of its own (it has no tests): ``test_classify_perf_equal`` runs
the live ``Classifier`` and this copy side by side and requires identical output.
Do not edit it to follow later changes: its only job is to be the old behaviour.
The code below is runtime/detectors/{zones,code,text,pii,secrets}.py and
runtime/classify.py, concatenated (their top-level names do not collide);
checksums.py and finding.py, which the change left alone, are imported.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import ipaddress
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import orjson
from interlock.runtime.canonical import CanonicalRequest

# runtime/detectors/checksums.py and finding.py did not change with the new classifier:
# the frozen code uses them as they are
from interlock.runtime.detectors.checksums import (  # noqa: E402
    bsn_ok,
    dni_letter,
    iban_ok,
    insee_key,
    luhn_ok,
    nino_prefix_ok,
    ssn_ok,
    verhoeff_ok,
)
from interlock.runtime.detectors.finding import (  # noqa: E402
    MAX_FINDINGS_PER_DETECTOR,
    Finding,
    is_placeholder,
    mask_email,
    mask_secret,
    mask_tail,
    shannon_entropy,
)
from interlock.runtime.signals import (
    CAPABILITY_BITS,
    Complexity,
    Modality,
    Sensitivity,
    Task,
    cell_key,
)
from interlock.runtime.table import ClassifierConfig, TagRule

# -------------------- frozen runtime/detectors/zones.py
Window = tuple[int, int]

_DIGIT_SHAPE: Final = str.maketrans(
    {**{c: "0" for c in string.digits}, **{c: "." for c in " .()/-"}}
)
# Every phone, card, SSN, national ID and IBAN contains one of these in the shape;
# "0.0.0" catches IPv4 addresses with one-digit octets (10.0.0.1, 8.8.8.8).
_NUMERIC_NEEDLES: Final = ("00.00", "000000", "0.0.0")
_IPV6_NEEDLES: Final = ("::", "0:0")
_SPACE: Final = re.compile(r"\s")
_TOKEN_SHAPE: Final = str.maketrans(
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


# -------------------- frozen runtime/detectors/code.py
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


def analyze_code(text: str) -> CodeInfo:
    """Fences anywhere in ``text``; code-like line density in its head and tail.

    Sampling keeps the line scan bounded on huge prompts: a 512 KB paste is
    judged by its first and last few KB, and any fence anywhere still counts.
    """
    fenced: list[tuple[int, int, str]] = []
    fenced_lines = 0
    if "```" in text or "~~~" in text:
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


# -------------------- frozen runtime/detectors/text.py
WINDOW: Final = 3000  # characters read from each end of a long text

_CUES: Final[dict[Task, dict[str, int]]] = {
    "code": {
        "code": 2, "function": 2, "bug": 2, "debug": 3, "refactor": 3, "implement": 2,
        "compile": 2, "compiler": 2, "python": 2, "javascript": 2, "typescript": 2, "java": 2,
        "golang": 2, "kotlin": 2, "rust": 1, "sql": 2, "regex": 2, "script": 1, "class": 1,
        "method": 1, "api": 1, "endpoint": 1, "traceback": 3, "exception": 2, "stacktrace": 3,
        "segfault": 3, "npm": 2, "dockerfile": 2, "bash": 2, "pytest": 3, "unittest": 3,
        "git": 2, "variable": 1, "snippet": 2, "lint": 2, "syntax": 1, "html": 2, "css": 2,
        "programming": 2, "coding": 2, "codebase": 3, "repository": 1, "async": 1,
    },
    "reasoning": {
        "prove": 3, "proof": 3, "theorem": 3, "lemma": 3, "why": 1, "reasoning": 2,
        "logic": 2, "puzzle": 3, "riddle": 3, "solve": 2, "calculate": 2, "derive": 3,
        "equation": 2, "math": 2, "probability": 2, "integral": 3, "deduce": 3,
        "analyze": 1, "analyse": 1, "compare": 1, "tradeoffs": 1, "paradox": 2,
    },
    "summarize": {
        "summarize": 4, "summarise": 4, "summary": 3, "tldr": 4, "recap": 3, "condense": 3,
        "gist": 2, "synopsis": 3, "shorten": 2, "outline": 1, "abstract": 1,
    },
    "extract": {
        "extract": 4, "extraction": 3, "parse": 2, "entities": 2, "fields": 1, "classify": 2,
        "categorize": 2, "structured": 2, "json": 1, "csv": 1, "schema": 1, "invoice": 1,
    },
    "creative": {
        "poem": 4, "poetry": 4, "haiku": 4, "sonnet": 4, "limerick": 4, "story": 3,
        "stories": 3, "lyrics": 4, "song": 3, "novel": 2, "fiction": 3, "fantasy": 2,
        "plot": 2, "screenplay": 4, "creative": 3, "imagine": 1, "slogan": 3, "tagline": 3,
        "joke": 3, "rhyme": 3, "verse": 2, "fairy": 2, "tale": 2, "character": 1,
    },
    "translate": {"translate": 5, "translation": 4, "translated": 3, "translator": 3},
}

LANGUAGES: Final = (
    "english", "french", "spanish", "german", "italian", "portuguese", "dutch", "russian",
    "chinese", "mandarin", "japanese", "korean", "arabic", "hindi", "turkish", "polish",
    "swedish", "greek", "hebrew", "vietnamese", "ukrainian", "czech", "danish", "finnish",
    "norwegian", "indonesian", "thai", "latin",
)

# (anchor word, phrase, task, weight): the phrase is searched only if the anchor is a word.
_PHRASES: Final[tuple[tuple[str, str, Task, int], ...]] = (
    ("function", "write a function", "code", 3),
    ("test", "unit test", "code", 2),
    ("trace", "stack trace", "code", 3),
    ("request", "pull request", "code", 2),
    ("step", "step by step", "reasoning", 3),
    ("carefully", "think carefully", "reasoning", 2),
    ("work", "show your work", "reasoning", 3),
    ("why", "explain why", "reasoning", 2),
    ("dr", "tl;dr", "summarize", 4),
    ("points", "key points", "summarize", 2),
    ("points", "main points", "summarize", 2),
    ("sentence", "in one sentence", "summarize", 2),
    ("sentences", "in a few sentences", "summarize", 2),
    ("up", "sum up", "summarize", 3),
    ("out", "pull out", "extract", 2),
    ("json", "as json", "extract", 2),
    ("json", "in json", "extract", 2),
    ("json", "return json", "extract", 2),
    ("entities", "named entities", "extract", 3),
    ("poem", "write a poem", "creative", 3),
    ("story", "short story", "creative", 3),
    ("story", "write a story", "creative", 3),
    ("upon", "once upon a time", "creative", 3),
) + tuple(
    (lang, f" {prep} {lang}", "translate", weight)  # " to french" is not "into french"
    for lang in LANGUAGES
    for prep, weight in (("into", 4), ("to", 2), ("from", 2))
)

#: A leading imperative that names the task outright ("Summarize ...", "Translate ...").
_LEAD_VERBS: Final[dict[str, Task]] = {
    "summarize": "summarize", "summarise": "summarize", "tldr": "summarize",
    "translate": "translate", "extract": "extract", "parse": "extract",
    "prove": "reasoning", "solve": "reasoning", "calculate": "reasoning", "derive": "reasoning",
    "debug": "code", "refactor": "code", "implement": "code", "fix": "code",
    "compose": "creative",
}
LEAD_BONUS: Final = 3

_PHRASES_BY_ANCHOR: Final[dict[str, tuple[tuple[str, Task, int], ...]]] = {
    anchor: tuple((p, t, w) for a, p, t, w in _PHRASES if a == anchor)
    for anchor in {a for a, *_ in _PHRASES}
}
_WORD_INDEX: Final[dict[str, tuple[tuple[Task, int], ...]]] = {
    w: tuple((t, cues[w]) for t, cues in _CUES.items() if w in cues)
    for w in {w for cues in _CUES.values() for w in cues}
}
_CUE_WORDS: Final = frozenset(_WORD_INDEX) | frozenset(a for a, *_ in _PHRASES)
_TO_SPACE: Final = str.maketrans({c: " " for c in string.punctuation + "\u2019\u201c\u201d"})

_REASONING_MARKERS: Final = frozenset({
    "prove", "derive", "theorem", "rigorous", "rigorously", "thoroughly", "comprehensive",
    "detailed", "analyze", "analyse", "compare", "design", "architecture", "tradeoffs",
    "optimize", "evaluate", "justify", "proof",
})
# Words that chain steps ("then", "finally"); counted only when present at all.
_STEP_WORDS: Final = frozenset({"then", "finally", "afterwards", "next", "additionally"})
# One set intersection finds every interesting word at once.
_ALL_WORDS: Final = _CUE_WORDS | _REASONING_MARKERS | _STEP_WORDS | {"also"}
_LIST_ITEM: Final = re.compile(r"(?m)^[ \t]{0,3}(?:\d{1,2}[.)]|[-*])[ \t]")


@dataclass(slots=True)
class Cues:
    """Task scores with the cues that produced them, plus complexity markers."""

    scores: dict[str, int] = field(default_factory=dict)
    hits: dict[str, list[str]] = field(default_factory=dict)
    reasoning_markers: int = 0
    steps: int = 0
    list_items: int = 0

    def add(self, task: str, weight: int, why: str) -> None:
        self.scores[task] = self.scores.get(task, 0) + weight
        self.hits.setdefault(task, []).append(why)


def window(text: str) -> str:
    """The head and tail of a long text (the whole text if it is short)."""
    if len(text) <= 2 * WINDOW:
        return text
    return text[:WINDOW] + "\n" + text[-WINDOW:]


def read_cues(cues: Cues, text: str, *, weight: int, where: str, markers: bool) -> None:
    """Add ``text``'s task cues (×``weight``) and, if ``markers``, its complexity markers."""
    if not text:
        return
    low = " " + window(text).lower()
    words = low.translate(_TO_SPACE).split()
    present = _ALL_WORDS.intersection(words)
    for w in sorted(present.intersection(_WORD_INDEX)):
        for task, wt in _WORD_INDEX.get(w, ()):
            cues.add(task, wt * weight, f"{w}@{where}")
    for anchor in sorted(present.intersection(_PHRASES_BY_ANCHOR)):
        for phrase, task, wt in _PHRASES_BY_ANCHOR[anchor]:
            if phrase in low:
                cues.add(task, wt * weight, f"'{phrase}'@{where}")
    if where == "user" and words:
        lead = _LEAD_VERBS.get(words[0])
        if lead is not None:
            cues.add(lead, LEAD_BONUS, f"leading '{words[0]}'")
    if markers:
        cues.reasoning_markers += len(_REASONING_MARKERS.intersection(present))
        if "step" in present or "carefully" in present:
            cues.reasoning_markers += ("step by step" in low) + ("think carefully" in low)
        for w in present.intersection(_STEP_WORDS):
            cues.steps += words.count(w)
        if "also" in present:
            cues.steps += low.count("and also")
        if "\n" in low and ("\n-" in low or "\n*" in low or "." in low or ")" in low):
            cues.list_items += len(_LIST_ITEM.findall(low))


# -------------------- frozen runtime/detectors/pii.py
def _matches(regex: re.Pattern[str], text: str, windows: list[Window]) -> Iterator[re.Match[str]]:
    for start, end in windows:
        yield from regex.finditer(text, start, end)

# --------------------------------------------------------------------------- e-mail

_EMAIL: Final = re.compile(
    r"(?<![\w.%+-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24})(?![\w-])"
)
_DOC_DOMAINS: Final = frozenset({"example.com", "example.org", "example.net", "localhost"})
_DOC_SUFFIXES: Final = (".example", ".test", ".invalid", ".localhost",
                        ".example.com", ".example.org", ".example.net")
_FILE_TLDS: Final = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "pdf", "ico"})


def is_documentation_domain(domain: str) -> bool:
    """RFC 2606 / 6761 names reserved for documentation and testing."""
    d = domain.lower().rstrip(".")
    return d in _DOC_DOMAINS or d.endswith(_DOC_SUFFIXES)


def detect_emails(text: str) -> list[Finding]:
    out: list[Finding] = []
    for m in _matches(_EMAIL, text, char_windows(text, "@", 66, 260)):
        local, domain = m.group(1), m.group(2)
        if is_documentation_domain(domain) or domain.rsplit(".", 1)[1].lower() in _FILE_TLDS:
            continue
        out.append(Finding("pii", "email", m.start(), m.end(), mask_email(local, domain)))
        if len(out) >= MAX_FINDINGS_PER_DETECTOR:
            break
    return out


# --------------------------------------------------------------------------- phones

# A candidate: optional + or (, digits with single separators; the grouping is
# validated in Python.  Not preceded or followed by more digits, letters or dots.
_PHONE: Final = re.compile(
    r"(?<![\w+.\-/])(?:\+|\(?)\d[\d ().\-/]{5,20}\d(?![\w]|[.\-/]\d)"
)
_PHONE_SPLIT: Final = re.compile(r"[ ().\-/]+")


def _phone_ok(s: str) -> bool:
    if "  " in s or ".." in s or "--" in s:
        return False
    groups = [g for g in _PHONE_SPLIT.split(s.lstrip("+")) if g]
    digits = "".join(groups)
    n = len(digits)
    if s.startswith("+"):
        # E.164: country code never starts with 0, at most 15 digits in all.
        return 8 <= n <= 15 and digits[0] != "0" and (len(groups) == 1 or len(groups[0]) <= 4)
    if len(groups) < 2 or "." in s and s.count(".") != len(groups) - 1:
        return False
    sizes = [len(g) for g in groups]
    # NANP: (NXX) NXX-XXXX, optional leading 1.
    if sizes[0] == 1 and groups[0] == "1":
        sizes, groups = sizes[1:], groups[1:]
    if sizes == [3, 3, 4] and groups[0][0] in "23456789":
        return True
    # Trunk-prefix national numbers (UK, DE, FR, ...): 0 then 9-11 more digits in groups.
    return (
        digits[0] == "0" and digits[1] != "0" and 10 <= n <= 12
        and all(2 <= k <= 8 for k in sizes)
    )


def detect_phones(text: str, windows: list[Window] | None = None) -> list[Finding]:
    out: list[Finding] = []
    windows = numeric_windows(text) if windows is None else windows
    for m in _matches(_PHONE, text, windows):
        s = m.group()
        if _phone_ok(s):
            out.append(Finding("pii", "phone", m.start(), m.end(), mask_tail(s, 2)))
            if len(out) >= MAX_FINDINGS_PER_DETECTOR:
                break
    return out


# --------------------------------------------------------------------------- national IDs

_SSN: Final = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_NINO: Final = re.compile(
    r"(?<![\w])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?!\w)"
)
_DNI: Final = re.compile(r"(?<![\w-])([XYZ]\d{7}|\d{8})-?([A-Z])(?!\w)")
_AADHAAR: Final = re.compile(
    r"(?<![\w-])(?<!\d )([2-9]\d{3})([ -]?)(\d{4})\2(\d{4})(?![\w-]|[ -]\d)"
)
_AADHAAR_CUE: Final = re.compile(r"(?i)aadhaa?r|uidai")
_BSN: Final = re.compile(r"(?<![\w.-])(\d{4})\.?(\d{2})\.?(\d{3})(?![\w-]|\.\d)")
_BSN_CUE: Final = re.compile(r"(?i)\bbsn\b|burgerservicenummer|sofi-?nummer")
_NIR: Final = re.compile(
    r"(?<![\w])([1278]) ?(\d{2}) ?(0[1-9]|1[0-2]|[2-9]\d) ?(\d{2}|2[ABab]) ?(\d{3}) ?(\d{3})"
    r" ?(\d{2})(?!\w)"
)


def _cue_before(cue: re.Pattern[str], text: str, start: int, window: int = 40) -> bool:
    return cue.search(text, max(0, start - window), start) is not None


def detect_national_ids(text: str, windows: list[Window] | None = None) -> list[Finding]:
    """US SSN, UK NI number, Spanish DNI/NIE, Indian Aadhaar, Dutch BSN, French NIR."""
    out: list[Finding] = []
    w = numeric_windows(text) if windows is None else windows

    def add(name: str, m: re.Match[str]) -> None:
        out.append(Finding("pii", name, m.start(), m.end(), mask_tail(m.group(), 2)))

    for m in _matches(_SSN, text, w):
        if ssn_ok(m.group(1), m.group(3), m.group(4)):
            add("us_ssn", m)
    for m in _matches(_NINO, text, w):
        if nino_prefix_ok(m.group(1)):
            add("uk_nino", m)
    for m in _matches(_DNI, text, w):
        num = m.group(1)
        if num[0] in "XYZ":  # NIE: X/Y/Z stand for 0/1/2
            num = str("XYZ".index(num[0])) + num[1:]
        if dni_letter(int(num)) == m.group(2):
            add("es_dni", m)
    for m in _matches(_AADHAAR, text, w):
        digits = m.group(1) + m.group(3) + m.group(4)
        grouped = m.group(2) != ""
        if verhoeff_ok(digits) and (grouped or _cue_before(_AADHAAR_CUE, text, m.start())):
            add("in_aadhaar", m)
    for m in _matches(_BSN, text, w):
        if bsn_ok(m.group(1) + m.group(2) + m.group(3)) and _cue_before(_BSN_CUE, text, m.start()):
            add("nl_bsn", m)
    for m in _matches(_NIR, text, w):
        body = "".join(m.group(i) for i in range(1, 7))
        if insee_key(body) == int(m.group(7)):
            add("fr_nir", m)
    out.sort(key=lambda f: f.start)
    return out[:MAX_FINDINGS_PER_DETECTOR]


# --------------------------------------------------------------------------- cards

_CARD: Final = re.compile(r"(?<![\d\-.])\d(?:[ -]?\d){12,18}(?![\d])(?!-\d)")


def _card_brand_ok(d: str) -> bool:
    """Known issuer prefixes (IIN ranges) and their lengths."""
    n = len(d)
    two, four = int(d[:2]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16  # Mastercard
    if two in (34, 37):
        return n == 15  # American Express
    if d.startswith("6011") or 644 <= int(d[:3]) <= 649 or two == 65:
        return 16 <= n <= 19  # Discover
    if 3528 <= four <= 3589:
        return 16 <= n <= 19  # JCB
    if 300 <= int(d[:3]) <= 305 or two in (36, 38, 39):
        return 14 <= n <= 19  # Diners Club
    if two == 62:
        return 16 <= n <= 19  # UnionPay
    return (two == 50 or 56 <= two <= 69) and 12 <= n <= 19  # Maestro


def detect_cards(text: str, windows: list[Window] | None = None) -> list[Finding]:
    out: list[Finding] = []
    windows = numeric_windows(text) if windows is None else windows
    for m in _matches(_CARD, text, windows):
        s = m.group()
        seps = {c for c in s if not c.isdigit()}
        if len(seps) > 1:
            continue
        digits = s.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _card_brand_ok(digits) and luhn_ok(digits):
            out.append(Finding("pii", "payment_card", m.start(), m.end(), mask_tail(s, 4)))
            if len(out) >= MAX_FINDINGS_PER_DETECTOR:
                break
    return out


# --------------------------------------------------------------------------- IBAN

_IBAN: Final = re.compile(r"(?<![\w])([A-Z]{2})(\d{2})((?: ?[A-Z0-9]){11,30})(?![\w])")
_IBAN_LENGTHS: Final = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22,
    "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18,
    "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26,
    "AE": 23, "SA": 24, "IL": 23, "BR": 29, "QA": 29, "UA": 29, "KZ": 20, "MU": 30,
}


def detect_ibans(text: str, windows: list[Window] | None = None) -> list[Finding]:
    out: list[Finding] = []
    windows = numeric_windows(text) if windows is None else windows
    for m in _matches(_IBAN, text, windows):
        iban = (m.group(1) + m.group(2) + m.group(3)).replace(" ", "")
        want = _IBAN_LENGTHS.get(m.group(1))
        if want is not None:
            if len(iban) < want:
                continue
            iban = iban[:want]  # a word may follow the last group without a space break
        if 15 <= len(iban) <= 34 and iban_ok(iban):
            out.append(Finding("pii", "iban", m.start(), m.end(), mask_tail(iban, 4)))
            if len(out) >= MAX_FINDINGS_PER_DETECTOR:
                break
    return out


# --------------------------------------------------------------------------- IP addresses

_IPV4: Final = re.compile(
    r"(?<![\w.:/-])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w]|\.\d)"
)
_VERSION_CUE: Final = re.compile(
    r"(?i)(?:\bversion|\bver|\brelease|\bbuild|\bv|[=<>~^@])[\s:]{0,2}\Z"
)
_IPV6: Final = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_DOC_V4: Final = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
)
_DOC_V6: Final = ipaddress.ip_network("2001:db8::/32")


def _v4_ok(octets: tuple[str, ...]) -> bool:
    if any(len(o) > 1 and o[0] == "0" for o in octets):
        return False  # 1.02.3.4 is a version or an ID, never written that way as an address
    values = [int(o) for o in octets]
    if any(v > 255 for v in values) or values[0] in (0, 127, 255):
        return False
    addr = ipaddress.IPv4Address(".".join(octets))
    return not any(addr in net for net in _DOC_V4)


def detect_ips(
    text: str, windows: list[Window] | None = None, shape: str | None = None
) -> list[Finding]:
    out: list[Finding] = []
    shape = digit_shape(text) if shape is None else shape
    windows = numeric_windows(text, shape) if windows is None else windows
    if "." in text:
        for m in _matches(_IPV4, text, windows):
            if not _v4_ok(m.groups()):
                continue
            if _VERSION_CUE.search(text[max(0, m.start() - 10):m.start()]):
                continue
            out.append(Finding("pii", "ipv4", m.start(), m.end(), f"{m.group(1)}.x.x.x"))
            if len(out) >= MAX_FINDINGS_PER_DETECTOR:
                return out
    if ":" in text:
        for m in _matches(_IPV6, text, ipv6_windows(text, shape)):
            s = m.group()
            if sum(1 for g in s.split(":") if g) < 3:
                continue  # "a::b", "12:30" and slices are not addresses
            try:
                addr = ipaddress.IPv6Address(s)
            except ValueError:
                continue
            if addr.is_loopback or addr.is_unspecified or addr in _DOC_V6:
                continue
            out.append(Finding("pii", "ipv6", m.start(), m.end(), s.split(":", 1)[0] + ":..."))
            if len(out) >= MAX_FINDINGS_PER_DETECTOR:
                break
    return out


# --------------------------------------------------------------------------- all

# Every number-shaped candidate (phone, ID, card, IBAN, IPv4) needs an ASCII digit
# (the numeric needles all contain a "0" of the digit shape), and an IPv6 window
# needs a digit or "::".  A prompt with neither skips the translate and the scans.
_ASCII_DIGIT: Final = re.compile(r"[0-9]")


def detect_pii(text: str) -> list[Finding]:
    """Every PII finding in ``text``, ordered by detector then position."""
    out = detect_emails(text)
    if "::" not in text and _ASCII_DIGIT.search(text) is None:
        return out  # no numeric window and no IPv6 window: the rest would find nothing
    shape = digit_shape(text)  # one translate shared by every number-shaped detector
    windows = numeric_windows(text, shape)
    if windows:
        out += detect_phones(text, windows)
        out += detect_national_ids(text, windows)
        out += detect_cards(text, windows)
        out += detect_ibans(text, windows)
    out += detect_ips(text, windows, shape)
    return out


# -------------------- frozen runtime/detectors/secrets.py
class _KeyPattern(NamedTuple):
    name: str
    prefixes: tuple[str, ...]  # a token run must start with one of these
    regex: re.Pattern[str]
    shown: int  # at most this many leading characters (never past the body) are shown
    body_group: int  # the group holding the secret part, checked for placeholders


def _jwt_ok(m: re.Match[str]) -> bool:
    """The first part must decode to a JSON object naming an ``alg``."""
    head = m.group(1)
    try:
        raw = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):
        return False
    return isinstance(data, dict) and "alg" in data


_KEYS: Final[tuple[_KeyPattern, ...]] = (
    _KeyPattern("anthropic_key", ("sk-ant-",),
                re.compile(r"(?<![\w-])sk-ant-(?:[a-z]+\d\d-)?([A-Za-z0-9_-]{20,200})"), 16, 1),
    _KeyPattern("openai_key", ("sk-",),
                re.compile(r"(?<![\w-])sk-(?!ant-)(?:(?:proj|svcacct|admin|None)-)?"
                           r"([A-Za-z0-9_-]{20,200})"), 16, 1),
    _KeyPattern("aws_access_key_id", ("AKIA", "ASIA", "AGPA", "AIDA", "AROA"),
                re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA)([A-Z0-9]{16})(?![A-Z0-9])"),
                4, 1),
    _KeyPattern("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
                re.compile(r"(?<![\w])(?:gh[pousr]_([A-Za-z0-9]{30,251})|"
                           r"github_pat_([A-Za-z0-9_]{22,255}))(?![\w])"), 11, 0),
    _KeyPattern("slack_token", ("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"),
                re.compile(r"(?<![\w])xox[baprs]-([A-Za-z0-9-]{10,250})"), 5, 1),
    _KeyPattern("google_api_key", ("AIza",),
                re.compile(r"(?<![\w])AIza([0-9A-Za-z_-]{35})(?![\w-])"), 4, 1),
    _KeyPattern("stripe_key", ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
                re.compile(r"(?<![\w])(?:sk|rk)_(?:live|test)_([0-9A-Za-z]{16,247})"), 8, 1),
    _KeyPattern("jwt", ("eyJ",),
                re.compile(r"(?<![\w-])(eyJ[A-Za-z0-9_-]{8,2000})\.(eyJ[A-Za-z0-9_-]{2,8000})"
                           r"\.([A-Za-z0-9_-]{0,2000})(?![\w-])"), 3, 2),
)
_KEY_PREFIXES: Final = tuple(p for k in _KEYS for p in k.prefixes)

_AWS_SECRET: Final = re.compile(
    r"(?i)aws_secret_access_key[\"']?\s{0,4}[:=]\s{0,4}[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)
_SLACK_HOOK: Final = re.compile(
    r"https://hooks\.slack\.com/(?:services|workflows)/([A-Za-z0-9_/]{20,200})"
)
_PEM: Final = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]{1,12} ){0,4})PRIVATE KEY(?: BLOCK)?-----([\s\S]{0,200})"
)
# A real PEM body has long base64 runs, unlike "-----BEGIN PRIVATE KEY-----\n...".
_PEM_BODY: Final = re.compile(r"[A-Za-z0-9+/]{40}")


def _add(out: list[Finding], name: str, m: re.Match[str], excerpt: str) -> None:
    out.append(Finding("secrets", name, m.start(), m.end(), excerpt))


def _key_at(text: str, start: int, out: list[Finding]) -> bool:
    """Try every key pattern whose prefix the token run at ``start`` begins with."""
    for pat in _KEYS:
        if not text.startswith(pat.prefixes, start):
            continue
        m = pat.regex.match(text, start)
        if m is None:
            continue
        group = pat.body_group or (1 if m.group(1) is not None else 2)
        body = m.group(group)
        if is_placeholder(body) or "EXAMPLE" in body:
            continue
        if pat.name == "jwt" and not _jwt_ok(m):
            continue
        # Only the public prefix is shown (sk-proj-, AKIA, ghp_, eyJ), never the body.
        shown = min(pat.shown, m.start(group) - m.start())
        _add(out, pat.name, m, mask_secret(m.group()[:shown]))
        return True
    return False


# --------------------------------------------------------------------------- assignments

# Fragments of names that say "the value assigned to me is a credential".
_KEY_NAME_PARTS: Final = re.compile(r"key|secret|token|credential|auth|pass|pwd")
_NAME_REVERSED: Final = re.compile(r"[\w.-]{1,48}")
# After "pass" / "pwd": the rest of the name, the operator and the value.
_PW_TAIL: Final = re.compile(
    r"((?:word|wd|phrase)?)(?:[_.-][A-Za-z0-9_]{0,20})?([\"']?)[ \t]{0,3}(?:=|:=|:|=>)[ \t]{0,3}"
    r"([\"'`]?)([^\s\"'`,;<>]{1,512})"
)
_BEARER: Final = re.compile(r"(?i)bearer[ \t]{1,3}([A-Za-z0-9._~+/=-]{20,2048})")


def _value_is_code_reference(value: str, quoted: bool) -> bool:
    # ``password = user_input`` names a variable; ``password=hunter2`` is a value.
    if quoted:
        return False
    if "." in value and not any(c.isdigit() for c in value):
        return True  # attribute access: settings.db_password
    return "_" in value and value.islower() and not any(c.isdigit() for c in value)


def _high_entropy(value: str) -> bool:
    if len(value) < 16:
        return False
    h = shannon_entropy(value)
    mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    return h >= 4.0 or (mixed and h >= 3.2)


def _keyed_run(text: str, start: int, end: int, out: list[Finding]) -> None:
    """A high-entropy token run assigned to a key-like name (``api_key = "..."``)."""
    pre = text[max(0, start - 64):start].rstrip(" \t\"'`")
    if not pre or pre[-1] not in "=:>":
        return
    # Walk back over the operator (=, :, :=, =>) and quotes to the name before it,
    # without a backwards regex search (which would try every start position).
    pre = pre[:-1]
    if pre[-1:] in (":", "="):
        pre = pre[:-1]
    pre = pre.rstrip(" \t\"'")
    m = _NAME_REVERSED.match(pre[::-1])
    if m is None:
        return
    name = m.group()[::-1]
    low = name.lower()
    if _KEY_NAME_PARTS.search(low) is None:
        return
    value = text[start:end]
    if is_placeholder(value) or not _high_entropy(value):
        return
    name_start = max(0, start - 64) + len(pre) - len(name)
    out.append(Finding("secrets", "keyed_secret", name_start, end, mask_secret(name + "=")))


def _passwords(text: str, lower: str, out: list[Finding]) -> None:
    for name in ("pass", "pwd"):
        for pos in find_all(lower, name, 256):
            m = _PW_TAIL.match(text, pos + len(name))
            if m is None:
                continue
            if pos > 0 and lower[pos - 1].isalpha() and not m.group(1):
                continue  # "compass: ..." is not a password
            value, quoted = m.group(4), bool(m.group(3))
            if is_placeholder(value) or _value_is_code_reference(value, quoted):
                continue
            if not quoted and value.isalpha() and len(value) < 12:
                continue  # prose: "password: click reset" is one lower-case word
            key = text[pos:m.start(2)]
            out.append(Finding("secrets", "password_assignment", pos, m.end(),
                               mask_secret(key + "=")))


# --------------------------------------------------------------------------- URLs

_URL_CREDS: Final = re.compile(
    r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,20})://([^\s:/@]{1,128}):([^\s/@]{1,256})@([^\s/?#@]{1,253})"
)


def _url_credentials(text: str, out: list[Finding]) -> None:
    if "://" not in text:
        return
    for start, end in char_windows(text, "@", 420, 260):
        for m in _URL_CREDS.finditer(text, start, end):
            if not is_placeholder(m.group(3)):
                _add(out, "url_credentials", m, f"{m.group(1)}://***:[redacted]@{m.group(4)}")


# --------------------------------------------------------------------------- all

def detect_secrets(text: str) -> list[Finding]:
    """Every secret finding in ``text``: keys, tokens, private keys, passwords."""
    out: list[Finding] = []
    # Both checks read at most 64 characters before a run; a run seen before with the
    # same 64 characters in front (a repeated identifier in code) has the same outcome.
    seen: set[str] = set()
    for start, end in token_runs(text):
        context = text[max(0, start - 64):end]
        if context in seen:
            continue
        seen.add(context)
        if not (text.startswith(_KEY_PREFIXES, start) and _key_at(text, start, out)):
            _keyed_run(text, start, end, out)
    for pos in find_all(text, "-----BEGIN", 64):
        m = _PEM.match(text, pos)
        if m is not None and _PEM_BODY.search(m.group(2)) is not None:
            _add(out, "private_key", m, mask_secret(f"-----BEGIN {m.group(1)}PRIVATE KEY-----"))
    for pos in find_all(text, "hooks.slack.com", 64):
        m = _SLACK_HOOK.match(text, max(0, pos - 8))
        if m is not None and not is_placeholder(m.group(1)):
            _add(out, "slack_webhook", m, mask_secret("https://hooks.slack.com/"))
    lower = text.lower()
    for pos in find_all(lower, "secret_access_key", 64):
        m = _AWS_SECRET.search(text, max(0, pos - 4), pos + 120)
        if m is not None and not is_placeholder(m.group(1)) and "EXAMPLE" not in m.group(1):
            _add(out, "aws_secret_access_key", m, mask_secret("aws_secret_access_key="))
    _passwords(text, lower, out)
    for pos in find_all(lower, "bearer", 64):
        m = _BEARER.match(text, pos)
        if m is not None and not is_placeholder(m.group(1)) and _high_entropy(m.group(1)):
            _add(out, "bearer_token", m, mask_secret("Bearer "))
    _url_credentials(text, out)
    return _dedupe(out)


_GENERIC: Final = frozenset({"keyed_secret", "password_assignment", "bearer_token"})


def _dedupe(found: list[Finding]) -> list[Finding]:
    """Drop generic findings that overlap a specific one ("api_key = sk-..." is one key)."""
    if not found:
        return []  # the usual case: nothing to sort, cap or dedupe
    specific = [f for f in found if f.detector not in _GENERIC]
    generic: list[Finding] = []
    for f in found:
        if f.detector in _GENERIC and not any(
            f.start < s.end and s.start < f.end for s in specific + generic
        ):
            generic.append(f)
    result = specific + generic
    result.sort(key=lambda f: (f.start, f.detector))
    counts: dict[str, int] = {}
    capped: list[Finding] = []
    for f in result:
        counts[f.detector] = counts.get(f.detector, 0) + 1
        if counts[f.detector] <= MAX_FINDINGS_PER_DETECTOR:
            capped.append(f)
    return capped


# -------------------- frozen runtime/classify.py
#: Equal task scores are broken by this order (the more specific request first).
TASK_ORDER: Final[tuple[Task, ...]] = (
    "translate", "summarize", "extract", "code", "reasoning", "creative", "general",
)
TASK_THRESHOLD: Final = 3
IMAGE_TOKENS: Final = 765  # a high-detail 1024px image, roughly
NO_CLOUD_MARKERS: Final = ("#no_cloud", "#no-cloud")
_CODE_TOOL: Final = re.compile(
    r"(?i)code|exec|shell|bash|python|terminal|file|patch|git|compile|lint|repl|sql"
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a signal has its value: the detector or rule, where, and a masked excerpt."""

    signal: str
    value: str
    detector: str
    span: tuple[int, int] | None = None
    excerpt: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal, "value": self.value, "detector": self.detector,
            "span": list(self.span) if self.span is not None else None,
            "excerpt": self.excerpt, "note": self.note,
        }


@dataclass(slots=True)
class Classification:
    """The signals of one request and the evidence for each."""

    task: Task
    complexity: Complexity
    sensitivity: Sensitivity
    modality: Modality
    needs: int  # capability bits the request needs (tools/json/json_schema/vision/streaming)
    tokens: int  # prompt token estimate
    tags: list[str]
    evidence: list[Evidence]
    cell: str

    @property
    def private(self) -> bool:
        return self.sensitivity == "private"

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell, "task": self.task, "complexity": self.complexity,
            "sensitivity": self.sensitivity, "modality": self.modality,
            "needs": [n for n, bit in CAPABILITY_BITS.items() if self.needs & bit],
            "tokens": self.tokens, "tags": list(self.tags),
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True, slots=True)
class _Tag:
    rule: TagRule
    keywords: re.Pattern[str] | None  # searched in the lower-cased text
    patterns: tuple[re.Pattern[str], ...]


def _compile_tag(rule: TagRule) -> _Tag:
    kw = None
    if rule.keywords:
        words = sorted({k.lower() for k in rule.keywords if k}, key=lambda k: (-len(k), k))
        kw = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(k) for k in words) + r")(?!\w)")
    try:
        pats = tuple(re.compile(p) for p in rule.patterns)
    except re.error as exc:
        raise ValueError(f"classifier tag {rule.name!r}: bad pattern: {exc}") from exc
    return _Tag(rule, kw, pats)


class _Corpus:
    """Every text of a request joined once, with where each piece came from."""

    __slots__ = ("text", "starts", "labels")

    def __init__(self, pieces: list[tuple[str, str]]) -> None:
        self.starts: list[int] = []
        self.labels: list[str] = []
        pos = 0
        for label, piece in pieces:
            self.starts.append(pos)
            self.labels.append(label)
            pos += len(piece) + 1
        self.text = "\n".join(p for _, p in pieces)

    def locate(self, start: int, end: int) -> tuple[str, tuple[int, int]]:
        """The piece a span of the joined text is in, and the span within that piece."""
        i = max(0, bisect.bisect_right(self.starts, start) - 1)
        if not self.starts:
            return "", (start, end)
        base = self.starts[i]
        return self.labels[i], (start - base, end - base)


class Classifier:
    """A classifier for one ``ClassifierConfig``: tag regexes compiled once."""

    __slots__ = ("cfg", "_tags", "_pii", "_secrets", "_code", "_private_tags", "_public_note")

    def __init__(self, cfg: ClassifierConfig) -> None:
        self.cfg = cfg
        self._tags = tuple(_compile_tag(t) for t in cfg.tags)
        self._pii = "pii" in cfg.private_when
        self._secrets = "secrets" in cfg.private_when
        self._code = "code" in cfg.private_when
        self._private_tags = frozenset(
            c[4:] for c in cfg.private_when if c.startswith("tag:")
        )
        # the same for every public request of this config: built once, not per request
        checked = [c for c, on in (("pii", self._pii), ("secrets", self._secrets),
                                   ("code", self._code)) if on]
        self._public_note = "nothing found by " + (", ".join(checked) or "no detector")

    def classify(self, req: CanonicalRequest, *, header_private: bool = False) -> Classification:
        """Classify ``req``; ``header_private`` is the ``X-Router-Private`` header."""
        ev: list[Evidence] = []
        pieces: list[tuple[str, str]] = []
        images = 0
        user_text = ""
        system_text = req.system
        if req.system:
            pieces.append(("system", req.system))
        for i, msg in enumerate(req.messages):
            texts: list[str] = []
            for j, part in enumerate(msg.parts):
                if part.type == "image":
                    images += 1
                    continue
                t = (part.arguments or "") if part.type == "tool_call" else part.text
                if t:
                    pieces.append((f"messages[{i}]" if len(msg.parts) == 1
                                   else f"messages[{i}].parts[{j}]", t))
                    if part.type == "text":
                        texts.append(t)
            if msg.role == "user" and texts:
                user_text = "\n".join(texts)
            elif msg.role == "system" and texts:
                system_text = f"{system_text}\n{''.join(texts)}" if system_text else "".join(texts)
        for i, inp in enumerate(req.inputs):
            pieces.append((f"input[{i}]", inp))
        corpus = _Corpus(pieces)
        text = corpus.text

        # -- tokens and needs ------------------------------------------------------
        tool_chars = len(orjson.dumps([
            {"n": t.name, "d": t.description, "p": t.parameters} for t in req.tools
        ])) if req.tools else 0
        tokens = len(text) // 4 + 4 * len(req.messages) + images * IMAGE_TOKENS + tool_chars // 4
        ev.append(Evidence("tokens", str(tokens), "estimate",
                           note=f"{len(text)} chars/4, {len(req.messages)} messages, "
                                f"{images} images, {tool_chars} tool-definition chars"))
        needs = self._needs(req, images, ev)
        modality: Modality = "image" if images else "text"
        ev.append(Evidence("modality", modality, "parts", note=f"{images} image parts"))

        # -- tags ------------------------------------------------------------------
        fired = self._run_tags(text, corpus, ev)

        # -- task ------------------------------------------------------------------
        cues = Cues()
        read_cues(cues, user_text, weight=2, where="user", markers=True)
        read_cues(cues, system_text, weight=1, where="system", markers=False)
        code_w = analyze_code(window(user_text)) if user_text else None
        if code_w is not None and code_w.has_code_fence:
            cues.add("code", 4, "fenced code block")
        elif code_w is not None and code_w.is_code:
            cues.add("code", 3, "code-like lines")
        code_tools = [t.name for t in req.tools if _CODE_TOOL.search(t.name)]
        if code_tools:
            cues.add("code", 3, "code tools " + ",".join(code_tools[:3]))
        rf_type = req.response_format.get("type") if req.response_format else None
        if rf_type == "json_schema":
            cues.add("extract", 3, "response_format json_schema")
        elif rf_type == "json_object":
            cues.add("extract", 1, "response_format json_object")
        task = self._task(cues, fired, ev)

        # -- complexity --------------------------------------------------------------
        complexity = self._complexity(req, task, tokens, cues, code_w, fired, ev)

        # -- sensitivity -------------------------------------------------------------
        sensitivity = self._sensitivity(req, header_private, text, corpus, fired, ev)

        return Classification(
            task=task, complexity=complexity, sensitivity=sensitivity, modality=modality,
            needs=needs, tokens=tokens, tags=[t.rule.name for t in fired], evidence=ev,
            cell=cell_key(task, complexity, sensitivity, modality),
        )

    # ------------------------------------------------------------------ signals

    @staticmethod
    def _needs(req: CanonicalRequest, images: int, ev: list[Evidence]) -> int:
        needs = 0
        if req.tools:
            needs |= CAPABILITY_BITS["tools"]
            ev.append(Evidence("needs", "tools", "request", note=f"{len(req.tools)} tools"))
        rf_type = req.response_format.get("type") if req.response_format else None
        if rf_type in ("json_object", "json_schema"):
            needs |= CAPABILITY_BITS["json" if rf_type == "json_object" else "json_schema"]
            ev.append(Evidence("needs", str(rf_type), "request", note="response_format"))
        if images:
            needs |= CAPABILITY_BITS["vision"]
            ev.append(Evidence("needs", "vision", "request", note=f"{images} image parts"))
        if req.stream:
            needs |= CAPABILITY_BITS["streaming"]
            ev.append(Evidence("needs", "streaming", "request", note="stream: true"))
        return needs

    def _run_tags(self, text: str, corpus: _Corpus, ev: list[Evidence]) -> list[_Tag]:
        fired: list[_Tag] = []
        lower = text.lower() if any(t.keywords for t in self._tags) else ""
        for tag in self._tags:
            hit: tuple[int, int, str, str] | None = None
            if tag.keywords is not None:
                m = tag.keywords.search(lower)
                if m is not None:
                    hit = (m.start(), m.end(), m.group(), "keyword")
            if hit is None:
                for i, pat in enumerate(tag.patterns):
                    m = pat.search(text)
                    if m is not None:
                        hit = (m.start(), m.end(), "", f"pattern {i}")
                        break
            if hit is not None:
                fired.append(tag)
                label, span = corpus.locate(hit[0], hit[1])
                ev.append(Evidence("tag", tag.rule.name, f"tag:{tag.rule.name}", span,
                                   hit[2], f"{hit[3]} in {label}"))
        return fired

    @staticmethod
    def _task(cues: Cues, fired: list[_Tag], ev: list[Evidence]) -> Task:
        for tag in fired:
            if tag.rule.task is not None:
                ev.append(Evidence("task", tag.rule.task, f"tag:{tag.rule.name}",
                                   note="set by the tag"))
                return tag.rule.task
        best: Task = "general"
        best_score = 0
        for t in TASK_ORDER:
            score = cues.scores.get(t, 0)
            if score > best_score:
                best, best_score = t, score
        if best_score < TASK_THRESHOLD:
            best = "general"
        scored = sorted(cues.scores.items(), key=lambda kv: (-kv[1], TASK_ORDER.index(kv[0])))
        note = "; ".join(f"{t}={s}: {', '.join(cues.hits[t][:6])}" for t, s in scored[:3])
        ev.append(Evidence("task", best, "task_cues",
                           note=note or f"no cue reached {TASK_THRESHOLD}"))
        return best

    def _complexity(
        self, req: CanonicalRequest, task: Task, tokens: int, cues: Cues,
        code: CodeInfo | None, fired: list[_Tag], ev: list[Evidence],
    ) -> Complexity:
        for tag in fired:
            if tag.rule.complexity is not None:
                ev.append(Evidence("complexity", tag.rule.complexity, f"tag:{tag.rule.name}",
                                   note="set by the tag"))
                return tag.rule.complexity
        cfg = self.cfg
        notes: list[str] = [f"tokens~{tokens}"]
        points = 0
        if tokens > cfg.long_prompt_tokens:
            points += 4
            notes.append(f">{cfg.long_prompt_tokens} long")
        elif tokens > cfg.medium_prompt_tokens:
            points += 2
            notes.append(f">{cfg.medium_prompt_tokens} medium")
        if cues.reasoning_markers:
            points += min(2, cues.reasoning_markers)
            notes.append(f"reasoning markers={cues.reasoning_markers}")
        if task == "reasoning":
            points += 1
            notes.append("reasoning task")
        multi = (cues.list_items >= 3) + (cues.steps >= 2) + (cues.list_items >= 6)
        if multi:
            points += min(2, multi)
            notes.append(f"steps: {cues.list_items} list items, {cues.steps} step words")
        lines = code.size_lines if code is not None else 0
        if lines >= 40:
            points += 1 + (lines >= 150)
            notes.append(f"code lines={lines}")
        depth = len(req.messages)
        if depth >= 10:
            points += 1 + (depth >= 30)
            notes.append(f"depth={depth} messages")
        level: Complexity = "low" if points < 2 else "medium" if points < 4 else "high"
        ev.append(Evidence("complexity", level, "complexity",
                           note=f"points={points}: " + ", ".join(notes)))
        return level

    def _sensitivity(
        self, req: CanonicalRequest, header_private: bool, text: str, corpus: _Corpus,
        fired: list[_Tag], ev: list[Evidence],
    ) -> Sensitivity:
        before = len(ev)
        if req.private is True:
            ev.append(Evidence("sensitivity", "private", "flag:body", note="private: true"))
        if header_private:
            ev.append(Evidence("sensitivity", "private", "flag:header",
                               note="X-Router-Private: true"))
        for marker in NO_CLOUD_MARKERS:
            pos = text.find(marker)
            if pos >= 0:
                label, span = corpus.locate(pos, pos + len(marker))
                ev.append(Evidence("sensitivity", "private", "flag:no_cloud", span, marker,
                                   f"in {label}"))
        for tag in fired:
            name = tag.rule.name
            if tag.rule.private or name in self._private_tags:
                ev.append(Evidence("sensitivity", "private", f"tag:{name}",
                                   note="private tag" if tag.rule.private else "private_when"))
        if len(ev) > before:
            return "private"  # explicit: the detectors need not run
        findings: list[Finding] = []
        if self._pii:
            findings += detect_pii(text)
        if self._secrets:
            findings += detect_secrets(text)
        if self._code:
            findings += detect_code(text, analyze_code(text))
        for f in findings:
            label, span = corpus.locate(f.start, f.end)
            ev.append(Evidence("sensitivity", "private", f.detector, span, f.excerpt,
                               f"{f.category} in {label}"))
        if findings:
            return "private"
        ev.append(Evidence("sensitivity", "public", "detectors", note=self._public_note))
        return "public"


@functools.lru_cache(maxsize=8)
def classifier_for(cfg: ClassifierConfig) -> Classifier:
    """The ``Classifier`` of ``cfg``, built once per distinct config."""
    return Classifier(cfg)


def classify(
    req: CanonicalRequest, cfg: ClassifierConfig, *, header_private: bool = False
) -> Classification:
    """Classify ``req`` under ``cfg`` (see the module docstring for the signals)."""
    return classifier_for(cfg).classify(req, header_private=header_private)
