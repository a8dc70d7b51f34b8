"""Verifiers: cheap, deterministic checks of an answer before the client gets it.

The cell's profile picks them (``cell.policy.verifiers``); each returns a
:class:`Verdict` (verifier, ok, reason).  A failed verdict lets the forwarder
escalate the request to the cell's escalation candidate (see ``forward.py``).

=============  =============================================================
empty          no text and no tool call
thin           less text than the task needs (``MIN_CHARS`` by task, × 1/2/4 by
               complexity); answers with tool calls or JSON are never thin
truncated      ``finish_reason: length`` (the model hit max_tokens)
refusal        a refusal phrase near the start (English, French, Spanish,
               German, Italian, Portuguese, Dutch, Russian, Chinese, Japanese),
               or ``finish_reason: content_filter``
json           JSON was asked for (``response_format``) and the answer - after
               healing, see ``heal.py`` - does not parse (json_object: is not an
               object)
json_schema    the parsed answer fails the request's ``json_schema`` (jsonschema,
               Draft 2020-12; one validator per distinct schema, cached)
tool_call      a tool call names a tool the request did not offer, its arguments
               are not a JSON object or fail the tool's ``parameters`` schema, or
               ``tool_choice`` required a call and none came
code_syntax    code tasks only: a closed ```` ```python ```` block that ``ast`` cannot
               parse, or a ```` ```json ```` block that is not JSON
confidence     the model's own ``confidence: 0.x`` line is below the cell's
               ``policy.confidence_threshold`` (the request asked for the line,
               see :func:`ask_confidence`; the line is stripped from the answer).
               No line: not judged (ok)
=============  =============================================================

Response classifiers (:func:`response_tags`) run on every final answer whatever
the verifiers: ``refusal``, ``truncated``, ``content_filter`` (and the forwarder
adds ``healed`` / ``escalated``); they go into ``X-Router-Response-Tags``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from interlock.runtime.canonical import CanonicalRequest, CanonicalResponse, Message, Part
from interlock.runtime.heal import heal_json
from interlock.runtime.table import Policy

VERIFIERS: Final = ("empty", "thin", "truncated", "refusal", "json", "json_schema",
                    "tool_call", "code_syntax", "confidence")
#: minimum answer length (characters, stripped) per task at low complexity
MIN_CHARS: Final[dict[str, int]] = {
    "general": 2, "translate": 1, "extract": 2, "summarize": 40, "code": 20,
    "reasoning": 20, "creative": 40,
}
_CX_FACTOR: Final = {"low": 1, "medium": 2, "high": 4}
DEFAULT_CONFIDENCE: Final = 0.6
CONFIDENCE_INSTRUCTION: Final = (
    "After your answer, add one last line of the form `confidence: 0.x` - a number "
    "between 0 and 1 saying how sure you are that the answer is correct and complete."
)
_FENCE_BLOCK: Final = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)\n?[ \t]*```",
                                 re.DOTALL)
_PYTHON: Final = frozenset({"python", "py", "python3", "py3"})
_CONFIDENCE_LINE: Final = re.compile(
    r"^[ \t>*_`-]*confidence[ \t*_`]*[:=][ \t*_`]*([01](?:\.\d+)?|\.\d+|\d{1,3}(?:\.\d+)?"
    r"[ \t]*%)[ \t*_`.]*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One verifier's judgement of one answer."""

    verifier: str
    ok: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"verifier": self.verifier, "ok": self.ok, "reason": self.reason}


@dataclass(slots=True)
class Checked:
    """Every verdict on one answer, plus what healing/stripping changed."""

    #: one ``{"verifier", "ok", "reason"}`` per verifier, in the policy's order - the
    #: form the diagnostics record, built once while checking
    results: list[dict[str, Any]]
    #: the text the client should get instead (healed JSON, confidence line removed)
    text: str | None = None
    healed: tuple[str, ...] = ()
    confidence: float | None = None
    #: every verdict passed
    ok: bool = True
    #: ``is_refusal`` of the answer's text when the refusal verifier computed it (the
    #: response tags reuse it while the text is unchanged), else None
    refused: bool | None = None

    @property
    def verdicts(self) -> list[Verdict]:
        return [Verdict(r["verifier"], r["ok"], r["reason"]) for r in self.results]

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.ok]

    def apply(self, resp: CanonicalResponse) -> None:
        """Give the response the healed / stripped text (when there is one)."""
        if self.text is not None:
            resp.text = self.text


# --------------------------------------------------------------------------- helpers


