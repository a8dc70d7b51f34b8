"""The floor: a minimal pass-through ASGI proxy on Granian, aiohttp upstream.

It does what any Python gateway must do and nothing more: read the body, POST
it upstream, relay status, content type and body (streamed chunk by chunk).
Whatever a real gateway adds is measured against this.

    BENCH_UPSTREAM=http://127.0.0.1:9100 python -m granian --interface asgi \
        --workers 1 --port 9101 bench.floor:app
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Floor:
    def __init__(self) -> None:
        self.upstream = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9100")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    self.session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    if self.session is not None:
                        await self.session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.session is not None
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        async with self.session.post(
            self.upstream + scope["path"],
            data=body,
            headers={"content-type": "application/json"},
        ) as resp:
            ctype = resp.headers.get("content-type", "application/json").encode()
            await send(
                {"type": "http.response.start", "status": resp.status,
                 "headers": [(b"content-type", ctype)]}
            )
            async for chunk in resp.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})


app = Floor()
