"""relayed_content: an Anthropic answer's blocks as relayed to a /v1/messages client."""

from __future__ import annotations

from typing import Any

from interlock.runtime.surfaces.messages_encode import relayed_content

THINK = {"type": "thinking", "thinking": "hm", "signature": "sig"}
TOOL = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}


def text(t: str, **kw: Any) -> dict[str, Any]:
    return {"type": "text", "text": t, **kw}


def test_unchanged_text_keeps_every_block_as_it_came() -> None:
    content = [THINK, text("Par", citations=[{"x": 1}]), text("is."), TOOL]
    assert relayed_content(content, "Paris.") is content


def test_changed_text_takes_the_first_text_blocks_place() -> None:
    content = [THINK, text("Paris."), text("\nconfidence: 0.9", citations=[]), TOOL]
    assert relayed_content(content, "Paris.") == [THINK, text("Paris."), TOOL]


def test_text_emptied_leaves_the_other_blocks() -> None:
    assert relayed_content([THINK, text("confidence: 0.9"), TOOL], "") == [THINK, TOOL]


def test_text_where_there_was_none_is_appended() -> None:
    assert relayed_content([TOOL], "note") == [TOOL, text("note")]
