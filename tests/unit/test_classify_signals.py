"""classify(): task, complexity, sensitivity, modality, needs, tags and evidence."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.runtime.canonical import CanonicalRequest, Message, Part, ToolSpec
from interlock.runtime.classify import Classification, Classifier, classifier_for, classify
from interlock.runtime.signals import CAPABILITY_BITS, all_cell_keys
from interlock.runtime.table import ClassifierConfig, TagRule

CFG = ClassifierConfig(private_when=("pii", "secrets"))


def req(text: str, *, system: str = "", **kw: object) -> CanonicalRequest:
    return CanonicalRequest(surface="chat", messages=[Message("user", [Part("text", text)])],
                            system=system, **kw)  # type: ignore[arg-type]


def evidence(cls: Classification, signal: str) -> list[str]:
    return [e.detector for e in cls.evidence if e.signal == signal]


# --------------------------------------------------------------------------- task


@pytest.mark.parametrize("text,task", [
    ("Summarize this article for me: the council met on Tuesday and voted.", "summarize"),
    ("tl;dr of the thread below please", "summarize"),
    ("Translate 'good morning, how are you?' into French", "translate"),
    ("How do you say thank you in Japanese? Translate it.", "translate"),
    ("Write a poem about the sea at dawn", "creative"),
    ("Tell me a short story about a dragon", "creative"),
    ("Prove that the square root of 2 is irrational.", "reasoning"),
    ("Solve for x, step by step: 3x + 5 = 20", "reasoning"),
    ("Extract the names and dates from this email as JSON", "extract"),
    ("Fix this bug:\n```python\ndef add(a, b):\n    return a - b\n```", "code"),
    ("Refactor my JavaScript function to use async/await", "code"),
    ("What is the capital of France?", "general"),
    ("hello", "general"),
])
def test_task(text: str, task: str) -> None:
    cls = classify(req(text), CFG)
    assert cls.task == task
    [ev] = [e for e in cls.evidence if e.signal == "task"]
    assert ev.value == task and ev.note


def test_task_from_system_prompt_and_tools_and_response_format() -> None:
    assert classify(req("Here is the text.", system="You summarize documents."), CFG).task \
        == "summarize"
    tools = [ToolSpec("run_python_code"), ToolSpec("read_file")]
    assert classify(req("Make the failing test pass.", tools=tools), CFG).task == "code"
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    assert classify(req("Jane Doe, born 1990, lives in Oslo.", response_format=schema),
                    CFG).task == "extract"
    # A strong other cue wins over the schema.
    assert classify(req("Translate this into German: good night", response_format=schema),
                    CFG).task == "translate"


def test_user_message_weighs_more_than_system() -> None:
    cls = classify(req("Write a haiku about rain", system="You are a coding assistant."), CFG)
    assert cls.task == "creative"


def test_task_tie_breaks_by_fixed_order() -> None:
    # "translated" (3) and "summary" (3): equal scores, translate comes first in TASK_ORDER.
    cls = classify(req("translated summary"), CFG)
    assert cls.task == "translate"
    assert any("translate=6" in e.note and "summarize=6" in e.note for e in cls.evidence)


# --------------------------------------------------------------------------- complexity


def test_complexity_levels() -> None:
    assert classify(req("What time zone is Oslo in?"), CFG).complexity == "low"
    steps = "Plan the migration:\n1. export the data\n2. convert it\n3. load it\nthen verify " \
            "it and then report, then archive."
    assert classify(req(steps), CFG).complexity == "medium"
    long_text = "word " * 2000  # ~2500 tokens > medium_prompt_tokens
    assert classify(req(long_text), CFG).complexity == "medium"
    huge = "word " * 6000  # > long_prompt_tokens
    cls = classify(req(huge), CFG)
    assert cls.complexity == "high"
    assert cls.tokens > CFG.long_prompt_tokens
    hard = ("Prove rigorously, step by step, that the algorithm is correct, and compare its "
            "design with the alternatives:\n1. a\n2. b\n3. c\nthen justify, then evaluate, "
            "then summarize the tradeoffs.")
    assert classify(req(hard), CFG).complexity == "high"


def test_complexity_thresholds_come_from_config() -> None:
    cfg = ClassifierConfig(private_when=(), medium_prompt_tokens=10, long_prompt_tokens=50)
    assert classify(req("word " * 20), cfg).complexity == "medium"  # 100 chars/4 + 4 = 29
    assert classify(req("word " * 40), cfg).complexity == "high"  # 54


def test_conversation_depth_raises_complexity() -> None:
    msgs = [Message("user" if i % 2 == 0 else "assistant", [Part("text", "ok")])
            for i in range(31)]
    cls = classify(CanonicalRequest(surface="chat", messages=msgs), CFG)
    assert cls.complexity == "medium"
    assert any("depth=31" in e.note for e in cls.evidence if e.signal == "complexity")


# --------------------------------------------------------------------------- sensitivity


def test_public_by_default() -> None:
    cls = classify(req("What is the capital of France?"), CFG)
    assert cls.sensitivity == "public"
    assert cls.cell == "general.low.public.text"


@pytest.mark.parametrize("kw,detector", [
    ({"private": True}, "flag:body"),
    ({}, "flag:header"),
])
def test_explicit_flags(kw: dict[str, object], detector: str) -> None:
    cfg = ClassifierConfig(private_when=())
    cls = classify(req("hello", **kw), cfg, header_private=(detector == "flag:header"))
    assert cls.sensitivity == "private"
    assert detector in evidence(cls, "sensitivity")


def test_no_cloud_tag_with_span() -> None:
    cls = classify(req("summarize this #no_cloud"), ClassifierConfig(private_when=()))
    assert cls.sensitivity == "private"
    [ev] = [e for e in cls.evidence if e.detector == "flag:no_cloud"]
    assert ev.span == (15, 24) and ev.note == "in messages[0]"


def test_private_false_does_not_override_detectors() -> None:
    cls = classify(req("my ssn is 123-45-6789", private=False), CFG)
    assert cls.sensitivity == "private"


def test_detectors_count_only_when_category_enabled() -> None:
    text = "email john@acme.io and key sk-proj-Ab3dEf1234567890GhIjKlMnOpQrStUv"
    assert classify(req(text), ClassifierConfig(private_when=())).sensitivity == "public"
    pii = classify(req(text), ClassifierConfig(private_when=("pii",)))
    assert pii.sensitivity == "private" and evidence(pii, "sensitivity") == ["email"]
    sec = classify(req(text), ClassifierConfig(private_when=("secrets",)))
    assert evidence(sec, "sensitivity") == ["openai_key"]
    code = "```python\nimport os\nprint(os.environ)\n```"
    assert classify(req(code), CFG).sensitivity == "public"
    assert classify(req(code), ClassifierConfig(private_when=("code",))).sensitivity == "private"


def test_evidence_never_leaks_raw_values() -> None:
    raws = ["john.doe@acme.io", "123-45-6789", "4111 1111 1111 1111",
            "sk-proj-Ab3dEf1234567890GhIjKlMnOpQrStUv", "hunter2",
            "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "+44 20 7946 0958"]
    text = ("contact john.doe@acme.io, ssn 123-45-6789, card 4111 1111 1111 1111, "
            "key sk-proj-Ab3dEf1234567890GhIjKlMnOpQrStUv, password=hunter2, "
            "token ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8, phone +44 20 7946 0958")
    cls = classify(req(text, system="system prompt"), CFG)
    assert cls.sensitivity == "private"
    dumped = repr(cls.to_dict())
    for raw in raws:
        assert raw not in dumped, raw
    found = {e.detector for e in cls.evidence if e.signal == "sensitivity"}
    assert {"email", "us_ssn", "payment_card", "openai_key", "password_assignment",
            "github_token", "phone"} <= found


def test_spans_point_into_the_right_message() -> None:
    msgs = [Message("user", [Part("text", "first message")]),
            Message("assistant", [Part("text", "ok")]),
            Message("user", [Part("text", "mail me at ann@corp.io")])]
    cls = classify(CanonicalRequest(surface="chat", messages=msgs, system="be nice"), CFG)
    [ev] = [e for e in cls.evidence if e.detector == "email"]
    assert ev.note == "pii in messages[2]"
    assert ev.span == (11, 22)


def test_tool_call_arguments_are_scanned() -> None:
    msgs = [Message("user", [Part("text", "book it")]),
            Message("assistant", [Part("tool_call", tool_call_id="c1", name="book",
                                       arguments='{"email": "ann@corp.io"}')])]
    cls = classify(CanonicalRequest(surface="chat", messages=msgs), CFG)
    assert cls.sensitivity == "private"


# --------------------------------------------------------------------------- tags


def test_tags_keywords_patterns_and_effects() -> None:
    cfg = ClassifierConfig(
        private_when=("tag:internal",),
        tags=(
            TagRule(name="legal", keywords=("NDA", "contract clause"), task="summarize"),
            TagRule(name="internal", patterns=(r"PRJ-\d{4}",)),
            TagRule(name="secretish", keywords=("bluebird",), private=True, complexity="high"),
        ),
    )
    c1 = classify(req("Please review this Contract Clause"), cfg)
    assert c1.tags == ["legal"] and c1.task == "summarize" and c1.sensitivity == "public"
    c2 = classify(req("status of PRJ-1234?"), cfg)
    assert c2.tags == ["internal"] and c2.sensitivity == "private"
    [ev] = [e for e in c2.evidence if e.signal == "tag"]
    assert ev.excerpt == "" and ev.span == (10, 18)  # a pattern's match is not echoed
    c3 = classify(req("project bluebird update"), cfg)
    assert c3.sensitivity == "private" and c3.complexity == "high"
    assert classify(req("the ndas are fine"), cfg).tags == []  # whole words only


def test_bad_tag_pattern_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="broken"):
        Classifier(ClassifierConfig(private_when=(), tags=(TagRule(name="broken",
                                                                   patterns=("(",)),)))


def test_classifier_is_cached_per_config() -> None:
    assert classifier_for(CFG) is classifier_for(CFG)
    same = ClassifierConfig(private_when=("pii", "secrets"))
    assert classifier_for(same) is classifier_for(CFG)


# --------------------------------------------------------------------------- modality, needs


def test_modality_and_needs() -> None:
    r = CanonicalRequest(
        surface="chat",
        messages=[Message("user", [Part("text", "what is in this picture?"),
                                   Part("image", image_url="https://x/y.png")])],
        tools=[ToolSpec("lookup")], response_format={"type": "json_object"}, stream=True,
    )
    cls = classify(r, CFG)
    assert cls.modality == "image"
    bits = CAPABILITY_BITS
    assert cls.needs == bits["tools"] | bits["json"] | bits["vision"] | bits["streaming"]
    assert cls.cell.endswith(".image")
    assert cls.tokens >= 765
    schema = classify(req("x", response_format={"type": "json_schema", "json_schema": {}}), CFG)
    assert schema.needs == bits["json_schema"]
    assert classify(req("x"), CFG).needs == 0


def test_to_dict_is_json_able() -> None:
    import json

    d = classify(req("Summarize: call (555) 123-4567"), CFG).to_dict()
    json.dumps(d)
    assert d["cell"] == "summarize.low.private.text"


# --------------------------------------------------------------------------- properties


texts = st.text(
    alphabet=st.sampled_from(list("abcxyzABC0123456789 .-:@/+_=\n\t()#`'\"{};é€")),
    max_size=400,
) | st.text(max_size=200)


@settings(max_examples=300, deadline=None)
@given(text=texts, system=st.text(max_size=50), private=st.sampled_from([None, True, False]))
def test_classify_never_raises_and_is_deterministic(
    text: str, system: str, private: bool | None
) -> None:
    cfg = ClassifierConfig(private_when=("pii", "secrets", "code"))
    r = req(text, system=system, private=private)
    a = classify(r, cfg)
    b = classify(dataclasses.replace(r), cfg)
    assert a == b
    assert a.cell in all_cell_keys()
    for e in a.evidence:
        if e.span is not None:
            assert 0 <= e.span[0] <= e.span[1]
