"""The chat page's conversation store: auto titles, migrations, messages, deletion."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from interlock.runtime.conversations import (
    MIGRATIONS,
    TITLE_CHARS,
    UNTITLED,
    ConversationStore,
    auto_title,
)


@pytest.mark.parametrize(("text", "title"), [
    ("What is the capital of France?", "What is the capital of France?"),
    ("Please write a haiku about the sea and the wind", "Please write a haiku about the…"),
    ("  spaced\n\tout   words  ", "spaced out words"),
    ("", UNTITLED),
    ("   \n ", UNTITLED),
])
def test_auto_title_takes_the_first_six_words(text: str, title: str) -> None:
    assert auto_title(text) == title


def test_auto_title_is_deterministic_and_bounded() -> None:
    long_word = "x" * 200
    title = auto_title(long_word + " more")
    assert title == auto_title(long_word + " more")
    assert len(title) == TITLE_CHARS + 1 and title.endswith("…")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConversationStore]:
    s = ConversationStore(tmp_path / "sub" / "interlock.db")
    yield s
    s.close()


def test_the_first_user_message_names_the_conversation(store: ConversationStore) -> None:
    conv = store.create()
    assert conv.to_json()["title"] == UNTITLED
    store.add_message(conv.id, "system", "You are terse.")
    store.add_message(conv.id, "user", "How do I reverse a list in Python quickly?")
    store.add_message(conv.id, "assistant", "xs[::-1]", {"model": "loc/m", "local": True})
    store.add_message(conv.id, "user", "And a string?")
    got = store.get(conv.id)
    assert got is not None
    assert got.title == "How do I reverse a list…"
    assert [m.role for m in got.messages or []] == ["system", "user", "assistant", "user"]
    assert (got.messages or [])[2].meta == {"model": "loc/m", "local": True}
    assert got.to_json()["message_count"] == 4


def test_an_explicit_title_is_kept(store: ConversationStore) -> None:
    conv = store.create("  My   notes ")
    store.add_message(conv.id, "user", "something else entirely here")
    got = store.get(conv.id)
    assert got is not None and got.title == "My notes"


def test_list_is_most_recent_first_with_counts(store: ConversationStore) -> None:
    a = store.create(now=100.0)
    b = store.create(now=200.0)
    store.add_message(a.id, "user", "later message", now=300.0)
    listed = store.list()
    assert [c.id for c in listed] == [a.id, b.id]
    assert [c.message_count for c in listed] == [1, 0]
    assert len(store.list(limit=1)) == 1


def test_unknown_ids_and_bad_roles(store: ConversationStore) -> None:
    assert store.get("conv_nope") is None
    assert store.add_message("conv_nope", "user", "hi") is None
    assert store.delete("conv_nope") is False
    conv = store.create()
    with pytest.raises(ValueError, match="role"):
        store.add_message(conv.id, "tool", "hi")


def test_delete_removes_the_messages_too(store: ConversationStore, tmp_path: Path) -> None:
    conv = store.create()
    store.add_message(conv.id, "user", "hello")
    assert store.delete(conv.id) is True
    assert store.get(conv.id) is None
    db = sqlite3.connect(tmp_path / "sub" / "interlock.db")
    assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    db.close()


def test_migrations_run_once_and_leave_other_tables_alone(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE requests (id TEXT PRIMARY KEY)")
    other.execute("INSERT INTO requests VALUES ('r1')")
    other.execute("PRAGMA user_version = 7")
    other.commit()
    other.close()
    first = ConversationStore(path)
    conv = first.create()
    first.add_message(conv.id, "user", "kept across reopen")
    first.close()
    again = ConversationStore(path)  # re-running the migrations must be a no-op
    assert again.schema_version() == len(MIGRATIONS)
    got = again.get(conv.id)
    assert got is not None and got.title == "kept across reopen"
    again.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT id FROM requests").fetchall() == [("r1",)]
    assert db.execute("PRAGMA user_version").fetchone() == (7,)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
