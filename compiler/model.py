"""Typed models of every config file, before resolution ("uninitialized").

Three documents, each with a JSON Schema generated from these models into
``schemas/`` (``router schemas --write``; a test keeps them in sync):

* ``catalog``  - ``catalog/providers.yaml`` and ``catalog/models.yaml`` (and any
  user catalog file): ``providers`` and/or ``models``;
* ``profile``  - ``profiles/*.yaml``: objectives, locality, privacy, escalation,
  chain strategy, budgets, rules, pins, discovery;
* ``router``   - the user's ``router.yaml``: which profile, which providers,
  extra models, overrides, rules, tags and server settings.

Unknown keys are forbidden everywhere so that a typo is an error, not a silent
default.  Names are not resolved here; ``resolve`` does that with positions.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from interlock.runtime.signals import Capability, Complexity, Locality, Modality, Task, Wire
from interlock.runtime.table import Auth, DataCollection, Strategy
from pydantic import BaseModel, ConfigDict, Field, model_validator

Category = str  # "pii" | "secrets" | "code" | "tag:<name>"; checked by the schema pattern
VerifierName = Literal[
    "empty", "thin", "truncated", "refusal", "json", "json_schema", "tool_call", "code_syntax",
    "confidence",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- catalog


class AccountSpec(Strict):
    name: str = Field(description="a label, unique within the provider")
    api_key_env: str = Field(description="environment variable that holds this account's key")
    weight: float = Field(default=1.0, gt=0, description="share of traffic (relative)")
    rpm: int | None = Field(default=None, gt=0, description="requests per minute allowed")


class ProviderSpec(Strict):
    display_name: str = ""
    wire: Wire = Field(description="the protocol it speaks: openai, anthropic or ollama")
    base_url: str = Field(description="default base URL, e.g. https://api.openai.com/v1")
    base_url_env: str | None = Field(
        default=None, description="environment variable that overrides base_url (OLLAMA_HOST)"
    )
    locality: Locality = Field(description="local: runs on this machine/network; cloud: leaves it")
    auth: Auth = "bearer"
    api_key_env: str | None = Field(default=None, description="environment variable of the key")
    accounts: list[AccountSpec] = Field(default_factory=list)
    data_collection: DataCollection = "unknown"
    retention: str = Field(default="", description="what is known about data retention")
    docs: str = ""
    timeout_ms: int = Field(default=120_000, gt=0)
    connect_timeout_ms: int = Field(default=3_000, gt=0)
    max_concurrency: int | None = Field(default=None, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)


class PriceSpec(Strict):
    input: float = Field(ge=0, description="USD per million input tokens")
    output: float = Field(ge=0, description="USD per million output tokens")
    as_of: date | None = Field(default=None, description="the date the price was published/taken")


class SpeedSpec(Strict):
    ttft_ms: float = Field(gt=0, description="typical time to first token, milliseconds")
    tokens_per_s: float = Field(gt=0, description="typical output tokens per second")


class QualitySpec(Strict):
    """0-100 per task; missing tasks fall back to ``general``."""

    general: float = Field(ge=0, le=100)
    code: float | None = Field(default=None, ge=0, le=100)
    reasoning: float | None = Field(default=None, ge=0, le=100)
    summarize: float | None = Field(default=None, ge=0, le=100)
    extract: float | None = Field(default=None, ge=0, le=100)
    creative: float | None = Field(default=None, ge=0, le=100)
    translate: float | None = Field(default=None, ge=0, le=100)


class ModelSpec(Strict):
    id: str = Field(description="the provider's own model name (sent upstream)")
    provider: str = Field(description="a key of providers")
    family: str = ""
    context_window: int = Field(gt=0)
    max_output: int = Field(gt=0)
    price: PriceSpec
    capabilities: list[Capability] = Field(default_factory=list)
    quality: QualitySpec
    speed: SpeedSpec
    memory_gb: float | None = Field(default=None, ge=0, description="local models: RAM/VRAM needed")
    aliases: list[str] = Field(default_factory=list, description="other names clients may send")


class CatalogFile(Strict):
    providers: dict[str, ProviderSpec] = Field(default_factory=dict)
    models: list[ModelSpec] = Field(default_factory=list)


# --------------------------------------------------------------------------- profile


class Objectives(Strict):
    """Relative weights; they are normalised to sum to 1."""

    quality: float = Field(ge=0)
    cost: float = Field(ge=0)
    latency: float = Field(ge=0)


class PerComplexity(Strict):
    low: float = 0
    medium: float = 0
    high: float = 0


class LocalPolicy(Strict):
    prefer: bool = Field(default=True, description="add `bonus` to local candidates' scores")
    bonus: float = Field(default=0.1, ge=0, le=1)
    max_complexity: Complexity = Field(
        default="high", description="above this complexity local models are not primary"
    )


class PrivacyPolicy(Strict):
    private_when: list[Category] = Field(
        default_factory=lambda: ["pii", "secrets"],
        description="what makes a request private: pii, secrets, code, tag:NAME",
    )


def _default_verifiers() -> list[VerifierName]:
    return ["empty", "truncated", "refusal"]


class EscalationPolicy(Strict):
    enabled: bool = True
    verifiers: list[VerifierName] = Field(default_factory=_default_verifiers)
    verify_stream: Literal["pass", "buffer"] = "pass"
    only_from_local: bool = Field(
        default=True, description="escalate only answers that came from a local model"
    )
    confidence_threshold: float = Field(
        default=0.6, ge=0, le=1,
        description="with the `confidence` verifier: the model is asked to end its answer "
                    "with `confidence: 0.x`; below this threshold the answer escalates",
    )


class ChainPolicy(Strict):
    strategy: Strategy = "score"
    max_candidates: int = Field(default=4, ge=1, le=16)
    weighted_top: int = Field(default=2, ge=1, description="with strategy weighted: how many share")


class Budgets(Strict):
    latency_ms: dict[Complexity, int] = Field(default_factory=dict)
    max_price: PriceSpec | None = Field(default=None, description="USD per Mtok cap per candidate")
    min_quality: PerComplexity = Field(default_factory=PerComplexity)


class Match(Strict):
    task: list[Task] | None = None
    complexity: list[Complexity] | None = None
    sensitivity: list[Literal["public", "private"]] | None = None
    modality: list[Modality] | None = None
    tags: list[str] | None = Field(
        default=None,
        description="custom classifier tags (router.yaml tags:); the rule applies to a "
        "request carrying any of them, ahead of every tag-less rule",
    )


class Rule(Strict):
    """First matching rule wins for a cell; later rules never see it."""

    name: str
    match: Match = Field(default_factory=Match)
    prefer: list[str] = Field(default_factory=list, description="models put first, in order")
    exclude: list[str] = Field(default_factory=list, description="models or providers left out")
    locality: Literal["local", "cloud", "any"] = "any"
    strategy: Strategy | None = None
    latency_budget_ms: int | None = Field(default=None, gt=0)
    max_price: PriceSpec | None = None
    min_quality: float | None = Field(default=None, ge=0, le=100)
    verifiers: list[VerifierName] | None = None


class PinSpec(Strict):
    prefix: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*/$")
    locality: Locality | None = None
    provider: str | None = None


class Discovery(Strict):
    ollama: bool = Field(default=True, description="route to any model Ollama has installed")


class Profile(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    objectives: Objectives
    local: LocalPolicy = Field(default_factory=LocalPolicy)
    privacy: PrivacyPolicy = Field(default_factory=PrivacyPolicy)
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    chain: ChainPolicy = Field(default_factory=ChainPolicy)
    budgets: Budgets = Field(default_factory=Budgets)
    rules: list[Rule] = Field(default_factory=list)
    pins: list[PinSpec] = Field(default_factory=list)
    discovery: Discovery = Field(default_factory=Discovery)


# --------------------------------------------------------------------------- router.yaml


class ProviderUse(Strict):
    """Enables a catalog provider (or defines a new one when `wire` is given)."""

    enabled: bool = True
    base_url: str | None = None
    api_key_env: str | None = None
    accounts: list[AccountSpec] | None = None
    models: list[str] | None = Field(
        default=None, description="only these of its catalog models (local: the installed ones)"
    )
    wire: Wire | None = None
    locality: Locality | None = None
    auth: Auth | None = None
    timeout_ms: int | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, gt=0)


class Override(Strict):
    """Per-task pins: the primary and fallbacks for every cell of the task."""

    primary: str | None = None
    fallbacks: list[str] = Field(default_factory=list)


class TagSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    keywords: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list, description="Python regular expressions")
    private: bool = False
    task: Task | None = None
    complexity: Complexity | None = None


class StoreSpec(Strict):
    """The request log: an SQLite file (WAL), optionally mirrored to JSONL."""

    enabled: bool = True
    path: str | None = Field(
        default=None,
        description="SQLite file; default $XDG_DATA_HOME/interlock/interlock.db "
        "(the INTERLOCK_DB environment variable overrides it)",
    )
    jsonl: str | None = Field(default=None, description="also append every record to this file")
    retention_days: float | None = Field(default=30.0, gt=0,
                                         description="delete records older than this")
    max_rows: int | None = Field(default=None, gt=0, description="keep at most this many")


class ClientKeySpec(Strict):
    """A client API key: its hash (``router keys hash``) or the variable holding it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="a label")
    hash: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$",
                             description="sha256:<hex> of the key (router keys hash)")
    key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                description="environment variable that holds the raw key")
    models: list[str] = Field(default_factory=lambda: ["*"],
                              description="models this key may use (fnmatch wildcards)")
    profiles: list[str] = Field(default_factory=list,
                                description="profiles this key may use; empty: any")
    private_only: bool = Field(default=False, description="every request of this key is private")
    rpm: int | None = Field(default=None, gt=0, description="requests per minute")
    burst: int | None = Field(default=None, gt=0, description="bucket size (default: rpm)")

    @model_validator(mode="after")
    def _one_secret(self) -> ClientKeySpec:
        if (self.hash is None) == (self.key_env is None):
            raise ValueError(f"key {self.name!r}: give exactly one of 'hash' or 'key_env'")
        return self


