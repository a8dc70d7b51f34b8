"""decide() on tag variants: a request carrying a tag routes by the tag rule's cell,
the earliest rule wins among several tags, and privacy still filters at run time."""

from __future__ import annotations

from pathlib import Path

from interlock.runtime.canonical import CanonicalRequest, Message, Part
from interlock.runtime.classify import Classification, Classifier
from interlock.runtime.decide import decide
from interlock.runtime.table import DecisionTable, TagVariant
from unit.test_compile_fixture import ROUTER, compile_fixture

TAGS = ("tags:\n  - {name: legal, keywords: [subpoena]}\n"
        "  - {name: hr, keywords: [payroll]}\n")
RULES = ("  - name: legal-to-smart\n    match: {tags: [legal]}\n"
         "    prefer: [acme/smart]\n    locality: cloud\n"
         "  - name: hr-local\n    match: {tags: [hr, legal], task: [general]}\n"
         "    locality: local\n")


def compiled(tmp_path: Path) -> DecisionTable:
    result = compile_fixture(tmp_path, router=ROUTER + RULES + TAGS)
    assert result.table is not None, [d.format() for d in result.diagnostics]
    return result.table


def req(text: str) -> CanonicalRequest:
    return CanonicalRequest(surface="chat", model="auto",
                            messages=[Message(role="user", parts=[Part(type="text", text=text)])])


def route(table: DecisionTable, text: str) -> tuple[Classification, list[str], str | None, str]:
    r = req(text)
    cls = Classifier(table.classifier).classify(r)
    d = decide(table, cls, r)
    return cls, [c.model for c in d.candidates], d.tag, d.reason


def test_tagged_request_uses_the_variant(tmp_path: Path) -> None:
    table = compiled(tmp_path)
    cls, models, tag, reason = route(table, "Please summarize what a subpoena is.")
    assert cls.tags == ["legal"]
    assert tag == "legal"
    assert models[0] == "acme/smart"
    assert all(m.startswith("acme/") for m in models)
    assert f"cell {cls.cell} tag legal: cloud primary acme/smart" == reason


def test_untagged_request_uses_the_base_cell(tmp_path: Path) -> None:
    table = compiled(tmp_path)
    cls, models, tag, reason = route(table, "Please summarize what a treaty is.")
    assert cls.tags == [] and tag is None
    assert models == [c.model for c in table.cells[cls.cell].chain]
    assert reason.startswith(f"cell {cls.cell}: ")


def test_tag_without_a_variant_for_the_cell_keeps_the_base(tmp_path: Path) -> None:
    table = compiled(tmp_path)
    key = "code.low.public.text"
    assert key not in table.tag_cells["hr"]  # hr-local matches task general only
    cls = Classification(task="code", complexity="low", sensitivity="public",
                         modality="text", needs=0, tokens=10, tags=["hr"], evidence=[],
                         cell=key)
    d = decide(table, cls, req("x"))
    assert d.tag is None and d.cell == table.cells[key]


def test_earliest_rule_wins_whatever_the_tag_order(tmp_path: Path) -> None:
    table = compiled(tmp_path)
    key = "general.low.public.text"
    assert table.tag_cells["legal"][key].rank < table.tag_cells["hr"][key].rank
    for tags in (["hr", "legal"], ["legal", "hr"]):
        cls = Classification(task="general", complexity="low", sensitivity="public",
                             modality="text", needs=0, tokens=10, tags=tags, evidence=[],
                             cell=key)
        d = decide(table, cls, req("x"))
        assert d.tag == "legal" and d.candidates[0].model == "acme/smart", tags
    only_hr = Classification(task="general", complexity="low", sensitivity="public",
                             modality="text", needs=0, tokens=10, tags=["hr"], evidence=[],
                             cell=key)
    d = decide(table, only_hr, req("x"))
    assert d.tag == "hr" and d.candidates and all(c.local for c in d.candidates)


def test_private_tagged_request_with_cloud_rule_gets_no_cloud(tmp_path: Path) -> None:
    table = compiled(tmp_path)
    r = req("The subpoena names me; reach me at jane.doe@example.com")
    cls = Classifier(table.classifier).classify(r, header_private=True)
    assert cls.sensitivity == "private" and "legal" in cls.tags
    d = decide(table, cls, r)
    assert d.tag == "legal"
    # the rule admits cloud models only and a private cell admits none: refused, never
    # sent to the cloud (compile time warned with W011)
    assert not d.cell.policy.allow_cloud
    assert d.candidates == [] and d.cell.chain == ()
    assert "acme/smart" in {e.model for e in d.cell.excluded}
    assert d.reason == f"cell {cls.cell} tag legal: no candidate (empty chain)"
    # a tag-less private request of the same cell still goes to a local model
    plain = req("Reach me at jane.doe@example.com")
    pcls = Classifier(table.classifier).classify(plain, header_private=True)
    pd = decide(table, pcls, plain)
    assert pd.tag is None and pd.candidates and all(c.local for c in pd.candidates)


def test_runtime_filters_a_cloud_model_in_a_forged_private_variant(tmp_path: Path) -> None:
    table = compiled(tmp_path)
    key = "general.low.private.text"
    public = table.tag_cells["legal"]["general.low.public.text"].cell
    forged_cell = public.model_copy(update={"key": key, "sensitivity": "private"})
    forged = table.model_copy(update={"tag_cells": {"legal": {
        key: TagVariant(rule="legal-to-smart", rank=0, cell=forged_cell)}}})
    cls = Classification(task="general", complexity="low", sensitivity="private",
                         modality="text", needs=0, tokens=10, tags=["legal"], evidence=[],
                         cell=key)
    d = decide(forged, cls, req("x"))
    assert d.tag == "legal"
    assert d.candidates == []
    assert {c.model for c, _ in d.filtered} == {c.model for c in forged_cell.chain}
    assert all(why.startswith("private request: cloud model") for _, why in d.filtered)
    assert d.explain()["tag"] == "legal"
