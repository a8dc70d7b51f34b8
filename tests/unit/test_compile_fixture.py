"""Shared fixture of the compiler tests (no tests here): a user catalog with a
local provider ``homelab`` and a cloud provider ``acme``, a profile and a
router.yaml, all written into ``tmp_path``.  The expectations of the tests do not
move when the shipped catalog changes.

Import it as ``from unit.test_compile_fixture import ...``.
"""

from __future__ import annotations

from pathlib import Path

from interlock.compiler.api import CompileResult, compile_config
from interlock.compiler.diagnostics import Diagnostic

CATALOG = """\
providers:
  homelab:
    wire: openai
    base_url: http://127.0.0.1:9999/v1
    locality: local
    auth: none
  acme:
    wire: openai
    base_url: https://api.acme.test/v1
    locality: cloud
    api_key_env: ACME_API_KEY
models:
  - {id: small, provider: homelab, context_window: 8192, max_output: 2048,
     price: {input: 0, output: 0}, capabilities: [streaming, json],
     quality: {general: 50, code: 55}, speed: {ttft_ms: 200, tokens_per_s: 40}}
  - {id: eye, provider: homelab, context_window: 8192, max_output: 2048,
     price: {input: 0, output: 0}, capabilities: [streaming, vision],
     quality: {general: 45}, speed: {ttft_ms: 400, tokens_per_s: 20}}
  - {id: embed, provider: homelab, context_window: 8192, max_output: 1,
     price: {input: 0, output: 0}, capabilities: [embeddings],
     quality: {general: 40}, speed: {ttft_ms: 50, tokens_per_s: 1000}}
  - {id: fast, provider: acme, context_window: 128000, max_output: 16000,
     price: {input: 0.1, output: 0.4}, capabilities: [streaming, tools, vision, json],
     quality: {general: 70}, speed: {ttft_ms: 300, tokens_per_s: 150}}
  - {id: smart, provider: acme, context_window: 200000, max_output: 32000,
     price: {input: 3, output: 15}, capabilities: [streaming, tools, vision, json],
     quality: {general: 90, code: 92}, speed: {ttft_ms: 900, tokens_per_s: 60}}
  - {id: luxe, provider: acme, context_window: 200000, max_output: 32000,
     price: {input: 15, output: 75}, capabilities: [streaming, tools, vision],
     quality: {general: 95}, speed: {ttft_ms: 1500, tokens_per_s: 40}}
"""

PROFILE = """\
name: test
objectives: {quality: 0.5, cost: 0.3, latency: 0.2}
local: {prefer: true, bonus: 0.1, max_complexity: medium}
privacy: {private_when: [pii, secrets]}
chain: {strategy: score, max_candidates: 3}
budgets:
  latency_ms: {low: 5000, medium: 20000, high: 60000}
  max_price: {input: 5, output: 20}
  min_quality: {low: 0, medium: 0, high: 60}
rules:
  - name: code-smart
    match: {task: [code], complexity: [high]}
    prefer: [acme/smart]
"""

ROUTER = """\
profile: profile.yaml
catalogs: [extra.yaml]
providers:
  homelab:
    models: [small, eye, embed]
  acme: {}
overrides:
  code:
    primary: acme/smart
    fallbacks: [homelab/eye, acme/fast]
rules:
  - name: summaries
    match: {task: [summarize]}
    exclude: [acme/luxe]
  - name: images
    match: {modality: [image], complexity: [high]}
"""

ENV = {"ACME_API_KEY": "sk-test"}


def compile_fixture(tmp_path: Path, *, router: str = ROUTER, profile: str = PROFILE,
                    environ: dict[str, str] | None = None) -> CompileResult:
    (tmp_path / "extra.yaml").write_text(CATALOG)
    (tmp_path / "profile.yaml").write_text(profile)
    (tmp_path / "router.yaml").write_text(router)
    return compile_config(tmp_path / "router.yaml", environ=ENV if environ is None else environ)


def change(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def only(result: CompileResult, code: str) -> list[Diagnostic]:
    found = [d for d in result.diagnostics if d.code == code]
    assert found, [d.format() for d in result.diagnostics]
    return found


def where(d: Diagnostic, tmp_path: Path) -> str:
    assert d.file is not None
    return f"{Path(d.file).relative_to(tmp_path)}:{d.line}:{d.col}"
