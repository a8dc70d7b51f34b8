"""The recipes of the README (Recipes), run for real: Claude Code and Codex CLI
(the actual npm CLIs, skipped when not installed: ``.ci/deps`` installs them), the
OpenAI Agents SDK, LangChain (OpenAI and Anthropic chat models, embeddings) and the
``ollama`` Python client, each against the router (Granian) in front of fake
upstreams."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.surface_setup import Surfaces, start_surfaces
from fakes.harness import Behaviour, FakeToolCall
from fakes.openai_fake import fake_vector

AGENTS_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) \
    / "interlock-ci" / "node" / "node_modules" / ".bin"


#: Anything the agent CLIs try to reach besides the router (update checks, telemetry)
#: goes to a dead loopback port through these proxy variables, never off the machine.
NO_EGRESS = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
             "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
             "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
             "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"}


def cli(name: str) -> str:
    """The path of an agent CLI (``.ci/deps`` installs them), or skip the test."""
    found = os.environ.get(f"INTERLOCK_{name.upper()}_BIN") or shutil.which(name)
    if found is None and (AGENTS_DIR / name).exists():
        found = str(AGENTS_DIR / name)
    if found is None:
        pytest.skip(f"{name} CLI not installed (bash .ci/deps installs it)")
    return found


@pytest.fixture(scope="module")
def s() -> Iterator[Surfaces]:
    setup = start_surfaces()
    yield setup
    setup.stop()


@pytest.fixture(autouse=True)
def _fresh(s: Surfaces) -> None:
    s.reset()


# -- Claude Code ------------------------------------------------------------------------------


def claude_env(s: Surfaces, home: Path) -> dict[str, str]:
    # the recipe: these four variables, nothing else
    return {"PATH": os.environ["PATH"], "HOME": str(home),
            "ANTHROPIC_BASE_URL": s.url, "ANTHROPIC_API_KEY": "unused",
            "ANTHROPIC_MODEL": "auto", "ANTHROPIC_DEFAULT_HAIKU_MODEL": "auto",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
            **NO_EGRESS}


def test_claude_code_answers_through_the_router(s: Surfaces, tmp_path: Path) -> None:
    claude = cli("claude")
    p = subprocess.run([claude, "-p", "Say hello", "--output-format", "json"],
                       env=claude_env(s, tmp_path), cwd=tmp_path, capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    out = json.loads(p.stdout)
    assert out["result"] == "Hello from m-o." and out["is_error"] is False
    sent = s.ol.bodies("/api/chat")[0]
    assert sent["messages"][0]["role"] == "system"  # Claude Code's system prompt travelled
    assert sent["tools"]  # and its tools, translated to Ollama's function tools


def test_claude_code_runs_a_tool_round_trip_through_a_local_model(
        s: Surfaces, tmp_path: Path) -> None:
    claude = cli("claude")
    note = tmp_path / "note.txt"
    note.write_text("the launch code is 4711\n")
    s.ol.push(Behaviour(text="", tool_calls=[FakeToolCall(
                  "Read", json.dumps({"file_path": str(note)}))]),
              Behaviour(text="The note says 4711."))
    p = subprocess.run([claude, "-p", "What does note.txt say?", "--output-format", "json"],
                       env=claude_env(s, tmp_path), cwd=tmp_path, capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    assert json.loads(p.stdout)["result"] == "The note says 4711."
    second = s.ol.bodies("/api/chat")[1]["messages"]
    results = [m for m in second if m["role"] == "tool"]
    assert results and "4711" in results[0]["content"]
    assert results[0]["tool_name"] == "Read"


# -- Codex CLI ---------------------------------------------------------------------------------


def test_codex_cli_answers_through_the_responses_surface(s: Surfaces, tmp_path: Path) -> None:
    codex = cli("codex")
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "config.toml").write_text(
        'model = "auto"\nmodel_provider = "interlock"\n\n'
        "[model_providers.interlock]\n"
        'name = "interlock"\n'
        f'base_url = "{s.url}/v1"\n'
        'wire_api = "responses"\n')
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "CODEX_HOME": str(tmp_path / ".codex"), **NO_EGRESS}
    p = subprocess.run([codex, "exec", "--skip-git-repo-check", "Say hello"], env=env,
                       cwd=tmp_path, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    assert "Hello from m-o." in out
    sent = s.ol.bodies("/api/chat")[0]
    assert any(t["function"]["name"] == "exec_command" for t in sent["tools"])


# -- OpenAI Agents SDK -----------------------------------------------------------------------


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_openai_agents_sdk_tool_loop(s: Surfaces, api: str) -> None:
    agents = pytest.importorskip("agents")
    from openai import AsyncOpenAI

    agents.set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0)
    model = (agents.OpenAIResponsesModel if api == "responses"
             else agents.OpenAIChatCompletionsModel)(model="auto", openai_client=client)

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    agent = agents.Agent(name="weather", instructions="Be brief.", tools=[get_weather],
                         model=model)
    s.ol.push(Behaviour(text="", tool_calls=[FakeToolCall("get_weather", '{"city": "Paris"}',
                                                          id="call_1")]),
              Behaviour(text="It is sunny in Paris."))
    result = agents.Runner.run_sync(agent, "Weather in Paris?")
    assert result.final_output == "It is sunny in Paris."
    second = s.ol.bodies("/api/chat")[1]["messages"]
    assert second[0] == {"role": "system", "content": "Be brief."}
    assert [m["content"] for m in second if m["role"] == "tool"] == ["sunny in Paris"]


# -- LangChain -----------------------------------------------------------------------------------


def test_langchain_openai_chat_tools_and_embeddings(s: Surfaces) -> None:
    lc = pytest.importorskip("langchain_openai")
    llm = lc.ChatOpenAI(base_url=s.url + "/v1", api_key="unused", model="auto", max_retries=0)
    assert llm.invoke("Say hello.").content == "Hello from m-o."
    assert "".join(str(c.content) for c in llm.stream("Say hello.")) == "Hello from m-o."
    s.ol.push(Behaviour(text="", tool_calls=[FakeToolCall("get_weather", '{"city": "Oslo"}',
                                                          id="call_9")]))
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                             "parameters": {"type": "object", "properties": {
                                                 "city": {"type": "string"}}}}}
    msg = llm.bind_tools([tool]).invoke("Weather in Oslo?")
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("get_weather",
                                                                 {"city": "Oslo"})]
    emb = lc.OpenAIEmbeddings(base_url=s.url + "/v1", api_key="unused", model="auto",
                              check_embedding_ctx_length=False)
    vec = emb.embed_query("hello")
    assert vec == pytest.approx(fake_vector("hello"), abs=1e-6)


def test_langchain_anthropic_chat(s: Surfaces) -> None:
    lc = pytest.importorskip("langchain_anthropic")
    llm = lc.ChatAnthropic(base_url=s.url, api_key="unused", model="auto", max_retries=0)
    assert llm.invoke("Say hello.").content == "Hello from m-o."
    assert "".join(str(c.content) for c in llm.stream("Say hello.")) == "Hello from m-o."


# -- Ollama API clients ----------------------------------------------------------------------


def test_the_ollama_python_client(s: Surfaces) -> None:
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=s.url)
    names = [m.model for m in client.list().models]
    assert names[:2] == ["auto", "route-auto"] and "lo/m-l" in names
    r = client.chat(model="auto", messages=[{"role": "user", "content": "Say hello."}])
    assert r.message.content == "Hello from m-o." and r.done_reason == "stop"
    parts = list(client.chat(model="an/claude-x", stream=True,
                             messages=[{"role": "user", "content": "Say hello."}]))
    assert "".join(p.message.content for p in parts) == "Hello from claude-x."
    assert parts[-1].done and parts[-1].eval_count
    s.lo.default = Behaviour(text="", tool_calls=[FakeToolCall("f", '{"a": 1}', id="c1")],
                             tool_variant="interleaved")
    parts = list(client.chat(model="lo/m-l", stream=True, tools=[{
        "type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        messages=[{"role": "user", "content": "Call f."}]))
    calls = [c for p in parts for c in p.message.tool_calls or []]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("f", {"a": 1})]
    assert client.generate(model="auto", prompt="Say hello.").response == "Hello from m-o."
    emb = client.embed(model="auto", input=["a", "b"])
    assert emb.embeddings == [fake_vector("a"), fake_vector("b")]
    with pytest.raises(ollama.ResponseError) as exc:
        client.chat(model="nope", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 404


def test_ollama_mid_stream_failure_is_an_error_line(s: Surfaces) -> None:
    ollama = pytest.importorskip("ollama")
    s.lo.default = Behaviour(text="one two three four", drop="mid_stream", drop_after=2)
    client = ollama.Client(host=s.url)
    with pytest.raises(ollama.ResponseError, match="mid-stream"):
        list(client.chat(model="lo/m-l", stream=True,
                         messages=[{"role": "user", "content": "x"}]))
