"""The ``router`` command line.

Thin commands: each calls a library function that returns data (a table,
diagnostics, a diff, a report), then formats it as text or ``--format json``.
Errors are exceptions; the group's ``invoke`` translates the library's into
``click`` exceptions and click's ``main`` is the one place that prints them.

Exit codes: 0 ok, 1 invalid config or failed check (stale lock, failing test
case, broken provider), 2 usage.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
from interlock.compiler.cli_common import (
    CONFIG_ARG,
    FORMAT,
    PROFILE,
    ConfigFailed,
    Failed,
    config_path,
    echo_json,
    environ,
    info,
    table_for,
)
from interlock.compiler.diagnostics import ConfigError
from interlock.compiler.init import FileExistsRefusal
from interlock.runtime.errors import RequestError
from interlock.runtime.table import TableError

# the helpers above are re-exported: commands in other modules (and older callers)
# may import them from here
__all__ = ["CONFIG_ARG", "FORMAT", "PROFILE", "ConfigFailed", "Failed", "cli", "config_path",
           "echo_json", "environ", "info", "main", "table_for"]


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


# --------------------------------------------------------------------------- commands
# Each command group lives in its own module; they are registered here, in one place.

from interlock.compiler import cli_config, cli_logs, cli_ops, cli_route  # noqa: E402
from interlock.compiler.cli_keys import keys as _keys  # noqa: E402

for _command in (*cli_config.COMMANDS, *cli_route.COMMANDS, *cli_ops.COMMANDS,
                 *cli_logs.COMMANDS):
    cli.add_command(_command)
cli.add_command(_keys)
