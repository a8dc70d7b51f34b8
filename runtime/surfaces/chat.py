"""The chat-completions surface (``POST /v1/chat/completions``).

``decode_chat`` validates a client body the way OpenAI does (a 400 naming the
offending field in ``param``) and builds the ``CanonicalRequest``; the encoders
turn a ``CanonicalResponse`` or a stream of ``Delta`` back into OpenAI's JSON and
SSE chunks.  Error bodies use OpenAI's shape
``{"error": {"message", "type", "param", "code"}}`` (see ``errors.py`` here).

System messages stay in ``messages`` (in order); ``req.system`` is left empty.
``developer`` messages are system messages.  The router's own keys (``private``,
``trace``, ``models``, ``allowed_models``, ``provider``) go to ``private``,
``trace`` and ``controls``; other keys the router does not interpret are kept in
``extra`` (and in ``raw``, which same-wire upstreams receive).

The encoders live in ``chat_encode`` and are re-exported here.
"""

from __future__ import annotations

from typing import Any, Final

from interlock.runtime.asgi_types import RawHeaders
from interlock.runtime.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Message,
    Part,
    ToolSpec,
)
from interlock.runtime.errors import RequestError
from interlock.runtime.surfaces.chat_encode import (
    ChatStreamEncoder,
    encode_chat_response,
    encode_error_chunk,
    error_response,
    openai_error_body,
)
from interlock.runtime.surfaces.check import (
    bad,
    image_url_part,
    opt_bool,
    opt_int,
    opt_number,
    opt_str,
    opt_str_list,
)
from interlock.runtime.surfaces.shapes import OPENAI_ERRORS
from interlock.runtime.surfaces.spec import Surface

__all__ = [
    "CHAT", "ChatStreamEncoder", "decode_chat", "encode_chat_response", "encode_error_chunk",
    "error_response", "openai_error_body",
]

_ROLES: Final = {"system": "system", "developer": "system", "user": "user",
                 "assistant": "assistant", "tool": "tool"}
#: keys decode_chat interprets itself; anything else is ``extra``
_KNOWN: Final = frozenset({
    "model", "messages", "tools", "tool_choice", "response_format", "stream",
    "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "stop", "seed", "n", "private", "trace", "models", "allowed_models", "provider",
    "route", "router", "functions", "function_call",
})


def decode_chat(body: Any) -> CanonicalRequest:
    """Validate a chat-completions body and build the canonical request.

    Raises ``RequestError(400, message, param=...)`` on the first bad field.
    """
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object", code="invalid_body")
    model = opt_str(body, "model")
    if "messages" not in body:
        raise bad("messages", "'messages' is a required property", code="missing_required")
    raw_msgs = body["messages"]
    if not isinstance(raw_msgs, list):
        raise bad("messages", "'messages' must be an array of message objects")
    if not raw_msgs:
        raise bad("messages", "'messages' must contain at least one message",
                  code="empty_array")
    messages = [_message(m, i) for i, m in enumerate(raw_msgs)]
    # each optional field is checked only when present: a typical body has a few of
    # them, and a call per absent field was a measurable share of the request path
    has = body.keys()
    n = opt_int(body, "n", minimum=1) if "n" in has else None
    if n is not None and n > 1:
        raise bad("n", "n > 1 is not supported by this router; send one request per choice",
                  code="unsupported_parameter")
    if "functions" in has or "function_call" in has:
        key = "functions" if "functions" in has else "function_call"
        raise bad(key, f"'{key}' is deprecated and not supported; use 'tools'",
                  code="unsupported_parameter")
    stream = (opt_bool(body, "stream") or False) if "stream" in has else False
    include_usage = False
    so = body.get("stream_options")
    if so is not None:
        if not isinstance(so, dict):
            raise bad("stream_options", "'stream_options' must be an object")
        include_usage = opt_bool(so, "include_usage", "stream_options.include_usage") or False
    max_tokens = (opt_int(body, "max_completion_tokens", minimum=1)
                  if "max_completion_tokens" in has else None)
    if max_tokens is None and "max_tokens" in has:
        max_tokens = opt_int(body, "max_tokens", minimum=1)
    temperature = opt_number(body, "temperature", 0.0, 2.0) if "temperature" in has else None
    top_p = opt_number(body, "top_p", 0.0, 1.0) if "top_p" in has else None
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else (
        (opt_str_list(body, "stop") or []) if stop is not None else [])
    seed = opt_int(body, "seed") if "seed" in has else None

    controls: dict[str, Any] = {}
    for key in ("models", "allowed_models"):
        if key in has:
            names = opt_str_list(body, key)
            if names is not None:
                controls[key] = names
    if "provider" in has:
        if not isinstance(body["provider"], dict):
            raise bad("provider", "'provider' must be an object (OpenRouter provider routing)")
        controls["provider"] = body["provider"]

    return CanonicalRequest(
        surface="chat", messages=messages, model=model,
        tools=_tools(body["tools"]) if "tools" in has else [],
        tool_choice=_tool_choice(body["tool_choice"]) if "tool_choice" in has else None,
        response_format=(_response_format(body["response_format"])
                         if "response_format" in has else None),
        stream=stream, include_usage=include_usage and stream, max_tokens=max_tokens,
        temperature=temperature, top_p=top_p, stop=stops, seed=seed,
        private=opt_bool(body, "private") if "private" in has else None,
        trace=(opt_bool(body, "trace") or False) if "trace" in has else False,
        controls=controls,
        extra={k: v for k, v in body.items() if k not in _KNOWN} if has - _KNOWN else {},
        raw=body,
    )


