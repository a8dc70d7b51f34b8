"""The Anthropic Messages surface (``POST /v1/messages``, ``/v1/messages/count_tokens``).

``decode_messages`` validates a Messages API body the way Anthropic does (a 400
``invalid_request_error`` naming the field) and builds the ``CanonicalRequest``:

- ``system`` (a string or text blocks) → ``req.system``; ``system`` messages
  inside ``messages`` (the mid-conversation system messages Claude Code sends)
  stay in place as system messages;
- content blocks: ``text``, ``image`` (``base64`` or ``url`` source), ``tool_use``
  (assistant), ``tool_result`` (user; string or text/image blocks, ``is_error``),
  ``thinking`` / ``redacted_thinking`` (assistant; kept as thinking parts, which
  only the anthropic wire receives, through the same-wire fast path); other
  block types (documents, server-tool results) reach an anthropic upstream
  unchanged and are left out of the canonical form;
- ``tools`` (custom tools with ``input_schema``; server tools with a ``type``
  only reach an anthropic upstream), ``tool_choice`` (auto / any / tool / none),
  ``stop_sequences``, ``max_tokens`` (required, ≥ 1), ``temperature`` (0-1),
  ``top_p``, ``top_k``, ``metadata``, ``thinking``, ``stream``;
- the router's own keys (``private``, ``trace``, ``models``, ``provider``) as on
  every surface.

The ``anthropic-version`` header is accepted as sent (any dated version); a
malformed one is a 400.  ``anthropic-beta`` is passed on to anthropic-wire
upstreams (the body may use the beta features it names).  The whole body is kept
in ``raw``: an anthropic-wire upstream receives it as it came (model replaced).

The encoders are in ``messages_encode``.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson
from interlock.runtime.asgi_types import RawHeaders
from interlock.runtime.canonical import CanonicalRequest, CanonicalResponse, Message, Part, ToolSpec
from interlock.runtime.errors import RequestError
from interlock.runtime.surfaces.check import (
    bad,
    opt_bool,
    opt_int,
    opt_number,
    opt_str,
    opt_str_list,
)
from interlock.runtime.surfaces.messages_encode import MessagesStreamEncoder, encode_message
from interlock.runtime.surfaces.shapes import ANTHROPIC_ERRORS
from interlock.runtime.surfaces.spec import Surface

_VERSION: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SKIPPED_BLOCKS: Final = frozenset({
    "redacted_thinking", "document", "search_result", "server_tool_use",
    "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "container_upload", "mcp_tool_use", "mcp_tool_result",
})


def check_version(headers: RawHeaders) -> dict[str, str]:
    """A 400 for a malformed ``anthropic-version`` header (absent is fine); returns
    the headers an anthropic-wire upstream must also see (``anthropic-beta``: the
    beta features the body may use, e.g. Claude Code's ``context_management``)."""
    out: dict[str, str] = {}
    for name, value in headers:
        if name == b"anthropic-version":
            if not _VERSION.match(value.decode("latin-1").strip()):
                raise RequestError(400, "anthropic-version must be a date such as 2023-06-01",
                                   param="anthropic-version", code="invalid_header")
        elif name == b"anthropic-beta":
            beta = value.decode("latin-1").strip()
            out["anthropic-beta"] = f"{out['anthropic-beta']},{beta}" \
                if "anthropic-beta" in out else beta
    return out


def decode_messages(body: Any, *, count_only: bool = False) -> CanonicalRequest:
    """Validate a Messages API body and build the canonical request.

    ``count_only`` (``count_tokens``): ``max_tokens`` is not required.
    """
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object", code="invalid_body")
    model = opt_str(body, "model")
    if model is None:
        raise bad("model", "model: Field required", code="missing_required")
    max_tokens = opt_int(body, "max_tokens", minimum=1)
    if max_tokens is None and not count_only:
        raise bad("max_tokens", "max_tokens: Field required", code="missing_required")
    raw_msgs = body.get("messages")
    if not isinstance(raw_msgs, list):
        raise bad("messages", "messages: Field required (an array of messages)",
                  code="missing_required")
    messages = [_message(m, i) for i, m in enumerate(raw_msgs)]
    if not count_only and not messages:
        raise bad("messages", "messages: at least one message is required", code="empty_array")
    stops = opt_str_list(body, "stop_sequences") or []
    controls: dict[str, Any] = {}
    for key in ("models", "allowed_models"):
        names = opt_str_list(body, key)
        if names is not None:
            controls[key] = names
    if isinstance(body.get("provider"), dict):
        controls["provider"] = body["provider"]
    opt_int(body, "top_k", minimum=0)
    if "metadata" in body and not isinstance(body["metadata"], dict | None):
        raise bad("metadata", "metadata: must be an object")
    if "thinking" in body and not isinstance(body["thinking"], dict | None):
        raise bad("thinking", "thinking: must be an object")
    stream = opt_bool(body, "stream") or False
    return CanonicalRequest(
        surface="messages", messages=messages, model=model, system=_system(body.get("system")),
        tools=_tools(body.get("tools")), tool_choice=_tool_choice(body.get("tool_choice")),
        stream=stream, include_usage=stream, max_tokens=max_tokens,
        temperature=opt_number(body, "temperature", 0.0, 1.0),
        top_p=opt_number(body, "top_p", 0.0, 1.0), stop=stops,
        private=opt_bool(body, "private"), trace=opt_bool(body, "trace") or False,
        controls=controls, raw=body,
    )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise bad(where, f"{where}: must be a string")
    return value


def _system(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for i, block in enumerate(system):
            where = f"system.{i}"
            if not isinstance(block, dict) or block.get("type") != "text":
                raise bad(f"{where}.type", f"{where}: system blocks must be text blocks",
                          code="invalid_value")
            texts.append(_text(block.get("text"), f"{where}.text"))
        return "\n\n".join(texts)
    raise bad("system", "system: must be a string or an array of text blocks")


def _message(m: Any, i: int) -> Message:
    where = f"messages.{i}"
    if not isinstance(m, dict):
        raise bad(where, f"{where}: must be an object with role and content")
    role = m.get("role")
    if role not in ("user", "assistant", "system"):
        raise bad(f"{where}.role", f"{where}.role: must be 'user', 'assistant' or 'system' "
                  f"(got {role!r})", code="invalid_value")
    content = m.get("content")
    if isinstance(content, str):
        return Message(role, [Part("text", content)])
    if role == "system" and isinstance(content, list):
        # mid-conversation system messages (Claude Code sends them): text only
        return Message("system", [Part("text", _system(content))])
    if not isinstance(content, list):
        raise bad(f"{where}.content", f"{where}.content: must be a string or an array of "
                  "content blocks", code="missing_required" if content is None else
                  "invalid_type")
    parts: list[Part] = []
    for j, block in enumerate(content):
        part = _block(block, f"{where}.content.{j}", role)
        if part is not None:
            parts.append(part)
    return Message(role, parts)


def _block(b: Any, where: str, role: str) -> Part | None:
    if not isinstance(b, dict):
        raise bad(where, f"{where}: must be a content block object")
    kind = b.get("type")
    if kind == "text":
        return Part("text", _text(b.get("text"), f"{where}.text"))
    if kind == "image":
        return _image(b.get("source"), f"{where}.source")
    if kind == "tool_use":
        if role != "assistant":
            raise bad(f"{where}.type", f"{where}: tool_use blocks belong in assistant turns",
                      code="invalid_value")
        tid = _text(b.get("id"), f"{where}.id")
        name = _text(b.get("name"), f"{where}.name")
        args = b.get("input", {})
        if not isinstance(args, dict):
            raise bad(f"{where}.input", f"{where}.input: must be an object")
        return Part("tool_call", tool_call_id=tid, name=name,
                    arguments=orjson.dumps(args).decode())
    if kind == "tool_result":
        if role != "user":
            raise bad(f"{where}.type", f"{where}: tool_result blocks belong in user turns",
                      code="invalid_value")
        tid = _text(b.get("tool_use_id"), f"{where}.tool_use_id")
        return Part("tool_result", text=_result_text(b.get("content"), f"{where}.content"),
                    tool_call_id=tid, is_error=bool(b.get("is_error")))
    if kind == "thinking":
        return Part("thinking", text=_text(b.get("thinking", ""), f"{where}.thinking"))
    if kind in _SKIPPED_BLOCKS:
        return None
    raise bad(f"{where}.type", f"{where}.type: unsupported content block type {kind!r} "
              "(supported: text, image, tool_use, tool_result, thinking)", code="invalid_value")


def _image(src: Any, where: str) -> Part:
    if not isinstance(src, dict):
        raise bad(where, f"{where}: must be an object (base64 or url source)",
                  code="missing_required")
    kind = src.get("type")
    if kind == "base64":
        media = _text(src.get("media_type"), f"{where}.media_type")
        data = _text(src.get("data"), f"{where}.data")
        return Part("image", image_url=f"data:{media};base64,{data}", media_type=media,
                    data=data)
    if kind == "url":
        url = _text(src.get("url"), f"{where}.url")
        if not url.startswith(("http://", "https://")):
            raise bad(f"{where}.url", f"{where}.url: must be an http(s) URL",
                      code="invalid_value")
        return Part("image", image_url=url)
    raise bad(f"{where}.type", f"{where}.type: image sources are 'base64' or 'url'",
              code="invalid_value")


def _result_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for k, block in enumerate(content):
            if isinstance(block, dict) and block.get("type") == "text":
                texts.append(_text(block.get("text"), f"{where}.{k}.text"))
            elif not isinstance(block, dict) or block.get("type") not in ("image", "document",
                                                                           "search_result"):
                raise bad(f"{where}.{k}", f"{where}.{k}: tool results hold text or image blocks")
        return "\n".join(texts)
    raise bad(where, f"{where}: must be a string or an array of blocks")


def _tools(tools: Any) -> list[ToolSpec]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad("tools", "tools: must be an array")
    out = []
    for k, t in enumerate(tools):
        where = f"tools.{k}"
        if not isinstance(t, dict):
            raise bad(where, f"{where}: must be an object")
        if t.get("type") not in (None, "custom"):
            continue  # a server tool (bash, web_search ...): only an anthropic upstream has it
        name = _text(t.get("name"), f"{where}.name")
        desc = t.get("description", "")
        if not isinstance(desc, str):
            raise bad(f"{where}.description", f"{where}.description: must be a string")
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            raise bad(f"{where}.input_schema", f"{where}.input_schema: Field required "
                      "(a JSON Schema object)", code="missing_required")
        out.append(ToolSpec(name, desc, schema))
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise bad("tool_choice", "tool_choice: must be {type: auto|any|none} or "
              "{type: tool, name: ...}", code="invalid_value")


# -- the surface, for the pipeline ------------------------------------------------------


def _decode(body: dict[str, Any], headers: RawHeaders) -> CanonicalRequest:
    passed_on = check_version(headers)
    req = decode_messages(body)
    req.headers = passed_on
    return req


def _encode(resp: CanonicalResponse, model_name: str, req: CanonicalRequest) -> dict[str, Any]:
    return encode_message(resp, model_name=model_name)


def _encoder(req: CanonicalRequest, model_name: str) -> MessagesStreamEncoder:
    return MessagesStreamEncoder(model_name=model_name)


#: ``POST /v1/messages``
MESSAGES: Final = Surface("messages", _decode, _encode, _encoder, ANTHROPIC_ERRORS)
