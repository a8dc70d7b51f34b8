"""JSON Schemas (2020-12) of the four documents, and validation with positions.

The schemas are generated from the pydantic models (``compiler/model.py`` and
``runtime/table.py``) and committed under ``schemas/`` (a test keeps them equal
to the generated ones).  Validation reads the *packaged* files through
``importlib.resources`` so it behaves the same from an installed wheel.

Every schema error becomes an E101 diagnostic at the offending node's
``file:line:col`` with its dotted path, the bad value and a hint; all errors of
a document are reported together, not only the first.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from interlock.compiler.diagnostics import Diagnostic, NodePath, did_you_mean
from interlock.compiler.load import Loaded
from interlock.compiler.model import CatalogFile, Profile, RouterConfig
from interlock.runtime.table import DecisionTable
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

Kind = Literal["router", "profile", "catalog", "decision-table"]
KINDS: tuple[Kind, ...] = ("router", "profile", "catalog", "decision-table")
SCHEMA_BASE = "https://interlock.dev/schemas/"
CATEGORY_PATTERN = r"^(pii|secrets|code|tag:[a-z0-9][a-z0-9_-]*)$"

_MODELS: dict[Kind, type[BaseModel]] = {
    "router": RouterConfig,
    "profile": Profile,
    "catalog": CatalogFile,
    "decision-table": DecisionTable,
}
_TITLES: dict[Kind, tuple[str, str]] = {
    "router": ("interlock router.yaml",
               "The user's router configuration: profile, providers, extra models, "
               "per-task overrides, rules, tags and server settings."),
    "profile": ("interlock routing profile",
                "Objective weights, locality, privacy, escalation, chain strategy, "
                "budgets, rules, pins and discovery."),
    "catalog": ("interlock catalog",
                "Providers (wire, base URL, auth, locality, data handling) and models "
                "(context, price, capabilities, quality, speed)."),
    "decision-table": ("interlock decision table",
                       "The compiled, hashed routing table (router.lock.json) that the "
                       "runtime executes."),
}

M = TypeVar("M", bound=BaseModel)


def schema_filename(kind: Kind) -> str:
    return f"{kind}.schema.json"


def generate_schema(kind: Kind) -> dict[str, Any]:
    """The JSON Schema of ``kind``, generated from its pydantic model."""
    body = _MODELS[kind].model_json_schema(mode="validation")
    _add_category_pattern(body)
    title, description = _TITLES[kind]
    body.pop("title", None)
    body.pop("description", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE + schema_filename(kind),
        "title": title,
        "description": description,
        **body,
    }


def _add_category_pattern(node: Any) -> None:
    """``private_when`` items are plain strings in pydantic; the schema constrains them."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and "private_when" in props:
            for branch in [props["private_when"], *props["private_when"].get("anyOf", [])]:
                if branch.get("type") == "array":
                    branch["items"] = {"type": "string", "pattern": CATEGORY_PATTERN}
        for value in node.values():
            _add_category_pattern(value)
    elif isinstance(node, list):
        for value in node:
            _add_category_pattern(value)


