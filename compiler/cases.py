"""``router test``: routing test cases checked against a compiled table.

A case file is YAML or JSONL.  YAML holds either a list of cases or a mapping::

    config:        # optional: the router.yaml this file's expectations assume
      profile: balanced
      providers: {ollama: {models: [qwen3:8b]}, openai: {}}
    environ:       # optional: variables set while compiling (key names, dummy values)
      OPENAI_API_KEY: test
    cases:
      - name: short question stays local
        prompt: "What is the capital of France?"
        cell: general.low.public.text
        locality: local

Each case has a ``name``, a ``prompt`` (one user message) or a ``request`` (an
OpenAI chat-completions or Anthropic messages body), optional ``headers``
(``X-Router-Private: true``), and expectations: ``cell`` (a full key or a
pattern such as ``code.*.private.*``), ``task``, ``complexity``,
``sensitivity``, ``modality``, ``locality`` (of the first candidate), ``model``
(the first candidate's key) and ``refused`` (no candidate remains).

Cases run through the runtime's own classifier and ``decide``: no model is
called, and what passes here is what the server does.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import orjson
from interlock.compiler.diagnostics import ConfigError, Diagnostic, did_you_mean, dotted
from interlock.compiler.load import load_file
from interlock.runtime.canonical import CanonicalRequest, Message, Part, ToolSpec
from interlock.runtime.classify import Classification, Classifier
from interlock.runtime.decide import Decision, decide
from interlock.runtime.errors import RequestError
from interlock.runtime.signals import Complexity, Modality, Sensitivity, Task
from interlock.runtime.surfaces.chat import decode_chat
from interlock.runtime.table import DecisionTable
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

_TRUE = frozenset(("1", "true", "yes", "on"))


class Case(BaseModel):
    """One routing expectation (unknown keys are errors, so a typo cannot pass vacuously)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    prompt: str | None = None
    request: dict[str, Any] | None = None
    surface: Literal["chat", "messages"] | None = Field(
        default=None, description="how to read `request`; guessed from its shape when absent"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    cell: str | None = None
    task: Task | None = None
    complexity: Complexity | None = None
    sensitivity: Sensitivity | None = None
    modality: Modality | None = None
    locality: Literal["local", "cloud"] | None = None
    model: str | None = None
    refused: bool | None = None

    @model_validator(mode="after")
    def _one_input_some_expectation(self) -> Case:
        if (self.prompt is None) == (self.request is None):
            raise ValueError("give exactly one of `prompt` or `request`")
        if not any(getattr(self, k) is not None for k in EXPECTATIONS):
            raise ValueError("expects nothing: add cell, task, locality, model or refused")
        return self

    @property
    def header_private(self) -> bool:
        return any(k.lower() == "x-router-private" and v.strip().lower() in _TRUE
                   for k, v in self.headers.items())


EXPECTATIONS = ("cell", "task", "complexity", "sensitivity", "modality", "locality", "model",
                "refused")


@dataclass(frozen=True, slots=True)
class CaseFile:
    path: str
    cases: list[Case]
    config: dict[str, Any] | None = None
    environ: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What routing did with a case: the facts the expectations are checked against."""

    cell: str
    task: str
    complexity: str
    sensitivity: str
    modality: str
    model: str | None
    locality: str | None
    refused: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    outcome: Outcome
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "name": self.case.name, "passed": self.passed, "failures": self.failures,
            "cell": o.cell, "model": o.model, "locality": o.locality, "refused": o.refused,
            "reason": o.reason,
        }


# --------------------------------------------------------------------------- loading


def load_cases(path: Path) -> CaseFile:
    """Read a YAML or JSONL case file; every bad case is a diagnostic with its position."""
    if path.suffix in (".jsonl", ".ndjson"):
        return _load_jsonl(path)
    loaded = load_file(path)
    data = loaded.data
    config: dict[str, Any] | None = None
    environ: dict[str, str] = {}
    base: tuple[str | int, ...] = ()
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"config", "environ", "cases"})
        if unknown:
            raise ConfigError([_diag(str(path), f"unknown key {unknown[0]!r} (expected config, "
                                     "environ, cases)", loaded.key_positions.get((unknown[0],)),
                                     unknown[0])])
        config = data.get("config")
        if config is not None and not isinstance(config, dict):
            raise ConfigError([_diag(str(path), "config: expected a mapping (router.yaml)",
                                     loaded.positions.get(("config",)), "config")])
        env = data.get("environ") or {}
        if not isinstance(env, dict):
            raise ConfigError([_diag(str(path), "environ: expected a mapping",
                                     loaded.positions.get(("environ",)), "environ")])
        environ = {str(k): str(v) for k, v in env.items()}
        data, base = data.get("cases"), ("cases",)
    if not isinstance(data, list):
        raise ConfigError([_diag(str(path), "expected a list of cases (or a `cases:` list)",
                                 loaded.positions.get(base), dotted(base))])
    cases, problems = [], []
    for i, raw in enumerate(data):
        where = (*base, i)
        try:
            cases.append(Case.model_validate(raw))
        except ValidationError as exc:
            for err in exc.errors():
                sub = tuple(p for p in err["loc"] if isinstance(p, str | int))
                full = (*where, *sub)
                message = err["msg"]
                if err["type"] == "extra_forbidden" and sub:
                    # point at the key itself, and name the closest real field
                    message = f"unknown key '{sub[-1]}'" + did_you_mean(
                        str(sub[-1]), [*Case.model_fields])
                    pos = loaded.key_positions.get(full) or loaded.positions.get(full)
                else:
                    pos = loaded.positions.get(full) or loaded.key_positions.get(full)
                problems.append(_diag(str(path), message, pos or loaded.positions.get(where),
                                      dotted(full)))
    if problems:
        raise ConfigError(problems)
    return CaseFile(str(path), cases, config, environ)


def builtin_case_files() -> list[CaseFile]:
    """The example cases shipped for the built-in profiles (``profiles/cases/*.yaml``)."""
    root = resources.files("interlock.profiles").joinpath("cases")
    out = []
    for f in sorted(root.iterdir(), key=lambda f: f.name):
        if f.is_file() and f.name.endswith(".yaml"):
            with resources.as_file(f) as path:
                out.append(load_cases(path))
    return out


def _load_jsonl(path: Path) -> CaseFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([_diag(str(path), f"cannot read the file ({exc.strerror})", None,
                                 "")]) from exc
    cases, problems = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(Case.model_validate(orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            problems.append(_diag(str(path), f"not JSON ({exc})", (n, 1), ""))
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(_diag(str(path), err["msg"], (n, 1),
                                      dotted(tuple(p for p in err["loc"]
                                                   if isinstance(p, str | int)))))
    if problems:
        raise ConfigError(problems)
    return CaseFile(str(path), cases)


def _diag(file: str, message: str, pos: tuple[int, int] | None, path: str) -> Diagnostic:
    line, col = pos if pos else (None, None)
    return Diagnostic("E101", "error", message, file, line, col, path,
                      hint="see `router test --help` for the case format")


# --------------------------------------------------------------------------- checking


def cell_matches(pattern: str, key: str) -> bool:
    """``code.*.private.*`` style patterns; missing trailing parts match anything."""
    parts = pattern.split(".")
    parts += ["*"] * (4 - len(parts))
    return fnmatch.fnmatchcase(key, ".".join(parts))


def check(case: Case, outcome: Outcome, model_index: dict[str, str]) -> list[str]:
    """Every expectation of ``case`` that ``outcome`` does not meet, as readable lines."""
    fails: list[str] = []

    def differ(what: str, want: object, got: object) -> None:
        fails.append(f"{what}: expected {want}, got {got}")

    if case.cell is not None and not cell_matches(case.cell, outcome.cell):
        differ("cell", case.cell, outcome.cell)
    for name in ("task", "complexity", "sensitivity", "modality"):
        want = getattr(case, name)
        if want is not None and want != getattr(outcome, name):
            differ(name, want, getattr(outcome, name))
    if case.refused is not None and case.refused != outcome.refused:
        differ("refused", str(case.refused).lower(),
               f"{str(outcome.refused).lower()} ({outcome.reason or outcome.model})")
    if case.locality is not None and case.locality != outcome.locality:
        differ("locality", case.locality, outcome.locality or "none (refused)")
    if case.model is not None:
        want_key = model_index.get(case.model, case.model)
        if want_key != outcome.model:
            differ("model", case.model, outcome.model or "none (refused)")
    return fails


# --------------------------------------------------------------------------- routing


def looks_like_anthropic(body: dict[str, Any]) -> bool:
    """A Messages body: a top-level ``system``, or Anthropic-only content blocks."""
    if "system" in body or "stop_sequences" in body or "anthropic_version" in body:
        return True
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") in (
                        "tool_use", "tool_result", "thinking") or (
                        isinstance(block, dict) and block.get("type") == "image"
                        and "source" in block):
                    return True
    return False


def decode_body(body: Any, surface: str | None = None) -> CanonicalRequest:
    """A client body as the server would decode it (raises RequestError on bad input)."""
    if not isinstance(body, dict):
        raise RequestError(400, "a request body is a JSON object")
    kind = surface or ("messages" if looks_like_anthropic(body) else "chat")
    try:
        return decode_messages(body) if kind == "messages" else decode_chat(body)
    except RequestError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # as the server does: a crash while reading client input is a 400, not a 500
        raise RequestError(400, f"invalid request body: {exc}") from exc


def decode_messages(body: dict[str, Any]) -> CanonicalRequest:
    """An Anthropic Messages body, read as far as routing needs (text, images, tools).

    Until the runtime ships its own messages surface, this small reader stands
    in; it builds the same CanonicalRequest fields the classifier reads.
    """
    system = body.get("system") or ""
    if isinstance(system, list):
        system = "".join(b.get("text", "") for b in system if isinstance(b, dict))
    messages = [Message("system", [Part("text", text=str(system))])] if system else []
    for i, m in enumerate(body.get("messages") or []):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise RequestError(400, f"messages[{i}]: role must be user or assistant",
                               param=f"messages[{i}].role")
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        parts = [_block(b) for b in blocks or [] if isinstance(b, dict)]
        messages.append(Message(m["role"], [p for p in parts if p is not None]))
    tools = [ToolSpec(str(t.get("name", "")), str(t.get("description", "")),
                      t.get("input_schema") or {})
             for t in body.get("tools") or [] if isinstance(t, dict)]
    model = body.get("model")
    return CanonicalRequest(
        surface="messages", messages=messages, model=model if isinstance(model, str) else None,
        tools=tools, stream=bool(body.get("stream")), raw=body,
        private=body.get("private") if isinstance(body.get("private"), bool) else None,
    )


def _block(b: dict[str, Any]) -> Part | None:
    kind = b.get("type")
    if kind == "text":
        return Part("text", text=str(b.get("text", "")))
    if kind == "image":
        src = b.get("source") or {}
        return Part("image", image_url=src.get("url"), media_type=src.get("media_type"),
                    data=src.get("data"))
    if kind == "tool_use":
        return Part("tool_call", tool_call_id=b.get("id"), name=b.get("name"),
                    arguments=orjson.dumps(b.get("input") or {}).decode())
    if kind == "tool_result":
        content = b.get("content")
        text = content if isinstance(content, str) else "".join(
            c.get("text", "") for c in content or [] if isinstance(c, dict))
        return Part("tool_result", text=text, tool_call_id=b.get("tool_use_id"))
    return None


def route(table: DecisionTable, classifier: Classifier, req: CanonicalRequest, *,
          header_private: bool = False) -> tuple[Classification, Decision]:
    """classify → decide, the server's own two calls (no health: everything is up)."""
    cls = classifier.classify(req, header_private=header_private)
    return cls, decide(table, cls, req)


def outcome_of(cls: Classification, decision: Decision) -> Outcome:
    first = decision.candidates[0] if decision.candidates else None
    return Outcome(
        cell=cls.cell, task=cls.task, complexity=cls.complexity, sensitivity=cls.sensitivity,
        modality=cls.modality, model=first.model if first else None,
        locality=None if first is None else ("local" if first.local else "cloud"),
        refused=first is None, reason=decision.reason,
    )


def run_cases(table: DecisionTable, cases: list[Case]) -> list[CaseResult]:
    """Route every case through the runtime's code and check its expectations."""
    classifier = Classifier(table.classifier)
    results = []
    for case in cases:
        body = case.request if case.request is not None else {
            "messages": [{"role": "user", "content": case.prompt}]}
        try:
            req = decode_body(body, case.surface)
        except RequestError as exc:
            outcome = Outcome("-", "-", "-", "-", "-", None, None, True, exc.message)
            results.append(CaseResult(case, outcome, [f"request rejected: {exc.message}"]))
            continue
        try:
            cls, decision = route(table, classifier, req, header_private=case.header_private)
        except RequestError as exc:  # e.g. an unknown pinned model: the server's 404
            outcome = Outcome("-", "-", "-", "-", "-", None, None, True, exc.message)
            results.append(CaseResult(case, outcome, [f"request rejected: {exc.message}"]))
            continue
        outcome = outcome_of(cls, decision)
        results.append(CaseResult(case, outcome, check(case, outcome, table.model_index)))
    return results
