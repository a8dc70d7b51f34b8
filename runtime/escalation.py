"""The verification layer of the forwarder: verify an answer, escalate when it fails.

``forward → with_verification → with_fallbacks → ...``::

    answer = the chain's first good answer            (with_fallbacks, as before)
    if the answer is subject to verification          (local, or policy.only_from_local off)
        run the cell's verifiers on it                (verify.py; JSON healed first)
        if one failed and an escalation target exists
            answer = the target's answer              (verified too, recorded, returned)
    record the verdicts, the escalation, the response tags

The escalation target is the chain's ``escalation`` candidate when there is one
(the compiler adds it when the primary is local), else the next candidate after
the one that answered whose quality for the task is higher.  Only one
escalation per request: the escalated answer is verified and recorded but not
escalated again.  When the escalation itself fails (upstream error, deadline,
attempts), the original answer is returned - a doubtful answer beats an error.

Privacy fails closed: a private request escalates only to a local model.  The
candidates of a private request are already local (``decide``), this layer
filters again, and ``send_once`` asserts it a third time.

Streams are verified only when the cell says ``verify_stream: buffer``: the
answer is then fetched whole (a non-streaming upstream call), verified and
escalated like any other, and replayed to the client as a stream
(:func:`replay`).  With ``verify_stream: pass`` a stream goes through as it comes
and is not verified - its tokens are already with the client when it ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from interlock.runtime.canonical import CanonicalRequest, CanonicalResponse, Delta, Usage
from interlock.runtime.errors import NoCandidateError, UpstreamError
from interlock.runtime.table import Candidate, DecisionTable, ModelEntry, Policy
from interlock.runtime.verify import (
    Checked,
    ask_confidence,
    check,
    heal_only,
    parse_confidence,
    response_tags,
    wants_confidence,
)

if TYPE_CHECKING:
    from interlock.runtime.forward import Answer, Call, Upstreams

#: replayed streams: characters of text per delta
REPLAY_CHARS = 48


@dataclass(frozen=True, slots=True)
class VerifySpec:
    """What the verification layer needs to know about the request's cell.

    Built once per (policy, task, complexity) - ``buffered.verify_spec`` keeps them -
    so what every answer asks of the policy is worked out here, not per request."""

    policy: Policy
    task: str
    complexity: str
    #: the policy has verifiers: answers are verified
    active: bool = field(init=False)
    #: the ``confidence`` verifier is listed: the model is asked for the line
    confidence: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "active", bool(self.policy.verifiers))
        object.__setattr__(self, "confidence", wants_confidence(self.policy))


Run = Callable[["Upstreams", "Call"], Awaitable["Answer"]]


def _quality(m: ModelEntry, task: str) -> float:
    return m.quality.get(task, m.quality.get("general", 0.0))


def subject(spec: VerifySpec, model: ModelEntry) -> bool:
    """Is an answer of ``model`` verified under this policy?"""
    return spec.active and (model.locality == "local" or not spec.policy.only_from_local)


def prepare(call: Call) -> None:
    """Ask for a confidence line when the cell's verifiers judge it."""
    spec = call.verify
    if spec is not None and spec.active and spec.confidence:
        call.req = ask_confidence(call.req)


def targets(table: DecisionTable, call: Call, answer: Answer) -> list[Candidate]:
    """Where a failed answer may escalate (at most one candidate), privacy applied."""
    tried = {a.model for a in call.diag.attempts if a.outcome != "skipped"}
    tried.add(answer.model.key)

    def allowed(c: Candidate) -> bool:
        if c.model in tried or c.model not in table.models:
            return False
        if call.private:
            prov = table.providers.get(c.provider)
            # fail closed: both the compiled flag and the provider must say local
            return c.local and prov is not None and prov.locality == "local"
        return True

    esc = [c for c in call.candidates if c.role == "escalation" and allowed(c)]
    if esc:
        return esc[:1]
    task = call.verify.task if call.verify is not None else "general"
    floor = _quality(answer.model, task)
    keys = [c.model for c in call.candidates]
    start = keys.index(answer.model.key) + 1 if answer.model.key in keys else 0
    for c in call.candidates[start:]:
        if allowed(c) and _quality(table.models[c.model], task) > floor:
            return [c]
    return []


