"""The dashboard and the chat page in headless Chromium (Debian's ``chromium``,
driven by Playwright for Python; ``.ci/deps`` installs the browser).

A router under real Granian serves both pages over two fake upstreams: public
requests go to the cloud fake first, private ones can only go to the local one.
Screenshots are kept in ``tests/artifacts/`` (gitignored) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.harness import RouterProcess, chat_body, compile_yaml, config_yaml, prov
from fakes.fixtures import FakeOllama, FakeOpenAI
from interlock.runtime.conversations import auto_title
from interlock.runtime.table import DecisionTable

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need the playwright package (test extra)")
if not CHROMIUM.exists():  # pragma: no cover - depends on the machine
    pytest.skip(f"the browser tests need Chromium at {CHROMIUM} (bash .ci/deps installs it)",
                allow_module_level=True)
expect = sync_api.expect


@dataclass
class Env:
    loc: FakeOllama
    cloud: FakeOpenAI
    table: DecisionTable
    router: RouterProcess
    db: Path

    @property
    def url(self) -> str:
        return self.router.url


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    db = tmp_path_factory.mktemp("ui-browser") / "interlock.db"
    loc = FakeOllama(models=["m-a"]).start()
    cloud = FakeOpenAI(models=["m-c"]).start()
    table = compile_yaml(config_yaml(
        [prov("loc-a", loc, "ollama", "local", ["m-a"]),
         prov("cloud", cloud, "openai", "cloud", ["m-c"], quality=90.0)],
        ["cloud/m-c", "loc-a/m-a"]))
    router = RouterProcess(table, env={"INTERLOCK_DB": str(db)})
    try:
        router.wait_ready()
        yield Env(loc, cloud, table, router, db)
    finally:
        router.stop()
        loc.stop()
        cloud.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=ARGS,
            viewport={"width": 1440, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    pg.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(pg: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / name), full_page=True)


# -- the dashboard ---------------------------------------------------------------------


def test_a_request_shows_up_in_the_live_feed_within_two_seconds(env: Env, page: Any) -> None:
    page.goto(env.url + "/dashboard")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)
    rows = page.locator("#feed-body tr[data-id]")
    before = rows.count()
    sent = time.monotonic()
    resp = httpx.post(env.url + "/v1/chat/completions", json=chat_body("Name three rivers."))
    assert resp.status_code == 200
    expect(rows).to_have_count(before + 1, timeout=2_000)
    row = rows.first
    expect(row.locator("td.c-stage")).to_have_text("completed", timeout=2_000)
    elapsed = time.monotonic() - sent
    assert elapsed <= 2.0, f"the request took {elapsed:.2f}s to reach the feed"
    expect(row.locator("td.c-model")).to_have_text(resp.headers["x-router-model"])
    expect(row.locator("td.c-cell")).to_have_text(resp.headers["x-router-cell"])
    expect(row.locator("td.c-where")).to_have_text("cloud")
    # the totals follow (the completed event triggers a poll of /v1/stats)
    expect(page.locator("#k-requests")).to_have_text(re.compile(r"^[1-9]"), timeout=4_000)
    expect(page.locator("#k-local")).to_have_text("0%")  # it went to the cloud
    page.wait_for_timeout(300)  # let the charts draw
    shot(page, "dashboard.png")


def test_the_route_map_renders_every_cell_and_chain(env: Env, page: Any) -> None:
    page.goto(env.url + "/dashboard")
    cells = page.locator("#routemap td.cell")
    expect(cells).to_have_count(84, timeout=5_000)
    for key, cell in env.table.cells.items():
        if key.endswith(".text") and key.startswith(("code.", "general.low")):
            chips = page.locator(f'#routemap td[data-cell="{key}"] .chip')
            expect(chips).to_have_count(len(cell.chain))
            names = [c.model.split("/", 1)[1] for c in cell.chain]
            roles = [c.role[0].upper() for c in cell.chain]
            expect(chips).to_have_text([r + n for r, n in zip(roles, names, strict=True)])
    public = page.locator('#routemap td[data-cell="code.low.public.text"] .chip').first
    expect(public).to_have_class("chip cloud p")
    # the privacy invariant, as drawn: no cloud chip in any private cell
    expect(page.locator("#routemap td.cell.private .chip.cloud")).to_have_count(0)
    expect(page.locator("#routemap td.cell.private .chip.local").first).to_be_visible()
    shot(page, "routemap.png")


# -- the chat page ---------------------------------------------------------------------


def send(page: Any, text: str, *, private: bool = False, model: str = "auto") -> Any:
    page.select_option("#model", model)
    page.set_checked("#private", private)
    page.fill("#prompt", text)
    page.click("#send")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".route .ran-on")).to_be_visible(timeout=5_000)
    expect(page.locator("#send")).to_be_enabled(timeout=5_000)
    return answer


def last_log(env: Env) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not rows:
        rows = httpx.get(env.url + "/v1/logs?limit=1").json()["data"]
        time.sleep(0.05)
    return rows[0]


def saved_meta(env: Env, page: Any) -> dict[str, Any]:
    conv_id = page.locator("#conv-list li.current").get_attribute("data-id")
    conv = httpx.get(f"{env.url}/v1/conversations/{conv_id}").json()
    meta: dict[str, Any] = conv["messages"][-1]["meta"]
    return meta


def test_a_chat_message_gets_its_answer_with_its_route(env: Env, page: Any) -> None:
    page.goto(env.url + "/chat")
    expect(page.locator('#model option[value="cloud/m-c"]')).to_have_count(1, timeout=5_000)
    answer = send(page, "What is the capital of France?")
    expect(answer.locator(".body")).to_have_text("Hello from m-c.")
    expect(answer.locator(".route .ran-on")).to_have_text("cloud/m-c")
    expect(answer.locator(".route .where").first).to_have_text("cloud")
    cell = answer.locator(".route code.cell").inner_text()
    assert cell.endswith(".public.text")
    expect(answer.locator(".route .why")).to_contain_text(f"cell {cell}")
    expect(answer.locator(".route .cost")).to_contain_text("cost $")
    log = last_log(env)
    assert log["cell"] == cell and log["model"] == "cloud/m-c"
    meta = saved_meta(env, page)
    # the page prices the answer exactly as the request log does
    assert meta["cost"] == pytest.approx(log["cost_usd"], rel=1e-9, abs=1e-12)
    assert meta["saved"] == pytest.approx(log["saved_usd"], rel=1e-9, abs=1e-12)
    assert meta["usage"]["completion_tokens"] == log["tokens_out"]
    shot(page, "chat.png")


def test_the_private_tick_keeps_the_request_local(env: Env, page: Any) -> None:
    page.goto(env.url + "/chat")
    expect(page.locator('#model option[value="cloud/m-c"]')).to_have_count(1, timeout=5_000)
    cloud_calls = len(env.cloud.bodies())
    answer = send(page, "Draft a note to my landlord about the boiler.", private=True)
    expect(answer.locator(".body")).to_have_text("Hello from m-a.")
    expect(answer.locator(".route .ran-on")).to_have_text("loc-a/m-a")
    expect(answer.locator(".route .where").first).to_have_text("local")
    expect(answer.locator(".route")).to_contain_text("private")
    expect(answer.locator(".route code.cell")).to_have_text("general.low.private.text")
    assert len(env.cloud.bodies()) == cloud_calls  # the cloud never saw it
    assert env.loc.bodies()[-1]["messages"][-1]["content"].startswith("Draft a note")
    log = last_log(env)
    meta = saved_meta(env, page)
    assert meta["private"] is True and meta["cost"] == 0
    assert meta["saved"] == pytest.approx(log["saved_usd"]) and meta["saved"] > 0
    expect(answer.locator(".route .saved")).to_contain_text("vs m-c")
    # a cloud model picked by hand with the private tick is refused, never sent
    refused = page.locator(".msg.assistant").last
    page.select_option("#model", "cloud/m-c")
    page.fill("#prompt", "Same again, on the cloud model please.")
    page.click("#send")
    expect(page.locator(".msg.assistant")).to_have_count(2, timeout=5_000)
    refused = page.locator(".msg.assistant").last
    expect(refused).to_have_class("msg assistant error", timeout=5_000)
    expect(refused.locator(".body")).to_contain_text("private")
    assert len(env.cloud.bodies()) == cloud_calls
    shot(page, "chat-private.png")


def test_conversations_are_listed_and_switched(env: Env, page: Any) -> None:
    first, second = "Tell me about the history of Lisbon please", "How do tides work?"
    page.goto(env.url + "/chat")
    expect(page.locator('#model option[value="cloud/m-c"]')).to_have_count(1, timeout=5_000)
    page.click("#new-conv")
    send(page, first)
    page.click("#new-conv")
    expect(page.locator(".msg")).to_have_count(0)
    send(page, second)
    page.reload()
    items = page.locator("#conv-list li")
    expect(items.nth(0)).to_contain_text(auto_title(second), timeout=5_000)
    expect(items.nth(1)).to_contain_text(auto_title(first))
    assert auto_title(first) == "Tell me about the history of…"
    items.nth(1).click()
    expect(page.locator(".msg.user .body")).to_have_text([first])
    expect(page.locator(".msg.assistant .route .ran-on")).to_have_text(["cloud/m-c"])
    expect(items.nth(1)).to_have_class("current")
    items.nth(0).click()
    expect(page.locator(".msg.user .body")).to_have_text([second])
    # what the list shows is what the store holds
    db = sqlite3.connect(env.db)
    try:
        titles = {r[0] for r in db.execute("SELECT title FROM conversations")}
    finally:
        db.close()
    assert {auto_title(first), auto_title(second)} <= titles
    shot(page, "chat-conversations.png")
