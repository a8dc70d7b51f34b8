"""The PII, secret and code detectors: positives, negatives, and masking."""

from __future__ import annotations

import base64
import json

import pytest
from interlock.runtime.detectors import checksums
from interlock.runtime.detectors.code import analyze_code, detect_code
from interlock.runtime.detectors.finding import is_placeholder, mask_tail, shannon_entropy
from interlock.runtime.detectors.pii import (
    detect_cards,
    detect_emails,
    detect_ibans,
    detect_ips,
    detect_national_ids,
    detect_phones,
    detect_pii,
)
from interlock.runtime.detectors.secrets import detect_secrets


def names(findings: list) -> list[str]:
    return [f.detector for f in findings]


# --------------------------------------------------------------------------- checksums


def test_luhn_and_iban_and_bsn() -> None:
    assert checksums.luhn_ok("4111111111111111")
    assert not checksums.luhn_ok("4111111111111112")
    assert checksums.iban_ok("DE89370400440532013000")
    assert not checksums.iban_ok("DE89370400440532013001")
    assert checksums.bsn_ok("111222333")
    assert not checksums.bsn_ok("111222334")
    assert checksums.dni_letter(12345678) == "Z"


def test_verhoeff_known_values_and_single_digit_errors() -> None:
    assert checksums.verhoeff_digit("236") == "3"
    assert checksums.verhoeff_digit("12345") == "1"
    number = "23456789012"
    full = number + checksums.verhoeff_digit(number)
    assert checksums.verhoeff_ok(full)
    for i in range(len(full)):  # Verhoeff catches every single-digit substitution
        for d in "0123456789":
            if d != full[i]:
                assert not checksums.verhoeff_ok(full[:i] + d + full[i + 1:])


def test_ssn_rules() -> None:
    assert checksums.ssn_ok("123", "45", "6789")
    for area, group, serial in [("000", "12", "3456"), ("666", "12", "3456"),
                                ("912", "12", "3456"), ("123", "00", "4567"),
                                ("123", "45", "0000")]:
        assert not checksums.ssn_ok(area, group, serial)


# --------------------------------------------------------------------------- e-mail


def test_email_found_and_masked() -> None:
    [f] = detect_emails("write to john.doe@acme.io today")
    assert f.detector == "email" and f.category == "pii"
    assert f.excerpt == "j***@acme.io"
    assert "john.doe" not in f.excerpt
    assert (f.start, f.end) == (9, 25)


@pytest.mark.parametrize("text", [
    "user@example.com", "a@sub.example.org", "x@example.net", "bob@site.example",
    "ci@build.test", "n@foo.invalid", "me@localhost", "icon@2x.png", "npm i react@18.2.0",
    "no at sign here", "@mention only",
])
def test_email_negatives(text: str) -> None:
    assert detect_emails(text) == []


# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize("text", [
    "call (555) 123-4567 now", "call 555-123-4567", "call 555.123.4567", "+1 415 555 2671",
    "+44 20 7946 0958", "UK 020 7946 0958", "mobile 07700 900123", "Berlin 030 12345678",
    "Paris 01 23 45 67 89", "+33 1 23 45 67 89", "+4930123456789",
])
def test_phone_positives(text: str) -> None:
    found = detect_phones(text)
    assert names(found) == ["phone"], text
    digits = [c for c in text[found[0].start:found[0].end] if c.isdigit()]
    assert found[0].excerpt.endswith("".join(digits[-2:]))
    assert "".join(digits[:-2]) not in found[0].excerpt.replace(" ", "")


@pytest.mark.parametrize("text", [
    "on 2024-01-15 at noon", "version 10.0.19041.1234", "order id 12345678901",
    "total 1234567", "ip 192.168.1.10", "pi is 3.14159265", "ticket 155-1234-56789",
    "ratio 1:2:3", "isbn 978-3-16-148410-0",
])
def test_phone_negatives(text: str) -> None:
    assert detect_phones(text) == []


# --------------------------------------------------------------------------- national IDs


def _aadhaar() -> str:
    body = "23456789012"
    return body + checksums.verhoeff_digit(body)


def _nir() -> str:
    body = "1841276451089"
    return f"{body}{checksums.insee_key(body):02d}"


@pytest.mark.parametrize("text,detector", [
    ("SSN 123-45-6789", "us_ssn"),
    ("ssn 123 45 6789", "us_ssn"),
    ("NI number AB 12 34 56 C", "uk_nino"),
    ("NI AB123456C", "uk_nino"),
    ("DNI 12345678Z", "es_dni"),
    ("NIE X1234567L", "es_dni"),
    ("BSN: 111222333", "nl_bsn"),
])
def test_national_id_positives(text: str, detector: str) -> None:
    assert names(detect_national_ids(text)) == [detector]


