"""A minimal Ollama-native surface, so Ollama API clients can point at the router.

``POST /api/chat`` and ``POST /api/generate`` are routed like every request (any
wire may answer), with Ollama's request and answer shapes:

- requests: ``messages`` (``images`` as base64, ``tool_calls`` with argument
  objects, ``tool`` messages naming ``tool_name``) or ``prompt`` / ``system`` /
  ``images``; ``tools``; ``format`` ("json" or a JSON schema); ``options``
  (``temperature``, ``top_p``, ``num_predict``, ``stop``, ``seed``); ``stream``
  (true unless false, as in Ollama);
- answers: one JSON object, or NDJSON lines (``application/x-ndjson``) ending
  with a ``done: true`` line carrying ``done_reason`` and the token counts;
  tool calls come whole, in one line before it (Ollama never streams argument
  fragments); a failure after the first line is an ``{"error": ...}`` line.

Tool calls without an id get one (the id a later ``tool`` message is matched to
by its ``tool_name``, in order).  ``GET /api/tags`` lists the table's models,
``GET /api/version`` answers a version for clients that check one, and
``POST /api/embed`` is the embeddings endpoint in Ollama's shape
(``surfaces.embeddings``).  Errors are ``{"error": "..."}``.  The trace is not
sent in-band here (NDJSON has no comments): use the ``X-Router-*`` headers.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Final

import orjson
from interlock.runtime.asgi_types import RawHeaders
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    FinishReason,
    Message,
    Part,
    ToolCall,
    ToolSpec,
    Usage,
)
from interlock.runtime.errors import RequestError
from interlock.runtime.providers.ollama import synth_id
from interlock.runtime.surfaces.check import bad, opt_bool, opt_int, opt_number, opt_str
from interlock.runtime.surfaces.shapes import OLLAMA_ERRORS
from interlock.runtime.surfaces.spec import Surface

#: what ``/api/version`` reports (an API-compatibility level, not a real Ollama)
API_VERSION: Final = "0.9.0"
NDJSON: Final = b"application/x-ndjson"
_ROLES: Final = frozenset({"system", "user", "assistant", "tool"})


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _images(raw: Any, where: str) -> list[Part]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(i, str) for i in raw):
        raise bad(where, f"{where} must be an array of base64 strings")
    return [Part("image", image_url=f"data:image/png;base64,{b64}", media_type="image/png",
                 data=b64) for b64 in raw]


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value or {}).decode()


def _messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise bad("messages", "messages must be a non-empty array", code="missing_required")
    out: list[Message] = []
    open_calls: deque[tuple[str, str]] = deque()  # (id, name) awaiting their result
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise bad(f"{where}.role", f"{where}.role must be system, user, assistant or tool",
                      code="invalid_value")
        role = m["role"]
        text = m.get("content") or ""
        if not isinstance(text, str):
            raise bad(f"{where}.content", f"{where}.content must be a string")
        if role == "tool":
            name = opt_str(m, "tool_name", f"{where}.tool_name") or opt_str(m, "name")
            call_id = next((cid for cid, n in open_calls if n == name), None) \
                or (open_calls[0][0] if open_calls else f"call_{i}")
            open_calls = deque(c for c in open_calls if c[0] != call_id)
            out.append(Message("tool", [Part("tool_result", text=text, tool_call_id=call_id,
                                             name=name)]))
            continue
        parts = [Part("text", text)] if text else []
        parts += _images(m.get("images"), f"{where}.images")
        if role == "assistant":
            for k, tc in enumerate(m.get("tool_calls") or ()):
                fn = tc.get("function") if isinstance(tc, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise bad(f"{where}.tool_calls[{k}].function.name",
                              "tool calls need function.name")
                args = _arguments(fn.get("arguments"))
                cid = tc.get("id") or synth_id(k, fn["name"], args)
                open_calls.append((cid, fn["name"]))
                parts.append(Part("tool_call", tool_call_id=cid, name=fn["name"],
                                  arguments=args))
        out.append(Message(role, parts))
    return out


def _tools(tools: Any) -> list[ToolSpec]:
    out = []
    for k, t in enumerate(tools or ()):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad(f"tools[{k}].function", f"tools[{k}] must be a function tool")
        out.append(ToolSpec(fn["name"], str(fn.get("description") or ""),
                            fn.get("parameters") or {}))
    return out


def _format(fmt: Any) -> dict[str, Any] | None:
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt}}
    raise bad("format", "format must be \"json\" or a JSON schema object", code="invalid_value")


def decode_ollama(body: Any, *, generate: bool = False) -> CanonicalRequest:
    """An ``/api/chat`` (or, with ``generate``, ``/api/generate``) body → canonical."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object", code="invalid_body")
    model = opt_str(body, "model")
    if not model:
        raise bad("model", "model is required", code="missing_required")
    system = ""
    if generate:
        prompt = opt_str(body, "prompt") or ""
        system = opt_str(body, "system") or ""
        parts = ([Part("text", prompt)] if prompt else []) + _images(body.get("images"),
                                                                     "images")
        if not parts:
            raise bad("prompt", "prompt is required", code="missing_required")
        messages = [Message("user", parts)]
    else:
        messages = _messages(body.get("messages"))
    opts = body.get("options") or {}
    if not isinstance(opts, dict):
        raise bad("options", "options must be an object")
    stop = opts.get("stop")
    stream = opt_bool(body, "stream")
    return CanonicalRequest(
        surface="ollama", messages=messages, model=model, system=system,
        tools=_tools(body.get("tools")), response_format=_format(body.get("format")),
        stream=True if stream is None else stream, include_usage=True,
        max_tokens=opt_int(opts, "num_predict", "options.num_predict", minimum=1),
        temperature=opt_number(opts, "temperature", 0.0, 2.0, "options.temperature"),
        top_p=opt_number(opts, "top_p", 0.0, 1.0, "options.top_p"),
        stop=[stop] if isinstance(stop, str) else [s for s in stop or () if isinstance(s, str)],
        seed=opt_int(opts, "seed", "options.seed"),
        private=opt_bool(body, "private"), trace=False, raw=body,
    )


