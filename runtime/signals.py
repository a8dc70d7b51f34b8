"""The signal space shared by the classifier, the compiler and the table.

A *cell* is one combination of (task, complexity, sensitivity, modality); its key
is the four values joined by dots, e.g. ``code.high.private.text``.  The compiler
emits one entry per key, the runtime finds it with one dictionary look-up.

Capabilities are compiled to bit flags so that "needs tools and json" filters a
chain with one AND per candidate.
"""

from __future__ import annotations

from typing import Final, Literal

Task = Literal["general", "code", "reasoning", "summarize", "extract", "creative", "translate"]
Complexity = Literal["low", "medium", "high"]
Sensitivity = Literal["public", "private"]
Modality = Literal["text", "image"]
Locality = Literal["local", "cloud"]
Role = Literal["primary", "fallback", "escalation"]
Wire = Literal["openai", "anthropic", "ollama"]
Capability = Literal[
    "tools", "vision", "json", "json_schema", "streaming", "embeddings", "reasoning"
]

TASKS: Final[tuple[Task, ...]] = (
    "general", "code", "reasoning", "summarize", "extract", "creative", "translate",
)
COMPLEXITIES: Final[tuple[Complexity, ...]] = ("low", "medium", "high")
SENSITIVITIES: Final[tuple[Sensitivity, ...]] = ("public", "private")
MODALITIES: Final[tuple[Modality, ...]] = ("text", "image")

#: Bit value of each capability.  The order is part of the table format
#: (``DecisionTable.capability_bits`` repeats it so a reader never guesses).
CAPABILITY_BITS: Final[dict[Capability, int]] = {
    "tools": 1,
    "vision": 2,
    "json": 4,
    "json_schema": 8,
    "streaming": 16,
    "embeddings": 32,
    "reasoning": 64,
}
CAPABILITIES: Final[tuple[Capability, ...]] = tuple(CAPABILITY_BITS)


def cell_key(task: str, complexity: str, sensitivity: str, modality: str) -> str:
    """The table key of a cell: ``task.complexity.sensitivity.modality``."""
    return f"{task}.{complexity}.{sensitivity}.{modality}"


def all_cell_keys() -> list[str]:
    """Every cell of the signal space, in the table's canonical order."""
    return [
        cell_key(t, c, s, m)
        for t in TASKS
        for c in COMPLEXITIES
        for s in SENSITIVITIES
        for m in MODALITIES
    ]


def caps_mask(capabilities: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> int:
    """The bit mask of a set of capability names (unknown names are an error)."""
    mask = 0
    for name in capabilities:
        mask |= CAPABILITY_BITS[name]  # type: ignore[index]
    return mask


def caps_names(mask: int) -> list[str]:
    """The capability names set in ``mask``, in canonical order."""
    return [name for name, bit in CAPABILITY_BITS.items() if mask & bit]
