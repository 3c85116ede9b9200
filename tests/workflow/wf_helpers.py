"""Helpers of the workflow tests: a scripted provider and a small valid workflow to derive cases from.

The engine is deterministic given the model's outputs, so most engine tests drive it with
:class:`ScriptedProvider`, which returns pre-set completions (the real model cannot be scripted).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from workflow.providers.base import (
    Completion,
    GenerationOptions,
    LLMProvider,
    Message,
    ProviderKind,
    ProviderSettings,
    ToolCall,
    ToolSpec,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "workflows"
DATA = Path(__file__).resolve().parent / "data"

Reply = str | Completion
Script = Sequence[Reply] | Callable[[str], Reply]


class ScriptedProvider:
    """An :class:`LLMProvider` whose answers are given in advance (a list, or a function of the prompt).

    ``delay_s`` makes every call sleep first (to test ``max_time``); prompts are recorded.
    """

    def __init__(self, script: Script, *, delay_s: float = 0.0, tool_calls: Sequence[ToolCall] = ()) -> None:
        self._script = script
        self._index = 0
        self._delay_s = delay_s
        self._tool_calls = tuple(tool_calls)
        self.prompts: list[str] = []
        self.options: list[GenerationOptions] = []
        self.tools_seen: list[tuple[ToolSpec, ...]] = []

    @property
    def kind(self) -> ProviderKind:
        return "local"

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def endpoint(self) -> str:
        return "scripted:"

    def _next(self, prompt: str) -> Completion:
        if callable(self._script):
            reply = self._script(prompt)
        else:
            reply = self._script[min(self._index, len(self._script) - 1)]
        self._index += 1
        if isinstance(reply, Completion):
            return reply
        return Completion(
            text=reply,
            prompt_tokens=len(prompt.split()),
            completion_tokens=len(reply.split()),
            model="scripted",
            provider="local",
        )

    async def generate(self, prompt: str, options: GenerationOptions) -> Completion:
        if self._delay_s:
            await trio.sleep(self._delay_s)
        self.prompts.append(prompt)
        self.options.append(options)
        return self._next(prompt)

    async def chat(
        self, messages: Sequence[Message], options: GenerationOptions, tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        if self._delay_s:
            await trio.sleep(self._delay_s)
        prompt = "\n".join(f"{m.role}: {m.content}" for m in messages)
        self.prompts.append(prompt)
        self.options.append(options)
        self.tools_seen.append(tuple(tools))
        completion = self._next(prompt)
        if tools and self._tool_calls:
            completion = completion.model_copy(update={"tool_calls": self._tool_calls})
        return completion

    async def aclose(self) -> None:
        return None


def workflow_dict(**overrides: Any) -> dict[str, Any]:
    """A small valid workflow (one generation, then the end) to derive test cases from."""
    base: dict[str, Any] = {
        "name": "t",
        "description": "test",
        "config": {"max_steps": 5, "max_time": 30, "tools": []},
        "tasks": [
            {
                "id": "A",
                "name": "gen",
                "description": "generate",
                "prompt": "Say something about {topic}.",
                "inputs": [{"name": "topic", "value": {"type": "input", "key": ""}, "required": True}],
                "operator": "generation",
                "outputs": [{"type": "write", "key": "out", "value": "__result"}],
            },
            {"id": "__end", "name": "end", "description": "", "prompt": "", "operator": "end"},
        ],
        "steps": [{"source": "A", "target": "__end"}],
        "return_value": {"input": {"type": "read", "key": "out"}},
    }
    base.update(overrides)
    copied: dict[str, Any] = json.loads(json.dumps(base))  # a deep copy tests may mutate
    return copied


class LocalModel:
    """The session's local model, loaded once and shared by the tests (a run cancelled at
    ``max_time`` stops its llama.cpp call at the next token and leaves the provider usable)."""

    def __init__(self) -> None:
        self._provider: LLMProvider | None = None

    @property
    def provider(self) -> LLMProvider:
        if self._provider is None:
            from workflow.providers.factory import build_provider

            provider = build_provider(ProviderSettings(kind="local"))
            loader = getattr(provider, "load", None)
            if loader is not None:
                trio.run(loader)
            self._provider = provider
        return self._provider

    def close(self) -> None:
        if self._provider is not None:
            trio.run(self._provider.aclose)
            self._provider = None
