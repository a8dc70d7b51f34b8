"""ASGI type aliases, in one place (the runtime speaks raw ASGI, no framework).

An application is ``async app(scope, receive, send)``; ``scope`` describes the
connection, ``receive`` yields the client's messages (``http.request`` body
chunks, ``http.disconnect``, lifespan events) and ``send`` emits ours
(``http.response.start``, ``http.response.body``, lifespan replies).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Response headers as ASGI wants them: a list of (lower-case name, value) byte pairs.
RawHeaders = list[tuple[bytes, bytes]]
