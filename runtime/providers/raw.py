"""Canonical answers that also carry the upstream's own JSON, for same-API relays.

When the client's API and the upstream's are the same (Anthropic messages to an
anthropic-wire provider, legacy completions to an openai-wire one), the surface
relays what the upstream sent instead of rebuilding it from the canonical form,
so nothing the canonical form has no room for is lost (thinking signatures,
redacted thinking, citations, cache usage, one choice per prompt ...).  These
subclasses still fill the canonical fields, which the router itself reads
(usage, finish reason, text for verification and records).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interlock.runtime.canonical import CanonicalResponse, Delta


@dataclass(slots=True)
class RawResponse(CanonicalResponse):
    """A canonical answer that also keeps the upstream's JSON object."""

    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RawDelta(Delta):
    """A canonical delta that also keeps the upstream's stream item: a JSON chunk
    (``raw``) or a named SSE event (``event`` and its ``data`` text)."""

    raw: dict[str, Any] | None = None
    event: str | None = None
    data: str | None = None


def raw_delta(d: Delta, *, event: str, data: str) -> RawDelta:
    """``d`` as a :class:`RawDelta` carrying the SSE event it was decoded from."""
    return RawDelta(text=d.text, thinking=d.thinking, tool_index=d.tool_index,
                    tool_id=d.tool_id, tool_name=d.tool_name,
                    tool_arguments=d.tool_arguments, finish_reason=d.finish_reason,
                    usage=d.usage, id=d.id, model=d.model, event=event, data=data)
