"""The verification layer of issue 6 records and returns what the old one did.

``verify.check`` now builds the recorded verdict dicts itself, computes the
refusal once per answer (the response tags reuse it), and ``escalation`` asks
the policy its questions once per spec.  Here the old code - kept verbatim below
- and the new run side by side over a corpus of answers, requests, policies and
localities, failing ones escalated: the verdicts, the recorded checks, the
escalation, the response tags, the final answer and the request sent upstream
must be equal.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
from collections.abc import Coroutine
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.runtime import escalation, verify
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Message,
    Part,
    ToolCall,
    ToolSpec,
)
from interlock.runtime.errors import NoCandidateError, UpstreamError
from interlock.runtime.forward import Answer, Call
from interlock.runtime.heal import heal_json
from interlock.runtime.table import Candidate, ModelEntry, Policy, Price, Speed, Terms
from interlock.runtime.trace import Diagnostics
from interlock.runtime.verify import (
    _CX_FACTOR,
    _FENCE_BLOCK,
    _PYTHON,
    DEFAULT_CONFIDENCE,
    MIN_CHARS,
    VERIFIERS,
    json_requested,
    parse_confidence,
    request_schema,
    schema_errors,
)

# ----------------------------------------------------------------- the old code, verbatim


def old_is_refusal(text: str) -> bool:
    # the old pre-filter and regex (test_verify_perf_refusal pins both to the old text)
    head = text[:verify._HEAD].replace("\u2019", "'").lower()
    if not any(cue in head for cue in verify._REFUSAL_CUES):
        return False
    return verify._REFUSAL.search(head) is not None


def old_response_tags(resp: CanonicalResponse) -> list[str]:
    tags: list[str] = []
    if resp.finish_reason == "content_filter":
        tags.append("content_filter")
    if resp.text and old_is_refusal(resp.text):
        tags.append("refusal")
    if resp.finish_reason == "length":
        tags.append("truncated")
    return tags


@dataclass(frozen=True, slots=True)
class _OldVerdict:
    verifier: str
    ok: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"verifier": self.verifier, "ok": self.ok, "reason": self.reason}


@dataclass(slots=True)
class _OldChecked:
    verdicts: list[_OldVerdict]
    text: str | None = None
    healed: tuple[str, ...] = ()
    confidence: float | None = None

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def failed(self) -> list[_OldVerdict]:
        return [v for v in self.verdicts if not v.ok]

    def apply(self, resp: CanonicalResponse) -> None:
        if self.text is not None:
            resp.text = self.text


class _OldRun:
    """One verification pass: the answer, the request and the shared parse results."""

    __slots__ = ("resp", "req", "task", "complexity", "policy", "text", "healed_text",
                 "healed", "json_value", "json_ok", "confidence")

    def __init__(self, resp: CanonicalResponse, req: CanonicalRequest, task: str,
                 complexity: str, policy: Policy) -> None:
        self.resp, self.req, self.task, self.complexity, self.policy = (
            resp, req, task, complexity, policy)
        self.text = resp.text
        self.healed_text: str | None = None
        self.healed: tuple[str, ...] = ()
        self.json_value: Any = None
        self.json_ok: bool | None = None
        self.confidence: float | None = None

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
        if self.resp.tool_calls or json_requested(self.req):
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
        if self.text and old_is_refusal(self.text):
            return False, "refusal phrase: " + self.text[:80].replace("\n", " ")
        return True, "no refusal phrase"

    def json(self) -> tuple[bool, str]:
        kind = json_requested(self.req)
        if kind is None:
            return True, "JSON not requested"
        if not self.parsed_json():
            return False, "not valid JSON (healing could not repair it)"
        if kind == "json_object" and not isinstance(self.json_value, dict):
            return False, "json_object requested, got " + type(self.json_value).__name__
        return True, "valid JSON" + (f" after healing ({', '.join(self.healed)})"
                                     if self.healed else "")

    def json_schema(self) -> tuple[bool, str]:
        schema = request_schema(self.req)
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
        choice = self.req.tool_choice
        required = choice == "required" or (isinstance(choice, dict) and bool(choice))
        if not calls:
            if required and self.req.tools:
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


def old_check(resp: CanonicalResponse, req: CanonicalRequest, policy: Policy, *,
          task: str, complexity: str) -> _OldChecked:
    """Run the cell's verifiers on one answer (every one listed; unknown names are
    reported as passing with a note, so a newer profile never breaks an older router)."""
    run = _OldRun(resp, req, task, complexity, policy)
    verdicts: list[_OldVerdict] = []
    for name in policy.verifiers:
        fn = run.confidence_check if name == "confidence" else getattr(run, name, None)
        if name not in VERIFIERS or fn is None:
            verdicts.append(_OldVerdict(name, True, "unknown verifier (skipped)"))
            continue
        ok, reason = fn()
        verdicts.append(_OldVerdict(name, ok, reason))
    if json_requested(req):
        run.parsed_json()  # heal a JSON answer even when no JSON verifier is listed
    return _OldChecked(verdicts, run.healed_text, run.healed, run.confidence)


def _old_subject(spec: escalation.VerifySpec, model: ModelEntry) -> bool:
    return bool(spec.policy.verifiers) and (model.locality == "local"
                                            or not spec.policy.only_from_local)


def _old_prepare(call: Call) -> None:
    spec = call.verify
    if spec is not None and spec.policy.verifiers and verify.wants_confidence(spec.policy):
        call.req = verify.ask_confidence(call.req)


def _old_record(call: Call, answer: Answer, checked: _OldChecked, stage: str) -> None:
    call.diag.checks.append({
        "model": answer.model.key, "stage": stage, "ok": checked.ok,
        "verdicts": [v.to_dict() for v in checked.verdicts],
        "healed": list(checked.healed),
        "confidence": checked.confidence,
    })


@functools.lru_cache(maxsize=256)
def _no_verifiers(policy: Policy) -> Policy:
    return policy.model_copy(update={"verifiers": ()})


def _old_finish(call: Call, answer: Answer, checked: _OldChecked | None, *,
                escalated: bool = False) -> None:
    tags = old_response_tags(answer.response)
    if checked is not None and checked.healed:
        tags.append("healed")
    if escalated:
        tags.append("escalated")
    call.diag.response_tags = tags


async def old_with_verification(up: Any, call: Call, run: Any) -> Answer:
    """The verification layer (see the module docstring)."""
    spec = call.verify
    if spec is None or not spec.active:
        answer = await run(up, call)
        _old_finish(call, answer, None)
        return answer
    _old_prepare(call)
    answer = await run(up, call)
    if not _old_subject(spec, answer.model):
        # the one intended change since the copy: the confidence line asked for by
        # _old_prepare is stripped from an unverified cloud answer (it used to reach
        # the client, though the comment below said otherwise)
        if verify.wants_confidence(spec.policy):
            answer.response.text = verify.parse_confidence(answer.response.text)[1]
        checked = old_check(answer.response, call.req, _no_verifiers(spec.policy),
                            task=spec.task, complexity=spec.complexity)
        checked.apply(answer.response)  # strip a confidence line, heal JSON: no verdicts
        _old_finish(call, answer, checked)
        return answer
    checked = old_check(answer.response, call.req, spec.policy, task=spec.task,
                        complexity=spec.complexity)
    _old_record(call, answer, checked, "answer")
    checked.apply(answer.response)
    if checked.ok:
        _old_finish(call, answer, checked)
        return answer
    failed = ", ".join(v.verifier for v in checked.failed)
    for target in escalation.targets(up.table, call, answer):
        sub = dataclasses.replace(call, candidates=[target])
        try:
            escalated = await run(up, sub)
        except (UpstreamError, NoCandidateError) as exc:
            call.diag.escalation = {
                "from": answer.model.key, "to": target.model, "because": failed,
                "outcome": "failed", "error": f"{type(exc).__name__}: {exc}"[:300],
            }
            break
        again = old_check(escalated.response, call.req, spec.policy, task=spec.task,
                          complexity=spec.complexity)
        _old_record(call, escalated, again, "escalation")
        again.apply(escalated.response)
        call.diag.escalation = {
            "from": answer.model.key, "to": escalated.model.key, "because": failed,
            "outcome": "ok" if again.ok else "answered (verifiers failed too)",
        }
        _old_finish(call, escalated, again, escalated=True)
        return escalated
    else:
        call.diag.escalation = {"from": answer.model.key, "to": None, "because": failed,
                                "outcome": "no escalation target"}
    _old_finish(call, answer, checked)
    return answer


# ----------------------------------------------------------------- the corpus

def _model(key: str, locality: str, quality: float) -> ModelEntry:
    return ModelEntry(key=key, provider=key.split("/")[0], upstream_id=key.split("/")[1],
                      locality=locality, context_window=8000, max_output=1000, price=Price(),
                      caps=0, speed=Speed(ttft_ms=100, tokens_per_s=50),
                      quality={"general": quality})


LOCAL = _model("loc/m-a", "local", 60)
CLOUD = _model("cloud/m-c", "cloud", 90)
BETTER = _model("better/m-b", "cloud", 95)
_TERMS = Terms(quality=0, cost=0, latency=0, locality=0)


def _cand(m: ModelEntry, role: str) -> Candidate:
    return Candidate(model=m.key, provider=m.provider, role=role,  # type: ignore[arg-type]
                     local=m.locality == "local", caps=0, score=0, terms=_TERMS)


TEXTS = [
    "Hello from the bench upstream.",
    "Paris is the capital of France.",
    "42",
    "",
    "   \n",
    "I'm sorry, but I can't help with that.",
    "I’m sorry, but I cannot assist with this request.",
    "Lo siento, pero no puedo ayudarte.",
    "ı'm ſorry, but ı can't do it",
    "I CAN'T HELP WITH THAT.",
    "Sure. You can do this in a few steps, and you are able to change it later. " * 12,
    ("The answer follows. " * 40) + "I'm sorry, but I can't help with that.",
    '{"a": 1, "b": [1, 2]}',
    "[1, 2, 3]",
    'Here you go:\n```json\n{"a": 1, "b": [1, 2\n```',
    '{"name": "Ada", "age": 36',
    "not json at all",
    '{"n": -1}',
    "```python\ndef f(:\n    pass\n```",
    "```python\ndef f():\n    return 1\n```\nand\n```json\n{a: 1}\n```",
    "Paris.\nconfidence: 0.3",
    "Paris.\nconfidence: 0.9",
    "Paris.\n**Confidence:** 85%",
    '{"a": 1}\nconfidence: 0.2',
    "A short summary.",
    # healing changes the text: the refusal found before healing must not be reused
    "I can't help with that.\n```json\n{\"a\": 1}\n```",
    "I can't help with that.\nconfidence: 0.9",
    "日本の首都は東京です。",
    "申し訳ありませんが、お手伝いできません。",
]
FINISH = ["stop", "length", "content_filter", "tool_calls"]
TOOLS = [ToolSpec("get_weather", "weather", {"type": "object", "properties": {
    "city": {"type": "string"}}, "required": ["city"]})]
CALLS: list[list[ToolCall]] = [
    [],
    [ToolCall("c1", "get_weather", '{"city": "Paris"}')],
    [ToolCall("c1", "get_weather", '{"town": 1}')],
    [ToolCall("c1", "nope", "{}")],
    [ToolCall("c1", "get_weather", "{not json")],
    [ToolCall("c1", "get_weather", "[1]")],
]
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}},
          "required": ["n"]}


def _req(kind: str) -> CanonicalRequest:
    msgs = [Message("user", [Part("text", "hi")])]
    raw: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    if kind == "plain":
        return CanonicalRequest(surface="chat", messages=msgs, raw=raw)
    if kind == "system":
        return CanonicalRequest(surface="chat", messages=msgs, system="Be brief.", raw=raw)
    if kind == "json_object":
        return CanonicalRequest(surface="chat", messages=msgs, raw=raw,
                                response_format={"type": "json_object"})
    if kind == "json_schema":
        return CanonicalRequest(surface="chat", messages=msgs, raw=raw, response_format={
            "type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMA}})
    if kind == "text_format":
        return CanonicalRequest(surface="chat", messages=msgs, raw=raw,
                                response_format={"type": "text"})
    if kind == "tools_required":
        return CanonicalRequest(surface="chat", messages=msgs, raw=raw, tools=list(TOOLS),
                                tool_choice="required")
    if kind == "tools_named":
        return CanonicalRequest(surface="chat", messages=msgs, raw=raw, tools=list(TOOLS),
                                tool_choice={"type": "function",
                                             "function": {"name": "get_weather"}})
    assert kind == "tools"
    return CanonicalRequest(surface="chat", messages=msgs, raw=raw, tools=list(TOOLS))


REQUESTS = ["plain", "system", "json_object", "json_schema", "text_format", "tools",
            "tools_required", "tools_named"]
POLICIES: list[tuple[str, ...]] = [
    VERIFIERS,
    ("empty", "truncated", "refusal", "json", "tool_call"),  # the balanced profile's
    ("refusal",),
    ("truncated",),
    ("thin", "code_syntax"),
    ("json", "json_schema"),
    ("confidence",),
    ("sentiment", "refusal", "parsed_json", "text"),  # unknown names are skipped
    (),
]


@dataclass(frozen=True)
class Case:
    text: str
    finish: str
    calls: int
    request: str
    verifiers: tuple[str, ...]
    threshold: float | None
    only_from_local: bool
    first_local: bool
    task: str
    complexity: str
    #: the escalated answer: None = no escalation candidate, "error" = it fails
    second: tuple[str, str] | str | None


def _resp(text: str, finish: str, calls: int) -> CanonicalResponse:
    return CanonicalResponse(id="r", model="m", text=text, tool_calls=copy.deepcopy(CALLS[calls]),
                             finish_reason=finish)  # type: ignore[arg-type]


def _drive(coro: Coroutine[Any, Any, Answer]) -> Answer:
    """Run a coroutine that never suspends (every stub here answers at once)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        result: Answer = stop.value
        return result
    raise AssertionError("the coroutine suspended")


