"""``router stats`` and ``router logs``: the request log, from the terminal.

They read the SQLite store directly (``--db``, else ``$INTERLOCK_DB``, else
``server.store.path`` of ./router.yaml, else the per-user default) or, with
``--url``, a running router's ``/v1/stats`` and ``/v1/logs``.  Formatting lives
here; the queries are ``interlock.runtime.stats`` and ``interlock.runtime.replay``.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from interlock.compiler.cli_common import FORMAT, config_path, echo_json, read_config_data
from interlock.compiler.render import format_table
from interlock.runtime import replay as replay_mod
from interlock.runtime import stats as stats_mod
from interlock.runtime.record import default_db_path
from interlock.runtime.store import connect, iter_batches
from interlock.runtime.table import load_table

DB = click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
                  help="the SQLite request log (default: $INTERLOCK_DB, router.yaml's "
                       "server.store.path, else ~/.local/share/interlock/interlock.db)")
URL = click.option("--url", metavar="URL",
                   help="read a running router instead (e.g. http://127.0.0.1:8787)")
SINCE = click.option("--since", metavar="WHEN",
                     help="only requests since: 30m, 2h, 7d, unix seconds or ISO 8601")


def db_path(given: Path | None) -> Path:
    """--db, else INTERLOCK_DB, else ./router.yaml's server.store.path, else the default."""
    if given is not None:
        return given
    if os.environ.get("INTERLOCK_DB"):
        return default_db_path(os.environ)
    data = read_config_data(config_path(None))
    if isinstance(data, dict):
        store = (data.get("server") or {}).get("store") or {}
        if isinstance(store, dict) and isinstance(store.get("path"), str):
            return Path(store["path"]).expanduser()
    return default_db_path(os.environ)


@contextmanager
def opened(db: Path | None) -> Iterator[sqlite3.Connection]:
    path = db_path(db)
    conn = connect(path)
    try:
        yield conn
    finally:
        conn.close()


def since_of(value: str | None) -> float | None:
    try:
        return stats_mod.parse_since(value)
    except stats_mod.BadQuery as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc


def fetch(url: str, path: str, params: dict[str, Any]) -> Any:
    """GET a router endpoint; errors become a one-line click error."""
    clean = {k: v for k, v in params.items() if v is not None}
    try:
        resp = httpx.get(url.rstrip("/") + path, params=clean, timeout=10.0)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"{url}: {exc}") from exc
    if resp.status_code != 200:
        raise click.ClickException(f"{url}{path} answered {resp.status_code}: {resp.text[:200]}")
    return resp.json()


# --------------------------------------------------------------------------- formatting


