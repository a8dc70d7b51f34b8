"""The shipped data: catalogs, built-in profiles and the `router init` template.

Everything here reads the files as installed in the package (catalog/, profiles/,
compiler/templates/), loads them the safe way and validates them against the
pydantic models of compiler/model.py, then checks the facts the compiler relies
on: providers and their wires, unique keys, local models free, every model a rule
names exists, and that the starter router.yaml renders to a valid config.
"""

from __future__ import annotations

import itertools
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from interlock.compiler.model import CatalogFile, Match, ModelSpec, Profile, RouterConfig
from interlock.runtime.signals import COMPLEXITIES, MODALITIES, SENSITIVITIES, TASKS
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from ruamel.yaml import YAML

PKG = Path(str(resources.files("interlock")))
CATALOG_DIR = PKG / "catalog"
PROFILE_DIR = PKG / "profiles"
TEMPLATE = PKG / "compiler" / "templates" / "router.yaml.j2"
PROFILE_NAMES = ("balanced", "cost", "latency", "privacy-first", "quality")

# provider -> (wire, locality, base_url)
REQUIRED_PROVIDERS = {
    "ollama": ("ollama", "local", "http://127.0.0.1:11434"),
    "llamacpp": ("openai", "local", "http://127.0.0.1:8080/v1"),
    "vllm": ("openai", "local", "http://127.0.0.1:8000/v1"),
    "lmstudio": ("openai", "local", "http://127.0.0.1:1234/v1"),
    "openai": ("openai", "cloud", "https://api.openai.com/v1"),
    "anthropic": ("anthropic", "cloud", "https://api.anthropic.com"),
    "openrouter": ("openai", "cloud", "https://openrouter.ai/api/v1"),
    "groq": ("openai", "cloud", "https://api.groq.com/openai/v1"),
    "together": ("openai", "cloud", "https://api.together.xyz/v1"),
    "mistral": ("openai", "cloud", "https://api.mistral.ai/v1"),
    "deepseek": ("openai", "cloud", "https://api.deepseek.com/v1"),
    "gemini": ("openai", "cloud", "https://generativelanguage.googleapis.com/v1beta/openai"),
}
KEY_ENVS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "groq": "GROQ_API_KEY",
    "together": "TOGETHER_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "gemini": "GEMINI_API_KEY",
}


