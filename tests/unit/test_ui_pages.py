"""The pages (rendered once, autoescaped, self-contained) and the /v1/table view
(compact, complete, secret-free)."""

from __future__ import annotations

import re

import orjson
import pytest
from e2e.harness import compile_yaml, config_yaml, prov
from interlock.runtime.dashboard import ASSET_PREFIX, ASSETS, PAGES, Pages, render_pages
from interlock.runtime.record import baselines
from interlock.runtime.routemap import table_body, table_view
from interlock.runtime.signals import all_cell_keys
from interlock.runtime.table import Account, DecisionTable


@pytest.fixture(scope="module")
def table() -> DecisionTable:
    return compile_yaml(config_yaml(
        [prov("loc", "http://127.0.0.1:9/v1", "openai", "local", ["m-a"]),
         prov("cloud", "http://127.0.0.1:9/v1", "openai", "cloud", ["m-c"], quality=90.0)],
        ["cloud/m-c", "loc/m-a"]))


def test_every_cell_is_in_the_view_with_its_chain(table: DecisionTable) -> None:
    view = table_view(table)
    assert sorted(view["cells"]) == sorted(all_cell_keys())
    for key, cell in table.cells.items():
        got = view["cells"][key]
        assert [c[0] for c in got["chain"]] == [c.model for c in cell.chain]
        assert [c[1] for c in got["chain"]] == [c.role[0] for c in cell.chain]
        assert [c[2] for c in got["chain"]] == [c.local for c in cell.chain]
        assert got["cloud"] == cell.policy.allow_cloud
    public = view["cells"]["code.low.public.text"]["chain"]
    private = view["cells"]["code.low.private.text"]["chain"]
    assert public[0][:3] == ["cloud/m-c", "p", False]
    assert [c[0] for c in private] == ["loc/m-a"]
    assert view["hash"] == table.hash
    assert view["models"]["loc/m-a"]["local"] is True
    assert view["models"]["cloud/m-c"]["price"] == [0.5, 1.5]


def test_each_cell_names_the_logs_cloud_baseline(table: DecisionTable) -> None:
    view = table_view(table)
    expected = baselines(table)
    for key, cell in view["cells"].items():
        base = expected[key]
        assert cell["baseline"] == (base.model if base is not None else None)
    assert view["cells"]["general.low.private.text"]["baseline"] == "cloud/m-c"


def test_no_secret_leaves_through_the_table_view(table: DecisionTable) -> None:
    cloud = table.providers["cloud"].model_copy(update={
        "base_url": "https://user:hunter2-password@api.example.com/v1",
        "headers": {"X-Static-Token": "tok-s3cr3t-value"},
        "accounts": (Account(name="main", api_key_env="CLOUD_API_KEY"),),
    })
    leaky = table.model_copy(update={"providers": {**table.providers, "cloud": cloud}})
    raw = table_body(leaky)
    assert b"hunter2" not in raw and b"tok-s3cr3t" not in raw
    assert b"X-Static-Token" not in raw and b"api.example.com" not in raw
    view = orjson.loads(raw)
    assert view["providers"]["cloud"]["key_env"] == ["CLOUD_API_KEY"]
    assert set(view["providers"]["cloud"]) == {"wire", "local", "auth", "key_env",
                                               "data_collection"}


def test_pages_render_once_with_autoescape_and_no_outside_urls() -> None:
    pages = render_pages(version="<b>x</b>")
    assert set(pages) == set(PAGES)
    for path, body in pages.items():
        html = body.decode()
        assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html, path
        assert 'aria-current="page"' in html
        # scripts and styles come from the router only
        srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert srcs and all(s.startswith("/") for s in srcs), srcs
        assert "<script>" not in html  # no inline script (the CSP forbids it)


def test_every_asset_is_served_and_self_contained() -> None:
    pages = Pages()
    for name in ASSETS:
        body, content_type = pages.bodies[f"{ASSET_PREFIX}/{name}"]
        assert body and content_type.startswith(b"text/")
        text = body.decode()
        assert not re.search(r"https?://", text), name  # no CDN, no remote font
        # data goes into the DOM as text only
        assert ".innerHTML" not in text and "insertAdjacentHTML" not in text, name
    referenced = set()
    for path in PAGES:
        referenced |= set(re.findall(r'="/ui/([^"]+)"', pages.bodies[path][0].decode()))
    assert referenced == set(ASSETS)
