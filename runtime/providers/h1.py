"""A small HTTP/1.1 client for plain-``http://`` upstreams (local models), non-streaming.

Why not aiohttp here: a local upstream (Ollama, llama.cpp, vLLM, LM Studio on
loopback or the LAN) answers in milliseconds, and aiohttp's request machinery
cost ~70 µs of the event loop's CPU per request in the benchmark (bench/): as
much as our whole routing decision.  What a JSON request to a local model
needs is small: one keep-alive connection per concurrent request, a request
written in one ``write``, a response read by ``Content-Length`` or chunked
framing.  That is this module, ~10x cheaper per request.

What stays on aiohttp (``providers/base.py``): ``https://`` (TLS, cloud
providers, where a request takes hundreds of milliseconds anyway), streams,
and URLs with credentials in them.

Behaviour, the same as the aiohttp path's (``base.translate`` maps the errors):

* no redirects are followed (a 3xx is an error answer), no proxies are used;
* ``Accept-Encoding: identity`` is asked for; gzip/deflate answers are still
  decoded, any other coding is an error;
* a kept-alive connection idle for more than ``KEEPALIVE_S`` is closed rather
  than reused (servers commonly close theirs after 5 s: llama.cpp, uvicorn), so
  a request rarely meets a connection the server is closing; a GET/HEAD on a
  reused connection dropped before any byte of answer is sent once more on a
  new one, a POST never is (the upstream may have started on it: the fallback
  chain decides, as with aiohttp); any drop is a ``ConnectionResetError``
  ("server disconnected");
* the whole exchange is bounded by ``timeout`` (``TimeoutError``), connecting
  by ``connect_timeout``; a cancelled request closes its connection (it never
  goes back to the pool with an answer still coming).
"""

from __future__ import annotations

import asyncio
import socket
import zlib
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

#: a response head larger than this is refused (aiohttp's line limit is 8 KiB)
MAX_HEAD: Final = 64 * 1024
#: idle keep-alive connections kept per (host, port)
MAX_IDLE: Final = 64
#: seconds an idle connection may be reused (below the usual 5 s server timeouts)
KEEPALIVE_S: Final = 4.0
_REPLAYABLE: Final = frozenset({"GET", "HEAD"})
_CRLF: Final = b"\r\n"
_HEAD_END: Final = b"\r\n\r\n"


#: the message of the ConnectionResetError raised when the server closes mid-answer
DROPPED: Final = "server disconnected"


class ProtocolError(ConnectionError):
    """The upstream's answer is not valid HTTP/1.1 (or uses a coding we refuse)."""


class ConnectFailed(ConnectionError):
    """No connection could be made (refused, unreachable, name not resolved)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed ``http://`` URL: where to connect and what to send."""

    host: str
    port: int
    authority: str  # the Host header
    path: str       # path + query


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes


def target_of(url: str) -> Target | None:
    """The target of a plain-http URL this client handles, else None (use aiohttp)."""
    if not url.startswith("http://"):
        return None
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or not parts.hostname:
        return None
    try:
        port = parts.port or 80
    except ValueError:
        return None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(c in path or c in parts.netloc for c in "\r\n \t"):
        return None
    return Target(parts.hostname, port, parts.netloc, path)


