"""The OpenAI Responses surface (``POST /v1/responses``), stateless.

``decode_responses`` validates a Responses body (400s in OpenAI's shape, naming
``param``) and builds the ``CanonicalRequest``:

- ``input``: a string (one user message) or items: messages (``role`` user /
  assistant / system / developer, ``content`` a string or ``input_text`` /
  ``input_image`` / ``output_text`` / ``refusal`` parts; with or without
  ``"type": "message"``), ``function_call`` (kept with its ``call_id``; several
  in a row are one assistant turn of parallel calls) and
  ``function_call_output`` (and Codex's ``custom_tool_call`` / ``_output``, the
  call's text as ``{"input": ...}``); ``reasoning`` items and hosted tools'
  call records are informational and skipped;
- ``instructions`` → the system prompt; function ``tools``; ``tool_choice``;
  ``text.format`` (``json_schema`` / ``json_object``) → ``response_format``;
  ``max_output_tokens``, ``temperature``, ``top_p``, ``parallel_tool_calls``.

The router keeps no state, so what needs it is refused with a 400 that says so
instead of being ignored: ``previous_response_id``, ``conversation``,
``store: true``, ``background: true``, ``prompt`` (stored prompt templates) and
``item_reference`` items.  OpenAI-hosted tools (web search, file search, code
interpreter ...; :data:`HOSTED_TOOLS`) need a runtime the router does not have:
they are left out of the request the model sees (``tool_choice`` forcing one is a
400); ``namespace`` tools (named groups of function tools, sent by Codex) are
flattened into their functions; other tool types are a 400.

The encoders are in ``responses_encode``.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from interlock.runtime.asgi_types import RawHeaders
from interlock.runtime.canonical import CanonicalRequest, CanonicalResponse, Message, Part, ToolSpec
from interlock.runtime.errors import RequestError
from interlock.runtime.surfaces.check import (
    bad,
    image_url_part,
    opt_bool,
    opt_int,
    opt_number,
    opt_str,
    opt_str_list,
)
from interlock.runtime.surfaces.responses_encode import ResponsesStreamEncoder, encode_response
from interlock.runtime.surfaces.shapes import OPENAI_ERRORS
from interlock.runtime.surfaces.spec import Surface

#: OpenAI-hosted tools: the router has no runtime for them, so they are left out of
#: the request (the model answers without them); forcing one with tool_choice is a 400
HOSTED_TOOLS: Final = frozenset({
    "web_search", "web_search_preview", "web_search_preview_2025_03_11", "file_search",
    "code_interpreter", "computer_use_preview", "image_generation", "mcp", "local_shell",
})
#: input items that only report what happened in an earlier turn
_INFORMATIONAL: Final = frozenset({
    "reasoning", "web_search_call", "file_search_call", "image_generation_call",
    "code_interpreter_call", "computer_call", "mcp_list_tools",
})
_ROLES: Final = {"user": "user", "assistant": "assistant", "system": "system",
                 "developer": "system"}
_STATEFUL: Final = (
    ("previous_response_id", "previous_response_id needs stored responses; this router is "
     "stateless: send the whole conversation in 'input' instead"),
    ("conversation", "conversations need server-side state; this router is stateless: send "
     "the whole conversation in 'input' instead"),
    ("prompt", "stored prompt templates are not supported by this router; send the prompt "
     "text in 'instructions' / 'input'"),
)


def unsupported(param: str, message: str) -> RequestError:
    return RequestError(400, message, param=param, code="unsupported_parameter")


def decode_responses(body: Any) -> CanonicalRequest:
    """Validate a Responses body and build the canonical request."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object", code="invalid_body")
    for key, why in _STATEFUL:
        if body.get(key) is not None:
            raise unsupported(key, why)
    if opt_bool(body, "store"):
        raise unsupported("store", "store: true is not supported: this router keeps no "
                          "responses; send store: false (or leave it out)")
    if opt_bool(body, "background"):
        raise unsupported("background", "background responses need server-side state and "
                          "are not supported by this router")
    model = opt_str(body, "model")
    if "input" not in body:
        raise bad("input", "'input' is a required property", code="missing_required")
    messages = _input(body["input"])
    if not messages:
        raise bad("input", "'input' must contain at least one item", code="empty_array")
    instructions = opt_str(body, "instructions") or ""
    stream = opt_bool(body, "stream") or False
    extra: dict[str, Any] = {}
    ptc = opt_bool(body, "parallel_tool_calls")
    tools = _tools(body.get("tools"))
    if ptc is not None and tools:
        extra["parallel_tool_calls"] = ptc
    controls: dict[str, Any] = {}
    for key in ("models", "allowed_models"):
        names = opt_str_list(body, key)
        if names is not None:
            controls[key] = names
    if isinstance(body.get("provider"), dict):
        controls["provider"] = body["provider"]
    return CanonicalRequest(
        surface="responses", messages=messages, model=model, system=instructions,
        tools=tools, tool_choice=_tool_choice(body.get("tool_choice")),
        response_format=_text_format(body.get("text")), stream=stream, include_usage=stream,
        max_tokens=opt_int(body, "max_output_tokens", minimum=1),
        temperature=opt_number(body, "temperature", 0.0, 2.0),
        top_p=opt_number(body, "top_p", 0.0, 1.0),
        private=opt_bool(body, "private"), trace=opt_bool(body, "trace") or False,
        controls=controls, extra=extra, raw=body,
    )


