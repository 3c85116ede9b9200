"""What ``scripts/bench_qa.py`` counts as the few-shot examples of ``qa_pairs.json`` (for the leak
rate), how it reads ``extract_record``'s return value, and how it counts model calls."""

from __future__ import annotations

import pytest
from wf_helpers import EXAMPLES

from scripts.bench_qa import Run, example_questions, few_shot_texts, record_of
from workflow.eval.grounding import example_markers
from workflow.eval.scores import copied_fields
from workflow.validate import load_workflow

pytestmark = pytest.mark.unit


def test_qa_examples_are_markers_but_gap_templates_and_question_words_are_not() -> None:
    texts = few_shot_texts(load_workflow(EXAMPLES / "qa_pairs.json"))
    markers = example_markers(texts)
    assert {"ormel", "sorbelle", "1847", "velmsees"} <= markers  # names and numbers of the examples
    # the German gap question ("Welche Wörter füllen die Lücke ...") is output, not an example
    assert not {"wörter", "lücke", "welche", "combien"} & markers
    assert not any("{}" in t for t in texts)
    assert "How deep is Lake Ormel?" in example_questions(texts)


def test_extract_record_json_text_is_parsed() -> None:
    text = "The naturalist Ilse Marrow described the glass owl in 1887."
    value = (
        '{"name":"Ilse Marrow","category":"person","year":1887,'
        '"summary":"Ilse Marrow described the glass owl."}'
    )
    assert copied_fields(text, record_of(value)) == (3, 3)
    assert copied_fields(text, value) == (0, 3)  # what the bench scored before: a string is no record
    assert record_of("not json") == "not json" and record_of({"a": 1}) == {"a": 1}


def test_model_calls_are_the_generation_steps_of_a_run() -> None:
    steps = (("pick", "ok"), ("ask", "ok"), ("q_about", "failed"), ("ask", "ok"), ("reply", "ok"))
    run = Run(value=None, error=None, seconds=1.0, steps=steps, generations=frozenset({"ask", "reply"}))
    assert run.calls() == 3 and run.count("ask", "ok") == 2 and run.count("q_about", "failed") == 1
    assert Run(value=None, error=None, seconds=1.0, steps=steps).calls() == 0
