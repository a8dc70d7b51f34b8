"""``router start``: resolve the table, print a readiness summary, serve with Granian.

Where the table comes from (first that applies):

1. ``table`` given in memory (the demo, tests);
2. ``table_path`` (``router.lock.json``), loaded and hash-checked;
3. ``config`` (``router.yaml``) with no lock: compiled in memory, with Ollama's
   installed models discovered first;
4. neither: the built-in default (balanced profile, Ollama if it answers at
   ``OLLAMA_HOST`` / 127.0.0.1:11434, every cloud provider whose key is set).

The main process resolves the table once (so a bad config fails before any
worker starts, with the compiler's message), writes it to a private temporary
lock file and hands Granian the factory ``interlock.runtime.server:app_factory``
with ``INTERLOCK_TABLE`` pointing at that file.  Each worker process loads it in
its ASGI lifespan; a table that fails to load there stops the server
(``lifespan.startup.failed``).  ``app_factory`` also works on its own::

    INTERLOCK_CONFIG=router.yaml granian --interface asgi --factory \\
        interlock.runtime.server:app_factory

Environment read by ``app_factory``: ``INTERLOCK_TABLE`` (a lock file),
``INTERLOCK_CONFIG`` (a router.yaml to compile), ``INTERLOCK_PROBE`` (``0``
skips the start-up provider probes), ``INTERLOCK_HEALTH_FAILURES`` (consecutive
failures that put a provider in error, default 3) and ``INTERLOCK_HEALTH_COOLDOWN_S``
(how long a provider in error is skipped, default 10).  ``INTERLOCK_BREAKERS=0``
turns the circuit breakers and the retry budget off (``runtime/breaker.py``; test
suites whose cases share one router).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from interlock.runtime.app import InterlockApp
from interlock.runtime.asgi_types import ASGIApp
from interlock.runtime.table import DecisionTable, load_table

TABLE_ENV = "INTERLOCK_TABLE"
CONFIG_ENV = "INTERLOCK_CONFIG"
PROBE_ENV = "INTERLOCK_PROBE"
FAILURES_ENV = "INTERLOCK_HEALTH_FAILURES"
COOLDOWN_ENV = "INTERLOCK_HEALTH_COOLDOWN_S"
FACTORY = "interlock.runtime.server:app_factory"


# -- the worker side --------------------------------------------------------------------


def app_factory() -> ASGIApp:
    """The ASGI app for one Granian worker; the table loads in its lifespan.

    The app is wrapped in the reliability and security middleware
    (``interlock.runtime.guard.secure``: header limits, egress headers, client
    keys, rate limits, Idempotency-Key, x-should-retry).
    """
    from interlock.runtime.guard import secure
    from interlock.runtime.tuning import tune_worker

    environ = dict(os.environ)
    probe = environ.get(PROBE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
    return secure(InterlockApp(
        lambda: table_from_environ(environ),
        probe=probe,
        fail_threshold=int(environ.get(FAILURES_ENV, "3")),
        cooldown_s=float(environ.get(COOLDOWN_ENV, "10")),
        on_ready=tune_worker,
    ))


def load_target(target: str) -> ASGIApp:
    """Granian's target loader for ``router start`` (runs in each worker process)."""
    if target != FACTORY:
        raise ValueError(f"unexpected Granian target {target!r}")
    return app_factory()


def table_from_environ(environ: Mapping[str, str]) -> DecisionTable:
    """The table named by ``INTERLOCK_TABLE`` / ``INTERLOCK_CONFIG``, else the default."""
    path = environ.get(TABLE_ENV)
    if path:
        return load_table(path)
    config = environ.get(CONFIG_ENV)
    return compile_table(Path(config) if config else None, environ)


# -- resolving the table ------------------------------------------------------------------


