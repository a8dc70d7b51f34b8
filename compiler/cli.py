"""The ``router`` command line.

Thin commands: each calls a library function that returns data (a table,
diagnostics, a diff, a report), then formats it as text or ``--format json``.
Errors are exceptions; the group's ``invoke`` translates the library's into
``click`` exceptions and click's ``main`` is the one place that prints them.

Exit codes: 0 ok, 1 invalid config or failed check (stale lock, failing test
case, broken provider), 2 usage.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click
import orjson
from interlock.compiler import api, builtin, doctor, render, schema
from interlock.compiler import init as starter
from interlock.compiler.diagnostics import ConfigError, Diagnostic, did_you_mean, has_errors
from interlock.compiler.init import FileExistsRefusal
from interlock.compiler.load import Loaded, load_file
from interlock.compiler.model import CatalogFile, ModelSpec, Profile, ProviderSpec
from interlock.runtime.errors import RequestError
from interlock.runtime.signals import CAPABILITIES, COMPLEXITIES, TASKS
from interlock.runtime.table import DecisionTable, TableError, load_table

if TYPE_CHECKING:
    from interlock.compiler.cases import CaseFile

# explain, cases and diff are imported inside their commands: they pull in the runtime's
# classifier and detectors, which `router validate` and `router compile` never need.

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


class RouterGroup(click.Group):
    """Translates library errors into click exceptions at one boundary."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise ConfigFailed(exc.diagnostics) from exc
        except TableError as exc:
            raise click.ClickException(str(exc)) from exc
        except FileExistsRefusal as exc:
            raise click.ClickException(str(exc)) from exc
        except RequestError as exc:  # explain-route: the server would answer 4xx
            where = f" ({exc.param})" if exc.param else ""
            raise click.ClickException(
                f"the server would reject this request with {exc.status}{where}: {exc.message}"
            ) from exc
        except OSError as exc:
            name = exc.filename or "a file"
            raise click.ClickException(f"{name}: {exc.strerror or exc}") from exc


def main() -> NoReturn:
    """Console entry point (``router``)."""
    cli.main(prog_name="router")
    sys.exit(0)  # pragma: no cover - click.main exits itself


@click.group(cls=RouterGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                "max_content_width": 100})
@click.version_option(package_name="interlock", prog_name="router")
def cli() -> None:
    """interlock: a local-first LLM router with a compiled, explainable decision table.

    \b
    Typical flow:
      router init                 write a commented router.yaml for this machine
      router validate             check it (exit 1 on errors; CI-friendly)
      router compile              write router.lock.json (commit it)
      router explain-route "..."  see where a prompt would go, and why
      router start                serve the OpenAI/Anthropic-compatible endpoint
    """


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


# --------------------------------------------------------------------------- init


@cli.command()
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


# --------------------------------------------------------------------------- validate / compile


@cli.command()
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


@cli.command("compile")
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


@cli.command("diff")
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


@cli.group()
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


def parse_profile(loaded: Loaded) -> Profile:
    parsed, diags = schema.parse("profile", loaded, Profile)
    if parsed is None:
        raise ConfigError(diags)
    return parsed


@cli.group()
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


@cli.command()
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


@cli.command()
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


# --------------------------------------------------------------------------- test


@cli.command("test")
@click.argument("files", nargs=-1,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--builtin", "builtin_cases", is_flag=True,
              help="also run the example cases shipped for every built-in profile")
@click.option("--config", "-c", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="router.yaml to compile (default: the case file's `config:`, "
                   "else ./router.yaml, else the built-in default)")
