"""``router init``: look around, then write a commented starter ``router.yaml``.

It finds Ollama (``OLLAMA_HOST`` or 127.0.0.1:11434) and the models it has
installed, notes which cloud providers' key variables are set (names only, never
values), and renders ``compiler/templates/router.yaml.j2`` in the sandboxed
environment.  It never overwrites an existing file unless told to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from interlock.compiler.doctor import OllamaProbe, ollama_url, probe_ollama
from interlock.compiler.model import ProviderSpec
from interlock.compiler.render import render_template
from interlock.compiler.schema import SCHEMA_BASE, schema_filename

TEMPLATE = "router.yaml.j2"
#: where editors find the schema; the wheel ships the same file under interlock/schemas/
SCHEMA_URL = SCHEMA_BASE + schema_filename("router")


@dataclass(frozen=True, slots=True)
class KeyStatus:
    provider: str
    env: str
    set: bool


@dataclass(frozen=True, slots=True)
class Findings:
    """What ``router init`` saw on this machine."""

    ollama: OllamaProbe
    keys: tuple[KeyStatus, ...]

    @property
    def keys_set(self) -> list[KeyStatus]:
        return [k for k in self.keys if k.set]


class FileExistsRefusal(Exception):
    """The target exists and ``--force`` was not given."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} already exists; pass --force to overwrite it")
        self.path = path


def detect(environ: Mapping[str, str], providers: Mapping[str, ProviderSpec], *,
           timeout: float = 1.5) -> Findings:
    """Probe Ollama and read which cloud key variables are set."""
    probe = probe_ollama(ollama_url(environ), timeout=timeout)
    keys = tuple(
        KeyStatus(name, spec.api_key_env, bool(environ.get(spec.api_key_env)))
        for name, spec in sorted(providers.items())
        if spec.locality == "cloud" and spec.api_key_env
    )
    return Findings(probe, keys)


def render_starter(findings: Findings, *, profile: str,
                   generated_at: datetime | None = None, schema_url: str = SCHEMA_URL) -> str:
    """The starter config text (the template decides what to enable from the findings)."""
    when = (generated_at or datetime.now(UTC)).replace(microsecond=0)
    return render_template(
        TEMPLATE,
        profile=profile,
        ollama={
            "url": findings.ollama.url,
            "reachable": findings.ollama.reachable,
            "models": list(findings.ollama.models),
        },
        keys=[{"provider": k.provider, "env": k.env, "set": k.set} for k in findings.keys],
        schema_url=schema_url,
        generated_at=when.isoformat(),
    )


def write_starter(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path``; refuses to replace a file unless ``force``."""
    if path.exists() and not force:
        raise FileExistsRefusal(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # exclusive create closes the race between the check and the write
    mode = "w" if force else "x"
    with path.open(mode, encoding="utf-8") as fh:
        fh.write(text)


def summary_lines(findings: Findings, path: Path) -> list[str]:
    """What init found and what to do next, for the terminal."""
    o = findings.ollama
    lines = []
    if o.reachable:
        models = ", ".join(o.models) if o.models else "none installed yet"
        lines.append(f"ollama     {o.url}: reachable, models: {models}")
    else:
        lines.append(f"ollama     {o.url}: not reachable ({o.error})")
    set_keys = findings.keys_set
    if set_keys:
        lines.append("keys set   " + ", ".join(f"{k.env} ({k.provider})" for k in set_keys))
    else:
        lines.append("keys set   none (cloud providers stay disabled until a key is set)")
    lines.append(f"wrote      {path}")
    nxt = f"router validate {path}" if path.name != "router.yaml" else "router validate"
    lines.append(f"next       review it, then `{nxt}` and `router start --config {path}`")
    if not o.reachable and not set_keys:
        lines.append("           (no Ollama and no key yet: `router start --demo` shows routing)")
    elif o.reachable and not o.models:
        lines.append("           (install a local model first, e.g. `ollama pull qwen3:8b`)")
    return lines
