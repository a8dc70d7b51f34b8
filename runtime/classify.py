"""The classifier: a request's signals, and the evidence for each, without a model call.

``classify(req, cfg)`` reads a ``CanonicalRequest`` once and returns its task,
complexity, sensitivity, modality, needs (capability bits) and a token estimate,
and so the key of its decision-table cell.  It is deterministic (same request,
same answer) and linear in the size of the request: detectors are guarded by
cheap prefilters, and task cues read a bounded head/tail window.

* task       - weighted cue words and phrases from the last user message (×2) and
               the system prompt (×1), a leading imperative, code fences or dense
               code, code-ish tool names, ``response_format``; ties go by
               ``TASK_ORDER``; below ``TASK_THRESHOLD`` it is ``general``.
* complexity - token estimate against ``cfg.medium_prompt_tokens`` /
               ``cfg.long_prompt_tokens``, reasoning markers, multi-step
               instructions, code size, conversation depth.
* sensitivity - private on any explicit flag (body ``private: true``, the
               ``X-Router-Private`` header, ``#no_cloud`` in the text) or when a
               detector of a category listed in ``cfg.private_when`` fires
               (``pii``, ``secrets``, ``code``, ``tag:NAME``), or a private tag.
* tags       - ``cfg.tags``: keywords (case-insensitive, whole words) or regexes;
               a tag may also set the task or the complexity.

Build a ``Classifier(cfg)`` once (the runtime keeps it); ``classify()`` is the
same through a small cache keyed by the (frozen, hashable) config.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson
from interlock.runtime.canonical import CanonicalRequest
from interlock.runtime.detectors.code import analyze_code, detect_code
from interlock.runtime.detectors.finding import Finding
from interlock.runtime.detectors.pii import detect_pii
from interlock.runtime.detectors.secrets import detect_secrets
from interlock.runtime.detectors.text import WINDOW, Cues, read_cues, window
from interlock.runtime.signals import (
    CAPABILITY_BITS,
    Complexity,
    Modality,
    Sensitivity,
    Task,
    cell_key,
)
from interlock.runtime.table import ClassifierConfig, TagRule

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


# Where a piece of the joined text came from: (-1, 0) the system prompt, (i, -1) the only
# part of message i, (i, j) part j of message i, (-2, i) embeddings input i.  Kept as
# tuples and formatted only when a finding is located (most requests have none).
_PieceKey = tuple[int, int]
_SYSTEM_KEY: Final[_PieceKey] = (-1, 0)


def _label(key: _PieceKey) -> str:
    i, j = key
    if i == -1:
        return "system"
    if i == -2:
        return f"input[{j}]"
    return f"messages[{i}]" if j < 0 else f"messages[{i}].parts[{j}]"


class _Where:
    """Maps a span of the joined text to its piece; built only when something is found."""

    __slots__ = ("keys", "starts")

    def __init__(self, keys: list[_PieceKey], texts: list[str]) -> None:
        self.keys = keys
        self.starts: list[int] = []
        pos = 0
        for t in texts:  # the joined text has one "\n" between pieces
            self.starts.append(pos)
            pos += len(t) + 1

    def locate(self, start: int, end: int) -> tuple[str, tuple[int, int]]:
        """The piece's label, and the span within that piece."""
        if not self.starts:
            return "", (start, end)
        i = max(0, bisect.bisect_right(self.starts, start) - 1)
        base = self.starts[i]
        return _label(self.keys[i]), (start - base, end - base)


#: Equal task scores are broken by this rank (TASK_ORDER's order).
_TASK_RANK: Final[dict[str, int]] = {t: i for i, t in enumerate(TASK_ORDER)}
# Evidence records that do not depend on the request: frozen, so shared by every result.
_TEXT_MODALITY: Final = Evidence("modality", "text", "parts", note="0 image parts")
#: Low-complexity records kept per token count, for counts below this (bounded memory).
_LOW_MEMO: Final = 4096
_NO_TASK_CUE: Final = Evidence("task", "general", "task_cues",
                               note=f"no cue reached {TASK_THRESHOLD}")