def _record(call: Call, answer: Answer, checked: Checked, stage: str) -> None:
    call.diag.checks.append({
        "model": answer.model.key, "stage": stage, "ok": checked.ok,
        "verdicts": checked.results,  # already the recorded form, built by check()
        "healed": [*checked.healed],
        "confidence": checked.confidence,
    })


async def with_verification(up: Upstreams, call: Call, run: Run) -> Answer:
    """The verification layer (see the module docstring)."""
    spec = call.verify
    if spec is None or not spec.active:
        answer = await run(up, call)
        finish(call, answer, None)
        return answer
    if spec.confidence:
        prepare(call)
    answer = await run(up, call)
    # subject(spec, answer.model), spec.active being known
    if answer.model.locality != "local" and spec.policy.only_from_local:
        if spec.confidence:  # prepare() asked for the line; the client never sees it
            answer.response.text = parse_confidence(answer.response.text)[1]
        checked = heal_only(answer.response, call.req)
        checked.apply(answer.response)  # heal JSON: no verdicts
        finish(call, answer, checked)
        return answer
    checked = check(answer.response, call.req, spec.policy, task=spec.task,
                    complexity=spec.complexity)
    _record(call, answer, checked, "answer")
    checked.apply(answer.response)
    if checked.ok:
        finish(call, answer, checked)
        return answer
    failed = ", ".join(v.verifier for v in checked.failed)
    for target in targets(up.table, call, answer):
        sub = dataclasses.replace(call, candidates=[target])
        try:
            escalated = await run(up, sub)
        except (UpstreamError, NoCandidateError) as exc:
            call.diag.escalation = {
                "from": answer.model.key, "to": target.model, "because": failed,
                "outcome": "failed", "error": f"{type(exc).__name__}: {exc}"[:300],
            }
            break
        again = check(escalated.response, call.req, spec.policy, task=spec.task,
                      complexity=spec.complexity)
        _record(call, escalated, again, "escalation")
        again.apply(escalated.response)
        call.diag.escalation = {
            "from": answer.model.key, "to": escalated.model.key, "because": failed,
            "outcome": "ok" if again.ok else "answered (verifiers failed too)",
        }
        finish(call, escalated, again, escalated=True)
        return escalated
    else:
        call.diag.escalation = {"from": answer.model.key, "to": None, "because": failed,
                                "outcome": "no escalation target"}
    finish(call, answer, checked)
    return answer


def finish(call: Call, answer: Answer, checked: Checked | None, *,
           escalated: bool = False) -> None:
    """Response classifiers on the final answer, into the diagnostics."""
    if checked is None:
        tags = response_tags(answer.response)
    else:
        # the refusal verifier's finding holds while the text is the one it read
        tags = response_tags(answer.response,
                             checked.refused if checked.text is None else None)
        if checked.healed:
            tags.append("healed")
    if escalated:
        tags.append("escalated")
    call.diag.response_tags = tags


# --------------------------------------------------------------------------- streams


def buffered(spec: VerifySpec | None) -> bool:
    """Is a stream of this cell buffered and verified (``verify_stream: buffer``)?"""
    return spec is not None and spec.active and spec.policy.verify_stream == "buffer"


def replay(resp: CanonicalResponse) -> list[Delta]:
    """A complete answer as the deltas a stream of it would have carried."""
    out: list[Delta] = [Delta(id=resp.id or None, model=resp.model or None)]
    if resp.thinking:
        out.append(Delta(thinking=resp.thinking))
    text = resp.text
    for i in range(0, len(text), REPLAY_CHARS):
        out.append(Delta(text=text[i:i + REPLAY_CHARS]))
    for i, tc in enumerate(resp.tool_calls):
        out.append(Delta(tool_index=i, tool_id=tc.id, tool_name=tc.name,
                         tool_arguments=tc.arguments))
    usage = resp.usage if resp.usage is not None else Usage()
    out.append(Delta(finish_reason=resp.finish_reason, usage=usage))
    return out


def unstreamed(req: CanonicalRequest) -> CanonicalRequest:
    """The request as a plain (non-streaming) one, for a buffered stream's upstream call."""
    raw: dict[str, Any] = req.raw
    if raw.get("stream"):
        raw = {k: v for k, v in raw.items() if k not in ("stream", "stream_options")}
    return dataclasses.replace(req, stream=False, raw=raw)
