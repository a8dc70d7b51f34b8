"""SSE and NDJSON framing: fixed cases and re-chunking at arbitrary boundaries."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.runtime.sse import (
    DONE_EVENT,
    NDJSONSplitter,
    SSEEvent,
    SSEParser,
    encode_data,
    encode_event,
)


def parse_all(chunks: list[bytes]) -> list[SSEEvent]:
    p = SSEParser()
    out: list[SSEEvent] = []
    for c in chunks:
        out += p.feed(c)
    return out + p.close()


def rechunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, prev = [], 0
    for p in points:
        pieces.append(data[prev:p])
        prev = p
    pieces.append(data[prev:])
    return pieces


def test_basic_events_and_done() -> None:
    body = b'data: {"a":1}\n\ndata: [DONE]\n\n'
    evs = parse_all([body])
    assert [e.data for e in evs] == ['{"a":1}', "[DONE]"]
    assert all(e.event == "message" for e in evs)


def test_multiline_data_comments_event_id_retry() -> None:
    body = (b": keep-alive\r\nevent: message_start\r\nid: 7\r\nretry: 1500\r\n"
            b"data: line1\r\ndata:line2\r\ndata\r\n\r\n")
    (ev,) = parse_all([body])
    assert ev.event == "message_start"
    assert ev.data == "line1\nline2\n"
    assert ev.id == "7" and ev.retry == 1500


def test_event_without_data_is_not_dispatched_and_resets_type() -> None:
    evs = parse_all([b"event: ping\n\ndata: x\n\n"])
    assert [(e.event, e.data) for e in evs] == [("message", "x")]


def test_cr_only_line_endings() -> None:
    evs = parse_all([b"data: a\r\rdata: b\r\r"])
    assert [e.data for e in evs] == ["a", "b"]


def test_crlf_split_between_chunks_is_one_line_ending() -> None:
    # "\r" ends one chunk and "\n" starts the next: one line ending, not a blank line
    evs = parse_all([b"data: a\r", b"\ndata: b\r\n\r\n"])
    assert [e.data for e in evs] == ["a\nb"]


def test_utf8_split_inside_character() -> None:
    body = "data: héllo wörld 日本\n\n".encode()
    cut = body.index("日".encode()) + 1
    (ev,) = parse_all([body[:cut], body[cut:]])
    assert ev.data == "héllo wörld 日本"


def test_unterminated_last_event_is_returned_by_close() -> None:
    p = SSEParser()
    assert p.feed(b"data: tail") == []
    assert [e.data for e in p.close()] == ["tail"]


def test_encode_event_roundtrip_multiline() -> None:
    raw = encode_event("a\nb", event="x", id="1")
    assert raw == b"event: x\nid: 1\ndata: a\ndata: b\n\n"
    (ev,) = parse_all([raw])
    assert (ev.event, ev.data, ev.id) == ("x", "a\nb", "1")
    assert encode_data(b'{"k":1}') == b'data: {"k":1}\n\n'
    assert parse_all([DONE_EVENT])[0].data == "[DONE]"


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                        blacklist_characters="\r\n"), max_size=30)
_events = st.lists(st.tuples(st.sampled_from(["message", "x", "content_block_delta"]),
                             st.lists(_text, min_size=1, max_size=3)), min_size=1, max_size=8)
_eol = st.sampled_from([b"\n", b"\r\n", b"\r"])


@settings(max_examples=300, deadline=None)
@given(_events, _eol, st.lists(st.integers(min_value=0, max_value=10_000), max_size=20))
def test_rechunking_anywhere_gives_the_same_events(
    events: list[tuple[str, list[str]]], eol: bytes, cuts: list[int],
) -> None:
    body = b""
    for name, lines in events:
        body += b": comment" + eol + b"event: " + name.encode() + eol
        body += b"".join(b"data: " + ln.encode() + eol for ln in lines) + eol
    whole = parse_all([body])
    expected = [(n, "\n".join(lines)) for n, lines in events]
    assert [(e.event, e.data) for e in whole] == expected
    pieces = rechunk(body, cuts)
    assert [(e.event, e.data) for e in parse_all(pieces)] == expected
    # byte by byte: every boundary, including inside UTF-8 and between \r and \n
    assert [(e.event, e.data) for e in parse_all([bytes([b]) for b in body])] == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3),
                min_size=1, max_size=6),
       st.lists(st.integers(min_value=0, max_value=5000), max_size=15), st.booleans())
def test_ndjson_rechunking(objs: list[dict[str, str]], cuts: list[int], crlf: bool) -> None:
    sep = b"\r\n" if crlf else b"\n"
    body = sep.join(orjson.dumps(o) for o in objs) + sep
    s = NDJSONSplitter()
    lines: list[bytes] = []
    for piece in rechunk(body, cuts):
        lines += s.feed(piece)
    lines += s.close()
    assert [orjson.loads(x) for x in lines] == objs


def test_ndjson_last_line_without_newline_and_blank_lines() -> None:
    s = NDJSONSplitter()
    assert s.feed(b'{"a":1}\n\n{"b"') == [b'{"a":1}']
    assert s.feed(b":2}") == []
    assert s.close() == [b'{"b":2}']
