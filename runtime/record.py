"""The request record and the recorder: what every request leaves behind.

``state.recorder`` (a :class:`Recorder`, one per worker) is called from the
request pipeline:

* ``started(diag, surface=..., model=..., stream=...)`` when a request arrives
  (it gives the request its id, ``diag.request_id``), ``classified(diag, cls)``
  and ``routed(diag, decision)`` as it goes - these only publish live events on
  ``recorder.bus`` and do nothing at all when nobody subscribed;
* ``record(...)`` exactly once when it ends, success or error: it builds one
  :class:`RequestRecord`, publishes a ``completed`` event and hands the record to
  the store (``interlock.runtime.store``), which builds it after the request's answer
  went out and hands it to the log's writer process.  It never blocks and never does
  I/O: if too many records are in flight, the record is dropped and counted.

Derived money figures (US dollars, from the table's model prices per million tokens):

* ``cost_usd`` = tokens_in × price.input + tokens_out × price.output of the model
  that answered (0 for local models);
* ``baseline_usd`` = the same tokens at the price of the *cloud-only baseline*
  model of the request's cell: the cell's best-scoring cloud candidate (the first
  cloud model of its compiled chain); for a cell with no cloud candidate (private
  cells, local-only chains), the cheapest cloud chat model in the table whose
  quality for the cell's task is at least that of the cell's primary (vision-capable
  for image cells), else the highest-quality one; no cloud model in the table: no
  baseline (``baseline_model`` null, baseline = cost);
* ``saved_usd`` = baseline_usd - cost_usd (negative when the router chose a model
  dearer than the baseline, e.g. an escalation).

Errors: a request that got no answer has cost 0 and saved 0.
"""

from __future__ import annotations

import itertools
import logging
import operator
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from interlock.runtime.canonical import CanonicalRequest, Usage
from interlock.runtime.classify import Classification
from interlock.runtime.decide import Decision
from interlock.runtime.events import EventBus, Subscription
from interlock.runtime.rowbuild import PROMPT_SLOT, RowContext, derive
from interlock.runtime.table import Cell, DecisionTable, ModelEntry
from interlock.runtime.trace import Diagnostics

if TYPE_CHECKING:
    from interlock.runtime.store import Store

log = logging.getLogger("interlock.record")

_MTOK = 1_000_000.0
#: the captured fields of a classification, an attempt and a usage (one C call each)
_CLASSIFIED: Final = operator.attrgetter("cell", "task", "complexity", "sensitivity",
                                         "modality", "needs", "tags", "tokens")
_ATTEMPT: Final = operator.attrgetter("provider", "model", "role", "outcome", "status",
                                      "error", "latency_ms")
_USAGE: Final = operator.attrgetter("input_tokens", "output_tokens")


@dataclass(slots=True)
class RequestRecord:
    """One request, as stored (``store.COLUMNS`` mirrors these names)."""

    id: str
    ts: float  # unix seconds when the request arrived
    surface: str
    status: int
    table_hash: str
    worker: int
    error_code: str | None = None
    stream: bool = False
    requested_model: str | None = None
    cell: str | None = None
    task: str | None = None
    complexity: str | None = None
    sensitivity: str | None = None
    modality: str | None = None
    needs: int = 0
    tags: list[str] = field(default_factory=list)
    tokens_est: int = 0
    pinned: str | None = None
    reason: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    provider: str | None = None
    model: str | None = None
    locality: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_estimated: bool = False
    tokens_per_s: float | None = None
    ttft_ms: float | None = None
    latency_ms: float = 0.0
    overhead_ms: float = 0.0
    cost_usd: float = 0.0
    baseline_usd: float = 0.0
    saved_usd: float = 0.0
    baseline_model: str | None = None
    fallback: bool = False
    escalated: bool = False
    verification: list[dict[str, Any]] = field(default_factory=list)
    escalation: dict[str, Any] | None = None
    client_request_id: str | None = None
    prompt: list[dict[str, Any]] | None = None
    answer: str | None = None
    #: transient: the request, turned into ``prompt`` when log_prompts is on (the
    #: writer process redacts it before anything is stored)
    source: CanonicalRequest | None = None


@dataclass(frozen=True, slots=True)
class Baseline:
    model: str
    price_in: float  # USD per token
    price_out: float


def baselines(table: DecisionTable) -> dict[str, Baseline | None]:
    """The cloud-only baseline model of every cell (see the module docstring)."""
    cloud = [m for m in table.models.values() if m.locality == "cloud" and not m.embedding]
    out: dict[str, Baseline | None] = {}
    for cell in list(table.cells.values()) + list(table.embeddings.values()):
        model = _baseline_model(table, cell, cloud)
        out[cell.key] = None if model is None else Baseline(
            model.key, model.price.input / _MTOK, model.price.output / _MTOK)
    return out


