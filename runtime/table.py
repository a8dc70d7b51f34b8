"""The decision table: the one artifact between the compiler and the runtime.

The compiler writes it (``router.lock.json``); the runtime loads it once and
executes it.  These frozen types are the contract: the compiler builds them, the
JSON Schema in ``schemas/decision-table.schema.json`` is generated from them, and
the runtime reads nothing else.  They import nothing from the compiler.

Layout::

    DecisionTable
    ├── providers   {name: ProviderEntry}      where and how to call
    ├── models      {key: ModelEntry}          "provider/upstream-id" → facts, caps bits
    ├── model_index {name: key}                every name a client may send
    ├── cells       {cell key: Cell}           task.complexity.sensitivity.modality
    │     └── chain [Candidate]                ordered, each with its score terms
    ├── embeddings  {sensitivity: Cell}        the embeddings endpoint's chains
    ├── pins        [Pin]                      "local/..." style model-name prefixes
    ├── classifier  ClassifierConfig           privacy categories, tags, thresholds
    └── server      ServerDefaults             deadline, body limit, retries

The content hash (``hash``) is the sha256 of the canonical JSON of everything
else; ``X-Router-Table`` carries it on every response.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import orjson
from interlock.runtime.signals import (
    CAPABILITY_BITS,
    Complexity,
    Locality,
    Modality,
    Role,
    Sensitivity,
    Task,
    Wire,
)
from pydantic import BaseModel, ConfigDict, Field

TABLE_FORMAT = 1

Strategy = Literal["score", "price", "latency", "throughput", "weighted"]
Auth = Literal["none", "bearer", "x-api-key"]
DataCollection = Literal["none", "no-training", "may-train", "unknown"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Account(_Frozen):
    """One key of a provider; several spread load and fail over between them."""

    name: str
    api_key_env: str | None = None
    weight: float = 1.0
    rpm: int | None = Field(default=None, description="requests per minute, if limited")


class ProviderEntry(_Frozen):
    name: str
    wire: Wire
    base_url: str
    locality: Locality
    auth: Auth
    accounts: tuple[Account, ...] = ()
    data_collection: DataCollection = "unknown"
    retention: str = ""
    timeout_ms: int = 120_000
    connect_timeout_ms: int = 3_000
    max_concurrency: int | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="static extra headers")


class Price(_Frozen):
    """US dollars per million tokens."""

    input: float = 0.0
    output: float = 0.0


class Speed(_Frozen):
    """Catalog hints; the runtime starts its live figures from these."""

    ttft_ms: float
    tokens_per_s: float


class ModelEntry(_Frozen):
    key: str = Field(description="'provider/upstream_id', unique in the table")
    provider: str
    upstream_id: str = Field(description="the model name sent to the provider")
    family: str = ""
    locality: Locality
    context_window: int
    max_output: int
    price: Price
    caps: int = Field(description="capability bit mask, see capability_bits")
    speed: Speed
    quality: dict[str, float] = Field(description="0-100 per task")
    embedding: bool = False


class Terms(_Frozen):
    """A candidate's score broken into its weighted terms (score = their sum)."""

    quality: float
    cost: float
    latency: float
    locality: float
    preference: float = 0.0


class Candidate(_Frozen):
    model: str = Field(description="key into DecisionTable.models")
    provider: str
    role: Role
    local: bool
    caps: int
    score: float
    terms: Terms
    weight: float = 1.0
    reason: str = Field(default="", description="why it holds this place")


class Excluded(_Frozen):
    model: str
    reason: str


class Policy(_Frozen):
    allow_cloud: bool
    strategy: Strategy = "score"
    verifiers: tuple[str, ...] = ()
    verify_stream: Literal["pass", "buffer"] = "pass"
    escalate: bool = False
    latency_budget_ms: int | None = None
    max_price: Price | None = None
    min_quality: float = 0.0
    only_from_local: bool = Field(
        default=True, description="verify (and escalate) only answers from local models")
    confidence_threshold: float | None = Field(
        default=None, description="with the confidence verifier: below this, escalate")


class Cell(_Frozen):
    key: str
    task: Task | Literal["embeddings"]
    complexity: Complexity | None
    sensitivity: Sensitivity
    modality: Modality
    policy: Policy
    chain: tuple[Candidate, ...]
    excluded: tuple[Excluded, ...] = ()
    rules: tuple[str, ...] = Field(default=(), description="rules that shaped this cell")


class TagVariant(_Frozen):
    """A cell as a tag rule shapes it: used instead of the base cell when the request
    carries the tag (``rank`` = the rule's position; the lowest rank wins)."""

    rule: str
    rank: int = Field(ge=0)
    cell: Cell


class Pin(_Frozen):
    """A model-name prefix a client may send, e.g. ``local/`` or ``groq/``."""

    prefix: str
    locality: Locality | None = None
    provider: str | None = None


class TagRule(_Frozen):
    """A custom classifier from config: keywords or regexes that set a tag."""

    name: str
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    private: bool = False
    task: Task | None = None
    complexity: Complexity | None = None


class ClassifierConfig(_Frozen):
    private_when: tuple[str, ...] = Field(
        description="categories that make a request private: pii, secrets, code, tag:NAME"
    )
    tags: tuple[TagRule, ...] = ()
    long_prompt_tokens: int = Field(default=6000, description="above this, complexity is high")
    medium_prompt_tokens: int = Field(default=1200, description="above this, at least medium")


