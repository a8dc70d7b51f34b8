"""Shared helpers of the reliability/security tests (tests/*/test_rel_*.py).

``rel_router(...)`` starts fakes and a router (Granian subprocess) with a
``server:`` section given as a dict (written as JSON, which is YAML).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from e2e.harness import RouterProcess, compile_yaml, config_yaml, prov
from fakes.fixtures import FakeOllama, FakeOpenAI
from interlock.runtime.table import DecisionTable

KEY_A = "ilk-test-key-alpha-0123456789"
KEY_B = "ilk-test-key-bravo-9876543210"


def table_for(provs: list[Any], chain: list[str], server: Mapping[str, Any] | None = None,
              extra: str = "") -> DecisionTable:
    text = config_yaml(provs, chain)
    if server:
        text += "server: " + json.dumps(server) + "\n"
    return compile_yaml(text + extra)


@dataclass
class Rig:
    local: FakeOllama
    local2: FakeOpenAI
    cloud: FakeOpenAI
    router: RouterProcess
    #: XDG_DATA_HOME of the router (its SQLite store and any other files live here)
    data_dir: str = ""

    @property
    def url(self) -> str:
        return self.router.url

    def reset(self) -> None:
        for up in (self.local, self.local2, self.cloud):
            up.reset()


@contextmanager
def rel_router(server: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None,
               timeout_ms: int = 5_000, chain: list[str] | None = None,
               local2_concurrency: int | None = None,
               patch: Mapping[str, Mapping[str, Any]] | None = None) -> Iterator[Rig]:
    """loc (Ollama wire, local) → loc2 (OpenAI wire, local) → cloud (OpenAI wire)."""
    local = FakeOllama(models=["m-a"]).start()
    local2 = FakeOpenAI(models=["m-b"]).start()
    cloud = FakeOpenAI(models=["m-c"]).start()
    router: RouterProcess | None = None
    try:
        provs = [prov("loc", local, "ollama", "local", ["m-a"], timeout_ms=timeout_ms),
                 prov("loc2", local2, "openai", "local", ["m-b"], timeout_ms=timeout_ms),
                 prov("cloud", cloud, "openai", "cloud", ["m-c"], timeout_ms=timeout_ms,
                      quality=90.0),
                 # embedding models: one local (on loc2's server), one cloud
                 prov("emb", local2, "openai", "local", ["e-local"], caps=["embeddings"]),
                 prov("cloud-emb", cloud, "openai", "cloud", ["e-cloud"],
                      caps=["embeddings"])]
        extra = ""
        if local2_concurrency:
            table = table_for(provs, chain or ["loc/m-a", "loc2/m-b", "cloud/m-c"], server)
            # max_concurrency lives on the provider entry: patch the compiled table
            p = table.providers["loc2"].model_copy(update={"max_concurrency":
                                                           local2_concurrency})
            table = table.model_copy(update={"providers": {**table.providers, "loc2": p},
                                             "hash": ""}).with_hash()
        else:
            table = table_for(provs, chain or ["loc/m-a", "loc2/m-b", "cloud/m-c"], server,
                              extra)
        if patch:  # provider fields router.yaml does not reach (auth on a custom provider)
            provs_new = {n: table.providers[n].model_copy(update=dict(u))
                         for n, u in patch.items()}
            table = table.model_copy(update={"providers": {**table.providers, **provs_new},
                                             "hash": ""}).with_hash()
        self_data = data = tempfile.mkdtemp(prefix="interlock-rel-")
        environ = {"INTERLOCK_HEALTH_FAILURES": "1000000", "XDG_DATA_HOME": data,
                   "INTERLOCK_DB": os.path.join(data, "interlock.db"), **(env or {})}
        router = RouterProcess(table, env=environ).wait_ready()
        yield Rig(local, local2, cloud, router, self_data)
    finally:
        if router is not None:
            router.stop()
        for up in (local, local2, cloud):
            up.stop()


def proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def open_fds(pid: int) -> int:
    """File descriptors open in ``pid`` and its descendants."""
    total = 0
    for p in proc_tree(pid):
        try:
            total += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            continue
    return total
