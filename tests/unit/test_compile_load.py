"""Safe YAML loading: positions, plain data, and refusing unsafe input quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from interlock.compiler.diagnostics import ConfigError, Diagnostic, did_you_mean
from interlock.compiler.load import MAX_BYTES, load_bytes, load_file, load_text


def refused(text: str | bytes) -> Diagnostic:
    raw = text.encode() if isinstance(text, str) else text
    with pytest.raises(ConfigError) as info:
        load_bytes(raw, "x.yaml")
    [d] = info.value.diagnostics
    return d


def test_plain_data_and_positions() -> None:
    doc = load_text("a: 1\nb:\n  - x\n  - {c: 0x1F, d: yes, e: 2025-01-15, f: ~, g: 1.5}\n",
                    "x.yaml")
    assert doc.data == {"a": 1, "b": ["x", {"c": 31, "d": "yes", "e": "2025-01-15", "f": None,
                                            "g": 1.5}]}
    assert doc.position(("a",)) == (1, 4)
    assert doc.position(("b", 0)) == (3, 5)
    assert doc.position(("b", 1, "e")) == (4, 26)
    assert doc.position(("b", 1, "e"), key=True) == (4, 23)
    # unknown paths fall back to the nearest parent that exists
    assert doc.position(("b", 1, "nope", 3)) == (4, 5)
    d = doc.diag("E004", "bad", ("b", 1, "c"), hint="h")
    assert d.format() == "x.yaml:4:9 b[1].c: bad [E004]"
    assert d.severity == "error"
    assert doc.diag("W007", "w").severity == "warning"


def test_merge_keys_and_small_aliases() -> None:
    doc = load_text("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n",
                    "x.yaml")
    assert doc.data["thing"] == {"x": 1, "y": 3}
    assert doc.data["list"] == [{"x": 1, "y": 2}, {"x": 1, "y": 2}]


@pytest.mark.parametrize(("text", "tag", "pos"), [
    ("a: !!python/object:os.system {}\n", "!!python/object:os.system", (1, 4)),
    ("a:\n  - !!python/name:os.system ''\n", "!!python/name:os.system", (2, 5)),
    ("a: !custom 3\n", "!custom", (1, 4)),
    ("a: !!binary aGVsbG8=\n", "!!binary", (1, 4)),
    ("!!set {a, b}\n", "!!set", (1, 1)),
])
def test_non_standard_tags_are_refused(text: str, tag: str, pos: tuple[int, int]) -> None:
    d = refused(text)
    assert (d.code, d.message) == ("E102", f"tag '{tag}' is not allowed")
    assert (d.line, d.col) == pos
    assert "plain YAML" in d.hint


def test_alias_bomb_refused_fast() -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    d = refused("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 1.0
    assert d.code == "E102"
    assert "alias bomb" in d.message
    assert d.line is not None and d.line > 1


def test_too_many_aliases_refused() -> None:
    d = refused("a: &a 1\nb: [" + ", ".join(["*a"] * 101) + "]\n")
    assert (d.code, d.message) == ("E102", "more than 100 alias references")


def test_recursive_alias_refused() -> None:
    d = refused("a: &a [1, *a]\n")
    assert (d.code, d.message, d.line) == ("E102", "recursive alias", 1)


def test_oversize_refused_before_parsing(tmp_path: Path) -> None:
    big = b"a: " + b"x" * MAX_BYTES + b"\n"
    started = time.perf_counter()
    d = refused(big)
    assert d.code == "E102" and "over the 1048576-byte limit" in d.message
    path = tmp_path / "big.yaml"
    path.write_bytes(big)
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert info.value.diagnostics[0].code == "E102"
    assert time.perf_counter() - started < 0.5


def test_deep_nesting_refused() -> None:
    started = time.perf_counter()
    d = refused("[" * 5000 + "]" * 5000)
    assert (d.code, d.message) == ("E102", "nesting deeper than 64 levels")
    assert time.perf_counter() - started < 2.0


def test_duplicate_key_is_an_error_with_position() -> None:
    d = refused("a:\n  b: 1\n  c: 2\n  b: 3\n")
    assert (d.code, d.message, d.line, d.col) == ("E100", "duplicate key 'b' (first at line 2)",
                                                  4, 3)


def test_syntax_error_has_position() -> None:
    d = refused("a: [1, 2\nb: 3\n")
    assert d.code == "E100"
    assert d.line is not None and d.col is not None


def test_other_yaml_errors() -> None:
    assert refused("a: 1\n---\nb: 2\n").message == "more than one YAML document (---)"
    assert refused("? [a]\n: 1\n").message == "mapping keys must be plain scalars"
    assert refused(b"a: \xff\xfe\n").code == "E100"
    assert refused("a: *nope\n").code in ("E100",)


def test_missing_file_is_a_diagnostic(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path / "nope.yaml")
    assert info.value.diagnostics[0].message.startswith("cannot read the file")


def test_empty_document_is_none() -> None:
    assert load_text("# only a comment\n", "x.yaml").data is None


def test_diagnostic_format_json_and_did_you_mean() -> None:
    d = Diagnostic("E004", "error", "unknown model 'gpt-4o-mni' (did you mean 'gpt-4o-mini'?)",
                   "router.yaml", 14, 7, "overrides.code.fallbacks[1]", "hint text")
    assert d.format() == ("router.yaml:14:7 overrides.code.fallbacks[1]: unknown model "
                          "'gpt-4o-mni' (did you mean 'gpt-4o-mini'?) [E004]")
    assert d.format(with_hint=True).endswith("\n  hint: hint text")
    assert d.to_json()["name"] == "unknown-name"
    assert d.to_json()["line"] == 14
    assert Diagnostic("W007", "warning", "m").format() == "m [W007]"
    assert did_you_mean("gpt-4o-mni", ["gpt-4o-mini", "o3"]) == " (did you mean 'gpt-4o-mini'?)"
    assert did_you_mean("zzzz", ["gpt-4o-mini"]) == ""
    err = ConfigError([d, d])
    assert str(err).endswith("(and 1 more)")
