"""The fast classifier gives exactly what the classifier before issue 6 gave.

``test_classify_perf_frozen`` is a frozen copy of the old ``classify.py`` and its
detectors.  Every check here runs the live code and that copy on the same input
and requires equal output: the whole ``Classification`` (cell, signals, needs,
tags, every evidence record with its span, excerpt and note), and each public
detector (``detect_pii``, ``detect_secrets``, ``analyze_code``/``detect_code``,
``read_cues``) on its own, since ``redact`` calls the detectors directly.

Inputs: (a) every prompt and request of ``profiles/cases`` and every string
literal of the test suite, (b) hypothesis-built texts and requests mixing PII,
keys, passwords, code, private markers, tag words and unicode, and (c) the
bench prompts (one line, 1 KB, 32 KB, 512 KB).
"""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock.compiler.cases import builtin_case_files, decode_body
from interlock.compiler.cli_route import table_for_cases
from interlock.runtime.canonical import CanonicalRequest, Message, Part, ToolSpec
from interlock.runtime.classify import Classification, Classifier
from interlock.runtime.detectors import code, pii, secrets, text, zones
from interlock.runtime.detectors.checksums import verhoeff_digit
from interlock.runtime.errors import RequestError
from interlock.runtime.table import ClassifierConfig, TagRule
from unit import test_classify_perf_frozen as old  # tests/ is on the path

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- configs

_TAGS = (
    TagRule(name="hr", keywords=("salary", "Payroll", "pay slip")),
    TagRule(name="legal", patterns=(r"(?i)contract\s+\d+", r"NDA"), private=True),
    TagRule(name="math", keywords=("integral",), task="reasoning", complexity="high"),
    TagRule(name="ops", keywords=("deploy",), patterns=(r"k8s",), complexity="medium"),
)
CONFIGS: list[ClassifierConfig] = [
    ClassifierConfig(private_when=("pii", "secrets")),  # the bench table's
    ClassifierConfig(private_when=("pii", "secrets", "code", "tag:hr"), tags=_TAGS),
    ClassifierConfig(private_when=(), tags=_TAGS, medium_prompt_tokens=40,
                     long_prompt_tokens=300),
    ClassifierConfig(private_when=("code",)),
    ClassifierConfig(private_when=("secrets", "tag:ops"), tags=_TAGS[1:]),
]
_NEW = [Classifier(c) for c in CONFIGS]
_OLD = [old.Classifier(c) for c in CONFIGS]


def _evidence(cls: Any) -> list[tuple[Any, ...]]:
    return [(e.signal, e.value, e.detector, e.span, e.excerpt, e.note) for e in cls.evidence]


def _assert_same(new: Classification, ref: Any, what: object) -> None:
    assert (new.cell, new.task, new.complexity, new.sensitivity, new.modality, new.needs,
            new.tokens, new.tags) == (ref.cell, ref.task, ref.complexity, ref.sensitivity,
                                      ref.modality, ref.needs, ref.tokens, ref.tags), what
    assert _evidence(new) == _evidence(ref), what
    assert new.to_dict() == ref.to_dict(), what


def _check_request(req: CanonicalRequest, *, header_private: bool = False,
                   configs: range | None = None) -> None:
    for i in configs if configs is not None else range(len(CONFIGS)):
        new = _NEW[i].classify(req, header_private=header_private)
        ref = _OLD[i].classify(req, header_private=header_private)
        _assert_same(new, ref, (i, req))


