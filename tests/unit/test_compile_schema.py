"""The committed JSON Schemas: in sync with the models, valid 2020-12, and every
YAML the project ships validates against them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from interlock.compiler import builtin
from interlock.compiler.load import load_file, load_text
from interlock.compiler.model import CatalogFile, Profile
from interlock.compiler.schema import (
    KINDS,
    Kind,
    generate_schema,
    parse,
    render_schema,
    schema_filename,
    schema_for,
    validate,
    write_schemas,
)
from jsonschema import Draft202012Validator

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", KINDS)
def test_committed_schema_equals_generated(kind: Kind) -> None:
    committed = (REPO / "schemas" / schema_filename(kind)).read_text(encoding="utf-8")
    assert committed == render_schema(kind), "run `router schemas --write schemas`"


@pytest.mark.parametrize("kind", KINDS)
def test_packaged_schema_is_valid_2020_12(kind: Kind) -> None:
    schema = schema_for(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(schema_filename(kind))
    assert schema["title"] and schema["description"]
    assert schema == generate_schema(kind)


def test_write_schemas(tmp_path: Path) -> None:
    written = write_schemas(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(schema_filename(k) for k in KINDS)
    assert json.loads(written[0].read_text())["$schema"].endswith("2020-12/schema")


def test_shipped_catalogs_validate() -> None:
    files = builtin.catalog_files()
    assert files, "catalog/*.yaml missing from the package"
    for doc in files:
        cat, diags = parse("catalog", doc, CatalogFile)
        assert diags == [], [d.format() for d in diags]
        assert cat is not None


def test_shipped_profiles_validate() -> None:
    names = builtin.profile_names()
    assert {"balanced", "cost", "latency", "privacy-first", "quality"} <= set(names)
    for name in names:
        doc = builtin.load_builtin_profile(name)
        assert doc.origin == f"pkg:profiles/{name}.yaml"
        prof, diags = parse("profile", doc, Profile)
        assert diags == [], [d.format() for d in diags]
        assert prof is not None and prof.name == name


def test_shipped_yaml_files_in_the_tree_validate() -> None:
    kinds: dict[str, Kind] = {"catalog": "catalog", "profiles": "profile"}
    seen = 0
    for folder, kind in kinds.items():
        for path in sorted((REPO / folder).glob("*.yaml")):
            assert validate(kind, load_file(path)) == [], path
            seen += 1
    assert seen >= 7


def test_all_errors_of_a_file_are_reported_with_positions() -> None:
    doc = load_text(
        "name: Bad Name\n"
        "objectives: {quality: 1, cost: -1}\n"
        "local: {max_complexity: extreme}\n"
        "privacy: {private_when: [pii, secret]}\n"
        "chain: {strategy: fastest, max_candidates: 4, extra: 1}\n",
        "p.yaml",
    )
    diags = validate("profile", doc)
    got = {(d.path, d.line, d.col): d for d in diags}
    assert len(diags) >= 5
    assert got[("name", 1, 7)].message.startswith('"Bad Name" does not match')
    assert got[("objectives", 2, 1)].message == "missing required key 'latency'"
    assert got[("local.max_complexity", 3, 25)].hint == "allowed values: low, medium, high"
    assert got[("privacy.private_when[1]", 4, 31)].message == (
        "\"secret\" is not a privacy category (did you mean 'secrets'?)")
    assert got[("chain.extra", 5, 47)].message == "unknown key 'extra'"
    assert "max_candidates" in got[("chain.extra", 5, 47)].hint
    assert all(d.code == "E101" and d.file == "p.yaml" for d in diags)
    assert got[("objectives.cost", 2, 32)].message == "-1 is less than the minimum of 0"


def test_unknown_mapping_key_in_enum_keyed_dict() -> None:
    doc = load_text("overrides:\n  cod: {primary: x}\n", "router.yaml")
    [d] = validate("router", doc)
    assert d.format() == ("router.yaml:2:3 overrides.cod: unknown key 'cod' "
                          "(did you mean 'code'?) [E101]")


def test_optional_fields_report_the_real_type_error() -> None:
    doc = load_text("providers:\n  ollama: {timeout_ms: fast}\n", "router.yaml")
    [d] = validate("router", doc)
    assert d.message == 'expected an integer, got string "fast"'
    assert (d.line, d.col) == (2, 24)