def _world(case: Case, new: bool) -> tuple[Answer | Exception, Call, list[CanonicalRequest]]:
    policy = Policy(allow_cloud=True, verifiers=case.verifiers,
                    confidence_threshold=case.threshold, only_from_local=case.only_from_local)
    first = LOCAL if case.first_local else CLOUD
    candidates = [_cand(first, "primary")]
    if case.second is not None:
        candidates.append(_cand(BETTER, "escalation"))
    call = Call(req=_req(case.request), candidates=candidates, private=False, deadline=1e18,
                diag=Diagnostics(), verify=escalation.VerifySpec(policy, case.task,
                                                                 case.complexity))
    sent: list[CanonicalRequest] = []

    async def run(up: Any, c: Call) -> Answer:
        sent.append(c.req)
        if c.candidates[0].model == BETTER.key:
            if case.second == "error":
                raise UpstreamError("better", "m-b", "boom")
            assert isinstance(case.second, tuple)
            return Answer(_resp(case.second[0], case.second[1], 0), c.candidates[0], BETTER)
        return Answer(_resp(case.text, case.finish, case.calls), c.candidates[0], first)

    up = SimpleNamespace(table=SimpleNamespace(models={m.key: m for m in (LOCAL, CLOUD, BETTER)},
                                               providers={}))
    layer = escalation.with_verification if new else old_with_verification
    try:
        answer: Answer | Exception = _drive(layer(up, call, run))
    except (UpstreamError, NoCandidateError) as exc:
        answer = exc
    return answer, call, sent