def _load(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def catalog() -> CatalogFile:
    providers = CatalogFile.model_validate(_load(CATALOG_DIR / "providers.yaml"))
    models = CatalogFile.model_validate(_load(CATALOG_DIR / "models.yaml"))
    return CatalogFile(providers=providers.providers, models=models.models)


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return {n: Profile.model_validate(_load(PROFILE_DIR / f"{n}.yaml")) for n in PROFILE_NAMES}


def _key(m: ModelSpec) -> str:
    return f"{m.provider}/{m.id}"


def _model_names(cat: CatalogFile) -> set[str]:
    """Every name a rule may use for a model: keys, unambiguous bare ids, aliases."""
    ids = Counter(m.id for m in cat.models)
    names = {_key(m) for m in cat.models}
    names |= {i for i, n in ids.items() if n == 1}
    names |= {a for m in cat.models for a in m.aliases}
    return names


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    ("path", "schema"),
    [(CATALOG_DIR / "providers.yaml", "catalog"), (CATALOG_DIR / "models.yaml", "catalog")]
    + [(PROFILE_DIR / f"{n}.yaml", "profile") for n in PROFILE_NAMES],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_shipped_yaml_starts_with_schema_line_and_validates(path: Path, schema: str) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema=../schemas/{schema}.schema.json"
    data = _load(path)
    model = CatalogFile if schema == "catalog" else Profile
    model.model_validate(data)


def test_every_profile_file_is_a_built_in_profile() -> None:
    shipped = {p.stem for p in PROFILE_DIR.glob("*.yaml")}
    assert shipped == set(PROFILE_NAMES)


def test_profile_name_matches_file(profiles: dict[str, Profile]) -> None:
    for name, prof in profiles.items():
        assert prof.name == name


# ----------------------------------------------------------------------------- providers


def test_required_providers_have_right_wire_locality_and_url(catalog: CatalogFile) -> None:
    for name, (wire, locality, url) in REQUIRED_PROVIDERS.items():
        spec = catalog.providers[name]
        assert (spec.wire, spec.locality, spec.base_url) == (wire, locality, url), name


def test_local_providers_collect_nothing_and_need_no_key(catalog: CatalogFile) -> None:
    for name, spec in catalog.providers.items():
        if spec.locality == "local":
            assert spec.data_collection == "none", name
            assert spec.auth == "none", name
            assert spec.api_key_env is None, name
    assert catalog.providers["ollama"].base_url_env == "OLLAMA_HOST"


def test_cloud_providers_have_key_env_retention_and_docs(catalog: CatalogFile) -> None:
    for name, env in KEY_ENVS.items():
        spec = catalog.providers[name]
        assert spec.api_key_env == env, name
        assert spec.auth != "none", name
        assert spec.retention.strip() and "\n" not in spec.retention.strip(), name
        assert spec.docs.startswith("https://"), name
    assert catalog.providers["anthropic"].auth == "x-api-key"


# ----------------------------------------------------------------------------- models


def test_enough_models(catalog: CatalogFile) -> None:
    assert len(catalog.models) >= 40
    local = [m for m in catalog.models if catalog.providers[m.provider].locality == "local"]
    assert len(local) >= 15
    assert len(catalog.models) - len(local) >= 30


def test_every_model_provider_exists(catalog: CatalogFile) -> None:
    unknown = {m.provider for m in catalog.models} - set(catalog.providers)
    assert not unknown


def test_model_keys_unique(catalog: CatalogFile) -> None:
    dupes = [k for k, n in Counter(_key(m) for m in catalog.models).items() if n > 1]
    assert not dupes


def test_aliases_unique_and_do_not_shadow_other_models(catalog: CatalogFile) -> None:
    aliases = [a for m in catalog.models for a in m.aliases]
    assert len(aliases) == len(set(aliases))
    taken = {_key(m) for m in catalog.models} | {m.id for m in catalog.models}
    assert not set(aliases) & taken


def test_local_models_free_with_memory(catalog: CatalogFile) -> None:
    for m in catalog.models:
        if catalog.providers[m.provider].locality == "local":
            assert (m.price.input, m.price.output) == (0, 0), _key(m)
            assert m.memory_gb is not None and m.memory_gb > 0, _key(m)


def test_cloud_models_have_dated_prices(catalog: CatalogFile) -> None:
    for m in catalog.models:
        if catalog.providers[m.provider].locality == "cloud":
            assert m.price.as_of is not None, _key(m)
            assert m.price.input > 0, _key(m)
            assert m.memory_gb is None, _key(m)


def test_embedding_models_are_embedding_only(catalog: CatalogFile) -> None:
    embed = [m for m in catalog.models if "embeddings" in m.capabilities]
    assert {m.provider for m in embed} >= {"openai", "ollama", "mistral"}
    for m in embed:
        assert m.capabilities == ["embeddings"], _key(m)
        assert m.quality.general <= 50, _key(m)


def test_chat_models_stream_and_fit_their_window(catalog: CatalogFile) -> None:
    for m in catalog.models:
        if "embeddings" not in m.capabilities:
            assert "streaming" in m.capabilities, _key(m)
            assert m.max_output <= m.context_window, _key(m)


def test_requested_models_present(catalog: CatalogFile) -> None:
    keys = {_key(m) for m in catalog.models}
    wanted = {
        "openai/gpt-4.1", "openai/gpt-4.1-mini", "openai/gpt-4.1-nano", "openai/gpt-4o",
        "openai/gpt-4o-mini", "openai/o3", "openai/o4-mini", "openai/text-embedding-3-small",
        "openai/text-embedding-3-large", "groq/llama-3.3-70b-versatile",
        "groq/llama-3.1-8b-instant", "openrouter/meta-llama/llama-3.3-70b-instruct",
        "mistral/mistral-large-latest", "mistral/mistral-small-latest",
        "mistral/codestral-latest", "mistral/mistral-embed", "deepseek/deepseek-chat",
        "deepseek/deepseek-reasoner", "gemini/gemini-2.5-pro", "gemini/gemini-2.5-flash",
        "gemini/gemini-2.0-flash",
    }
    wanted |= {f"ollama/{i}" for i in (
        "qwen3:8b", "qwen3:4b", "qwen3:14b", "qwen2.5-coder:7b", "qwen2.5-coder:14b",
        "llama3.2:3b", "llama3.1:8b", "llama3.2-vision:11b", "gemma3:4b", "gemma3:12b",
        "phi4:14b", "mistral:7b", "deepseek-r1:8b", "deepseek-r1:14b", "nomic-embed-text",
        "mxbai-embed-large", "llava:7b",
    )}
    assert not wanted - keys
    assert {"claude-opus-4", "claude-sonnet-4", "claude-3-5-haiku-latest"} <= _model_names(
        catalog
    )


def test_every_task_and_modality_has_a_local_and_a_cloud_model(catalog: CatalogFile) -> None:
    """So that every cell of a fully enabled table can be filled."""
    chat = [m for m in catalog.models if "embeddings" not in m.capabilities]
    for locality in ("local", "cloud"):
        mine = [m for m in chat if catalog.providers[m.provider].locality == locality]
        assert any("vision" in m.capabilities for m in mine), locality
        assert any("tools" in m.capabilities for m in mine), locality
        assert any("json_schema" in m.capabilities for m in mine), locality


# ----------------------------------------------------------------------------- profiles


def test_name_helper_rejects_unknown(catalog: CatalogFile) -> None:
    names = _model_names(catalog)
    assert "openai/gpt-4o-mini" in names and "gpt-4o-mini" in names
    assert "openai/gpt-4o-mni" not in names and "ollama/qwen3:9b" not in names


def test_rule_names_exist_in_catalog(
    catalog: CatalogFile, profiles: dict[str, Profile]
) -> None:
    models = _model_names(catalog)
    for pname, prof in profiles.items():
        for rule in prof.rules:
            for name in rule.prefer:
                assert name in models, f"{pname}: rule {rule.name}: {name}"
            for name in rule.exclude:
                assert name in models or name in catalog.providers, f"{pname}: {name}"


def test_rule_preferences_fit_their_cells(
    catalog: CatalogFile, profiles: dict[str, Profile]
) -> None:
    """A rule that only matches image cells must prefer vision models."""
    by_key = {_key(m): m for m in catalog.models}
    for prof in profiles.values():
        for rule in prof.rules:
            if rule.match.modality == ["image"]:
                for name in rule.prefer:
                    assert "vision" in by_key[name].capabilities, f"{rule.name}: {name}"


def _cells(match: Match) -> set[tuple[str, str, str, str]]:
    return set(itertools.product(
        match.task or TASKS,
        match.complexity or COMPLEXITIES,
        match.sensitivity or SENSITIVITIES,
        match.modality or MODALITIES,
    ))


def test_no_rule_is_shadowed(profiles: dict[str, Profile]) -> None:
    for pname, prof in profiles.items():
        seen: set[tuple[str, str, str, str]] = set()
        for rule in prof.rules:
            cells = _cells(rule.match)
            assert cells - seen, f"{pname}: rule {rule.name} never applies"
            seen |= cells


def test_privacy_and_pins(catalog: CatalogFile, profiles: dict[str, Profile]) -> None:
    for pname, prof in profiles.items():
        assert {"pii", "secrets"} <= set(prof.privacy.private_when), pname
        pins = {p.prefix: p for p in prof.pins}
        assert pins["local/"].locality == "local", pname
        assert pins["cloud/"].locality == "cloud", pname
        assert pins["ollama/"].provider == "ollama", pname
        for pin in prof.pins:
            assert pin.provider is None or pin.provider in catalog.providers, pin.prefix
        assert prof.discovery.ollama, pname
    assert "code" in profiles["privacy-first"].privacy.private_when
    assert "code" not in profiles["balanced"].privacy.private_when


def test_profiles_differ_in_intent(profiles: dict[str, Profile]) -> None:
    def share(name: str, what: str) -> float:
        o = profiles[name].objectives
        return float(getattr(o, what)) / (o.quality + o.cost + o.latency)

    assert share("quality", "quality") == max(share(n, "quality") for n in PROFILE_NAMES)
    assert share("cost", "cost") == max(share(n, "cost") for n in PROFILE_NAMES)
    assert share("latency", "latency") == max(share(n, "latency") for n in PROFILE_NAMES)
    assert profiles["latency"].chain.strategy == "latency"
    assert profiles["quality"].escalation.verify_stream == "buffer"
    assert not profiles["quality"].local.prefer
    lat = profiles["balanced"].budgets.latency_ms
    assert lat["low"] <= lat["medium"] <= lat["high"]


# ----------------------------------------------------------------------------- template


def _render(trim: bool = True, **ctx: Any) -> str:
    env = SandboxedEnvironment(
        autoescape=False, undefined=StrictUndefined, trim_blocks=trim, lstrip_blocks=trim,
        keep_trailing_newline=True,
    )
    base: dict[str, Any] = {
        "profile": "balanced",
        "ollama": {"url": "http://127.0.0.1:11434", "reachable": False, "models": []},
        "keys": [{"provider": p, "env": e, "set": False} for p, e in KEY_ENVS.items()],
        "schema_url": "https://example.invalid/router.schema.json",
        "generated_at": "2026-01-02",
    }
    base.update(ctx)
    return env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(**base)


def _config(text: str) -> RouterConfig:
    return RouterConfig.model_validate(YAML(typ="safe", pure=True).load(text))


@pytest.mark.parametrize("trim", [True, False])
def test_template_without_ollama(trim: bool) -> None:
    text = _render(trim)
    assert text.splitlines()[0] == (
        "# yaml-language-server: $schema=https://example.invalid/router.schema.json"
    )
    cfg = _config(text)
    assert cfg.profile == "balanced"
    assert set(cfg.providers) == {"ollama"}
    assert cfg.providers["ollama"].enabled and cfg.providers["ollama"].models is None
    assert "not reachable" in text and "# openai: {}" in text


@pytest.mark.parametrize("trim", [True, False])
def test_template_with_ollama_models_and_one_key(trim: bool) -> None:
    keys = [{"provider": p, "env": e, "set": p == "groq"} for p, e in KEY_ENVS.items()]
    ollama = {"url": "http://10.0.0.5:11434", "reachable": True,
              "models": ["qwen3:8b", "nomic-embed-text:latest"]}
    text = _render(trim, profile="cost", ollama=ollama, keys=keys)
    cfg = _config(text)
    assert cfg.profile == "cost"
    assert set(cfg.providers) == {"ollama", "groq"}
    assert cfg.providers["ollama"].models == ["qwen3:8b", "nomic-embed-text:latest"]
    assert "# openai: {}" in text and "GROQ_API_KEY" in text


def test_template_quotes_hostile_values() -> None:
    """Outside values are data: no new keys, no evaluated expressions."""
    ollama = {"url": "http://x\nprofile: evil", "reachable": True,
              "models": ['a"b\nserver: {log_prompts: true}', "{{ 7 * 7 }}"]}
    keys = [{"provider": "openai", "env": "OPENAI_API_KEY\nrules: oops", "set": True},
            {"provider": "gro\nq", "env": "X", "set": True}]
    text = _render(profile="bad\n  name", ollama=ollama, keys=keys,
                   schema_url="u\nprofile: evil", generated_at="d\ncatalogs: [x]")
    cfg = _config(text)
    assert cfg.profile == "bad\n  name"
    assert cfg.providers["ollama"].models == ['a"b\nserver: {log_prompts: true}', "{{ 7 * 7 }}"]
    assert set(cfg.providers) == {"ollama", "openai", "gro\nq"}
    assert not cfg.server.log_prompts and not cfg.catalogs and not cfg.rules


def test_template_never_lists_ollama_twice() -> None:
    keys = [{"provider": "ollama", "env": "OLLAMA_API_KEY", "set": True},
            {"provider": "openai", "env": "OPENAI_API_KEY", "set": True},
            {"provider": "openai", "env": "OPENAI_API_KEY", "set": True}]
    cfg = _config(_render(keys=keys))
    assert set(cfg.providers) == {"ollama", "openai"}


def test_template_commented_examples_are_valid_when_uncommented() -> None:
    """The examples a user uncomments must themselves be a valid router.yaml."""
    text = _render()
    tail = text[text.index("# Extra catalog files"):]
    top = ("catalogs", "models", "overrides", "rules", "tags", "private_when", "server")
    example = "\n".join(
        line[2:] for line in tail.splitlines()
        if line.startswith(tuple(f"# {k}:" for k in top)) or line.startswith("#   ")
    )
    cfg = _config(example)
    assert cfg.catalogs and cfg.models and cfg.overrides and cfg.rules and cfg.tags
    assert cfg.private_when and "tag:contracts" in cfg.private_when
    assert {t.name for t in cfg.tags} == {"contracts", "sql"}