class _Conn(asyncio.Protocol):
    """One connection; reads one answer at a time (no pipelining)."""

    __slots__ = ("transport", "closed", "idle_since", "loop", "_buf", "_waiter", "_status",
                 "_headers", "_length", "_chunked", "_until_close", "_body_at", "_parts",
                 "_keep", "_got", "_no_body")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        #: the loop the connection lives on (a pooled one is never used from another)
        self.loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[Reply] | None = None
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self._status = 0
        self._headers: dict[str, str] | None = None
        self._length = -1
        self._chunked = False
        self._until_close = False
        self._body_at = 0
        self._parts: list[bytes] = []
        self._keep = True
        self._got = False
        self._no_body = False

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self._waiter
        if w is None or w.done():
            return
        if self._headers is not None and self._until_close:
            self._finish(bytes(self._buf[self._body_at:]))
            return
        err = ConnectionResetError(DROPPED)
        err.__cause__ = exc
        w.set_exception(err)

    def data_received(self, data: bytes) -> None:
        w = self._waiter
        if w is None or w.done():
            # bytes nobody asked for: this connection cannot be trusted again
            self._close()
            return
        self._got = True
        self._buf += data
        try:
            self._advance()
        except ProtocolError as exc:
            self._close()
            if not w.done():
                w.set_exception(exc)

    # -- the exchange --------------------------------------------------------------------

    def begin(self, request: bytes, waiter: asyncio.Future[Reply], *, head: bool) -> None:
        self._reset()
        self._no_body = head
        self._waiter = waiter
        assert self.transport is not None
        self.transport.write(request)

    @property
    def fresh_drop(self) -> bool:
        """True when the connection closed before any byte of the answer came."""
        return not self._got

    @property
    def reusable(self) -> bool:
        return self._keep and not self.closed

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._close()

    def _advance(self) -> None:
        if self._headers is None and not self._parse_head():
            return
        buf = self._buf
        if self._chunked:
            self._read_chunks()
        elif self._length >= 0:
            end = self._body_at + self._length
            if len(buf) >= end:
                if len(buf) > end:
                    self._keep = False  # bytes after the answer: do not reuse
                self._finish(bytes(buf[self._body_at:end]))
        # read-until-close: connection_lost completes the answer

    def _parse_head(self) -> bool:
        buf = self._buf
        while True:
            end = buf.find(_HEAD_END)
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolError("response head too large")
                return False
            # one decode of the whole head; latin-1 maps every byte, so nothing fails here
            lines = buf[:end].decode("latin-1").split("\r\n")
            status_line = lines[0]
            if not status_line.startswith("HTTP/1."):
                raise ProtocolError(f"not an HTTP/1.x answer: {status_line[:40]!r}")
            code = status_line[9:12]
            if not (code.isdigit() and code.isascii()):
                raise ProtocolError(f"bad status line: {status_line[:40]!r}")
            status = int(code)
            if 100 <= status < 200 and status != 101:
                del buf[:end + 4]  # an interim answer (100 Continue): the real one follows
                continue
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    raise ProtocolError("malformed header line")
                headers[name.strip().lower()] = value.strip()
            break
        self._status = status
        self._headers = headers
        self._body_at = end + 4
        http10 = status_line.startswith("HTTP/1.0")
        conn = headers.get("connection", "").lower()
        self._keep = ("close" not in conn) and (not http10 or "keep-alive" in conn)
        if self._no_body or status in (204, 304):
            self._length = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            try:
                self._length = int(headers["content-length"])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
            if self._length < 0:
                raise ProtocolError("bad Content-Length")
        else:
            self._until_close = True
            self._keep = False
        return True

    def _read_chunks(self) -> None:
        buf = self._buf
        pos = self._body_at
        while True:
            eol = buf.find(_CRLF, pos)
            if eol < 0:
                break
            size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            if size == 0:
                # trailers (if any) end with an empty line
                end = buf.find(_HEAD_END, eol) if buf[eol:eol + 4] != _HEAD_END else eol
                if end < 0:
                    break
                if len(buf) > end + 4:
                    self._keep = False
                self._finish(b"".join(self._parts))
                return
            start = eol + 2
            if len(buf) < start + size + 2:
                break
            if buf[start + size:start + size + 2] != _CRLF:
                raise ProtocolError("chunk not terminated by CRLF")
            self._parts.append(bytes(buf[start:start + size]))
            pos = start + size + 2
        # keep only what is not consumed yet
        del buf[:pos]
        self._body_at = 0

    def _finish(self, body: bytes) -> None:
        w = self._waiter
        assert self._headers is not None
        if w is not None and not w.done():
            w.set_result(Reply(self._status, self._headers, body))


