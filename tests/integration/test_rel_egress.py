"""Egress control on a real router: clients cannot steer traffic (body, extra_body,
headers), upstream redirects are not followed, proxy variables are ignored, and a
private request opens no connection to a non-local address on any path - proven
with a Python audit hook in the router's own processes that logs every
``socket.connect`` and ``getaddrinfo``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e.harness import RouterProcess, chat_body, prov
from fakes.fixtures import FakeOllama, FakeOpenAI
from fakes.harness import Behaviour
from integration.rel_support import Rig, rel_router, table_for

# TEST-NET-3: never a local address.  The audit hook below refuses every connect to a
# non-loopback address before it happens, so no traffic ever leaves the machine.
CLOUD_ADDR = "203.0.113.7"

AUDIT_HOOK = '''
import os, sys
_log = os.environ.get("REL_CONNECT_LOG")
if _log:
    def _rel_hook(event, args):
        if event == "socket.connect":
            addr = args[1]
            with open(_log, "a") as f:
                f.write("connect %r\\n" % (addr,))
            host = addr[0] if isinstance(addr, tuple) else ""
            if host and not (host.startswith("127.") or host in ("::1", "localhost")):
                # recorded, then refused before any packet leaves this machine: the
                # test proves the attempt without ever sending traffic off loopback
                raise ConnectionRefusedError(111, "blocked by the test's egress hook")
        elif event == "socket.getaddrinfo":
            with open(_log, "a") as f:
                f.write("getaddrinfo %r\\n" % (args[0],))
    sys.addaudithook(_rel_hook)
'''


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with rel_router() as r:
        yield r


# -- clients cannot choose the destination ---------------------------------------------------

STEERING_BODIES = [
    ("api_base", {"api_base": "http://evil.example/v1"}),
    ("base_url", {"base_url": "http://169.254.169.254/"}),
    ("api_key", {"api_key": "sk-mine"}),
    ("API-Key", {"API-Key": "sk-mine"}),
    ("extra_body.base_url", {"extra_body": {"base_url": "http://evil.example"}}),
    ("extra_body.url", {"extra_body": {"url": "http://evil.example"}}),
    ("metadata.api_base", {"metadata": {"api_base": "http://evil.example"}}),
    ("extra_headers", {"extra_headers": {"Host": "evil.example"}}),
]


@pytest.mark.parametrize(("name", "extra"), STEERING_BODIES, ids=[n for n, _ in STEERING_BODIES])
def test_a_body_that_names_an_upstream_or_key_is_refused(rig: Rig, name: str,
                                                         extra: dict[str, object]) -> None:
    rig.reset()
    r = httpx.post(rig.url + "/v1/chat/completions", json=chat_body(**extra), timeout=10)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "egress_not_allowed" and err["param"] == name
    assert r.headers["x-should-retry"] == "false"
    assert rig.local.requests == [] and rig.local2.requests == []


def test_free_form_metadata_is_not_over_blocked(rig: Rig) -> None:
    body = chat_body(metadata={"url": "https://example.com/page", "host": "ci-7"})
    r = httpx.post(rig.url + "/v1/chat/completions", json=body, timeout=10)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("header", ["OpenAI-Base-URL", "X-Router-Base-URL", "X-Api-Base",
                                    "X-Provider-Api-Key", "X-Router-Upstream"])
def test_a_header_that_names_an_upstream_or_key_is_refused(rig: Rig, header: str) -> None:
    rig.reset()
    r = httpx.post(rig.url + "/v1/chat/completions", json=chat_body(),
                   headers={header: "http://evil.example/v1"}, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "egress_not_allowed"
    assert rig.local.requests == []


# -- redirects and proxies --------------------------------------------------------------------


class Canary:
    """A TCP listener that counts connections (and answers nothing useful)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._t.join(2)
        self.sock.close()


def test_an_upstream_redirect_is_not_followed(rig: Rig) -> None:
    canary = Canary()
    try:
        rig.reset()
        target = f"http://127.0.0.1:{canary.port}/v1/chat/completions"
        rig.local.push(Behaviour(status=307, headers={"Location": target}))
        r = httpx.post(rig.url + "/v1/chat/completions", json=chat_body(), timeout=10)
        assert len(rig.local.requests) == 1
        assert canary.hits == 0
        # the redirect is an upstream failure, never the canary's content
        assert r.status_code != 200 or r.headers["x-router-provider"] != "loc"
    finally:
        canary.close()


def test_proxy_environment_variables_are_ignored() -> None:
    canary = Canary()
    proxy = f"http://127.0.0.1:{canary.port}"
    env = {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "ALL_PROXY": proxy,
           "http_proxy": proxy, "https_proxy": proxy, "NO_PROXY": ""}
    try:
        with rel_router(env=env) as rig:
            r = httpx.post(rig.url + "/v1/chat/completions", json=chat_body(), timeout=10)
            assert r.status_code == 200, r.text
            assert len(rig.local.requests) == 1  # reached directly
            r = httpx.post(rig.url + "/v1/chat/completions", json=chat_body(model="cloud/m-c"),
                           timeout=10)
            assert r.status_code == 200 and len(rig.cloud.requests) == 1
        assert canary.hits == 0
    finally:
        canary.close()