def _check_text(t: str) -> None:
    """The public detectors alone, then the classifier with ``t`` as a prompt."""
    assert pii.detect_pii(t) == _as_new(old.detect_pii(t)), t
    assert secrets.detect_secrets(t) == _as_new(old.detect_secrets(t)), t
    info, ref_info = code.analyze_code(t), old.analyze_code(t)
    assert (info.fenced, info.code_lines, info.lines, info.fenced_lines, info.is_code,
            info.has_code_fence, info.size_lines) == (
        ref_info.fenced, ref_info.code_lines, ref_info.lines, ref_info.fenced_lines,
        ref_info.is_code, ref_info.has_code_fence, ref_info.size_lines), t
    assert code.detect_code(t) == _as_new(old.detect_code(t)), t
    for where, weight, markers in (("user", 2, True), ("system", 1, False)):
        cues, ref = text.Cues(), old.Cues()
        text.read_cues(cues, t, weight=weight, where=where, markers=markers)
        old.read_cues(ref, t, weight=weight, where=where, markers=markers)
        assert (cues.scores, cues.hits, cues.reasoning_markers, cues.steps,
                cues.list_items) == (ref.scores, ref.hits, ref.reasoning_markers, ref.steps,
                                     ref.list_items), t
    _check_request(_chat(t))


def _as_new(found: list[Any]) -> list[Any]:
    from interlock.runtime.detectors.finding import Finding
    return [Finding(f.category, f.detector, f.start, f.end, f.excerpt) for f in found]


def _chat(t: str) -> CanonicalRequest:
    return CanonicalRequest(surface="chat", messages=[Message("user", [Part("text", t)])])


# --------------------------------------------------------------------------- (a) fixtures


def _case_requests() -> list[tuple[CanonicalRequest, bool, ClassifierConfig]]:
    out = []
    for cf in builtin_case_files():
        cfg = table_for_cases(cf, None, None, None).classifier
        for case in cf.cases:
            body = case.request if case.request is not None else {
                "messages": [{"role": "user", "content": case.prompt}]}
            try:
                req = decode_body(body, case.surface)
            except RequestError:
                continue
            out.append((req, case.header_private, cfg))
    return out


def test_profile_cases_same_classification() -> None:
    cases = _case_requests()
    assert len(cases) > 20
    for req, header_private, cfg in cases:
        new = Classifier(cfg).classify(req, header_private=header_private)
        ref = old.Classifier(cfg).classify(req, header_private=header_private)
        _assert_same(new, ref, req)
        _check_request(req, header_private=header_private)


