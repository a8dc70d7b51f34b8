"""The data shipped in the package: catalogs and built-in profiles.

Read through ``importlib.resources`` so it works from an installed wheel as well
as from the source tree.  Built-in files are named ``pkg:<dir>/<file>`` in
diagnostics and in the table's ``sources`` (stable across machines).
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from interlock.compiler.diagnostics import ConfigError, Diagnostic, did_you_mean
from interlock.compiler.load import Loaded, load_bytes

_YAML_SUFFIXES = (".yaml", ".yml")


def origin(directory: str, filename: str) -> str:
    """The name of a packaged file in diagnostics and sources: ``pkg:profiles/cost.yaml``."""
    return f"pkg:{directory}/{filename}"


def _files(package: str) -> list[Traversable]:
    root = resources.files(package)
    return sorted(
        (f for f in root.iterdir() if f.is_file() and f.name.endswith(_YAML_SUFFIXES)),
        key=lambda f: f.name,
    )


def catalog_files() -> list[Loaded]:
    """Every packaged catalog file (``catalog/*.yaml``), parsed, in name order."""
    return [load_bytes(f.read_bytes(), origin("catalog", f.name))
            for f in _files("interlock.catalog")]


def profile_names() -> list[str]:
    """Names of the built-in profiles, sorted."""
    return sorted(f.name.rsplit(".", 1)[0] for f in _files("interlock.profiles"))


def load_builtin_profile(name: str) -> Loaded:
    """The built-in profile ``name`` as loaded YAML; raises ConfigError (E004) if unknown."""
    for f in _files("interlock.profiles"):
        if f.name.rsplit(".", 1)[0] == name:
            return load_bytes(f.read_bytes(), origin("profiles", f.name))
    names = profile_names()
    raise ConfigError([Diagnostic(
        "E004", "error", f"unknown profile '{name}'{did_you_mean(name, names)}",
        hint="built-in profiles: " + (", ".join(names) or "none") + "; or give a path to a file",
    )])
