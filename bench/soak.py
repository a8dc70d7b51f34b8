"""Soak run (not in CI): sustained load through the router with upstream faults and
client disconnects, on loopback only, stopping by itself.

    .venv/bin/python -m bench.soak --minutes 30            # the full run
    .venv/bin/python -m bench.soak --minutes 2 --json out.json

It starts three fake OpenAI-wire upstreams (two local, one cloud) that fail
``--faults`` (10%) of requests - 500, 429, a dropped connection, or a reply slower
than the provider timeout - then a router (Granian subprocess) over them with a
fresh SQLite request log, and drives ``--concurrency`` clients: a mix of JSON and
streaming chat requests, ``--disconnects`` (5%) of which give up early.

At the end it checks and prints:

* **router 5xx = 0** - a 5xx whose error code says the router itself failed
  (``internal_error`` or none), as opposed to the upstreams' faults coming through
  (``all_candidates_failed``, ``deadline_exceeded``, ``private_no_local`` ...);
* **bounded memory** - the router's RSS (sampled every 5 s) in the last quarter of
  the run is within 25% (+16 MiB) of its peak in the first quarter after warm-up;
* **every request in the log** - every request that got an answer has its row in the
  SQLite store (matched by ``X-Request-Id``); disconnected ones are counted apart.

Exit status 0 when all three hold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

UPSTREAM_FAULT_CODES = {"all_candidates_failed", "deadline_exceeded", "private_no_local",
                        "no_candidate", "upstream_error"}


# -- fake upstreams ---------------------------------------------------------------------------


def _completion(model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-soak", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Soak answer."}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}


def _chunk(model: str, text: str, finish: str | None = None) -> bytes:
    data = {"id": "chatcmpl-soak", "object": "chat.completion.chunk", "created": 0,
            "model": model, "choices": [{"index": 0, "delta": {"content": text} if text else {},
                                         "finish_reason": finish}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def upstream_app(faults: float, rng: random.Random, stats: Counter[str]) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", "m"))
        stats["upstream_requests"] += 1
        await asyncio.sleep(rng.uniform(0.005, 0.03))
        if rng.random() < faults:
            kind = rng.choice(["500", "429", "drop", "slow"])
            stats[f"fault_{kind}"] += 1
            if kind == "500":
                return web.json_response({"error": {"message": "boom"}}, status=500)
            if kind == "429":
                return web.json_response({"error": {"message": "slow down"}}, status=429)
            if kind == "drop":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            await asyncio.sleep(3.0)  # longer than the provider timeout (2 s)
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            try:
                await resp.prepare(request)
                for word in ("Soak ", "stream ", "answer."):
                    await resp.write(_chunk(model, word))
                    await asyncio.sleep(0.01)
                await resp.write(_chunk(model, "", "stop") + b"data: [DONE]\n\n")
            except ConnectionResetError:
                # the router closed the stream: its client went away
                stats["streams_closed_by_router"] += 1
            return resp
        return web.json_response(_completion(model))

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def router_yaml(ports: dict[str, int]) -> str:
    lines = ["profile: balanced", "providers:"]
    for name, port in ports.items():
        loc = "cloud" if name == "cloud" else "local"
        lines += [f"  {name}:", "    wire: openai", f"    locality: {loc}", "    auth: none",
                  f"    base_url: http://127.0.0.1:{port}/v1", "    timeout_ms: 2000"]
        if loc == "local":
            lines.append(f"    models: [m-{name}]")
    lines.append("models:")
    for name in ports:
        price = "{input: 0, output: 0}" if name != "cloud" else "{input: 0.5, output: 1.5}"
        lines += [f"  - id: m-{name}", f"    provider: {name}", "    context_window: 32768",
                  "    max_output: 4096", f"    price: {price}",
                  "    capabilities: [streaming, json, tools, vision]",
                  "    quality: {general: 60}", "    speed: {ttft_ms: 100, tokens_per_s: 50}"]
    chain = ", ".join(f"{n}/m-{n}" for n in list(ports)[1:])
    lines.append("overrides:")
    for task in ("general", "code", "reasoning", "summarize", "extract", "creative", "translate"):
        lines += [f"  {task}:", f"    primary: {list(ports)[0]}/m-{list(ports)[0]}",
                  f"    fallbacks: [{chain}]"]
    lines += ["server:", "  deadline_ms: 8000"]
    return "\n".join(lines) + "\n"


# -- the router process -----------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its children (Granian workers), KiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            todo.extend(int(c) for c in children)
        except OSError:
            continue
    return total


# -- the load ---------------------------------------------------------------------------------


async def one_request(session: aiohttp.ClientSession, url: str, n: int, rng: random.Random,
                      disconnect_p: float, out: Counter[str], answered: set[str],
                      router5xx: list[str]) -> None:
    rid = f"soak-{n}"
    stream = rng.random() < 0.5
    body = {"model": "auto", "stream": stream,
            "messages": [{"role": "user", "content": f"Say something ({n})."}]}
    give_up = rng.uniform(0.005, 0.08) if rng.random() < disconnect_p else None
    try:
        async with asyncio.timeout(give_up):
            async with session.post(url + "/v1/chat/completions", json=body,
                                    headers={"X-Request-Id": rid}) as resp:
                raw = await resp.read()
        out["requests"] += 1
        answered.add(rid)
        out[f"status_{resp.status}"] += 1
        if resp.status >= 500:
            try:
                code = json.loads(raw).get("error", {}).get("code")
            except (ValueError, AttributeError):
                code = None
            if code not in UPSTREAM_FAULT_CODES:
                router5xx.append(f"{resp.status} {raw[:200]!r}")
        elif stream and b'"error"' in raw:
            out["stream_in_band_errors"] += 1
    except TimeoutError:
        out["disconnected"] += 1
    except aiohttp.ClientError as exc:
        out["client_errors"] += 1
        router5xx.append(f"client error {type(exc).__name__}: {exc}")


async def drive(url: str, seconds: float, concurrency: int, disconnect_p: float, seed: int,
                pid: int) -> dict[str, Any]:
    rng = random.Random(seed)
    out: Counter[str] = Counter()
    answered: set[str] = set()
    router5xx: list[str] = []
    rss: list[tuple[float, int]] = []
    end = time.monotonic() + seconds
    counter = iter(range(10**9))
    conn = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=conn) as session:
        async def worker() -> None:
            while time.monotonic() < end:
                await one_request(session, url, next(counter), rng, disconnect_p, out,
                                  answered, router5xx)

        async def sampler() -> None:
            start = time.monotonic()
            while time.monotonic() < end:
                rss.append((round(time.monotonic() - start, 1), rss_kib(pid)))
                await asyncio.sleep(5)

        await asyncio.gather(sampler(), *(worker() for _ in range(concurrency)))
    return {"counts": dict(out), "answered": answered, "router_5xx": router5xx, "rss": rss}


async def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            if proc.poll() is not None:
                raise SystemExit(f"the router exited:\n{log.read_text()[-3000:]}")
            try:
                async with s.get(url + "/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the router did not become ready in 60 s")


def store_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT client_request_id FROM requests").fetchall()
    return {r[0] for r in rows if r[0]}


def memory_bounded(rss: list[tuple[float, int]]) -> bool:
    values = [v for _, v in rss]
    if len(values) < 8:
        return bool(values)
    q = len(values) // 4
    early = max(values[1:q + 1])  # skip the first sample (warm-up)
    late = max(values[-q:])
    return late <= early * 1.25 + 16 * 1024


async def main_async(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    stats: Counter[str] = Counter()
    runners, ports = [], {}
    for name in ("loc-a", "loc-b", "cloud"):
        runner = web.AppRunner(upstream_app(args.faults, rng, stats), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        ports[name] = port
    tmp = Path(tempfile.mkdtemp(prefix="interlock-soak-"))
    (tmp / "router.yaml").write_text(router_yaml(ports))
    db = tmp / "soak.db"
    port = free_port()
    env = {**os.environ, "INTERLOCK_DB": str(db), "XDG_DATA_HOME": str(tmp),
           "INTERLOCK_PROBE": "0"}
    log = (tmp / "router.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock.runtime.server", "--config", str(tmp / "router.yaml"),
         "--host", "127.0.0.1", "--port", str(port), "--no-probe", "--no-summary"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, proc, tmp / "router.log")
        t = time.monotonic()
        result = await drive(url, args.minutes * 60, args.concurrency, args.disconnects,
                             args.seed, proc.pid)
        took = time.monotonic() - t
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        for runner in runners:
            await runner.cleanup()
    logged = store_ids(db) if db.exists() else set()
    missing = sorted(result["answered"] - logged)
    counts = result["counts"]
    report = {
        "minutes": args.minutes, "concurrency": args.concurrency, "faults": args.faults,
        "disconnect_rate": args.disconnects, "seconds": round(took, 1),
        "requests_answered": counts.get("requests", 0),
        "requests_disconnected": counts.get("disconnected", 0),
        "req_per_s": round(counts.get("requests", 0) / took, 1),
        "statuses": {k: v for k, v in sorted(counts.items()) if k.startswith("status_")},
        "stream_in_band_errors": counts.get("stream_in_band_errors", 0),
        "upstream": dict(sorted(stats.items())),
        "router_5xx": len(result["router_5xx"]), "router_5xx_examples": result["router_5xx"][:5],
        "rss_mib": [(t_, round(v / 1024, 1)) for t_, v in result["rss"]],
        "memory_bounded": memory_bounded(result["rss"]),
        "log_rows": len(logged), "answered_missing_from_log": len(missing),
        "missing_examples": missing[:5],
        "disconnected_in_log": len(logged) - (len(result["answered"]) - len(missing)),
        "router_log": str(tmp / "router.log"),
    }
    ok = report["router_5xx"] == 0 and report["memory_bounded"] and not missing
    report["ok"] = ok
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--faults", type=float, default=0.10, help="upstream fault rate")
    ap.add_argument("--disconnects", type=float, default=0.05, help="client give-up rate")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--json", help="also write the report here")
    return asyncio.run(main_async(ap.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