def _test_strings() -> list[str]:
    """Every string literal of the test suite (prompts, fixtures, detector cases)."""
    found: set[str] = set()
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name.startswith("test_classify_perf_"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value:
                found.add(node.value)
    return sorted(found)


def test_suite_string_literals_same_findings() -> None:
    strings = _test_strings()
    assert len(strings) > 1000
    for t in strings:
        _check_text(t)


# --------------------------------------------------------------------------- (b) generated


def _jwt() -> str:
    def seg(d: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg({'sub': '1234567890'})}.SflKxwRJSMeKKF2QT4f"


_AADHAAR = "23456789012"[:11] + verhoeff_digit("23456789012"[:11])
_PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"
PIECES: list[str] = [
    # e-mail
    "alice@corp.io", "bob@example.com", "x.y+z@sub.domain.co.uk", "logo@2x.png", "@", "a@b",
    "mail: Jean.Dupont@laposte.fr,", "user@localhost", "me@test.test",
    # phones
    "+1 (415) 555-0123", "(555) 123-4567", "020 7946 0958", "+44 20 7946 0958", "555-1234",
    "+4915123456789", "1-800-555-0199", "06 12 34 56 78", "12.34.56.78.90",
    # cards, IBANs, IDs
    "4111 1111 1111 1111", "4111-1111-1111-1111", "5500 0000 0000 0004", "378282246310005",
    "6011111111111117", "4111 1111 1111 1112", "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000", "NL91ABNA0417164300", "FR1420041010050500013M02606",
    "123-45-6789", "078-05-1120", "AB 12 34 56 C", "12345678Z", "X1234567L",
    f"aadhaar {_AADHAAR}", f"{_AADHAAR[:4]} {_AADHAAR[4:8]} {_AADHAAR[8:]}", "bsn 111222333",
    "BSN: 1112.22.333", "1 85 05 78 006 084 36", "2 55 08 2A 123 456 11",
    # IPs and versions
    "10.0.0.1", "8.8.8.8", "v1.2.3.4", "version 10.1.2.3", "192.0.2.1", "127.0.0.1",
    "2a00:1450:4001:81c::200e", "::1", "fe80::1", "std::vector", "12:30", "dead:beef::cafe",
    # keys and tokens
    "sk-proj-aZ3x9Qm2Lp7Vt4Rb8Nc1Kd6Wf5Hg0Js", "sk-ant-api03-aZ3x9Qm2Lp7Vt4Rb8Nc1Kd6Wf5Hg0Js",
    "sk-your-key-here", "sk-...", "AKIAIOSFODNN7EXAMPLE", "AKIAZ3X9QM2LP7VT4RB8",
    "ghp_aZ3x9Qm2Lp7Vt4Rb8Nc1Kd6Wf5Hg0JsXy12", "github_pat_11ABCDEFG0aZ3x9Qm2Lp7Vt4Rb8Nc1",
    "xoxb-1234-5678-abcdefghij", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "rk_test_aZ3x9Qm2Lp7Vt4Rb", _jwt(),
    f"-----BEGIN RSA PRIVATE KEY-----\n{_PEM_BODY}\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
    "https://hooks.slack.com/services/T0001/B0001/aZ3x9Qm2Lp7Vt4Rb8Nc1Kd6W",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
    "AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYz9Qm2Lp7Vt'",
    "password=hunter2", "password: click reset", "pwd = 's3cr3t!'", "passphrase: tr0ub4dor&3",
    "compass: north", "DB_PASS=Zx8Qm2Lp7Vt4", "password = user_input", "Password: ${PW}",
    "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
    "bearer aZ3x9Qm2Lp7Vt4Rb8Nc1Kd6Wf5Hg0Js",
    "postgres://admin:s3cretpw@db.internal:5432/x", "https://user:<password>@host/",
    'api_key = "Zx8Qm2Lp7Vt4Rb8Nc1Kd6Wf5"', "token: ${TOKEN}",
    "client_secret: aaaaaaaaaaaaaaaaaaaa",
    "session_token => 'Q2x9Lp7Vt4Rb8Nc1Kd6Wf5Hg0Js'", "a_very_long_identifier_name_here",
    # code
    "```python\ndef f(x):\n    return x\n```", "~~~\nplain text\n~~~", "```\nx\n```",
    "```js\nconst a = () => 1;\n", "def foo():\n    return 1;\n", "function f() { return 1; }",
    "x => x+1", "import os\n", "if (a) {\n\tb();\n}\n", "SELECT * FROM t;\n",
    # markers and cues
    "#no_cloud", "#no-cloud", "#NO_CLOUD", "# no_cloud", "Summarize", "translate into french",
    "to German", "step by step", "write a poem", "1. first\n2. second\n3. third",
    "- a\n- b\n- c\n", "* x\n* y", "then", "finally", "and also", "tl;dr", "prove the theorem",
    "as json", "Refactor", "Fix", "why", "explain why", "once upon a time", "think carefully",
    "show your work", "key points", "in one sentence", "unit test", "pull request", "TLDR:",
    # tag words
    "salary", "Payroll", "pay slip", "contract 42", "NDA", "integral", "deploy", "k8s",
    # unicode and odd characters
    "\u0130stanbul", "\u017fecret", "Stra\u00dfe", "\u0663\u0663\u0663\u0663\u0663",
    "\uff15\uff15\uff15\uff15\uff15", "\u2019s", "\U0001f600", "\u212a", "\ufb00", "\u00a0",
    "\u201cquoted\u201d", "caf\u00e9", "\u0130", "\t", "\r\n",
]
_SEP = st.sampled_from([" ", "\n", ", ", "", "\n\n", ": ", "=", "\t"])
_PIECE = st.one_of(st.sampled_from(PIECES), st.sampled_from(PIECES), st.text(max_size=16),
                   st.text(alphabet="0123456789 -.()/+:@abAB_", max_size=24))


@st.composite
def texts(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(_PIECE, max_size=10))
    out = ""
    for p in pieces:
        out += draw(_SEP) + p
    if draw(st.integers(0, 9)) == 0:  # past the cue window and the code sample
        filler = "The quick brown fox jumps over the lazy dog. " * draw(st.integers(60, 200))
        cut = draw(st.integers(0, len(out)))
        out = out[:cut] + filler + out[cut:]
    return out


_ROLES = st.sampled_from(["user", "user", "assistant", "system", "tool"])


@st.composite
def parts(draw: st.DrawFn) -> Part:
    kind = draw(st.sampled_from(["text", "text", "text", "image", "tool_call", "tool_result",
                                 "thinking"]))
    if kind == "image":
        return Part("image", image_url="https://example.com/cat.png")
    if kind == "tool_call":
        return Part("tool_call", name="f", arguments=draw(st.one_of(st.none(), texts())))
    return Part(kind, draw(texts()))


@st.composite
def requests(draw: st.DrawFn) -> CanonicalRequest:
    messages = [Message(draw(_ROLES), draw(st.lists(parts(), max_size=3)))
                for _ in range(draw(st.integers(0, 4)))]
    if draw(st.booleans()) and draw(st.booleans()):  # deep conversations, for complexity
        messages += [Message("user", [Part("text", "ok")])] * draw(st.integers(6, 30))
    tools = [ToolSpec(name=draw(st.sampled_from(["get_weather", "run_python", "search",
                                                 "git_diff", "ReadFile", "x"])),
                      description=draw(st.text(max_size=20)))
             for _ in range(draw(st.integers(0, 5)))]
    return CanonicalRequest(
        surface=draw(st.sampled_from(["chat", "messages", "embeddings"])),
        messages=messages,
        system=draw(st.one_of(st.just(""), texts())),
        tools=tools,
        response_format=draw(st.sampled_from([None, {}, {"type": "json_object"},
                                              {"type": "json_schema", "json_schema": {}},
                                              {"type": "text"}])),
        stream=draw(st.booleans()),
        private=draw(st.sampled_from([None, None, True, False])),
        inputs=draw(st.lists(texts(), max_size=2)) if draw(st.booleans()) else [],
    )


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts())
def test_generated_texts_same_findings(t: str) -> None:
    _check_text(t)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.booleans())
