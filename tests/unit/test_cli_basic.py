"""The `router` CLI through click's CliRunner: init, validate, compile, diff, profiles,
catalog, models, schemas, and the error paths (exit codes 0 / 1 / 2)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from interlock.compiler.cli import cli
from interlock.runtime.table import load_table

Invoke = Callable[..., Result]

CONFIG = """\
profile: balanced
providers:
  ollama:
    models: ["qwen3:8b", "qwen2.5-coder:7b", "gemma3:12b", "nomic-embed-text"]
  openai: {}
  anthropic: {}
"""


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env() -> dict[str, str | None]:
    # keys set, Ollama pointed at a closed port: no test depends on this machine
    return {
        "OPENAI_API_KEY": "test-key", "ANTHROPIC_API_KEY": "test-key",
        "OLLAMA_HOST": f"127.0.0.1:{closed_port()}",
        **{k: None for k in ("GROQ_API_KEY", "OPENROUTER_API_KEY", "TOGETHER_API_KEY",
                             "MISTRAL_API_KEY", "DEEPSEEK_API_KEY", "GEMINI_API_KEY")},
    }


@pytest.fixture
def run(tmp_path: Path, env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env=env)

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(CONFIG)
    return path


# --------------------------------------------------------------------------- help


def test_help_lists_every_command_and_examples(run: Invoke) -> None:
    r = run("--help")
    assert r.exit_code == 0
    for name in ("init", "validate", "compile", "diff", "profiles", "catalog", "models",
                 "schemas", "test", "explain-route", "doctor", "start"):
        assert name in r.output
    for name in ("init", "validate", "compile", "diff", "test", "explain-route", "doctor"):
        sub = run(name, "--help")
        assert sub.exit_code == 0
        assert "Examples:" in sub.output or "Example" in sub.output, name


def test_unknown_command_and_bad_option_are_usage_errors(run: Invoke) -> None:
    assert run("frobnicate").exit_code == 2
    assert run("validate", "--format", "xml").exit_code == 2
    assert run("catalog", "list", "--capability", "telepathy").exit_code == 2


# --------------------------------------------------------------------------- init


def test_init_writes_a_valid_config_and_refuses_to_overwrite(run: Invoke, tmp_path: Path) -> None:
    r = run("init")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "router.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert 'profile: "balanced"' in text
    assert "openai: {}" in text and "anthropic: {}" in text  # keys set → enabled
    assert "test-key" not in text and "test-key" not in r.output  # never the values
    assert "not reachable" in r.output and "next" in r.output
    # the starter validates (cloud keys are set, so public cells have candidates)
    assert run("validate", "--no-discover").exit_code == 0

    (tmp_path / "router.yaml").write_text("# mine\n")
    again = run("init")
    assert again.exit_code == 1
    assert "already exists" in again.output and "--force" in again.output
    assert (tmp_path / "router.yaml").read_text() == "# mine\n"
    forced = run("init", "--force", "--profile", "cost")
    assert forced.exit_code == 0
    assert 'profile: "cost"' in (tmp_path / "router.yaml").read_text()


def test_init_rejects_an_unknown_profile(run: Invoke, tmp_path: Path) -> None:
    r = run("init", "--profile", "fastest")
    assert r.exit_code == 2
    assert "unknown profile" in r.output
    assert not (tmp_path / "router.yaml").exists()


# --------------------------------------------------------------------------- validate


def test_validate_ok_prints_summary(run: Invoke, config: Path) -> None:
    r = run("validate", "--no-discover")
    assert r.exit_code == 0, r.output
    assert "router.yaml: valid" in r.output
    assert "profile balanced" in r.output


def test_validate_reports_position_code_and_hint(run: Invoke, config: Path) -> None:
    config.write_text(CONFIG + "overrides:\n  code:\n    primary: openai/gpt-4o-mni\n")
    r = run("validate", "--no-discover")
    assert r.exit_code == 1
    line = next(ln for ln in r.output.splitlines() if "[E004]" in ln)
    assert line.startswith("router.yaml:9:")
    assert "overrides.code.primary" in line and "gpt-4o-mni" in line
    assert "did you mean" in line


def test_validate_json_is_machine_readable(run: Invoke, config: Path) -> None:
    config.write_text(CONFIG.replace("profile: balanced", "profile: balancd"))
    r = run("validate", "--no-discover", "--format", "json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["valid"] is False and data["errors"] >= 1
    d = data["diagnostics"][0]
    assert d["code"] == "E004" and d["line"] == 1 and d["file"] == "router.yaml"
    assert "balanced" in d["message"]


def test_validate_prints_warnings_too(run: Invoke, config: Path,
                                      env: dict[str, str | None]) -> None:
    runner = CliRunner(env={**env, "ANTHROPIC_API_KEY": None})
    r = runner.invoke(cli, ["validate", "--no-discover"])
    assert r.exit_code == 0
    assert "[W007]" in r.output and "ANTHROPIC_API_KEY" in r.output


def test_validate_unsafe_yaml_is_refused(run: Invoke, config: Path) -> None:
    config.write_text("profile: !!python/object:os.system balanced\n")
    r = run("validate", "--no-discover")
    assert r.exit_code == 1
    assert "[E102]" in r.output


def test_missing_config_file_is_a_usage_error(run: Invoke) -> None:
    r = run("validate", "nope.yaml")
    assert r.exit_code == 2
    assert "nope.yaml" in r.output


# --------------------------------------------------------------------------- compile


def test_compile_writes_a_loadable_lock(run: Invoke, config: Path, tmp_path: Path) -> None:
    r = run("compile", "--no-discover")
    assert r.exit_code == 0, r.output
    table = load_table(tmp_path / "router.lock.json")
    assert table.profile == "balanced"
    assert "ollama/qwen3:8b" in table.models
    assert table.hash[:19] in r.output
    assert "84 cells" in r.output


def test_compile_invalid_config_exits_1_with_every_diagnostic(run: Invoke, config: Path,
                                                              tmp_path: Path) -> None:
    config.write_text(CONFIG + "rules:\n  - name: x\n    prefer: [nope/model]\n    bogus: 1\n")
    r = run("compile", "--no-discover")
    assert r.exit_code == 1
    assert "[E101]" in r.output and "bogus" in r.output
    assert "Error: invalid configuration" in r.output
    assert not (tmp_path / "router.lock.json").exists()


def test_compile_check_detects_a_stale_lock(run: Invoke, config: Path, tmp_path: Path) -> None:
    assert run("compile", "--no-discover").exit_code == 0
    fresh = run("compile", "--check", "--no-discover")
    assert fresh.exit_code == 0 and "up to date" in fresh.output
    config.write_text(CONFIG + "overrides:\n  code:\n    primary: openai/gpt-4.1-mini\n")
    stale = run("compile", "--check", "--no-discover")
    assert stale.exit_code == 1
    assert "stale" in stale.output
    assert "code.low.public.text" in stale.output  # which cells changed
    assert "openai/gpt-4.1-mini [primary]" in stale.output
    # --check never writes
    assert load_table(tmp_path / "router.lock.json").cells["code.low.public.text"].chain[0] \
        .model != "openai/gpt-4.1-mini"


def test_compile_check_without_a_lock_fails(run: Invoke, config: Path) -> None:
    r = run("compile", "--check", "--no-discover", "-o", "missing.lock.json")
    assert r.exit_code == 1
    assert "missing.lock.json does not exist" in r.output


def test_compile_output_in_a_missing_directory_names_the_file(run: Invoke, config: Path) -> None:
    r = run("compile", "--no-discover", "-o", "no/such/dir/lock.json")
    assert r.exit_code == 1
    assert "no/such/dir/lock.json" in r.output


def test_a_hand_edited_lock_is_refused(run: Invoke, config: Path, tmp_path: Path) -> None:
    assert run("compile", "--no-discover").exit_code == 0
    lock = tmp_path / "router.lock.json"
    lock.write_text(lock.read_text().replace('"balanced"', '"tampered"', 1))
    r = run("models", "--no-discover", "--format", "json")  # compiles; does not read the lock
    assert r.exit_code == 0
    r = run("diff", str(lock), str(lock))
    assert r.exit_code == 1
    assert "hash mismatch" in r.output


# --------------------------------------------------------------------------- diff


def test_diff_between_lock_and_yaml(run: Invoke, config: Path, tmp_path: Path) -> None:
    assert run("compile", "--no-discover", "-o", "old.lock.json").exit_code == 0
    new = tmp_path / "new.yaml"
    new.write_text(CONFIG.replace("profile: balanced", "profile: quality"))
    r = run("diff", "old.lock.json", str(new))
    assert r.exit_code == 0
    assert "profile: balanced → quality" in r.output
    assert "→" in r.output and "[primary]" in r.output
    j = run("diff", "old.lock.json", str(new), "--format", "json")
    data = json.loads(j.stdout)
    assert data["chains"] and {"cell", "old", "new"} <= set(data["chains"][0])
    same = run("diff", "old.lock.json", "old.lock.json", "--exit-code")
    assert same.exit_code == 0
    differs = run("diff", "old.lock.json", str(new), "--exit-code")
    assert differs.exit_code == 1


# --------------------------------------------------------------------------- listings


def test_profiles_list_and_show(run: Invoke) -> None:
    r = run("profiles", "list")
    assert r.exit_code == 0
    for name in ("balanced", "cost", "latency", "privacy-first", "quality"):
        assert name in r.output
    j = json.loads(run("profiles", "list", "--format", "json").stdout)
    assert {p["name"] for p in j} >= {"balanced", "quality"}
    show = run("profiles", "show", "privacy-first")
    assert show.exit_code == 0
    assert show.output.startswith("# yaml-language-server")  # the file, comments included
    assert "name: privacy-first" in show.output
    summary = run("profiles", "show", "cost", "--summary")
    assert "objectives" in summary.output and "strategy" in summary.output
    missing = run("profiles", "show", "fastest")
    assert missing.exit_code == 1 and "unknown profile" in missing.output


def test_catalog_list_filters(run: Invoke) -> None:
    r = run("catalog", "list", "--provider", "ollama")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["key", "provider", "locality"]
    body = [ln for ln in lines[1:] if ln.startswith("ollama/")]
    assert body and all(" local " in ln for ln in body)
    vision = json.loads(run("catalog", "list", "--capability", "vision", "--format",
                            "json").stdout)
    assert vision and all("vision" in m["capabilities"] for m in vision)
    assert {"key", "provider", "locality", "context", "price_in", "price_out"} <= set(vision[0])
    bad = run("catalog", "list", "--provider", "olama")
    assert bad.exit_code == 2 and "did you mean 'ollama'" in bad.output


def test_models_lists_the_compiled_table(run: Invoke, config: Path) -> None:
    r = run("models", "--no-discover")
    assert r.exit_code == 0
    assert "ollama/qwen3:8b" in r.output and "openai/gpt-4.1-mini" in r.output
    assert "groq/" not in r.output  # not enabled
    rows = json.loads(run("models", "--no-discover", "--format", "json").stdout)
    emb = next(m for m in rows if m["key"] == "ollama/nomic-embed-text")
    assert emb["embedding"] is True


def test_schemas_list_and_write(run: Invoke, tmp_path: Path) -> None:
    r = run("schemas")
    assert r.exit_code == 0 and "router.schema.json" in r.output
    w = run("schemas", "--write", "out")
    assert w.exit_code == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["catalog.schema.json", "decision-table.schema.json",
                       "profile.schema.json", "router.schema.json"]
    assert json.loads((tmp_path / "out" / "router.schema.json").read_text())["$schema"]


# --------------------------------------------------------------------------- start


def test_start_hands_its_options_to_the_server(run: Invoke, config: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from interlock.runtime import server

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(server, "run", lambda **kw: calls.append(kw))
    r = run("start", "--config", "router.yaml", "--port", "9999", "--workers", "2")
    assert r.exit_code == 0, r.output
    (kw,) = calls
    assert kw["config"] == Path("router.yaml") and kw["table_path"] is None
    assert (kw["host"], kw["port"], kw["workers"], kw["demo"]) == ("127.0.0.1", 9999, 2, False)
    assert isinstance(kw["environ"], dict) and kw["environ"]["OPENAI_API_KEY"] == "test-key"
    assert run("start", "--config", "router.yaml", "--table", "router.yaml").exit_code == 2
    assert run("start", "--port", "70000").exit_code == 2
    assert len(calls) == 1
