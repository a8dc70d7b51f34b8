"""The chat page's API: conversations and their messages, kept in the router's store.

==========================================  =============================================
``GET  /v1/conversations``                  the most recent first (``?limit=``, ≤ 500)
``POST /v1/conversations``                  create one: ``{"title"?: str}`` (or no body)
``GET  /v1/conversations/{id}``             one, with all its messages
``DELETE /v1/conversations/{id}``           delete it and its messages
``POST /v1/conversations/{id}/messages``    append ``{"role", "content", "meta"?}``
==========================================  =============================================

The chat page posts the user's message, streams the answer from
``/v1/chat/completions`` itself, then posts the answer with its ``meta`` (where it
ran, why, tokens, cost, saving), so the pipeline does not know about
conversations at all.  An untitled conversation takes its title from its first
user message (``conversations.auto_title``).

The store lives in the same SQLite file as the request log (``state.recorder``'s
store, else :func:`interlock.runtime.record.db_path_for`), opened on first use and
called through ``asyncio.to_thread`` so a slow disk never stalls the serving loop.
Bad input is a 400, an unknown id a 404, in the router's (OpenAI) error shape.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any, Final
from urllib.parse import parse_qs

import orjson
from interlock.runtime.bodies import parse_object, read_body
from interlock.runtime.context import Ctx
from interlock.runtime.conversations import ROLES, ConversationStore
from interlock.runtime.errors import RequestError
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.record import db_path_for
from interlock.runtime.responses import send_bytes
from interlock.runtime.state import RuntimeState

COLLECTION: Final = "/v1/conversations"
PREFIX: Final = COLLECTION + "/"
_ID = re.compile(r"conv_[0-9a-f]{20}")
MAX_LIMIT: Final = 500


def store_path(state: RuntimeState) -> str:
    """The request log's SQLite file: the running store's, else the configured one."""
    store = getattr(getattr(state, "recorder", None), "store", None)
    path = getattr(store, "path", None)
    if path:
        return str(path)
    return str(db_path_for(state.table, os.environ))


class ConversationsApi:
    """The ``/v1/conversations`` handlers over one lazily opened store."""

    def __init__(self, store: ConversationStore | None = None) -> None:
        self._store = store
        self._opening = asyncio.Lock()

    async def store(self, state: RuntimeState) -> ConversationStore:
        if self._store is None:
            async with self._opening:
                if self._store is None:
                    self._store = await asyncio.to_thread(ConversationStore, store_path(state))
        return self._store

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await asyncio.to_thread(store.close)

    # -- handlers ------------------------------------------------------------------

    async def collection(self, ctx: Ctx) -> None:
        """``GET`` lists, ``POST`` creates."""
        store = await self.store(ctx.state)
        if ctx.scope["method"] == "POST":
            body = await _optional_object(ctx)
            title = body.get("title")
            if title is not None and not isinstance(title, str):
                raise RequestError(400, "'title' must be a string", param="title",
                                   code="invalid_type")
            conv = await asyncio.to_thread(store.create, title)
            await _json(ctx, 201, conv.to_json())
            return
        limit = _limit(ctx.scope.get("query_string", b""))
        convs = await asyncio.to_thread(store.list, limit)
        await _json(ctx, 200, {"object": "list", "data": [c.to_json() for c in convs]})

    async def item(self, ctx: Ctx) -> None:
        """``/v1/conversations/{id}`` and ``/v1/conversations/{id}/messages``."""
        rest = ctx.scope["path"][len(PREFIX):]
        cid, _, sub = rest.partition("/")
        method = ctx.scope["method"]
        if sub not in ("", "messages"):
            raise RequestError(404, f"no route for {method} {ctx.scope['path']}",
                               code="unknown_url")
        if not _ID.fullmatch(cid):
            raise RequestError(404, f"no conversation {cid!r}", param="id", code="not_found")
        store = await self.store(ctx.state)
        if sub == "messages":
            if method != "POST":
                raise _not_allowed(method, ctx.scope["path"], "POST")
            await self._add(ctx, store, cid)
        elif method == "GET":
            conv = await asyncio.to_thread(store.get, cid)
            if conv is None:
                raise RequestError(404, f"no conversation {cid!r}", param="id", code="not_found")
            await _json(ctx, 200, conv.to_json())
        elif method == "DELETE":
            if not await asyncio.to_thread(store.delete, cid):
                raise RequestError(404, f"no conversation {cid!r}", param="id", code="not_found")
            await _json(ctx, 200, {"id": cid, "object": "conversation", "deleted": True})
        else:
            raise _not_allowed(method, ctx.scope["path"], "DELETE, GET")

    async def _add(self, ctx: Ctx, store: ConversationStore, cid: str) -> None:
        body = parse_object(await _read(ctx))
        role, content, meta = body.get("role"), body.get("content"), body.get("meta", {})
        if role not in ROLES:
            raise RequestError(400, f"'role' must be one of {', '.join(sorted(ROLES))}",
                               param="role", code="invalid_value")
        if not isinstance(content, str):
            raise RequestError(400, "'content' must be a string", param="content",
                               code="invalid_type")
        if not isinstance(meta, dict):
            raise RequestError(400, "'meta' must be an object", param="meta",
                               code="invalid_type")
        message = await asyncio.to_thread(store.add_message, cid, role, content, meta)
        if message is None:
            raise RequestError(404, f"no conversation {cid!r}", param="id", code="not_found")
        await _json(ctx, 201, message.to_json())


def _not_allowed(method: str, path: str, allowed: str) -> RequestError:
    return RequestError(405, f"{method} is not allowed on {path} (use {allowed})",
                        code="method_not_allowed")


def _limit(query: bytes) -> int:
    values = parse_qs(query.decode("latin-1")).get("limit")
    if not values:
        return 100
    try:
        limit = int(values[-1])
    except ValueError:
        raise RequestError(400, "'limit' must be an integer", param="limit",
                           code="invalid_type") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise RequestError(400, f"'limit' must be between 1 and {MAX_LIMIT}", param="limit",
                           code="invalid_value")
    return limit


async def _read(ctx: Ctx) -> bytes:
    return await read_body(ctx.receive, ctx.state.table.server.max_body_bytes,
                           ctx.meta.content_length)


async def _optional_object(ctx: Ctx) -> dict[str, Any]:
    raw = await _read(ctx)
    return parse_object(raw) if raw.strip() else {}


async def _json(ctx: Ctx, status: int, data: dict[str, Any]) -> None:
    headers = diagnostic_headers(ctx.diag, ctx.state.table_hash_header)
    await send_bytes(ctx.send, status, orjson.dumps(data), headers)