def _baseline_model(table: DecisionTable, cell: Cell, cloud: list[ModelEntry]
                    ) -> ModelEntry | None:
    for c in cell.chain:
        if not c.local and c.model in table.models:
            return table.models[c.model]
    task = str(cell.task)
    if task == "embeddings":
        pool = [m for m in table.models.values() if m.locality == "cloud" and m.embedding]
    else:
        pool = [m for m in cloud if cell.modality != "image" or m.caps & 2]
    if not pool:
        return None
    primary = table.models.get(cell.chain[0].model) if cell.chain else None
    floor = _quality(primary, task) if primary is not None else 0.0
    good = [m for m in pool if _quality(m, task) >= floor]
    if good:
        return min(good, key=lambda m: ((3 * m.price.input + m.price.output) / 4, m.key))
    return max(pool, key=lambda m: (_quality(m, task), m.key))


def _quality(m: ModelEntry, task: str) -> float:
    return m.quality.get(task, m.quality.get("general", 0.0))


def row_context(table: DecisionTable, table_hash: str, worker: int,
                log_prompts: bool) -> RowContext:
    """The ``RowContext`` of a worker serving ``table`` (see ``interlock.runtime.rowbuild``)."""
    return RowContext(
        table_hash, worker, log_prompts,
        {key: (m.provider, m.locality, m.price.input, m.price.output)
         for key, m in table.models.items()},
        {cell: None if b is None else (b.model, b.price_in, b.price_out)
         for cell, b in baselines(table).items()},
    )


class Recorder:
    """The per-worker request recorder: live events, plus the store's queue."""

    def __init__(
        self,
        table: DecisionTable,
        store: Store | None = None,
        *,
        log_prompts: bool | None = None,
        bus: EventBus | None = None,
        spans: Callable[[list[RequestRecord]], None] | None = None,
    ) -> None:
        self.table = table
        self.table_hash = table.hash or table.content_hash()
        self.store = store
        self.log_prompts = table.server.log_prompts if log_prompts is None else log_prompts
        self.bus = bus if bus is not None else EventBus()
        self._worker = os.getpid()
        self._prefix = os.urandom(4).hex() + "-"
        self._ids = itertools.count(1)
        #: what the record's derivation needs besides a capture (``rowbuild``)
        self.row_context = row_context(table, self.table_hash, self._worker, self.log_prompts)
        if store is not None:
            store.set_row_context(self.row_context)
            if spans is not None:
                store.sinks.append(spans)

    # -- ids and live events ----------------------------------------------------------

    def new_id(self) -> str:
        """A request id unique across workers and restarts (random prefix + counter)."""
        return f"{self._prefix}{next(self._ids):x}"

    def subscribe(self, *, replay: int = 0) -> Subscription:
        """A live feed of this worker's request events (see ``interlock.runtime.events``)."""
        return self.bus.subscribe(replay=replay)

    def started(self, diag: Diagnostics, *, surface: str, model: str | None = None,
                stream: bool = False) -> str:
        """A request arrived: give it an id (kept in ``diag.request_id``)."""
        rid = diag.request_id or self.new_id()
        diag.request_id = rid
        if self.bus.listening:
            self.bus.publish({"type": "started", "id": rid, "ts": time.time(),
                              "surface": surface, "model": model, "stream": stream,
                              "worker": self._worker})
        return rid

    def classified(self, diag: Diagnostics, cls: Classification) -> None:
        if self.bus.listening:
            self.bus.publish({
                "type": "classified", "id": diag.request_id, "ts": time.time(),
                "cell": cls.cell, "task": cls.task, "complexity": cls.complexity,
                "sensitivity": cls.sensitivity, "modality": cls.modality,
                "tags": list(cls.tags), "tokens": cls.tokens, "worker": self._worker,
            })

    def routed(self, diag: Diagnostics, decision: Decision) -> None:
        if self.bus.listening:
            first = decision.candidates[0] if decision.candidates else None
            self.bus.publish({
                "type": "routed", "id": diag.request_id, "ts": time.time(),
                "cell": decision.cell.key, "reason": decision.reason,
                "model": first.model if first else None,
                "provider": first.provider if first else None,
                "local": first.local if first else None,
                "chain": [c.model for c in decision.candidates[:4]],
                "pinned": decision.pinned, "worker": self._worker,
            })

    # -- the record ----------------------------------------------------------------------

    def record(
        self,
        diag: Diagnostics,
        *,
        surface: str,
        status: int,
        classification: Classification | None = None,
        decision: Decision | None = None,
        req: CanonicalRequest | None = None,
        usage: Usage | None = None,
        error_code: str | None = None,
        stream: bool = False,
        answer: str | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
        verification: Sequence[Mapping[str, Any]] = (),
        escalated: bool | None = None,
    ) -> RequestRecord | None:
        """Record one finished request (call exactly once, in a ``finally``).

        ``diag`` holds the attempts, who answered and the timings; ``usage`` the
        token counts the upstream reported (else estimated).  ``headers`` are the
        request's raw headers (for the client's ``x-request-id``).  ``answer`` is
        stored only with ``log_prompts`` (redacted).  Never raises for a bad record:
        the request path must not fail because of its log.

        Returns the record - or None in the common case, a store and no live
        listener, where only the request's facts are captured (one flat list,
        ``interlock.runtime.rowbuild``) and the log's writer process derives the
        record from them, off the event loop.
        """
        clock = (time.perf_counter(), time.time(), diag.overhead_ms())
        raw = self.capture(diag, surface, status, classification, decision, req, usage,
                           error_code, stream, answer, headers, verification, escalated,
                           clock)
        store = self.store
        if store is not None and not self.bus.listening:
            store.submit(raw)
            return None
        rec = self.record_of(raw)
        if self.bus.listening:
            self.bus.publish(completed_event(rec))
        if store is not None:
            store.submit(rec)
        return rec

    def capture(
        self, diag: Diagnostics, surface: str, status: int, cls: Classification | None,
        decision: Decision | None, req: CanonicalRequest | None, usage: Usage | None,
        error_code: str | None, stream: bool, answer: str | None,
        headers: Sequence[tuple[bytes, bytes]], verification: Sequence[Mapping[str, Any]],
        escalated: bool | None, clock: tuple[float, float, float],
    ) -> list[Any]:
        """The request's facts as one flat list (``rowbuild.CAPTURE``): what the record
        is derived from.  Only reads: it runs on the event loop for every request."""
        perf, wall, overhead_ms = clock  # read when the request ended
        log_prompts = self.log_prompts
        return [
            diag.request_id or self.new_id(), perf, wall, overhead_ms, diag.started,
            surface, status, error_code, stream,
            req.model if req is not None else None,
            None if cls is None else _CLASSIFIED(cls),
            diag.cell,
            decision.pinned if decision is not None else None,
            diag.reason,
            list(map(_ATTEMPT, diag.attempts)),
            diag.model, diag.provider,
            None if usage is None else _USAGE(usage),
            len(answer) if answer else 0,
            answer if log_prompts else None,
            verification or diag.checks,
            diag.escalation,
            escalated,
            _client_id(headers),
            req if log_prompts else None,  # the prompt: the store turns it into messages
        ]

    def record_of(self, raw: list[Any]) -> RequestRecord:
        """The record of a capture, built in this process: for live listeners, and
        when there is no store."""
        rec = record_from(raw, self.row_context)
        rec.prompt = None  # filled from source by the store, redacted by the writer
        rec.source = raw[PROMPT_SLOT]  # the request, when prompts are kept
        return rec

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the store wrote everything queued so far (tests, shutdown)."""
        return self.store.flush(timeout) if self.store is not None else True

    def close(self, timeout: float = 5.0) -> None:
        """Flush and stop the log's writer (blocking: call it via ``to_thread``)."""
        if self.store is not None:
            self.store.close(timeout)


