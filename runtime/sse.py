"""Server-sent events and NDJSON framing: incremental parsers and an encoder.

Upstream bodies arrive in arbitrary pieces: a chunk boundary may fall inside a
UTF-8 character, between the ``\\r`` and ``\\n`` of a line ending, or in the middle
of a ``data:`` line.  Both parsers buffer *bytes* and decode only complete lines
(line terminators are ASCII, so a complete line never ends inside a multi-byte
character), which makes the events they return independent of how the body was
chunked.

The SSE parser follows the WHATWG event-stream rules that matter for LLM APIs:
lines end with ``\\r\\n``, ``\\r`` or ``\\n``; a blank line dispatches the event;
``data`` lines of one event are joined with ``\\n``; a line starting with ``:`` is
a comment; one space after the colon is dropped; an event with no ``data`` line is
not dispatched.  ``[DONE]`` is ordinary data here; callers compare ``event.data``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_LINE_SPLIT: Final = re.compile(rb"\r\n|\r|\n")
DONE: Final = "[DONE]"


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event.  ``event`` is "message" when the stream named none."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Bytes in, events out.  ``feed`` as chunks arrive, ``close`` at end of body."""

    __slots__ = ("_rest", "_skip_lf", "_data", "_event", "_id", "_retry")

    def __init__(self) -> None:
        self._rest = b""
        self._skip_lf = False  # the previous chunk ended with "\r": a leading "\n" is its pair
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse one piece of the body; return the events it completed."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._rest + chunk if self._rest else chunk
        if not buf:
            return []
        # "\n"-only streams (nearly all of them) avoid the regex.
        lines = _LINE_SPLIT.split(buf) if b"\r" in buf else buf.split(b"\n")
        self._rest = lines.pop()
        if not self._rest and buf[-1:] == b"\r":
            self._skip_lf = True
        out: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    out.append(self._dispatch())
                else:
                    self._event = ""
                continue
            self._line(line)
        return out

    def close(self) -> list[SSEEvent]:
        """End of body: an unterminated last event is still returned (lenient).

        The standard discards it, but upstreams that omit the final blank line
        would then lose their last chunk; returning it is the safer choice for a
        proxy.
        """
        if self._rest:
            self._line(self._rest)
            self._rest = b""
        self._skip_lf = False
        return [self._dispatch()] if self._data else []

    def _line(self, line: bytes) -> None:
        if line[:5] == b"data:":
            raw = line[6:] if line[5:6] == b" " else line[5:]
            self._data.append(raw.decode("utf-8", "replace"))
            return
        if line[:1] == b":":
            return  # comment / keep-alive
        text = line.decode("utf-8", "replace")
        name, sep, value = text.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":  # "data" with no colon: an empty data line
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)

    def _dispatch(self) -> SSEEvent:
        data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
        ev = SSEEvent(data, self._event or "message", self._id, self._retry)
        self._data = []
        self._event = ""
        return ev


def encode_event(data: bytes | str, *, event: str | None = None, id: str | None = None) -> bytes:
    """One SSE event as bytes.  Data containing newlines becomes several data lines."""
    raw = data.encode() if isinstance(data, str) else data
    head = b""
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    if id is not None:
        head += b"id: " + id.encode() + b"\n"
    if b"\n" not in raw and b"\r" not in raw:
        return head + b"data: " + raw + b"\n\n"
    body = b"".join(b"data: " + part + b"\n" for part in _LINE_SPLIT.split(raw))
    return head + body + b"\n"


def encode_data(data: bytes) -> bytes:
    """The hot-path form: one ``data:`` line (``data`` must hold no line break;
    orjson output never does)."""
    return b"data: " + data + b"\n\n"


DONE_EVENT: Final = b"data: [DONE]\n\n"


class NDJSONSplitter:
    """Newline-delimited JSON framing (Ollama): bytes in, complete lines out.

    Blank lines are skipped and a trailing ``\\r`` is removed; the lines are
    returned as bytes, ready for ``orjson.loads``.
    """

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._rest + chunk if self._rest else chunk
        if b"\n" not in buf:
            self._rest = buf
            return []
        lines = buf.split(b"\n")
        self._rest = lines.pop()
        return [s for s in (ln.rstrip(b"\r") for ln in lines) if s.strip()]

    def close(self) -> list[bytes]:
        """End of body: the last line if it had no terminating newline."""
        rest, self._rest = self._rest.strip(), b""
        return [rest] if rest else []
