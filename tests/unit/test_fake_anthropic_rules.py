"""The fake Anthropic upstream refuses what the real Messages API refuses."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.anthropic_fake import invalid_request

USE = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}


def body(*messages: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 100, "messages": list(messages), **kw}


def test_a_tool_loop_is_accepted() -> None:
    assert invalid_request(body({"role": "user", "content": "Weather?"},
                                {"role": "assistant", "content": [USE]},
                                {"role": "user", "content": [RESULT]})) is None


@pytest.mark.parametrize(("b", "start"), [
    ({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}, "max_tokens"),
    (body(), "messages"),
    (body({"role": "system", "content": "Be brief."}), 'messages: Unexpected role "system"'),
    (body({"role": "user", "content": [RESULT]}), "messages.0.content.0"),
    (body({"role": "user", "content": "Weather?"}, {"role": "assistant", "content": [USE]},
          {"role": "user", "content": "and?"}, {"role": "user", "content": [RESULT]}),
     "messages.3.content.0"),  # the tool_use must be in the message just before
])
def test_refused(b: dict[str, Any], start: str) -> None:
    refused = invalid_request(b)
    assert refused is not None and refused.startswith(start)
