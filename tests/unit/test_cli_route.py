"""`router test` and `router explain-route` through CliRunner: the shipped cases pass,
a wrong expectation fails with what differed, and explain shows evidence, chain, terms
and what would change the winner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from interlock.compiler import cases
from interlock.compiler.cli import cli

CONFIG = """\
profile: balanced
providers:
  ollama:
    models: ["qwen3:8b", "qwen2.5-coder:7b", "gemma3:12b", "nomic-embed-text"]
  openai: {}
  anthropic: {}
"""
ENV: dict[str, str | None] = {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k",
                              "OLLAMA_HOST": "127.0.0.1:9"}
SHIPPED = Path(cases.__file__).resolve().parents[1] / "profiles" / "cases"
HARD = ("Prove that there are infinitely many primes of the form 4k+3. Think step by step:\n"
        "1. First, state the lemma.\n2. Then prove it rigorously.\n"
        "3. Finally, derive the contradiction.")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "router.yaml").write_text(CONFIG)
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner(env=ENV).invoke(cli, ["--help"] if not args else list(args),
                                     catch_exceptions=False)


# --------------------------------------------------------------------------- router test


@pytest.mark.parametrize("profile", ["balanced", "cost", "latency", "privacy-first", "quality"])
def test_shipped_cases_pass_for_every_profile(profile: str) -> None:
    path = SHIPPED / f"{profile}.yaml"
    assert path.is_file()
    loaded = cases.load_cases(path)
    assert loaded.config is not None and loaded.config["profile"] == profile
    assert len(loaded.cases) >= 10
    r = run("test", str(path))
    assert r.exit_code == 0, r.output
    assert f"{len(loaded.cases)} passed, 0 failed" in r.output


def test_builtin_flag_runs_every_shipped_file() -> None:
    r = run("test", "--builtin", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["failed"] == 0 and data["passed"] >= 50
    assert {f["profile"] for f in data["files"]} == {"balanced", "cost", "latency",
                                                     "privacy-first", "quality"}


def test_a_wrong_expectation_fails_and_says_what_differed(in_tmp: Path) -> None:
    (in_tmp / "cases.yaml").write_text(
        "- name: right\n  prompt: What is the capital of France?\n  locality: local\n"
        "- name: wrong\n  prompt: 'My card 4111 1111 1111 1111 was charged twice'\n"
        "  locality: cloud\n  cell: code.*\n")
    r = run("test", "cases.yaml")  # ./router.yaml (balanced)
    assert r.exit_code == 1
    assert "PASS  right" in r.output and "FAIL  wrong" in r.output
    assert "locality: expected cloud, got local" in r.output
    assert "cell: expected code.*, got general.low.private.text" in r.output
    assert "1 passed, 1 failed" in r.output


def test_jsonl_cases_with_a_table(in_tmp: Path) -> None:
    assert run("compile", "--no-discover").exit_code == 0
    lines = [
        {"name": "pinned cloud model", "request": {"model": "openai/gpt-4o-mini", "messages": [
            {"role": "user", "content": "hello"}]}, "model": "gpt-4o-mini"},
        {"name": "header", "prompt": "hello", "headers": {"X-Router-Private": "yes"},
         "sensitivity": "private"},
        {"name": "hard", "prompt": HARD, "cell": "reasoning.high.public.text",
         "locality": "cloud"},
    ]
    (in_tmp / "c.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    r = run("test", "c.jsonl", "--table", "router.lock.json")
    assert r.exit_code == 0, r.output
    assert "3 passed" in r.output


def test_a_bad_case_is_a_positioned_error(in_tmp: Path) -> None:
    (in_tmp / "bad.yaml").write_text(
        "cases:\n  - name: typo\n    prompt: hi\n    localty: local\n")
    r = run("test", "bad.yaml")
    assert r.exit_code == 1
    assert "bad.yaml:4:5 cases[0].localty: unknown key 'localty' (did you mean 'locality'?)" \
        " [E101]" in r.output
    (in_tmp / "vacuous.yaml").write_text("- name: nothing\n  prompt: hi\n")
    r = run("test", "vacuous.yaml")
    assert r.exit_code == 1 and "expects nothing" in r.output


def test_test_needs_files_and_not_both_sources() -> None:
    assert run("test").exit_code == 2
    assert run("test", "--builtin", "--config", "router.yaml", "--table",
               "router.yaml").exit_code == 2


# --------------------------------------------------------------------------- explain-route


def test_explain_private_prompt_shows_evidence_chain_terms() -> None:
    r = run("explain-route", "--no-discover", "My card 4111 1111 1111 1111 was charged twice")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert out.startswith("route      ollama/qwen3:8b (local)")
    assert "cell       general.low.private.text" in out
    assert 'payment_card [8:27] "**** **** **** 1111"' in out  # detector, span, masked
    assert "4111 1111" not in out  # the raw number never printed
    assert "LOCAL ONLY (private)" in out
    header = next(ln for ln in out.splitlines() if "quality" in ln and "latency" in ln
                  and "model" in ln)
    assert header.split()[:4] == ["model", "role", "score", "quality"]
    assert "cloud model in a private cell" in out  # filtered at compile time
    assert "What would change the winner" in out and "behind ollama/qwen3:8b" in out


def test_explain_what_if_names_terms_and_weights() -> None:
    body = {"messages": [{"role": "user", "content": "What is in this image?"},
                         {"role": "user", "content": [{"type": "image_url", "image_url": {
                             "url": "https://example.com/x.png"}}]}],
            "tools": [{"type": "function", "function": {"name": "lookup",
                                                        "parameters": {"type": "object"}}}]}
    Path("body.json").write_text(json.dumps(body))
    r = run("explain-route", "--no-discover", "--request", "body.json")
    assert r.exit_code == 0, r.output
    assert "needs        tools, vision" in r.stdout
    assert "(filtered for this request)" in r.stdout  # gemma3 has no tools
    assert any(ln.split()[:1] == ["ollama/gemma3:12b"] and "this request" in ln
               and "tools" in ln for ln in r.stdout.splitlines())
    assert "it would win if" in r.stdout
    assert "weight rose from" in r.stdout or "weight fell from" in r.stdout
    assert "blended price $" in r.stdout


def test_explain_json_is_the_same_data() -> None:
    r = run("explain-route", "--no-discover", HARD, "--format", "json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["cell"]["key"] == "reasoning.high.public.text"
    assert data["decision"]["model"] == data["chain"][0]["model"]
    assert set(data["chain"][0]["terms"]) == {"quality", "cost", "latency", "locality",
                                              "preference"}
    t = data["chain"][1]["terms"]
    assert sum(t.values()) == pytest.approx(data["chain"][1]["score"], abs=6e-4)
    task = next(s for s in data["signals"] if s["signal"] == "task")
    assert task["value"] == "reasoning" and task["evidence"][0]["detector"]
    assert data["what_if"]["changes"][0]["kind"] == "rule"  # hard-reasoning prefers o4-mini


def test_explain_synthetic_cell_skips_classification() -> None:
    r = run("explain-route", "--no-discover", "--task", "code", "--complexity", "high",
            "--private")
    assert r.exit_code == 0, r.output
    assert "cell       code.high.private.text" in r.stdout
    assert "synthetic" in r.stdout and "command line" in r.stdout
    assert "(local)" in r.stdout.splitlines()[0]
    img = json.loads(run("explain-route", "--no-discover", "--image", "--format",
                         "json").stdout)
    assert img["cell"]["key"] == "general.medium.public.image"
    assert all("vision" in c["caps"] for c in img["chain"] if c["eligible"])


def test_explain_anthropic_body_and_errors() -> None:
    Path("msg.json").write_text(json.dumps({
        "model": "auto", "max_tokens": 100, "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text",
                                                   "text": "Translate to German: good night"}]}],
    }))
    r = run("explain-route", "--no-discover", "--request", "msg.json", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["input"]["surface"] == "messages" and data["cell"]["key"].startswith("translate")

    Path("pin.json").write_text(json.dumps({"model": "gpt-4o-mni", "messages": [
        {"role": "user", "content": "hi"}]}))
    bad = run("explain-route", "--no-discover", "--request", "pin.json")
    assert bad.exit_code == 1
    assert "404" in bad.output and "gpt-4o-mini" in bad.output  # did you mean
    Path("junk.json").write_text("{not json")
    assert run("explain-route", "--no-discover", "--request", "junk.json").exit_code == 2
    assert run("explain-route", "--no-discover").exit_code == 2  # nothing to explain
    assert run("explain-route", "--no-discover", "hi", "--task", "code").exit_code == 2
