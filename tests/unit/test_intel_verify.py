"""Verifiers, response classifiers and response healing (pure logic)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Message,
    Part,
    ToolCall,
    ToolSpec,
)
from interlock.runtime.heal import heal_json
from interlock.runtime.table import Policy
from interlock.runtime.verify import (
    CONFIDENCE_INSTRUCTION,
    ask_confidence,
    check,
    is_refusal,
    parse_confidence,
    response_tags,
)

ALL = ("empty", "thin", "truncated", "refusal", "json", "json_schema", "tool_call",
       "code_syntax", "confidence")


def req(**kw: Any) -> CanonicalRequest:
    return CanonicalRequest(surface="chat", messages=[Message("user", [Part("text", "hi")])],
                            **kw)


def verdicts(text: str = "", *, request: CanonicalRequest | None = None, task: str = "general",
             complexity: str = "low", verifiers: tuple[str, ...] = ALL,
             threshold: float | None = 0.5, **resp: Any) -> dict[str, bool]:
    policy = Policy(allow_cloud=True, verifiers=verifiers, confidence_threshold=threshold)
    r = CanonicalResponse(id="x", model="m", text=text, **resp)
    checked = check(r, request or req(), policy, task=task, complexity=complexity)
    return {v.verifier: v.ok for v in checked.verdicts}


def test_a_good_answer_passes_everything() -> None:
    assert all(verdicts("Paris is the capital of France.").values())


def test_empty_and_thin() -> None:
    assert verdicts("")["empty"] is False
    assert verdicts("   \n")["empty"] is False
    assert verdicts("", tool_calls=[ToolCall("1", "f", "{}")])["empty"] is True
    # summarize at medium complexity needs 80 characters
    assert verdicts("A short summary.", task="summarize", complexity="medium")["thin"] is False
    assert verdicts("x" * 80, task="summarize", complexity="medium")["thin"] is True
    assert verdicts("42", task="general")["thin"] is True


def test_truncated() -> None:
    assert verdicts("The answer is", finish_reason="length")["truncated"] is False
    assert verdicts("The answer is 42.", finish_reason="stop")["truncated"] is True


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that.",
    "I’m sorry, but I cannot assist with this request.",
    "I can't help with that.",
    "As an AI language model, I cannot provide that.",
    "I must decline to answer.",
    "Je ne peux pas vous aider avec cela.",
    "Lo siento, pero no puedo ayudarte.",
    "Es tut mir leid, aber ich kann das nicht tun.",
    "Mi dispiace, ma non posso farlo.",
    "Desculpe, mas não posso ajudar com isso.",
    "Het spijt me, maar ik kan dat niet doen.",
    "Извините, но я не могу помочь с этим.",
    "抱歉，我无法提供帮助。",
    "申し訳ありませんが、その質問にはお答えできません。",
])
def test_refusals_are_recognised(text: str) -> None:
    assert is_refusal(text)
    assert verdicts(text)["refusal"] is False
    assert "refusal" in response_tags(CanonicalResponse(id="x", model="m", text=text))


@pytest.mark.parametrize("text", [
    "Paris is the capital of France.",
    "I can't believe how fast this is: here is the code.",
    "Sorry for the delay! The answer is 42.",
    "You cannot divide by zero, so the function raises ValueError.",
])
def test_non_refusals_pass(text: str) -> None:
    assert not is_refusal(text)


def test_content_filter_is_a_refusal() -> None:
    assert verdicts("", finish_reason="content_filter")["refusal"] is False
    tags = response_tags(CanonicalResponse(id="x", model="m", finish_reason="content_filter"))
    assert tags == ["content_filter"]


def test_response_tags_truncated() -> None:
    r = CanonicalResponse(id="x", model="m", text="abc", finish_reason="length")
    assert response_tags(r) == ["truncated"]


def test_json_and_healing() -> None:
    rq = req(response_format={"type": "json_object"})
    assert verdicts('{"a": 1}', request=rq)["json"] is True
    assert verdicts("not json at all", request=rq)["json"] is False
    assert verdicts("[1, 2]", request=rq)["json"] is False  # json_object wants an object
    policy = Policy(allow_cloud=True, verifiers=("json",))
    r = CanonicalResponse(id="x", model="m", text='```json\n{"a": [1, 2\n')
    checked = check(r, rq, policy, task="extract", complexity="low")
    assert checked.ok and checked.healed == ("fence", "close")
    checked.apply(r)
    assert orjson.loads(r.text) == {"a": [1, 2]}
    # JSON not asked for: the json verifier has nothing to judge
    assert verdicts("not json", request=req())["json"] is True


def test_json_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}},
              "required": ["n"]}
    rq = req(response_format={"type": "json_schema", "json_schema": {"name": "n",
                                                                     "schema": schema}})
    assert verdicts('{"n": 3}', request=rq)["json_schema"] is True
    assert verdicts('{"n": -1}', request=rq)["json_schema"] is False
    assert verdicts('{"m": 1}', request=rq)["json_schema"] is False
    assert verdicts("nope", request=rq)["json_schema"] is False


def test_tool_calls() -> None:
    tools = [ToolSpec("get_weather", "", {"type": "object", "required": ["city"],
                                          "properties": {"city": {"type": "string"}}})]
    rq = req(tools=tools)

    def ok(*calls: ToolCall, request: CanonicalRequest = rq) -> bool:
        return verdicts("", request=request, tool_calls=list(calls))["tool_call"]

    assert ok(ToolCall("1", "get_weather", '{"city": "Paris"}'))
    assert not ok(ToolCall("1", "get_time", '{"city": "Paris"}'))
    assert not ok(ToolCall("1", "get_weather", '{"town": "Paris"}'))
    assert not ok(ToolCall("1", "get_weather", '{"city": 3}'))
    assert not ok(ToolCall("1", "get_weather", '{"city": '))
    assert not ok(ToolCall("1", "get_weather", '["Paris"]'))
    assert not ok(request=req(tools=tools, tool_choice="required"))
    assert ok(request=req(tools=tools, tool_choice="auto"))


def test_code_syntax_only_for_code_tasks() -> None:
    bad = "```python\ndef f(:\n    pass\n```"
    good = "```python\ndef f(x):\n    return x\n```\nand\n```json\n{\"a\": 1}\n```"
    assert verdicts(bad, task="code")["code_syntax"] is False
    assert verdicts(bad, task="general")["code_syntax"] is True
    assert verdicts(good, task="code")["code_syntax"] is True
    assert verdicts("```json\n{a: 1}\n```", task="code")["code_syntax"] is False
    # other languages are not judged
    assert verdicts("```rust\nfn main( {\n```", task="code")["code_syntax"] is True


def test_confidence() -> None:
    assert parse_confidence("Paris.\nconfidence: 0.8") == (0.8, "Paris.")
    assert parse_confidence("Paris.\n**Confidence:** 85%") == (0.85, "Paris.")
    assert parse_confidence("Paris.") == (None, "Paris.")
    assert verdicts("Paris.\nconfidence: 0.3")["confidence"] is False
    assert verdicts("Paris.\nconfidence: 0.7")["confidence"] is True
    assert verdicts("Paris.")["confidence"] is True  # no line: not judged
    # the default threshold applies when the policy has none
    assert verdicts("Paris.\nconfidence: 0.55", threshold=None)["confidence"] is False


def test_ask_confidence_adds_the_instruction_to_raw_and_canonical() -> None:
    rq = req(raw={"messages": [{"role": "user", "content": "hi"}]})
    asked = ask_confidence(rq)
    assert CONFIDENCE_INSTRUCTION in asked.system
    assert asked.raw["messages"][0] == {"role": "system", "content": CONFIDENCE_INSTRUCTION}
    assert rq.raw["messages"][0]["role"] == "user"  # the original is untouched
    # JSON and tool requests are left alone: a trailing line would break them
    js = req(response_format={"type": "json_object"})
    assert ask_confidence(js) is js


def test_unknown_verifier_is_skipped_not_fatal() -> None:
    assert verdicts("hello", verifiers=("sentiment",)) == {"sentiment": True}


# -- healing -------------------------------------------------------------------------------


@pytest.mark.parametrize("text,value,steps", [
    ('{"a": 1}', {"a": 1}, ()),
    ('```json\n{"a": 1}\n```', {"a": 1}, ("fence",)),
    ('```\n[1, 2]\n```', [1, 2], ("fence",)),
    ('Sure! {"a": [1, 2]} Hope this helps.', {"a": [1, 2]}, ("trim",)),
    ('{"a": "hel', {"a": "hel"}, ("close",)),
    ('{"a": [1, {"b": 2', {"a": [1, {"b": 2}]}, ("close",)),
    ('{"a": 1, "b":', {"a": 1}, ("close",)),
    ('{"a": 1, "b', {"a": 1}, ("close",)),
    ('[1, 2,', [1, 2], ("close",)),
    ('Here:\n```json\n{"x": {"y": tr', {"x": {}}, ("fence", "close")),
])
def test_heal(text: str, value: Any, steps: tuple[str, ...]) -> None:
    h = heal_json(text)
    assert h.ok and h.value == value and h.steps == steps
    assert orjson.loads(h.text) == value


@pytest.mark.parametrize("text", ["no json here", "{'a': 1}", '{"a": 1]', ""])
def test_heal_gives_up_on_what_it_cannot_repair(text: str) -> None:
    h = heal_json(text)
    assert not h.ok and h.text == text and h.steps == ()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('{}[]",:\\ abc01-.tnul`\n')), max_size=80))
def test_heal_never_raises_and_ok_means_valid(text: str) -> None:
    h = heal_json(text)
    if h.ok:
        orjson.loads(h.text)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-999, 999) | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=4), kids, max_size=3), max_leaves=10),
       st.integers(min_value=1, max_value=200))
def test_heal_any_truncated_document_gives_valid_json(value: Any, cut: int) -> None:
    doc = orjson.dumps({"v": value}).decode()
    h = heal_json(doc[: min(cut, len(doc) - 1)])
    assert h.ok  # a prefix of a JSON object can always be closed
    assert isinstance(orjson.loads(h.text), dict)
