"""The chat page's conversations, kept in the router's SQLite file.

Two tables of their own, next to the request log in the same database file
(WAL mode, so the log's writer and this one do not block each other's readers)::

    conversations(id TEXT PK, title TEXT, created REAL, updated REAL)
    messages(id INTEGER PK, conversation_id TEXT → conversations ON DELETE CASCADE,
             role TEXT, content TEXT, meta TEXT (JSON), created REAL)

Their schema version lives in a table of their own, ``conversations_schema``, so
that the request log's migrations and these never step on each other; each entry
of :data:`MIGRATIONS` runs once, in order, in one transaction.

Titles are automatic and deterministic: the first user message, whitespace
collapsed, cut to :data:`TITLE_WORDS` words (and :data:`TITLE_CHARS` characters),
with an ellipsis when something was cut (:func:`auto_title`).

:class:`ConversationStore` is synchronous (``sqlite3``); the HTTP handlers call it
through ``asyncio.to_thread`` (see ``interlock.runtime.chatpage``).  One
connection, guarded by a lock, is enough for a page a person types into.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
from interlock.runtime.sqlbusy import until_not_busy

TITLE_WORDS: Final = 6
TITLE_CHARS: Final = 60
UNTITLED: Final = "New conversation"
#: how long opening the file waits for another worker that is setting it up
OPEN_TIMEOUT_S: Final = 10.0
ROLES: Final = frozenset(("system", "user", "assistant"))

#: Schema steps, applied in order; never edit one that shipped, append a new one.
MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    CREATE INDEX conversations_by_update ON conversations(updated DESC);
    """,
)


def auto_title(text: str) -> str:
    """A conversation's title from its first user message (deterministic)."""
    words = text.split()
    if not words:
        return UNTITLED
    title = " ".join(words[:TITLE_WORDS])
    cut = len(words) > TITLE_WORDS
    if len(title) > TITLE_CHARS:
        title = title[:TITLE_CHARS].rstrip()
        cut = True
    return title + "…" if cut else title


@dataclass(slots=True)
class Message:
    id: int
    role: str
    content: str
    created: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "content": self.content,
                "created": self.created, "meta": self.meta}


@dataclass(slots=True)
class Conversation:
    id: str
    title: str
    created: float
    updated: float
    message_count: int = 0
    messages: list[Message] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "object": "conversation",
                               "title": self.title or UNTITLED,
                               "created": self.created, "updated": self.updated,
                               "message_count": self.message_count}
        if self.messages is not None:
            out["messages"] = [m.to_json() for m in self.messages]
        return out


class ConversationStore:
    """Conversations and their messages in a SQLite file (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=OPEN_TIMEOUT_S)
        # every worker opens the file on its first request: another may be setting it up
        until_not_busy(self._set_up, OPEN_TIMEOUT_S)

    def _set_up(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    # -- schema ------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("CREATE TABLE IF NOT EXISTS conversations_schema "
                           "(version INTEGER NOT NULL)")
                row = db.execute("SELECT max(version) FROM conversations_schema").fetchone()
                current = int(row[0] or 0)
                for version, script in enumerate(MIGRATIONS, start=1):
                    if version <= current:
                        continue
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO conversations_schema(version) VALUES (?)",
                               (version,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT max(version) FROM conversations_schema").fetchone()
        return int(row[0] or 0)

    # -- reads -------------------------------------------------------------------

    def list(self, limit: int = 100) -> list[Conversation]:
        """The most recently updated conversations first (without their messages)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, c.title, c.created, c.updated, "
                "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) "
                "FROM conversations c ORDER BY c.updated DESC, c.id LIMIT ?",
                (limit,),
            ).fetchall()
        return [Conversation(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def get(self, conversation_id: str) -> Conversation | None:
        """One conversation with all its messages, or None."""
        with self._lock:
            head = self._db.execute(
                "SELECT id, title, created, updated FROM conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if head is None:
                return None
            rows = self._db.execute(
                "SELECT id, role, content, created, meta FROM messages "
                "WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
        messages = [Message(r[0], r[1], r[2], r[3], orjson.loads(r[4])) for r in rows]
        return Conversation(head[0], head[1], head[2], head[3], len(messages), messages)

    # -- writes ------------------------------------------------------------------

    def create(self, title: str | None = None, now: float | None = None) -> Conversation:
        """A new, empty conversation; without ``title`` the first user message names it."""
        at = time.time() if now is None else now
        cid = "conv_" + uuid.uuid4().hex[:20]
        name = " ".join(title.split())[:TITLE_CHARS] if title else ""
        with self._lock:
            # an empty title means "not named yet": the first user message names it
            self._db.execute(
                "INSERT INTO conversations(id, title, created, updated) VALUES (?, ?, ?, ?)",
                (cid, name, at, at),
            )
        return Conversation(cid, name, at, at, 0, [])

    def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        meta: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> Message | None:
        """Append a message (None if the conversation does not exist).  The first
        user message of an untitled conversation gives it its title."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(sorted(ROLES))}")
        at = time.time() if now is None else now
        meta_json = orjson.dumps(meta or {}).decode()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                head = db.execute("SELECT title FROM conversations WHERE id = ?",
                                  (conversation_id,)).fetchone()
                if head is None:
                    db.execute("ROLLBACK")
                    return None
                cur = db.execute(
                    "INSERT INTO messages(conversation_id, role, content, meta, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (conversation_id, role, content, meta_json, at),
                )
                title = head[0]
                if role == "user" and not title and content.split():
                    title = auto_title(content)
                db.execute("UPDATE conversations SET updated = ?, title = ? WHERE id = ?",
                           (at, title, conversation_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return Message(int(cur.lastrowid or 0), role, content, at, meta or {})

    def delete(self, conversation_id: str) -> bool:
        """Delete a conversation and its messages; False if there was none."""
        with self._lock:
            cur = self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        return cur.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

