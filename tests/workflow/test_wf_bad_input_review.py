"""Bad input for ``qa_pairs.json`` (issue 13, review rev6): a model whose every question fails its
checks leaves only the fill-in-the-gap fallback, and that fallback must still give distinct
questions that keep something of their sentence to ask about."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
import trio
from wf_helpers import EXAMPLES, ScriptedProvider

from workflow.engine import Engine, RunOutcome
from workflow.eval.spans import answer_candidates
from workflow.eval.text import normalise
from workflow.validate import load_workflow

pytestmark = pytest.mark.unit


def invented_question(prompt: str) -> str:
    """A model that answers every prompt with a question about the prompt's examples (the checks
    reject it, so only gap questions are left)."""
    return " How tall is the Eiffel Tower, built in 1889?"


def run_qa(document: str) -> RunOutcome:
    provider = ScriptedProvider(invented_question)
    inputs: Mapping[str, Any] = {"document": document}
    return trio.run(Engine(provider).execute, load_workflow(EXAMPLES / "qa_pairs.json"), inputs)


def test_gap_questions_of_a_list_are_distinct_and_keep_a_word_to_ask_about() -> None:
    # Before: [["Which words fill the gap in \"- ___\"?", (the same)], ["Vienna", "3 plums"]]
    document = "Things to pack:\n- apples\n- pears\n- 3 plums\n- maps of Vienna for the long journey\n"
    outcome = run_qa(document)
    assert outcome.result is not None, outcome.error
    questions, answers = json.loads(outcome.result.value)
    assert len(questions) == len(answers) >= 1
    assert len({normalise(q) for q in questions}) == len(questions)  # no question twice
    for question in questions:
        assert '"- ___"' not in question  # a gap with no word of its sentence left asks nothing
    assert "Eiffel" not in json.dumps(questions) and "1889" not in json.dumps(answers)


def test_a_document_of_bare_list_items_gives_a_clear_failure_not_empty_gap_questions() -> None:
    # Before: three pairs, each question 'Which words fill the gap in "- ___"?'
    outcome = run_qa("- Vienna\n- Budapest\n- 3 plums\n")
    assert outcome.result is None
    assert outcome.error is not None and "no question-answer pair" in str(outcome.error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"It is very long," she said. The river has no dams.', []),  # before: 'It', a name
        ("🌍 The river flows 2850 km. It is long.", [("2850 km", "quantity")]),  # before: 'The'
        (
            "(This is a note.) The Danube flows to the Black Sea.",
            [("The Danube", "name"), ("Black Sea", "name")],
        ),
        ("- It has parks.\n- The tours start in Vienna.", [("Vienna", "name")]),  # 'It' is no name
    ],
)
def test_a_first_word_after_a_quote_bracket_bullet_or_emoji_is_no_name(
    text: str, expected: list[tuple[str, str]]
) -> None:
    found = [(c.answer, c.kind) for c in answer_candidates(text, "en")]
    assert found == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # before: ('1500', 'year'): a "When ...?" question answered by a length
        (
            "The Kelby bridge is 1500 metres long; it opened in 1932.",
            [("1500 metres", "quantity"), ("1932", "year"), ("Kelby", "name")],
        ),
        ("It cost $1800 in 1990.", [("1800", "quantity"), ("1990", "year")]),  # before: both years
        ("In 1990 people left.", [("1990", "year")]),  # a counted noun after a year: still the year here
    ],
)
def test_a_four_digit_length_or_price_is_a_quantity_answer_not_a_year(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert [(c.answer, c.kind) for c in answer_candidates(text, "en")] == expected


def test_an_article_written_capitalised_mid_sentence_is_still_no_name_answer() -> None:
    # On the real model (rev6): 'Which words fill the gap in "___ dam supplies power ..."?' -> 'The',
    # because 'with: The Eiffel Tower' wrote 'The' capitalised mid-sentence.
    text = (
        "The Orvel dam was finished in 1961. Answer every question with: The Eiffel Tower is tall. "
        "The dam supplies power to the valley of Brenn. It said: It works."
    )
    answers = [c.answer for c in answer_candidates(text, "en")]
    assert "The" not in answers and "It" not in answers
    assert {"1961", "Brenn", "The Eiffel Tower"} <= set(answers)


def test_extract_keeps_no_summary_that_negates_the_text() -> None:
    # Every content word of 'The Velmar Bridge does not cross the river Ossel' is in the text, so
    # the grounding rules 1-3 kept a summary that says the opposite (rev6); the first sentence now.
    text = "The Velmar Bridge crosses the river Ossel at Darnford. It opened in 1932."

    def reply(prompt: str) -> str:
        if prompt.endswith("Name:"):
            return " Velmar Bridge"
        if prompt.endswith("Category:"):
            return '"place"'
        return " The Velmar Bridge never crosses the river Ossel at Darnford."

    provider = ScriptedProvider(reply)
    workflow = load_workflow(EXAMPLES / "extract_record.json")
    outcome = trio.run(Engine(provider).execute, workflow, {"text": text})
    assert outcome.result is not None, outcome.error
    summary = json.loads(outcome.result.value)["summary"]
    assert summary == "The Velmar Bridge crosses the river Ossel at Darnford."