def render_schema(kind: Kind) -> str:
    return json.dumps(generate_schema(kind), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write all four schemas into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = directory / schema_filename(kind)
        path.write_text(render_schema(kind), encoding="utf-8")
        written.append(path)
    return written


@functools.cache
def schema_for(kind: Kind) -> dict[str, Any]:
    """The packaged (committed) schema of ``kind``."""
    text = resources.files("interlock.schemas").joinpath(schema_filename(kind)).read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


@functools.cache
def _validator(kind: Kind) -> Draft202012Validator:
    return Draft202012Validator(schema_for(kind))


# --------------------------------------------------------------------------- validation


def validate(kind: Kind, loaded: Loaded) -> list[Diagnostic]:
    """Every schema error of the document, as E101 diagnostics (empty when valid)."""
    data = {} if loaded.data is None else loaded.data
    errors = sorted(_validator(kind).iter_errors(data), key=_error_order)
    out: list[Diagnostic] = []
    for error in errors:
        out.extend(_diagnose(error, loaded))
    return out


def validate_data(kind: Kind, data: Any) -> list[str]:
    """Schema errors of plain data (no positions), e.g. an emitted table."""
    return [f"{_path_text(e.absolute_path)}: {e.message}" for e in
            sorted(_validator(kind).iter_errors(data), key=_error_order)]


def parse(kind: Kind, loaded: Loaded, model: type[M]) -> tuple[M | None, list[Diagnostic]]:
    """Validate against the schema, then build the pydantic model."""
    diags = validate(kind, loaded)
    if diags:
        return None, diags
    try:
        return model.model_validate({} if loaded.data is None else loaded.data), []
    except PydanticError as exc:
        return None, [
            loaded.diag("E101", f"{err['msg']} (got {_show(err.get('input'))})",
                        tuple(err["loc"]))
            for err in exc.errors()
        ]


def _error_order(error: ValidationError) -> tuple[str, str]:
    return (_path_text(error.absolute_path), error.message)


def _path_text(path: Iterable[Any]) -> str:
    return "/".join(str(p) for p in path)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _diagnose(error: ValidationError, loaded: Loaded) -> list[Diagnostic]:
    path: NodePath = tuple(error.absolute_path)
    value, schema, kind = error.instance, error.schema, error.validator
    expected: Any = error.validator_value
    if kind in ("anyOf", "oneOf") and error.context:
        # Optional[X] is anyOf [X, null]: the interesting branch is X.
        branches = [e for e in error.context if e.schema != {"type": "null"}] or error.context
        best = best_match(branches)
        if best is not None:
            return _diagnose(best, loaded)
    if kind == "additionalProperties" and isinstance(value, dict) and isinstance(schema, dict):
        allowed = sorted(schema.get("properties", {}))
        return [
            loaded.diag("E101", f"unknown key '{extra}'{did_you_mean(extra, allowed)}",
                        (*path, extra), key=True, hint="allowed keys: " + ", ".join(allowed))
            for extra in sorted(set(value) - set(allowed))
        ]
    if "propertyNames" in error.absolute_schema_path:
        # a mapping key outside an enum (overrides.cod): reported at the key itself
        names = schema.get("enum", []) if isinstance(schema, dict) else []
        allowed = [str(v) for v in names]
        return [loaded.diag("E101", f"unknown key '{value}'{did_you_mean(str(value), allowed)}",
                            (*path, str(value)), key=True,
                            hint="allowed keys: " + ", ".join(allowed))]
    if kind == "required" and isinstance(value, dict):
        missing = [r for r in expected if r not in value]
        return [loaded.diag("E101", f"missing required key '{m}'", path, key=True,
                            hint=f"add '{m}:' here") for m in missing]
    if kind in ("enum", "const"):
        allowed = [str(v) for v in (expected if kind == "enum" else [expected])]
        near = did_you_mean(str(value), allowed) if isinstance(value, str) else ""
        return [loaded.diag("E101", f"{_show(value)} is not allowed{near}", path,
                            hint="allowed values: " + ", ".join(allowed))]
    if kind == "type":
        return [loaded.diag("E101", f"expected {_type_words(error.validator_value)}, "
                            f"got {_json_type(value)} {_show(value)}", path)]
    if kind == "pattern" and error.validator_value == CATEGORY_PATTERN:
        near = did_you_mean(str(value), ["pii", "secrets", "code"])
        return [loaded.diag("E101", f"{_show(value)} is not a privacy category{near}", path,
                            hint=_pattern_hint(CATEGORY_PATTERN))]
    if kind == "pattern":
        return [loaded.diag("E101", f"{_show(value)} does not match {error.validator_value}",
                            path, hint=_pattern_hint(str(error.validator_value)))]
    # jsonschema's own messages already start with the value ("-1 is less than ...")
    return [loaded.diag("E101", error.message, path)]


def _type_words(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(_type_words(t) for t in expected)
    return {"object": "a mapping", "array": "a list", "string": "a string",
            "integer": "an integer", "number": "a number", "boolean": "true or false",
            "null": "null"}.get(str(expected), str(expected))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "mapping"


def _pattern_hint(pattern: str) -> str:
    if pattern == CATEGORY_PATTERN:
        return "a privacy category is pii, secrets, code or tag:NAME"
    return "lower-case letters, digits and - (see the schema)"
