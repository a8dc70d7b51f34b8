"""``Idempotency-Key``: one upstream call for duplicate requests, the same answer to all.

A ``POST`` that carries ``Idempotency-Key`` is fingerprinted (sha256 of method,
path and body) under its key, scoped by the client's API key name when auth is on:

* the first request with that key runs normally, and its complete answer (status,
  headers, body) is recorded;
* a duplicate that arrives while the first is in flight waits for it and gets
  the very same status, headers and body - no second upstream call;
* a duplicate that arrives later, within ``server.idempotency.ttl_s``, gets the
  recorded answer;
* the same key with a different body (or path) is a 422 ``idempotency_key_reused``.

Answers with a 5xx status (and 408/409/429) are handed to the requests already
waiting but not kept: a later retry with the same key runs again.  Answers larger
than ``max_response_bytes`` are not kept either.  If the first request ends without
an answer (its client went away, which cancels the upstream call), the waiting
duplicates run it themselves.  The cache holds at most ``max_entries`` answers
(least recently used dropped first) and is per worker process.

Streams (``"stream": true``) are not deduplicated: the key is ignored and each
request streams its own answer (a recorded SSE stream would replay a finished
conversation as if it were live, and holding every chunk in memory is not
bounded).  Anything but a JSON object body is passed through too (the app
answers it with a 400).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from interlock.runtime.asgi_types import ASGIApp, Message, Receive, Scope, Send
from interlock.runtime.auth import PRINCIPAL
from interlock.runtime.bodies import ClientDisconnected, read_body
from interlock.runtime.errors import RequestError
from interlock.runtime.table import IdempotencyDefaults

_HEADER = b"idempotency-key"
_NOT_KEPT = frozenset({408, 409, 429})
MAX_KEY_LEN = 255


@dataclass(frozen=True, slots=True)
class Recorded:
    """A complete answer, replayable byte for byte."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@dataclass(slots=True)
class Entry:
    fingerprint: bytes
    expires: float
    #: resolved with the answer, or with None when the first request gave none
    done: asyncio.Future[Recorded | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    answer: Recorded | None = None


class IdempotencyCache:
    """``state.idempotency``: bounded, with a TTL, one per worker."""

    def __init__(self, settings: IdempotencyDefaults,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self.upstream_runs = 0
        self.replays = 0

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self, key: tuple[str, str], fingerprint: bytes) -> tuple[str, Entry | None]:
        """``("run", entry)`` for the first request, ``("wait", entry)`` for a
        duplicate (await ``entry.done``), ``("conflict", None)`` for a reused key."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry.done.done() and entry.answer is None:
            entry = None  # a finished entry without a kept answer: forget it
        if entry is not None and entry.done.done() and entry.expires <= now:
            entry = None
        if entry is not None:
            if entry.fingerprint != fingerprint:
                return "conflict", None
            self._entries.move_to_end(key)
            return "wait", entry
        entry = Entry(fingerprint, now + self.settings.ttl_s)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._evict(now)
        self.upstream_runs += 1
        return "run", entry

    def finish(self, key: tuple[str, str], entry: Entry, answer: Recorded | None) -> None:
        """The first request ended: hand ``answer`` to the waiters; keep it if allowed."""
        keep = (answer is not None and answer.status < 500 and answer.status not in _NOT_KEPT
                and len(answer.body) <= self.settings.max_response_bytes)
        if keep:
            entry.answer = answer
            entry.expires = self._clock() + self.settings.ttl_s
        elif self._entries.get(key) is entry:
            del self._entries[key]
        if not entry.done.done():
            entry.done.set_result(answer)

    def _evict(self, now: float) -> None:
        # drop expired and least recently used finished answers; never one in flight
        over = len(self._entries) - self.settings.max_entries
        for k in list(self._entries):
            e = self._entries[k]
            if not e.done.done():
                continue
            if e.expires <= now or over > 0:
                del self._entries[k]
                over -= 1
            elif over <= 0:
                break


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    h = hashlib.sha256()
    h.update(method.encode())
    h.update(b"\0")
    h.update(path.encode())
    h.update(b"\0")
    h.update(body)
    return h.digest()


def idempotency_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's ``Idempotency-Key`` (first wins), or None."""
    for name, value in headers:
        if name == _HEADER:
            return bytes(value).decode("latin-1")
    return None


def _is_stream(body: bytes) -> bool:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True  # not ours to judge: the app answers it with a 400
    return not isinstance(data, dict) or data.get("stream") is True


async def serve_idempotent(app: ASGIApp, scope: Scope, receive: Receive, send: Send,
                           cache: IdempotencyCache, key: str, max_body: int) -> None:
    """Serve a ``POST`` that carries ``Idempotency-Key: key`` (see module doc).

    The gate (``guard.py``) calls this instead of ``app`` for such a request."""
    from interlock.runtime.guard import refuse

    if not key or len(key) > MAX_KEY_LEN or not key.isprintable():
        await refuse(scope, send, 400, f"Idempotency-Key must be 1 to {MAX_KEY_LEN} "
                     "printable characters", "invalid_idempotency_key")
        return
    try:
        body = await read_body(receive, max_body, _content_length(scope))
    except ClientDisconnected:
        return
    except RequestError as exc:
        await refuse(scope, send, exc.status, exc.message, exc.code or "invalid_request")
        return
    replay = _replaying(body, receive)
    if _is_stream(body):
        await app(scope, replay, send)
        return
    principal = scope.get(PRINCIPAL)
    ckey = (getattr(principal, "name", "-"), key)
    fp = fingerprint(scope["method"], scope["path"], body)
    while True:
        verdict, entry = cache.begin(ckey, fp)
        if verdict == "conflict" or entry is None:
            await refuse(scope, send, 422, "this Idempotency-Key was already used with a "
                         "different request body; use a new key for a new request",
                         "idempotency_key_reused")
            return
        if verdict == "run":
            await _run(app, scope, replay, send, cache, ckey, entry)
            return
        answer = await asyncio.shield(entry.done)
        if answer is not None:
            cache.replays += 1
            await _send_recorded(send, answer)
            return
        # the first request ended without an answer: run it ourselves


async def _run(app: ASGIApp, scope: Scope, receive: Receive, send: Send,
               cache: IdempotencyCache, ckey: tuple[str, str], entry: Entry) -> None:
    capture = _Capture(send)
    try:
        await app(scope, receive, capture)
    finally:
        cache.finish(ckey, entry, capture.recorded())


class _Capture:
    """Passes messages through to the client and keeps a copy of a complete answer."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0
        self.headers: tuple[tuple[bytes, bytes], ...] = ()
        self.chunks: list[bytes] = []
        self.complete = False

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = int(message["status"])
            self.headers = tuple((bytes(n), bytes(v)) for n, v in message.get("headers", ()))
        elif kind == "http.response.body":
            self.chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self.complete = True
        await self._send(message)

    def recorded(self) -> Recorded | None:
        if not self.complete or not self.status:
            return None
        return Recorded(self.status, self.headers, b"".join(self.chunks))


async def _send_recorded(send: Send, answer: Recorded) -> None:
    await send({"type": "http.response.start", "status": answer.status,
                "headers": list(answer.headers)})
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then the client's own messages
    (so the app still sees ``http.disconnect``)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
