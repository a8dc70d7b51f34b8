"""Emit: assemble the DecisionTable, hash it, validate it, serialise it canonically.

Everything is sorted and nothing depends on time or the machine, so the same
inputs give byte-identical output.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from interlock import __version__
from interlock.compiler.diagnostics import Diagnostic, did_you_mean
from interlock.compiler.flatten import Flat
from interlock.compiler.model import ServerSpec
from interlock.compiler.resolve import Resolved, ollama_variants
from interlock.compiler.schema import validate_data
from interlock.compiler.score import base_weights
from interlock.runtime.table import (
    ClassifierConfig,
    DecisionTable,
    ModelEntry,
    Pin,
    ServerDefaults,
    Source,
    StoreSettings,
    TagRule,
)

GENERATOR = f"interlock {__version__}"


def model_index(models: dict[str, ModelEntry], aliases: dict[str, tuple[str, ...]]) -> dict[
        str, str]:
    """Every client-facing name → model key: keys, unambiguous bare ids, aliases.

    Precedence: a key is always itself; then bare upstream ids (and Ollama's
    ``:latest`` variants) when only one model has them; then catalog aliases
    when only one model claims them.
    """
    index = {k: k for k in models}
    for tier in (
        {k: list(ollama_variants(m.upstream_id)) if m.provider == "ollama" else [m.upstream_id]
         for k, m in models.items()},
        {k: list(aliases.get(k, ())) for k in models},
    ):
        owners: dict[str, set[str]] = {}
        for key, names in tier.items():
            for n in names:
                owners.setdefault(n, set()).add(key)
        for n, keys in owners.items():
            if n not in index and len(keys) == 1:
                index[n] = next(iter(keys))
    return dict(sorted(index.items()))


def _pins(r: Resolved) -> tuple[Pin, ...]:
    pins: dict[str, Pin] = {}
    for spec in r.profile.pins:
        if spec.provider is not None and spec.provider not in r.providers:
            continue  # a pin to a provider that is off would only ever fail
        pins.setdefault(spec.prefix, Pin(prefix=spec.prefix, locality=spec.locality,
                                         provider=spec.provider))
    pins.setdefault("local/", Pin(prefix="local/", locality="local"))
    return tuple(pins[p] for p in sorted(pins))


def classifier(r: Resolved) -> tuple[ClassifierConfig, list[Diagnostic]]:
    """Privacy categories (router.yaml's private_when, else the profile's) and custom tags."""
    diags: list[Diagnostic] = []
    cfg, doc = r.config, r.config_doc
    base: tuple[str, ...]
    if cfg.private_when is not None:
        private_when, where, base = cfg.private_when, doc, ("private_when",)
    else:
        private_when = r.profile.privacy.private_when
        where, base = r.profile_doc, ("privacy", "private_when")
    tag_names = [t.name for t in cfg.tags]
    for i, cat in enumerate(private_when):
        if cat.startswith("tag:") and cat[4:] not in tag_names:
            diags.append(where.diag(
                "E004", f"unknown tag '{cat[4:]}'{did_you_mean(cat[4:], tag_names)}",
                (*base, i), hint="tags are defined under tags: in router.yaml"))
    for i, tag in enumerate(cfg.tags):
        for j, pattern in enumerate(tag.patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                diags.append(doc.diag("E101", f"invalid regular expression {pattern!r}: {exc}",
                                      ("tags", i, "patterns", j),
                                      hint="patterns are Python regular expressions"))
    tags = tuple(TagRule(name=t.name, keywords=tuple(t.keywords), patterns=tuple(t.patterns),
                         private=t.private, task=t.task, complexity=t.complexity)
                 for t in cfg.tags)
    return ClassifierConfig(private_when=tuple(dict.fromkeys(private_when)), tags=tags), diags


def build_table(r: Resolved, flat: Flat, classifier_cfg: ClassifierConfig,
                sources: Sequence[Source]) -> DecisionTable:
    """The hashed table; raises RuntimeError if it does not match its own schema (a bug)."""
    w = base_weights(r.profile.objectives)
    s = r.config.server
    table = DecisionTable(
        generator=GENERATOR,
        profile=r.profile.name,
        profile_description=r.profile.description.strip(),
        weights={"quality": round(w.quality, 4), "cost": round(w.cost, 4),
                 "latency": round(w.latency, 4)},
        sources=tuple(sorted(sources, key=lambda x: x.path)),
        providers=dict(sorted(r.providers.items())),
        models=dict(sorted(r.models.items())),
        model_index=model_index(r.models, r.aliases),
        pins=_pins(r),
        classifier=classifier_cfg,
        cells=flat.cells,
        embeddings=dict(sorted(flat.embeddings.items())),
        tag_cells={tag: dict(sorted(v.items())) for tag, v in sorted(flat.tag_cells.items())},
        server=ServerDefaults(deadline_ms=s.deadline_ms, max_body_bytes=s.max_body_bytes,
                              max_attempts=s.max_attempts, log_prompts=s.log_prompts,
                              store=StoreSettings(**s.store.model_dump()),
                              **server_extras(s)),
    ).with_hash()
    problems = validate_data("decision-table", table.model_dump(mode="json"))
    if problems:
        raise RuntimeError("emitted table does not match decision-table.schema.json: "
                           + "; ".join(problems[:5]))
    return table


def server_extras(s: ServerSpec) -> dict[str, object]:
    """router.yaml ``server.auth/limits/breaker/idempotency`` as table settings (issue 8).

    A key's ``hash`` becomes its hex sha256; a ``key_env`` stays a variable name:
    the lock file never holds a raw key.
    """
    from interlock.runtime.table import (
        AuthDefaults,
        BreakerDefaults,
        ClientKey,
        IdempotencyDefaults,
        LimitDefaults,
    )

    keys = tuple(
        ClientKey(name=k.name, sha256=k.hash.removeprefix("sha256:") if k.hash else None,
                  key_env=k.key_env, models=tuple(k.models), profiles=tuple(k.profiles),
                  private_only=k.private_only, rpm=k.rpm, burst=k.burst)
        for k in s.auth.keys
    )
    return {
        "auth": AuthDefaults(keys=keys),
        "limits": LimitDefaults(**s.limits.model_dump()),
        "breaker": BreakerDefaults(**s.breaker.model_dump()),
        "idempotency": IdempotencyDefaults(**s.idempotency.model_dump()),
    }


def emit_table(table: DecisionTable) -> bytes:
    """Canonical JSON bytes (sorted keys, 2-space indent, trailing newline)."""
    return table.canonical_bytes()


def write_lock(table: DecisionTable, path: Path) -> None:
    """Write the table atomically (a reader never sees half a lock file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(emit_table(table))
    tmp.replace(path)
