"""The benchmark: router overhead side by side with a bare proxy and LiteLLM.

One command, run from the repository root::

    .venv/bin/python bench/run.py            # full run, rewrites bench/RESULTS.md
    .venv/bin/python bench/run.py --quick    # shorter load phases, for a smoke check
    .venv/bin/python bench/run.py --no-litellm

It starts a zero-delay fake upstream (bench/upstream.py) and drives the same wrk
load, one target after another, through (a) the upstream directly, (b) the floor
pass-through proxy (bench/floor.py), (c) interlock with the balanced profile and
(d) the LiteLLM proxy (installed by this script into bench/.venv-litellm), each on
one worker, then interlock with one worker per core.  Last, (f) the floor, interlock
and LiteLLM run side by side and take the 32-connection load in turn for ``--rounds``
rounds, for ratios that rest on more than one sample each.  Every process it starts
is stopped at the end; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from measure import cpu_tree_s, micro_decision, rss_tree_kb, wait_port

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = sys.executable
CHAT = (
    '{"model":"auto","messages":[{"role":"user","content":'
    '"Say hello to the benchmark in one short sentence."}]}'
)
STREAM = CHAT[:-1] + ',"stream":true}'

#: sent to every target alike; LiteLLM refuses to start without a master key
BENCH_KEY = "sk-bench-master-key-5f1c0e9a7d3b4a21"
HEADERS = {"content-type": "application/json", "authorization": f"Bearer {BENCH_KEY}"}

PORT_UP, PORT_FLOOR, PORT_IL, PORT_LITELLM, PORT_ILN = 9100, 9101, 9102, 9103, 9104


@dataclass
class Figures:
    name: str
    rps_1: float = 0.0
    rps_32: float = 0.0
    p50_1_ms: float = 0.0
    p99_1_ms: float = 0.0
    p50_32_ms: float = 0.0
    p99_32_ms: float = 0.0
    ttfb_ms: float = 0.0
    stream_total_ms: float = 0.0
    peak_rss_mb: float = 0.0
    #: CPU time (user + system, the whole process tree) per request at 32 connections
    cpu_us_32: float = 0.0
    errors: int = 0
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------- processes


class Proc:
    def __init__(self, name: str, cmd: list[str], port: int, env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> None:
        self.name, self.port = name, port
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def ready(self, timeout: float = 60.0) -> None:
        if not wait_port(self.port, timeout, self.proc):
            self.stop()
            tail = Path(self.log.name).read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not start on :{self.port}\n{tail}")

    def rss_mb(self) -> float:
        return rss_tree_kb(self.proc.pid) / 1024

    def stop(self) -> None:
        """Stop the process and wait for its whole group: interlock's log writers outlive
        their worker by design (they commit what it handed over) and must not run into
        the next phase."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        deadline = time.monotonic() + 30
        while _group_alive(self.proc.pid):
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, 9)
                break
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def interlock(name: str, lock: Path, port: int, workers: int, tmp: Path) -> Proc:
    """``router start`` on ``lock``, logging as shipped but to a fresh file of its own in
    the run's temporary directory: never the user's log (``INTERLOCK_DB`` else
    ``~/.local/share/interlock``), which every run would otherwise grow - by ~2 million
    rows - and measure against."""
    return Proc(name, [str(Path(PY).parent / "router"), "start", "--table", str(lock),
                       "--port", str(port), "--workers", str(workers)], port,
                env={"INTERLOCK_DB": str(tmp / f"{name}.db")})


def log_rows(tmp: Path) -> str:
    """How many rows each interlock process of the run wrote to its request log."""
    counts = []
    for db in sorted(tmp.glob("*.db"), key=lambda p: p.stem):
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            n = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        counts.append(f"{db.stem} {n:,}")
    return ", ".join(counts)


def granian(target: str, port: int, workers: int = 1) -> list[str]:
    return [PY, "-m", "granian", "--interface", "asgi", "--workers", str(workers),
            "--host", "127.0.0.1", "--port", str(port), "--no-ws", "--log-level", "warning",
            target]


# ----------------------------------------------------------------- load


