# ruff: noqa: RUF001 - multilingual text: letters and marks of other scripts are meant
"""``extract_record.json`` and ``persona_dialogue.json`` on a scripted model (every field copied
from the text or empty, every turn grounded or the sentence quoted), the ``year`` text function,
and the scores ``scripts/bench_data.py`` reports (:mod:`workflow.eval.records`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import trio
from wf_helpers import EXAMPLES, ScriptedProvider, workflow_dict

from scripts.bench_data import dialogue_turns, is_quote
from workflow.engine import Engine, RunOutcome
from workflow.eval.grounding import example_markers
from workflow.eval.records import score_dialogue, score_record, years
from workflow.operators import TaskFailed
from workflow.validate import load_workflow, parse_workflow

pytestmark = pytest.mark.unit

Reply = Callable[[str], str]


def run_example(name: str, inputs: Mapping[str, Any], reply: Reply) -> tuple[RunOutcome, list[str]]:
    """Run an example workflow on a scripted model; the outcome and the prompts the model saw."""
    provider = ScriptedProvider(reply)
    outcome = trio.run(Engine(provider).execute, load_workflow(EXAMPLES / f"{name}.json"), inputs)
    return outcome, provider.prompts


# --- years and the ``year`` text function ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in 1847 and in 1902.", ["1847", "1902"]),
        ("0999, 1000, 2099 and 2100", ["1000", "2099"]),  # the bounds, both sides
        ("1453 yılında, 1453'te, 14. Juli 1789", ["1453", "1453", "1789"]),
        ("1.230 Kilometern, 2,850 kilometres, 1 000 kilomètres, 3.300 metri", []),  # grouped numbers
        ("in the 1450s, x1990, 1990.5 and 1990,5", []),  # a decade, glued to letters, a decimal
        ("It ended in 1990.", ["1990"]),  # a sentence's full stop is no decimal point
        # quantities, not years (rev6: the record of a 1500-metre bridge opened in 1932 said 1500)
        ("The bridge is 1500 metres long and opened in 1932.", ["1932"]),
        ("The club has 1200 members; founded in 1921.", ["1921"]),
        ("It cost $1500 in 2015, € 2000 in 2016.", ["2015", "2016"]),
        ("Die Brücke ist 1500 m lang, 1932 eröffnet; 2000 km, 1999 %", ["1932"]),
        ("In 1990, 1500 habitantes; in 1991 visitors came.", ["1990"]),  # a counted noun hides a year
    ],
)
def test_years(text: str, expected: list[str]) -> None:
    assert years(text) == expected


def year_workflow() -> dict[str, Any]:
    return workflow_dict(
        tasks=[
            {
                "id": "T",
                "name": "t",
                "description": "",
                "prompt": "year",
                "inputs": [
                    {"name": "text", "value": {"type": "input", "key": "text"}, "required": True},
                    {"name": "index", "value": {"type": "input", "key": "index"}, "required": True},
                ],
                "operator": "text",
                "outputs": [{"type": "write", "key": "out", "value": "__result"}],
            },
            {"id": "__end", "name": "end", "description": "", "prompt": "", "operator": "end"},
        ],
        steps=[{"source": "T", "target": "__end"}],
        return_value={"input": {"type": "read", "key": "out"}, "to_json": True},
    )


def test_year_function_gives_the_index_th_year_as_a_number_and_fails_past_the_last() -> None:
    workflow = parse_workflow(year_workflow())
    engine = Engine(ScriptedProvider(("unused",)))
    text = "The bridge, 1,230 metres long, opened in 1932 and was widened in 1974."
    first = trio.run(engine.execute, workflow, {"text": text, "index": "0"})
    assert first.result is not None and first.result.value == "1932"  # a JSON number in a record: below
    second = trio.run(engine.execute, workflow, {"text": text, "index": "1"})
    assert second.result is not None and second.result.value == "1974"
    third = trio.run(engine.execute, workflow, {"text": text, "index": "2"})
    assert isinstance(third.error, TaskFailed)
    assert third.error.reason == "the text writes 2 year(s); there is no year 2"
    bad = trio.run(engine.execute, workflow, {"text": text, "index": "-1"})
    assert isinstance(bad.error, TaskFailed) and "not a whole number" in bad.error.reason


# --- extract_record.json ---------------------------------------------------------------------------

TEXT = (
    "The Velmar Bridge crosses the river Ossel at Darnford. It was designed by Hanne Kolvig and opened "
    "in 1932. A second deck was added in 1974, when traffic had doubled."
)


def extract_reply(name: str | Callable[[str], str], summary: str, category: str = '"place"') -> Reply:
    """Replies by the prompt's last line: ``Name:`` (``name`` may depend on the prompt),
    ``Category:``, ``Summary:``; a ``Year:`` prompt is an error (the year is not asked)."""

    def reply(prompt: str) -> str:
        if prompt.endswith("Name:"):
            return f" {name(prompt) if callable(name) else name}"
        if prompt.endswith("Category:"):
            return category
        if prompt.endswith("Summary:"):
            return f" {summary}"
        raise AssertionError(f"unexpected prompt: {prompt[-80:]!r}")

    return reply


def record(outcome: RunOutcome) -> Any:
    assert outcome.result is not None, outcome.error
    return json.loads(outcome.result.value)


def test_extract_copies_every_field_and_cuts_a_summary_to_its_first_sentence() -> None:
    # the model runs on past one sentence and is cut by max_tokens: its first sentence is kept
    summary = "The Velmar Bridge crosses the river Ossel at Darnford. It was designed by Hanne"
    outcome, prompts = run_example("extract_record", {"text": TEXT}, extract_reply("velmar bridge", summary))
    assert record(outcome) == {
        "name": "Velmar Bridge",  # as the text writes it
        "category": "place",
        "year": 1932,  # the first year the text writes, copied without the model
        "summary": "The Velmar Bridge crosses the river Ossel at Darnford.",
    }
    assert len(prompts) == 3  # name, category, summary: no model call for the year
    # the name is asked from the first sentence only (where a text names its subject)
    assert prompts[0].endswith(f"Text: {TEXT.split('. ')[0]}.\nName:")


def test_extract_asks_the_whole_text_when_the_name_is_not_in_the_first_sentence() -> None:
    def name(prompt: str) -> str:
        return "Darnford Castle" if "opened in 1932" not in prompt else "Hanne Kolvig"

    outcome, prompts = run_example(
        "extract_record", {"text": TEXT}, extract_reply(name, "Hanne Kolvig designed it.")
    )
    assert record(outcome)["name"] == "Hanne Kolvig"
    assert [p.endswith("Name:") for p in prompts[:2]] == [True, True]


def test_extract_never_keeps_an_invented_or_example_name() -> None:
    for invented in ("Carl Linnaeus", "Tobias Quill", "Harrowgate lighthouse"):  # the last two: examples
        outcome, prompts = run_example(
            "extract_record", {"text": TEXT}, extract_reply(invented, "The bridge crosses the Ossel.")
        )
        assert isinstance(outcome.error, TaskFailed) and outcome.error.task_id == "none"
        assert outcome.error.reason == "no record: the model named no subject that the text contains"
        assert len(prompts) == 2  # asked twice, then the clear failure


def test_extract_without_a_year_gives_0_and_an_invented_summary_gives_the_first_sentence() -> None:
    text = "Lake Ormsey lies at 1,230 metres. It freezes in winter."  # a number, but no year
    outcome, _ = run_example(
        "extract_record", {"text": text}, extract_reply("Lake Ormsey", "Lake Ormsey is 2,000 metres deep.")
    )
    assert record(outcome) == {
        "name": "Lake Ormsey",
        "category": "place",
        "year": 0,
        "summary": "Lake Ormsey lies at 1,230 metres.",  # 2,000 is not in the text
    }


@pytest.mark.parametrize("reply", ['"Velmar Bridge"', " bridge", '"Place"', '"places"', "{}"])
def test_extract_keeps_only_a_category_of_the_schema_else_other(reply: str) -> None:
    # A provider that does not enforce the task's schema (the OpenAI-compatible /v1/completions, a
    # scripted or misbehaving model) must not put a name or a made-up label in the category (rev6).
    outcome, _ = run_example("extract_record", {"text": TEXT}, extract_reply("Velmar Bridge", "x", reply))
    assert record(outcome)["category"] == "other"
    kept, _ = run_example("extract_record", {"text": TEXT}, extract_reply("Velmar Bridge", "x", "person"))
    assert record(kept)["category"] == "person"  # an enum value, quoted or not, is kept as it is


def test_extract_takes_no_quantity_for_the_year() -> None:
    text = "The Kelby Bridge is 1500 metres long and cost $1800. It opened in 1932 for 2000 cars a day."
    outcome, _ = run_example("extract_record", {"text": text}, extract_reply("Kelby Bridge", "x"))
    assert record(outcome)["year"] == 1932  # was 1500 (rev6)


def test_extract_on_an_empty_text_fails_clearly_before_any_model_call() -> None:
    outcome, prompts = run_example("extract_record", {"text": "  "}, extract_reply("x", "x"))
    assert isinstance(outcome.error, TaskFailed) and outcome.error.task_id == "first"
    assert outcome.error.reason == "the text is empty"
    assert prompts == []


def test_extract_scores_count_a_copied_field_an_invented_one_and_an_empty_one() -> None:
    markers = example_markers(["Text: It was built in 1847 by the engineer Tobias Quill."])
    good = {"name": "Velmar Bridge", "category": "place", "year": 1974, "summary": "It opened in 1932."}
    scores = score_record(TEXT, good, markers=markers)
    assert [(s.field, s.empty, s.grounded) for s in scores] == [
        ("name", False, True),
        ("year", False, True),
        ("summary", False, True),
    ]
    bad = {"name": "Tobias Quill", "year": 1847, "summary": "It opened in 1933.", "category": "place"}
    scores = score_record(TEXT, bad, markers=markers)
    assert [(s.grounded, s.leaked) for s in scores] == [
        (False, ("quill", "tobias")),
        (False, ()),
        (False, ()),
    ]
    empty = score_record(TEXT, {"name": "Velmar Bridge", "year": 0, "summary": ""})
    assert [(s.empty, s.grounded) for s in empty] == [(False, True), (True, False), (True, False)]
    assert [s.grounded for s in score_record(TEXT, '{"name": "Velmar Bridge"}')] == [False] * 3
    # a year must be a year the text writes: 230 of "1,230" or the string "1932" is not one
    assert not score_record("It is 1,230 metres long.", {"year": 230})[1].grounded
    assert not score_record(TEXT, {"year": "1932"})[1].grounded


# --- persona_dialogue.json -------------------------------------------------------------------------


def sentence_of(prompt: str) -> str:
    return prompt.rsplit("Sentence: ", 1)[1].split("\n", 1)[0]


def test_dialogue_persona_and_examples_are_in_the_documents_language() -> None:
    doc = "La Sorne prend sa source au mont Ferval. Elle se jette dans le lac de Brenne."

    def reply(prompt: str) -> str:
        if prompt.endswith("Visitor:"):
            return (
                " Et où la Sorne prend-elle sa source ?"
                if "Ferval" in sentence_of(prompt)
                else " Et où se jette-t-elle ?"
            )
        return f" {sentence_of(prompt)}"

    outcome, prompts = run_example("persona_dialogue", {"document": doc}, reply)
    assert outcome.result is not None, outcome.error
    persona, turns = json.loads(outcome.result.value)
    personas = load_workflow(EXAMPLES / "persona_dialogue.json").external_memory or {}
    assert persona.removeprefix("Persona: ") in personas["personas_fr"]
    assert f"\n{persona}\nSentence: " in prompts[0]
    assert "Persona: un enfant curieux\n" in prompts[0]  # the French examples
    assert turns == [
        "Et où la Sorne prend-elle sa source ?",
        "La Sorne prend sa source au mont Ferval.",
        "Et où se jette-t-elle ?",
        "Elle se jette dans le lac de Brenne.",
    ]


def test_dialogue_rejects_a_visitor_turn_with_an_invented_name_and_tries_the_next_sentence() -> None:
    doc = "The Ossel rises near Darnford. It flows for 120 kilometres to the sea. Its delta is a reserve."

    def reply(prompt: str) -> str:
        sentence = sentence_of(prompt)
        if prompt.endswith("Visitor:"):
            if "rises" in sentence:
                return " Does the Ossel rise near Paris?"  # Paris is not in the document
            if "flows" in sentence:
                return " How many kilometres does it flow to the sea?"
            return " Is its delta a reserve?"
        return f" {sentence}"

    outcome, _ = run_example("persona_dialogue", {"document": doc}, reply)
    assert outcome.result is not None, outcome.error
    _, turns = json.loads(outcome.result.value)
    assert turns == [
        "How many kilometres does it flow to the sea?",
        "It flows for 120 kilometres to the sea.",
        "Is its delta a reserve?",
        "Its delta is a reserve.",
    ]


def test_dialogue_guide_recombining_the_sentences_words_quotes_the_sentence_instead() -> None:
    doc = "The Moon takes about 27 days to orbit the Earth. Its surface is covered in craters."

    def reply(prompt: str) -> str:
        sentence = sentence_of(prompt)
        if prompt.endswith("Visitor:"):
            return (
                " How long does the Moon take to orbit?"
                if "orbit" in sentence
                else " Is its surface covered?"
            )
        # every word is the document's, but the first answer states what it does not say
        return (
            " The Earth takes about 27 days to orbit the Moon."
            if "orbit" in sentence
            else " covered in craters"
        )

    outcome, _ = run_example("persona_dialogue", {"document": doc}, reply)
    assert outcome.result is not None, outcome.error
    _, turns = json.loads(outcome.result.value)
    assert turns[1] == "The Moon takes about 27 days to orbit the Earth."  # the quote
    assert turns[3] == "covered in craters"  # a run of the sentence's words is kept


def test_dialogue_rejects_a_visitor_turn_about_another_sentence_and_one_with_a_new_number() -> None:
    doc = "The Ossel rises near Darnford. It flows for 120 kilometres to the sea."

    def reply(prompt: str) -> str:
        if prompt.endswith("Visitor:"):
            # no word of its sentence ("sea" is too short to count); then a number the document lacks
            return (
                " Where is the sea?"
                if "rises" in sentence_of(prompt)
                else " Does it flow for 300 kilometres?"
            )
        return f" {sentence_of(prompt)}"

    outcome, _ = run_example("persona_dialogue", {"document": doc}, reply)
    assert isinstance(outcome.error, TaskFailed) and outcome.error.task_id == "none"


def test_dialogue_in_german_does_not_take_nouns_for_names() -> None:
    doc = "Die Ossel entspringt bei Darnfurt. Sie fließt 120 Kilometer bis zum Meer."

    def reply(prompt: str) -> str:
        if prompt.endswith("Visitor:"):
            # "Quelle" is a capitalised noun not in the document: no name in German
            return (
                " Und wo ist die Quelle der Ossel bei Darnfurt?"
                if "entspringt" in sentence_of(prompt)
                else " Hallo."
            )
        return f" {sentence_of(prompt)}"

    outcome, _ = run_example("persona_dialogue", {"document": doc}, reply)
    assert outcome.result is not None, outcome.error
    persona, turns = json.loads(outcome.result.value)
    personas = load_workflow(EXAMPLES / "persona_dialogue.json").external_memory or {}
    assert persona.removeprefix("Persona: ") in personas["personas_de"]
    assert turns == ["Und wo ist die Quelle der Ossel bei Darnfurt?", "Die Ossel entspringt bei Darnfurt."]


@pytest.mark.parametrize(
    ("document", "task_id"),
    [
        ("", "topic"),  # empty: no sentence
        (
            "Ossel-joki virtaa 120 kilometriä mereen ja sen suisto on luonnonsuojelualue.",
            "shots",
        ),  # Finnish: no examples
    ],
)
def test_dialogue_on_bad_input_fails_clearly_before_any_model_call(document: str, task_id: str) -> None:
    outcome, prompts = run_example("persona_dialogue", {"document": document}, lambda p: " x")
    assert isinstance(outcome.error, TaskFailed) and outcome.error.task_id == task_id
    assert prompts == []


def test_dialogue_scores_visitor_and_guide_turns_and_quotes() -> None:
    doc = "The Ossel rises near Darnford. It flows for 120 kilometres to the sea."
    markers = example_markers(["Visitor: Ahoy, when was that Harrowgate lighthouse built?"])
    turns = [
        "Where does the Ossel rise?",  # grounded question (1 of 3 content words: the share is 0.25)
        "The Ossel rises near Darnford.",
        "Did the Harrowgate lighthouse stand there?",  # an example's name: not grounded, leaked
        "It flows for 300 kilometres.",  # an invented number
    ]
    scores = score_dialogue(doc, "en", turns, markers=markers)
    assert [(s.speaker, s.grounded) for s in scores] == [
        ("visitor", True),
        ("guide", True),
        ("visitor", False),
        ("guide", False),
    ]
    assert scores[2].leaked == ("harrowgate",) and scores[3].reason == "number 300 is not in the source"
    # in German a capitalised noun of a question is no name; in English it is
    assert score_dialogue(
        "Die Ossel fließt zum Meer.", "de", ["Wo ist die Quelle der Ossel?"], markers=markers
    )[0].grounded
    assert not score_dialogue(doc, "en", ["Where is the Quelle of the Ossel?"], markers=markers)[0].grounded
    assert is_quote("the ossel rises near Darnford", doc, "en") and not is_quote(
        "The Ossel rises.", doc, "en"
    )
    assert dialogue_turns(["Persona: x", ["a", "b"]]) == ["a", "b"] and dialogue_turns("x") is None


# --- scripts/bench_data.py on a scripted model --------------------------------------------------------


def test_bench_figures_on_a_scripted_model() -> None:
    from scripts.bench_data import bench_dialogue, bench_extract
    from scripts.bench_qa import Dump, load_passages
    from workflow.eval.language import LanguageIdentifier

    passages = [p for p in load_passages() if p.id in ("en-danube", "fr-loire")]

    def reply(prompt: str) -> str:
        if prompt.endswith("Visitor:"):
            return " Is that so, Odessa?"  # an invented name: every visitor turn is rejected
        if prompt.endswith("Name:"):
            return " Danube" if "Danube" in prompt.rsplit("Text: ", 1)[1] else " Loire"
        if prompt.endswith("Category:"):
            return '"place"'
        return " It has 7 bridges."  # an invented summary: the first sentence instead

    provider = ScriptedProvider(reply)

    async def run() -> dict[str, float]:
        figures = await bench_extract(provider, passages, Dump(None))
        return figures | await bench_dialogue(provider, passages, LanguageIdentifier(), Dump(None))

    figures = trio.run(run)
    assert figures["extract_grounded_field_rate"] == 1.0  # name, year, first sentence: all copied
    assert figures["extract_empty_field_rate"] == 0  # both write a year: 1948 and 2000
    assert figures["extract_failed_documents"] == 0 and figures["extract_example_leak_rate"] == 0
    # no visitor turn passes: both dialogues fail clearly, and no turn is counted
    assert figures["dialogue_failed_documents"] == 2 and figures["dialogue_turns_per_document"] == 0
    assert figures["dialogue_grounded_turn_rate"] == 0


def test_one_sentence_documents_give_one_round_and_a_full_record() -> None:
    doc = "Founded in 1998 in Menlo Park, the Orvel Company began as a research project of two students."

    def dialogue(prompt: str) -> str:
        return " When was the Orvel Company founded?" if prompt.endswith("Visitor:") else " in 1998"

    outcome, _ = run_example("persona_dialogue", {"document": doc}, dialogue)
    assert outcome.result is not None, outcome.error
    assert json.loads(outcome.result.value)[1] == ["When was the Orvel Company founded?", "in 1998"]
    outcome, prompts = run_example("extract_record", {"text": doc}, extract_reply("Orvel Company", doc))
    assert record(outcome) == {"name": "Orvel Company", "category": "place", "year": 1998, "summary": doc}
    assert len(prompts) == 3
