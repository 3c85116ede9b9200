"""The OpenAI-compatible provider against a real ``llama_cpp.server`` serving the packaged GGUF.

The server runs with llama-cpp-python's ``chatml-function-calling`` chat format, so a forced
``tool_choice`` yields real ``tool_calls``. Fault injection (5xx, 429, 4xx, slow answers) goes
through :class:`FaultyProxy`, which forwards to the real server once its faults are used up.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio
from pydantic import SecretStr

from tests.providers.fewshot import WEATHER
from tests.providers.servers import MODEL_ALIAS, FaultyProxy, LlamaCppServer, closed_port_url
from workflow.errors import (
    ModelNotFoundError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from workflow.providers.base import (
    Completion,
    GenerationOptions,
    Message,
    ProviderSettings,
    ToolCall,
)
from workflow.providers.factory import build_provider
from workflow.providers.openai import OpenAIProvider, api_root, to_openai_messages

pytestmark = [pytest.mark.integration, pytest.mark.model]

OPTIONS = GenerationOptions(max_tokens=16)


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaCppServer]:
    with LlamaCppServer(chat_format="chatml-function-calling") as running:
        yield running


def settings(base_url: str, **overrides: object) -> ProviderSettings:
    values: dict[str, object] = {
        "kind": "openai",
        "base_url": base_url,
        "model": MODEL_ALIAS,
        "backoff_s": 0.05,
    }
    values.update(overrides)
    return ProviderSettings.model_validate(values)


async def _generate(provider: OpenAIProvider | object, prompt: str) -> Completion:
    assert isinstance(provider, OpenAIProvider)
    try:
        return await provider.generate(prompt, OPTIONS)
    finally:
        await provider.aclose()


def test_generate_text_tokens_and_determinism(server: LlamaCppServer) -> None:
    async def main() -> tuple[Completion, Completion]:
        provider = build_provider(settings(server.base_url, api_key=SecretStr("sk-test")))
        try:
            assert provider.endpoint == server.base_url + "/v1"
            first = await provider.generate("The capital of France is", OPTIONS)
            second = await provider.generate("The capital of France is", OPTIONS)
            return first, second
        finally:
            await provider.aclose()

    first, second = trio.run(main)
    assert first.text.strip() and first.provider == "openai" and first.model == MODEL_ALIAS
    assert first.prompt_tokens > 0 and 0 < first.completion_tokens <= 16
    assert first.text == second.text


def test_chat_text_and_tokens(server: LlamaCppServer) -> None:
    messages = [Message(role="user", content="Write a short poem about the sea.")]

    async def main() -> tuple[Completion, Completion]:
        provider = build_provider(settings(server.base_url))
        try:
            return await provider.chat(messages, OPTIONS), await provider.chat(messages, OPTIONS)
        finally:
            await provider.aclose()

    first, second = trio.run(main)
    assert first.text.strip() and first.tool_calls == ()
    assert first.prompt_tokens > 0 and first.completion_tokens > 0
    assert first.text == second.text


def test_chat_tool_call_is_parsed(server: LlamaCppServer) -> None:
    async def main() -> Completion:
        provider = OpenAIProvider(settings(server.base_url), tool_choice="get_weather")
        try:
            return await provider.chat(
                [Message(role="user", content="What is the weather in Paris?")],
                GenerationOptions(max_tokens=40),
                [WEATHER],
            )
        finally:
            await provider.aclose()

    completion = trio.run(main)
    assert len(completion.tool_calls) == 1
    call = completion.tool_calls[0]
    assert call.name == "get_weather"
    assert isinstance(call.arguments.get("city"), str) and call.arguments["city"]
    assert completion.completion_tokens > 0


def test_missing_model_names_endpoint_and_model(server: LlamaCppServer) -> None:
    provider = build_provider(settings(server.base_url, model="no-such-model"))
    with pytest.raises(ModelNotFoundError) as info:
        trio.run(_generate, provider, "hi")
    message = str(info.value)
    assert "no-such-model" in message and server.base_url in message and MODEL_ALIAS in message


def test_server_down_is_unavailable_after_retries() -> None:
    url = closed_port_url()
    provider = build_provider(settings(url, max_retries=2))
    with pytest.raises(ProviderUnavailableError) as info:
        trio.run(_generate, provider, "hi")
    assert url in str(info.value) and MODEL_ALIAS in str(info.value)


def test_retries_with_backoff_then_answers(server: LlamaCppServer) -> None:
    with FaultyProxy(server.base_url, fail_first=2, fail_status=503) as proxy:
        completion = trio.run(_generate, build_provider(settings(proxy.base_url, max_retries=2)), "Owls are")
        arrivals = proxy.arrivals
        paths = proxy.paths
    assert completion.text
    assert [p for _, p in paths] == ["/v1/models", "/v1/models", "/v1/models", "/v1/completions"]
    assert arrivals[1] - arrivals[0] >= 0.05 and arrivals[2] - arrivals[1] >= 0.1


def test_429_is_retried_and_exhaustion_is_unavailable(server: LlamaCppServer) -> None:
    with FaultyProxy(server.base_url, fail_first=1, fail_status=429) as proxy:
        assert trio.run(_generate, build_provider(settings(proxy.base_url, max_retries=1)), "Owls are").text
    with FaultyProxy(server.base_url, fail_first=10, fail_status=500) as proxy:
        with pytest.raises(ProviderUnavailableError, match="HTTP 500"):
            trio.run(_generate, build_provider(settings(proxy.base_url, max_retries=2)), "Owls are")
        assert len(proxy.paths) == 3


def test_4xx_is_not_retried(server: LlamaCppServer) -> None:
    with FaultyProxy(server.base_url, fail_first=10, fail_status=400) as proxy:
        with pytest.raises(ProviderResponseError, match="HTTP 400"):
            trio.run(_generate, build_provider(settings(proxy.base_url, max_retries=3)), "Owls are")
        assert len(proxy.paths) == 1


def test_timeout(server: LlamaCppServer) -> None:
    with FaultyProxy(server.base_url, delay_first=1, delay_s=5.0) as proxy:
        provider = build_provider(settings(proxy.base_url, timeout_s=0.5, max_retries=0))
        with pytest.raises(ProviderTimeoutError) as info:
            trio.run(_generate, provider, "Owls are")
    assert proxy.base_url in str(info.value)


def test_message_conversion_pairs_tool_results_with_calls() -> None:
    converted = to_openai_messages(
        [
            Message(role="user", content="weather?"),
            Message(
                role="assistant",
                tool_calls=(
                    ToolCall(name="get_weather", arguments={"city": "Paris"}),
                    ToolCall(name="search", arguments={"query": "x"}),
                ),
            ),
            Message(role="tool", name="search", content="found"),
            Message(role="tool", name="get_weather", content="18C"),
        ]
    )
    calls = converted[1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1_0", "call_1_1"]
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert converted[2]["tool_call_id"] == "call_1_1" and converted[3]["tool_call_id"] == "call_1_0"
    assert api_root("http://h:1") == api_root("http://h:1/v1/") == "http://h:1/v1"