def money(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}" if abs(value) < 0.01 else f"${value:.4f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def stats_text(s: dict[str, Any]) -> str:
    lat, ttft = s["latency_ms"], s["ttft_ms"]
    saved_share = s["saved_usd"] / s["baseline_usd"] if s["baseline_usd"] else None
    lines = [
        f"requests   {s['requests']} (ok {s['ok']}, errors {s['errors']})"
        f"  {when(s['first'])} .. {when(s['last'])}",
        f"answered   local {s['local']} ({pct(s['local_share'])}) · cloud {s['cloud']}"
        f" · escalated {s['escalated']} · fallen back {s['fallen_back']}"
        f" · refused private {s['refused_private']}",
        f"latency    p50 {ms(lat['p50'])} · p95 {ms(lat['p95'])}"
        f"   ttft p50 {ms(ttft['p50'])} · p95 {ms(ttft['p95'])}",
        f"tokens     in {s['tokens_in']} · out {s['tokens_out']} · "
        f"{'-' if s['tokens_per_s'] is None else s['tokens_per_s']} tok/s",
        f"cost       {money(s['cost_usd'])} spent · {money(s['baseline_usd'])} cloud-only "
        f"baseline · {money(s['saved_usd'])} saved ({pct(saved_share)})",
    ]
    if s["by_cell"]:
        lines += ["", format_table(
            ["cell", "req", "local", "cloud", "err", "p50", "p95", "cost", "saved"],
            [[c["cell"], c["requests"], c["local"], c["cloud"], c["errors"],
              ms(c["latency_ms"]["p50"]), ms(c["latency_ms"]["p95"]), money(c["cost_usd"]),
              money(c["saved_usd"])] for c in s["by_cell"]], right=(1, 2, 3, 4, 5, 6, 7, 8))]
    if s["by_model"]:
        lines += ["", format_table(
            ["model", "where", "req", "err", "p50", "p95", "tok/s", "cost", "saved"],
            [[m["model"], m["locality"], m["requests"], m["errors"],
              ms(m["latency_ms"]["p50"]), ms(m["latency_ms"]["p95"]), rate(m["tokens_per_s"]),
              money(m["cost_usd"]), money(m["saved_usd"])] for m in s["by_model"]],
            right=(2, 3, 4, 5, 6, 7, 8))]
    return "\n".join(lines)


def log_line(r: dict[str, Any]) -> str:
    where = r.get("locality") or "-"
    model = r.get("model") or "-"
    extra = f" {r['error_code']}" if r.get("error_code") else ""
    flags = "".join(f" [{f}]" for f in ("fallback", "escalated") if r.get(f))
    return (f"{when(r['ts'])}  {r['status']}{extra}  {r['surface']}  {r.get('cell') or '-'}  "
            f"{model} ({where})  {ms(r['latency_ms'])}  in {r['tokens_in']} out "
            f"{r['tokens_out']}  {money(r['cost_usd'])} saved {money(r['saved_usd'])}{flags}")


def analysis_text(a: dict[str, Any]) -> str:
    lines = [
        f"period          {when(a['first'])} .. {when(a['last'])}",
        f"requests        {a['requests']} (errors {a['errors']}, {pct(a['error_rate'])})",
        f"local share     {pct(a['local_share'])} (local {a['local']}, cloud {a['cloud']})",
        f"savings         {money(a['saved_usd'])} of a {money(a['baseline_usd'])} cloud-only "
        f"baseline ({pct(a['saved_share'])}); spent {money(a['cost_usd'])}",
        f"fallbacks       {pct(a['fallback_rate'])}   escalations {pct(a['escalation_rate'])}",
        f"latency         p50 {ms(a['latency_ms']['p50'])} · p95 {ms(a['latency_ms']['p95'])}",
        f"privacy         {a['private_requests']} private request(s), "
        f"{a['private_served_by_cloud']} answered by a cloud model",
    ]
    if a["slowest_cells"]:
        lines += ["", "slowest cells (p95)", format_table(
            ["cell", "req", "p50", "p95"],
            [[c["cell"], c["requests"], ms(c["p50"]), ms(c["p95"])] for c in a["slowest_cells"]],
            right=(1, 2, 3), indent=2)]
    if a["failing_cells"]:
        lines += ["", "failure rate by cell", format_table(
            ["cell", "req", "errors", "rate"],
            [[c["cell"], c["requests"], c["errors"], pct(c["error_rate"])]
             for c in a["failing_cells"]], right=(1, 2, 3), indent=2)]
    if a["attempt_failures"]:
        lines += ["", "upstream attempts by model", format_table(
            ["model", "attempts", "failed", "rate"],
            [[m["model"], m["attempts"], m["failed"], pct(m["failure_rate"])]
             for m in a["attempt_failures"]], right=(1, 2, 3), indent=2)]
    if a["error_codes"]:
        lines += ["", "errors", format_table(
            ["code", "requests"], [[e["error_code"], e["requests"]] for e in a["error_codes"]],
            right=(1,), indent=2)]
    return "\n".join(lines)


def replay_text(r: dict[str, Any], path: Path) -> str:
    ls, cost = r["local_share"], r["cost_usd"]
    lines = [
        f"replayed {r['requests']} request(s) against {path} ({r['table'][:19]}…)"
        + (f"; {r['skipped']} without signals (failed before routing), skipped"
           if r["skipped"] else ""),
        f"routing     {r['changed']} would change ({pct(r['changed_share'])})",
        f"local share {pct(ls['old'])} → {pct(ls['new'])}",
        f"cost        {money(cost['old'])} → {money(cost['new'])} "
        f"({'+' if cost['delta'] >= 0 else '-'}{money(abs(cost['delta']))})",
        f"unserved    {r['unserved']['new']} request(s) the new table would not serve",
    ]
    if r["moves"]:
        lines += ["", "biggest moves", format_table(
            ["cell", "from", "to", "req"],
            [[m["cell"], m["from"], m["to"], m["requests"]] for m in r["moves"]],
            right=(3,), indent=2)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands


@click.command("stats")
@SINCE
@FORMAT
@DB
@URL
def stats_cmd(since: str | None, fmt: str, db: Path | None, url: str | None) -> None:
    """Totals of the request log: local vs cloud, latency, tokens, cost and savings.

    \b
    Examples:
      router stats
      router stats --since 24h --format json
      router stats --url http://127.0.0.1:8787
    """
    if url:
        data = fetch(url, "/v1/stats", {"since": since})
    else:
        ts = since_of(since)
        with opened(db) as conn:
            data = stats_mod.stats(conn, since=ts)
    if fmt == "json":
        echo_json(data)
    else:
        click.echo(stats_text(data))


@click.group("logs", invoke_without_command=True)
@click.option("--follow", "-f", is_flag=True, help="keep watching: print requests as they come")
@click.option("--cell", metavar="C", help="only this cell (* wildcards: 'code.*')")
@click.option("--model", metavar="M", help="only this model (key or upstream id)")
@click.option("--provider", metavar="P", help="only this provider")
@click.option("--status", metavar="S", help="ok, error, or a status code")
@SINCE
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="how many recent requests")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.05),
              help="--follow: seconds between polls")
@click.option("--stop-after", type=click.FloatRange(0), metavar="SECONDS",
              help="--follow: stop after this long (default: until Ctrl-C)")