def compile_table(config: Path | None, environ: Mapping[str, str]) -> DecisionTable:
    """Compile ``config`` (or the built-in default) in memory, with Ollama discovery.

    Raises ``TableError`` with the compiler's diagnostics when it has errors.
    """
    from interlock.compiler.api import compile_config

    discovered = discover(config, environ)
    result = compile_config(config, discovered=discovered, environ=dict(environ))
    if config is None and result.table is None:
        from interlock.runtime.table import TableError

        try:
            return _table_of(result, "the built-in default config")
        except TableError as exc:
            raise TableError(
                f"{exc}\nnext: start Ollama (`ollama serve`, then `ollama pull qwen3:4b`; "
                "OLLAMA_HOST if it is not on 127.0.0.1:11434), or set a cloud key such as "
                "OPENAI_API_KEY, or write a router.yaml (`router init`), or try "
                "`router start --demo`"
            ) from None
    return _table_of(result, str(config) if config else "the built-in default config")


def _table_of(result: Any, origin: str) -> DecisionTable:
    from interlock.runtime.table import TableError

    if isinstance(result, DecisionTable):
        return result
    table = getattr(result, "table", None)
    if isinstance(table, DecisionTable) and getattr(result, "ok", True):
        return table
    diags = getattr(result, "diagnostics", None) or getattr(result, "errors", None) or []
    lines = [d.format() if hasattr(d, "format") else str(d)
             for d in diags if getattr(d, "severity", "error") == "error"]
    detail = "\n".join(lines) or "the compiler produced no table"
    raise TableError(f"{origin} does not compile:\n{detail}")


def discover(config: Path | None, environ: Mapping[str, str]) -> dict[str, list[str]]:
    """Installed Ollama models, when Ollama is enabled and answers (never raises)."""
    from interlock.compiler import doctor

    data: Any = None
    if config is not None:
        from interlock.compiler.diagnostics import ConfigError
        from interlock.compiler.load import load_file

        try:
            data = load_file(config).data
        except ConfigError:
            data = {}  # the compile that follows reports the problem properly
    url = doctor.discovery_url(data, None, environ)
    if url is None:
        return {}
    probe = doctor.probe_ollama(url)
    return {"ollama": list(probe.models)} if probe.reachable else {}


def resolve_table(
    table: DecisionTable | None,
    config: Path | None,
    table_path: Path | None,
    environ: Mapping[str, str],
) -> DecisionTable:
    if table is not None:
        return table
    if table_path is not None:
        return load_table(table_path)
    if config is not None:
        sibling = config.with_name("router.lock.json")
        if sibling.is_file() and _newer(sibling, config):
            return load_table(sibling)
    return compile_table(config, environ)


def _newer(a: Path, b: Path) -> bool:
    return a.stat().st_mtime >= b.stat().st_mtime


# -- readiness summary -----------------------------------------------------------------------


def readiness(
    table: DecisionTable, environ: Mapping[str, str], base_url: str | None = None
) -> tuple[str, list[str]]:
    """(status ok|degraded|error, lines) - providers reachable, keys set, next steps.

    Key *values* are never printed, only whether each variable is set.
    """
    from interlock.compiler.doctor import run_doctor

    report = run_doctor(table, environ)
    chat = [m for m in table.models.values() if not m.embedding]
    lines = [
        f"table {table.hash[:19]}... profile {table.profile}: "
        f"{len(chat)} chat model(s), {len(table.cells)} cells"
    ]
    for c in report.checks:
        keys = ", ".join(f"{env} {'set' if ok else 'NOT set'}" for env, ok in c.keys)
        n = sum(1 for m in chat if m.provider == c.name)
        state = ("reachable" if c.reachable
                 else "unreachable" if c.status == "error" else "not probed")
        lines.append(
            f"  {c.name:<14} {c.locality:<5} {c.status:<5} {state:<11} {n:>2} model(s)"
            + (f"  keys: {keys}" if keys else "")
            + (f"  ({c.detail})" if c.detail else "")
        )
    usable = any(c.status != "error" for c in report.checks) and bool(chat)
    status = "ok" if report.status == "ok" else ("degraded" if usable else "error")
    steps = [s for s in report.next_steps if not s.startswith("all good")]
    if status != "error" and base_url is not None:
        steps.append(
            f"try it: curl -s {base_url}/v1/chat/completions -H 'content-type: "
            """application/json' -d '{"model":"auto","messages":[{"role":"user","""
            """"content":"Hello!"}]}'"""
        )
    if not chat:
        steps.insert(0, "no chat model is available: start Ollama and pull a model "
                        "(ollama pull qwen3:4b), set a cloud key (e.g. OPENAI_API_KEY), "
                        "or try `router start --demo`")
    lines.append(f"status: {status}")
    lines.extend(f"next: {s}" for s in steps[:6])
    return status, lines