class ClientKey(_Frozen):
    """One client API key of the router (ingress auth).

    The table holds the key's sha256 (hex) or the name of the environment
    variable that holds the raw key - never the key itself.
    """

    name: str
    sha256: str | None = Field(default=None, description="hex sha256 of the key")
    key_env: str | None = Field(default=None, description="variable holding the raw key")
    models: tuple[str, ...] = Field(default=("*",), description="allowed models (wildcards)")
    profiles: tuple[str, ...] = Field(default=(), description="allowed profiles; empty: any")
    private_only: bool = Field(default=False, description="every request is private")
    rpm: int | None = Field(default=None, description="requests per minute (token bucket)")
    burst: int | None = Field(default=None, description="bucket size; default rpm")


class AuthDefaults(_Frozen):
    """Ingress auth: off when ``keys`` is empty."""

    keys: tuple[ClientKey, ...] = ()


class LimitDefaults(_Frozen):
    """Request limits beyond the body size and the deadline."""

    max_headers: int = 100
    max_header_bytes: int = 32 * 1024
    #: how long a request waits for a slot of a provider at max_concurrency
    queue_ms: int = 2_000


class BreakerDefaults(_Frozen):
    """Circuit breakers (per provider and per model) and the retry budget."""

    failures: int = 5
    failure_rate: float = 0.5
    window: int = 20
    min_calls: int = 10
    cooldown_ms: int = 10_000
    retry_ratio: float = 0.2
    retry_reserve: int = 10


class IdempotencyDefaults(_Frozen):
    ttl_s: int = 600
    max_entries: int = 10_000
    max_response_bytes: int = 1024 * 1024


class StoreSettings(_Frozen):
    """The request log (``interlock.runtime.store``): where, and for how long."""

    enabled: bool = True
    path: str | None = Field(
        default=None,
        description="SQLite file; default $INTERLOCK_DB, else "
        "$XDG_DATA_HOME/interlock/interlock.db (INTERLOCK_DB always wins)",
    )
    jsonl: str | None = Field(default=None, description="also append every record to this file")
    retention_days: float | None = Field(default=30.0, description="delete older records")
    max_rows: int | None = Field(default=None, description="keep at most this many records")


class ServerDefaults(_Frozen):
    deadline_ms: int = 300_000
    max_body_bytes: int = 8 * 1024 * 1024
    max_attempts: int = 4
    retry_after_cap_ms: int = 10_000
    log_prompts: bool = False
    store: StoreSettings = Field(default_factory=StoreSettings)
    auth: AuthDefaults = Field(default_factory=AuthDefaults)
    limits: LimitDefaults = Field(default_factory=LimitDefaults)
    breaker: BreakerDefaults = Field(default_factory=BreakerDefaults)
    idempotency: IdempotencyDefaults = Field(default_factory=IdempotencyDefaults)


class Source(_Frozen):
    """An input file and the sha256 of its bytes (built-in files are named pkg:...)."""

    path: str
    sha256: str


class DecisionTable(_Frozen):
    format: int = TABLE_FORMAT
    hash: str = Field(default="", description="sha256 of the canonical JSON without this field")
    generator: str
    profile: str
    profile_description: str = ""
    weights: dict[str, float]
    sources: tuple[Source, ...] = ()
    capability_bits: dict[str, int] = Field(
        default_factory=lambda: {str(k): v for k, v in CAPABILITY_BITS.items()}
    )
    providers: dict[str, ProviderEntry]
    models: dict[str, ModelEntry]
    model_index: dict[str, str] = Field(description="every accepted model name → model key")
    aliases: tuple[str, ...] = ("auto", "route-auto")
    pins: tuple[Pin, ...] = ()
    classifier: ClassifierConfig
    cells: dict[str, Cell]
    embeddings: dict[str, Cell] = Field(default_factory=dict, description="keyed by sensitivity")
    server: ServerDefaults = Field(default_factory=ServerDefaults)
    tag_cells: dict[str, dict[str, TagVariant]] = Field(
        default_factory=dict,
        description="tag → cell key → the cell as the first rule matching that tag shapes it",
    )

    # -- canonical form -------------------------------------------------------

    def canonical_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, 2-space indent) including the hash."""
        data = self._dump()
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"

    def _dump(self) -> dict[str, Any]:
        # An empty tag_cells is left out so tables from before it existed keep their hash.
        data = self.model_dump(mode="json")
        if not data.get("tag_cells"):
            data.pop("tag_cells", None)
        return data

    def content_hash(self) -> str:
        """The sha256 over the canonical JSON of everything but ``hash``."""
        import hashlib

        data = self._dump()
        data.pop("hash", None)
        raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def with_hash(self) -> DecisionTable:
        return self.model_copy(update={"hash": self.content_hash()})


class TableError(Exception):
    """A table that cannot be loaded; the message says why and what to do."""


def parse_table(raw: bytes, *, origin: str = "<table>") -> DecisionTable:
    """Parse and verify a serialized table (format, schema and hash)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TableError(f"{origin}: not valid JSON ({exc}); run `router compile` again") from exc
    if not isinstance(data, dict):
        raise TableError(f"{origin}: a decision table is a JSON object")
    if data.get("format") != TABLE_FORMAT:
        raise TableError(
            f"{origin}: table format {data.get('format')!r} is not {TABLE_FORMAT}; "
            "recompile it with this version of `router compile`"
        )
    try:
        table = DecisionTable.model_validate(data)
    except ValueError as exc:
        raise TableError(f"{origin}: not a valid decision table:\n{exc}") from exc
    expected = table.content_hash()
    if table.hash != expected:
        raise TableError(
            f"{origin}: content hash mismatch (file says {table.hash or 'nothing'}, "
            f"content is {expected}); the file was edited by hand - recompile it"
        )
    return table


def load_table(path: str | Path) -> DecisionTable:
    """Read and verify ``router.lock.json`` (or any emitted table)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TableError(f"{p}: cannot read the table ({exc.strerror})") from exc
    return parse_table(raw, origin=str(p))