# -- the private canary: every connect of the router's processes is logged ----------------


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rig, Path]]:
    tmp = tmp_path_factory.mktemp("audit")
    (tmp / "sitecustomize.py").write_text(AUDIT_HOOK)
    log = tmp / "connects.log"
    local = FakeOllama(models=["m-a"]).start()
    local2 = FakeOpenAI(models=["m-b"]).start()
    cloud_fake = FakeOpenAI(models=["m-c"]).start()  # stands in only for the Rig type
    router = None
    try:
        provs = [prov("loc", local, "ollama", "local", ["m-a"], quality=40.0),
                 prov("loc2", local2, "openai", "local", ["m-b"], quality=50.0),
                 prov("cloud", f"http://{CLOUD_ADDR}/v1", "openai", "cloud", ["m-c"],
                      quality=95.0, timeout_ms=1500),
                 prov("emb", local2, "openai", "local", ["e-local"], caps=["embeddings"]),
                 prov("cloud-emb", f"http://{CLOUD_ADDR}/v1", "openai", "cloud", ["e-cloud"],
                      caps=["embeddings"], timeout_ms=1500)]
        table = table_for(provs, ["loc/m-a", "loc2/m-b", "cloud/m-c"])
        env = {"PYTHONPATH": str(tmp), "REL_CONNECT_LOG": str(log),
               "INTERLOCK_HEALTH_FAILURES": "1000000", "INTERLOCK_BREAKERS": "0"}
        router = RouterProcess(table, env=env).wait_ready()
        yield Rig(local, local2, cloud_fake, router), log
    finally:
        if router is not None:
            router.stop()
        for up in (local, local2, cloud_fake):
            up.stop()


def _connects(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _non_local(lines: list[str]) -> list[str]:
    return [ln for ln in lines if CLOUD_ADDR in ln]


def _private_paths(rig: Rig) -> list[tuple[str, httpx.Response]]:
    url = rig.url + "/v1/chat/completions"
    out: list[tuple[str, httpx.Response]] = []
    # fallback: the first local fails, the second answers
    rig.local.push(Behaviour(status=500))
    out.append(("fallback", httpx.post(url, json=chat_body(private=True), timeout=15)))
    # every local fails: a 503, never the cloud
    rig.local.push(Behaviour(status=500))
    rig.local2.push(Behaviour(status=503))
    out.append(("all-local-failed", httpx.post(url, json=chat_body(private=True), timeout=15)))
    # an explicit cloud model on a private request
    out.append(("explicit-model", httpx.post(
        url, json=chat_body(model="cloud/m-c", private=True), timeout=15)))
    # streaming with the first local failing
    rig.local.push(Behaviour(status=500))
    out.append(("stream", httpx.post(url, json=chat_body(stream=True, private=True),
                                     timeout=15)))
    # escalation: the local answer is empty, so the verifiers escalate (locally only)
    rig.local.push(Behaviour(text=""))
    out.append(("escalation", httpx.post(url, json=chat_body(private=True), timeout=15)))
    # embeddings: the local embedding model fails, the cloud one is never tried
    out.append(("embeddings", httpx.post(rig.url + "/v1/embeddings", json={
        "model": "auto", "input": "secret notes", "private": True}, timeout=15)))
    rig.local2.push(Behaviour(status=500))
    out.append(("embeddings-failing", httpx.post(rig.url + "/v1/embeddings", json={
        "model": "auto", "input": "secret notes #no_cloud"}, timeout=15)))
    return out


def test_a_private_request_connects_to_no_non_local_address(
        audited: tuple[Rig, Path]) -> None:
    rig, log = audited
    before = len(_connects(log))
    results = _private_paths(rig)
    lines = _connects(log)[before:]
    assert _non_local(lines) == [], lines
    # the hook sees the router's connects: the local fakes were reached through it
    ports = {str(rig.local.port), str(rig.local2.port)}
    assert any(p in ln for ln in lines for p in ports), lines
    statuses = {name: r.status_code for name, r in results}
    assert statuses["fallback"] == 200 and statuses["stream"] == 200, statuses
    assert statuses["all-local-failed"] == 503 and statuses["explicit-model"] in (403, 503)
    assert statuses["embeddings-failing"] >= 500, statuses
    emb = dict(results)["embeddings"]
    assert emb.status_code == 200 and emb.headers["x-router-provider"] == "emb", emb.text
    esc = dict(results)["escalation"]
    assert esc.status_code == 200 and esc.headers["x-router-provider"] != "cloud"


def test_the_same_requests_public_do_reach_for_the_cloud(audited: tuple[Rig, Path]) -> None:
    # positive control: without the private flag the router does try the cloud address
    rig, log = audited
    before = len(_connects(log))
    rig.local.push(Behaviour(status=500))
    rig.local2.push(Behaviour(status=503))
    r = httpx.post(rig.url + "/v1/chat/completions", json=chat_body(), timeout=15)
    # (the hook refuses the connect before anything is sent: the router tried it)
    assert r.headers["x-router-attempts"] == "3", r.text
    assert _non_local(_connects(log)[before:]), "the audit hook saw no cloud connect"
    rig.local2.push(Behaviour(status=500))
    before = len(_connects(log))
    r = httpx.post(rig.url + "/v1/embeddings", json={"model": "auto", "input": "notes"},
                   timeout=15)
    # a new connect, or the kept-alive one to the same cloud address answered
    assert _non_local(_connects(log)[before:]) or r.headers["x-router-provider"] == "cloud-emb"
    assert r.headers["x-router-attempts"] == "2", r.text