def test_generated_requests_same_classification(req: CanonicalRequest, hp: bool) -> None:
    _check_request(req, header_private=hp)


@settings(max_examples=600, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_unicode_same_findings(t: str) -> None:
    _check_text(t)


# --------------------------------------------------------------------------- (c) bench


_PARA = (
    "Please review the following notes and tell me which parts are unclear. "
    "The service reads its settings at start, then answers requests in order. "
)


@pytest.mark.parametrize("size", [0, 1024, 32 * 1024, 512 * 1024])
def test_bench_prompts_same_classification(size: int) -> None:
    t = ("Say hello to the benchmark in one short sentence." if size == 0
         else (_PARA * (size // len(_PARA) + 1))[:size])
    _check_text(t)
    # the same prompt with a secret at either end, and split over two messages
    for variant in (t + " password=hunter2x", "alice@corp.io " + t, t + "\n```py\nx = 1\n```"):
        _check_request(_chat(variant))
    half = len(t) // 2
    _check_request(CanonicalRequest(surface="chat", system="be brief #no_cloud", messages=[
        Message("user", [Part("text", t[:half]), Part("text", t[half:])])]))


@pytest.mark.parametrize("size", [5999, 6000, 6001, 7999, 8000, 8001, 8002, 9000])
def test_window_and_sample_edges_same_classification(size: int) -> None:
    # one line of prose (no newline, no code mark) around the cue window and the code
    # sample, where analyze_code's one-prose-line shortcut stops applying
    line = ("word " * size)[:size]
    _check_text(line)
    _check_text(line[:-5] + "a{b}c")


def test_translation_tables_map_every_character_as_before() -> None:
    # the string tables replace str.maketrans dicts; translate every code point at once
    every = "".join(map(chr, range(0x110000)))
    for new, ref in ((text._TO_SPACE, old._TO_SPACE), (zones._DIGIT_SHAPE, old._DIGIT_SHAPE),
                     (zones._TOKEN_SHAPE, old._TOKEN_SHAPE)):
        assert every.translate(new) == every.translate(ref)