def test_aadhaar_and_nir_positives() -> None:
    a = _aadhaar()
    spaced = f"{a[:4]} {a[4:8]} {a[8:]}"
    assert names(detect_national_ids(f"my aadhaar {spaced}")) == ["in_aadhaar"]
    assert names(detect_national_ids(f"Aadhaar no. {a}")) == ["in_aadhaar"]
    nir = _nir()
    assert names(detect_national_ids(f"NIR {nir}")) == ["fr_nir"]


@pytest.mark.parametrize("text", [
    "SSN 000-12-3456", "SSN 666-12-3456", "SSN 912-12-3456", "SSN 123-00-4567",
    "SSN 123-45-0000", "SSN 078-05-1120",
    "NI DA 12 34 56 C", "NI GB 12 34 56 A", "NI AB 12 34 56 E",
    "DNI 12345678A",
    "BSN 111222334", "reference 111222333",  # BSN without its cue is just a number
])
def test_national_id_negatives(text: str) -> None:
    assert detect_national_ids(text) == []


def test_aadhaar_negatives() -> None:
    a = _aadhaar()
    bad = a[:-1] + str((int(a[-1]) + 1) % 10)
    assert detect_national_ids(f"{bad[:4]} {bad[4:8]} {bad[8:]}") == []
    assert detect_national_ids(f"order {a}") == []  # unspaced without the cue


# --------------------------------------------------------------------------- cards, IBAN


@pytest.mark.parametrize("number", [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5555555555554444",
    "3782 822463 10005", "6011111111111117", "2223003122003222",
])
def test_card_positives(number: str) -> None:
    [f] = detect_cards(f"card: {number} exp 12/29")
    assert f.detector == "payment_card"
    assert f.excerpt.endswith(number[-4:])
    assert number.replace(" ", "").replace("-", "")[:12] not in f.excerpt


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112",  # Luhn fails
    "id 1234567812345670",  # Luhn ok but no issuer prefix
    "4111 1111-1111 1111",  # mixed separators
    "9" * 16, "build 20240115123456789",
])
def test_card_negatives(text: str) -> None:
    assert detect_cards(text) == []


def test_iban() -> None:
    assert names(detect_ibans("IBAN DE89 3704 0044 0532 0130 00 please")) == ["iban"]
    assert names(detect_ibans("GB82WEST12345698765432")) == ["iban"]
    [f] = detect_ibans("DE89 3704 0044 0532 0130 00 IS MY ACCOUNT")
    assert f.excerpt.endswith("3000") and "3704" not in f.excerpt
    assert detect_ibans("DE89 3704 0044 0532 0130 01") == []
    assert detect_ibans("AB12 XYZ") == []


# --------------------------------------------------------------------------- IPs


@pytest.mark.parametrize("text", [
    "server at 10.0.0.5", "ping 8.8.8.8", "host 172.16.254.1:8080", "1.2.3.4 is a host",
    "ipv6 2a00:1450:4007:80b::200e", "addr fe80::1ff:fe23:4567:890a",
    "full 2001:0470:0000:0000:0000:0000:0000:0001",
])
def test_ip_positives(text: str) -> None:
    assert len(detect_ips(text)) == 1, text


@pytest.mark.parametrize("text", [
    # documentation ranges, loopback, unspecified, netmasks
    "192.0.2.1", "198.51.100.7", "203.0.113.9", "127.0.0.1", "0.0.0.0", "255.255.255.0",
    "2001:db8::1", "::1",
    # version-like strings: a version cue before it, a fifth part, leading zeros
    "version 1.2.3.4", "v1.2.3.4", "pip install foo==1.2.3.4", "1.2.3.4.5", "1.02.3.4",
    "999.1.1.1", "at 12:30:45", "mac 00:1a:2b:3c:4d:5e", "slice x[::2]", "std::vector",
])
def test_ip_negatives(text: str) -> None:
    assert detect_ips(text) == [], text


# --------------------------------------------------------------------------- secrets


