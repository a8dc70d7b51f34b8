"""Legacy completions (``POST {base_url}/completions``) on the openai wire.

The legacy API is passed through, not translated: the client's body goes to the
upstream with the model replaced and the router's own keys removed, and the
upstream's answer comes back with only ``model`` rewritten.  To travel through
the forwarding layers (fallback, retries, privacy gate) the answer is wrapped
in ``RawResponse`` / ``RawDelta`` (``providers.raw``), canonical objects that
also carry the upstream's JSON (a list prompt gets one choice per prompt, which the
canonical form has no room for).

:class:`OpenAIWireWithLegacy` is the openai adapter the registry hands out: it
serves requests of the ``completions`` surface here and everything else as the
plain :class:`~interlock.runtime.providers.openai.OpenAIWire`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any

import orjson
from interlock.runtime.canonical import CanonicalRequest, CanonicalResponse, Delta
from interlock.runtime.errors import UpstreamConnectError, UpstreamError
from interlock.runtime.providers.base import join_url
from interlock.runtime.providers.openai import (
    ROUTER_KEYS,
    OpenAIWire,
    finish_reason,
    set_target,
    usage_of,
)
from interlock.runtime.providers.raw import RawDelta, RawResponse
from interlock.runtime.sse import DONE, SSEParser
from interlock.runtime.table import ModelEntry, ProviderEntry


def legacy_body(req: CanonicalRequest, model: ModelEntry, *, stream: bool) -> dict[str, Any]:
    return set_target({k: v for k, v in req.raw.items() if k not in ROUTER_KEYS}, model, stream)


def decode_legacy(data: Any, provider: str, model: str) -> RawResponse:
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) \
            or not data["choices"]:
        raise UpstreamError(provider, model, "answer has no choices")
    first = data["choices"][0] if isinstance(data["choices"][0], dict) else {}
    return RawResponse(
        id=str(data.get("id") or ""), model=str(data.get("model") or model),
        text=str(first.get("text") or ""), finish_reason=finish_reason(first.get("finish_reason")),
        usage=usage_of(data.get("usage")), created=int(data.get("created") or 0), raw=data,
    )


def decode_legacy_chunk(data: str, provider: str, model: str) -> RawDelta:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(provider, model, f"bad stream chunk: {exc}") from exc
    if not isinstance(obj, dict):
        return RawDelta()
    if "error" in obj and not obj.get("choices"):
        err = obj["error"]
        text = err.get("message") if isinstance(err, dict) else str(err)
        raise UpstreamError(provider, model, f"error in stream: {text}")
    out = RawDelta(raw=obj, usage=usage_of(obj.get("usage")) if obj.get("usage") else None)
    choices = obj.get("choices")
    if choices and isinstance(choices[0], dict):
        out.text = str(choices[0].get("text") or "")
        fr = choices[0].get("finish_reason")
        if fr:
            out.finish_reason = finish_reason(fr)
    return out


class OpenAIWireWithLegacy(OpenAIWire):
    """The openai adapter, plus legacy completions for the ``completions`` surface."""

    def send(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> Coroutine[Any, Any, CanonicalResponse]:
        # a plain function handing back the right coroutine: no extra await layer
        # on the chat path (every chat-completions answer comes through here)
        if req.surface != "completions":
            return OpenAIWire.send(self, req, model, provider, deadline=deadline)
        return self._legacy_send(req, model, provider, deadline)

    async def _legacy_send(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, deadline: float,
    ) -> CanonicalResponse:
        data = await self.upstream.request_json(
            "POST", join_url(provider.base_url, "/completions"), provider, model.upstream_id,
            deadline=deadline, body=orjson.dumps(legacy_body(req, model, stream=False)),
        )
        return decode_legacy(data, provider.name, model.upstream_id)

    def stream(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, *,
        deadline: float,
    ) -> AsyncIterator[Delta]:
        if req.surface != "completions":
            return super().stream(req, model, provider, deadline=deadline)
        return self._legacy_stream(req, model, provider, deadline)

    async def _legacy_stream(
        self, req: CanonicalRequest, model: ModelEntry, provider: ProviderEntry, deadline: float,
    ) -> AsyncIterator[Delta]:
        parser = SSEParser()
        done = finished = False
        chunks = self.upstream.stream_bytes(
            join_url(provider.base_url, "/completions"), provider, model.upstream_id,
            deadline=deadline, body=orjson.dumps(legacy_body(req, model, stream=True)),
        )
        async for chunk in chunks:
            for ev in parser.feed(chunk):
                if ev.data == DONE:
                    done = True
                    break
                delta = decode_legacy_chunk(ev.data, provider.name, model.upstream_id)
                finished = finished or delta.finish_reason is not None
                yield delta
            if done:
                return
        for ev in parser.close():
            if ev.data != DONE:
                yield decode_legacy_chunk(ev.data, provider.name, model.upstream_id)
            else:
                done = True
        if not done and not finished:
            raise UpstreamConnectError(provider.name, model.upstream_id,
                                       "stream ended before its finish")
