"""Scores of the data workflows' outputs against their source passage (what ``bench_qa`` reports).

Q&A (``qa_pairs``), per pair:

- *grounded*: the answer passes :func:`workflow.eval.grounding.grounding` against the passage;
- *language match*: the question (and the answer, when it has three words or more: shorter ones
  are names and numbers, which have no language) is identified as the passage's language;
- *leak*: the pair holds a name or number of the workflow's few-shot examples that the passage
  does not (:func:`workflow.eval.grounding.leaked_markers`), or repeats an example question;
- *distinct*: its question differs from the document's earlier questions (folded, punctuation
  and spacing ignored);
- *gap question*: the question is the workflow's fill-in-the-gap fallback (it holds ``___``), not
  one the model wrote.

Dialogue (``persona_dialogue``): a guide turn is grounded by the same check as an answer; a
missing turn counts as not grounded. Extraction (``extract_record``): ``name`` is copied when it
is a span of the text, ``year`` when it is a number of the text (or 0 and the text has no
number), ``summary`` when it is grounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from workflow.eval.grounding import grounding, leaked_markers
from workflow.eval.language import LanguageIdentifier
from workflow.eval.text import locate, normalise, numbers, words

GAP = "___"
"""What marks the gap in a fill-in-the-gap question (``text`` function ``cloze``)."""


class QaPairScore(BaseModel):
    """One question-answer pair, judged."""

    model_config = ConfigDict(frozen=True)

    question: str
    answer: str
    grounded: bool
    grounding_reason: str | None
    language: str | None
    language_match: bool
    leaked: tuple[str, ...]
    distinct: bool
    gap_question: bool = False


def score_qa(
    passage: str,
    language: str,
    questions: Sequence[Any],
    answers: Sequence[Any],
    *,
    markers: frozenset[str],
    example_questions: Sequence[str],
    identifier: LanguageIdentifier,
) -> list[QaPairScore]:
    """Judge the pairs ``zip(questions, answers)`` of one output (extra items are not pairs)."""
    examples = {normalise(q) for q in example_questions}
    seen: set[str] = set()
    scores: list[QaPairScore] = []
    for raw_q, raw_a in zip(questions, answers, strict=False):
        question, answer = str(raw_q), str(raw_a)
        report = grounding(answer, passage)
        found = identifier.code(question)
        match = found == language
        if len(words(answer)) >= 3:
            match = match and identifier.code(answer) == language
        leaked = leaked_markers(f"{question} {answer}", markers, passage)
        key = normalise(question)
        if key in examples:
            leaked.append(f"example question {question!r}")
        scores.append(
            QaPairScore(
                question=question,
                answer=answer,
                grounded=report.grounded,
                grounding_reason=report.reason,
                language=found,
                language_match=match,
                leaked=tuple(leaked),
                distinct=key not in seen,
                gap_question=GAP in question,
            )
        )
        seen.add(key)
    return scores


def grounded_turns(passage: str, turns: Sequence[Any], *, expected: int) -> tuple[int, int]:
    """(grounded guide turns, ``expected`` guide turns): the guide speaks every second turn."""
    guide = [str(t) for t in turns[1::2]]
    good = sum(1 for t in guide[:expected] if grounding(t, passage).grounded)
    return good, expected


def copied_fields(text: str, record: Any) -> tuple[int, int]:
    """(fields copied from ``text``, 3): ``name``, ``year`` and ``summary`` as the module says."""
    if not isinstance(record, dict):
        return 0, 3
    good = 0
    name = record.get("name")
    if isinstance(name, str) and name.strip() and locate(name, text) is not None:
        good += 1
    year = record.get("year")
    text_numbers = numbers(text)
    is_int = isinstance(year, int) and not isinstance(year, bool)
    if is_int and (str(year) in text_numbers or (year == 0 and not text_numbers)):
        good += 1
    summary = record.get("summary")
    if isinstance(summary, str) and grounding(summary, text).grounded:
        good += 1
    return good, 3
