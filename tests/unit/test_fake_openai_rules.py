"""The fake OpenAI upstream refuses what the real chat-completions API refuses, so a
body the router rebuilt wrongly fails in tests as it would in production."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.openai_fake import invalid_messages

CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "Hi"}],
    [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None,
                                         "tool_calls": [CALL]},
     {"role": "tool", "tool_call_id": "call_1", "content": "18C"}],
])
def test_accepted(messages: list[dict[str, Any]]) -> None:
    assert invalid_messages(messages) is None


@pytest.mark.parametrize(("messages", "param"), [
    ([], "messages"),
    ([{"role": "model", "content": "Hi"}], "messages.[0].role"),
    ([{"role": "user"}], "messages.[0].content"),
    ([{"role": "assistant", "content": None}], "messages.[0].content"),
    ([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}],
     "messages.[0].tool_calls.[0]"),
    ([{"role": "tool", "content": "18C"}], "messages.[0].tool_call_id"),
    ([{"role": "user", "content": "Hi"}, {"role": "tool", "tool_call_id": "call_9",
                                          "content": "18C"}], "messages.[1].role"),
])
def test_refused(messages: list[dict[str, Any]], param: str) -> None:
    bad = invalid_messages(messages)
    assert bad is not None and bad[0] == param
