"""PII detectors: e-mail addresses, phone numbers, national IDs, cards, IBANs, IPs.

Every detector is a pure function ``text -> list[Finding]``, guarded by a cheap
prefilter (``'@' in text``, a digit, ``':'``) so that text without the tell-tale
characters costs one C-level scan.  The regexes use bounded repeats only, so a
scan is linear in the size of the text; checksums and allocation rules then
weed out number-shaped strings that are not what they look like.

Decisions worth knowing:

* documentation e-mail domains (example.com/.org/.net, ``*.example``, ``*.test``,
  ``*.invalid``, ``*.localhost``) are not PII;
* national phone formats need their usual grouping (``(555) 123-4567``,
  ``020 7946 0958``); a bare run of digits is treated as an ID, not a phone;
* a dotted quad is an IPv4 address unless a version cue precedes it (``v1.2.3.4``,
  ``version 1.2.3.4``, ``==1.2.3.4``) or an octet has a leading zero; loopback,
  0.0.0.0/8, 255.x and the documentation ranges are not host addresses;
* well-known test card numbers (4111 1111 1111 1111) still count: a router that
  fails closed treats any Luhn-valid card as a card.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Final

from interlock.runtime.detectors.checksums import (
    bsn_ok,
    dni_letter,
    iban_ok,
    insee_key,
    luhn_ok,
    nino_prefix_ok,
    ssn_ok,
    verhoeff_ok,
)
from interlock.runtime.detectors.finding import (
    MAX_FINDINGS_PER_DETECTOR,
    Finding,
    mask_email,
    mask_tail,
)
from interlock.runtime.detectors.zones import (
    Window,
    char_windows,
    digit_shape,
    ipv6_windows,
    numeric_windows,
)


def _matches(regex: re.Pattern[str], text: str, windows: list[Window]) -> Iterator[re.Match[str]]:
    for start, end in windows:
        yield from regex.finditer(text, start, end)

# --------------------------------------------------------------------------- e-mail

_EMAIL: Final = re.compile(
    r"(?<![\w.%+-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24})(?![\w-])"
)
_DOC_DOMAINS: Final = frozenset({"example.com", "example.org", "example.net", "localhost"})
_DOC_SUFFIXES: Final = (".example", ".test", ".invalid", ".localhost",
                        ".example.com", ".example.org", ".example.net")
_FILE_TLDS: Final = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "pdf", "ico"})


def is_documentation_domain(domain: str) -> bool:
    """RFC 2606 / 6761 names reserved for documentation and testing."""
    d = domain.lower().rstrip(".")
    return d in _DOC_DOMAINS or d.endswith(_DOC_SUFFIXES)


def detect_emails(text: str) -> list[Finding]:
    out: list[Finding] = []
    for m in _matches(_EMAIL, text, char_windows(text, "@", 66, 260)):
        local, domain = m.group(1), m.group(2)
        if is_documentation_domain(domain) or domain.rsplit(".", 1)[1].lower() in _FILE_TLDS:
            continue
        out.append(Finding("pii", "email", m.start(), m.end(), mask_email(local, domain)))
        if len(out) >= MAX_FINDINGS_PER_DETECTOR:
            break
    return out


# --------------------------------------------------------------------------- phones

# A candidate: optional + or (, digits with single separators; the grouping is
# validated in Python.  Not preceded or followed by more digits, letters or dots.
_PHONE: Final = re.compile(
    r"(?<![\w+.\-/])(?:\+|\(?)\d[\d ().\-/]{5,20}\d(?![\w]|[.\-/]\d)"
)
_PHONE_SPLIT: Final = re.compile(r"[ ().\-/]+")


def _phone_ok(s: str) -> bool:
    if "  " in s or ".." in s or "--" in s:
        return False
    groups = [g for g in _PHONE_SPLIT.split(s.lstrip("+")) if g]
    digits = "".join(groups)
    n = len(digits)
    if s.startswith("+"):
        # E.164: country code never starts with 0, at most 15 digits in all.
        return 8 <= n <= 15 and digits[0] != "0" and (len(groups) == 1 or len(groups[0]) <= 4)
    if len(groups) < 2 or "." in s and s.count(".") != len(groups) - 1:
        return False
    sizes = [len(g) for g in groups]
    # NANP: (NXX) NXX-XXXX, optional leading 1.
    if sizes[0] == 1 and groups[0] == "1":
        sizes, groups = sizes[1:], groups[1:]
    if sizes == [3, 3, 4] and groups[0][0] in "23456789":
        return True
    # Trunk-prefix national numbers (UK, DE, FR, ...): 0 then 9-11 more digits in groups.
    return (
        digits[0] == "0" and digits[1] != "0" and 10 <= n <= 12
        and all(2 <= k <= 8 for k in sizes)
    )


def detect_phones(text: str, windows: list[Window] | None = None) -> list[Finding]:
    out: list[Finding] = []
    windows = numeric_windows(text) if windows is None else windows
    for m in _matches(_PHONE, text, windows):
        s = m.group()
        if _phone_ok(s):
            out.append(Finding("pii", "phone", m.start(), m.end(), mask_tail(s, 2)))
            if len(out) >= MAX_FINDINGS_PER_DETECTOR:
                break
    return out


# --------------------------------------------------------------------------- national IDs

_SSN: Final = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_NINO: Final = re.compile(
    r"(?<![\w])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?!\w)"
)
_DNI: Final = re.compile(r"(?<![\w-])([XYZ]\d{7}|\d{8})-?([A-Z])(?!\w)")
_AADHAAR: Final = re.compile(
    r"(?<![\w-])(?<!\d )([2-9]\d{3})([ -]?)(\d{4})\2(\d{4})(?![\w-]|[ -]\d)"
)
_AADHAAR_CUE: Final = re.compile(r"(?i)aadhaa?r|uidai")
_BSN: Final = re.compile(r"(?<![\w.-])(\d{4})\.?(\d{2})\.?(\d{3})(?![\w-]|\.\d)")
_BSN_CUE: Final = re.compile(r"(?i)\bbsn\b|burgerservicenummer|sofi-?nummer")
_NIR: Final = re.compile(
    r"(?<![\w])([1278]) ?(\d{2}) ?(0[1-9]|1[0-2]|[2-9]\d) ?(\d{2}|2[ABab]) ?(\d{3}) ?(\d{3})"
    r" ?(\d{2})(?!\w)"
)


def _cue_before(cue: re.Pattern[str], text: str, start: int, window: int = 40) -> bool:
    return cue.search(text, max(0, start - window), start) is not None


def detect_national_ids(text: str, windows: list[Window] | None = None) -> list[Finding]:
    """US SSN, UK NI number, Spanish DNI/NIE, Indian Aadhaar, Dutch BSN, French NIR."""
    out: list[Finding] = []
    w = numeric_windows(text) if windows is None else windows

    def add(name: str, m: re.Match[str]) -> None:
        out.append(Finding("pii", name, m.start(), m.end(), mask_tail(m.group(), 2)))

    for m in _matches(_SSN, text, w):
        if ssn_ok(m.group(1), m.group(3), m.group(4)):
            add("us_ssn", m)
    for m in _matches(_NINO, text, w):
        if nino_prefix_ok(m.group(1)):
            add("uk_nino", m)
    for m in _matches(_DNI, text, w):
        num = m.group(1)
        if num[0] in "XYZ":  # NIE: X/Y/Z stand for 0/1/2
            num = str("XYZ".index(num[0])) + num[1:]
        if dni_letter(int(num)) == m.group(2):
            add("es_dni", m)
    for m in _matches(_AADHAAR, text, w):
        digits = m.group(1) + m.group(3) + m.group(4)
        grouped = m.group(2) != ""
        if verhoeff_ok(digits) and (grouped or _cue_before(_AADHAAR_CUE, text, m.start())):
            add("in_aadhaar", m)
    for m in _matches(_BSN, text, w):
        if bsn_ok(m.group(1) + m.group(2) + m.group(3)) and _cue_before(_BSN_CUE, text, m.start()):
            add("nl_bsn", m)
    for m in _matches(_NIR, text, w):
        body = "".join(m.group(i) for i in range(1, 7))
        if insee_key(body) == int(m.group(7)):
            add("fr_nir", m)
    out.sort(key=lambda f: f.start)
    return out[:MAX_FINDINGS_PER_DETECTOR]


# --------------------------------------------------------------------------- cards

_CARD: Final = re.compile(r"(?<![\d\-.])\d(?:[ -]?\d){12,18}(?![\d])(?!-\d)")


def _card_brand_ok(d: str) -> bool:
    """Known issuer prefixes (IIN ranges) and their lengths."""
    n = len(d)
    two, four = int(d[:2]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16  # Mastercard
    if two in (34, 37):
        return n == 15  # American Express
    if d.startswith("6011") or 644 <= int(d[:3]) <= 649 or two == 65:
        return 16 <= n <= 19  # Discover
    if 3528 <= four <= 3589:
        return 16 <= n <= 19  # JCB
    if 300 <= int(d[:3]) <= 305 or two in (36, 38, 39):
        return 14 <= n <= 19  # Diners Club
    if two == 62:
        return 16 <= n <= 19  # UnionPay
    return (two == 50 or 56 <= two <= 69) and 12 <= n <= 19  # Maestro


def detect_cards(text: str, windows: list[Window] | None = None) -> list[Finding]:
    out: list[Finding] = []
    windows = numeric_windows(text) if windows is None else windows
    for m in _matches(_CARD, text, windows):
        s = m.group()
        seps = {c for c in s if not c.isdigit()}
        if len(seps) > 1:
            continue
        digits = s.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _card_brand_ok(digits) and luhn_ok(digits):
            out.append(Finding("pii", "payment_card", m.start(), m.end(), mask_tail(s, 4)))
            if len(out) >= MAX_FINDINGS_PER_DETECTOR:
                break
    return out


# --------------------------------------------------------------------------- IBAN

_IBAN: Final = re.compile(r"(?<![\w])([A-Z]{2})(\d{2})((?: ?[A-Z0-9]){11,30})(?![\w])")
_IBAN_LENGTHS: Final = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22,
    "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18,
    "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26,
    "AE": 23, "SA": 24, "IL": 23, "BR": 29, "QA": 29, "UA": 29, "KZ": 20, "MU": 30,
}


def detect_ibans(text: str, windows: list[Window] | None = None) -> list[Finding]:
    out: list[Finding] = []
    windows = numeric_windows(text) if windows is None else windows
    for m in _matches(_IBAN, text, windows):
        iban = (m.group(1) + m.group(2) + m.group(3)).replace(" ", "")
        want = _IBAN_LENGTHS.get(m.group(1))
        if want is not None:
            if len(iban) < want:
                continue
            iban = iban[:want]  # a word may follow the last group without a space break
        if 15 <= len(iban) <= 34 and iban_ok(iban):
            out.append(Finding("pii", "iban", m.start(), m.end(), mask_tail(iban, 4)))
            if len(out) >= MAX_FINDINGS_PER_DETECTOR:
                break
    return out


# --------------------------------------------------------------------------- IP addresses

_IPV4: Final = re.compile(
    r"(?<![\w.:/-])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w]|\.\d)"
)
_VERSION_CUE: Final = re.compile(
    r"(?i)(?:\bversion|\bver|\brelease|\bbuild|\bv|[=<>~^@])[\s:]{0,2}\Z"
)
_IPV6: Final = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_DOC_V4: Final = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
)
_DOC_V6: Final = ipaddress.ip_network("2001:db8::/32")


def _v4_ok(octets: tuple[str, ...]) -> bool:
    if any(len(o) > 1 and o[0] == "0" for o in octets):
        return False  # 1.02.3.4 is a version or an ID, never written that way as an address
    values = [int(o) for o in octets]
    if any(v > 255 for v in values) or values[0] in (0, 127, 255):
        return False
    addr = ipaddress.IPv4Address(".".join(octets))
    return not any(addr in net for net in _DOC_V4)


def detect_ips(
    text: str, windows: list[Window] | None = None, shape: str | None = None
) -> list[Finding]:
    out: list[Finding] = []
    shape = digit_shape(text) if shape is None else shape
    windows = numeric_windows(text, shape) if windows is None else windows
    if "." in text:
        for m in _matches(_IPV4, text, windows):
            if not _v4_ok(m.groups()):
                continue
            if _VERSION_CUE.search(text[max(0, m.start() - 10):m.start()]):
                continue
            out.append(Finding("pii", "ipv4", m.start(), m.end(), f"{m.group(1)}.x.x.x"))
            if len(out) >= MAX_FINDINGS_PER_DETECTOR:
                return out
    if ":" in text:
        for m in _matches(_IPV6, text, ipv6_windows(text, shape)):
            s = m.group()
            if sum(1 for g in s.split(":") if g) < 3:
                continue  # "a::b", "12:30" and slices are not addresses
            try:
                addr = ipaddress.IPv6Address(s)
            except ValueError:
                continue
            if addr.is_loopback or addr.is_unspecified or addr in _DOC_V6:
                continue
            out.append(Finding("pii", "ipv6", m.start(), m.end(), s.split(":", 1)[0] + ":..."))
            if len(out) >= MAX_FINDINGS_PER_DETECTOR:
                break
    return out


# --------------------------------------------------------------------------- all

# Every number-shaped candidate (phone, ID, card, IBAN, IPv4) needs an ASCII digit
# (the numeric needles all contain a "0" of the digit shape), and an IPv6 window
# needs a digit or "::".  A prompt with neither skips the translate and the scans.
# Ten memchr-speed ``in`` tests beat one [0-9] regex search at every size: the regex
# engine steps through a character class at a few ns per character.


def detect_pii(text: str) -> list[Finding]:
    """Every PII finding in ``text``, ordered by detector then position."""
    out = detect_emails(text) if "@" in text else []  # every e-mail window is around an @
    if not ("0" in text or "1" in text or "2" in text or "3" in text or "4" in text
            or "5" in text or "6" in text or "7" in text or "8" in text or "9" in text) \
            and (":" not in text or "::" not in text):
        return out  # no numeric window and no IPv6 window: the rest would find nothing
    shape = digit_shape(text)  # one translate shared by every number-shaped detector
    windows = numeric_windows(text, shape)
    if windows:
        out += detect_phones(text, windows)
        out += detect_national_ids(text, windows)
        out += detect_cards(text, windows)
        out += detect_ibans(text, windows)
    out += detect_ips(text, windows, shape)
    return out