class Classifier:
    """A classifier for one ``ClassifierConfig``: tag regexes compiled once.

    ``classify`` is on every request's path, so it reads the request in one pass,
    skips what a request cannot need (no tags configured, no tools, no fence or code
    mark, no cue word), and reuses the evidence records that never change.
    """

    __slots__ = ("cfg", "_tags", "_pii", "_secrets", "_code", "_private_tags",
                 "_public_note", "_public", "_tag_keywords", "_long", "_medium", "_low")

    def __init__(self, cfg: ClassifierConfig) -> None:
        self.cfg = cfg
        self._tags = tuple(_compile_tag(t) for t in cfg.tags)
        self._tag_keywords = any(t.keywords for t in self._tags)
        self._long = cfg.long_prompt_tokens
        self._medium = cfg.medium_prompt_tokens
        self._low: dict[int, Evidence] = {}  # see _complexity
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
        self._public = Evidence("sensitivity", "public", "detectors", note=self._public_note)

    def classify(self, req: CanonicalRequest, *, header_private: bool = False) -> Classification:
        """Classify ``req``; ``header_private`` is the ``X-Router-Private`` header."""
        # -- the texts, in one pass: every piece (for the detectors), the last user
        # message and the system prompt (for the task cues), the image count
        texts: list[str] = []
        keys: list[_PieceKey] = []
        images = 0
        user_text = ""
        system_text = req.system
        if system_text:
            texts.append(system_text)
            keys.append(_SYSTEM_KEY)
        for i, msg in enumerate(req.messages):
            parts = msg.parts
            if len(parts) == 1:  # the usual message: one part, labelled messages[i]
                part = parts[0]
                kind = part.type
                if kind == "image":
                    images += 1
                    continue
                t = (part.arguments or "") if kind == "tool_call" else part.text
                if t:
                    texts.append(t)
                    keys.append((i, -1))
                    if kind == "text":
                        if msg.role == "user":
                            user_text = t
                        elif msg.role == "system":
                            system_text = f"{system_text}\n{t}" if system_text else t
                continue
            own: list[str] = []
            for j, part in enumerate(parts):
                kind = part.type
                if kind == "image":
                    images += 1
                    continue
                t = (part.arguments or "") if kind == "tool_call" else part.text
                if t:
                    texts.append(t)
                    keys.append((i, j))
                    if kind == "text":
                        own.append(t)
            if msg.role == "user" and own:
                user_text = "\n".join(own)
            elif msg.role == "system" and own:
                system_text = f"{system_text}\n{''.join(own)}" if system_text else "".join(own)
        for i, inp in enumerate(req.inputs):
            texts.append(inp)
            keys.append((-2, i))
        text = "\n".join(texts)

        # -- tokens and needs ------------------------------------------------------
        tools = req.tools
        tool_chars = len(orjson.dumps([
            {"n": t.name, "d": t.description, "p": t.parameters} for t in tools
        ])) if tools else 0
        n_messages = len(req.messages)
        tokens = len(text) // 4 + 4 * n_messages + images * IMAGE_TOKENS + tool_chars // 4
        ev = [Evidence("tokens", str(tokens), "estimate",
                       note=f"{len(text)} chars/4, {n_messages} messages, "
                            f"{images} images, {tool_chars} tool-definition chars")]
        rf = req.response_format
        rf_type = rf.get("type") if rf else None
        needs = self._needs(req, rf_type, images, ev) \
            if tools or rf_type or images or req.stream else 0
        if images:
            modality: Modality = "image"
            ev.append(Evidence("modality", "image", "parts", note=f"{images} image parts"))
        else:
            modality = "text"
            ev.append(_TEXT_MODALITY)

        # -- tags ------------------------------------------------------------------
        fired = self._run_tags(text, keys, texts, ev) if self._tags else []

        # -- task ------------------------------------------------------------------
        cues = Cues()
        read_cues(cues, user_text, weight=2, where="user", markers=True)
        if system_text:
            read_cues(cues, system_text, weight=1, where="system", markers=False)
        code_lines = 0
        if user_text:
            code_w = analyze_code(user_text if len(user_text) <= 2 * WINDOW
                                  else window(user_text))
            if code_w.fenced or code_w.code_lines:  # else neither a cue nor a size
                if code_w.has_code_fence:
                    cues.add("code", 4, "fenced code block")
                elif code_w.is_code:
                    cues.add("code", 3, "code-like lines")
                code_lines = code_w.size_lines
        if tools:
            code_tools = [t.name for t in tools if _CODE_TOOL.search(t.name)]
            if code_tools:
                cues.add("code", 3, "code tools " + ",".join(code_tools[:3]))
        if rf_type == "json_schema":
            cues.add("extract", 3, "response_format json_schema")
        elif rf_type == "json_object":
            cues.add("extract", 1, "response_format json_object")
        if fired or cues.scores:
            task = self._task(cues, fired, ev)
        else:  # no tag and no cue: the usual short question
            task = "general"
            ev.append(_NO_TASK_CUE)

        # -- complexity --------------------------------------------------------------
        complexity = self._complexity(n_messages, task, tokens, cues, code_lines, fired, ev)

        # -- sensitivity -------------------------------------------------------------
        sensitivity = self._sensitivity(req, header_private, text, keys, texts, fired, ev)

        return Classification(
            task=task, complexity=complexity, sensitivity=sensitivity, modality=modality,
            needs=needs, tokens=tokens, tags=[t.rule.name for t in fired] if fired else [],
            evidence=ev,
            cell=cell_key(task, complexity, sensitivity, modality),
        )

    # ------------------------------------------------------------------ signals

    @staticmethod
    def _needs(req: CanonicalRequest, rf_type: Any, images: int, ev: list[Evidence]) -> int:
        needs = 0
        if req.tools:
            needs |= CAPABILITY_BITS["tools"]
            ev.append(Evidence("needs", "tools", "request", note=f"{len(req.tools)} tools"))
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

    def _run_tags(self, text: str, keys: list[_PieceKey], texts: list[str],
                  ev: list[Evidence]) -> list[_Tag]:
        fired: list[_Tag] = []
        where: _Where | None = None
        lower = text.lower() if self._tag_keywords else ""
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
                where = where or _Where(keys, texts)
                label, span = where.locate(hit[0], hit[1])
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
        scores = cues.scores
        if not scores:
            ev.append(_NO_TASK_CUE)
            return "general"
        best: Task = "general"
        best_score = 0
        for t in TASK_ORDER:
            score = scores.get(t, 0)
            if score > best_score:
                best, best_score = t, score
        if best_score < TASK_THRESHOLD:
            best = "general"
        scored = sorted(scores.items(), key=lambda kv: (-kv[1], _TASK_RANK[kv[0]]))
        note = "; ".join(f"{t}={s}: {', '.join(cues.hits[t][:6])}" for t, s in scored[:3])
        ev.append(Evidence("task", best, "task_cues",
                           note=note or f"no cue reached {TASK_THRESHOLD}"))
        return best

    def _complexity(
        self, depth: int, task: Task, tokens: int, cues: Cues, lines: int,
        fired: list[_Tag], ev: list[Evidence],
    ) -> Complexity:
        for tag in fired:
            if tag.rule.complexity is not None:
                ev.append(Evidence("complexity", tag.rule.complexity, f"tag:{tag.rule.name}",
                                   note="set by the tag"))
                return tag.rule.complexity
        if (tokens <= self._medium and tokens <= self._long and not cues.reasoning_markers
                and task != "reasoning" and cues.list_items < 3 and cues.steps < 2
                and lines < 40 and depth < 10):
            # No point at all, the usual short prompt: its record depends on the token
            # count alone, so it is built once per count (below _LOW_MEMO counts).
            low = self._low.get(tokens)
            if low is None:
                low = Evidence("complexity", "low", "complexity",
                               note=f"points=0: tokens~{tokens}")
                if 0 <= tokens < _LOW_MEMO:
                    self._low[tokens] = low
            ev.append(low)
            return "low"
        notes: list[str] = [f"tokens~{tokens}"]
        points = 0
        if tokens > self._long:
            points += 4
            notes.append(f">{self._long} long")
        elif tokens > self._medium:
            points += 2
            notes.append(f">{self._medium} medium")
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
        if lines >= 40:
            points += 1 + (lines >= 150)
            notes.append(f"code lines={lines}")
        if depth >= 10:
            points += 1 + (depth >= 30)
            notes.append(f"depth={depth} messages")
        level: Complexity = "low" if points < 2 else "medium" if points < 4 else "high"
        ev.append(Evidence("complexity", level, "complexity",
                           note=f"points={points}: " + ", ".join(notes)))
        return level

    def _sensitivity(
        self, req: CanonicalRequest, header_private: bool, text: str,
        keys: list[_PieceKey], texts: list[str], fired: list[_Tag], ev: list[Evidence],
    ) -> Sensitivity:
        before = len(ev)
        if req.private is True:
            ev.append(Evidence("sensitivity", "private", "flag:body", note="private: true"))
        if header_private:
            ev.append(Evidence("sensitivity", "private", "flag:header",
                               note="X-Router-Private: true"))
        # Both markers start with "#no": a memchr for "#" and one search rule them out.
        if "#" in text and "#no" in text:
            for marker in NO_CLOUD_MARKERS:
                pos = text.find(marker)
                if pos >= 0:
                    label, span = _Where(keys, texts).locate(pos, pos + len(marker))
                    ev.append(Evidence("sensitivity", "private", "flag:no_cloud", span,
                                       marker, f"in {label}"))
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
        if not findings:
            ev.append(self._public)
            return "public"
        where = _Where(keys, texts)
        for f in findings:
            label, span = where.locate(f.start, f.end)
            ev.append(Evidence("sensitivity", "private", f.detector, span, f.excerpt,
                               f"{f.category} in {label}"))
        return "private"


@functools.lru_cache(maxsize=8)
def classifier_for(cfg: ClassifierConfig) -> Classifier:
    """The ``Classifier`` of ``cfg``, built once per distinct config."""
    return Classifier(cfg)


def classify(
    req: CanonicalRequest, cfg: ClassifierConfig, *, header_private: bool = False
) -> Classification:
    """Classify ``req`` under ``cfg`` (see the module docstring for the signals)."""
    return classifier_for(cfg).classify(req, header_private=header_private)
