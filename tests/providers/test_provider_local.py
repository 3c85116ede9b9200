"""The embedded llama.cpp provider on the real Gemma 3 270M model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.providers.fewshot import FEW_SHOT, SEARCH, WEATHER
from workflow.errors import ModelNotFoundError, ProviderTimeoutError
from workflow.providers.base import (
    Completion,
    GenerationOptions,
    LLMProvider,
    Message,
    ProviderSettings,
)
from workflow.providers.factory import build_provider
from workflow.providers.local import LocalProvider, default_model_path

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def provider() -> Iterator[LLMProvider]:
    provider = build_provider(ProviderSettings(kind="local", n_ctx=2048))
    assert isinstance(provider, LocalProvider)
    trio.run(provider.load)
    yield provider
    trio.run(provider.aclose)


def test_generate_returns_text_and_token_counts(provider: LLMProvider) -> None:
    options = GenerationOptions(max_tokens=12)
    first = trio.run(provider.generate, "The capital of France is", options)
    second = trio.run(provider.generate, "The capital of France is", options)
    assert first.text.strip()
    assert first.provider == "local" and first.model == "gemma3-270m"
    assert first.prompt_tokens > 0 and 0 < first.completion_tokens <= 12
    assert first.duration_s > 0
    assert (second.text, second.prompt_tokens, second.completion_tokens) == (
        first.text,
        first.prompt_tokens,
        first.completion_tokens,
    )


def test_concurrent_calls_are_serialised_and_unchanged(provider: LLMProvider) -> None:
    options = GenerationOptions(max_tokens=8)
    prompts = ["Owls are", "The sea is", "Paris is"]

    async def concurrently() -> list[str]:
        results: dict[int, str] = {}

        async def one(i: int) -> None:
            results[i] = (await provider.generate(prompts[i], options)).text

        async with trio.open_nursery() as nursery:
            for i in range(len(prompts)):
                nursery.start_soon(one, i)
        return [results[i] for i in range(len(prompts))]

    async def sequentially() -> list[str]:
        return [(await provider.generate(p, options)).text for p in prompts]

    assert trio.run(concurrently) == trio.run(sequentially)


def test_chat_is_deterministic_and_counts_tokens(provider: LLMProvider) -> None:
    messages = [
        Message(role="system", content="You answer briefly."),
        Message(role="user", content="Name a fruit."),
    ]
    options = GenerationOptions(max_tokens=16)
    first: Completion = trio.run(provider.chat, messages, options)
    second: Completion = trio.run(provider.chat, messages, options)
    assert first.text and first.tool_calls == ()
    assert "\nUser:" not in first.text
    assert first.prompt_tokens > 5 and first.completion_tokens > 0
    assert first.text == second.text


def test_chat_parses_a_tool_call_from_a_few_shot_prompt(provider: LLMProvider) -> None:
    completion: Completion = trio.run(
        provider.chat, FEW_SHOT, GenerationOptions(max_tokens=40), [WEATHER, SEARCH]
    )
    assert completion.tool_calls, completion.text
    call = completion.tool_calls[0]
    assert call.name in ("get_weather", "search")
    assert isinstance(call.arguments, dict) and call.arguments
    assert completion.completion_tokens > 0


def test_json_schema_constrains_output(provider: LLMProvider) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["colour"],
    }
    options = GenerationOptions(max_tokens=24, json_schema=schema)
    completion: Completion = trio.run(provider.generate, "A colour as JSON:", options)
    import json

    assert json.loads(completion.text)["colour"] in ("red", "green", "blue")


def test_timeout_is_a_provider_timeout() -> None:
    provider = build_provider(ProviderSettings(kind="local", timeout_s=0.05, n_ctx=512))

    async def main() -> None:
        assert isinstance(provider, LocalProvider)
        await provider.load()  # loading has no deadline; the generation below has
        try:
            await provider.generate("Once upon a time", GenerationOptions(max_tokens=40))
        finally:
            await provider.aclose()

    with pytest.raises(ProviderTimeoutError, match=r"0\.05s"):
        trio.run(main)


def test_provider_still_works_in_a_later_run_after_a_timeout() -> None:
    """A call stopped at its timeout must not dead-lock the next ``trio.run`` on the provider."""
    provider = LocalProvider(ProviderSettings(kind="local", timeout_s=0.05, n_ctx=512))
    trio.run(provider.load)

    async def too_slow() -> None:
        await provider.generate("Once upon a time", GenerationOptions(max_tokens=40))

    with pytest.raises(ProviderTimeoutError):
        trio.run(too_slow)

    async def later() -> None:
        with trio.fail_after(60):  # the timed-out call already ended: nothing to wait for
            await provider.load()
            await provider.aclose()

    trio.run(later)


def test_missing_gguf_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    provider = build_provider(ProviderSettings(kind="local", model_path=str(missing)))
    with pytest.raises(ModelNotFoundError) as info:
        trio.run(provider.generate, "hi", GenerationOptions(max_tokens=2))
    assert str(missing) in str(info.value)
    assert "gemma3-270m" in str(info.value)


def test_not_a_gguf_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a model")
    provider = build_provider(ProviderSettings(kind="local", model_path=str(bogus)))
    with pytest.raises(ModelNotFoundError, match="cannot load"):
        trio.run(provider.generate, "hi", GenerationOptions(max_tokens=2))


def test_model_is_assembled_once_into_the_cache(tmp_path: Path) -> None:
    first = default_model_path(tmp_path)
    mtime = first.stat().st_mtime_ns
    second = default_model_path(tmp_path)
    assert first == second == tmp_path / "gemma-3-270m-q4_k_m.gguf"
    assert second.stat().st_mtime_ns == mtime


def test_cancelled_calls_leave_the_model_usable_in_a_long_lived_process() -> None:
    """Cancel calls during prompt evaluation, during generation and while queued; then a normal call."""
    provider = LocalProvider(ProviderSettings(kind="local", n_ctx=2048))
    long_prompt = "The owls of the marsh are made of glass. " * 160  # ~1,600 tokens to evaluate
    reference_options = GenerationOptions(max_tokens=8)

    async def main() -> tuple[Completion, Completion, list[float]]:
        await provider.load()
        reference = await provider.generate("The capital of France is", reference_options)
        stopped_after: list[float] = []
        for delay in (0.0, 0.05, 0.3):  # inside the prompt's llama_decode: the abort callback ends it
            started = trio.current_time()
            with trio.move_on_after(delay) as scope:
                await provider.generate(long_prompt, GenerationOptions(max_tokens=200))
            assert scope.cancelled_caught
            stopped_after.append(trio.current_time() - started - delay)
        with trio.move_on_after(1.0) as scope:  # mid-generation: the stopping criteria end it
            await provider.generate("Once upon a time", GenerationOptions(max_tokens=2000))
        assert scope.cancelled_caught
        async with trio.open_nursery() as nursery:  # one running, two queued behind the model lock
            for prompt in ("Tell me", "Owls are", "The sea is"):
                nursery.start_soon(provider.generate, prompt, GenerationOptions(max_tokens=500))
            await trio.sleep(0.4)
            nursery.cancel_scope.cancel()
        again = await provider.generate("The capital of France is", reference_options)
        await provider.aclose()
        return reference, again, stopped_after

    reference, again, stopped_after = trio.run(main)
    assert (again.text, again.prompt_tokens, again.completion_tokens) == (
        reference.text,
        reference.prompt_tokens,
        reference.completion_tokens,
    )
    assert max(stopped_after) < 0.5, stopped_after  # the full prompt takes several seconds here


def test_a_load_cut_off_by_a_deadline_still_completes() -> None:
    """Model loading cannot be interrupted: the deadline is honoured once it is done, never mid-load."""
    provider = LocalProvider(ProviderSettings(kind="local", n_ctx=512))

    async def main() -> None:
        with trio.move_on_after(0.01) as scope:
            await provider.generate("Hello", GenerationOptions(max_tokens=4))
        assert scope.cancelled_caught
        completion = await provider.generate("Hello", GenerationOptions(max_tokens=4))
        assert completion.completion_tokens == 4
        await provider.aclose()

    trio.run(main)