_HEAD: Final = 600  # refusals come first: only the head of an answer is searched

# The phrases that open a refusal, each with its cues: literal text every match of
# the phrase contains (one of them), as rare as the phrase allows.  The text is
# lower-cased first, apostrophes normalised to '.  A phrase's regex is searched only
# when one of its cues is in the text: most branches start with \b, which keeps the
# regex engine from skipping ahead, so a search costs ~10 ns per character and
# branch (~150 µs for 600 characters through all of them); a substring test costs
# far less.  tests/unit/test_verify_perf_refusal.py checks the cues against the
# phrases and the result against the single-regex form.
_PHRASES: Final[tuple[tuple[tuple[str, ...], str], ...]] = (
    # English
    (("m sorry", "m afraid"),
     r"\bi(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can't|cannot|can not|won't|am unable"
     r"|'m unable|am not able|'m not able)"),
    (("can", "won't", "will not"),
     r"^\W*(?:sorry,? )?i (?:can't|cannot|can not|won't|will not) (?:help|assist|comply"
     r"|provide|do that|fulfil|fulfill|answer|support|create|write|generate|share|engage)"),
    (("as an ai",),
     r"\bas an ai(?: language model| assistant)?,? i (?:can't|cannot|am not able|don't|do not)"),
    (("m not able to", "m unable to"),
     r"\bi(?:'m| am) (?:not able|unable) to (?:help|assist|comply|provide|fulfil|fulfill"
     r"|answer|do that|support)"),
    (("must respectfully", "must decline", "must refuse"),
     r"\bi must (?:respectfully )?(?:decline|refuse)"),
    # French
    (("je ne",),
     r"\bje ne (?:peux|suis pas en mesure d[e'])\s?(?:pas )?(?:vous |t')?(?:aider|répondre"
     r"|fournir|faire|assister)"),
    (("je ne",), r"\b(?:désolé|je suis désolé)e?,? (?:mais )?je ne (?:peux|suis pas)"),
    # Spanish
    (("no puedo",), r"\blo siento,? (?:pero )?no puedo"),
    (("no puedo",),
     r"\bno puedo (?:ayudar|ayudarte|ayudarle|proporcionar|asistir|cumplir|responder)"),
    # German
    (("ich kann",), r"\bes tut mir leid,? aber ich kann"),
    (("ich kann",), r"\bich kann (?:ihnen |dir )?(?:dabei |damit |hierbei |hier )?nicht helfen"),
    # Italian
    (("non posso",), r"\bmi dispiace,? ma non posso"),
    (("non posso",),
     r"\bnon posso (?:aiutarti|aiutarla|aiutare|fornire|assisterti|rispondere)"),
    # Portuguese
    (("não posso",), r"\b(?:desculpe|lamento),? mas não posso"),
    (("não posso",), r"\bnão posso (?:ajudar|fornecer|atender|responder)"),
    # Dutch
    (("ik kan",), r"\bhet spijt me,? maar ik kan"),
    (("ik kan",), r"\bik kan (?:je |u )?(?:daar |hier |hierbij )?niet (?:mee )?helpen"),
    # Russian
    (("я не могу",), r"(?:извините|простите|к сожалению),? (?:но )?я не могу"),
    (("я не могу",), r"\bя не могу (?:помочь|выполнить|предоставить)"),
    # Chinese, Japanese
    (("我无法", "我不能"), r"(?:抱歉|对不起|很抱歉)[，,]?\s*我(?:无法|不能)"),
    (("我无法", "我不能"), r"我(?:无法|不能)(?:帮助|帮忙|提供|协助|回答)"),
    (("申し訳",),
     r"申し訳(?:ありません|ございません)が[、,]?.{0,40}?(?:できません|お手伝いできません"
     r"|お答えできません)"),
)
#: every phrase in one regex: the definition of a refusal
_REFUSAL: Final = re.compile("|".join(p for _, p in _PHRASES), re.IGNORECASE)


