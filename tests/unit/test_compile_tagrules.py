"""Rules on custom tags (``match.tags``): the compiler emits tag variants of the cells
the rule covers, checks them like cells, and rejects unknown tags."""

from __future__ import annotations

from pathlib import Path

from interlock.compiler.check import check_tag_cells
from interlock.compiler.diff import diff_tables, render_text
from interlock.compiler.flatten import Flat
from interlock.compiler.model import Match
from interlock.compiler.resolve import ResolvedRule
from interlock.runtime.table import DecisionTable, TagVariant, parse_table
from unit.test_compile_fixture import PROFILE, ROUTER, compile_fixture, only, where

TAGS = ("tags:\n  - {name: legal, keywords: [subpoena]}\n"
        "  - {name: hr, keywords: [payroll]}\n")
LEGAL = ("  - name: legal-to-smart\n    match: {tags: [legal], sensitivity: [public]}\n"
         "    prefer: [acme/smart]\n    locality: cloud\n")


def table_of(tmp_path: Path, router: str) -> DecisionTable:
    result = compile_fixture(tmp_path, router=router)
    assert result.table is not None, [d.format() for d in result.diagnostics]
    return result.table


def models(cell_chain: object) -> list[str]:
    return [c.model for c in cell_chain]  # type: ignore[attr-defined]


def test_variants_only_for_tag_rules_and_the_cells_they_match(tmp_path: Path) -> None:
    plain = table_of(tmp_path, ROUTER + TAGS)
    assert plain.tag_cells == {}
    table = table_of(tmp_path, ROUTER + LEGAL + TAGS)
    assert list(table.tag_cells) == ["legal"]  # no rule names hr: no variant for it
    variants = table.tag_cells["legal"]
    assert len(variants) == 42 and all(".public." in k for k in variants)
    v = variants["general.low.public.text"]
    assert (v.rule, v.rank) == ("legal-to-smart", 2)
    assert models(v.cell.chain)[0] == "acme/smart"
    assert all(not c.local for c in v.cell.chain)
    assert v.cell.rules == ("legal-to-smart",)
    # the base cell is untouched by the tag rule
    base = table.cells["general.low.public.text"]
    assert base == plain.cells["general.low.public.text"]
    assert "legal-to-smart" not in base.rules and any(c.local for c in base.chain)


def test_tag_rule_takes_precedence_over_earlier_tagless_rule(tmp_path: Path) -> None:
    # summaries (tag-less, earlier) covers summarize cells; the tag rule still shapes
    # their legal variant, and the base summarize cells keep the tag-less rule
    table = table_of(tmp_path, ROUTER + LEGAL + TAGS)
    assert table.cells["summarize.low.public.text"].rules == ("summaries",)
    assert table.tag_cells["legal"]["summarize.low.public.text"].cell.rules == (
        "legal-to-smart",)


def test_first_tag_rule_wins_and_ranks_follow_rule_order(tmp_path: Path) -> None:
    rules = (LEGAL + "  - name: legal-code\n    match: {tags: [legal], task: [code]}\n"
             "    prefer: [acme/fast]\n"
             "  - name: hr-local\n    match: {tags: [hr, legal]}\n    locality: local\n")
    result = compile_fixture(tmp_path, router=ROUTER + rules + TAGS)
    assert result.table is not None
    table = result.table
    legal, hr = table.tag_cells["legal"], table.tag_cells["hr"]
    # legal-code is entirely covered by legal-to-smart for public cells; private
    # code cells are its own (legal-to-smart is public only)
    assert legal["code.low.public.text"].rule == "legal-to-smart"
    assert legal["general.low.private.text"].rule == "hr-local"
    assert legal["code.low.private.text"].rule == "legal-code"
    assert hr["general.low.public.text"].rule == "hr-local"
    assert hr["general.low.public.text"].rank == 4
    assert all(c.local for c in hr["general.low.public.text"].cell.chain)


def test_unknown_tag_is_e004_with_position_and_did_you_mean(tmp_path: Path) -> None:
    router = ROUTER + "  - name: oops\n    match: {tags: [legl]}\n" + TAGS
    result = compile_fixture(tmp_path, router=router)
    assert result.table is None
    [d] = only(result, "E004")
    assert d.message == "unknown tag 'legl' (did you mean 'legal'?)"
    assert d.path == "rules[2].match.tags[0]"
    assert where(d, tmp_path) == "router.yaml:18:20"


def test_unknown_tag_in_profile_rule_without_any_tag(tmp_path: Path) -> None:
    profile_rule = "  - name: p-legal\n    match: {tags: [legal]}\n"
    result = compile_fixture(tmp_path, profile=PROFILE + profile_rule)
    [d] = only(result, "E004")
    assert d.message == "unknown tag 'legal'"
    assert "no tag is defined" in d.hint
    assert where(d, tmp_path).startswith("profile.yaml:")


def test_profile_rules_match_tags_too(tmp_path: Path) -> None:
    profile = PROFILE + "  - name: p-hr\n    match: {tags: [hr]}\n    locality: local\n"
    result = compile_fixture(tmp_path, router=ROUTER + TAGS, profile=profile)
    assert result.table is not None, [d.format() for d in result.diagnostics]
    v = result.table.tag_cells["hr"]["creative.high.public.text"]
    assert v.rule == "p-hr" and all(c.local for c in v.cell.chain)