def _input(value: Any) -> list[Message]:
    if isinstance(value, str):
        return [Message("user", [Part("text", value)])]
    if not isinstance(value, list):
        raise bad("input", "'input' must be a string or an array of input items")
    out: list[Message] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad(where, f"{where} must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            msg = _message(item, where)
            if msg.role == "assistant" and out and out[-1].role == "assistant" \
                    and not any(p.type == "text" for p in out[-1].parts):
                out[-1].parts[:0] = msg.parts  # text before the calls of the same turn
            else:
                out.append(msg)
        elif kind == "function_call":
            call = Part("tool_call", tool_call_id=_req_str(item, "call_id", where),
                        name=_req_str(item, "name", where),
                        arguments=_req_str(item, "arguments", where))
            if out and out[-1].role == "assistant":
                out[-1].parts.append(call)
            else:
                out.append(Message("assistant", [call]))
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _texts(output, f"{where}.output")
            out.append(Message("tool", [Part("tool_result", text=text,
                                             tool_call_id=_req_str(item, "call_id", where))]))
        elif kind == "custom_tool_call":  # a free-form tool's call: its text as {"input"}
            call = Part("tool_call", tool_call_id=_req_str(item, "call_id", where),
                        name=_req_str(item, "name", where),
                        arguments=orjson.dumps({"input": item.get("input") or ""}).decode())
            if out and out[-1].role == "assistant":
                out[-1].parts.append(call)
            else:
                out.append(Message("assistant", [call]))
        elif kind == "custom_tool_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _texts(output, f"{where}.output")
            out.append(Message("tool", [Part("tool_result", text=text,
                                             tool_call_id=_req_str(item, "call_id", where))]))
        elif kind in _INFORMATIONAL:
            continue  # reasoning summaries, hosted tools' calls: nothing a model needs back
        elif kind == "item_reference":
            raise unsupported(f"{where}.type", "item references need stored items; this "
                              "router is stateless: send the items themselves")
        else:
            raise bad(f"{where}.type", f"unsupported input item type {kind!r} (supported: "
                      "message, function_call, function_call_output, reasoning)",
                      code="invalid_value")
    return out


def _req_str(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise bad(f"{where}.{key}", f"{where}.{key} must be a string", code="missing_required")
    return value


def _message(item: dict[str, Any], where: str) -> Message:
    role = _ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise bad(f"{where}.role", f"{where}.role must be user, assistant, system or "
                  f"developer (got {item.get('role')!r})", code="invalid_value")
    content = item.get("content")
    if isinstance(content, str):
        return Message(role, [Part("text", content)])  # type: ignore[arg-type]
    if not isinstance(content, list):
        raise bad(f"{where}.content", f"{where}.content must be a string or an array")
    parts = [_part(p, f"{where}.content[{j}]", role) for j, p in enumerate(content)]
    return Message(role, parts)  # type: ignore[arg-type]


def _part(p: Any, where: str, role: str) -> Part:
    if not isinstance(p, dict):
        raise bad(where, f"{where} must be an object")
    kind = p.get("type")
    if kind in ("input_text", "output_text", "text"):
        text = p.get("text")
        if not isinstance(text, str):
            raise bad(f"{where}.text", f"{where}.text must be a string")
        return Part("text", text)
    if kind == "refusal":
        return Part("text", str(p.get("refusal") or ""))
    if kind == "input_image":
        if role != "user":
            raise bad(f"{where}.type", "images are only allowed in user messages",
                      code="invalid_value")
        url = p.get("image_url")
        if p.get("file_id") is not None or not isinstance(url, str):
            raise bad(f"{where}.image_url", f"{where}.image_url must be an http(s) or data: "
                      "URL (file ids need stored files)", code="invalid_image_url")
        return image_url_part(url, f"{where}.image_url")
    raise bad(f"{where}.type", f"unsupported content part type {kind!r} (supported: "
              "input_text, input_image, output_text, refusal)", code="invalid_value")


def _texts(value: Any, where: str) -> str:
    if isinstance(value, list):
        return "".join(_part(p, f"{where}[{k}]", "tool").text for k, p in enumerate(value)
                       if isinstance(p, dict) and p.get("type") != "input_image")
    raise bad(where, f"{where} must be a string or an array of content parts")


def _tools(tools: Any) -> list[ToolSpec]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad("tools", "'tools' must be an array")
    out: list[ToolSpec] = []
    for k, t in enumerate(tools):
        _tool(t, f"tools[{k}]", out)
    return out


def _tool(t: Any, where: str, out: list[ToolSpec]) -> None:
    if not isinstance(t, dict):
        raise bad(where, f"{where} must be an object")
    kind = t.get("type")
    if kind in HOSTED_TOOLS:
        return  # a hosted tool the router has no runtime for: the model works without it
    if kind == "namespace":  # a named group of function tools (Codex): its functions
        for j, inner in enumerate(t.get("tools") or ()):
            _tool(inner, f"{where}.tools[{j}]", out)
        return
    if kind != "function":
        raise unsupported(f"{where}.type", f"tool type {kind!r} is not supported by this "
                          "router; use function tools")
    name = t.get("name")
    if not isinstance(name, str) or not name:
        raise bad(f"{where}.name", f"{where}.name must be a non-empty string")
    desc = t.get("description") or ""
    params = t.get("parameters") or {}
    if not isinstance(desc, str) or not isinstance(params, dict):
        raise bad(f"{where}.parameters", f"{where}.parameters must be a JSON Schema object")
    out.append(ToolSpec(name, desc, params))


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") in HOSTED_TOOLS:
        raise unsupported("tool_choice", f"tool_choice forces the hosted tool "
                          f"{choice['type']!r}, which this router cannot run")
    if isinstance(choice, dict) and choice.get("type") == "function" \
            and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise bad("tool_choice", "'tool_choice' must be none, auto, required or "
              '{"type": "function", "name": ...}', code="invalid_value")


def _text_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise bad("text", "'text' must be an object")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        name = fmt.get("name")
        schema = fmt.get("schema")
        if not isinstance(name, str) or not isinstance(schema, dict):
            raise bad("text.format", "text.format json_schema needs 'name' and 'schema'",
                      code="missing_required")
        js: dict[str, Any] = {"name": name, "schema": schema}
        if "strict" in fmt:
            js["strict"] = bool(fmt["strict"])
        return {"type": "json_schema", "json_schema": js}
    raise bad("text.format.type", "text.format.type must be text, json_object or json_schema",
              code="invalid_value")


# -- the surface, for the pipeline ------------------------------------------------------


def _decode(body: dict[str, Any], headers: RawHeaders) -> CanonicalRequest:
    return decode_responses(body)


def _encode(resp: CanonicalResponse, model_name: str, req: CanonicalRequest) -> dict[str, Any]:
    return encode_response(resp, model_name=model_name, req=req)


def _encoder(req: CanonicalRequest, model_name: str) -> ResponsesStreamEncoder:
    return ResponsesStreamEncoder(model_name=model_name, req=req)


#: ``POST /v1/responses``
RESPONSES: Final = Surface("responses", _decode, _encode, _encoder, OPENAI_ERRORS)