def _by_cue() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(cue, the regex of every phrase with that cue), one entry per distinct cue."""
    phrases: dict[str, list[str]] = {}
    for cues, pattern in _PHRASES:
        for cue in cues:
            phrases.setdefault(cue, []).append(pattern)
    return tuple((cue, re.compile("|".join(ps), re.IGNORECASE)) for cue, ps in phrases.items())


_BY_CUE: Final = _by_cue()
# The coarse cue filter the refusal check began with: a short text without any of
# these is not a refusal (one C-level scan; a long text nearly always contains "can").
_REFUSAL_CUES: Final = (
    "sorry", "afraid", "can", "won't", "will not", "as an ai", "able", "must", "je ne",
    "no puedo", "ich kann", "non posso", "não posso", "ik kan", "я не могу", "我无法",
    "我不能", "申し訳",
)
_ANY_CUE: Final = re.compile("|".join(re.escape(c) for c in _REFUSAL_CUES))
_SHORT: Final = 200
# Characters that a lower-cased text can hold and that re.IGNORECASE matches to a
# letter of a cue (dotless ı ~ i, long ſ ~ s, Cyrillic ᲂ ~ о): with one of them the
# phrase can match where its cue is not a substring, so such a text takes the full
# regex (a unit test derives this set from every Unicode character).
_FOLDS: Final = re.compile("[\u0131\u017f\u1c82]")


def is_refusal(text: str) -> bool:
    """A refusal phrase near the start of ``text`` (``_REFUSAL`` searches the head)."""
    head = text[:_HEAD].replace("\u2019", "'").lower()
    if len(head) <= _SHORT and _ANY_CUE.search(head) is None:
        return False
    if not head.isascii() and _FOLDS.search(head) is not None:
        return _ANY_CUE.search(head) is not None and _REFUSAL.search(head) is not None
    for cue, phrases in _BY_CUE:
        if cue in head and phrases.search(head) is not None:
            return True
    return False


def response_tags(resp: CanonicalResponse, refused: bool | None = None) -> list[str]:
    """Response classifiers: what kind of answer this is (refusal, truncated...).

    ``refused``: ``is_refusal(resp.text)`` when the caller already knows it."""
    tags: list[str] = []
    finish = resp.finish_reason
    if finish == "content_filter":
        tags.append("content_filter")
    if resp.text and (is_refusal(resp.text) if refused is None else refused):
        tags.append("refusal")
    if finish == "length":
        tags.append("truncated")
    return tags


def json_requested(req: CanonicalRequest) -> str | None:
    """``json_object`` / ``json_schema`` when the request asked for JSON, else None."""
    rf = req.response_format
    kind = rf.get("type") if rf else None
    return kind if kind in ("json_object", "json_schema") else None


def request_schema(req: CanonicalRequest) -> dict[str, Any] | None:
    """The JSON Schema of a ``json_schema`` response format (OpenAI's shape)."""
    rf = req.response_format or {}
    spec = rf.get("json_schema")
    if isinstance(spec, dict):
        schema = spec.get("schema")
        if isinstance(schema, dict):
            return schema
    return None


@functools.lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Any:
    """A compiled validator per distinct schema (keyed by its canonical JSON)."""
    from jsonschema import validators

    schema = orjson.loads(schema_json)
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(schema: dict[str, Any], value: Any) -> str | None:
    """The first validation error of ``value`` against ``schema`` (None: valid).

    A schema that is itself invalid is reported as such (it is the request's fault,
    not the answer's, so the verdict passes with a note: see the callers)."""
    from jsonschema.exceptions import SchemaError

    try:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        validator = _validator(key)
    except (SchemaError, TypeError, orjson.JSONEncodeError):
        return None
    error = next(iter(validator.iter_errors(value)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message[:200]}"


def parse_confidence(text: str) -> tuple[float | None, str]:
    """The last ``confidence: x`` line of ``text`` (0-1) and the text without it."""
    last = None
    for m in _CONFIDENCE_LINE.finditer(text):
        last = m
    if last is None:
        return None, text
    raw = last.group(1).replace(" ", "").replace("\t", "")
    value = float(raw.rstrip("%"))
    if raw.endswith("%") or value > 1:
        value /= 100.0
    stripped = (text[: last.start()] + text[last.end():]).rstrip()
    return max(0.0, min(1.0, value)), stripped


def ask_confidence(req: CanonicalRequest) -> CanonicalRequest:
    """A copy of ``req`` that asks the model for a ``confidence: 0.x`` last line.

    The instruction is added to the system prompt of both the canonical request and
    the client's raw body, in the raw body's own API: a leading system message for a
    chat body (the openai wire forwards it), the top-level ``system`` for a Messages
    body (the anthropic wire forwards it; Anthropic answers a ``system`` role among
    the messages with a 400).  JSON and tool-calling requests are left alone: a
    trailing line would break them.
    """
    if json_requested(req) or req.tools:
        return req
    system = f"{req.system}\n\n{CONFIDENCE_INSTRUCTION}" if req.system else \
        CONFIDENCE_INSTRUCTION
    messages = req.messages
    raw = req.raw
    if req.system == "" and messages and messages[0].role == "system":
        # the surface kept the system prompt as a message: extend that one
        first = messages[0]
        messages = [Message("system", [*first.parts, Part("text", "\n\n" +
                                                           CONFIDENCE_INSTRUCTION)],
                            first.name), *messages[1:]]
        system = req.system
    if raw:
        raw = _raw_with_instruction(req.surface, raw)
    return dataclasses.replace(req, system=system, messages=messages, raw=raw)


def _raw_with_instruction(surface: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The client's body with the confidence instruction, for the wire that forwards it."""
    if surface == "messages":
        given = raw.get("system")
        if isinstance(given, list):  # text blocks (maybe with cache_control): one more
            return {**raw, "system": [*given, {"type": "text", "text": CONFIDENCE_INSTRUCTION}]}
        text = given if isinstance(given, str) and given else ""
        return {**raw, "system": f"{text}\n\n{CONFIDENCE_INSTRUCTION}" if text
                else CONFIDENCE_INSTRUCTION}
    if surface == "chat" and isinstance(raw.get("messages"), list):
        return {**raw, "messages": [{"role": "system", "content": CONFIDENCE_INSTRUCTION},
                                    *raw["messages"]]}
    # the other surfaces' bodies are not forwarded as they came (a legacy completions
    # body is, but it has a prompt, not a system prompt, to add to)
    return raw


def wants_confidence(policy: Policy) -> bool:
    return "confidence" in policy.verifiers


# --------------------------------------------------------------------------- verifiers


class _Run:
    """One verification pass: the answer, the request and the shared parse results."""

    __slots__ = ("resp", "req", "task", "complexity", "policy", "text", "json_kind",
                 "healed_text", "healed", "json_value", "json_ok", "confidence", "refused")

    def __init__(self, resp: CanonicalResponse, req: CanonicalRequest, task: str,
                 complexity: str, policy: Policy) -> None:
        self.resp, self.req, self.task, self.complexity, self.policy = (
            resp, req, task, complexity, policy)
        self.text = resp.text
        # json_requested() once per answer (most requests have no response_format)
        self.json_kind = json_requested(req) if req.response_format else None
        self.healed_text: str | None = None
        self.healed: tuple[str, ...] = ()
        self.json_value: Any = None
        self.json_ok: bool | None = None
        self.confidence: float | None = None
        self.refused: bool | None = None

    def parsed_json(self) -> bool:
        if self.json_ok is None:
            h = heal_json(self.text)
            self.json_ok, self.json_value = h.ok, h.value
            if h.ok and h.changed:
                self.healed_text, self.healed = h.text, h.steps
        return bool(self.json_ok)

    # each returns (ok, reason)

    def empty(self) -> tuple[bool, str]:
        if self.text.strip() or self.resp.tool_calls:
            return True, "has content"
        return False, "empty answer"

    def thin(self) -> tuple[bool, str]:
        if self.resp.tool_calls or self.json_kind:
            return True, "tool call / JSON answer"
        need = MIN_CHARS.get(self.task, 2) * _CX_FACTOR.get(self.complexity, 1)
        have = len(self.text.strip())
        if have < need:
            return False, f"{have} chars, a {self.complexity} {self.task} answer needs {need}"
        return True, f"{have} chars >= {need}"

    def truncated(self) -> tuple[bool, str]:
        if self.resp.finish_reason == "length":
            return False, "finish_reason length (hit max_tokens)"
        return True, f"finish_reason {self.resp.finish_reason}"

    def refusal(self) -> tuple[bool, str]:
        if self.resp.finish_reason == "content_filter":
            return False, "finish_reason content_filter"
        if self.text:
            self.refused = is_refusal(self.text)
            if self.refused:
                return False, "refusal phrase: " + self.text[:80].replace("\n", " ")
        return True, "no refusal phrase"

    def json(self) -> tuple[bool, str]:
        kind = self.json_kind
        if kind is None:
            return True, "JSON not requested"
        if not self.parsed_json():
            return False, "not valid JSON (healing could not repair it)"
        if kind == "json_object" and not isinstance(self.json_value, dict):
            return False, "json_object requested, got " + type(self.json_value).__name__
        return True, "valid JSON" + (f" after healing ({', '.join(self.healed)})"
                                     if self.healed else "")

    def json_schema(self) -> tuple[bool, str]:
        schema = request_schema(self.req) if self.req.response_format else None
        if schema is None:
            return True, "no json_schema in the request"
        if not self.parsed_json():
            return False, "not valid JSON, cannot check the schema"
        err = schema_errors(schema, self.json_value)
        if err is not None:
            return False, "schema: " + err
        return True, "matches the schema"

    def tool_call(self) -> tuple[bool, str]:
        calls = self.resp.tool_calls
        if not calls:
            choice = self.req.tool_choice
            if self.req.tools and (choice == "required" or
                                   (isinstance(choice, dict) and bool(choice))):
                return False, "tool_choice required a tool call and none came"
            return True, "no tool call"
        tools = {t.name: t for t in self.req.tools}
        for call in calls:
            tool = tools.get(call.name)
            if tool is None:
                return False, f"unknown tool {call.name!r}"
            try:
                args = orjson.loads(call.arguments or "{}")
            except orjson.JSONDecodeError:
                return False, f"{call.name}: arguments are not valid JSON"
            if not isinstance(args, dict):
                return False, f"{call.name}: arguments are not a JSON object"
            if tool.parameters:
                err = schema_errors(tool.parameters, args)
                if err is not None:
                    return False, f"{call.name}: arguments fail the schema: {err}"
        return True, f"{len(calls)} valid tool call(s)"

    def code_syntax(self) -> tuple[bool, str]:
        if self.task != "code":
            return True, "not a code task"
        checked = 0
        for m in _FENCE_BLOCK.finditer(self.text):
            lang, body = m.group(1).lower(), m.group(2)
            if lang in _PYTHON:
                checked += 1
                try:
                    ast.parse(body)
                except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
                    line = getattr(exc, "lineno", None)
                    where = f" line {line}" if line else ""
                    return False, f"python block {checked}{where}: {type(exc).__name__}: " \
                                  f"{getattr(exc, 'msg', str(exc))}"
            elif lang == "json":
                checked += 1
                try:
                    orjson.loads(body)
                except orjson.JSONDecodeError:
                    return False, f"json block {checked} does not parse"
        return True, f"{checked} code block(s) parse"

    def confidence_check(self) -> tuple[bool, str]:
        value, stripped = parse_confidence(self.text)
        if value is None:
            return True, "no confidence line (not judged)"
        self.confidence = value
        if stripped != self.text:
            self.healed_text = stripped if self.healed_text is None else self.healed_text
        threshold = self.policy.confidence_threshold
        if threshold is None:
            threshold = DEFAULT_CONFIDENCE
        if value < threshold:
            return False, f"self-reported confidence {value:g} < {threshold:g}"
        return True, f"self-reported confidence {value:g} >= {threshold:g}"


#: verifier name -> its check (each returns (ok, reason))
_CHECKS: Final[dict[str, Callable[[_Run], tuple[bool, str]]]] = {
    "empty": _Run.empty, "thin": _Run.thin, "truncated": _Run.truncated,
    "refusal": _Run.refusal, "json": _Run.json, "json_schema": _Run.json_schema,
    "tool_call": _Run.tool_call, "code_syntax": _Run.code_syntax,
    "confidence": _Run.confidence_check,
}

def check(resp: CanonicalResponse, req: CanonicalRequest, policy: Policy, *,
          task: str, complexity: str) -> Checked:
    """Run the cell's verifiers on one answer (every one listed; unknown names are
    reported as passing with a note, so a newer profile never breaks an older router)."""
    run = _Run(resp, req, task, complexity, policy)
    results: list[dict[str, Any]] = []
    all_ok = True
    for name in policy.verifiers:
        fn = _CHECKS.get(name)
        if fn is None:
            results.append({"verifier": name, "ok": True, "reason": "unknown verifier (skipped)"})
            continue
        ok, reason = fn(run)
        if not ok:
            all_ok = False
        results.append({"verifier": name, "ok": ok, "reason": reason})
    if run.json_kind is not None:
        run.parsed_json()  # heal a JSON answer even when no JSON verifier is listed
    return Checked(results, run.healed_text, run.healed, run.confidence, all_ok, run.refused)


def heal_only(resp: CanonicalResponse, req: CanonicalRequest) -> Checked:
    """:func:`check` with no verifiers: no verdicts, a JSON answer healed."""
    if not req.response_format or json_requested(req) is None:
        return Checked([])
    h = heal_json(resp.text)
    if h.ok and h.changed:
        return Checked([], h.text, h.steps)
    return Checked([])
