"""The cheaper egress checks answer exactly as the previous ones did.

``forbidden_body_field`` now skips the usual body keys with one set lookup and
looks into the nested containers only when one is there; ``forbidden_header``
skips ordinary header names with one set lookup and finds every part with one
regex search.  The previous implementations are kept here, verbatim, and both
are run over generated bodies and header lists (hypothesis) and over a fixed
corpus of near misses: case and separator variants, padding, unicode look-alikes,
non-string keys, every nested container.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.runtime import egress
from interlock.runtime.egress import (
    _HEADER_PARTS,
    _KEY_PARTS,
    NESTED,
    STRONG_KEYS,
    WEAK_KEYS,
    forbidden_body_field,
    forbidden_header,
)

# -- the previous implementation (before the gate wave), kept for the comparison ----------

_OLD_ALLOWED = frozenset({b"x-api-key", b"authorization", b"idempotency-key"})
_OLD_CUES = ("url", "api", "upstream", "base", "key", "authorization")


def _old_norm(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _old_first(obj: Mapping[Any, Any], *, weak: bool) -> str | None:
    for key in obj:
        if not isinstance(key, str):
            continue
        k = _old_norm(key)
        if k in STRONG_KEYS or (weak and k in WEAK_KEYS):
            return key
    return None


def old_forbidden_body_field(body: Mapping[Any, Any]) -> str | None:
    hit = _old_first(body, weak=True)
    if hit is not None:
        return hit
    for outer, weak in NESTED.items():
        inner = body.get(outer)
        if isinstance(inner, Mapping):
            hit = _old_first(inner, weak=weak)
            if hit is not None:
                return f"{outer}.{hit}"
    return None


def old_forbidden_header(headers: list[tuple[bytes, bytes]]) -> str | None:
    for raw, _ in headers:
        if raw in _OLD_ALLOWED:
            continue
        name = raw.decode("latin-1")
        if not any(c in name for c in _OLD_CUES):
            continue
        if any(p in name for p in _HEADER_PARTS) or any(p in name for p in _KEY_PARTS):
            return name
    return None


# -- generated inputs ---------------------------------------------------------------------

_SEEDS = sorted(STRONG_KEYS | WEAK_KEYS | set(NESTED) | set(egress._COMMON_BODY_KEYS))


def _variants(word: str) -> list[str]:
    """Case, separator and padding variants, and unicode near misses of ``word``."""
    return [word, word.upper(), word.title(), word.replace("_", "-"), f" {word} ",
            f"\t{word}", word + "_", "x_" + word, word.replace("_", ""),
            word.replace("a", "\u0430"),  # Cyrillic a: looks the same, is not
            word.replace("i", "\u0130"),  # dotted capital I lowers to 'i' + combining dot
            word.replace("k", "\u212a"),  # Kelvin sign lowers to 'k'
            word.upper().replace("S", "\u017f")]  # long s


_KEY_POOL = sorted({v for w in _SEEDS for v in _variants(w)})
_keys = st.one_of(st.sampled_from(_KEY_POOL), st.text(max_size=20),
                  st.integers(-3, 3), st.none())
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))


def _bodies() -> st.SearchStrategy[dict[Any, Any]]:
    inner = st.dictionaries(_keys, _scalars, max_size=6)
    values = st.one_of(_scalars, inner, st.lists(inner, max_size=2))
    top = st.dictionaries(_keys, values, max_size=10)
    nested = st.dictionaries(st.sampled_from(sorted(NESTED)), st.one_of(inner, _scalars),
                             max_size=4)
    return st.builds(lambda a, b: {**a, **b}, top, nested) | top


_HEADER_POOL = sorted({v.encode("utf-8", "replace").lower()
                       for w in (*_HEADER_PARTS, *_KEY_PARTS, *egress._COMMON_HEADERS,
                                 "authorization", "x-api-key", "idempotency-key",
                                 "openai-base-url", "x-router-base-url", "api", "url", "key")
                       for v in _variants(w)})
_header_names = st.one_of(st.sampled_from(_HEADER_POOL), st.binary(max_size=24),
                          st.text(max_size=16).map(lambda t: t.encode("utf-8")))
_headers = st.lists(st.tuples(_header_names, st.binary(max_size=8)), max_size=12)


@settings(max_examples=3000, deadline=None)
@given(_bodies())
def test_body_check_equals_the_old_one_on_generated_bodies(body: dict[Any, Any]) -> None:
    assert forbidden_body_field(body) == old_forbidden_body_field(body)


@settings(max_examples=3000, deadline=None)
@given(_headers)
def test_header_check_equals_the_old_one_on_generated_headers(
        headers: list[tuple[bytes, bytes]]) -> None:
    assert forbidden_header(headers) == old_forbidden_header(headers)


def test_body_check_equals_the_old_one_on_every_variant_everywhere() -> None:
    for key in _KEY_POOL:
        for body in ({key: 1}, {"model": "x", key: 1, "messages": []},
                     *({outer: {key: 1}} for outer in NESTED),
                     {"model": "x", "metadata": {key: 1}, "extra_body": {key: 2}},
                     {"metadata": "not a mapping", key: 1}, {1: 2, key: {}}):
            assert forbidden_body_field(body) == old_forbidden_body_field(body), body


def test_header_check_equals_the_old_one_on_every_variant() -> None:
    for name in _HEADER_POOL:
        for headers in ([(name, b"v")], [(b"host", b"h"), (name, b"v")],
                        [(name, b"v"), (b"x-upstream-url", b"u")]):
            assert forbidden_header(headers) == old_forbidden_header(headers), headers


def test_the_fast_paths_only_skip_what_the_full_check_passes() -> None:
    for key in egress._PLAIN_BODY_KEYS:
        assert old_forbidden_body_field({key: {"api_key": 1}}) is None, key
        assert key not in NESTED
    for name in egress._PASS_HEADERS:
        assert name in _OLD_ALLOWED or old_forbidden_header([(name, b"v")]) is None, name
    # the usual chat body and SDK headers take the fast path
    assert {"model", "messages", "stream", "temperature", "tools"} <= egress._PLAIN_BODY_KEYS
    assert {b"host", b"content-type", b"content-length", b"user-agent",
            b"x-stainless-lang"} <= egress._PASS_HEADERS