class H1Client:
    """Keep-alive pools per (host, port); one request per connection at a time."""

    def __init__(self, *, max_idle: int = MAX_IDLE, keepalive_s: float = KEEPALIVE_S) -> None:
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._max_idle = max_idle
        self._keepalive_s = keepalive_s
        self._targets: dict[str, Target | None] = {}

    def target(self, url: str) -> Target | None:
        """``target_of(url)``, cached (a provider has a handful of URLs)."""
        try:
            return self._targets[url]
        except KeyError:
            pass
        if len(self._targets) > 1024:
            self._targets.clear()
        t = self._targets[url] = target_of(url)
        return t

    def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.abort()
        self._idle.clear()

    async def request(
        self, method: str, target: Target, headers: dict[str, str], body: bytes | None, *,
        timeout: float, connect_timeout: float,
    ) -> Reply:
        """Send one request and read the whole answer (any status)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wire = _encode(method, target, headers, body)
        key = (target.host, target.port)
        replayable = method in _REPLAYABLE
        for _ in range(2):
            conn, reused = self._pooled(key, loop), True
            if conn is None:
                reused = False
                conn = await _connect(loop, target, min(connect_timeout, timeout),
                                      deadline)
            waiter: asyncio.Future[Reply] = loop.create_future()
            timer = loop.call_at(deadline, _expire, waiter)
            ok = False
            try:
                conn.begin(wire, waiter, head=method == "HEAD")
                reply = await waiter
                ok = True
            except ConnectionResetError:
                if replayable and reused and conn.fresh_drop and loop.time() < deadline:
                    continue  # a stale keep-alive connection: once more on a new one
                raise
            finally:
                timer.cancel()
                if ok and conn.reusable:
                    conn.idle_since = loop.time()
                    self._release(key, conn)
                else:
                    conn.abort()
            return _decoded(reply)
        raise ConnectionResetError(DROPPED)  # pragma: no cover - the loop returns

    def _pooled(self, key: tuple[str, int], loop: asyncio.AbstractEventLoop) -> _Conn | None:
        conns = self._idle.get(key)
        now = loop.time()
        while conns:
            c = conns.pop()  # the most recently used first
            if c.closed:
                continue
            if c.loop is not loop:  # left by an event loop that has ended (tests, CLI)
                if not c.loop.is_closed():
                    c.abort()
                continue
            if now - c.idle_since > self._keepalive_s:
                c.abort()  # the rest are older still
                for old in conns:
                    old.abort()
                conns.clear()
                return None
            return c
        return None

    def _release(self, key: tuple[str, int], conn: _Conn) -> None:
        conns = self._idle.setdefault(key, [])
        if len(conns) < self._max_idle:
            conns.append(conn)
        else:
            conn.abort()


def _expire(waiter: asyncio.Future[Reply]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _connect(loop: asyncio.AbstractEventLoop, target: Target, connect_timeout: float,
                   deadline: float) -> _Conn:
    limit = max(0.0, min(connect_timeout, deadline - loop.time()))
    try:
        async with asyncio.timeout(limit):
            sock = await _open_socket(loop, target)
            _transport, conn = await loop.create_connection(_Conn, sock=sock)
    except TimeoutError:
        raise TimeoutError(f"connecting to {target.authority} timed out") from None
    except OSError as exc:
        raise ConnectFailed(f"{target.authority}: {exc.strerror or exc}") from exc
    return conn


async def _open_socket(loop: asyncio.AbstractEventLoop, target: Target) -> socket.socket:
    """A connected socket to the first address of ``target`` that accepts.

    The connect goes through Python's ``socket.connect`` (``loop.sock_connect``),
    not the event loop's native one, so that audit hooks see it (the test suite's
    loopback guard, or any deployment that audits outbound connections).
    """
    infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM,
                                   proto=socket.IPPROTO_TCP)
    last: OSError | None = None
    for family, kind, proto, _name, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, addr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
        except BaseException:
            sock.close()
            raise
    raise last or OSError(f"no address for {target.host}")


def _encode(method: str, target: Target, headers: dict[str, str], body: bytes | None) -> bytes:
    parts = [f"{method} {target.path} HTTP/1.1\r\nHost: {target.authority}\r\n"
             "Accept: */*\r\nAccept-Encoding: identity\r\n"]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise ValueError(f"invalid character in header {name!r}")
        parts.append(f"{name}: {value}\r\n")
    if body is not None:
        parts.append(f"Content-Length: {len(body)}\r\n\r\n")
        head = "".join(parts).encode("utf-8")
        return head + body
    parts.append("Content-Length: 0\r\n\r\n" if method in ("POST", "PUT", "PATCH") else "\r\n")
    return "".join(parts).encode("utf-8")


def _decoded(reply: Reply) -> Reply:
    coding = reply.headers.get("content-encoding")
    if not coding or coding.lower() == "identity" or not reply.body:
        return reply
    c = coding.lower()
    try:
        if c in ("gzip", "x-gzip"):
            body = zlib.decompress(reply.body, 16 + zlib.MAX_WBITS)
        elif c == "deflate":
            try:
                body = zlib.decompress(reply.body)
            except zlib.error:
                body = zlib.decompress(reply.body, -zlib.MAX_WBITS)  # raw deflate
        else:
            raise ProtocolError(f"unsupported Content-Encoding {coding!r}")
    except zlib.error as exc:
        raise ProtocolError(f"cannot decode {coding} body: {exc}") from None
    return Reply(reply.status, reply.headers, body)
