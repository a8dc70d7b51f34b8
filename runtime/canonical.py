"""The canonical request and response: the hub every surface and wire meets at.

Surfaces (chat completions, Anthropic messages, Responses) decode into a
``CanonicalRequest``; provider adapters (openai, anthropic, ollama wires) encode
it for their upstream and decode the answer into a ``CanonicalResponse`` or a
stream of ``Delta``; the surface encodes that back for the client.  N surfaces and
M wires need N + M translators, not N × M.

``raw`` keeps the client's parsed body so that a request whose surface and wire
agree (chat completions to an openai-wire upstream) can be forwarded without a
rebuild.  These are plain slotted dataclasses: they are built per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Surface = Literal["chat", "messages", "responses", "completions", "embeddings", "ollama"]
PartType = Literal["text", "image", "tool_call", "tool_result", "thinking"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


@dataclass(slots=True)
class Part:
    type: PartType
    text: str = ""
    #: image: an http(s) URL or a ``data:`` URL; ``media_type``/``data`` for base64 images
    image_url: str | None = None
    media_type: str | None = None
    data: str | None = None
    #: tool_call / tool_result
    tool_call_id: str | None = None
    name: str | None = None
    arguments: str | None = None  # JSON text of a tool call's arguments
    is_error: bool = False


@dataclass(slots=True)
class Message:
    role: Literal["system", "user", "assistant", "tool"]
    parts: list[Part]
    name: str | None = None

    def text(self) -> str:
        return "".join(p.text for p in self.parts if p.type in ("text", "tool_result"))


@dataclass(slots=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CanonicalRequest:
    surface: Surface
    messages: list[Message]
    model: str | None = None
    system: str = ""
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: Any = None
    #: None, {"type": "json_object"} or {"type": "json_schema", "json_schema": {...}}
    response_format: dict[str, Any] | None = None
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    #: explicit privacy flag from the body (``private: true``); headers are separate
    private: bool | None = None
    trace: bool = False
    #: OpenRouter-shaped request controls: models, allowed_models, provider
    controls: dict[str, Any] = field(default_factory=dict)
    #: other standard parameters passed through to same-wire upstreams
    extra: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    #: embeddings only
    inputs: list[str] = field(default_factory=list)
    #: client headers meant for a same-API upstream only (``anthropic-beta`` from a
    #: messages client, for an anthropic-wire provider)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(slots=True)
class CanonicalResponse:
    id: str
    model: str
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage | None = None
    thinking: str = ""
    created: int = 0


@dataclass(slots=True)
class Delta:
    """One streamed increment, already decoded from the upstream's wire."""

    text: str = ""
    thinking: str = ""
    #: a tool-call fragment: index identifies the call across deltas
    tool_index: int | None = None
    tool_id: str | None = None
    tool_name: str | None = None
    tool_arguments: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    #: the upstream's response id / model, when the first chunk carries them
    id: str | None = None
    model: str | None = None
