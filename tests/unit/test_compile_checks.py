"""One test per static check: each changes one key of a valid config and asserts
the exact code, message and file:line:col.

The fixture (unit/test_compile_fixture.py) defines its own providers and models.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from interlock.compiler.check import check_cells
from interlock.runtime.table import Candidate, Terms
from unit.test_compile_fixture import PROFILE, ROUTER, change, compile_fixture, only, where


def test_fixture_compiles_clean(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path)
    assert result.diagnostics == []
    assert result.table is not None
    assert len(result.table.cells) == 84


def test_e001_empty_public_cell(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, router=change(ROUTER, "exclude: [acme/luxe]",
                                                     "exclude: [acme, homelab]"))
    assert result.table is None
    e001 = {d.message: d for d in only(result, "E001")}
    assert set(e001) == {f"no candidate for summarize.{c}.public.{m}"
                         for c in ("low", "medium", "high") for m in ("text", "image")}
    d = e001["no candidate for summarize.low.public.text"]
    assert d.severity == "error"
    assert where(d, tmp_path) == "router.yaml:12:5"
    assert d.path == "rules[0]"
    assert "excluded by rule 'summaries'" in d.hint


def test_w011_private_cells_without_local_model(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, router=change(ROUTER, "    models: [small, eye, embed]",
                                                     "    enabled: false"))
    # overrides name homelab/eye, which is now unavailable: drop them for this check
    [err] = [d for d in result.diagnostics if d.is_error]
    assert err.message == ("model 'homelab/eye' is not available: provider 'homelab' is not "
                           "enabled")
    router = change(change(ROUTER, "    models: [small, eye, embed]", "    enabled: false"),
                    "fallbacks: [homelab/eye, acme/fast]", "fallbacks: [acme/fast]")
    result = compile_fixture(tmp_path, router=router)
    [d] = only(result, "W011")
    assert d.severity == "warning"
    assert d.message == "private requests in every private cell will be refused: no local model"
    assert where(d, tmp_path) == "router.yaml:3:1"
    assert result.table is not None  # a warning: the table still compiles
    assert all(not c.chain for c in result.table.cells.values() if c.sensitivity == "private")


def test_w012_no_vision_anywhere(tmp_path: Path) -> None:
    router = """\
profile: profile.yaml
catalogs: [extra.yaml]
providers:
  homelab:
    models: [small]
