"""``/v1/embeddings`` and the legacy ``/v1/completions`` through the official
``openai`` SDK: local embedding models first, float and base64 vectors exactly
as OpenAI encodes them, private requests local-only (the cloud fake accepts no
connection at all), pins; legacy completions passed through to the openai wire,
plain, list prompts and streaming."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import httpx
import openai
import pytest
from e2e.surface_setup import Surfaces, start_surfaces
from fakes.harness import Behaviour
from fakes.openai_fake import fake_vector


@pytest.fixture(scope="module")
def s() -> Iterator[Surfaces]:
    setup = start_surfaces()
    yield setup
    setup.stop()


@pytest.fixture(autouse=True)
def _fresh(s: Surfaces) -> None:
    s.reset()


@pytest.fixture(scope="module")
def oai(s: Surfaces) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0)
    yield c
    c.close()


def f32(values: list[float]) -> list[float]:
    """``values`` rounded through float32, as base64 transport does."""
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def test_the_sdk_default_base64_decodes_to_the_local_models_vectors(
        s: Surfaces, oai: openai.OpenAI) -> None:
    raw = oai.embeddings.with_raw_response.create(model="auto", input=["alpha", "beta"])
    got = raw.parse()
    assert raw.headers["x-router-model"] == "ol/emb-o"  # local first
    assert [d.embedding for d in got.data] == [f32(fake_vector("alpha")),
                                               f32(fake_vector("beta"))]
    assert [d.index for d in got.data] == [0, 1]
    assert got.model == "ol/emb-o"
    assert got.usage.prompt_tokens > 0
    assert s.ol.bodies("/api/embed") == [{"model": "emb-o", "input": ["alpha", "beta"]}]
    assert s.cl.connections == 0


@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_encoding_formats(s: Surfaces, fmt: str) -> None:
    r = httpx.post(s.url + "/v1/embeddings",
                   json={"model": "auto", "input": "gamma", "encoding_format": fmt})
    assert r.status_code == 200
    emb = r.json()["data"][0]["embedding"]
    if fmt == "float":
        assert emb == fake_vector("gamma")
    else:
        raw = base64.b64decode(emb)
        assert len(raw) == 4 * len(fake_vector("gamma"))
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == f32(fake_vector("gamma"))


def test_public_falls_back_to_the_cloud_model(s: Surfaces, oai: openai.OpenAI) -> None:
    s.ol.default = Behaviour(status=500)
    raw = oai.embeddings.with_raw_response.create(model="auto", input="delta")
    assert raw.headers["x-router-model"] == "cl/emb-c"
    assert raw.parse().data[0].embedding == f32(fake_vector("delta"))


@pytest.mark.parametrize("how", ["header", "body", "marker", "pii"])
def test_private_is_local_only_and_fails_closed(s: Surfaces, how: str) -> None:
    s.ol.default = Behaviour(status=500)
    text = {"marker": "secret plans #no_cloud",
            "pii": "mail jane.doe@example.com, IBAN DE89370400440532013000"}.get(how, "plans")
    body: dict[str, object] = {"model": "auto", "input": text}
    headers = {"x-router-private": "true"} if how == "header" else {}
    if how == "body":
        body["private"] = True
    r = httpx.post(s.url + "/v1/embeddings", json=body, headers=headers)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "private_no_local"
    assert len(s.ol.requests) == 1  # the local model was tried
    assert s.cl.connections == 0  # the cloud was never contacted


def test_a_pinned_cloud_model_is_refused_for_a_private_request(s: Surfaces) -> None:
    r = httpx.post(s.url + "/v1/embeddings", json={"model": "cl/emb-c", "input": "x"},
                   headers={"x-router-private": "1"})
    assert r.status_code == 503
    assert s.cl.connections == 0 and not s.ol.requests


def test_pins(s: Surfaces, oai: openai.OpenAI) -> None:
    raw = oai.embeddings.with_raw_response.create(model="cl/emb-c", input="x")
    assert raw.headers["x-router-model"] == "cl/emb-c"
    with pytest.raises(openai.BadRequestError, match="not an embedding model"):
        oai.embeddings.create(model="ol/m-o", input="x")
    with pytest.raises(openai.NotFoundError):
        oai.embeddings.create(model="nope", input="x")


@pytest.mark.parametrize("body, param", [
    ({"input": [[1, 2, 3]]}, "input"),
    ({"input": []}, "input"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"input": "x", "dimensions": 64}, "dimensions"),
])
def test_bad_embedding_requests(s: Surfaces, body: dict[str, object], param: str) -> None:
    r = httpx.post(s.url + "/v1/embeddings", json={"model": "auto", **body})
    assert r.status_code == 400 and r.json()["error"]["param"] == param


# -- legacy completions ----------------------------------------------------------------------


def test_completions_pass_through_to_the_openai_wire(s: Surfaces, oai: openai.OpenAI) -> None:
    raw = oai.completions.with_raw_response.create(model="auto", prompt="Say hi",
                                                   max_tokens=7, echo=False)
    c = raw.parse()
    assert raw.headers["x-router-model"] == "lo/m-l"  # the ollama primary cannot serve it
    assert c.choices[0].text == "Hello from m-l." and c.model == "lo/m-l"
    assert c.usage is not None and c.usage.completion_tokens > 0
    sent = s.lo.bodies("/v1/completions")[0]
    assert sent == {"model": "m-l", "prompt": "Say hi", "max_tokens": 7, "echo": False,
                    "stream": False}
    assert not s.ol.requests


def test_a_list_prompt_gets_one_choice_per_prompt(s: Surfaces, oai: openai.OpenAI) -> None:
    s.lo.default = Behaviour(text="re: {last_user}")
    c = oai.completions.create(model="lo/m-l", prompt=["one", "two"])
    assert [(ch.index, ch.text) for ch in c.choices] == [(0, "re: one"), (1, "re: two")]


@pytest.mark.parametrize("usage", [False, True])
def test_streamed_completions(s: Surfaces, oai: openai.OpenAI, usage: bool) -> None:
    kw = {"stream_options": {"include_usage": True}} if usage else {}
    chunks = list(oai.completions.create(model="lo/m-l", prompt="Say hi", stream=True, **kw))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == "Hello from m-l."
    assert all(ch.model == "lo/m-l" for ch in chunks)
    with_usage = [ch for ch in chunks if ch.usage is not None]
    assert len(with_usage) == (1 if usage else 0)


def test_completions_refuse_token_prompts(s: Surfaces) -> None:
    r = httpx.post(s.url + "/v1/completions", json={"model": "auto", "prompt": [[1, 2]]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
