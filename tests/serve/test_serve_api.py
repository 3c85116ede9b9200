"""``synod model serve`` (a real subprocess on 127.0.0.1, the real Gemma 3 270M) driven by real clients:
raw HTTP (httpx), the official ``ollama`` client, and Synod's Ollama and OpenAI providers."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest
import trio

from tests.providers.fewshot import FEW_SHOT, SEARCH, WEATHER
from tests.serve.server import ServeProcess
from workflow.errors import ModelNotFoundError
from workflow.providers.base import Completion, GenerationOptions, Message, ProviderSettings
from workflow.providers.local import LocalProvider, default_model_path
from workflow.providers.ollama import OllamaProvider
from workflow.providers.openai import OpenAIProvider

pytestmark = [pytest.mark.integration, pytest.mark.model]

PROMPT = "The history of the lighthouse begins"
PROMPT_TOKENS = 7  # BOS + 6 (Gemma 3's tokenizer); the in-process provider counts the same (tested below)
# A base model keeps counting: a long generation that only a disconnect or num_predict ends.
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,"
COUNTERS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServeProcess]:
    with ServeProcess("--parallel", "1", "--ctx", "2048") as running:
        yield running
    assert running.returncode == 0, running.stderr  # SIGTERM is a graceful stop


@pytest.fixture(scope="module")
def client(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as http:
        yield http


def generate(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api/generate", json={"model": "gemma3-270m", "stream": False, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def ndjson(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        return [json.loads(line) for line in response.iter_lines() if line.strip()]


def test_listing_endpoints_describe_the_model(client: httpx.Client) -> None:
    path = default_model_path()
    tags = client.get("/api/tags").json()["models"]
    assert [t["name"] for t in tags] == ["gemma3-270m:latest"]
    entry = tags[0]
    assert entry["model"] == "gemma3-270m:latest"
    assert entry["size"] == path.stat().st_size
    assert len(entry["digest"]) == 64 and int(entry["digest"], 16) >= 0
    assert entry["details"]["format"] == "gguf" and entry["details"]["family"] == "gemma3"
    assert entry["details"]["quantization_level"] == "Q4_K_M"
    show = client.post("/api/show", json={"model": "gemma3-270m"}).json()
    assert show["details"] == entry["details"]
    assert show["model_info"]["general.architecture"] == "gemma3"
    assert "tools" in show["capabilities"]
    assert client.get("/api/version").json()["version"]
    assert client.get("/api/ps").json()["models"][0]["name"] == "gemma3-270m:latest"
    assert client.get("/").text == "Ollama is running"
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert {m["id"] for m in models["data"]} == {"gemma3-270m", "gemma3-270m:latest"}


def test_generate_reports_ollamas_counters(client: httpx.Client) -> None:
    result = generate(client, prompt=PROMPT, options={"num_predict": 12, "temperature": 0, "seed": 1})
    assert result["done"] is True and result["response"].strip()
    assert result["model"] == "gemma3-270m" and result["created_at"].endswith("Z")
    for name in COUNTERS:
        assert isinstance(result[name], int) and result[name] >= 0, name
    assert result["eval_count"] == 12 and result["done_reason"] == "length"
    assert result["prompt_eval_count"] == PROMPT_TOKENS
    assert result["prompt_eval_duration"] > 0 and result["eval_duration"] > 0
    assert result["total_duration"] >= result["prompt_eval_duration"] + result["eval_duration"]


def test_stream_and_whole_answers_agree_and_match_the_in_process_model(client: httpx.Client) -> None:
    options = {"num_predict": 16, "temperature": 0}
    whole = generate(client, prompt=PROMPT, options=options)
    lines = ndjson(client, "/api/generate", {"model": "gemma3-270m", "prompt": PROMPT, "options": options})
    assert all(line["done"] is False for line in lines[:-1]) and lines[-1]["done"] is True
    assert len(lines) > 3  # really streamed, piece by piece
    assert "".join(line["response"] for line in lines) == whole["response"]
    assert lines[-1]["eval_count"] == whole["eval_count"] == 16
    assert lines[-1]["prompt_eval_count"] == whole["prompt_eval_count"]

    async def in_process() -> Completion:
        provider = LocalProvider(ProviderSettings(kind="local", n_ctx=2048))
        try:
            return await provider.generate(PROMPT, GenerationOptions(max_tokens=16))
        finally:
            await provider.aclose()

    local = trio.run(in_process)
    assert local.text == whole["response"]
    assert (local.prompt_tokens, local.completion_tokens) == (whole["prompt_eval_count"], whole["eval_count"])


def test_stop_sequences_end_the_answer(client: httpx.Client) -> None:
    result = generate(client, prompt=COUNTING, options={"num_predict": 40, "temperature": 0, "stop": [" 24"]})
    assert result["done_reason"] == "stop"
    assert " 24" not in result["response"] and result["eval_count"] < 40
    lines = ndjson(
        client,
        "/api/generate",
        {
            "model": "gemma3-270m",
            "prompt": COUNTING,
            "options": {"num_predict": 40, "temperature": 0, "stop": [" 24"]},
        },
    )
    assert "".join(line["response"] for line in lines) == result["response"]


def test_the_official_ollama_client(server: ServeProcess) -> None:
    with ollama.Client(host=server.url, timeout=120) as client:
        assert [m.model for m in client.list().models] == ["gemma3-270m:latest"]
        answer = client.generate(
            model="gemma3-270m", prompt=PROMPT, options={"num_predict": 8, "temperature": 0}
        )
        assert answer.response and answer.eval_count == 8 and answer.done_reason == "length"
        pieces = list(
            client.chat(
                model="gemma3-270m",
                messages=[{"role": "user", "content": "Name a colour."}],
                options={"num_predict": 12, "temperature": 0},
                stream=True,
            )
        )
        assert pieces[-1].done and pieces[-1].eval_count
        assert "".join(p.message.content or "" for p in pieces).strip()
        with pytest.raises(ollama.ResponseError) as info:
            client.generate(model="llama3.1", prompt="hi")
        assert info.value.status_code == 404 and '"llama3.1"' in info.value.error
        assert client.show("gemma3-270m").details is not None


@pytest.mark.parametrize("stream", [False, True])
def test_synods_ollama_provider(server: ServeProcess, stream: bool) -> None:
    provider = OllamaProvider(
        # num_ctx must fit the server's --ctx 2048 (it refuses a larger one, naming the value)
        ProviderSettings(kind="ollama", model="gemma3-270m", base_url=server.url, n_ctx=2048),
        stream=stream,
    )

    async def main() -> tuple[Completion, Completion]:
        try:
            text = await provider.generate(PROMPT, GenerationOptions(max_tokens=10))
            tools = await provider.chat(FEW_SHOT, GenerationOptions(max_tokens=40), [WEATHER, SEARCH])
            return text, tools
        finally:
            await provider.aclose()

    text, tools = trio.run(main)
    assert text.text and text.completion_tokens == 10 and text.prompt_tokens == PROMPT_TOKENS
    assert tools.tool_calls, tools.text
    assert tools.tool_calls[0].name == "get_weather" and tools.tool_calls[0].arguments == {"city": "Berlin"}


def test_synods_ollama_provider_sees_an_unknown_model(server: ServeProcess) -> None:
    provider = OllamaProvider(ProviderSettings(kind="ollama", model="mistral", base_url=server.url))

    async def main() -> None:
        try:
            await provider.generate("hi", GenerationOptions(max_tokens=2))
        finally:
            await provider.aclose()

    with pytest.raises(ModelNotFoundError, match="mistral"):
        trio.run(main)


def test_synods_openai_provider(server: ServeProcess) -> None:
    provider = OpenAIProvider(ProviderSettings(kind="openai", model="gemma3-270m", base_url=server.url))

    async def main() -> tuple[Completion, Completion, Completion]:
        try:
            text = await provider.generate(PROMPT, GenerationOptions(max_tokens=10))
            chat = await provider.chat(
                [Message(role="user", content="Name a fruit.")], GenerationOptions(max_tokens=12)
            )
            tools = await provider.chat(FEW_SHOT, GenerationOptions(max_tokens=40), [WEATHER, SEARCH])
            return text, chat, tools
        finally:
            await provider.aclose()

    text, chat, tools = trio.run(main)
    assert text.text and text.completion_tokens == 10 and text.prompt_tokens == PROMPT_TOKENS
    assert chat.text and chat.completion_tokens > 0
    assert tools.tool_calls and tools.tool_calls[0].arguments == {"city": "Berlin"}


def test_openai_streams_server_sent_events(client: httpx.Client) -> None:
    body = {
        "model": "gemma3-270m",
        "messages": [{"role": "user", "content": "Tell me about owls."}],
        "max_tokens": 16,
        "temperature": 0,
    }
    whole = client.post("/v1/chat/completions", json=body).json()
    assert whole["object"] == "chat.completion" and whole["usage"]["completion_tokens"] > 0
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content.strip() == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    # as OpenAI: the role in the first delta only, and no usage unless stream_options asks for it
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    assert all("usage" not in c for c in chunks)
    asked = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=asked) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    usage_chunk = json.loads(events[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole["usage"]
    assert json.loads(events[-3])["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    completion = client.post(
        "/v1/completions", json={"model": "gemma3-270m", "prompt": PROMPT, "max_tokens": 5, "temperature": 0}
    ).json()
    assert completion["object"] == "text_completion" and completion["usage"]["completion_tokens"] == 5
    # /v1/completions without max_tokens stops at OpenAI's default of 16 tokens
    default = client.post(
        "/v1/completions", json={"model": "gemma3-270m", "prompt": PROMPT, "temperature": 0}
    )
    used = default.json()["usage"]["completion_tokens"]
    assert used == 16 or (used < 16 and default.json()["choices"][0]["finish_reason"] == "stop")


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/api/generate", b"{not json", 400, "invalid JSON body"),
        ("/api/generate", b"[1, 2]", 400, "must be a JSON object, got list"),
        ("/api/generate", b"", 400, "missing request body"),
        ("/api/generate", {"prompt": "hi"}, 400, "model"),
        ("/api/generate", {"model": "gemma3-270m", "prompt": 5}, 400, "prompt"),
        ("/api/generate", {"model": "nope:7b", "prompt": "hi"}, 404, 'model "nope:7b" not found'),
        (
            "/api/generate",
            {"model": "gemma3-270m", "prompt": "hi", "options": {"num_predict": 10**9}},
            400,
            "num_predict 1000000000",
        ),
        (
            "/api/generate",
            {"model": "gemma3-270m", "prompt": "hi", "options": {"num_predict": 0}},
            400,
            "num_predict 0",
        ),
        (
            "/api/chat",
            {
                "model": "gemma3-270m",
                "messages": [{"role": "user", "content": "hi"}],
                "options": {"num_ctx": 10**7},
            },
            400,
            "num_ctx 10000000",
        ),
        (
            "/api/chat",
            {"model": "gemma3-270m", "messages": [{"role": "wizard", "content": "hi"}]},
            400,
            "messages.0.role",
        ),
        ("/api/generate", {"model": "gemma3-270m", "prompt": "hi", "format": 42}, 400, "format"),
        (
            "/api/generate",
            {"model": "gemma3-270m", "prompt": "word " * 3000, "options": {"num_predict": 4}},
            400,
            "context holds 2048",
        ),
        (
            "/v1/chat/completions",
            {"model": "gemma3-270m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**9},
            400,
            "max_tokens 1000000000",
        ),
        ("/v1/completions", {"model": "gpt-4o", "prompt": "hi"}, 404, "`gpt-4o` does not exist"),
        ("/api/nowhere", {}, 404, "not found"),
    ],
)
def test_bad_requests_are_clear_errors_and_the_server_keeps_serving(
    client: httpx.Client, path: str, body: Any, status: int, fragment: str
) -> None:
    if isinstance(body, bytes):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    message = error["message"] if isinstance(error, dict) else error
    assert fragment in message, message
    if path.startswith("/v1/") and status == 404:
        assert error["code"] == "model_not_found"
    assert generate(client, prompt="Hello", options={"num_predict": 2})["eval_count"] == 2


def test_a_client_that_disconnects_mid_stream_stops_its_generation(server: ServeProcess) -> None:
    """One slot: had the abandoned generation (until the 2048-token context is full) gone on, the next
    request would wait for it (close to a minute here); it waits for one more token at most."""
    body = {"model": "gemma3-270m", "prompt": COUNTING, "options": {"num_predict": -1, "temperature": 0}}
    with httpx.Client(base_url=server.url, timeout=120) as first:
        with first.stream("POST", "/api/generate", json=body) as response:
            lines = response.iter_lines()
            received = [json.loads(next(lines)) for _ in range(5)]
        assert all(line["done"] is False for line in received)
    with httpx.Client(base_url=server.url, timeout=120) as second:
        result = generate(second, prompt=PROMPT, options={"num_predict": 4})
    assert result["eval_count"] == 4
    assert result["load_duration"] < 10_000_000_000  # seconds waiting for the slot, not a minute


def test_a_client_that_gives_up_on_a_whole_answer_stops_its_generation(server: ServeProcess) -> None:
    body = {
        "model": "gemma3-270m",
        "prompt": COUNTING,
        "stream": False,
        "options": {"num_predict": -1, "temperature": 0},
    }
    with httpx.Client(base_url=server.url, timeout=2.0) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/api/generate", json=body)
    with httpx.Client(base_url=server.url, timeout=120) as second:
        result = generate(second, prompt=PROMPT, options={"num_predict": 4})
    assert result["eval_count"] == 4
    assert result["load_duration"] < 10_000_000_000


def test_concurrent_clients_queue_for_the_slot(server: ServeProcess) -> None:
    results: list[dict[str, Any]] = []

    async def one(i: int) -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=300) as http:
            response = await http.post(
                "/api/generate",
                json={
                    "model": "gemma3-270m",
                    "prompt": f"{i}. {PROMPT}",
                    "stream": False,
                    "options": {"num_predict": 24},
                },
            )
            results.append(response.json())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(one, i)

    trio.run(main)
    assert [r["eval_count"] for r in results] == [24, 24, 24]
    waits = sorted(r["load_duration"] for r in results)
    # one slot: the last served waited for (at least) the other two generations
    assert waits[-1] > waits[0] and waits[-1] > 2 * min(r["eval_duration"] for r in results) * 0.5


def test_a_stream_open_at_shutdown_ends_with_an_error_line() -> None:
    """SIGTERM during a streamed generation: the client used to get a stream cut after hypercorn's
    graceful timeout (no ``done`` line, no error); now the generation stops at once and its last line
    is Ollama's ``{"error": ...}``, and the server still exits 0."""
    body = {"model": "gemma3-270m", "prompt": COUNTING, "options": {"num_predict": -1, "temperature": 0}}
    with ServeProcess("--parallel", "1", "--ctx", "2048") as running:
        assert running.process is not None
        with (
            httpx.Client(base_url=running.url, timeout=60) as http,
            http.stream("POST", "/api/generate", json=body) as response,
        ):
            lines = response.iter_lines()
            first = [json.loads(next(lines)) for _ in range(3)]
            running.process.send_signal(signal.SIGTERM)
            rest = [json.loads(line) for line in lines if line.strip()]
        running.process.wait(timeout=30)  # one signal only: a second one is not a graceful stop
    assert all(line["done"] is False for line in first)
    assert rest, "the stream ended with no line after the signal"
    assert "shutting down" in rest[-1]["error"]
    assert not any(line.get("done") for line in rest)
    assert running.returncode == 0, running.stderr
