"""The fused gate (``guard.Gate``) answers exactly as the old middleware stack did.

The old stack - six middleware classes, ``ShouldRetry`` wrapping ``send`` for
every request - is kept here (its ``__call__`` bodies verbatim, on the same
building blocks) and both run the same request sequences against identically
built states: header limits, egress headers, client keys and scopes, rate limits,
Idempotency-Key (replay, conflict, bad keys, 413, streams), error answers of the
app (x-should-retry true/false, 503 before the table is loaded) and the
principal left in the scope.  Every message sent must be identical, byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from interlock.runtime import guard
from interlock.runtime.auth import OPEN_PATHS, OPEN_PREFIXES, PRINCIPAL, KeyRing, Principal
from interlock.runtime.auth import presented_key as _presented_key
from interlock.runtime.bodies import ClientDisconnected, read_body
from interlock.runtime.egress import forbidden_header
from interlock.runtime.errors import RequestError
from interlock.runtime.idempotency import (
    MAX_KEY_LEN,
    IdempotencyCache,
    _Capture,
    _content_length,
    _is_stream,
    _replaying,
    _send_recorded,
    fingerprint,
)
from interlock.runtime.limits import RateLimiter
from interlock.runtime.responses import send_bytes
from interlock.runtime.table import ClientKey, IdempotencyDefaults, LimitDefaults

Msg = dict[str, Any]

# -- the old stack (before the gate), on the same building blocks ------------------------

_SHOULD_RETRY = b"x-should-retry"
_PRIVATE_HEADER = (b"x-router-private", b"true")


def _old_headers_too_large(headers: list[tuple[bytes, bytes]],
                           limits: LimitDefaults) -> str | None:
    if len(headers) > limits.max_headers:
        return (f"too many request header fields ({len(headers)}; "
                f"the limit is {limits.max_headers})")
    size = 0
    for name, value in headers:
        size += len(name) + len(value) + 4
    if size > limits.max_header_bytes:
        return (f"request header fields are too large ({size} bytes; "
                f"the limit is {limits.max_header_bytes})")
    return None


async def _old_refuse(scope: Any, send: Any, status: int, message: str, code: str,
                      extra: Any = None) -> None:
    from interlock.runtime.surfaces.shapes import shape_for_path

    status, body = shape_for_path(scope.get("path", "")).body(status, message, code=code)
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def old_stack(app: Any) -> Any:
    async def should_retry(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await header_limit(scope, receive, send)
            return

        async def stamped(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                headers = list(message.get("headers", ()))
                if not any(n.lower() == _SHOULD_RETRY for n, _ in headers):
                    status = message["status"]
                    retry = status in (408, 429) or (status == 503 and app.state is None)
                    headers.append((_SHOULD_RETRY, b"true" if retry else b"false"))
                    message = {**message, "headers": headers}
            await send(message)

        await header_limit(scope, receive, stamped)

    async def header_limit(scope: Any, receive: Any, send: Any) -> None:
        limits = (app.state.limits.settings if app.state is not None else None) \
            if scope["type"] == "http" else None
        if limits is not None:
            why = _old_headers_too_large(scope["headers"], limits)
            if why is not None:
                await _old_refuse(scope, send, 431, why, "request_header_fields_too_large")
                return
        await egress(scope, receive, send)

    async def egress(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            name = forbidden_header(scope["headers"])  # proven equal: test_gate_perf_egress
            if name is not None:
                await _old_refuse(scope, send, 400,
                                  f"header '{name}' is not accepted: clients cannot choose "
                                  "the upstream URL or key", "egress_not_allowed")
                return
        await auth(scope, receive, send)

    async def auth(scope: Any, receive: Any, send: Any) -> None:
        ring = (app.state.auth if app.state is not None else None) \
            if scope["type"] == "http" else None
        if (ring is None or not ring.enabled or scope["path"] in OPEN_PATHS
                or scope["path"].startswith(OPEN_PREFIXES)):
            await rate(scope, receive, send)
            return
        principal = ring.authenticate(_presented_key(scope["headers"]))
        if principal is None:
            await _old_refuse(scope, send, 401, "missing or invalid API key: send it as "
                              "'Authorization: Bearer <key>' or 'x-api-key: <key>'",
                              "invalid_api_key",
                              [(b"www-authenticate", b'Bearer realm="interlock"')])
            return
        profile = app.state.table.profile if app.state is not None else None
        if profile is not None and not principal.allows_profile(profile):
            await _old_refuse(scope, send, 403,
                              f"this API key may not use profile {profile!r}",
                              "profile_not_allowed")
            return
        scope[PRINCIPAL] = principal
        if principal.private_only:
            scope["headers"] = [*scope["headers"], _PRIVATE_HEADER]
        await rate(scope, receive, send)

    async def rate(scope: Any, receive: Any, send: Any) -> None:
        principal = scope.get(PRINCIPAL) if scope["type"] == "http" else None
        limiter = (app.state.limits.rates if app.state is not None else None) \
            if principal is not None else None
        if limiter is not None and isinstance(principal, Principal):
            wait = limiter.check(principal)
            if wait > 0.0:
                seconds = max(1, math.ceil(wait))
                await _old_refuse(scope, send, 429,
                                  f"rate limit of {principal.rpm} requests per minute "
                                  f"reached for API key {principal.name!r}; retry in "
                                  f"{seconds}s", "rate_limit_exceeded",
                                  [(b"retry-after", str(seconds).encode())])
                return
        await idempotency(scope, receive, send)

    async def idempotency(scope: Any, receive: Any, send: Any) -> None:
        cache = (app.state.idempotency if app.state is not None else None) \
            if scope["type"] == "http" and scope["method"] == "POST" else None
        key = None
        if cache is not None:
            for name, value in scope["headers"]:
                if name == b"idempotency-key":
                    key = bytes(value).decode("latin-1")
                    break
        if cache is None or key is None:
            await app(scope, receive, send)
            return
        if not key or len(key) > MAX_KEY_LEN or not key.isprintable():
            await _old_refuse(scope, send, 400, f"Idempotency-Key must be 1 to {MAX_KEY_LEN} "
                              "printable characters", "invalid_idempotency_key")
            return
        max_body = app.state.table.server.max_body_bytes if app.state is not None else 0
        try:
            body = await read_body(receive, max_body, _content_length(scope))
        except ClientDisconnected:
            return
        except RequestError as exc:
            await _old_refuse(scope, send, exc.status, exc.message,
                              exc.code or "invalid_request")
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
                await _old_refuse(scope, send, 422, "this Idempotency-Key was already used "
                                  "with a different request body; use a new key for a new "
                                  "request", "idempotency_key_reused")
                return
            if verdict == "run":
                capture = _Capture(send)
                try:
                    await app(scope, replay, capture)
                finally:
                    cache.finish(ckey, entry, capture.recorded())
                return
            answer = await asyncio.shield(entry.done)
            if answer is not None:
                cache.replays += 1
                await _send_recorded(send, answer)
                return

    return should_retry


# -- a stand-in for InterlockApp: answers with send_bytes, as the real app does ------------


class FakeApp:
    def __init__(self, state: Any) -> None:
        self.state = state
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await send({"type": "lifespan.startup.complete"})

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        if self.state is None:
            await send_bytes(send, 503, b'{"error":"not ready"}', [(b"x-router-table", b"-")])
            return
        raw = await read_body(receive, 10_000)
        body = orjson.loads(raw) if raw else {}
        if not isinstance(body, dict):
            await send_bytes(send, 400, b'{"error":"not an object"}', [])
            return
        status = int(body.get("status", 200))
        extra = [(b"x-should-retry", b"maybe")] if body.get("own_header") else []
        out = orjson.dumps({"n": self.calls, "seen": scope.get(PRINCIPAL) is not None,
                            "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]]})
        await send_bytes(send, status, out, [(b"x-router-table", b"t"), *extra])


def _state(ready: bool = True, *, auth: bool = True, rpm: int = 2) -> Any:
    if not ready:
        return None
    now = [1000.0]
    keys = [ClientKey(name="k1", sha256=hashlib.sha256(b"secret-1").hexdigest(), rpm=rpm),
            ClientKey(name="k2", sha256=hashlib.sha256(b"secret-2").hexdigest(),
                      profiles=["other"]),
            ClientKey(name="k3", sha256=hashlib.sha256(b"secret-3").hexdigest(),
                      private_only=True)] if auth else []
    return SimpleNamespace(
        limits=SimpleNamespace(settings=LimitDefaults(max_headers=8, max_header_bytes=400),
                               rates=RateLimiter(lambda: now[0])),
        auth=KeyRing(keys, {}),
        idempotency=IdempotencyCache(IdempotencyDefaults(), clock=lambda: now[0]),
        table=SimpleNamespace(profile="balanced",
                              server=SimpleNamespace(max_body_bytes=300)),
    )


def _request(path: str = "/v1/chat/completions", *, method: str = "POST",
             headers: list[tuple[bytes, bytes]] | None = None, body: Any = None,
             key: bytes | None = b"secret-1", disconnect: bool = False
             ) -> tuple[dict[str, Any], Callable[[], Any], bytes]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body or {"model": "auto"})
    hdrs = [(b"host", b"x"), (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode())]
    if key is not None:
        hdrs.append((b"authorization", b"Bearer " + key))
    hdrs.extend(headers or [])
    scope = {"type": "http", "method": method, "path": path, "headers": hdrs}
    return scope, (lambda: disconnect), raw


async def _run(entry: Any, scope: dict[str, Any], raw: bytes, disconnect: bool) -> list[Msg]:
    sent: list[Msg] = []
    given = [False]

    async def receive() -> Msg:
        if disconnect:
            return {"type": "http.disconnect"}
        if not given[0]:
            given[0] = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Msg) -> None:
        sent.append({**message, "headers": list(message["headers"])}
                    if "headers" in message else dict(message))

    await entry(scope, receive, send)
    return sent


SEQUENCES: dict[str, list[Any]] = {
    "plain and errors": [
        _request(), _request(body={"status": 400}), _request(body={"status": 404}),
        _request(body={"status": 408}), _request(body={"status": 429}),
        _request(body={"status": 500}), _request(body={"status": 503}),
        _request(body={"status": 502, "own_header": True}),
        _request(path="/v1/messages", body={"status": 422}),
    ],
    "header limits": [
        _request(headers=[(b"x-f%d" % i, b"1") for i in range(6)]),
        _request(headers=[(b"x-big", b"y" * 400)]),
        _request(path="/v1/messages", headers=[(b"x-big", b"y" * 400)]),
        _request(path="/api/chat", headers=[(b"x-f%d" % i, b"1") for i in range(6)]),
        _request(headers=[(b"x-f%d" % i, b"1") for i in range(6)], key=b"wrong"),
    ],
    "egress headers": [
        _request(headers=[(b"openai-base-url", b"http://evil")]),
        _request(headers=[(b"x-provider-api-key", b"k")], key=None),
        _request(path="/v1/messages", headers=[(b"x-router-upstream", b"u")]),
        _request(headers=[(b"x-api-key", b"secret-1")], key=None),
    ],
    "auth and scopes": [
        _request(key=None), _request(key=b"wrong"), _request(key=b"secret-2"),
        _request(key=b"secret-3"), _request(path="/healthz", method="GET", key=None),
        _request(path="/ui/app.js", method="GET", key=None),
        _request(path="/v1/messages", key=None), _request(path="/api/chat", key=b"nope"),
        _request(key=None, headers=[(b"x-api-key", b"secret-3")]),
    ],
    "rate limits": [_request(), _request(), _request(), _request(path="/v1/messages"),
                    _request(key=b"secret-3"), _request()],
    "idempotency": [
        _request(headers=[(b"idempotency-key", b"a")], body={"model": "m", "x": 1}),
        _request(headers=[(b"idempotency-key", b"a")], body={"model": "m", "x": 1}),
        _request(headers=[(b"idempotency-key", b"a")], body={"model": "m", "x": 2}),
        _request(headers=[(b"idempotency-key", b"")]),
        _request(headers=[(b"idempotency-key", b"\x01bad")]),
        _request(headers=[(b"idempotency-key", b"k" * 300)]),
        _request(headers=[(b"idempotency-key", b"s")], body={"stream": True}),
        _request(headers=[(b"idempotency-key", b"s")], body={"stream": True}),
        _request(headers=[(b"idempotency-key", b"big")], body=b"{" + b" " * 400 + b"}"),
        _request(headers=[(b"idempotency-key", b"e")], body={"status": 400}),
        _request(headers=[(b"idempotency-key", b"e")], body={"status": 400}),
        _request(headers=[(b"idempotency-key", b"f")], body={"status": 500}),
        _request(headers=[(b"idempotency-key", b"f")], body={"status": 500}),
        _request(headers=[(b"idempotency-key", b"g")], body=b"[1]"),
        _request(method="GET", headers=[(b"idempotency-key", b"a")]),
        _request(headers=[(b"idempotency-key", b"d")], disconnect=True),
    ],
}


async def _compare(name: str, ready: bool, auth: bool) -> None:
    old_app, new_app = FakeApp(_state(ready, auth=auth)), FakeApp(_state(ready, auth=auth))
    old, new = old_stack(old_app), guard.secure(new_app)  # type: ignore[arg-type]
    for scope, disconnect, raw in SEQUENCES[name]:
        s_old, s_new = {**scope, "headers": list(scope["headers"])}, \
            {**scope, "headers": list(scope["headers"])}
        got_old = await _run(old, s_old, raw, disconnect())
        got_new = await _run(new, s_new, raw, disconnect())
        assert got_new == got_old, (name, scope["path"], scope["headers"])
        assert s_new == s_old
    assert new_app.calls == old_app.calls


@pytest.mark.parametrize("name", sorted(SEQUENCES))
@pytest.mark.parametrize(("ready", "auth"), [(True, True), (True, False), (False, False)],
                         ids=["keys", "no-keys", "not-ready"])
def test_the_gate_answers_as_the_old_stack(name: str, ready: bool, auth: bool) -> None:
    asyncio.run(_compare(name, ready, auth))


def test_concurrent_duplicates_get_the_first_answer_through_the_gate() -> None:
    async def go() -> None:
        app = FakeApp(_state(auth=False))
        gate = guard.secure(app)  # type: ignore[arg-type]
        reqs = [_request(headers=[(b"idempotency-key", b"c")], body={"model": "m"})
                for _ in range(5)]
        answers = await asyncio.gather(*(_run(gate, s, raw, False) for s, _, raw in reqs))
        assert app.calls == 1
        assert all(a == answers[0] for a in answers)

    asyncio.run(go())


def test_lifespan_goes_straight_to_the_app_and_no_advice_leaks() -> None:
    from interlock.runtime.responses import RETRY_ADVICE

    async def go() -> None:
        app = FakeApp(_state())
        gate = guard.secure(app)  # type: ignore[arg-type]
        sent: list[Msg] = []

        async def send(m: Msg) -> None:
            sent.append(m)

        await gate({"type": "lifespan"}, lambda: None, send)  # type: ignore[arg-type,return-value]
        assert sent == [{"type": "lifespan.startup.complete"}]
        scope, _, raw = _request(key=b"wrong")
        await _run(gate, scope, raw, False)
        assert RETRY_ADVICE.get() is None
        # the app without the gate answers without x-should-retry, as before
        scope, _, raw = _request(body={"status": 400})
        out = await _run(app, scope, raw, False)
        assert all(n != b"x-should-retry" for n, _ in out[0]["headers"])

    asyncio.run(go())
