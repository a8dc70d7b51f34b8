"""The compiler's stable entry points (used by the CLI, the runtime and tests).

    result = compile_config(Path("router.yaml"), environ=os.environ,
                            discovered={"ollama": ["qwen3:8b"]})
    if result.table is None:            # iff an error diagnostic exists
        for d in result.diagnostics: print(d.format())
    else:
        write_lock(result.table, Path("router.lock.json"))

The pipeline: load (YAML with positions, safe) → validate (JSON Schema, all
errors) → parse (pydantic) → resolve → score/flatten → check → emit.  The compiler
does no network I/O: the caller discovers installed local models and passes them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from interlock.compiler import builtin
from interlock.compiler.check import check_all
from interlock.compiler.diagnostics import (
    ConfigError,
    Diagnostic,
    did_you_mean,
    has_errors,
    sorted_diagnostics,
)
from interlock.compiler.emit import build_table, classifier, emit_table, write_lock
from interlock.compiler.flatten import flatten
from interlock.compiler.load import Loaded, load_file, load_text
from interlock.compiler.model import CatalogFile, Profile, ProviderUse, RouterConfig
from interlock.compiler.resolve import resolve
from interlock.compiler.schema import parse
from interlock.runtime.table import DecisionTable, Source

__all__ = [
    "CompileResult", "compile_config", "compile_text", "default_config", "emit_table",
    "write_lock",
]

DEFAULT_ORIGIN = "<default config>"


@dataclass(frozen=True)
class CompileResult:
    """The table (None iff an error diagnostic exists) and every diagnostic, sorted."""

    table: DecisionTable | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.table is not None

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]


def _builtin_catalogs() -> tuple[list[tuple[CatalogFile, Loaded]], list[Diagnostic]]:
    out, diags = [], []
    for doc in builtin.catalog_files():
        cat, d = parse("catalog", doc, CatalogFile)
        diags += d
        if cat is not None:
            out.append((cat, doc))
    return out, diags


def _default_from(catalogs: Sequence[tuple[CatalogFile, Loaded]],
                  environ: Mapping[str, str]) -> RouterConfig:
    providers: dict[str, ProviderUse] = {}
    for cat, _ in catalogs:
        for name, spec in cat.providers.items():
            keys = [spec.api_key_env, *(a.api_key_env for a in spec.accounts)]
            if name == "ollama" or (spec.locality == "cloud"
                                    and any(k and environ.get(k) for k in keys)):
                providers[name] = ProviderUse()
    return RouterConfig(providers=dict(sorted(providers.items())))


def default_config(environ: Mapping[str, str] | None = None) -> RouterConfig:
    """The config used without a router.yaml: ``ollama`` plus every cloud provider
    whose key variable is set in ``environ`` (default: the process environment)."""
    catalogs, _ = _builtin_catalogs()
    return _default_from(catalogs, os.environ if environ is None else environ)


def _display(path: Path, base: Path | None) -> str:
    """A path for ``sources``: relative to the config's directory, with / separators."""
    if base is not None:
        try:
            return Path(os.path.relpath(path, base)).as_posix()
        except ValueError:  # another drive on Windows
            pass
    return path.as_posix()


def _load_profile(name: str, base: Path, where: Loaded | None) -> Loaded:
    if name in builtin.profile_names():
        return builtin.load_builtin_profile(name)
    looks_like_path = any(ch in name for ch in "/\\") or name.endswith((".yaml", ".yml"))
    path = base / name
    if looks_like_path or path.is_file():
        return load_file(path)
    names = builtin.profile_names()
    message = f"unknown profile '{name}'{did_you_mean(name, names)}"
    hint = "built-in profiles: " + ", ".join(names) + "; or a path to a profile file"
    if where is not None:
        raise ConfigError([where.diag("E004", message, ("profile",), hint=hint)])
    raise ConfigError([Diagnostic("E004", "error", message, path="profile", hint=hint)])