def _outcome(case: Case, new: bool) -> dict[str, Any]:
    answer, call, sent = _world(case, new)
    return {
        "answer": (answer.model.key, answer.response) if isinstance(answer, Answer) else
        repr(answer),
        # what the diagnostics carry, as the request log and the trace store them
        "checks": orjson.loads(orjson.dumps(call.diag.checks)),
        "escalation": call.diag.escalation,
        "tags": call.diag.response_tags,
        "sent": sent,
        "req": call.req,
    }


def _cases() -> st.SearchStrategy[Case]:
    seconds = st.sampled_from([None, "error", ("Paris.", "stop"), ("", "stop"),
                               ("I'm sorry, but I can't help with that.", "stop"),
                               ("The answer is", "length")])
    return st.builds(
        Case, text=st.sampled_from(TEXTS), finish=st.sampled_from(FINISH),
        calls=st.sampled_from(range(len(CALLS))), request=st.sampled_from(REQUESTS),
        verifiers=st.sampled_from(POLICIES), threshold=st.sampled_from([None, 0.5, 0.95]),
        only_from_local=st.booleans(), first_local=st.booleans(),
        task=st.sampled_from(["general", "code", "summarize", "extract", "other"]),
        complexity=st.sampled_from(["low", "medium", "high"]), second=seconds)