# -- serving -------------------------------------------------------------------------------------


def run(
    table: DecisionTable | None = None,
    *,
    config: Path | None = None,
    table_path: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8787,
    workers: int = 1,
    demo: bool = False,
    environ: Mapping[str, str] | None = None,
    probe: bool = True,
    summary: bool = True,
    echo: Callable[[str], None] | None = None,
    insecure: bool = False,
) -> None:
    """Serve the router with Granian until interrupted.

    On an address other than loopback the table must configure client API keys
    (``server.auth.keys``), unless ``insecure``: ``auth.InsecureBind`` otherwise.

    ``demo=True`` starts the two demo upstreams and serves a table built for them
    (see :mod:`interlock.runtime.demo`).  ``echo`` receives the readiness summary
    lines (default: stderr).  Raises ``TableError`` when no table can be resolved.
    """
    env = dict(os.environ if environ is None else environ)
    say = echo or _stderr
    from interlock.runtime.auth import check_exposure

    if demo:
        check_exposure(host, None, insecure=insecure)
        from interlock.runtime.demo import serve_demo

        serve_demo(host=host, port=port, workers=workers, environ=env, echo=say)
        return
    resolved = resolve_table(table, config, table_path, env)
    check_exposure(host, resolved, insecure=insecure)
    if summary:
        _status, lines = readiness(resolved, env, f"http://{host}:{port}")
        for line in lines:
            say(line)
    serve_table(resolved, host=host, port=port, workers=workers, environ=env, probe=probe,
                echo=say)


def serve_table(
    table: DecisionTable,
    *,
    host: str,
    port: int,
    workers: int = 1,
    environ: Mapping[str, str] | None = None,
    probe: bool = True,
    echo: Callable[[str], None] | None = None,
) -> None:
    """Write ``table`` to a private temporary lock file and serve it with Granian."""
    say = echo or _stderr
    with tempfile.TemporaryDirectory(prefix="interlock-") as tmp:
        path = Path(tmp) / "router.lock.json"
        path.write_bytes(table.with_hash().canonical_bytes() if not table.hash
                         else table.canonical_bytes())
        overrides = {TABLE_ENV: str(path), PROBE_ENV: "1" if probe else "0"}
        say(f"serving on http://{host}:{port} ({workers} worker{'s' * (workers > 1)}); "
            "Ctrl-C stops")
        _granian(host, port, workers, overrides)


def _granian(host: str, port: int, workers: int, overrides: Mapping[str, str]) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    # Granian's worker processes inherit the environment: that is how the table
    # path reaches app_factory.  Restore it afterwards (run() may be called twice).
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        server = Server(
            FACTORY, address=host, port=port, interface=Interfaces.ASGI, workers=workers,
            factory=True, log_access=False, respawn_failed_workers=False,
        )
        # our own loader: Granian's resolves a dotted target against the current
        # directory, which goes wrong when that directory is itself a package
        server.serve(target_loader=load_target)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m interlock.runtime.server [--table F | --config F] [--port N] ...``
    (tests and debugging; users run ``router start``)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m interlock.runtime.server")
    ap.add_argument("--table", type=Path)
    ap.add_argument("--config", type=Path)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8787)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--demo", action="store_true")
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--no-summary", action="store_true")
    ap.add_argument("--insecure", action="store_true")
    args = ap.parse_args(argv)
    run(config=args.config, table_path=args.table, host=args.host, port=args.port,
        workers=args.workers, demo=args.demo, probe=not args.no_probe,
        summary=not args.no_summary, insecure=args.insecure)


if __name__ == "__main__":
    main()
