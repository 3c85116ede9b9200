"""The Ollama provider (httpx under trio) against an Ollama-API test server on 127.0.0.1 that
answers from the real local model (see tests/providers/ollama_server.py), including the ways real
servers misbehave: a cut prompt, a vanished model, tool-call arguments as a string, stalls."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import trio

from tests.providers.fewshot import FEW_SHOT, WEATHER
from tests.providers.ollama_server import MODEL_TAG, OllamaTestServer
from tests.providers.servers import FaultyProxy, closed_port_url
from tests.webfixtures import FixtureSite
from workflow.errors import (
    ContextWindowError,
    ModelNotFoundError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from workflow.providers.base import (
    Completion,
    GenerationOptions,
    LLMProvider,
    Message,
    ProviderSettings,
)
from workflow.providers.factory import build_provider
from workflow.providers.ollama import OllamaProvider, prompt_was_cut, resolve_host

pytestmark = [pytest.mark.integration, pytest.mark.model]

OPTIONS = GenerationOptions(max_tokens=16)


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as running:
        yield running


@pytest.fixture
def misbehaving(server: OllamaTestServer) -> Iterator[OllamaTestServer]:
    """The shared server, its :class:`Behaviour` reset after the test."""
    try:
        yield server
    finally:
        server.behaviour.reset()


def settings(base_url: str, **overrides: object) -> ProviderSettings:
    values: dict[str, object] = {
        "kind": "ollama",
        "base_url": base_url,
        "model": "gemma3-270m",
        "backoff_s": 0.05,
    }
    values.update(overrides)
    return ProviderSettings.model_validate(values)


async def _generate(provider: LLMProvider, prompt: str) -> Completion:
    try:
        return await provider.generate(prompt, OPTIONS)
    finally:
        await provider.aclose()


@pytest.mark.parametrize("stream", [False, True])
def test_generate_streamed_and_not(server: OllamaTestServer, stream: bool) -> None:
    async def main() -> tuple[Completion, Completion]:
        provider = OllamaProvider(settings(server.base_url), stream=stream)
        try:
            first = await provider.generate("The capital of France is", OPTIONS)
            return first, await provider.generate("The capital of France is", OPTIONS)
        finally:
            await provider.aclose()

    first, second = trio.run(main)
    assert first.text.strip() and first.provider == "ollama" and first.model == "gemma3-270m"
    assert first.prompt_tokens > 0 and 0 < first.completion_tokens <= 16
    assert first.text == second.text


def test_streamed_and_whole_answers_agree(server: OllamaTestServer) -> None:
    async def main(stream: bool) -> Completion:
        provider = OllamaProvider(settings(server.base_url), stream=stream)
        try:
            return await provider.chat([Message(role="user", content="Name three birds.")], OPTIONS)
        finally:
            await provider.aclose()

    whole, streamed = trio.run(main, False), trio.run(main, True)
    assert whole.text and whole.text.strip() == streamed.text.strip()
    assert whole.completion_tokens == streamed.completion_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_call_in_the_real_response_shape(server: OllamaTestServer, stream: bool) -> None:
    async def main() -> Completion:
        provider = OllamaProvider(settings(server.base_url), stream=stream)
        try:
            return await provider.chat(FEW_SHOT, GenerationOptions(max_tokens=40), [WEATHER])
        finally:
            await provider.aclose()

    completion = trio.run(main)
    assert completion.tool_calls, completion.text
    assert completion.tool_calls[0].name == "get_weather"
    assert isinstance(completion.tool_calls[0].arguments.get("city"), str)


def test_wire_format_is_ollamas(server: OllamaTestServer) -> None:
    tags = httpx.get(f"{server.base_url}/api/tags").json()
    assert tags["models"][0]["name"] == MODEL_TAG and "details" in tags["models"][0]
    body = {
        "model": "gemma3-270m",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "options": {"num_predict": 4, "temperature": 0, "seed": 0},
    }
    with httpx.stream("POST", f"{server.base_url}/api/chat", json=body, timeout=60) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert all(not line["done"] for line in lines[:-1])
    final = lines[-1]
    assert final["done"] and final["done_reason"] in ("stop", "length")
    assert final["prompt_eval_count"] > 0 and final["eval_count"] > 0
    assert {"total_duration", "eval_duration", "created_at", "message"} <= set(final)


def test_missing_model_names_endpoint_and_model(server: OllamaTestServer) -> None:
    provider = build_provider(settings(server.base_url, model="llama3.1:8b"))
    with pytest.raises(ModelNotFoundError) as info:
        trio.run(_generate, provider, "hi")
    message = str(info.value)
    assert "llama3.1:8b" in message and server.base_url in message and MODEL_TAG in message


def test_model_name_without_tag_matches_latest(server: OllamaTestServer) -> None:
    completion = trio.run(_generate, build_provider(settings(server.base_url, model="gemma3-270m")), "Owls")
    assert completion.completion_tokens > 0


def test_server_down_is_unavailable_after_retries() -> None:
    url = closed_port_url()
    with pytest.raises(ProviderUnavailableError) as info:
        trio.run(_generate, build_provider(settings(url, max_retries=1)), "hi")
    assert url in str(info.value) and "gemma3-270m" in str(info.value)


def test_retries_with_backoff_then_answers(server: OllamaTestServer) -> None:
    with FaultyProxy(server.base_url, fail_first=2, fail_status=503) as proxy:
        completion = trio.run(_generate, build_provider(settings(proxy.base_url, max_retries=2)), "Owls are")
        arrivals, paths = proxy.arrivals, proxy.paths
    assert completion.text
    assert [p for _, p in paths] == ["/api/tags", "/api/tags", "/api/tags", "/api/generate"]
    assert arrivals[1] - arrivals[0] >= 0.05 and arrivals[2] - arrivals[1] >= 0.1


def test_4xx_not_retried_and_5xx_exhausted(server: OllamaTestServer) -> None:
    with FaultyProxy(server.base_url, fail_first=10, fail_status=400) as proxy:
        with pytest.raises(ProviderResponseError, match="400"):
            trio.run(_generate, build_provider(settings(proxy.base_url, max_retries=3)), "x")
        assert len(proxy.paths) == 1
    with FaultyProxy(server.base_url, fail_first=10, fail_status=502) as proxy:
        with pytest.raises(ProviderUnavailableError, match="502"):
            trio.run(_generate, build_provider(settings(proxy.base_url, max_retries=2)), "x")
        assert len(proxy.paths) == 3


def test_timeout(server: OllamaTestServer) -> None:
    with FaultyProxy(server.base_url, delay_first=1, delay_s=5.0) as proxy:
        provider = build_provider(settings(proxy.base_url, timeout_s=0.5, max_retries=0))
        with pytest.raises(ProviderTimeoutError) as info:
            trio.run(_generate, provider, "x")
    assert proxy.base_url in str(info.value)


def test_host_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.5:11434")
    assert resolve_host(ProviderSettings(kind="ollama")) == "http://10.0.0.5:11434"
    assert resolve_host(ProviderSettings(kind="ollama", base_url="http://h:1/")) == "http://h:1"
    monkeypatch.delenv("OLLAMA_HOST")
    assert resolve_host(ProviderSettings(kind="ollama")) == "http://127.0.0.1:11434"


def test_not_an_ollama_server_is_a_response_error() -> None:
    with FixtureSite() as site, pytest.raises(ProviderResponseError, match="not an Ollama server"):
        trio.run(_generate, build_provider(settings(site.base_url)), "x")


LONG_PROMPT = " ".join(f"owl{i % 10}" for i in range(400))
"""400 words: over a 256-token window, inside a 1024-token one."""


def test_num_ctx_is_sent_and_a_cut_prompt_is_an_error(server: OllamaTestServer) -> None:
    async def main(n_ctx: int) -> Completion:
        provider = OllamaProvider(settings(server.base_url, n_ctx=n_ctx))
        try:
            return await provider.generate(LONG_PROMPT, GenerationOptions(max_tokens=2))
        finally:
            await provider.aclose()

    with pytest.raises(ContextWindowError) as info:
        trio.run(main, 256)
    assert server.bodies[-1]["options"]["num_ctx"] == 256
    message = str(info.value)
    assert "evaluated 256 prompt tokens" in message and "400 words" in message
    assert server.base_url in message and "gemma3-270m" in message
    fits = trio.run(main, 1024)  # the same prompt in a window that holds it
    assert server.bodies[-1]["options"]["num_ctx"] == 1024
    assert fits.prompt_tokens >= 400


def test_model_gone_after_the_check_is_an_error_not_an_empty_answer(misbehaving: OllamaTestServer) -> None:
    async def main() -> Completion:
        provider = OllamaProvider(settings(misbehaving.base_url))
        try:
            first = await provider.generate("Owls are", OPTIONS)
            assert first.text
            misbehaving.behaviour.forget_model = True
            return await provider.generate("Owls are", OPTIONS)
        finally:
            await provider.aclose()

    with pytest.raises(ModelNotFoundError) as info:
        trio.run(main)
    message = str(info.value)
    assert "gemma3-270m" in message and misbehaving.base_url in message and "not found" in message


@pytest.mark.parametrize("form", ["object", "string"])
def test_tool_call_arguments_as_object_or_json_string(misbehaving: OllamaTestServer, form: str) -> None:
    misbehaving.behaviour.arguments_as = form

    async def main() -> Completion:
        provider = OllamaProvider(settings(misbehaving.base_url), stream=False)
        try:
            return await provider.chat(FEW_SHOT, GenerationOptions(max_tokens=40), [WEATHER])
        finally:
            await provider.aclose()

    completion = trio.run(main)
    sent = misbehaving.bodies[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert completion.tool_calls and completion.tool_calls[0].name == "get_weather"
    assert isinstance(completion.tool_calls[0].arguments["city"], str)


def test_tool_call_arguments_of_another_kind_are_a_clear_error(misbehaving: OllamaTestServer) -> None:
    misbehaving.behaviour.arguments_as = "list"

    async def main() -> Completion:
        provider = OllamaProvider(settings(misbehaving.base_url, max_retries=0), stream=False)
        try:
            return await provider.chat(FEW_SHOT, GenerationOptions(max_tokens=40), [WEATHER])
        finally:
            await provider.aclose()

    with pytest.raises(ProviderResponseError, match=r"'get_weather'.*list, not an object or a JSON string"):
        trio.run(main)


def test_a_stalled_stream_is_abandoned(misbehaving: OllamaTestServer) -> None:
    misbehaving.behaviour.stall_s = 4.0

    took: list[float] = []

    async def main() -> Completion:
        provider = OllamaProvider(settings(misbehaving.base_url, stall_timeout_s=0.5, max_retries=0))
        try:
            await provider.check_model()
            begun = trio.current_time()
            try:
                return await provider.generate("Once upon a time", GenerationOptions(max_tokens=16))
            finally:
                took.append(trio.current_time() - begun)
        finally:
            await provider.aclose()

    with pytest.raises(ProviderTimeoutError, match=r"stalled: nothing for 0.5s after 1 chunk") as info:
        trio.run(main)
    assert 0.5 <= took[0] < 3.0  # abandoned at the stall, not at the server's pace (4 s)
    assert misbehaving.base_url in str(info.value)


def test_a_slow_steady_stream_completes(misbehaving: OllamaTestServer) -> None:
    misbehaving.behaviour.chunk_delay_s = 0.3

    async def main() -> tuple[Completion, float]:
        provider = OllamaProvider(settings(misbehaving.base_url, stall_timeout_s=1.0, timeout_s=60))
        try:
            await provider.check_model()
            begun = trio.current_time()
            completion = await provider.generate("Once upon a time", GenerationOptions(max_tokens=12))
            return completion, trio.current_time() - begun
        finally:
            await provider.aclose()

    completion, took = trio.run(main)
    assert completion.completion_tokens >= 4 and completion.text.strip()
    assert took > 1.0  # longer than the stall timeout in total, yet never 1 s without a chunk


@pytest.mark.parametrize(
    ("evaluated", "words", "num_ctx", "cut"),
    [
        (256, 400, 256, True),  # cut to the window
        (128, 400, 256, True),  # exactly half the window: still a cut
        (127, 400, 256, False),  # under half: a cache hit, not a cut
        (400, 400, 256, False),  # all there
        (None, 400, 256, False),  # no count (cached, old Ollama)
        (0, 400, 256, False),
    ],
)
def test_prompt_was_cut_boundaries(evaluated: int | None, words: int, num_ctx: int, cut: bool) -> None:
    assert prompt_was_cut(evaluated, words, num_ctx) is cut
