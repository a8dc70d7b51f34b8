"""schemathesis against the running router's own /openapi.json: generated requests
(bounded) over a real socket, fake upstreams behind it, and no answer may be a 5xx.
Also: the document lists exactly the operations the app serves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from integration.rel_support import Rig, rel_router
from interlock.runtime import openapi
from interlock.runtime.app import InterlockApp
from schemathesis import GenerationMode


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with rel_router() as r:
        yield r


#: operations not fuzzed: an endless live event stream
SKIP = {"GET /v1/events"}


def _fuzz(op: Any, mode: GenerationMode, url: str, failures: list[str]) -> int:
    seen = 0

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=15, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        nonlocal seen
        seen += 1
        response = case.call(base_url=url, timeout=30)
        if response.status_code >= 500:
            failures.append(f"{op.label} -> {response.status_code}: "
                            f"{response.text[:300]} (body {case.body!r:.300})")

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise  # a GET with no parameters has nothing to make invalid: only negatives
    return seen


def test_no_generated_request_gets_a_5xx(rig: Rig) -> None:
    schema = schemathesis.openapi.from_url(rig.url + "/openapi.json")
    failures: list[str] = []
    seen = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.label in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            seen += _fuzz(op, mode, rig.url, failures)
    assert seen > 150, seen  # it did generate (up to 30 per operation)
    if failures:  # the router's own account of the 5xx (tracebacks) helps more than the body
        log = rig.router.log()
        start = log.find("Traceback")
        detail = log[start:start + 4000] if start >= 0 else log[-4000:]
        raise AssertionError("\n".join(failures[:10]) + "\n--- router log ---\n" + detail)


def test_the_document_is_openapi_3_1_and_covers_every_route(rig: Rig) -> None:
    doc = httpx.get(rig.url + "/openapi.json", timeout=10).json()
    assert doc["openapi"] == "3.1.0"
    app = InterlockApp(lambda: None)  # type: ignore[arg-type,return-value]
    routes = {p: list(m) for p, m in app._routes.items()}
    assert openapi.undocumented(routes) == []
    served = {(p, m.lower()) for p, ms in routes.items() for m in ms}
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