# ----------------------------------------------------------------- the tests

@settings(max_examples=4000, deadline=None)
@given(_cases())
def test_the_layer_records_and_returns_what_the_old_one_did(case: Case) -> None:
    assert _outcome(case, new=True) == _outcome(case, new=False)


@pytest.mark.parametrize("verifiers", POLICIES)
@pytest.mark.parametrize("request_kind", REQUESTS)
def test_every_text_through_the_layer(verifiers: tuple[str, ...], request_kind: str) -> None:
    for text in TEXTS:
        for finish in FINISH:
            for second in (None, ("Paris.", "stop")):
                for first_local in (True, False):
                    case = Case(text, finish, 0, request_kind, verifiers, 0.5, True,
                                first_local, "general", "low", second)
                    assert _outcome(case, new=True) == _outcome(case, new=False), case


@pytest.mark.parametrize("verifiers", POLICIES)
@pytest.mark.parametrize("request_kind", REQUESTS)
def test_check_gives_the_old_verdicts(verifiers: tuple[str, ...], request_kind: str) -> None:
    policy = Policy(allow_cloud=True, verifiers=verifiers, confidence_threshold=0.5)
    for text in TEXTS:
        for finish in FINISH:
            for calls in range(len(CALLS)):
                for task, cx in (("general", "low"), ("code", "high"), ("summarize", "medium")):
                    req = _req(request_kind)
                    new = verify.check(_resp(text, finish, calls), req, policy, task=task,
                                       complexity=cx)
                    old = old_check(_resp(text, finish, calls), req, policy, task=task,
                                    complexity=cx)
                    assert new.results == [v.to_dict() for v in old.verdicts]
                    assert [(v.verifier, v.ok, v.reason) for v in new.verdicts] == \
                        [(v.verifier, v.ok, v.reason) for v in old.verdicts]
                    assert new.ok == old.ok
                    assert [v.verifier for v in new.failed] == [v.verifier for v in old.failed]
                    assert (new.text, new.healed, new.confidence) == \
                        (old.text, old.healed, old.confidence)
                    if new.refused is not None:
                        assert new.refused == old_is_refusal(text)


