"""A request record's stored fields, derived from what the request path captured.

The request path captures a request's facts in one flat list as it ends
(``Recorder.capture``: the clocks, the classification, the attempts, the usage,
the verdicts - :data:`CAPTURE` names the slots).  Everything else a record holds
is derived from that list by :func:`derive`: the latency and the overhead, the
attempts as stored, fallback and escalation, who answered, the token counts, the
speed, the cost, the baseline and the saving.

Why the split (issue 6): the derivation is the larger part of a record, and the
worker's event loop sets the pace of the whole router.  So the loop only captures,
and the capture travels to the log's writer process (``interlock.runtime.logwriter``)
as JSON, where :func:`derive` runs; the worker derives a record itself only when it
needs the object (live event listeners, span sinks, no store).  One function on both
sides, so the two cannot drift; JSON keeps every value of a capture exactly (orjson
writes floats in their shortest round-trip form), and the tests compare the rows
made both ways with the previous implementation, bit for bit.

:class:`RowContext` is what the derivation needs besides the capture: the table's
hash, the worker's pid, whether prompts are kept, and each model's provider,
locality and prices and each cell's baseline (as JSON: the first frame a worker
writes to its writer).  This module imports only the standard library, so the
writer process starts without the decision table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

_MTOK: Final = 1_000_000.0

#: the slots of a capture, in order
CAPTURE: Final = (
    "id", "perf", "wall", "overhead_ms", "started", "surface", "status", "error_code",
    "stream", "requested_model", "classification", "cell", "pinned", "reason", "attempts",
    "model", "provider", "usage", "answer_chars", "answer", "verification", "escalation",
    "escalated", "client_request_id", "prompt",
)
#: where the prompt is: the request itself in the worker, its messages once the store
#: turned it into them (before the capture leaves the worker)
PROMPT_SLOT: Final = CAPTURE.index("prompt")
#: where the verdicts are: the verifier's dicts, or JSON text once the store encoded
#: them (decoding them from the frame and encoding them again cost the writer ~2.3 µs)
VERIFICATION_SLOT: Final = CAPTURE.index("verification")


@dataclass(frozen=True, slots=True)
class RowContext:
    """What :func:`derive` needs besides a capture (one per worker and table)."""

    table_hash: str
    worker: int
    log_prompts: bool
    #: model key -> (provider, locality, input price, output price), USD per Mtok
    models: Mapping[str, tuple[str, str, float, float]]
    #: cell key -> (baseline model, input price, output price), USD per *token*; or None
    baselines: Mapping[str, tuple[str, float, float] | None]

    def to_json(self) -> dict[str, Any]:
        return {"table_hash": self.table_hash, "worker": self.worker,
                "log_prompts": self.log_prompts, "models": dict(self.models),
                "baselines": dict(self.baselines)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RowContext:
        models = {str(k): (str(v[0]), str(v[1]), float(v[2]), float(v[3]))
                  for k, v in data["models"].items()}
        baselines = {str(k): None if v is None else (str(v[0]), float(v[1]), float(v[2]))
                     for k, v in data["baselines"].items()}
        return cls(str(data["table_hash"]), int(data["worker"]), bool(data["log_prompts"]),
                   models, baselines)


def derive(raw: Sequence[Any], ctx: RowContext) -> list[Any]:
    """The record's stored fields, in ``logdb.COLUMNS`` order, from a capture.

    One straight pass over locals (this runs for every request): no helper calls
    but ``round``, which the stored figures need."""
    (rid, perf, wall, overhead_ms, started, surface, status, error_code, stream,
     requested_model, cls, diag_cell, pinned, reason, tried_raw, diag_model, diag_provider,
     usage, answer_chars, answer, verification, escalation_in, escalated, client_id,
     prompt) = raw
    latency_ms = (perf - started) * 1000.0
    if latency_ms < overhead_ms:
        overhead_ms = latency_ms
    if cls is not None:
        cell, task, complexity, sensitivity, modality, needs, tags, tokens_est = cls
        tags = list(tags)
    else:
        cell = diag_cell or None
        task = complexity = sensitivity = modality = None
        needs, tags, tokens_est = 0, [], 0

    # the attempts; fallback and escalation; the one that answered
    attempts: list[dict[str, Any]] = []
    ok: Sequence[Any] | None = None
    tried = 0
    for a in tried_raw:
        outcome = a[3]
        attempts.append({"provider": a[0], "model": a[1], "role": a[2], "outcome": outcome,
                         "status": a[4], "error": a[5], "latency_ms": round(a[6], 3)})
        if outcome != "skipped":
            tried += 1
            if outcome == "ok":
                ok = a
    fallback = tried > 1 and ok is not None
    was_escalated = ok is not None and ok[2] == "escalation"
    escalation = dict(escalation_in) if escalation_in else None
    if escalation and escalation.get("to") and escalation["to"] == diag_model:
        was_escalated = True
    if escalated is not None:
        was_escalated = escalated

    # who answered: tokens, speed and money (only for an answer from a known model)
    provider: str | None = None
    model_key: str | None = None
    locality: str | None = None
    tokens_in = tokens_out = 0
    tokens_estimated = False
    tokens_per_s: float | None = None
    ttft_ms: float | None = None
    cost_usd = baseline_usd = saved_usd = 0.0
    baseline_model: str | None = None
    model = ctx.models.get(diag_model) if diag_model else None
    if model is not None and status < 400:
        provider, model_key, locality = model[0], diag_model, model[1]
        if usage is not None and (usage[0] or usage[1]):
            tokens_in, tokens_out = usage[0], usage[1]
        else:
            tokens_estimated = True
            tokens_in = tokens_est
            tokens_out = (answer_chars + 3) // 4 if answer_chars else 0
        upstream_ms = ok[6] if ok is not None else 0.0
        if stream and ok is not None:
            # stream_once times the attempt up to its first delta
            ttft_ms = round(upstream_ms, 3)
            gen_ms = latency_ms - overhead_ms - upstream_ms
        else:
            gen_ms = upstream_ms
        if tokens_out and gen_ms > 0:
            tokens_per_s = round(tokens_out / (gen_ms / 1000.0), 2)
        # round() costs ~0.3 µs; zero (local models, no saving) is its own rounding
        cost_usd = (tokens_in * model[2] + tokens_out * model[3]) / _MTOK
        cost_usd = round(cost_usd, 10) if cost_usd else cost_usd
        base = ctx.baselines.get(cell or "")
        if base is None:
            baseline_usd = cost_usd
        else:
            baseline_model = base[0]
            baseline_usd = tokens_in * base[1] + tokens_out * base[2]
            baseline_usd = round(baseline_usd, 10) if baseline_usd else baseline_usd
            saved_usd = baseline_usd - cost_usd
            saved_usd = round(saved_usd, 10) if saved_usd else saved_usd
    elif diag_provider:
        provider = diag_provider
        model_key = diag_model or None

    return [
        rid, wall - latency_ms / 1000.0,  # id, ts
        surface, status, ctx.table_hash, ctx.worker, error_code, stream, requested_model,
        cell, task, complexity, sensitivity, modality, needs, tags, tokens_est, pinned,
        reason, attempts, provider, model_key, locality,
        tokens_in, tokens_out, tokens_estimated, tokens_per_s, ttft_ms,
        round(latency_ms, 3), round(overhead_ms, 3),  # latency_ms, overhead_ms
        cost_usd, baseline_usd, saved_usd, baseline_model, fallback, was_escalated,
        # the verdicts: JSON text when the worker's store encoded them (the writer stores
        # the text as it came), else copies of the verifier's dicts
        verification if verification.__class__ is str else [dict(v) for v in verification],
        escalation, client_id,
        prompt,  # the prompt's messages (not redacted yet: the writer redacts them)
        answer if ctx.log_prompts else None,  # answer: redacted by the writer process
    ]
