"""Resolve parsed documents into the models and providers a table holds.

Input: the parsed ``router.yaml`` (or the built-in default), the profile and the
catalog files.  Output: :class:`Resolved` - enabled providers and their models
as table entries, rules and overrides whose model names are resolved to model
keys, and E004/W007 diagnostics positioned at the offending nodes.

Which models a table holds (the shared semantics):

* providers listed under ``providers:`` (``enabled: true`` by default);
* a cloud provider contributes its catalog models, or only ``providers.X.models``;
* a local provider contributes only installed models: ``providers.X.models`` plus
  the names the caller discovered (``discovered["ollama"]`` only when the
  profile's ``discovery.ollama`` is on); an installed name the catalog does not
  know gets a conservative synthesized entry.  Without ``providers.X.models``,
  models that router.yaml's own ``models:`` declares for it count as installed;
* Ollama names match catalog ids with or without ``:latest``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from interlock.compiler.diagnostics import Diagnostic, NodePath, did_you_mean
from interlock.compiler.load import Loaded
from interlock.compiler.model import (
    CatalogFile,
    Match,
    ModelSpec,
    Override,
    PriceSpec,
    Profile,
    ProviderSpec,
    ProviderUse,
    QualitySpec,
    RouterConfig,
    Rule,
    SpeedSpec,
)
from interlock.runtime.signals import TASKS, Task, caps_mask
from interlock.runtime.table import Account, ModelEntry, Price, ProviderEntry, Speed, Strategy


@dataclass(frozen=True)
class Where:
    """A node in a loaded document, for positioning diagnostics."""

    doc: Loaded
    path: NodePath

    def diag(self, code: str, message: str, *sub: str | int, hint: str = "",
             key: bool = False) -> Diagnostic:
        return self.doc.diag(code, message, (*self.path, *sub), hint=hint, key=key)


@dataclass(frozen=True)
class ResolvedRule:
    name: str
    match: Match
    prefer: tuple[str, ...]
    exclude: frozenset[str]
    locality: Literal["local", "cloud", "any"]
    strategy: Strategy | None
    latency_budget_ms: int | None
    max_price: PriceSpec | None
    min_quality: float | None
    verifiers: tuple[str, ...] | None
    where: Where


@dataclass(frozen=True)
class ResolvedOverride:
    task: Task
    #: (model key, role, path of the node that named it)
    entries: tuple[tuple[str, Literal["primary", "fallback"], NodePath], ...]
    where: Where


@dataclass
class Resolved:
    config: RouterConfig
    config_doc: Loaded
    profile: Profile
    profile_doc: Loaded
    providers: dict[str, ProviderEntry]
    models: dict[str, ModelEntry]
    aliases: dict[str, tuple[str, ...]]
    rules: list[ResolvedRule]
    overrides: dict[Task, ResolvedOverride]
    catalog_providers: frozenset[str]
    diagnostics: list[Diagnostic] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def ollama_variants(name: str) -> tuple[str, ...]:
    """``qwen3`` ⇄ ``qwen3:latest``: Ollama treats them as the same model."""
    if name.endswith(":latest"):
        return (name, name[: -len(":latest")])
    return (name, name + ":latest") if ":" not in name else (name,)


def synthesize(provider: str, name: str) -> ModelSpec:
    """The conservative entry of an installed model the catalog does not know."""
    embed = "embed" in name.lower()
    return ModelSpec(
        id=name, provider=provider, family="unknown", context_window=8192, max_output=2048,
        price=PriceSpec(input=0, output=0),
        capabilities=["embeddings"] if embed else ["streaming", "json"],
        quality=QualitySpec(general=45), speed=SpeedSpec(ttft_ms=300, tokens_per_s=25),
    )


def model_entry(spec: ModelSpec, provider: ProviderEntry) -> ModelEntry:
    q = spec.quality
    quality = {t: float(getattr(q, t) if getattr(q, t) is not None else q.general) for t in TASKS}
    return ModelEntry(
        key=f"{provider.name}/{spec.id}", provider=provider.name, upstream_id=spec.id,
        family=spec.family, locality=provider.locality, context_window=spec.context_window,
        max_output=spec.max_output, price=Price(input=spec.price.input, output=spec.price.output),
        caps=caps_mask(list[str](spec.capabilities)),
        speed=Speed(ttft_ms=spec.speed.ttft_ms, tokens_per_s=spec.speed.tokens_per_s),
        quality=quality, embedding="embeddings" in spec.capabilities,
    )


def _base_url(spec: ProviderSpec, use: ProviderUse, environ: Mapping[str, str]) -> str:
    if spec.base_url_env and environ.get(spec.base_url_env, "").strip():
        url = environ[spec.base_url_env].strip()
        return url if "://" in url else "http://" + url  # OLLAMA_HOST is often host:port
    return use.base_url or spec.base_url


def provider_entry(name: str, spec: ProviderSpec, use: ProviderUse,
                   environ: Mapping[str, str]) -> ProviderEntry:
    accounts = use.accounts if use.accounts is not None else spec.accounts
    if accounts:
        accs = tuple(Account(name=a.name, api_key_env=a.api_key_env, weight=a.weight, rpm=a.rpm)
                     for a in accounts)
    else:
        accs = (Account(name="default", api_key_env=use.api_key_env or spec.api_key_env),)
    return ProviderEntry(
        name=name, wire=use.wire or spec.wire, base_url=_base_url(spec, use, environ),
        locality=use.locality or spec.locality, auth=use.auth or spec.auth, accounts=accs,
        data_collection=spec.data_collection, retention=spec.retention,
        timeout_ms=use.timeout_ms or spec.timeout_ms, connect_timeout_ms=spec.connect_timeout_ms,
        max_concurrency=use.max_concurrency or spec.max_concurrency, headers=dict(spec.headers),
    )


# --------------------------------------------------------------------------- resolver


class _Resolver:
    def __init__(self, config: RouterConfig, config_doc: Loaded, profile: Profile,
                 profile_doc: Loaded, catalogs: Sequence[tuple[CatalogFile, Loaded]],
                 environ: Mapping[str, str], discovered: Mapping[str, Sequence[str]]) -> None:
        self.config, self.config_doc = config, config_doc
        self.profile, self.profile_doc = profile, profile_doc
        self.environ, self.discovered = environ, discovered
        self.diags: list[Diagnostic] = []
        self.specs: dict[str, tuple[ProviderSpec, Where]] = {}
        self.catalog: dict[tuple[str, str], tuple[ModelSpec, Where]] = {}
        self.custom: set[str] = set()
        for cat, doc in catalogs:
            for pname, pspec in cat.providers.items():
                self.specs[pname] = (pspec, Where(doc, ("providers", pname)))
        self._custom_providers()
        for cat, doc in catalogs:
            for i, mspec in enumerate(cat.models):
                self._add_catalog_model(mspec, Where(doc, ("models", i)))
        for i, mspec in enumerate(config.models):
            self._add_catalog_model(mspec, Where(config_doc, ("models", i)))

    def _custom_providers(self) -> None:
        for name, use in sorted(self.config.providers.items()):
            if name in self.specs or use.wire is None:
                continue
            where = Where(self.config_doc, ("providers", name))
            missing = [k for k in ("base_url", "locality") if getattr(use, k) is None]
            if missing:
                self.diags.append(where.diag(
                    "E101", f"new provider '{name}' needs {' and '.join(missing)}", key=True,
                    hint="a provider not in the catalog is defined by wire, base_url and "
                         "locality (local or cloud)"))
                continue
            assert use.base_url is not None and use.locality is not None
            spec = ProviderSpec(
                wire=use.wire, base_url=use.base_url, locality=use.locality,
                auth=use.auth or ("bearer" if use.api_key_env else "none"),
                api_key_env=use.api_key_env,
            )
            self.specs[name] = (spec, where)
            self.custom.add(name)

    def _add_catalog_model(self, spec: ModelSpec, where: Where) -> None:
        if spec.provider not in self.specs:
            self.diags.append(where.diag(
                "E004", f"unknown provider '{spec.provider}'"
                f"{did_you_mean(spec.provider, self.specs)}", "provider",
                hint="a model's provider is a key of the catalog's providers"))
            return
        self.catalog[(spec.provider, spec.id)] = (spec, where)

    # -- providers and models -------------------------------------------------

    def enable(self) -> tuple[dict[str, ProviderEntry], dict[str, ModelEntry],
                              dict[str, tuple[str, ...]]]:
        providers: dict[str, ProviderEntry] = {}
        models: dict[str, ModelEntry] = {}
        aliases: dict[str, tuple[str, ...]] = {}
        for name, use in sorted(self.config.providers.items()):
            where = Where(self.config_doc, ("providers", name))
            if name not in self.specs:
                if use.wire is None:
                    self.diags.append(where.diag(
                        "E004", f"unknown provider '{name}'{did_you_mean(name, self.specs)}",
                        key=True, hint="catalog providers: " + ", ".join(sorted(self.specs))
                        + "; to define a new one give wire, base_url and locality"))
                continue
            if not use.enabled:
                continue
            entry = provider_entry(name, self.specs[name][0], use, self.environ)
            providers[name] = entry
            self._check_key(entry, where)
            for spec in self._models_of(name, entry, use, where):
                m = model_entry(spec, entry)
                models[m.key] = m
                aliases[m.key] = tuple(spec.aliases)
        return providers, models, aliases

    def _check_key(self, entry: ProviderEntry, where: Where) -> None:
        if entry.auth == "none":
            return
        unset = sorted({a.api_key_env for a in entry.accounts
                        if a.api_key_env and not self.environ.get(a.api_key_env)})
        if unset:
            names = ", ".join(unset)
            self.diags.append(where.diag(
                "W007", f"{names} {'is' if len(unset) == 1 else 'are'} not set: provider "
                f"'{entry.name}' cannot authenticate", key=True,
                hint=f"export {unset[0]}=... before serving (compiling without it is fine)"))

    def _models_of(self, name: str, entry: ProviderEntry, use: ProviderUse,
                   where: Where) -> list[ModelSpec]:
        own = {mid: spec for (p, mid), (spec, _) in sorted(self.catalog.items()) if p == name}
        by_name: dict[str, ModelSpec] = {}
        for mid, spec in own.items():
            for n in (mid, *spec.aliases):
                for v in ollama_variants(n):
                    by_name.setdefault(v, spec)
        wanted: list[tuple[str, NodePath]]
        if entry.locality == "local":
            wanted = [(n, ("models", i)) for i, n in enumerate(use.models or [])]
            if name != "ollama" or self.profile.discovery.ollama:
                wanted += [(n, ()) for n in self.discovered.get(name, [])]
            if use.models is None:
                # models router.yaml itself declares for a local provider count as installed
                wanted += [(mid, ()) for (p, mid), (_, w) in sorted(self.catalog.items())
                           if p == name and w.doc is self.config_doc]
        elif use.models is not None:
            wanted = [(n, ("models", i)) for i, n in enumerate(use.models)]
        else:
            return list(own.values())
        chosen: dict[str, ModelSpec] = {}
        for n, sub in wanted:
            found = next((by_name[v] for v in ollama_variants(n) if v in by_name), None)
            if found is None and entry.locality == "cloud" and name not in self.custom:
                self.diags.append(where.diag(
                    "E004", f"unknown model '{n}' for provider '{name}'"
                    f"{did_you_mean(n, own)}", *sub,
                    hint=f"models of {name} in the catalog: " + ", ".join(sorted(own))))
                continue
            if found is not None and found.id not in ollama_variants(n):
                # matched through an alias: call it by the installed name, which is the
                # one the server knows (llama3.2:latest and llama3.2:3b are two tags)
                names = set(ollama_variants(n))
                found = found.model_copy(update={
                    "id": n, "aliases": [a for a in found.aliases if a not in names]})
            spec = found or synthesize(name, n)
            chosen.setdefault(spec.id, spec)
        return [chosen[k] for k in sorted(chosen)]


def resolve(config: RouterConfig, config_doc: Loaded, profile: Profile, profile_doc: Loaded,
            catalogs: Sequence[tuple[CatalogFile, Loaded]], *,
            environ: Mapping[str, str], discovered: Mapping[str, Sequence[str]]) -> Resolved:
    """Enable providers and models, then resolve every model name in rules and overrides."""
    r = _Resolver(config, config_doc, profile, profile_doc, catalogs, environ, discovered)
    providers, models, aliases = r.enable()
    names = _NameIndex(r, models, providers)
    rules = [names.rule(rule, Where(config_doc, ("rules", i)))
             for i, rule in enumerate(config.rules)]
    rules += [names.rule(rule, Where(profile_doc, ("rules", i)))
              for i, rule in enumerate(profile.rules)]
    overrides = {task: names.override(task, ov) for task, ov in sorted(config.overrides.items())}
    return Resolved(
        config=config, config_doc=config_doc, profile=profile, profile_doc=profile_doc,
        providers=providers, models=models, aliases=aliases, rules=rules,
        overrides=overrides, catalog_providers=frozenset(r.specs), diagnostics=r.diags,
    )


class _NameIndex:
    """Every name a config may use for a model: key, bare id, alias, ±``:latest``."""

    def __init__(self, r: _Resolver, models: Mapping[str, ModelEntry],
                 providers: Mapping[str, ProviderEntry]) -> None:
        self.r, self.models, self.providers = r, models, providers
        self.names: dict[str, set[str]] = {}
        for (p, mid), (spec, _) in r.catalog.items():
            self._add(f"{p}/{mid}", [mid, *spec.aliases])
        for key, m in models.items():
            self._add(key, [m.upstream_id])

    def _add(self, key: str, names: list[str]) -> None:
        provider = key.split("/", 1)[0]
        for n in [key, *names, *(f"{provider}/{a}" for a in names)]:
            for v in ollama_variants(n):
                self.names.setdefault(v, set()).add(key)

    def lookup(self, name: str, where: Where, sub: NodePath,
               *, strict: bool) -> list[str]:
        """Enabled keys for ``name``: [] when unavailable (E004 when ``strict`` or unknown)."""
        keys = self.names.get(name, set())
        enabled = sorted(k for k in keys if k in self.models)
        if name in enabled:
            return [name]
        if len(enabled) == 1:
            return enabled
        if len(enabled) > 1:
            self.r.diags.append(where.diag(
                "E004", f"ambiguous model name '{name}': one of " + ", ".join(enabled), *sub,
                hint="write the full key, provider/model"))
            return []
        if not keys:
            self.r.diags.append(where.diag(
                "E004", f"unknown model '{name}'{did_you_mean(name, self.names)}", *sub,
                hint="model names are provider/model keys, bare ids or aliases "
                     "(`router catalog list`)"))
        elif strict:
            provider = sorted(keys)[0].split("/", 1)[0]
            if provider not in self.providers:
                why, hint = (f"provider '{provider}' is not enabled",
                             f"enable it: providers: {{{provider}: {{}}}}")
            else:
                why, hint = (f"it is not among the models of provider '{provider}' here",
                             f"add it to providers.{provider}.models (local models: install it)")
            self.r.diags.append(where.diag(
                "E004", f"model '{name}' is not available: {why}", *sub, hint=hint))
        return []

    def rule(self, rule: Rule, where: Where) -> ResolvedRule:
        defined = [t.name for t in self.r.config.tags]
        for i, tag in enumerate(rule.match.tags or ()):
            if tag not in defined:
                self.r.diags.append(where.diag(
                    "E004", f"unknown tag '{tag}'{did_you_mean(tag, defined)}",
                    "match", "tags", i,
                    hint="tags are defined under tags: in router.yaml" if defined else
                    "no tag is defined: add one under tags: in router.yaml"))
        prefer: list[str] = []
        for i, n in enumerate(rule.prefer):
            prefer += [k for k in self.lookup(n, where, ("prefer", i), strict=False)
                       if k not in prefer]
        exclude: set[str] = set()
        for i, n in enumerate(rule.exclude):
            if n in self.r.specs:
                exclude |= {k for k, m in self.models.items() if m.provider == n}
            else:
                exclude |= set(self.lookup(n, where, ("exclude", i), strict=False))
        return ResolvedRule(
            name=rule.name, match=rule.match, prefer=tuple(prefer), exclude=frozenset(exclude),
            locality=rule.locality, strategy=rule.strategy,
            latency_budget_ms=rule.latency_budget_ms, max_price=rule.max_price,
            min_quality=rule.min_quality,
            verifiers=tuple(rule.verifiers) if rule.verifiers is not None else None,
            where=where,
        )

    def override(self, task: Task, ov: Override) -> ResolvedOverride:
        where = Where(self.r.config_doc, ("overrides", task))
        entries: list[tuple[str, Literal["primary", "fallback"], NodePath]] = []
        named: list[tuple[str, Literal["primary", "fallback"], NodePath]] = []
        if ov.primary is not None:
            named.append((ov.primary, "primary", ("primary",)))
        named += [(n, "fallback", ("fallbacks", i)) for i, n in enumerate(ov.fallbacks)]
        for n, role, sub in named:
            for key in self.lookup(n, where, sub, strict=True):
                if all(key != e[0] for e in entries):
                    entries.append((key, role, (*where.path, *sub)))
        return ResolvedOverride(task=task, entries=tuple(entries), where=where)