def record_from(raw: Sequence[Any], ctx: RowContext) -> RequestRecord:
    """A capture's record, built in this process (``rowbuild.derive``): the one way
    the worker turns a capture into a record (``Recorder.record_of``, and the store's
    span sinks).  Its verdicts are data even when the store framed them as JSON text."""
    rec = RequestRecord(*derive(raw, ctx))
    verdicts: Any = rec.verification
    if verdicts.__class__ is str:
        rec.verification = orjson.loads(verdicts)
    return rec


def _client_id(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"x-request-id" or name == b"x-client-request-id":
            return value.decode("latin-1")[:128]
    return None


def completed_event(rec: RequestRecord) -> dict[str, Any]:
    """The live ``completed`` event for a record."""
    return {
        "type": "completed", "id": rec.id, "ts": rec.ts + rec.latency_ms / 1000.0,
        "surface": rec.surface, "status": rec.status, "error_code": rec.error_code,
        "cell": rec.cell, "provider": rec.provider, "model": rec.model,
        "locality": rec.locality, "latency_ms": round(rec.latency_ms, 3),
        "ttft_ms": rec.ttft_ms, "tokens_in": rec.tokens_in, "tokens_out": rec.tokens_out,
        "tokens_per_s": rec.tokens_per_s, "cost_usd": rec.cost_usd,
        "saved_usd": rec.saved_usd, "fallback": rec.fallback, "escalated": rec.escalated,
        "attempts": len(rec.attempts), "worker": rec.worker,
    }


def default_db_path(environ: Mapping[str, str]) -> Path:
    """``$INTERLOCK_DB``, else ``$XDG_DATA_HOME/interlock/interlock.db`` (XDG default
    ``~/.local/share``)."""
    given = environ.get("INTERLOCK_DB")
    if given:
        return Path(given).expanduser()
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "interlock" / "interlock.db"


def db_path_for(table: DecisionTable | None, environ: Mapping[str, str]) -> Path:
    """The store's path: ``INTERLOCK_DB`` wins, then the table's ``server.store.path``,
    then the per-user default."""
    if environ.get("INTERLOCK_DB"):
        return default_db_path(environ)
    if table is not None and table.server.store.path:
        return Path(table.server.store.path).expanduser()
    return default_db_path(environ)
