"""``router`` commands that touch the running world: doctor and start."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from interlock.compiler import doctor, render

if TYPE_CHECKING:
    pass
from interlock.compiler.cli_common import (
    CONFIG_ARG,
    FORMAT,
    PROFILE,
    Failed,
    echo_json,
    environ,
    info,
    table_for,
)

# --------------------------------------------------------------------------- doctor / start


@click.command("doctor")
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


@click.command()
@click.option("--config", "-c", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="router.yaml to compile at start")
@click.option("--table", "-t", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a compiled lock file to serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--demo", is_flag=True,
              help="also start two demo upstreams (a 'local' and a 'cloud') and route to them")
@click.option("--insecure", is_flag=True,
              help="serve a non-loopback address even with no client keys configured")
def start(config: Path | None, table: Path | None, host: str, port: int, workers: int,
          demo: bool, insecure: bool) -> None:
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
    from interlock.runtime.auth import InsecureBind

    try:
        server.run(config=config, table_path=table, host=host, port=port, workers=workers,
                   demo=demo, environ=environ(), echo=info, insecure=insecure)
    except InsecureBind as exc:
        raise click.ClickException(str(exc)) from exc


#: the commands this module adds to ``router`` (registered by ``cli``)
COMMANDS: tuple[click.Command, ...] = (doctor_cmd, start)