@click.option("--table", "-t", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a compiled lock file to test instead")
@PROFILE
@FORMAT
@click.option("--quiet", "-q", is_flag=True, help="print failures only")
def test_cmd(files: tuple[Path, ...], builtin_cases: bool, config: Path | None,
             table: Path | None, profile: str | None, fmt: str, quiet: bool) -> None:
    """Check routing test cases against the compiled table; exit 1 on any failure.

    A case gives a prompt (or a whole OpenAI/Anthropic request body) and what
    must happen: the cell (e.g. `code.*.private.*`), task, complexity,
    sensitivity, locality (local|cloud) of the first candidate, its model, or
    `refused: true`.  Cases run through the server's own classifier and decision
    code; no model is called.  Files are YAML or JSONL (one case per line).

    \b
    Example case file:
      - name: email address keeps it local
        prompt: "Draft a reply to jane.doe@acme.io about the invoice"
        sensitivity: private
        locality: local
      - name: hard proof goes to the cloud
        prompt: "Prove that there are infinitely many primes of the form 4k+3 ..."
        cell: reasoning.high.public.*
        locality: cloud
    \b
    Examples:
      router test tests/routing.yaml
      router test cases.jsonl --table router.lock.json
      router test --config router.yaml tests/routing.yaml
      router test --builtin          # the example cases shipped for every profile
    """
    from interlock.compiler import cases as cases_mod

    if config is not None and table is not None:
        raise click.UsageError("give --config or --table, not both")
    if not files and not builtin_cases:
        raise click.UsageError("give case files (or --builtin)")
    results: list[cases_mod.CaseResult] = []
    out: list[dict[str, Any]] = []
    sources = [(str(f), cases_mod.load_cases(f)) for f in files]
    if builtin_cases:
        sources += [(c.path, c) for c in cases_mod.builtin_case_files()]
    for f, case_file in sources:
        tbl = table_for_cases(case_file, config, table, profile)
        file_results = cases_mod.run_cases(tbl, case_file.cases)
        results.extend(file_results)
        if fmt == "json":
            out.append({"file": str(f), "table": tbl.hash, "profile": tbl.profile,
                        "results": [r.to_json() for r in file_results]})
        else:
            click.echo(render.case_results_text(str(f), tbl, file_results, quiet=quiet))
    failed = sum(not r.passed for r in results)
    if fmt == "json":
        echo_json({"passed": len(results) - failed, "failed": failed, "files": out})
    else:
        click.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        raise Failed(f"{failed} routing case(s) failed")


def table_for_cases(case_file: CaseFile, config: Path | None, table: Path | None,
                    profile: str | None) -> DecisionTable:
    """--table, else --config, else the file's own `config:`, else ./router.yaml/default.

    A case file's ``config`` compiles without discovery and with only its own
    ``environ`` (so the same file gives the same table on every machine).
    """
    if table is not None:
        return load_table(table)
    if config is None and case_file.config is not None:
        text = orjson.dumps(case_file.config).decode()  # JSON is YAML
        result = api.compile_text(text, origin=f"{case_file.path}#config",
                                  base_dir=Path(case_file.path).parent, profile=profile,
                                  environ=case_file.environ, discovered={})
        if result.table is None or has_errors(result.diagnostics):
            raise ConfigError(result.diagnostics)
        return result.table
    return table_for(config, None, profile=profile, discover=False)


# --------------------------------------------------------------------------- explain-route


@cli.command("explain-route")
@click.argument("prompt", required=False)
@click.option("--request", "request_file", type=click.Path(dir_okay=False, path_type=Path),
              help="an OpenAI chat or Anthropic messages body (JSON file, - for stdin)")
@click.option("--header", "headers", multiple=True, metavar="NAME:VALUE",
              help="a request header, e.g. 'X-Router-Private: true'")
@click.option("--task", type=click.Choice(list(TASKS)), help="synthetic cell: the task")
@click.option("--complexity", type=click.Choice(list(COMPLEXITIES)),
              help="synthetic cell: the complexity")
@click.option("--private", is_flag=True, help="synthetic cell: private")
@click.option("--image", is_flag=True, help="synthetic cell: image modality")
@click.option("--config", "-c", type=click.Path(dir_okay=False, path_type=Path),
              help="router.yaml (default ./router.yaml, else the built-in default)")
@click.option("--table", "-t", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a compiled lock file")
@PROFILE
@click.option("--no-discover", is_flag=True, help="do not ask Ollama for installed models")
@FORMAT
def explain_route(prompt: str | None, request_file: Path | None, headers: tuple[str, ...],
                  task: str | None, complexity: str | None, private: bool, image: bool,
                  config: Path | None, table: Path | None, profile: str | None,
                  no_discover: bool, fmt: str) -> None:
    """Show where a request would go and why, exactly as the server would route it.

    Give a prompt, a whole request body (--request) or a synthetic cell
    (--task/--complexity/--private/--image, which skips classification).
    Prints the signals with the evidence behind each (detector, span, masked
    excerpt), the cell, the chain with each candidate's score broken into its
    terms, what was filtered out and why, and what would have to change for the
    runner-up to win.

    \b
    Examples:
      router explain-route "Summarize this thread for me"
      router explain-route "My card is 4111 1111 1111 1111, why was I charged twice?"
      router explain-route --request body.json --format json
      router explain-route --task code --complexity high --private
    """
    synthetic = any((task, complexity, private, image))
    given = sum(x is not None for x in (prompt, request_file)) + int(synthetic)
    if given != 1:
        raise click.UsageError(
            "give one of: a PROMPT, --request FILE, or a synthetic cell "
            "(--task/--complexity/--private/--image)")
    from interlock.compiler import explain as explain_mod

    tbl = table_for(config, table, profile=profile, discover=not no_discover)
    if synthetic:
        report = explain_mod.explain_synthetic(
            tbl, task=task or "general", complexity=complexity or "medium",
            private=private, image=image)
    else:
        if request_file is not None:
            raw = (sys.stdin.buffer.read() if str(request_file) == "-"
                   else request_file.read_bytes())
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise click.BadParameter(f"{request_file}: not JSON ({exc})",
                                         param_hint="--request") from exc
        else:
            body = {"messages": [{"role": "user", "content": prompt}]}
        report = explain_mod.explain_request(tbl, body, headers=parse_headers(headers))
    if fmt == "json":
        echo_json(report)
    else:
        click.echo(explain_mod.render_text(report), nl=False)


def parse_headers(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, value = v.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{v!r} is not NAME: VALUE", param_hint="--header")
        out[name.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------- doctor / start


@cli.command("doctor")
@CONFIG_ARG
@PROFILE
@FORMAT
@click.option("--timeout", default=doctor.PROBE_TIMEOUT_S, show_default=True,
              help="seconds per probe")
def doctor_cmd(config: Path | None, profile: str | None, fmt: str, timeout: float) -> None:
    """Check that the providers answer, keys are set and local models are installed.

    Probes every enabled provider (Ollama: /api/tags; OpenAI-wire servers:
    /models), reports which key variables are set (never their values) and
    which configured local models Ollama lacks, then says what to do next.
    Exit 1 when something is broken.

    \b
    Examples:
      router doctor
      router doctor configs/prod.yaml --format json
    """
    tbl = table_for(config, None, profile=profile, discover=True)
    report = doctor.run_doctor(tbl, environ(), timeout=timeout)
    if fmt == "json":
        echo_json(report.to_json())
    else:
        click.echo(render.doctor_text(report))
    if report.status == "error":
        raise Failed("some providers are not usable (see above)")


@cli.command()
@click.option("--config", "-c", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="router.yaml to compile at start")
@click.option("--table", "-t", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a compiled lock file to serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--demo", is_flag=True,
              help="also start two demo upstreams (a 'local' and a 'cloud') and route to them")
def start(config: Path | None, table: Path | None, host: str, port: int, workers: int,
          demo: bool) -> None:
    """Serve the OpenAI- and Anthropic-compatible endpoint.

    With --table it serves that lock; with --config (or ./router.yaml) it
    compiles in memory; with neither, the built-in default (balanced profile,
    Ollama, and each cloud provider whose key is set).  --demo needs nothing
    installed: it shows routing end to end on loopback.

    \b
    Examples:
      router start --demo
      router start --table router.lock.json --port 8787 --workers 2
      curl -s localhost:8787/v1/chat/completions -d '{"model":"auto","messages":[...]}'
    """
    if config is not None and table is not None:
        raise click.UsageError("give --config or --table, not both")
    from interlock.runtime import server  # granian is imported only when serving

    server.run(config=config, table_path=table, host=host, port=port, workers=workers,
               demo=demo, environ=environ(), echo=info)