def wrk(url: str, body: str, conns: int, seconds: int) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, non-2xx+socket errors) from one wrk run."""
    rps, p50, p99, errors, _n = wrk_run(url, body, conns, seconds)
    return rps, p50, p99, errors


def wrk_run(url: str, body: str, conns: int, seconds: int
            ) -> tuple[float, float, float, int, int]:
    """``wrk`` plus the number of requests it completed."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        lua.write(f'wrk.headers["Authorization"] = "Bearer {BENCH_KEY}"\n')
        lua.write(f"wrk.body = [[{body}]]\n")
    threads = min(conns, 2)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--latency",
         "-s", lua.name, url],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(lua.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, _ms(pct["50"]), _ms(pct["99"]), errors, done


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


async def _stream_timings(url: str, n: int) -> tuple[float, float]:
    ttfb: list[float] = []
    total: list[float] = []
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            t0 = time.perf_counter()
            async with s.post(url, data=STREAM, headers=HEADERS) as r:
                first = None
                async for _chunk in r.content.iter_any():
                    if first is None:
                        first = time.perf_counter()
                end = time.perf_counter()
            ttfb.append(((first or end) - t0) * 1000)
            total.append((end - t0) * 1000)
    ttfb.sort()
    total.sort()
    return ttfb[len(ttfb) // 2], total[len(total) // 2]


def measure(fig: Figures, url: str, proc: Proc | None, seconds: int) -> Figures:
    wrk(url, CHAT, 4, 2)  # warm-up: connections, caches, lazy imports
    fig.rps_1, fig.p50_1_ms, fig.p99_1_ms, e1 = wrk(url, CHAT, 1, seconds)
    cpu0 = cpu_tree_s(proc.proc.pid) if proc is not None else 0.0
    fig.rps_32, fig.p50_32_ms, fig.p99_32_ms, e32, done = wrk_run(url, CHAT, 32, seconds)
    if proc is not None and done:
        fig.cpu_us_32 = (cpu_tree_s(proc.proc.pid) - cpu0) / done * 1e6
    fig.errors = e1 + e32
    fig.ttfb_ms, fig.stream_total_ms = asyncio.run(_stream_timings(url, 30))
    if proc is not None:
        fig.peak_rss_mb = proc.rss_mb()
    return fig


# ----------------------------------------------------------------- targets


def litellm_env() -> Path | None:
    venv = BENCH / ".venv-litellm"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        print("installing litellm[proxy] into bench/.venv-litellm ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"])
        if r.returncode != 0 or not exe.exists():
            return None
    return exe


def litellm_config(tmp: Path) -> Path:
    cfg = tmp / "litellm.yaml"
    cfg.write_text(
        "model_list:\n  - model_name: auto\n    litellm_params:\n"
        "      model: openai/bench-model\n"
        f"      api_base: http://127.0.0.1:{PORT_UP}/v1\n      api_key: sk-bench-not-a-key\n"
        "litellm_settings:\n  telemetry: false\n"
    )
    return cfg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 s load phases instead of 15 s")
    ap.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM comparison")
    ap.add_argument("--seconds", type=int, default=None)
    ap.add_argument("--soak-requests", type=int, default=100_000,
                    help="requests in the memory-flatness run (0 to skip)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds of the 32-connection throughput phase for the "
                         "ratios (0 to skip)")
    args = ap.parse_args()
    secs = args.seconds or (5 if args.quick else 15)
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="interlock-bench-"))
    lock = tmp / "bench.lock.json"
    subprocess.run([str(Path(PY).parent / "router"), "compile", str(BENCH / "router.yaml"),
                    "--no-discover", "-o", str(lock)], check=True, cwd=ROOT)
    procs: list[Proc] = []
    results: list[Figures] = []
    soak = ""
    rounds: dict[str, list[float]] = {}

    def start(p: Proc) -> Proc:
        procs.append(p)
        p.ready()
        return p

    # first, before any server of the run starts: a single thread of pure Python
    micro = micro_decision(lock)
    try:
        start(Proc("upstream", granian("bench.upstream:app", PORT_UP), PORT_UP))
        chat = "/v1/chat/completions"
        print("(a) upstream directly", flush=True)
        results.append(measure(Figures("upstream (direct)"), f"http://127.0.0.1:{PORT_UP}{chat}",
                               None, secs))
        print("(b) floor proxy", flush=True)
        floor = start(Proc("floor", granian("bench.floor:app", PORT_FLOOR), PORT_FLOOR,
                           env={"BENCH_UPSTREAM": f"http://127.0.0.1:{PORT_UP}"}))
        results.append(measure(Figures("floor proxy (aiohttp, 1 worker)"),
                               f"http://127.0.0.1:{PORT_FLOOR}{chat}", floor, secs))
        floor.stop()
        print("(c) interlock, 1 worker", flush=True)
        il = start(interlock("interlock", lock, PORT_IL, 1, tmp))
        results.append(measure(Figures("interlock balanced (1 worker)"),
                               f"http://127.0.0.1:{PORT_IL}{chat}", il, secs))
        if args.soak_requests:
            soak = soak_run(il, f"http://127.0.0.1:{PORT_IL}{chat}", args.soak_requests)
        il.stop()
        if not args.no_litellm:
            exe = litellm_env()
            if exe is None:
                results.append(Figures("LiteLLM proxy", notes=["install failed"]))
            else:
                print("(d) LiteLLM proxy, 1 worker", flush=True)
                lit = start(Proc("litellm", [str(exe), "--config", str(litellm_config(tmp)),
                                             "--port", str(PORT_LITELLM), "--num_workers", "1"],
                                 PORT_LITELLM,
                                 env={"LITELLM_MASTER_KEY": BENCH_KEY,
                                      "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                                      "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR"}))
                results.append(measure(Figures("LiteLLM proxy (1 worker)"),
                                       f"http://127.0.0.1:{PORT_LITELLM}{chat}", lit, secs))
                lit.stop()
        cores = os.cpu_count() or 1
        print(f"(e) interlock, {cores} workers", flush=True)
        iln = start(interlock("interlock-n", lock, PORT_ILN, cores, tmp))
        results.append(measure(Figures(f"interlock balanced ({cores} workers)"),
                               f"http://127.0.0.1:{PORT_ILN}{chat}", iln, secs))
        iln.stop()
        if args.rounds:
            print(f"(f) {args.rounds} interleaved rounds at 32 connections", flush=True)
            rounds = interleaved(tmp, lock, args, secs, start)
    finally:
        for p in procs:
            p.stop()
    # the same again: a machine that slowed down during the run shows here
    micro_end = micro_decision(lock)
    logs = log_rows(tmp)
    shutil.rmtree(tmp, ignore_errors=True)  # the request logs: ~1 GB after a full run
    write_results(results, micro, soak, secs, " ".join(sys.argv[1:]), rounds, logs,
                  micro_end)
    print((BENCH / "RESULTS.md").read_text())
    return 0


def interleaved(tmp: Path, lock: Path, args: argparse.Namespace, secs: int,
                start: Callable[[Proc], Proc]) -> dict[str, list[float]]:
    """req/s at 32 connections of the floor, interlock and LiteLLM, taken in turn for
    ``args.rounds`` rounds with all three running: on a shared 2-core machine a single
    phase per target moves by +-15%, and the ratios deserve more than one sample."""
    chat = "/v1/chat/completions"
    urls = {"floor": f"http://127.0.0.1:{PORT_FLOOR}{chat}",
            "interlock": f"http://127.0.0.1:{PORT_IL}{chat}"}
    start(Proc("floor-r", granian("bench.floor:app", PORT_FLOOR), PORT_FLOOR,
               env={"BENCH_UPSTREAM": f"http://127.0.0.1:{PORT_UP}"}))
    start(interlock("interlock-r", lock, PORT_IL, 1, tmp))
    exe = None if args.no_litellm else litellm_env()
    if exe is not None:
        start(Proc("litellm-r", [str(exe), "--config", str(litellm_config(tmp)),
                                 "--port", str(PORT_LITELLM), "--num_workers", "1"],
                   PORT_LITELLM, env={"LITELLM_MASTER_KEY": BENCH_KEY,
                                      "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                                      "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR"}))
        urls["litellm"] = f"http://127.0.0.1:{PORT_LITELLM}{chat}"
    for url in urls.values():
        wrk(url, CHAT, 4, 2)  # warm-up
    out: dict[str, list[float]] = {k: [] for k in urls}
    for _ in range(args.rounds):
        for name, url in urls.items():
            out[name].append(wrk(url, CHAT, 32, secs)[0])
    return out


def soak_run(proc: Proc, url: str, n: int) -> str:
    """Drive ~n requests at 32 connections and report RSS before and after."""
    before = proc.rss_mb()
    rps, _, _, _ = wrk(url, CHAT, 32, 3)
    seconds = max(5, int(n / max(rps, 1.0)))
    done = 0.0
    samples = [before]
    while done < n:
        chunk = min(seconds, max(5, seconds // 4))
        r, _, _, _ = wrk(url, CHAT, 32, chunk)
        done += r * chunk
        samples.append(proc.rss_mb())
    return (f"{int(done):,} requests at 32 connections: RSS {before:.1f} MB before, "
            + ", ".join(f"{s:.1f}" for s in samples[1:]) + " MB after each quarter")


def write_results(results: list[Figures], micro: dict[str, float], soak: str, secs: int,
                  argv: str, rounds: dict[str, list[float]] | None = None,
                  logs: str = "", micro_end: dict[str, float] | None = None) -> None:
    direct = results[0]
    by = {f.name: f for f in results}
    lines = [
        BEGIN,
        "## Overhead: interlock vs the floor proxy vs LiteLLM (`bench/run.py`)",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{_mem_gb():.0f} GiB, {platform.platform()}, Python {platform.python_version()}",
        f"- command: `{' '.join(['.venv/bin/python', 'bench/run.py', argv]).rstrip()}`",
        f"- load: wrk, {secs} s per phase, POST /v1/chat/completions (non-streaming); "
        "streams: 30 sequential requests of 200 chunks, medians",
        "- interlock's request log: on, as shipped, each interlock process writing a fresh "
        f"SQLite file of its own in the run's temporary directory (rows: {logs or '-'})",
        "",
        "| target | req/s @1 | req/s @32 | p50 @1 | p99 @1 | p50 @32 | p99 @32 | added p50 @1 "
        "| stream TTFB | stream total | peak RSS | CPU/req @32 | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in results:
        if f.notes:
            lines.append(f"| {f.name} | " + " | ".join(["-"] * 11) + f" | {'; '.join(f.notes)} |")
            continue
        added = f.p50_1_ms - direct.p50_1_ms
        lines.append(
            f"| {f.name} | {f.rps_1:,.0f} | {f.rps_32:,.0f} | {f.p50_1_ms:.2f} ms | "
            f"{f.p99_1_ms:.2f} ms | {f.p50_32_ms:.2f} ms | {f.p99_32_ms:.2f} ms | "
            f"{added:+.2f} ms | {f.ttfb_ms:.2f} ms | {f.stream_total_ms:.2f} ms | "
            f"{f.peak_rss_mb:.0f} MB | "
            f"{f'{f.cpu_us_32:.0f} µs' if f.cpu_us_32 else '-'} | {f.errors} |"
        )
    il = by.get("interlock balanced (1 worker)")
    fl = by.get("floor proxy (aiohttp, 1 worker)")
    lt = by.get("LiteLLM proxy (1 worker)")
    lines += ["", "### Ratios (throughput at 32 connections, same run, one worker each)", ""]
    if il and fl and fl.rps_32:
        lines.append(f"- interlock / floor: {il.rps_32 / fl.rps_32:.2f} (target ≥ 0.70)")
    if il and lt and lt.rps_32:
        lines.append(f"- interlock / LiteLLM: {il.rps_32 / lt.rps_32:.1f}× (target ≥ 40×)")
    if rounds and rounds.get("floor") and rounds.get("interlock"):
        n = len(rounds["interlock"])
        lines += ["", f"### Ratios over {n} interleaved rounds (32 connections, {secs} s each, "
                  "floor / interlock / LiteLLM in turn, all three running)", "",
                  "| round | floor req/s | interlock req/s | LiteLLM req/s | interlock / floor "
                  "| interlock / LiteLLM |", "|---|---|---|---|---|---|"]
        lit = rounds.get("litellm") or []
        fl_r, il_r = rounds["floor"], rounds["interlock"]
        by_floor = [i / f for i, f in zip(il_r, fl_r, strict=True) if f]
        by_lit = [i / x for i, x in zip(il_r, lit, strict=False) if x]
        for k in range(n):
            lt_k = f"{lit[k]:,.0f}" if k < len(lit) else "-"
            rl = f"{il_r[k] / lit[k]:.1f}×" if k < len(lit) and lit[k] else "-"
            lines.append(f"| {k + 1} | {fl_r[k]:,.0f} | {il_r[k]:,.0f} | {lt_k} | "
                         f"{il_r[k] / fl_r[k]:.2f} | {rl} |")
        lines.append("")
        lines.append(f"- interlock / floor: median {statistics.median(by_floor):.2f} "
                     f"(range {min(by_floor):.2f}-{max(by_floor):.2f}; target ≥ 0.70)")
        if by_lit:
            lines.append(f"- interlock / LiteLLM: median {statistics.median(by_lit):.1f}× "
                         f"(range {min(by_lit):.1f}-{max(by_lit):.1f}×; target ≥ 40×)")
    lines += ["", "### Decision path alone (classify + look-up + filter, in process, "
              "before any server starts)", ""]
    for k, v in micro.items():
        lines.append(f"- {k}: {v:,.1f} µs")
    if micro_end:
        lines.append("- the same at the end of the run (how the machine's speed moved): "
                     + ", ".join(f"{v:,.1f}" for v in micro_end.values()) + " µs")
    if soak:
        lines += ["", "### Memory over a long run", "", f"- {soak}"]
    lines.append(END)
    replace_section(BENCH / "RESULTS.md", "\n".join(lines) + "\n")


BEGIN = "<!-- bench/run.py: begin (rewritten by every run) -->"
END = "<!-- bench/run.py: end -->"


def replace_section(path: Path, section: str) -> None:
    """Replace this harness's section of RESULTS.md, keeping everything else (soak)."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        head, sep, tail = text.partition("\n## ")
        after = "\n" + sep.lstrip("\n") + tail if sep else ""
        text = head.rstrip("\n") + "\n\n" + section + after
    path.write_text(text)


def _mem_gb() -> float:
    with open("/proc/meminfo") as fh:
        return int(fh.readline().split()[1]) / 1024 / 1024


if __name__ == "__main__":
    sys.exit(main())