def _jwt(header: dict[str, str]) -> str:
    def enc(obj: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    payload = enc({"sub": "1234567890", "name": "x"})
    return f"{enc(header)}.{payload}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y"


SECRETS = {
    "openai_key": "sk-proj-Ab3dEf1234567890GhIjKlMnOpQrStUv",
    "anthropic_key": "sk-ant-api03-Ab3dEf1234567890GhIjKlMnOpQrStUvWxYz",
    "aws_access_key_id": "AKIAZ7Q3V5X2LMN4PQRS",
    "github_token": "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "slack_token": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "google_api_key": "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "stripe_key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "jwt": _jwt({"alg": "HS256", "typ": "JWT"}),
}


@pytest.mark.parametrize("detector,secret", sorted(SECRETS.items()))
def test_key_positives_are_masked(detector: str, secret: str) -> None:
    found = detect_secrets(f"here it is: {secret} thanks")
    assert names(found) == [detector]
    assert secret not in found[0].excerpt
    assert secret[len(secret) // 2:] not in found[0].excerpt
    assert found[0].excerpt.endswith("[redacted]")


def test_github_pat_slack_webhook_aws_secret_pem() -> None:
    text = (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzAB\n"
        "https://hooks.slack.com/services/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\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYq8Rz4kLm2N\n"
        "-----BEGIN RSA PRIVATE KEY-----\n"
        "MIIEowIBAAKCAQEA1234567890abcdefghijABCDEFGHIJ1234567890abcdefghij\n"
        "-----END RSA PRIVATE KEY-----\n"
    )
    found = names(detect_secrets(text))
    assert found == ["github_token", "slack_webhook", "aws_secret_access_key", "private_key"]


@pytest.mark.parametrize("text", [
    "export OPENAI_API_KEY=sk-...", "use sk-your-key-here", "key: <YOUR_API_KEY>",
    "api_key = 'xxxxxxxxxxxxxxxxxxxx'", "password = your_password", "password: changeme",
    "token = ${API_TOKEN}", "api_key = os.environ['OPENAI_API_KEY']",
    "secret = 'aaaaaaaaaaaaaaaaaaaaaaaa'", "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
    "Reset password: click the link", "the tests passed: 5 of 6", "compass: north",
    "password = request_form_value", "postgres://user:password@localhost/db",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    _jwt({"typ": "JWT"}),  # no alg: not a JWT header
    "the tokenizer splits text into tokens", "get_user_account_settings_by_identifier()",
])
def test_secret_negatives(text: str) -> None:
    assert detect_secrets(text) == [], text


def test_password_url_and_keyed_entropy() -> None:
    text = ('password=hunter2\n"db_password": "S3cr3t-Pa55"\n'
            "postgres://admin:S3cr3t!x@db.internal:5432/app\n"
            'api_key = "9f8e7d6c5b4a39281726354a5b6c7d8e"\n'
            "Authorization: Bearer abcdef0123456789ABCDEF0123456789xyz\n")
    found = detect_secrets(text)
    assert names(found) == ["password_assignment", "password_assignment", "url_credentials",
                            "keyed_secret", "bearer_token"]
    joined = " ".join(f.excerpt for f in found)
    for raw in ("hunter2", "S3cr3t-Pa55", "S3cr3t!x", "9f8e7d6c5b4a", "abcdef0123456789"):
        assert raw not in joined
    assert "db.internal" in joined  # the host is shown, the credentials are not


def test_key_in_assignment_reported_once() -> None:
    found = detect_secrets("OPENAI_API_KEY=" + SECRETS["openai_key"])
    assert names(found) == ["openai_key"]


def test_placeholder_and_entropy_helpers() -> None:
    for v in ("sk-...", "<KEY>", "xxxx", "${X}", "your-token", "changeme", "****", ""):
        assert is_placeholder(v), v
    assert not is_placeholder("q8Rz4kLm2Nx7Vb5Wc3Yt")
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
    assert mask_tail("4111-1111-1111-1111") == "****-****-****-1111"


# --------------------------------------------------------------------------- code, all


def test_code_detector() -> None:
    fenced = "look:\n```python\ndef f(x):\n    return x + 1\n```\n"
    info = analyze_code(fenced)
    assert info.has_code_fence and info.is_code
    [f] = detect_code(fenced)
    assert f.category == "code" and "python" in f.excerpt and "return" not in f.excerpt
    dense = "import os\nx = os.getcwd();\nif (x) {\n  print(x);\n}\n"
    assert analyze_code(dense).dense
    assert detect_code("Just some prose about cooking pasta (al dente).") == []
    assert not analyze_code("```text\nplain output\n```").is_code


def test_detect_pii_combines_and_orders() -> None:
    text = "mail a.b@acme.io, call +44 20 7946 0958, card 4111 1111 1111 1111, host 10.1.2.3"
    assert names(detect_pii(text)) == ["email", "phone", "payment_card", "ipv4"]