"""
    result = compile_fixture(tmp_path, router=router)
    [d] = only(result, "W012")
    assert d.message == "no enabled model has vision: image requests will be refused"
    assert not [d for d in result.diagnostics if d.code in ("E001", "W011")]
    assert result.table is not None


def test_e002_cloud_candidate_in_private_cell(tmp_path: Path) -> None:
    table = compile_fixture(tmp_path).table
    assert table is not None
    assert check_cells(table.cells, table.embeddings, table.models) == []
    key = "general.low.private.text"
    cloud = Candidate(model="acme/fast", provider="acme", role="fallback", local=False,
                      caps=table.models["acme/fast"].caps, score=0.5,
                      terms=Terms(quality=0.5, cost=0, latency=0, locality=0))
    cell = table.cells[key]
    cells = dict(table.cells)
    cells[key] = cell.model_copy(update={"chain": (*cell.chain, cloud)})
    [d] = check_cells(cells, table.embeddings, table.models)
    assert (d.code, d.severity) == ("E002", "error")
    assert d.message == "cloud model 'acme/fast' in private cell general.low.private.text"


def test_e003_override_without_vision(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, router=change(ROUTER, "primary: acme/smart",
                                                     "primary: homelab/small"))
    assert result.table is None
    [d] = only(result, "E003")
    assert d.message == ("'homelab/small' lacks vision, needed by 6 cells (code.low.public.image,"
                         " code.low.private.image, code.medium.public.image, …)")
    assert where(d, tmp_path) == "router.yaml:9:14"
    assert d.path == "overrides.code.primary"


def test_e004_unknown_model_with_did_you_mean(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, router=change(ROUTER, "[homelab/eye, acme/fast]",
                                                     "[homelab/eye, acme/fsat]"))
    assert result.table is None
    [d] = only(result, "E004")
    assert d.format() == (
        f"{tmp_path / 'router.yaml'}:10:30 overrides.code.fallbacks[1]: unknown model "
        "'acme/fsat' (did you mean 'acme/fast'?) [E004]"
    )


def test_e004_unknown_provider(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, router=change(ROUTER, "  acme: {}", "  acmee: {}"))
    d = only(result, "E004")[0]
    assert d.message == "unknown provider 'acmee' (did you mean 'acme'?)"
    assert where(d, tmp_path) == "router.yaml:6:3"


def test_e004_unknown_profile(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, router=change(ROUTER, "profile: profile.yaml",
                                                     "profile: balancd"))
    [d] = only(result, "E004")
    assert d.message == "unknown profile 'balancd' (did you mean 'balanced'?)"
    assert where(d, tmp_path) == "router.yaml:1:10"


def test_w005_shadowed_rule(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, router=change(
        ROUTER, "match: {modality: [image], complexity: [high]}", "match: {task: [summarize]}"))
    [d] = only(result, "W005")
    assert d.severity == "warning"
    assert d.message == ("rule 'images' can never match: earlier rule 'summaries' covers every "
                         "cell it matches")
    assert where(d, tmp_path) == "router.yaml:15:5"
    assert result.table is not None


def test_w005_empty_match(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, router=change(
        ROUTER, "match: {modality: [image], complexity: [high]}", "match: {modality: []}"))
    [d] = only(result, "W005")
    assert d.message == "rule 'images' can never match: its match is empty"


def test_e006_latency_budget_shrinks(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, profile=change(PROFILE, "high: 60000", "high: 3000"))
    assert result.table is None
    [d] = only(result, "E006")
    assert d.message == "latency budget for high (3000 ms) is below medium (20000 ms)"
    assert where(d, tmp_path) == "profile.yaml:7:48"
    assert d.path == "budgets.latency_ms.high"


def test_e006_price_and_quality_unsatisfiable(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, profile=change(PROFILE, "high: 60}", "high: 93}"))
    assert result.table is None
    [d] = only(result, "E006")
    assert d.message == ("no enabled model costs at most 5/20 USD/Mtok and reaches quality 93")
    assert where(d, tmp_path) == "profile.yaml:9:42"


def test_w007_key_unset(tmp_path: Path) -> None:
    result = compile_fixture(tmp_path, environ={})
    [d] = only(result, "W007")
    assert d.severity == "warning"
    assert d.message == "ACME_API_KEY is not set: provider 'acme' cannot authenticate"
    assert where(d, tmp_path) == "router.yaml:6:3"
    assert result.table is not None  # CI compiles without secrets


@pytest.mark.parametrize(("old", "new", "message", "pos"), [
    ("acme: {}", "acme: {enabled: maybe}",
     "expected true or false, got string \"maybe\"", "router.yaml:6:19"),
    ("  - name: images\n", "  - name: images\n    locality: lokal\n",
     "\"lokal\" is not allowed (did you mean 'local'?)", "router.yaml:16:15"),
])
def test_e101_schema(tmp_path: Path, old: str, new: str, message: str, pos: str) -> None:
    result = compile_fixture(tmp_path, router=change(ROUTER, old, new))
    [d] = only(result, "E101")
    assert d.message == message
    assert where(d, tmp_path) == pos


def test_e001_once_when_no_chat_model_at_all(tmp_path: Path) -> None:
    router = "profile: profile.yaml\ncatalogs: [extra.yaml]\nproviders:\n  homelab:\n" \
             "    models: [embed]\n"
    result = compile_fixture(tmp_path, router=router)
    [d] = result.diagnostics
    assert (d.code, d.message) == ("E001", "no candidate for any cell: no chat model is enabled")
    assert where(d, tmp_path) == "router.yaml:3:1"
    assert result.table is None
