"""The PII detector's digit-free fast exit finds exactly what the full path finds.

``detect_pii`` returns after the e-mail scan when a text has no ASCII digit and no
``::``.  ``_full_path`` below is the detector without that exit (the same calls
in the same order); hypothesis and a corpus check both give the same findings.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.runtime.detectors import pii, secrets
from interlock.runtime.detectors.finding import Finding
from interlock.runtime.detectors.zones import digit_shape, numeric_windows


def _full_path(text: str) -> list[Finding]:
    out = pii.detect_emails(text)
    shape = digit_shape(text)
    windows = numeric_windows(text, shape)
    if windows:
        out += pii.detect_phones(text, windows)
        out += pii.detect_national_ids(text, windows)
        out += pii.detect_cards(text, windows)
        out += pii.detect_ibans(text, windows)
    out += pii.detect_ips(text, windows, shape)
    return out


# Characters that build every kind of candidate, digits (ASCII and not) included.
_ALPHABET = "0123456789abcdefABCDEF :.-()/+@_xX\n\t٣５"
_PIECES = [
    "fe80::1", "2001:db8::1", "2a00:1450:4001:81c::200e", "::", "::1", "a::b", "12:30",
    "10.0.0.1", "8.8.8.8", "192.168.1.20", "alice@corp.io", "bob@example.com",
    "+1 (415) 555-0123", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32",
    "123-45-6789", "SSN", "call me", "ab:cd:ef", "dead:beef::", "no digits here",
    "dead:0:beef:0:cafe:0:babe:0", "fe00:0:0:0:0:0:0:abcd",
]

CORPUS = [
    "Say hello to the benchmark in one short sentence.",
    "Write a haiku about autumn leaves.",
    "reach me at alice@corp.io please",
    "the server is at fe80::1ff:fe23:4567:890a now",
    "std::vector<int> and a::b::c are C++ names",
    "dead:beef:cafe::babe is an address",
    "host fe00:0:0:0:0:0:0:abcd (only the digit zero, no double colon)",
    "my SSN is 123-45-6789",
    "ip 10.1.2.3 and card 4111 1111 1111 1111",
    "times 12:30 and 9:45",
    "IBAN GB82 WEST 1234 5698 7654 32",
    "phone: +44 20 7946 0958",
    "ratio ٣٣٣٣٣٣٣٣٣ in Arabic-Indic digits",
    "fullwidth ５５５５５５５５ digits",
    "",
]


def test_corpus_same_findings() -> None:
    for text in CORPUS:
        assert pii.detect_pii(text) == _full_path(text), text


def test_fast_exit_taken_and_still_finds_email() -> None:
    text = "mail alice@corp.io about the plan"
    assert "::" not in text and not any(c.isascii() and c.isdigit() for c in text)
    found = pii.detect_pii(text)
    assert [f.detector for f in found] == ["email"]


def test_double_colon_without_digits_still_checked() -> None:
    # no ASCII digit, yet an IPv6 address: the fast exit must not be taken
    text = "route via fe80::abcd:ef01:beef today"
    assert pii.detect_pii(text) == _full_path(text)
    assert any(f.detector == "ipv6" for f in _full_path(text))


def test_zero_only_digits_still_checked() -> None:
    # the only ASCII digit is 0: the fast exit must not be taken
    text = "host fe00:0:0:0:0:0:0:abcd today"
    assert any(f.detector == "ipv6" for f in _full_path(text))
    assert pii.detect_pii(text) == _full_path(text)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=80))
def test_random_text_same_findings(text: str) -> None:
    assert pii.detect_pii(text) == _full_path(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=12)), max_size=8))
def test_random_pieces_same_findings(pieces: list[str]) -> None:
    text = " ".join(pieces)
    assert pii.detect_pii(text) == _full_path(text)


def test_secrets_dedupe_of_nothing_is_a_fresh_empty_list() -> None:
    # detect_secrets' early return for "no finding" must keep its contract
    first = secrets._dedupe([])
    assert first == [] and first is not secrets._dedupe([])
    text = "token sk-proj-" + "aZ3x9Qm2Lp7Vt4Rb8Nc1Kd6Wf5Hg0Js" + " leaked"
    assert [f.detector for f in secrets.detect_secrets(text)] != []