def _compile(config_doc: Loaded | None, base: Path | None, *, profile: str | None,
             environ: Mapping[str, str], discovered: Mapping[str, Sequence[str]]
             ) -> CompileResult:
    diags: list[Diagnostic] = []

    def done(table: DecisionTable | None = None) -> CompileResult:
        return CompileResult(table if not has_errors(diags) else None, sorted_diagnostics(diags))

    try:
        catalogs, d = _builtin_catalogs()
        diags += d
        sources = [Source(path=doc.origin, sha256=doc.sha256) for _, doc in catalogs]
        if config_doc is None:
            config: RouterConfig | None = _default_from(catalogs, environ)
            config_doc = Loaded(DEFAULT_ORIGIN, {})
        else:
            config, d = parse("router", config_doc, RouterConfig)
            diags += d
            if base is not None and config_doc.raw:
                sources.append(Source(path=_display(Path(config_doc.origin), base),
                                      sha256=config_doc.sha256))
        if config is None:
            return done()
        root = base or Path(".")
        for i, rel in enumerate(config.catalogs):
            try:
                doc = load_file(root / rel)
            except ConfigError as exc:
                diags += [config_doc.diag(e.code, f"catalog '{rel}': {e.message}",
                                          ("catalogs", i), hint=e.hint)
                          if e.line is None and e.code == "E100" else e
                          for e in exc.diagnostics]
                continue
            cat, d = parse("catalog", doc, CatalogFile)
            diags += d
            if cat is not None:
                catalogs.append((cat, doc))
                sources.append(Source(path=_display(root / rel, base), sha256=doc.sha256))
        profile_doc = _load_profile(profile or config.profile, Path(".") if profile else root,
                                    None if profile else config_doc)
        prof, d = parse("profile", profile_doc, Profile)
        diags += d
        if profile_doc.origin.startswith("pkg:"):
            sources.append(Source(path=profile_doc.origin, sha256=profile_doc.sha256))
        else:
            sources.append(Source(path=_display(Path(profile_doc.origin), base),
                                  sha256=profile_doc.sha256))
        if prof is None or has_errors(diags):
            return done()
        resolved = resolve(config, config_doc, prof, profile_doc, catalogs,
                           environ=environ, discovered=discovered)
        diags += resolved.diagnostics
        clf, d = classifier(resolved)
        diags += d
        if has_errors(diags):
            return done()  # stop before cascading: an unknown name empties cells
        flat = flatten(resolved)
        diags += check_all(resolved, flat)
        if has_errors(diags):
            return done()
        unique = {s.path: s for s in sources}
        return done(build_table(resolved, flat, clf, list(unique.values())))
    except ConfigError as exc:
        diags += exc.diagnostics
        return done()


def compile_config(
    config: Path | str | None = None,
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    discovered: Mapping[str, Sequence[str]] | None = None,
) -> CompileResult:
    """Compile ``router.yaml`` (None: the built-in default config) into a decision table.

    ``profile`` overrides the config's ``profile:`` (a built-in name or a path).
    ``environ`` (default: the process environment) only decides ``base_url_env``
    overrides, which providers the default config enables, and W007 warnings.
    ``discovered`` maps a local provider to the model names found installed.
    """
    env = os.environ if environ is None else environ
    found = discovered or {}
    if config is None:
        return _compile(None, None, profile=profile, environ=env, discovered=found)
    path = Path(config)
    try:
        doc = load_file(path)
    except ConfigError as exc:
        return CompileResult(None, sorted_diagnostics(exc.diagnostics))
    return _compile(doc, path.parent, profile=profile, environ=env, discovered=found)


def compile_text(
    text: str,
    *,
    origin: str = "router.yaml",
    base_dir: Path | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    discovered: Mapping[str, Sequence[str]] | None = None,
) -> CompileResult:
    """Compile router.yaml given as text (tests, the playground); paths it names are
    relative to ``base_dir`` (default: the current directory)."""
    try:
        doc = load_text(text, origin)
    except ConfigError as exc:
        return CompileResult(None, sorted_diagnostics(exc.diagnostics))
    return _compile(doc, base_dir or Path("."), profile=profile,
                    environ=os.environ if environ is None else environ,
                    discovered=discovered or {})