def test_private_variants_never_hold_cloud_models(tmp_path: Path) -> None:
    # no sensitivity restriction: the rule says cloud, private cells still admit none
    rule = "  - name: legal-cloud\n    match: {tags: [legal]}\n    locality: cloud\n"
    result = compile_fixture(tmp_path, router=ROUTER + rule + TAGS)
    assert result.table is not None
    private = {k: v for k, v in result.table.tag_cells["legal"].items() if ".private." in k}
    assert len(private) == 42
    assert all(c.local for v in private.values() for c in v.cell.chain)
    # ... which means refusal for most of them, said at compile time at the rule
    [w] = only(result, "W011")
    assert "rule 'legal-cloud': private requests tagged 'legal'" in w.message
    assert where(w, tmp_path).startswith("router.yaml:17:")


def test_e002_on_a_cloud_model_in_a_private_variant(tmp_path: Path) -> None:
    table = table_of(tmp_path, ROUTER + LEGAL + TAGS)
    public = table.tag_cells["legal"]["general.low.public.text"]
    bad_cell = public.cell.model_copy(update={"sensitivity": "private",
                                              "key": "general.low.private.text"})

    class _Where:
        def diag(self, code: str, message: str, *sub: object, hint: str = "") -> object:
            return (code, message)

    rule = ResolvedRule(name="legal-to-smart", match=Match(tags=["legal"]), prefer=(),
                        exclude=frozenset(), locality="cloud", strategy=None,
                        latency_budget_ms=None, max_price=None, min_quality=None,
                        verifiers=None, where=_Where())  # type: ignore[arg-type]
    flat = Flat(cells=dict(table.cells), embeddings={},
                tag_cells={"legal": {"general.low.private.text": TagVariant(
                    rule="legal-to-smart", rank=2, cell=bad_cell)}},
                tag_rules={("legal", "general.low.private.text"): rule})
    found = check_tag_cells(flat, table.models)
    assert ("E002", "rule 'legal-to-smart': cloud model 'acme/smart' in private cell "
            "general.low.private.text (tag 'legal')") in found


def test_w005_takes_tags_into_account(tmp_path: Path) -> None:
    rules = ("  - name: everything\n    match: {}\n"
             "  - name: legal-all\n    match: {tags: [legal]}\n"
             "  - name: legal-code\n    match: {tags: [legal], task: [code]}\n"
             "  - name: hr-code\n    match: {tags: [hr], task: [code]}\n")
    result = compile_fixture(tmp_path, router=ROUTER + rules + TAGS)
    shadowed = [d.message for d in result.diagnostics if d.code == "W005"]
    # the tag-less catch-all shadows the tag-less profile rule but neither tag rule;
    # legal-all shadows legal-code (same tag), not hr-code
    assert [m.split(":")[0] for m in shadowed] == [
        "rule 'code-smart' can never match", "rule 'legal-code' can never match"], shadowed
    assert "'everything'" in shadowed[0]
    assert shadowed[1].endswith("earlier rule 'legal-all' covers every cell it matches")


def test_deterministic_and_round_trips(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = compile_fixture(tmp_path / "a", router=ROUTER + LEGAL + TAGS)
    b = compile_fixture(tmp_path / "b", router=ROUTER + LEGAL + TAGS)
    assert a.table is not None and b.table is not None
    raw = a.table.canonical_bytes()
    assert raw == b.table.canonical_bytes()
    assert parse_table(raw) == a.table
    assert b'"tag_cells"' in raw


def test_tables_without_tag_rules_keep_their_old_shape(tmp_path: Path) -> None:
    table = table_of(tmp_path, ROUTER + TAGS)
    raw = table.canonical_bytes()
    assert b"tag_cells" not in raw  # an old reader, an old hash: unchanged
    assert parse_table(raw).hash == table.hash


def test_diff_lists_tag_variant_changes(tmp_path: Path) -> None:
    old = table_of(tmp_path, ROUTER + TAGS)
    new = table_of(tmp_path, ROUTER + LEGAL + TAGS)
    d = diff_tables(old, new)
    assert "general.low.public.text#legal" in d.cells_added
    assert not any(k.startswith("general.low.public.text") for k in d.cells_removed)
    assert "+ cell general.low.public.text#legal" in render_text(d)
    moved = LEGAL.replace("acme/smart", "acme/fast")
    d2 = diff_tables(new, table_of(tmp_path, ROUTER + moved + TAGS))
    changed = {c.cell for c in d2.chains}
    assert "general.low.public.text#legal" in changed
    assert not any("#" not in k for k in changed)  # base cells did not move


def test_e001_when_a_tag_rule_leaves_a_public_variant_empty(tmp_path: Path) -> None:
    rule = ("  - name: legal-nowhere\n    match: {tags: [legal], task: [translate]}\n"
            "    locality: cloud\n    exclude: [acme]\n")
    result = compile_fixture(tmp_path, router=ROUTER + rule + TAGS)
    assert result.table is None
    [e] = only(result, "E001")
    assert e.message.startswith("rule 'legal-nowhere': no candidate for ")
    assert e.message.endswith("when tagged 'legal'")
    assert where(e, tmp_path).startswith("router.yaml:17:")
