"""What a detector reports, and the helpers that keep raw values out of it.

A ``Finding`` never carries the matched text itself: only its span and a masked
excerpt.  The masks keep just enough to recognise the kind of value (a key's
public prefix, an e-mail's domain, a card's last four digits) so that an
explanation can be logged and shown without leaking what it explains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

Category = Literal["pii", "secrets", "code"]

#: How many findings one detector reports per text; privacy needs one, evidence a few.
MAX_FINDINGS_PER_DETECTOR: Final = 8


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected value: where it is and a masked excerpt of it."""

    category: Category
    detector: str
    start: int
    end: int
    excerpt: str


REDACTED: Final = "...[redacted]"


def mask_tail(value: str, keep: int = 4) -> str:
    """Replace every letter/digit but the last ``keep`` with ``*``; keep separators."""
    total = sum(1 for c in value if c.isalnum())
    shown = 0
    out: list[str] = []
    for c in value:
        if c.isalnum():
            shown += 1
            out.append(c if shown > total - keep else "*")
        else:
            out.append(c)
    return "".join(out)


def mask_email(local: str, domain: str) -> str:
    """``john.doe@acme.io`` -> ``j***@acme.io``."""
    return f"{local[:1]}***@{domain}"


def mask_secret(shown_prefix: str) -> str:
    """A secret keeps only its public prefix (``sk-proj``, ``AKIA``, a key name)."""
    return f"{shown_prefix}{REDACTED}"


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` (0.0 for the empty string)."""
    n = len(value)
    if n == 0:
        return 0.0
    counts: dict[str, int] = {}
    for c in value:
        counts[c] = counts.get(c, 0) + 1
    return -sum((k / n) * math.log2(k / n) for k in counts.values())


# Words that mark a value as something to fill in, not a credential.
_PLACEHOLDER_WORDS: Final = (
    "your", "example", "placeholder", "changeme", "change_me", "change-me", "redacted",
    "dummy", "sample", "insert", "replace", "xxxx", "here", "fake", "<", ">", "{{",
    "${", "$(", "%(", "os.environ", "process.env", "getenv", "env[", "env(", "...", "\u2026",
)
_PLACEHOLDER_VALUES: Final = frozenset({
    "password", "passwd", "pass", "pwd", "secret", "token", "key", "apikey", "api_key",
    "none", "null", "nil", "true", "false", "empty", "string", "str", "undefined",
    "required", "optional", "value", "test", "admin", "user", "username", "todo",
})


def is_placeholder(value: str) -> bool:
    """True for values that stand for a secret rather than being one.

    ``sk-...``, ``sk-your-key-here``, ``<YOUR_API_KEY>``, ``xxxx``, ``your_password``,
    ``changeme``, ``${VAR}``, ``os.environ["X"]``, and runs of one or two repeated
    characters all count as placeholders.
    """
    v = value.strip("\"'` ")
    low = v.lower()
    if not v or low in _PLACEHOLDER_VALUES:
        return True
    if any(w in low for w in _PLACEHOLDER_WORDS):
        return True
    if v[0] in "$%{[(*#" or "(" in v:
        return True
    return len(set(low)) <= 2