class AuthSpec(Strict):
    keys: list[ClientKeySpec] = Field(default_factory=list,
                                      description="client keys; none: auth is off")

    @model_validator(mode="after")
    def _unique(self) -> AuthSpec:
        names = [k.name for k in self.keys]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate key name(s): {', '.join(dupes)}")
        return self


class LimitsSpec(Strict):
    max_headers: int = Field(default=100, ge=8, le=10_000)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    queue_ms: int = Field(default=2_000, ge=0, description="wait for a provider slot")


class BreakerSpec(Strict):
    failures: int = Field(default=5, ge=1, description="consecutive failures that open it")
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    window: int = Field(default=20, ge=2, description="calls in the failure-rate window")
    min_calls: int = Field(default=10, ge=1)
    cooldown_ms: int = Field(default=10_000, gt=0, description="open time before a probe")
    retry_ratio: float = Field(default=0.2, ge=0, le=1, description="retries per request")
    retry_reserve: int = Field(default=10, ge=0, description="retries a cold router may spend")


class IdempotencySpec(Strict):
    ttl_s: int = Field(default=600, gt=0)
    max_entries: int = Field(default=10_000, gt=0)
    max_response_bytes: int = Field(default=1024 * 1024, gt=0)


class ServerSpec(Strict):
    deadline_ms: int = Field(default=300_000, gt=0)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_attempts: int = Field(default=4, ge=1, le=16)
    log_prompts: bool = Field(
        default=False, description="store prompts and answers (secrets and PII redacted)"
    )
    store: StoreSpec = Field(default_factory=StoreSpec)
    auth: AuthSpec = Field(default_factory=AuthSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)
    idempotency: IdempotencySpec = Field(default_factory=IdempotencySpec)


class RouterConfig(Strict):
    profile: str = Field(default="balanced", description="built-in name or a path to a profile")
    catalogs: list[str] = Field(default_factory=list, description="extra catalog files")
    providers: dict[str, ProviderUse] = Field(default_factory=dict)
    models: list[ModelSpec] = Field(default_factory=list, description="extra models")
    overrides: dict[Task, Override] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list, description="run before the profile's rules")
    tags: list[TagSpec] = Field(default_factory=list)
    private_when: list[Category] | None = Field(
        default=None, description="replaces the profile's privacy.private_when"
    )
    server: ServerSpec = Field(default_factory=ServerSpec)
