"""Secret detectors: provider API keys, tokens, private keys, passwords.

Keys live in runs of at least 16 ``[A-Za-z0-9_-]`` characters; those runs are
found with one ``str.translate`` and ``str.find`` (see ``zones``), and a key
regex runs only at a run that starts with its literal prefix (``sk-``, ``AKIA``,
``ghp_`` ...).  Other secrets are anchored on a literal found with ``str.find``
(``-----BEGIN``, ``pass``, ``@`` for URLs).  Excerpts keep only the public prefix
of a key (``sk-proj``, ``AKIA``) or the name it was assigned to (``password=``),
never the value.

Placeholders are not secrets: ``sk-...``, ``sk-your-key-here``, ``<YOUR_API_KEY>``,
``xxxx``, ``changeme``, ``${VAR}``, ``os.environ[...]`` and low-entropy runs are
skipped (see ``finding.is_placeholder``), as are AWS's documented ``...EXAMPLE`` keys.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final, NamedTuple

import orjson
from interlock.runtime.detectors.finding import (
    MAX_FINDINGS_PER_DETECTOR,
    Finding,
    is_placeholder,
    mask_secret,
    shannon_entropy,
)
from interlock.runtime.detectors.zones import char_windows, find_all, token_runs


class _KeyPattern(NamedTuple):
    name: str
    prefixes: tuple[str, ...]  # a token run must start with one of these
    regex: re.Pattern[str]
    shown: int  # at most this many leading characters (never past the body) are shown
    body_group: int  # the group holding the secret part, checked for placeholders


def _jwt_ok(m: re.Match[str]) -> bool:
    """The first part must decode to a JSON object naming an ``alg``."""
    head = m.group(1)
    try:
        raw = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):
        return False
    return isinstance(data, dict) and "alg" in data


_KEYS: Final[tuple[_KeyPattern, ...]] = (
    _KeyPattern("anthropic_key", ("sk-ant-",),
                re.compile(r"(?<![\w-])sk-ant-(?:[a-z]+\d\d-)?([A-Za-z0-9_-]{20,200})"), 16, 1),
    _KeyPattern("openai_key", ("sk-",),
                re.compile(r"(?<![\w-])sk-(?!ant-)(?:(?:proj|svcacct|admin|None)-)?"
                           r"([A-Za-z0-9_-]{20,200})"), 16, 1),
    _KeyPattern("aws_access_key_id", ("AKIA", "ASIA", "AGPA", "AIDA", "AROA"),
                re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA)([A-Z0-9]{16})(?![A-Z0-9])"),
                4, 1),
    _KeyPattern("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
                re.compile(r"(?<![\w])(?:gh[pousr]_([A-Za-z0-9]{30,251})|"
                           r"github_pat_([A-Za-z0-9_]{22,255}))(?![\w])"), 11, 0),
    _KeyPattern("slack_token", ("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"),
                re.compile(r"(?<![\w])xox[baprs]-([A-Za-z0-9-]{10,250})"), 5, 1),
    _KeyPattern("google_api_key", ("AIza",),
                re.compile(r"(?<![\w])AIza([0-9A-Za-z_-]{35})(?![\w-])"), 4, 1),
    _KeyPattern("stripe_key", ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
                re.compile(r"(?<![\w])(?:sk|rk)_(?:live|test)_([0-9A-Za-z]{16,247})"), 8, 1),
    _KeyPattern("jwt", ("eyJ",),
                re.compile(r"(?<![\w-])(eyJ[A-Za-z0-9_-]{8,2000})\.(eyJ[A-Za-z0-9_-]{2,8000})"
                           r"\.([A-Za-z0-9_-]{0,2000})(?![\w-])"), 3, 2),
)
_KEY_PREFIXES: Final = tuple(p for k in _KEYS for p in k.prefixes)

_AWS_SECRET: Final = re.compile(
    r"(?i)aws_secret_access_key[\"']?\s{0,4}[:=]\s{0,4}[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)
_SLACK_HOOK: Final = re.compile(
    r"https://hooks\.slack\.com/(?:services|workflows)/([A-Za-z0-9_/]{20,200})"
)
_PEM: Final = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]{1,12} ){0,4})PRIVATE KEY(?: BLOCK)?-----([\s\S]{0,200})"
)
# A real PEM body has long base64 runs, unlike "-----BEGIN PRIVATE KEY-----\n...".
_PEM_BODY: Final = re.compile(r"[A-Za-z0-9+/]{40}")


def _add(out: list[Finding], name: str, m: re.Match[str], excerpt: str) -> None:
    out.append(Finding("secrets", name, m.start(), m.end(), excerpt))


def _key_at(text: str, start: int, out: list[Finding]) -> bool:
    """Try every key pattern whose prefix the token run at ``start`` begins with."""
    for pat in _KEYS:
        if not text.startswith(pat.prefixes, start):
            continue
        m = pat.regex.match(text, start)
        if m is None:
            continue
        group = pat.body_group or (1 if m.group(1) is not None else 2)
        body = m.group(group)
        if is_placeholder(body) or "EXAMPLE" in body:
            continue
        if pat.name == "jwt" and not _jwt_ok(m):
            continue
        # Only the public prefix is shown (sk-proj-, AKIA, ghp_, eyJ), never the body.
        shown = min(pat.shown, m.start(group) - m.start())
        _add(out, pat.name, m, mask_secret(m.group()[:shown]))
        return True
    return False


# --------------------------------------------------------------------------- assignments

# Fragments of names that say "the value assigned to me is a credential".
_KEY_NAME_PARTS: Final = re.compile(r"key|secret|token|credential|auth|pass|pwd")
_NAME_REVERSED: Final = re.compile(r"[\w.-]{1,48}")
# After "pass" / "pwd": the rest of the name, the operator and the value.
_PW_TAIL: Final = re.compile(
    r"((?:word|wd|phrase)?)(?:[_.-][A-Za-z0-9_]{0,20})?([\"']?)[ \t]{0,3}(?:=|:=|:|=>)[ \t]{0,3}"
    r"([\"'`]?)([^\s\"'`,;<>]{1,512})"
)
_BEARER: Final = re.compile(r"(?i)bearer[ \t]{1,3}([A-Za-z0-9._~+/=-]{20,2048})")


def _value_is_code_reference(value: str, quoted: bool) -> bool:
    # ``password = user_input`` names a variable; ``password=hunter2`` is a value.
    if quoted:
        return False
    if "." in value and not any(c.isdigit() for c in value):
        return True  # attribute access: settings.db_password
    return "_" in value and value.islower() and not any(c.isdigit() for c in value)


def _high_entropy(value: str) -> bool:
    if len(value) < 16:
        return False
    h = shannon_entropy(value)
    mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    return h >= 4.0 or (mixed and h >= 3.2)


def _keyed_run(text: str, start: int, end: int, out: list[Finding]) -> None:
    """A high-entropy token run assigned to a key-like name (``api_key = "..."``)."""
    pre = text[max(0, start - 64):start].rstrip(" \t\"'`")
    if not pre or pre[-1] not in "=:>":
        return
    # Walk back over the operator (=, :, :=, =>) and quotes to the name before it,
    # without a backwards regex search (which would try every start position).
    pre = pre[:-1]
    if pre[-1:] in (":", "="):
        pre = pre[:-1]
    pre = pre.rstrip(" \t\"'")
    m = _NAME_REVERSED.match(pre[::-1])
    if m is None:
        return
    name = m.group()[::-1]
    low = name.lower()
    if _KEY_NAME_PARTS.search(low) is None:
        return
    value = text[start:end]
    if is_placeholder(value) or not _high_entropy(value):
        return
    name_start = max(0, start - 64) + len(pre) - len(name)
    out.append(Finding("secrets", "keyed_secret", name_start, end, mask_secret(name + "=")))


def _passwords(text: str, lower: str, out: list[Finding]) -> None:
    for name in ("pass", "pwd"):
        for pos in find_all(lower, name, 256):
            m = _PW_TAIL.match(text, pos + len(name))
            if m is None:
                continue
            if pos > 0 and lower[pos - 1].isalpha() and not m.group(1):
                continue  # "compass: ..." is not a password
            value, quoted = m.group(4), bool(m.group(3))
            if is_placeholder(value) or _value_is_code_reference(value, quoted):
                continue
            if not quoted and value.isalpha() and len(value) < 12:
                continue  # prose: "password: click reset" is one lower-case word
            key = text[pos:m.start(2)]
            out.append(Finding("secrets", "password_assignment", pos, m.end(),
                               mask_secret(key + "=")))


# --------------------------------------------------------------------------- URLs

_URL_CREDS: Final = re.compile(
    r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,20})://([^\s:/@]{1,128}):([^\s/@]{1,256})@([^\s/?#@]{1,253})"
)


def _url_credentials(text: str, out: list[Finding]) -> None:
    if "://" not in text:
        return
    for start, end in char_windows(text, "@", 420, 260):
        for m in _URL_CREDS.finditer(text, start, end):
            if not is_placeholder(m.group(3)):
                _add(out, "url_credentials", m, f"{m.group(1)}://***:[redacted]@{m.group(4)}")


# --------------------------------------------------------------------------- all

def detect_secrets(text: str) -> list[Finding]:
    """Every secret finding in ``text``: keys, tokens, private keys, passwords."""
    out: list[Finding] = []
    # Both checks read at most 64 characters before a run; a run seen before with the
    # same 64 characters in front (a repeated identifier in code) has the same outcome.
    seen: set[str] = set()
    for start, end in token_runs(text):
        context = text[max(0, start - 64):end]
        if context in seen:
            continue
        seen.add(context)
        if not (text.startswith(_KEY_PREFIXES, start) and _key_at(text, start, out)):
            _keyed_run(text, start, end, out)
    # Each scan below starts from its literal; an ``in`` test (one C-level search)
    # proves most texts have none of them without building an empty list.  A test
    # for one character of the literal goes first where that character is rare in
    # prose: it runs at memchr speed, many times faster than a substring search.
    if "-" in text and "-----BEGIN" in text:
        for pos in find_all(text, "-----BEGIN", 64):
            m = _PEM.match(text, pos)
            if m is not None and _PEM_BODY.search(m.group(2)) is not None:
                _add(out, "private_key", m,
                     mask_secret(f"-----BEGIN {m.group(1)}PRIVATE KEY-----"))
    if "hooks.slack.com" in text:
        for pos in find_all(text, "hooks.slack.com", 64):
            m = _SLACK_HOOK.match(text, max(0, pos - 8))
            if m is not None and not is_placeholder(m.group(1)):
                _add(out, "slack_webhook", m, mask_secret("https://hooks.slack.com/"))
    lower = text.lower()
    if "_" in lower and "secret_access_key" in lower:
        for pos in find_all(lower, "secret_access_key", 64):
            m = _AWS_SECRET.search(text, max(0, pos - 4), pos + 120)
            if m is not None and not is_placeholder(m.group(1)) \
                    and "EXAMPLE" not in m.group(1):
                _add(out, "aws_secret_access_key", m, mask_secret("aws_secret_access_key="))
    if "pass" in lower or "pwd" in lower:
        _passwords(text, lower, out)
    if "bearer" in lower:
        for pos in find_all(lower, "bearer", 64):
            m = _BEARER.match(text, pos)
            if m is not None and not is_placeholder(m.group(1)) and _high_entropy(m.group(1)):
                _add(out, "bearer_token", m, mask_secret("Bearer "))
    if ":" in text:  # a memchr first: "://" itself is a slower three-character search
        _url_credentials(text, out)
    return _dedupe(out) if out else []


_GENERIC: Final = frozenset({"keyed_secret", "password_assignment", "bearer_token"})


def _dedupe(found: list[Finding]) -> list[Finding]:
    """Drop generic findings that overlap a specific one ("api_key = sk-..." is one key)."""
    if not found:
        return []  # the usual case: nothing to sort, cap or dedupe
    specific = [f for f in found if f.detector not in _GENERIC]
    generic: list[Finding] = []
    for f in found:
        if f.detector in _GENERIC and not any(
            f.start < s.end and s.start < f.end for s in specific + generic
        ):
            generic.append(f)
    result = specific + generic
    result.sort(key=lambda f: (f.start, f.detector))
    counts: dict[str, int] = {}
    capped: list[Finding] = []
    for f in result:
        counts[f.detector] = counts.get(f.detector, 0) + 1
        if counts[f.detector] <= MAX_FINDINGS_PER_DETECTOR:
            capped.append(f)
    return capped
