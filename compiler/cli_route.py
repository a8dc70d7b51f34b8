"""``router`` commands that route without serving: test (routing cases) and
explain-route."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson
from interlock.compiler import api, render
from interlock.compiler.diagnostics import ConfigError, has_errors
from interlock.runtime.signals import COMPLEXITIES, TASKS
from interlock.runtime.table import DecisionTable, load_table

if TYPE_CHECKING:
    from interlock.compiler.cases import CaseFile
from interlock.compiler.cli_common import (
    FORMAT,
    PROFILE,
    Failed,
    echo_json,
    table_for,
)

# --------------------------------------------------------------------------- test


@click.command("test")
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


@click.command("explain-route")
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


#: the commands this module adds to ``router`` (registered by ``cli``)
COMMANDS: tuple[click.Command, ...] = (test_cmd, explain_route)