def _message(m: Any, i: int) -> Message:
    if type(m) is dict:
        role = _ROLES.get(m.get("role"))  # type: ignore[arg-type]
        content = m.get("content")
        # the common case: a user/system/assistant message with string content only
        if role is not None and role != "tool" and type(content) is str and len(m) == 2:
            return Message(role, [Part("text", content)])  # type: ignore[arg-type]
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise bad(where, f"{where} must be an object with 'role' and 'content'")
    role = _ROLES.get(m.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise bad(f"{where}.role",
                  f"{where}.role must be one of system, developer, user, assistant, tool "
                  f"(got {m.get('role')!r})", code="invalid_value")
    name = opt_str(m, "name", f"{where}.name")
    content = m.get("content")
    parts: list[Part]
    if role == "tool":
        call_id = m.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise bad(f"{where}.tool_call_id", f"{where}.tool_call_id is required for a "
                      "tool message and must be a string", code="missing_required")
        text = _text_only(content, f"{where}.content")
        return Message("tool", [Part("tool_result", text=text, tool_call_id=call_id,
                                     name=name)], name=name)
    if content is None:
        if role != "assistant":
            raise bad(f"{where}.content", f"{where}.content is required for a {role} message",
                      code="missing_required")
        parts = []
    elif isinstance(content, str):
        parts = [Part("text", content)]
    elif isinstance(content, list):
        parts = [_part(p, f"{where}.content[{j}]", role) for j, p in enumerate(content)]
    else:
        raise bad(f"{where}.content", f"{where}.content must be a string or an array of "
                  "content parts")
    if role == "assistant":
        parts.extend(_tool_calls(m.get("tool_calls"), f"{where}.tool_calls"))
        if not parts and content is None and "tool_calls" not in m:
            raise bad(f"{where}.content", f"{where} needs 'content' or 'tool_calls'",
                      code="missing_required")
    return Message(role, parts, name=name)  # type: ignore[arg-type]


def _part(p: Any, where: str, role: str) -> Part:
    if not isinstance(p, dict):
        raise bad(where, f"{where} must be a content part object")
    kind = p.get("type")
    if kind == "text" or (kind == "refusal" and role == "assistant"):
        key = "text" if kind == "text" else "refusal"
        text = p.get(key)
        if not isinstance(text, str):
            raise bad(f"{where}.{key}", f"{where}.{key} must be a string")
        return Part("text", text)
    if kind == "image_url":
        if role != "user":
            raise bad(f"{where}.type", f"image parts are only allowed in user messages "
                      f"(this is a {role} message)", code="invalid_value")
        img = p.get("image_url")
        url = img.get("url") if isinstance(img, dict) else img
        if not isinstance(url, str) or not url:
            raise bad(f"{where}.image_url.url", f"{where}.image_url.url must be a string URL")
        return image_url_part(url, f"{where}.image_url.url")
    raise bad(f"{where}.type", f"unsupported content part type {kind!r} "
              "(supported: text, image_url)", code="invalid_value")


def _text_only(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part(p, f"{where}[{j}]", "tool").text for j, p in enumerate(content))
    raise bad(where, f"{where} must be a string or an array of text parts")


def _tool_calls(calls: Any, where: str) -> list[Part]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise bad(where, f"{where} must be an array")
    out = []
    for k, c in enumerate(calls):
        w = f"{where}[{k}]"
        if not isinstance(c, dict):
            raise bad(w, f"{w} must be an object")
        fn = c.get("function")
        cid = c.get("id")
        if not isinstance(cid, str) or not cid:
            raise bad(f"{w}.id", f"{w}.id must be a non-empty string")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad(f"{w}.function.name", f"{w}.function.name must be a string")
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            raise bad(f"{w}.function.arguments", f"{w}.function.arguments must be a JSON "
                      "string")
        out.append(Part("tool_call", tool_call_id=cid, name=fn["name"], arguments=args))
    return out


def _tools(tools: Any) -> list[ToolSpec]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad("tools", "'tools' must be an array")
    out = []
    for k, t in enumerate(tools):
        w = f"tools[{k}]"
        if not isinstance(t, dict) or t.get("type", "function") != "function":
            raise bad(f"{w}.type", f"{w} must be a function tool: "
                      '{"type": "function", "function": {...}}', code="invalid_value")
        fn = t.get("function")
        if not isinstance(fn, dict):
            raise bad(f"{w}.function", f"{w}.function must be an object")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise bad(f"{w}.function.name", f"{w}.function.name must be a non-empty string")
        desc = fn.get("description", "")
        if not isinstance(desc, str):
            raise bad(f"{w}.function.description", f"{w}.function.description must be a "
                      "string")
        params = fn.get("parameters", {})
        if not isinstance(params, dict):
            raise bad(f"{w}.function.parameters", f"{w}.function.parameters must be a JSON "
                      "Schema object")
        out.append(ToolSpec(name, desc, params))
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" \
            and isinstance(choice.get("function"), dict) \
            and isinstance(choice["function"].get("name"), str):
        return choice
    raise bad("tool_choice", "'tool_choice' must be none, auto, required or "
              '{"type": "function", "function": {"name": ...}}', code="invalid_value")


def _response_format(rf: Any) -> dict[str, Any] | None:
    if rf is None:
        return None
    if not isinstance(rf, dict):
        raise bad("response_format", "'response_format' must be an object")
    kind = rf.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, dict):
            raise bad("response_format.json_schema", "response_format.json_schema must be an "
                      "object with 'name' and 'schema'", code="missing_required")
        if not isinstance(js.get("name"), str):
            raise bad("response_format.json_schema.name",
                      "response_format.json_schema.name must be a string",
                      code="missing_required")
        if "schema" in js and not isinstance(js["schema"], dict):
            raise bad("response_format.json_schema.schema",
                      "response_format.json_schema.schema must be a JSON Schema object")
        return rf
    raise bad("response_format.type", "response_format.type must be text, json_object or "
              f"json_schema (got {kind!r})", code="invalid_value")


# -- the surface, for the pipeline ------------------------------------------------------


def _decode(body: dict[str, Any], headers: RawHeaders) -> CanonicalRequest:
    return decode_chat(body)


def _encode(resp: CanonicalResponse, model_name: str, req: CanonicalRequest) -> dict[str, Any]:
    return encode_chat_response(resp, model_name=model_name)


def _encoder(req: CanonicalRequest, model_name: str) -> ChatStreamEncoder:
    return ChatStreamEncoder(model_name=model_name, include_usage=req.include_usage)


#: ``POST /v1/chat/completions``
CHAT: Final = Surface("chat", _decode, _encode, _encoder, OPENAI_ERRORS)
