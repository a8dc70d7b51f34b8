"""The CLI commands that look at the outside world, against fake servers on loopback:
Ollama discovery (compile, init, models --live) and `router doctor`."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fakes.fixtures import FakeOllama, FakeOpenAI
from interlock.compiler.cli import cli
from interlock.compiler.doctor import normalize_ollama_url, probe_ollama
from interlock.runtime.table import load_table

CLOUD_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "OPENROUTER_API_KEY",
              "TOGETHER_API_KEY", "MISTRAL_API_KEY", "DEEPSEEK_API_KEY", "GEMINI_API_KEY")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama(models=["qwen3:8b", "mystery-model:latest"]) as up:
        yield up


def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None],
           *args: str) -> Result:
    monkeypatch.chdir(tmp_path)
    base: dict[str, str | None] = {k: None for k in CLOUD_KEYS}
    return CliRunner(env={**base, **env}).invoke(cli, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------- OLLAMA_HOST


@pytest.mark.parametrize(("value", "url"), [
    ("127.0.0.1:11434", "http://127.0.0.1:11434"),
    ("localhost", "http://localhost:11434"),
    ("0.0.0.0", "http://127.0.0.1:11434"),
    ("http://gpu-box:8080/", "http://gpu-box:8080"),
    ("https://ollama.example", "https://ollama.example:443"),
    ("[::1]:11500", "http://[::1]:11500"),
])
def test_ollama_host_forms(value: str, url: str) -> None:
    assert normalize_ollama_url(value) == url


def test_probe_reads_tags_and_survives_a_dead_port(ollama: FakeOllama) -> None:
    probe = probe_ollama(ollama.root)
    assert probe.reachable and probe.models == ("mystery-model:latest", "qwen3:8b")
    dead = probe_ollama(f"http://127.0.0.1:{closed_port()}", timeout=0.5)
    assert not dead.reachable and dead.models == () and dead.error


# --------------------------------------------------------------------------- discovery


def test_compile_discovers_installed_models(ollama: FakeOllama, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "router.yaml").write_text("providers:\n  ollama: {}\n  openai: {}\n")
    env: dict[str, str | None] = {"OLLAMA_HOST": ollama.root, "OPENAI_API_KEY": "k"}
    r = invoke(tmp_path, monkeypatch, env, "compile")
    assert r.exit_code == 0, r.output
    assert f"discovery: Ollama at {ollama.root} has 2 model(s)" in r.output
    table = load_table(tmp_path / "router.lock.json")
    assert "ollama/qwen3:8b" in table.models
    assert any(k.startswith("ollama/mystery-model") for k in table.models)  # synthesized
    assert any(req.path == "/api/tags" for req in ollama.requests)

    ollama.reset()
    r = invoke(tmp_path, monkeypatch, env, "compile", "--no-discover", "-o", "nd.json")
    assert r.exit_code == 0
    assert not ollama.requests  # not even asked
    assert not any(k.startswith("ollama/") for k in load_table(tmp_path / "nd.json").models)


def test_compile_without_ollama_notes_it_and_goes_on(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "router.yaml").write_text("providers:\n  ollama: {}\n  openai: {}\n")
    env: dict[str, str | None] = {"OLLAMA_HOST": f"127.0.0.1:{closed_port()}",
                                  "OPENAI_API_KEY": "k"}
    r = invoke(tmp_path, monkeypatch, env, "compile")
    assert r.exit_code == 0, r.output
    assert "discovery: Ollama not reachable" in r.output


def test_discovery_skipped_when_ollama_is_not_enabled(ollama: FakeOllama, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "router.yaml").write_text("providers:\n  openai: {}\n")
    r = invoke(tmp_path, monkeypatch, {"OLLAMA_HOST": ollama.root, "OPENAI_API_KEY": "k"},
               "compile")
    assert r.exit_code == 0
    assert not ollama.requests


def test_models_live(ollama: FakeOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = invoke(tmp_path, monkeypatch, {"OLLAMA_HOST": ollama.root}, "models", "--live")
    assert r.exit_code == 0
    assert "2 model(s) installed" in r.output and "  qwen3:8b" in r.output
    j = invoke(tmp_path, monkeypatch, {"OLLAMA_HOST": ollama.root}, "models", "--live",
               "--format", "json")
    assert json.loads(j.stdout)["models"] == ["mystery-model:latest", "qwen3:8b"]
    dead = invoke(tmp_path, monkeypatch, {"OLLAMA_HOST": f"127.0.0.1:{closed_port()}"},
                  "models", "--live")
    assert dead.exit_code == 1 and "not reachable" in dead.output


def test_init_lists_what_ollama_has(ollama: FakeOllama, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    r = invoke(tmp_path, monkeypatch, {"OLLAMA_HOST": ollama.root, "GROQ_API_KEY": "gsk-VALUE-123"},
               "init")
    assert r.exit_code == 0, r.output
    assert "reachable, models: mystery-model:latest, qwen3:8b" in r.output
    assert "GROQ_API_KEY (groq)" in r.output and "gsk-VALUE" not in r.output
    text = (tmp_path / "router.yaml").read_text()
    assert '- "qwen3:8b"' in text and "groq: {}" in text and "gsk-VALUE" not in text


# --------------------------------------------------------------------------- doctor


def doctor_config(tmp_path: Path, ollama: FakeOllama, openai: FakeOpenAI, *,
                  local_models: list[str], extra: str = "") -> None:
    (tmp_path / "router.yaml").write_text(
        "profile: balanced\n"
        "providers:\n"
        f"  ollama: {{base_url: {ollama.root}, models: {json.dumps(local_models)}}}\n"
        f"  openai: {{base_url: {openai.url}}}\n" + extra)


def test_doctor_ok(ollama: FakeOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(models=["gpt-4.1-mini"]) as openai:
        doctor_config(tmp_path, ollama, openai, local_models=["qwen3:8b"])
        r = invoke(tmp_path, monkeypatch, {"OPENAI_API_KEY": "k"}, "doctor")
        assert r.exit_code == 0, r.output
        assert "status: ok" in r.output
        assert "OPENAI_API_KEY set" in r.output and "k]" not in r.output
        auth = [q.headers.get("Authorization") for q in openai.requests if q.path == "/v1/models"]
        assert auth == ["Bearer k"]


def test_doctor_reports_missing_models_and_dead_servers(
        ollama: FakeOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(models=["gpt-4.1-mini"]) as openai:
        dead = closed_port()
        doctor_config(tmp_path, ollama, openai, local_models=["qwen3:8b", "gemma3:12b"],
                      extra=f"  llamacpp: {{base_url: 'http://127.0.0.1:{dead}/v1', "
                            "models: [qwen2.5-7b-instruct]}\n")
        r = invoke(tmp_path, monkeypatch, {"OPENAI_API_KEY": "k"}, "doctor", "--timeout", "1")
        assert r.exit_code == 1
        assert "missing models: gemma3:12b" in r.output
        assert "ollama pull gemma3:12b" in r.output
        assert "llamacpp" in r.output and "unreachable" in r.output
        data = json.loads(invoke(tmp_path, monkeypatch, {"OPENAI_API_KEY": "k"}, "doctor",
                                 "--format", "json").stdout)
        assert data["status"] == "error"
        by_name = {p["name"]: p for p in data["providers"]}
        assert by_name["ollama"]["missing_models"] == ["gemma3:12b"]
        assert by_name["llamacpp"]["reachable"] is False
        assert by_name["openai"]["status"] == "ok"


def test_doctor_warns_on_an_unset_key(ollama: FakeOllama, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI() as openai:
        doctor_config(tmp_path, ollama, openai, local_models=["qwen3:8b"])
        r = invoke(tmp_path, monkeypatch, {}, "doctor")
        assert r.exit_code == 0  # a warning, not broken
        assert "status: warn" in r.output
        assert "export OPENAI_API_KEY=" in r.output
        assert not openai.requests  # no point probing without a key
