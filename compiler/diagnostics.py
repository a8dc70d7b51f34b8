"""Diagnostics: every problem the compiler finds, with a stable code and a position.

A diagnostic names the file, the 1-based line and column, the dotted path of the
offending node, the message and a hint, and prints as::

    router.yaml:14:7 overrides.code.fallbacks[1]: unknown model 'gpt-4o-mni' \
(did you mean 'gpt-4o-mini'?) [E004]

Codes are stable (tests, CI scripts and docs rely on them):

=====  ==================  =======================================================
E001   empty-cell          a public cell has no candidate
W011   private-refused     a private cell has no local model (requests refused)
W012   no-vision           no enabled model has vision: image requests are refused
E002   privacy             a cloud candidate in a private cell
E003   missing-capability  a candidate lacks a capability its cell needs
E004   unknown-name        unknown model, provider, profile or tag
W005   shadowed-rule       a rule that can never match
E006   budget-conflict     contradictory budgets
W007   key-unset           a provider's key variable is not set
E100   yaml                YAML syntax error, duplicate key
E101   schema              the document does not match its JSON Schema
E102   unsafe-yaml         non-standard tags, alias bombs, oversize files
=====  ==================  =======================================================
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]
PathPart = str | int
NodePath = tuple[PathPart, ...]

#: Short names of the codes, for JSON output and docs.
CODE_NAMES: dict[str, str] = {
    "E001": "empty-cell",
    "W011": "private-refused",
    "W012": "no-vision",
    "E002": "privacy",
    "E003": "missing-capability",
    "E004": "unknown-name",
    "W005": "shadowed-rule",
    "E006": "budget-conflict",
    "W007": "key-unset",
    "E100": "yaml",
    "E101": "schema",
    "E102": "unsafe-yaml",
}


def dotted(path: Sequence[PathPart]) -> str:
    """``("overrides", "code", "fallbacks", 1)`` → ``overrides.code.fallbacks[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in the configuration."""

    code: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    path: str = ""
    hint: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def location(self) -> str:
        """``file:line:col`` (as much of it as is known)."""
        if self.file is None:
            return ""
        loc = self.file
        if self.line is not None:
            loc += f":{self.line}"
            if self.col is not None:
                loc += f":{self.col}"
        return loc

    def format(self, *, with_hint: bool = False) -> str:
        """The one-line form: ``file:line:col path: message [CODE]``."""
        head = " ".join(p for p in (self.location(), self.path) if p)
        text = f"{head}: {self.message}" if head else self.message
        text += f" [{self.code}]"
        if with_hint and self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": CODE_NAMES.get(self.code, ""),
            "severity": self.severity,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "hint": self.hint,
        }

    def sort_key(self) -> tuple[str, int, int, str, str, str]:
        return (self.file or "", self.line or 0, self.col or 0, self.code, self.path, self.message)


class ConfigError(Exception):
    """Raised when a configuration cannot be compiled; carries every diagnostic."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        first = errors[0].format() if errors else "invalid configuration"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def did_you_mean(name: str, choices: Iterable[str], *, n: int = 1) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""`` when none is close."""
    pool = sorted(set(choices))
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), lowered, n=n)]
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Errors and warnings in a stable order (by file, position, code), without duplicates."""
    return sorted(set(diagnostics), key=Diagnostic.sort_key)
