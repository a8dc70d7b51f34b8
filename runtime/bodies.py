"""Reading and parsing a request body, with a size limit.

``read_body`` refuses a body over the limit with a 413 as soon as the limit is
crossed: first by the declared ``Content-Length`` (nothing is read), then while
the chunks arrive (a chunked body is never buffered past the limit).
``parse_object`` parses JSON exactly once (orjson) and insists on an object.
Every refusal is a :class:`RequestError`, which the app answers in OpenAI's error
shape; none of them is a 500.
"""

from __future__ import annotations

from typing import Any

import orjson
from interlock.runtime.asgi_types import Receive
from interlock.runtime.errors import RequestError


class ClientDisconnected(Exception):
    """The client went away before the request body was complete."""


def too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        f"request body is larger than the limit of {limit} bytes "
        "(server.max_body_bytes in router.yaml)",
        code="request_too_large",
    )


async def read_body(receive: Receive, limit: int, content_length: int | None = None) -> bytes:
    """The whole request body, or a 413 :class:`RequestError` past ``limit`` bytes."""
    if content_length is not None and content_length > limit:
        raise too_large(limit)
    first: bytes | None = None
    chunks: list[bytes] | None = None
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            # the common case is one chunk: keep it without a join
            if first is None:
                first = chunk
            else:
                if chunks is None:
                    chunks = [first]
                chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if chunks is not None:
        return b"".join(chunks)
    return first or b""


def parse_object(raw: bytes) -> dict[str, Any]:
    """Parse a JSON object body, or raise a 400 that says what is wrong."""
    if not raw:
        raise RequestError(
            400, "the request body is empty; send a JSON object", code="invalid_json"
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            400, f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise RequestError(
            400,
            f"the request body must be a JSON object, not {_json_type(data)}",
            code="invalid_type",
        )
    return data


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__
