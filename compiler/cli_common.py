"""Shared pieces of the ``router`` CLI: options, exit-code exceptions, and the
helpers the command modules use to find and compile a config (``cli_config``,
``cli_route``, ``cli_ops``, ``cli_logs``; ``cli`` assembles them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
import orjson
from interlock.compiler import api, builtin, doctor, schema
from interlock.compiler.diagnostics import ConfigError, Diagnostic, has_errors
from interlock.compiler.load import Loaded, load_file
from interlock.compiler.model import CatalogFile, ModelSpec, Profile, ProviderSpec
from interlock.runtime.table import DecisionTable, load_table

if TYPE_CHECKING:
    pass

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="text for people, json for machines")
PROFILE = click.option("--profile", "-p", metavar="NAME|FILE",
                       help="profile to compile with (overrides router.yaml's `profile:`)")
CONFIG_ARG = click.argument("config", required=False,
                            type=click.Path(dir_okay=False, path_type=Path))


# --------------------------------------------------------------------------- errors


class ConfigFailed(click.ClickException):
    """Invalid configuration: prints every diagnostic, exits 1."""

    exit_code = 1

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(f"{sum(d.is_error for d in diagnostics)} error(s)")
        self.diagnostics = diagnostics

    def show(self, file: IO[Any] | None = None) -> None:
        errors = sum(d.is_error for d in self.diagnostics)
        lines = [d.format(with_hint=True) for d in self.diagnostics]
        lines.append(f"Error: invalid configuration ({errors} error(s), "
                     f"{len(self.diagnostics) - errors} warning(s))")
        for line in lines:
            click.echo(line, file=file, err=file is None)


class Failed(click.ClickException):
    """A check that ran and failed (stale lock, failing case, broken provider): exit 1.

    The command has already printed the details; this only sets the exit code
    and a one-line verdict.
    """

    exit_code = 1


# --------------------------------------------------------------------------- shared helpers


def environ() -> dict[str, str]:
    return dict(os.environ)


def echo_json(data: object) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


def info(message: str) -> None:
    """Progress notes go to stderr so stdout stays clean for --format json and pipes."""
    click.echo(message, err=True)


def config_path(given: Path | None) -> Path | None:
    """The config to use: the one given, else ./router.yaml if present, else the built-in."""
    if given is not None:
        if not given.exists():
            raise click.BadParameter(f"{given} does not exist", param_hint="CONFIG")
        return given
    default = Path("router.yaml")
    return default if default.is_file() else None




def read_config_data(path: Path | None) -> Any:
    """router.yaml as plain data (safe loader), for the discovery decision only."""
    if path is None:
        return None
    try:
        return load_file(path).data
    except ConfigError:
        return {}  # the compile that follows reports the problem properly


def discovered_models(path: Path | None, profile: str | None, env: Mapping[str, str],
                      *, discover: bool) -> dict[str, list[str]]:
    """Ask Ollama what is installed when the config and profile want discovery."""
    if not discover:
        return {}
    url = doctor.discovery_url(read_config_data(path), profile, env)
    if url is None:
        return {}
    probe = doctor.probe_ollama(url)
    if probe.reachable:
        info(f"discovery: Ollama at {probe.url} has {len(probe.models)} model(s)")
    else:
        info(f"discovery: Ollama not reachable at {probe.url} ({probe.error}); "
             "compiling without installed models")
    return {"ollama": list(probe.models)}


def compile_config_at(path: Path | None, *, profile: str | None, discover: bool,
                      env: Mapping[str, str] | None = None) -> api.CompileResult:
    """Compile ``path`` (None: the built-in default); raises ConfigError on errors."""
    env = environ() if env is None else env
    found = discovered_models(path, profile, env, discover=discover)
    result = api.compile_config(path, profile=profile, environ=env, discovered=found)
    if result.table is None or has_errors(result.diagnostics):
        raise ConfigError(result.diagnostics)
    return result


def table_from(path: Path, *, profile: str | None = None, discover: bool = False
               ) -> DecisionTable:
    """A lock file (``*.json``) as is, or a router.yaml compiled in memory."""
    if path.suffix == ".json":
        return load_table(path)
    result = compile_config_at(path, profile=profile, discover=discover)
    assert result.table is not None
    return result.table


def table_for(config: Path | None, table: Path | None, *, profile: str | None,
              discover: bool) -> DecisionTable:
    """--table wins; else --config (or ./router.yaml, or the built-in default) compiled."""
    if table is not None:
        if config is not None:
            raise click.UsageError("give --config or --table, not both")
        return load_table(table)
    result = compile_config_at(config_path(config), profile=profile, discover=discover)
    assert result.table is not None
    return result.table


def warn_diagnostics(diagnostics: list[Diagnostic]) -> None:
    for d in diagnostics:
        info(d.format(with_hint=False))


def catalog_providers() -> dict[str, ProviderSpec]:
    return dict(load_catalog().providers)


def load_catalog() -> CatalogFile:
    """The built-in catalog files merged (providers by name, models in order)."""
    providers: dict[str, ProviderSpec] = {}
    models: list[ModelSpec] = []
    problems: list[Diagnostic] = []
    for loaded in builtin.catalog_files():
        parsed, diags = schema.parse("catalog", loaded, CatalogFile)
        problems.extend(diags)
        if parsed is not None:
            providers.update(parsed.providers)
            models.extend(parsed.models)
    if problems:
        raise ConfigError(problems)
    return CatalogFile(providers=providers, models=models)


def parse_profile(loaded: Loaded) -> Profile:
    parsed, diags = schema.parse("profile", loaded, Profile)
    if parsed is None:
        raise ConfigError(diags)
    return parsed
