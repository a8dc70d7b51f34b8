"""Safe YAML loading with positions.

ruamel's parser turns the text into events (nothing is constructed, so no tag
can run code); this module builds plain ``dict``/``list``/scalar data from the
events itself, recording the 1-based ``(line, col)`` of every value and
mapping key by dotted path.  Along the way it refuses, quickly and with a
position:

* files over :data:`MAX_BYTES` (E102), before parsing;
* any tag outside plain YAML (``!!python/object``, ``!custom``, ``!!binary`` ...) (E102);
* alias bombs: too many alias references, or an expansion that grows much larger
  than the document (E102); recursive aliases and absurd nesting (E102);
* syntax errors and duplicate keys (E100).

Timestamps stay strings (``2025-01-15``): the schemas say ``format: date`` and
pydantic parses them, so the loaded data is always plain JSON.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interlock.compiler.diagnostics import ConfigError, Diagnostic, NodePath, Severity, dotted
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingStartEvent,
    ScalarEvent,
)
from ruamel.yaml.nodes import ScalarNode

MAX_BYTES = 1024 * 1024
MAX_ALIASES = 100
MAX_DEPTH = 64
#: an expansion may add this many nodes beyond twice the document's own size
EXPANSION_SLACK = 10_000

_YAML_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(
    _YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")
)
_SEQ_TAG = _YAML_TAG + "seq"
_MAP_TAG = _YAML_TAG + "map"
_MERGE_TAG = _YAML_TAG + "merge"

Position = tuple[int, int]


@dataclass(frozen=True)
class Loaded:
    """A YAML document as plain data plus the position of every node."""

    origin: str
    data: Any
    positions: Mapping[NodePath, Position] = field(default_factory=dict)
    key_positions: Mapping[NodePath, Position] = field(default_factory=dict)
    raw: bytes = b""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    def position(self, path: Sequence[str | int], *, key: bool = False) -> Position | None:
        """``(line, col)`` of the node at ``path`` (of its key when ``key``), else of the
        nearest parent that has one."""
        p = tuple(path)
        while True:
            if key and p in self.key_positions:
                return self.key_positions[p]
            if p in self.positions:
                return self.positions[p]
            if not p:
                return None
            p = p[:-1]

    def diag(
        self,
        code: str,
        message: str,
        path: Sequence[str | int] = (),
        *,
        hint: str = "",
        key: bool = False,
        severity: Severity | None = None,
    ) -> Diagnostic:
        """A diagnostic positioned at ``path`` in this document."""
        pos = self.position(path, key=key)
        return Diagnostic(
            code=code,
            severity=severity or ("warning" if code.startswith("W") else "error"),
            message=message,
            file=self.origin,
            line=pos[0] if pos else None,
            col=pos[1] if pos else None,
            path=dotted(path),
            hint=hint,
        )


def _err(origin: str, code: str, message: str, mark: Any, hint: str = "") -> ConfigError:
    line = col = None
    if mark is not None:
        line, col = mark.line + 1, mark.column + 1
    return ConfigError([Diagnostic(code, "error", message, origin, line, col, hint=hint)])


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG):] if tag.startswith(_YAML_TAG) else tag


@dataclass
class _Frame:
    """An open collection while walking the event stream."""

    path: NodePath
    value: dict[str, Any] | list[Any]
    anchor: str | None
    size: int = 1
    key: str | None = None
    key_is_merge: bool = False
    merges: list[tuple[Any, Any]] = field(default_factory=list)


class _Builder:
    """Builds plain data from parser events in one pass, with positions and limits.

    Working from events (not a composed node graph) means nothing is ever
    constructed from a tag, nesting depth is known before any recursion, and an
    alias costs its anchor's size, so a bomb is refused at the alias that would
    blow up, not after expanding it.
    """

    def __init__(self, origin: str, yaml: YAML) -> None:
        self.origin = origin
        self.resolver = yaml.resolver
        self.positions: dict[NodePath, Position] = {}
        self.key_positions: dict[NodePath, Position] = {}
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.documents = 0
        self.distinct = self.expanded = self.aliases = 0

    def run(self, events: Iterable[Any]) -> Any:
        for event in events:
            if isinstance(event, DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    raise _err(self.origin, "E100", "more than one YAML document (---)",
                               event.start_mark, "a configuration file holds one document")
            elif isinstance(event, ScalarEvent):
                self.scalar(event)
            elif isinstance(event, CollectionStartEvent):
                self.open(event)
            elif isinstance(event, CollectionEndEvent):
                self.close()
            elif isinstance(event, AliasEvent):
                self.alias(event)
        return self.root

    def path(self) -> NodePath:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        return (*top.path, top.key) if top.key is not None else top.path

    def scalar(self, event: ScalarEvent) -> None:
        tag = str(event.tag) if event.tag not in (None, "!") else None
        if tag is None:
            tag = str(self.resolver.resolve(ScalarNode, event.value, event.implicit))
        if tag not in _SCALAR_TAGS and tag != _MERGE_TAG:
            raise self.bad_tag(tag, event)
        top = self.stack[-1] if self.stack else None
        if top is not None and isinstance(top.value, dict) and top.key is None:
            key = str(event.value)
            if key in top.value:
                first = self.key_positions.get((*top.path, key))
                where = f" (first at line {first[0]})" if first else ""
                raise _err(self.origin, "E100", f"duplicate key '{key}'{where}",
                           event.start_mark, "each key may appear once in a mapping")
            top.key, top.key_is_merge = key, tag == _MERGE_TAG
            self.key_positions[(*top.path, key)] = _pos(event.start_mark)
            self.distinct += 1
            self.expanded += 1
            top.size += 1
            return
        self.distinct += 1
        self.expanded += 1
        self.emit(_scalar(tag, str(event.value)), 1, event.anchor, event.start_mark)

    def open(self, event: Any) -> None:
        want = _MAP_TAG if isinstance(event, MappingStartEvent) else _SEQ_TAG
        tag = str(event.tag) if event.tag not in (None, "!") else want
        if tag != want:
            raise self.bad_tag(tag, event)
        if len(self.stack) >= MAX_DEPTH:
            raise _err(self.origin, "E102", f"nesting deeper than {MAX_DEPTH} levels",
                       event.start_mark)
        top = self.stack[-1] if self.stack else None
        if top is not None and isinstance(top.value, dict) and top.key is None:
            raise _err(self.origin, "E100", "mapping keys must be plain scalars",
                       event.start_mark)
        path = self.path()
        self.positions.setdefault(path, _pos(event.start_mark))
        if event.anchor:
            self.open_anchors.add(event.anchor)
        self.distinct += 1
        self.expanded += 1
        value: dict[str, Any] | list[Any] = {} if want == _MAP_TAG else []
        self.stack.append(_Frame(path=path, value=value, anchor=event.anchor))

    def close(self) -> None:
        frame = self.stack.pop()
        if isinstance(frame.value, dict):
            for merged, mark in frame.merges:
                sources = merged if isinstance(merged, list) else [merged]
                for src in sources:
                    if not isinstance(src, dict):
                        raise _err(self.origin, "E100", "'<<' merges only mappings", mark)
                    for k, v in src.items():
                        frame.value.setdefault(k, v)
        if frame.anchor:
            self.open_anchors.discard(frame.anchor)
        self.emit(frame.value, frame.size, frame.anchor, None, placed=True)

    def alias(self, event: AliasEvent) -> None:
        name = str(event.anchor)
        if name in self.open_anchors:
            raise _err(self.origin, "E102", "recursive alias", event.start_mark,
                       "an anchor cannot contain an alias to itself")
        if name not in self.anchors:
            raise _err(self.origin, "E100", f"undefined alias '*{name}'", event.start_mark)
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise _err(self.origin, "E102", f"more than {MAX_ALIASES} alias references",
                       event.start_mark,
                       "write the repeated values out; configs rarely need aliases")
        value, size = self.anchors[name]
        self.expanded += size
        if self.expanded > 2 * self.distinct + EXPANSION_SLACK:
            raise _err(self.origin, "E102",
                       f"alias '*{name}' expands the document to over {self.expanded} nodes "
                       f"from {self.distinct} (an alias bomb?)", event.start_mark,
                       "aliases may not multiply the document; write values out instead")
        self.emit(value, size, None, event.start_mark)

    def emit(self, value: Any, size: int, anchor: str | None, mark: Any,
             placed: bool = False) -> None:
        """Attach a finished value to its parent (``placed``: position already known)."""
        if anchor:
            self.anchors[anchor] = (value, size)
        if not placed and mark is not None:
            self.positions.setdefault(self.path(), _pos(mark))
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.value, list):
            top.value.append(value)
        elif top.key_is_merge:
            top.merges.append((value, mark))
            top.key, top.key_is_merge = None, False
        else:
            assert top.key is not None
            top.value[top.key] = value
            top.key = None

    def bad_tag(self, tag: str, event: Any) -> ConfigError:
        return _err(
            self.origin, "E102", f"tag '{_show_tag(tag)}' is not allowed", event.start_mark,
            "only plain YAML is accepted: mappings, lists, strings, numbers, booleans, null",
        )


def _pos(mark: Any) -> Position:
    return (mark.line + 1, mark.column + 1)


def _scalar(tag: str, text: str) -> Any:
    if tag == _YAML_TAG + "null":
        return None
    if tag == _YAML_TAG + "bool":
        return text.lower() in ("true", "yes", "on", "y")
    if tag == _YAML_TAG + "int":
        s = text.replace("_", "")
        sign = -1 if s.startswith("-") else 1
        s = s.lstrip("+-")
        for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
            if s.lower().startswith(prefix):
                return sign * int(s[2:], base)
        return sign * int(s, 10)
    if tag == _YAML_TAG + "float":
        s = text.replace("_", "").lower()
        if s.lstrip("+-") in (".inf", "inf"):
            return float("-inf") if s.startswith("-") else float("inf")
        if s in (".nan", "nan"):
            return float("nan")
        return float(s)
    return text  # str, timestamp (kept as written)


def load_bytes(raw: bytes, origin: str) -> Loaded:
    """Parse one YAML document safely; raises :class:`ConfigError` (E100/E102)."""
    if len(raw) > MAX_BYTES:
        raise ConfigError([Diagnostic(
            "E102", "error", f"file is {len(raw)} bytes, over the {MAX_BYTES}-byte limit",
            origin, hint="configuration files are small; is this the right file?",
        )])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Diagnostic(
            "E100", "error", f"not UTF-8 text (byte {exc.start})", origin,
        )]) from exc
    # "safe" only selects the scanner/parser here: no constructor ever runs, the
    # builder below reads events.  (The round-trip scanner would also gather
    # comments, which costs more than the whole rest of the load.)
    yaml = YAML(typ="safe", pure=True)
    builder = _Builder(origin, yaml)
    try:
        data = builder.run(yaml.parse(io.StringIO(text)))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigError([Diagnostic(
            "E100", "error", problem, origin,
            mark.line + 1 if mark else None, mark.column + 1 if mark else None,
            hint="check indentation, colons and quoting near this position",
        )]) from exc
    except YAMLError as exc:
        raise ConfigError([Diagnostic("E100", "error", str(exc).strip(), origin)]) from exc
    return Loaded(origin, data, builder.positions, builder.key_positions, raw)


def load_text(text: str, origin: str) -> Loaded:
    return load_bytes(text.encode("utf-8"), origin)


def load_file(path: Path, origin: str | None = None) -> Loaded:
    """Read and parse ``path`` (size-checked before reading)."""
    name = origin or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError([Diagnostic(
                "E102", "error", f"file is {size} bytes, over the {MAX_BYTES}-byte limit",
                name, hint="configuration files are small; is this the right file?",
            )])
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Diagnostic(
            "E100", "error", f"cannot read the file ({exc.strerror})", name,
        )]) from exc
    return load_bytes(raw, name)