@pytest.mark.parametrize("request_kind", REQUESTS)
def test_heal_only_is_check_without_verifiers(request_kind: str) -> None:
    none = Policy(allow_cloud=True, verifiers=())
    for text in TEXTS:
        req = _req(request_kind)
        a = verify.heal_only(_resp(text, "stop", 0), req)
        b = old_check(_resp(text, "stop", 0), req, none, task="general", complexity="low")
        assert (a.results, a.ok, a.text, a.healed, a.confidence) == \
            ([], True, b.text, b.healed, b.confidence)


def test_response_tags_with_and_without_the_known_refusal() -> None:
    for text in TEXTS:
        for finish in FINISH:
            resp = _resp(text, finish, 0)
            expected = old_response_tags(resp)
            assert verify.response_tags(resp) == expected
            if text:
                assert verify.response_tags(resp, old_is_refusal(text)) == expected


def test_the_bench_answer_is_checked_without_a_second_refusal_search(
        monkeypatch: pytest.MonkeyPatch) -> None:
    case = Case("Hello from the bench upstream.", "stop", 0, "plain",
                ("empty", "truncated", "refusal", "json", "tool_call"), None, True, True,
                "general", "low", None)
    searched: list[str] = []
    real = verify.is_refusal
    monkeypatch.setattr(verify, "is_refusal", lambda t: searched.append(t) or real(t))
    _world(case, new=True)
    assert searched == ["Hello from the bench upstream."]


def test_verify_specs_are_shared_per_policy_task_and_complexity() -> None:
    from interlock.runtime.buffered import verify_spec

    policy = Policy(allow_cloud=True, verifiers=("refusal", "confidence"))

    def routed(p: Policy, task: str, cx: str) -> Any:
        return SimpleNamespace(decision=SimpleNamespace(cell=SimpleNamespace(policy=p)),
                               classification=SimpleNamespace(task=task, complexity=cx))

    a = verify_spec(routed(policy, "code", "low"))
    assert a is verify_spec(routed(policy, "code", "low"))
    assert (a.policy, a.task, a.complexity, a.active, a.confidence) == \
        (policy, "code", "low", True, True)
    b = verify_spec(routed(policy, "code", "high"))
    assert b is not a and b.complexity == "high"
    other = Policy(allow_cloud=True, verifiers=())
    c = verify_spec(routed(other, "code", "low"))
    assert c.policy is other and not c.active and not c.confidence
