"""The README's examples really run.

Every fenced block preceded by ``<!-- readme-test: demo NAME -->`` is executed
against a real ``router start --demo`` (Granian, the two demo upstreams on
loopback), with the README's address replaced by the test server's; what it
prints must show what the README says it shows.  The ``config`` blocks must
compile.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"<!-- readme-test: (\w+) (\w+) -->\n```(\w+)\n(.*?)```", re.S)
BLOCKS = {(kind, name): (lang, code) for kind, name, lang, code in BLOCK.findall(README)}

#: what each demo example must print (a substring of its output)
EXPECT = {
    "local": '"model":"demo-local/tiny-local"',
    "cloud": '"model":"demo-cloud/big-cloud"',
    "private": "private_no_local",
    "sdk": "demo-local/tiny-local creative.low.public.text",
    "models": '"id":"route-auto"',
    "route": '"private":true',
    "health": '"status":"ok"',
    "error": '"param":"messages[0].content"',
    "headers": "x-router-cell: creative.low.private.text",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    port = _free_port()
    router = Path(sys.executable).parent / "router"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.Popen(
        [str(router), "start", "--demo", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                time.sleep(0.1)
        else:
            pytest.fail("router start --demo did not listen within 30 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_every_demo_example_is_checked() -> None:
    names = {name for kind, name in BLOCKS if kind == "demo"}
    assert names == set(EXPECT), "a README example has no expectation here (or vice versa)"


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_demo_example(demo: str, name: str) -> None:
    lang, code = BLOCKS[("demo", name)]
    code = code.replace("http://127.0.0.1:8787", demo)
    if lang == "bash":
        cmd = ["bash", "-c", code]
    else:
        assert lang == "python"
        cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert EXPECT[name] in out.stdout, out.stdout


def test_config_reference_example_compiles() -> None:
    from interlock.compiler.api import compile_text

    lang, code = BLOCKS[("config", "router")]
    assert lang == "yaml"
    env = {"OPENAI_KEY_A": "x", "OPENAI_KEY_B": "y", "ANTHROPIC_API_KEY": "z"}
    result = compile_text(code, origin="README.md", environ=env, discovered={})
    assert result.table is not None, "\n".join(d.format() for d in result.diagnostics)
    cells = result.table.cells
    assert cells["translate.high.public.text"].chain[0].model == "openai/gpt-4.1-mini"
    # the override's cloud models are dropped from private cells, never kept
    assert all(c.local for c in cells["translate.low.private.text"].chain)
