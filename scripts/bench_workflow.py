"""Workflow engine figures: ``python -m scripts.bench_workflow [--steps N] [--no-model]``.

Prints ``name=value`` lines:

- ``workflow_overhead_us_per_step``: the engine's own time per executed task (inputs, prompt fill,
  outputs, condition, trace), measured on a loop of generation tasks against a zero-latency
  scripted provider; the best of several runs (the machine is shared).
- ``local_tokens_per_s``: completion tokens per second of the local model (Gemma 3 270M through
  llama.cpp) on a short prompt, model loading excluded.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import trio

from workflow.engine import Engine
from workflow.providers.base import (
    Completion,
    GenerationOptions,
    Message,
    ProviderKind,
    ProviderSettings,
    ToolSpec,
)
from workflow.validate import parse_workflow


class ZeroLatencyProvider:
    """Answers instantly with a fixed text: what remains of a run's time is the engine's."""

    @property
    def kind(self) -> ProviderKind:
        return "local"

    @property
    def model(self) -> str:
        return "zero-latency"

    @property
    def endpoint(self) -> str:
        return "memory:"

    async def generate(self, prompt: str, options: GenerationOptions) -> Completion:
        return Completion(
            text="a short answer", prompt_tokens=8, completion_tokens=3, model="zero", provider="local"
        )

    async def chat(
        self, messages: Sequence[Message], options: GenerationOptions, tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        return await self.generate(messages[-1].content, options)

    async def aclose(self) -> None:
        return None


def loop_workflow(steps: int) -> dict[str, Any]:
    """One generation task run ``steps`` times: two inputs, two outputs, a condition per step."""
    return {
        "name": "bench",
        "description": "engine overhead loop",
        "config": {"max_steps": steps + 1, "max_time": 600, "tools": [], "max_tokens": 8},
        "tasks": [
            {
                "id": "A",
                "name": "gen",
                "description": "",
                "prompt": "Question: {{question}}\nLast answer: {{last}}\nAnswer:",
                "inputs": [
                    {"name": "question", "value": {"type": "input", "key": "question"}, "required": True},
                    {"name": "last", "value": {"type": "read", "key": "last"}, "required": False},
                ],
                "operator": "generation",
                "outputs": [
                    {"type": "write", "key": "last", "value": "__result"},
                    {"type": "push", "key": "answers", "value": "__result"},
                ],
            },
            {"id": "__end", "name": "end", "description": "", "prompt": "", "operator": "end"},
        ],
        "steps": [
            {
                "source": "A",
                "target": "__end",
                "condition": {
                    "input": {"type": "size", "key": "answers"},
                    "expression": "GreaterThanOrEqual",
                    "expected": str(steps),
                    "target_if_not": "A",
                },
            }
        ],
        "return_value": {"input": {"type": "size", "key": "answers"}},
    }


def overhead_us_per_step(steps: int, repeats: int = 5) -> float:
    workflow = parse_workflow(loop_workflow(steps))
    engine = Engine(ZeroLatencyProvider())
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        result = trio.run(engine.run, workflow, {"question": "What is the engine overhead?"})
        elapsed = time.perf_counter() - started
        if result.value != str(steps):
            raise SystemExit(f"bench: expected {steps} steps, the run returned {result.value!r}")
        best = min(best, elapsed / steps)
    return best * 1e6


def local_tokens_per_s(max_tokens: int = 64) -> float:
    from workflow.providers.factory import build_provider

    async def main() -> float:
        provider = build_provider(ProviderSettings(kind="local"))
        try:
            options = GenerationOptions(max_tokens=max_tokens)
            await provider.generate("Warm up:", options.model_copy(update={"max_tokens": 1}))
            completion = await provider.generate("The history of the lighthouse begins", options)
            return completion.completion_tokens / max(completion.duration_s, 1e-9)
        finally:
            await provider.aclose()

    return trio.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="tasks per overhead run (2000)")
    parser.add_argument("--no-model", action="store_true", help="skip the local model figure")
    args = parser.parse_args(argv)
    print(f"workflow_overhead_us_per_step={overhead_us_per_step(args.steps):.1f}", flush=True)
    if not args.no_model:
        print(f"local_tokens_per_s={local_tokens_per_s():.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
