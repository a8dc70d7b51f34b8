"""Fake upstreams for tests: real HTTP servers on 127.0.0.1 speaking the real
OpenAI, Ollama and Anthropic protocols.

Make the fixtures visible from a ``conftest.py`` of your test directory::

    from fakes.fixtures import fake_cloud, fake_ollama, fake_openai  # noqa: F401

(importing them into the test module itself works too, but ruff then flags every
test that takes one as a parameter with F811), or build a local fixture::

    @pytest.fixture
    def up() -> Iterator[FakeOpenAI]:
        with FakeOpenAI(models=["gpt-4o-mini"]) as server:
            yield server

or use the classes directly::

    from fakes.fixtures import FakeOpenAI, Behaviour
    with FakeOpenAI(models=["gpt-4o-mini"]) as up:
        up.url          # "http://127.0.0.1:PORT/v1" - the provider base_url
        ...

Each fake runs in a background thread with its own event loop, so it works
from sync tests, async tests and a server under test in another thread alike.

Classes
    FakeOpenAI(models=[...])          POST /v1/chat/completions (JSON, SSE),
                                      GET /v1/models, POST /v1/embeddings
    FakeOllama(models=[...], strict_models=False, tool_call_ids=False)
                                      POST /api/chat (JSON, NDJSON; stream defaults
                                      to true as in Ollama), GET /api/tags,
                                      POST /api/embed, GET /api/version, GET /
    FakeAnthropic(models=[...])       POST /v1/messages (JSON, SSE event sequence)

Common API (``FakeUpstream``)
    up.url / up.root / up.port        base_url as the catalog writes it / bare root
    up.default = Behaviour(...)       what every generation request gets
    up.push(b1, b2, ...)              a FIFO script consumed one per generation
                                      request (chat, embeddings), then ``default``
    up.requests                       list[Recorded(method, path, headers, body, json)]
    up.bodies(path=None)              the JSON bodies received
    up.connections                    TCP connections accepted (privacy tests: 0)
    up.models                         what /v1/models and /api/tags list
    up.reset()                        forget requests/connections/script/default

Behaviour fields (all optional)
    text="Hello from {model}."        answer; {model} and {last_user} are filled in
    delay_s, chunk_delay_s            latency before headers / before each chunk
    status=200, error_message, error_type, retry_after="2"
                                      non-2xx with the wire's error body
    drop="before_headers"|"mid_stream", drop_after=K
                                      cut the socket before the status line, or
                                      after K streamed chunks (half a JSON body
                                      when not streaming)
    tool_calls=[FakeToolCall(name, arguments_json, id)]
    tool_variant="split"|"repeat_id"|"index_zero"|"whole"|"interleaved"
    finish_reason="length", usage=(input_tokens, output_tokens)
    chunk_chars=N                     split text every N chars (default per word)
    raw_chunks=[b"...", ...]          stream these bytes verbatim
    headers={...}                     extra response headers

Fixtures (function scoped: a fresh server per test)
    fake_openai, fake_cloud           two independent FakeOpenAI servers (use
                                      fake_cloud as the cloud side of privacy tests)
    fake_ollama                       FakeOllama
    fake_anthropic                    FakeAnthropic

Helpers
    provider_entry(up, name=, wire=, locality=, api_key_env=, auth=) -> ProviderEntry
    model_entry(provider, upstream_id, caps=, embedding=) -> ModelEntry
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.anthropic_fake import FakeAnthropic
from fakes.entries import ALL_CHAT_CAPS, model_entry, provider_entry
from fakes.harness import Behaviour, FakeToolCall, FakeUpstream, Recorded
from fakes.ollama_fake import FakeOllama
from fakes.openai_fake import FakeOpenAI

__all__ = [
    "ALL_CHAT_CAPS", "Behaviour", "FakeAnthropic", "FakeOllama", "FakeOpenAI", "FakeToolCall",
    "FakeUpstream", "Recorded", "fake_anthropic", "fake_cloud", "fake_ollama", "fake_openai",
    "model_entry", "provider_entry",
]


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["fake-model", "gpt-4o-mini"]) as up:
        yield up


@pytest.fixture
def fake_cloud() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["gpt-4o", "gpt-4o-mini"]) as up:
        yield up


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama(models=["fake-model:latest", "qwen3:8b"]) as up:
        yield up


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(models=["claude-sonnet-4-5"]) as up:
        yield up
