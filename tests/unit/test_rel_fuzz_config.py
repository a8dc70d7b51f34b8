"""Fuzzing the compiler's input: arbitrary YAML text and arbitrary YAML structures
shaped like router.yaml.  Compiling must only ever give a CompileResult (with
diagnostics) or a ConfigError - never another exception - and must finish fast
(no hang on hostile YAML: deep nesting, aliases, huge scalars)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock.compiler.api import CompileResult, compile_text
from interlock.compiler.diagnostics import ConfigError

LIMIT_S = 5.0

KEYS = ["profile", "providers", "models", "overrides", "rules", "tags", "private_when",
        "server", "catalogs", "auth", "keys", "hash", "key_env", "limits", "breaker",
        "idempotency", "models", "enabled", "base_url", "wire", "locality", "primary",
        "fallbacks", "match", "task", "deadline_ms", "max_body_bytes", "name", "id"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**12),
                    st.floats(allow_nan=False), st.text(max_size=30),
                    st.sampled_from(["balanced", "ollama", "openai", "local", "cloud", "code",
                                     "sha256:" + "0" * 64, "*", "ollama/*", "gpt-4o-mini"]))
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8),
                                            inner, max_size=5)),
    max_leaves=25)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def boom(*_: Any) -> None:
        raise TimeoutError(f"compile took more than {seconds}s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def compile_safely(text: str) -> None:
    t = time.monotonic()
    with time_limit(LIMIT_S):
        try:
            result = compile_text(text, environ={})
        except ConfigError:
            return
    assert isinstance(result, CompileResult)
    if result.table is None:
        assert any(d.is_error for d in result.diagnostics)
    assert time.monotonic() - t < LIMIT_S


@given(st.text(max_size=400))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_text_compiles_or_is_diagnosed(text: str) -> None:
    compile_safely(text)


@given(structures)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_structure_compiles_or_is_diagnosed(doc: Any) -> None:
    compile_safely(json.dumps(doc))


@given(st.dictionaries(st.sampled_from(["auth", "limits", "breaker", "idempotency",
                                        "deadline_ms", "max_attempts"]), structures,
                       max_size=4))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_server_section_compiles_or_is_diagnosed(server: dict[str, Any]) -> None:
    compile_safely("providers:\n  ollama: {models: [qwen3:8b]}\nserver: "
                   + json.dumps(server) + "\n")


HOSTILE = [
    "a: &a [" + ",".join(["*a"] * 5) + "]\n",  # a recursive alias
    "".join(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]\n" if i else "l0: &l0 [x]\n"
            for i in range(9)),  # a billion laughs
    "x: " + "[" * 5000 + "]" * 5000 + "\n",  # deep nesting
    "x: !!python/object/apply:os.system ['true']\n",
    "profile: " + "a" * 2_000_000 + "\n",
    "\t\x00\x01: {\n",
]


def test_hostile_yaml_is_diagnosed_quickly() -> None:
    for text in HOSTILE:
        compile_safely(text)