@FORMAT
@DB
@URL
@click.pass_context
def logs(ctx: click.Context, follow: bool, cell: str | None, model: str | None,
         provider: str | None, status: str | None, since: str | None, limit: int,
         interval: float, stop_after: float | None, fmt: str, db: Path | None,
         url: str | None) -> None:
    """Recent requests from the log (oldest first), or --follow them live.

    \b
    Examples:
      router logs
      router logs --cell 'code.*' --model gpt-4o-mini -n 50
      router logs --follow
      router logs --follow --url http://127.0.0.1:8787
      router logs analyze --since 7d
      router logs replay --table new.lock.json
    """
    if ctx.invoked_subcommand is not None:
        return
    f = stats_mod.LogFilter(cell=cell, model=model, provider=provider, status=status,
                            since=since_of(since), limit=limit)
    try:
        f.where()
    except stats_mod.BadQuery as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{exc.param}") from exc
    read = _reader(f, db, url)
    rows = list(reversed(read(None)))
    for r in rows:
        _print(r, fmt)
    if not follow:
        return
    last = max((r["seq"] for r in rows), default=None)
    if last is None:
        last = read_last(db, url)
    deadline = None if stop_after is None else time.monotonic() + stop_after
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(interval)
            for r in read(last):
                _print(r, fmt)
                last = r["seq"]
    except KeyboardInterrupt:
        return


def _reader(f: stats_mod.LogFilter, db: Path | None, url: str | None
            ) -> Callable[[int | None], list[dict[str, Any]]]:
    def read(after: int | None) -> list[dict[str, Any]]:
        f.after = after
        if url:
            rows: list[dict[str, Any]] = fetch(url, "/v1/logs", {
                "cell": f.cell, "model": f.model, "provider": f.provider, "status": f.status,
                "since": f.since, "limit": f.limit if after is None else 1000,
                "after": after})["data"]
            return rows
        with opened(db) as conn:
            f.limit = f.limit if after is None else 1000
            return stats_mod.logs(conn, f, prompts=False)
    return read


def read_last(db: Path | None, url: str | None) -> int:
    """The newest record's seq (start of a follow over an empty selection)."""
    if url:
        data = fetch(url, "/v1/logs", {"limit": 1})["data"]
        return int(data[0]["seq"]) if data else 0
    with opened(db) as conn:
        row = conn.execute("SELECT MAX(seq) FROM requests").fetchone()
        return int(row[0] or 0)


def _print(r: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(orjson.dumps(r).decode())
    else:
        click.echo(log_line(r))


@logs.command("analyze")
@SINCE
@FORMAT
@DB
@URL
def logs_analyze(since: str | None, fmt: str, db: Path | None, url: str | None) -> None:
    """A report over the log: local share, savings, slowest cells, failure rates.

    \b
    Examples:
      router logs analyze
      router logs analyze --since 7d --format json
    """
    if url:
        data = fetch(url, "/v1/stats", {"since": since, "view": "analysis"})
    else:
        ts = since_of(since)
        with opened(db) as conn:
            data = stats_mod.analyze(conn, since=ts)
    if fmt == "json":
        echo_json(data)
    else:
        click.echo(analysis_text(data))


@logs.command("replay")
@click.option("--table", "-t", "table_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the new decision table (a lock file)")
@SINCE
@click.option("--limit", "-n", type=click.IntRange(1), help="at most this many (newest)")
@FORMAT
@DB
def logs_replay(table_path: Path, since: str | None, limit: int | None, fmt: str,
                db: Path | None) -> None:
    """Re-decide the logged requests with another table: what would change?

    Uses the signals each record kept (no prompts needed) and compares the new
    table's first choice with what actually answered: routing, cost, local share.

    \b
    Examples:
      router compile new.yaml -o new.lock.json
      router logs replay --table new.lock.json
      router logs replay --table new.lock.json --since 7d --format json
    """
    table = load_table(table_path)
    ts = since_of(since)
    where, params = ("WHERE ts >= ?", [ts]) if ts is not None else ("", [])
    with opened(db) as conn:
        total = conn.execute(f"SELECT COUNT(*) FROM requests {where}", params).fetchone()[0]
        if limit is not None:
            total = min(total, limit)
        sql = f"SELECT * FROM requests {where} ORDER BY seq DESC"
        sql += " LIMIT ?" if limit is not None else ""
        query = (*params, limit) if limit is not None else tuple(params)
        results: list[replay_mod.Replayed | None] = []
        with click.progressbar(length=total, label="replaying", file=sys.stderr,
                               show_pos=True) as bar:
            for rows in iter_batches(conn, sql, query):
                results.extend(replay_mod.replay(table, rows))
                bar.update(len(rows))
    report = replay_mod.summarize(results, table_hash=table.hash)
    if fmt == "json":
        echo_json(report)
    else:
        click.echo(replay_text(report, table_path))


#: the commands this module adds to ``router`` (registered by ``cli``)
COMMANDS: tuple[click.Command, ...] = (stats_cmd, logs)
