"""``router`` commands about the config and the table: init, validate, compile,
diff, profiles, catalog, models, schemas."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from interlock.compiler import api, builtin, doctor, render, schema
from interlock.compiler import init as starter
from interlock.compiler.diagnostics import ConfigError, did_you_mean, has_errors
from interlock.compiler.init import FileExistsRefusal
from interlock.compiler.load import load_file
from interlock.runtime.signals import CAPABILITIES
from interlock.runtime.table import load_table

if TYPE_CHECKING:
    pass
from interlock.compiler.cli_common import (
    CONFIG_ARG,
    FORMAT,
    PROFILE,
    Failed,
    catalog_providers,
    compile_config_at,
    config_path,
    discovered_models,
    echo_json,
    environ,
    load_catalog,
    parse_profile,
    read_config_data,
    table_for,
    table_from,
    warn_diagnostics,
)

# --------------------------------------------------------------------------- init


@click.command()
@click.argument("path", default="router.yaml", type=click.Path(dir_okay=False, path_type=Path))
@PROFILE
@click.option("--force", is_flag=True, help="overwrite PATH if it exists")
def init(path: Path, profile: str | None, force: bool) -> None:
    """Write a commented starter router.yaml for this machine.

    Looks for Ollama at $OLLAMA_HOST or 127.0.0.1:11434 and lists its installed
    models, and notes which cloud providers' key variables are set (names only;
    keys are read at run time, never written).  Refuses to overwrite PATH
    without --force.

    \b
    Examples:
      router init
      router init --profile privacy-first
      router init configs/dev.yaml --force
    """
    env = environ()
    name = profile or "balanced"
    if name not in builtin.profile_names() and not Path(name).is_file():
        raise click.BadParameter(
            f"unknown profile {name!r}; built-in: {', '.join(builtin.profile_names())}",
            param_hint="--profile")
    if path.exists() and not force:
        raise FileExistsRefusal(path)
    findings = starter.detect(env, catalog_providers())
    text = starter.render_starter(findings, profile=name)
    starter.write_starter(path, text, force=force)
    for line in starter.summary_lines(findings, path):
        click.echo(line)


# --------------------------------------------------------------------------- validate / compile


@click.command()
@CONFIG_ARG
@PROFILE
@FORMAT
@click.option("--discover/--no-discover", default=True, show_default=True,
              help="ask Ollama which models are installed (when the profile wants discovery)")
def validate(config: Path | None, profile: str | None, fmt: str, discover: bool) -> None:
    """Check a config; exit 0 when it compiles, 1 when it does not.

    Prints every diagnostic, warnings included, as
    `file:line:col path: message [CODE]` with a hint.  CONFIG defaults to
    ./router.yaml, or the built-in default when there is none.

    \b
    Examples:
      router validate
      router validate configs/prod.yaml --profile cost
      router validate --format json | jq '.diagnostics[] | .code'
    """
    path = config_path(config)
    env = environ()
    found = discovered_models(path, profile, env, discover=discover)
    try:
        result = api.compile_config(path, profile=profile, environ=env, discovered=found)
        diagnostics, table = list(result.diagnostics), result.table
    except ConfigError as exc:
        diagnostics, table = exc.diagnostics, None
    ok = table is not None and not has_errors(diagnostics)
    name = str(path) if path else "built-in default config"
    if fmt == "json":
        echo_json(render.validation_json(name, ok, diagnostics, table))
    else:
        click.echo(render.validation_text(name, ok, diagnostics, table))
    if not ok:
        raise Failed(f"{name} is invalid")


@click.command("compile")
@CONFIG_ARG
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("router.lock.json"), show_default=True, help="where to write the lock")
@click.option("--check", is_flag=True,
              help="write nothing; exit 1 if OUTPUT differs from what would be compiled")
@PROFILE
@click.option("--no-discover", is_flag=True,
              help="do not ask Ollama for installed models (reproducible builds, CI)")
def compile_cmd(config: Path | None, output: Path, check: bool, profile: str | None,
                no_discover: bool) -> None:
    """Compile the config into the decision table (router.lock.json).

    Validates, resolves names, scores every model for every cell, checks the
    result and writes canonical JSON with a content hash.  With --check nothing
    is written: it fails (exit 1) when the committed lock is stale and shows
    which cells would change.

    \b
    Examples:
      router compile
      router compile configs/prod.yaml -o prod.lock.json
      router compile --check --no-discover      # in CI
    """
    path = config_path(config)
    result = compile_config_at(path, profile=profile, discover=not no_discover)
    table = result.table
    assert table is not None
    warn_diagnostics([d for d in result.diagnostics if not d.is_error])
    if check:
        if not output.exists():
            raise Failed(f"{output} does not exist; run `router compile` and commit it")
        old = load_table(output)
        if old.hash == table.hash:
            click.echo(f"{output} is up to date ({table.hash[:19]}…)")
            return
        from interlock.compiler import diff

        changes = diff.diff_tables(old, table)
        click.echo(diff.render_text(changes))
        raise Failed(f"{output} is stale; run `router compile` and commit the result")
    api.write_lock(table, output)
    click.echo(render.compile_summary(output, table))


# --------------------------------------------------------------------------- diff


@click.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@FORMAT
@click.option("--exit-code", is_flag=True, help="exit 1 when the tables differ (like git diff)")
def diff_cmd(old: Path, new: Path, fmt: str, exit_code: bool) -> None:
    """What routing changes between two tables, cell by cell.

    OLD and NEW are lock files, or router.yaml files (compiled in memory, without
    discovery).  Reads like a plan: each changed cell, its old chain → new chain.

    \b
    Examples:
      router diff router.lock.json new.lock.json
      git show HEAD:router.lock.json > /tmp/old.json && router diff /tmp/old.json router.yaml
      router diff old.lock.json new.lock.json --format json
    """
    from interlock.compiler import diff

    a, b = table_from(old), table_from(new)
    changes = diff.diff_tables(a, b)
    if fmt == "json":
        echo_json(diff.to_json(changes))
    else:
        click.echo(diff.render_text(changes))
    if exit_code and a.hash != b.hash:
        raise Failed("the tables differ")


# --------------------------------------------------------------------------- profiles / catalog


@click.group()
def profiles() -> None:
    """The built-in routing profiles.

    \b
    Examples:
      router profiles list
      router profiles show privacy-first
      router profiles show cost --summary
    """


@profiles.command("list")
@FORMAT
def profiles_list(fmt: str) -> None:
    """List the built-in profiles with their descriptions."""
    rows = [render.profile_row(parse_profile(builtin.load_builtin_profile(n)))
            for n in builtin.profile_names()]
    if fmt == "json":
        echo_json(rows)
        return
    click.echo(render.format_table(["name", "quality/cost/latency", "local", "private when",
                                    "description"],
                                   [[r["name"], r["weights"], r["local"], r["private_when"],
                                     render.first_sentence(r["description"])] for r in rows]))


@profiles.command("show")
@click.argument("name")
@click.option("--summary", is_flag=True, help="the effective settings instead of the YAML")
def profiles_show(name: str, summary: bool) -> None:
    """Print a profile's YAML with its comments (or --summary).

    NAME is a built-in profile or a path to a profile file.
    """
    loaded = load_file(Path(name)) if Path(name).is_file() else builtin.load_builtin_profile(name)
    if not summary:
        click.echo(loaded.raw.decode("utf-8"), nl=False)
        return
    click.echo(render.profile_summary(parse_profile(loaded)))


@click.group()
def catalog() -> None:
    """The built-in catalog of providers and models.

    \b
    Examples:
      router catalog list
      router catalog list --provider ollama
      router catalog list --capability vision --format json
    """


@catalog.command("list")
@click.option("--provider", "providers", multiple=True, metavar="P", help="only this provider")
@click.option("--capability", "caps", multiple=True, metavar="C",
              type=click.Choice(list(CAPABILITIES)), help="only models with this capability")
@FORMAT
def catalog_list(providers: tuple[str, ...], caps: tuple[str, ...], fmt: str) -> None:
    """List catalog models: key, provider, locality, context, price in/out, capabilities."""
    cat = load_catalog()
    known = set(cat.providers)
    for p in providers:
        if p not in known:
            raise click.BadParameter(f"unknown provider {p!r}{did_you_mean(p, known)}",
                                     param_hint="--provider")
    rows = render.catalog_rows(cat, providers=set(providers), caps=set(caps))
    if fmt == "json":
        echo_json(rows)
        return
    click.echo(render.catalog_text(rows))


# --------------------------------------------------------------------------- models / schemas


@click.command()
@CONFIG_ARG
@click.option("--live", is_flag=True, help="the models Ollama has installed right now")
@PROFILE
@click.option("--no-discover", is_flag=True, help="do not ask Ollama for installed models")
@FORMAT
def models(config: Path | None, live: bool, profile: str | None, no_discover: bool,
           fmt: str) -> None:
    """The routable models of the compiled table (or, --live, Ollama's installed models).

    \b
    Examples:
      router models
      router models configs/prod.yaml --format json
      router models --live
    """
    if live:
        path = config_path(config)
        data = read_config_data(path)
        configured = None
        if isinstance(data, dict):
            use = (data.get("providers") or {}).get("ollama")
            configured = use.get("base_url") if isinstance(use, dict) else None
        probe = doctor.probe_ollama(doctor.ollama_url(environ(), configured))
        if fmt == "json":
            echo_json({"url": probe.url, "reachable": probe.reachable,
                       "models": list(probe.models), "error": probe.error})
        elif probe.reachable:
            click.echo(f"Ollama at {probe.url}: {len(probe.models)} model(s) installed")
            for name in probe.models:
                click.echo(f"  {name}")
        if not probe.reachable:
            raise Failed(f"Ollama is not reachable at {probe.url} ({probe.error})")
        return
    table = table_for(config, None, profile=profile, discover=not no_discover)
    rows = render.model_rows(table)
    if fmt == "json":
        echo_json(rows)
        return
    click.echo(render.models_text(rows, table))


@click.command()
@click.option("--write", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="write the four JSON Schemas into this directory")
def schemas(directory: Path | None) -> None:
    """List the JSON Schemas (router, profile, catalog, decision-table), or write them.

    Editors use them through the `# yaml-language-server: $schema=...` line.

    \b
    Examples:
      router schemas
      router schemas --write ./schemas
    """
    if directory is None:
        for kind in schema.KINDS:
            click.echo(f"{kind:<16} {schema.SCHEMA_BASE}{schema.schema_filename(kind)}")
        return
    for path in schema.write_schemas(directory):
        click.echo(f"wrote {path}")


#: the commands this module adds to ``router`` (registered by ``cli``)
COMMANDS: tuple[click.Command, ...] = (init, validate, compile_cmd, diff_cmd, profiles, catalog,
                                       models, schemas)