def _done_reason(reason: FinishReason | None) -> str:
    return "length" if reason == "length" else "stop"


def _counts(u: Usage | None) -> dict[str, int]:
    u = u or Usage()
    return {"total_duration": 0, "load_duration": 0, "prompt_eval_count": u.input_tokens,
            "prompt_eval_duration": 0, "eval_count": u.output_tokens, "eval_duration": 0}


def _calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    out = []
    for i, c in enumerate(calls):
        try:
            args = orjson.loads(c.arguments or "{}")
        except orjson.JSONDecodeError:
            args = {"_raw": c.arguments}
        out.append({"id": c.id, "function": {"index": i, "name": c.name, "arguments": args}})
    return out


def encode_ollama(resp: CanonicalResponse, model_name: str, generate: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model_name, "created_at": now_iso()}
    if generate:
        out["response"] = resp.text
        if resp.thinking:
            out["thinking"] = resp.thinking
    else:
        msg: dict[str, Any] = {"role": "assistant", "content": resp.text}
        if resp.thinking:
            msg["thinking"] = resp.thinking
        if resp.tool_calls:
            msg["tool_calls"] = _calls(resp.tool_calls)
        out["message"] = msg
    out.update(done=True, done_reason=_done_reason(resp.finish_reason), **_counts(resp.usage))
    return out


class OllamaStreamEncoder:
    """Deltas → Ollama NDJSON lines (``StreamEncoder``)."""

    __slots__ = ("_model", "_generate", "_calls", "usage", "finish_reason")

    def __init__(self, *, model_name: str, generate: bool) -> None:
        self._model = model_name
        self._generate = generate
        self._calls: dict[int, ToolCall] = {}
        self.usage: Usage | None = None
        self.finish_reason: FinishReason | None = None

    def _line(self, piece: dict[str, Any], done: bool = False) -> bytes:
        body: dict[str, Any] = {"model": self._model, "created_at": now_iso()}
        if self._generate:
            body["response"] = piece.get("content", "")
            if piece.get("thinking"):
                body["thinking"] = piece["thinking"]
        else:
            body["message"] = {"role": "assistant", **piece}
        body["done"] = done
        return orjson.dumps(body) + b"\n"

    def encode(self, d: Delta) -> bytes:
        if d.usage is not None:
            self.usage = d.usage
        if d.finish_reason is not None:
            self.finish_reason = d.finish_reason
        if d.tool_index is not None:
            call = self._calls.setdefault(
                d.tool_index, ToolCall(d.tool_id or f"call_{d.tool_index}", "", ""))
            call.name = call.name or d.tool_name or ""
            call.arguments += d.tool_arguments
        if not d.text and not d.thinking:
            return b""
        piece: dict[str, Any] = {"content": d.text}
        if d.thinking:
            piece["thinking"] = d.thinking
        return self._line(piece)

    def close(self, comment: bytes = b"") -> bytes:
        out = b""
        if self._calls and not self._generate:
            calls = [self._calls[k] for k in sorted(self._calls)]
            out += self._line({"content": "", "tool_calls": _calls(calls)})
        last = orjson.loads(self._line({"content": ""}, done=True))
        last.update(done_reason=_done_reason(self.finish_reason), **_counts(self.usage))
        return out + orjson.dumps(last) + b"\n"

    def fail(self, message: str, comment: bytes = b"") -> bytes:
        return orjson.dumps({"error": message}) + b"\n"


def _surface(name: str, generate: bool) -> Surface:
    def decode(body: dict[str, Any], headers: RawHeaders) -> CanonicalRequest:
        return decode_ollama(body, generate=generate)

    def encode(resp: CanonicalResponse, model_name: str,
               req: CanonicalRequest) -> dict[str, Any]:
        return encode_ollama(resp, model_name, generate)

    def encoder(req: CanonicalRequest, model_name: str) -> OllamaStreamEncoder:
        return OllamaStreamEncoder(model_name=model_name, generate=generate)

    return Surface(name, decode, encode, encoder, OLLAMA_ERRORS, media_type=NDJSON)


#: ``POST /api/chat`` and ``POST /api/generate``
OLLAMA_CHAT: Final = _surface("ollama-chat", False)
OLLAMA_GENERATE: Final = _surface("ollama-generate", True)


def tags_body(models: dict[str, Any], aliases: tuple[str, ...]) -> bytes:
    """``GET /api/tags``: the routing aliases and every model of the table."""
    rows = [{"name": name, "model": name, "modified_at": "1970-01-01T00:00:00Z", "size": 0,
             "digest": "", "details": {"format": "", "family": "interlock", "families": None,
                                       "parameter_size": "", "quantization_level": ""}}
            for name in (*aliases, *sorted(models))]
    return orjson.dumps({"models": rows})
