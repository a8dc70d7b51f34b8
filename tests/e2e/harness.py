"""Test harness for the app: build tables for fake upstreams, run the router under
real Granian in a subprocess, wait until it is ready.

Used by tests/integration/test_app_*.py and tests/e2e/test_*.py::

    from e2e.harness import RouterProcess, Setup, compile_yaml
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fakes.harness import FakeUpstream
from interlock.compiler.api import compile_text
from interlock.runtime.signals import TASKS
from interlock.runtime.table import DecisionTable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def compile_yaml(text: str) -> DecisionTable:
    """Compile router.yaml text; fail the test with the diagnostics on errors."""
    result = compile_text(text, origin="test router.yaml", environ={})
    if result.table is None:
        raise AssertionError("test config does not compile:\n"
                             + "\n".join(d.format() for d in result.diagnostics))
    return result.table


@dataclass
class Prov:
    """A provider of the test config: a fake (or a raw URL) and the models it serves."""

    name: str
    wire: str
    locality: str
    url: str
    models: list[str]
    timeout_ms: int = 5_000
    quality: float = 60.0
    caps: list[str] = field(default_factory=lambda: [
        "streaming", "json", "json_schema", "tools", "vision"])


def prov(name: str, up: FakeUpstream | str, wire: str, locality: str, models: list[str],
         **kw: Any) -> Prov:
    url = up if isinstance(up, str) else up.url
    return Prov(name, wire, locality, url, models, **kw)


def config_yaml(providers: list[Prov], chain: list[str] | None = None, *,
                server: Mapping[str, Any] | None = None, profile: str = "balanced") -> str:
    """router.yaml for ``providers``; ``chain`` (model keys) overrides every task's chain
    (private cells drop the cloud ones themselves), so routing does not depend on
    scoring or on how a test prompt is classified."""
    lines = [f"profile: {profile}", "providers:"]
    for p in providers:
        lines += [f"  {p.name}:", f"    wire: {p.wire}", f"    locality: {p.locality}",
                  "    auth: none", f"    base_url: {p.url}", f"    timeout_ms: {p.timeout_ms}"]
        if p.locality == "local":
            lines.append(f"    models: [{', '.join(p.models)}]")
    lines.append("models:")
    for p in providers:
        for m in p.models:
            q = p.quality
            lines += [
                f"  - id: {m}", f"    provider: {p.name}", "    context_window: 32768",
                "    max_output: 4096",
                "    price: {input: %s, output: %s}" % ((0, 0) if p.locality == "local"
                                                        else (0.5, 1.5)),
                f"    capabilities: [{', '.join(p.caps)}]",
                f"    quality: {{general: {q}, code: {q}, reasoning: {q}, summarize: {q}, "
                f"extract: {q}, creative: {q}, translate: {q}}}",
                "    speed: {ttft_ms: 100, tokens_per_s: 50}",
            ]
    if chain:
        lines.append("overrides:")
        for task in TASKS:
            lines += [f"  {task}:", f"    primary: {chain[0]}",
                      f"    fallbacks: [{', '.join(chain[1:])}]"]
    if server:
        lines.append("server:")
        lines += [f"  {k}: {v}" for k, v in server.items()]
    return "\n".join(lines) + "\n"


class RouterProcess:
    """``python -m interlock.runtime.server`` (Granian, ASGI, factory) in a subprocess."""

    def __init__(self, table: DecisionTable | None = None, *, probe: bool = False,
                 workers: int = 1, env: Mapping[str, str] | None = None,
                 table_path: Path | None = None, demo: bool = False,
                 ready_timeout: float = 60.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.TemporaryDirectory(prefix="interlock-test-")
        self.table_path = table_path
        if table is not None:
            self.table_path = Path(self._tmp.name) / "router.lock.json"
            self.table_path.write_bytes(table.canonical_bytes())
        args = [sys.executable, "-m", "interlock.runtime.server", "--port", str(self.port),
                "--workers", str(workers), "--no-summary"]
        if self.table_path is not None:
            args += ["--table", str(self.table_path)]
        if demo:
            args.append("--demo")
        if not probe:
            args.append("--no-probe")
        full_env = {**os.environ, **(env or {})}
        self.log_path = Path(self._tmp.name) / "server.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=full_env)
        self._ready_timeout = ready_timeout

    def wait_ready(self) -> RouterProcess:
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"router exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"router not ready after {self._ready_timeout}s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        self._tmp.cleanup()

    def __enter__(self) -> RouterProcess:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- a standard three-provider setup -------------------------------------------------------


@dataclass
class Setup:
    """loc-a (Ollama wire, local) → loc-b (OpenAI wire, local) → cloud (OpenAI wire)."""

    loc_a: Any
    loc_b: Any
    cloud: Any
    router: RouterProcess

    @property
    def url(self) -> str:
        return self.router.url

    def reset(self) -> None:
        for up in (self.loc_a, self.loc_b, self.cloud):
            up.reset()


def standard_setup(*, server: Mapping[str, Any] | None = None,
                   env: Mapping[str, str] | None = None, probe: bool = False,
                   timeout_ms: int = 5_000) -> Setup:
    """Start the three fakes and a router (Granian subprocess) over them.

    Health never opens a provider here (failure threshold 10^6) so that tests in a
    module do not influence each other; the health tests use their own router.
    """
    from fakes.fixtures import FakeOllama, FakeOpenAI

    loc_a = FakeOllama(models=["m-a"]).start()
    loc_b = FakeOpenAI(models=["m-b"]).start()
    cloud = FakeOpenAI(models=["m-c"]).start()
    try:
        table = compile_yaml(config_yaml(
            [prov("loc-a", loc_a, "ollama", "local", ["m-a"], timeout_ms=timeout_ms),
             prov("loc-b", loc_b, "openai", "local", ["m-b"], timeout_ms=timeout_ms),
             prov("cloud", cloud, "openai", "cloud", ["m-c"], timeout_ms=timeout_ms,
                  quality=90.0)],
            ["loc-a/m-a", "loc-b/m-b", "cloud/m-c"], server=server))
        # no breaker or retry budget either (issue 8): tests must not influence each other
        environ = {"INTERLOCK_HEALTH_FAILURES": "1000000", "INTERLOCK_BREAKERS": "0",
                   **(env or {})}
        router = RouterProcess(table, env=environ, probe=probe).wait_ready()
    except BaseException:
        for up in (loc_a, loc_b, cloud):
            up.stop()
        raise
    return Setup(loc_a, loc_b, cloud, router)


def stop_setup(s: Setup) -> None:
    s.router.stop()
    for up in (s.loc_a, s.loc_b, s.cloud):
        up.stop()


def chat_body(text: str = "Say hello.", **kw: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **kw}


def sse_events(raw: str) -> list[str]:
    """The ``data:`` payloads and ``:`` comments of an SSE body, in order."""
    out = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                out.append(line[6:])
            elif line.startswith(":"):
                out.append(line)
    return out
