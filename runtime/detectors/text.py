"""Task cues and complexity markers: what a prompt asks for, read from its words.

The lexicon is fixed and weighted; a text is lower-cased, punctuation becomes
spaces, and the set of its words is intersected with the cue words (one C-level
set operation).  Multi-word phrases are only looked for when their anchor word
is present.  Long texts are read through a head and a tail window, because the
instruction sits at the start or the end of a prompt, not in the pasted middle.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Final

from interlock.runtime.detectors.zones import translation_table
from interlock.runtime.signals import Task

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
# Frozensets, not the dicts: ``set.intersection(dict)`` walks every key of the dict,
# while an intersection of two sets walks the smaller one (the few words present).
_WORD_KEYS: Final = frozenset(_WORD_INDEX)
_ANCHORS: Final = frozenset(_PHRASES_BY_ANCHOR)
_CUE_WORDS: Final = _WORD_KEYS | _ANCHORS
_TO_SPACE: Final = translation_table({c: " " for c in string.punctuation + "\u2019\u201c\u201d"})

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
    low = " " + (text if len(text) <= 2 * WINDOW else window(text)).lower()
    words = low.translate(_TO_SPACE).split()
    present = _ALL_WORDS.intersection(words)
    if present:  # most short prompts have a cue word or two; many have none
        add = cues.add
        cue_words = present & _WORD_KEYS
        if cue_words:
            for w in sorted(cue_words):
                for task, wt in _WORD_INDEX[w]:
                    add(task, wt * weight, f"{w}@{where}")
        anchors = present & _ANCHORS
        if anchors:
            for anchor in sorted(anchors):
                for phrase, task, wt in _PHRASES_BY_ANCHOR[anchor]:
                    if phrase in low:
                        add(task, wt * weight, f"'{phrase}'@{where}")
    if where == "user" and words:
        lead = _LEAD_VERBS.get(words[0])
        if lead is not None:
            cues.add(lead, LEAD_BONUS, f"leading '{words[0]}'")
    if markers:
        if present:
            cues.reasoning_markers += len(_REASONING_MARKERS.intersection(present))
            if "step" in present or "carefully" in present:
                cues.reasoning_markers += ("step by step" in low) + ("think carefully" in low)
            for w in present.intersection(_STEP_WORDS):
                cues.steps += words.count(w)
            if "also" in present:
                cues.steps += low.count("and also")
        if "\n" in low and ("\n-" in low or "\n*" in low or "." in low or ")" in low):
            cues.list_items += len(_LIST_ITEM.findall(low))
