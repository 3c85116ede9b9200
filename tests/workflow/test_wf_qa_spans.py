# ruff: noqa: RUF001 - multilingual text: letters and marks of other scripts are meant
"""Answer candidates (workflow.eval.spans) and the text functions built on them (candidate, cloze,
mentions, has_word, join) through the engine."""

from __future__ import annotations

from typing import Any

import pytest
from test_wf_textops import _in, failure_of, text_workflow, value_of

from workflow.eval.spans import answer_candidates

pytestmark = pytest.mark.unit


def pairs(text: str, language: str | None, **kw: Any) -> list[tuple[str, str]]:
    return [(c.kind, c.answer) for c in answer_candidates(text, language, **kw)]


def test_kinds_in_one_sentence_best_first() -> None:
    found = pairs(
        "It rises in the Black Forest in 1707 and flows for about 2,850 kilometres on 14 July 1789.", "en"
    )
    assert found == [
        ("date", "14 July 1789"),
        ("quantity", "2,850 kilometres"),
        ("year", "1707"),
        ("name", "Black Forest"),
    ]


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("O sismo ocorreu em 1 de novembro de 1755.", "pt", ("date", "1 de novembro de 1755")),
        ("Er wurde am 14. März 1879 geboren.", "de", ("date", "14. März 1879")),
        ("The tower is 1 000 metres high.", "en", ("quantity", "1 000 metres")),
        ("Il pèse 0,8 kilogramme.", "fr", ("quantity", "0,8 kilogramme")),
        ("The number 7 is odd.", "en", ("quantity", "7")),  # a verb is no unit
        ("The town had 250 and more.", "en", ("quantity", "250")),  # nor a joining word
        ("İstanbul 1453 yılında fethedildi.", "tr", ("year", "1453")),  # a year, its suffix left out
        ("Since 1948 the commission has met.", "en", ("year", "1948")),
    ],
)
def test_first_candidate(text: str, language: str, expected: tuple[str, str]) -> None:
    assert pairs(text, language)[0] == expected


def test_ordinals_are_not_numbers_in_ordinal_dot_languages() -> None:
    assert pairs("Die Arbeiten ruhten ab dem 16. Jahrhundert lange.", "de") == []
    assert pairs("Kahve 16. yüzyılda geldi.", "tr") == []


def test_names_lists_and_appositions() -> None:
    # a list ends with a joining word; an apposition (no joining word) is two names
    assert pairs("Four cities lie on it: Vienna, Bratislava, Budapest and Belgrade.", "en") == [
        ("names", "Vienna, Bratislava, Budapest and Belgrade")
    ]
    assert pairs("It lies near Kapadokya, Orta Anadolu.", "tr") == [
        ("name", "Kapadokya"),
        ("name", "Orta Anadolu"),
    ]
    # a particle joins a name, an apostrophe ends it, a hyphen does not
    assert pairs("It rises at Gerbier de Jonc near Saint-Nazaire and Nuh'un.", "fr") == [
        ("names", "Saint-Nazaire and Nuh"),
        ("name", "Gerbier de Jonc"),
    ]


def test_sentence_initial_word_is_a_name_only_if_written_so_elsewhere() -> None:
    text = "Mount Fuji is high. The peak was climbed early. In 2013 Mount Fuji was listed."
    found = answer_candidates(text, "en")
    assert [(c.kind, c.answer) for c in found] == [("name", "Mount Fuji"), ("year", "2013")]
    assert found[0].sentence == "Mount Fuji is high."


def test_german_nouns_after_an_article_or_a_capital_are_not_names() -> None:
    found = pairs("Zehn Jahre später zog er nach Ulm. Der Weg führt durch den Wald.", "de")
    assert found == [("name", "Ulm")]


def test_round_robin_over_sentences_without_repeats_and_max_words() -> None:
    text = (
        "The tower of Arden is 10 metres tall. The tower of Belmoor is 20 metres tall. "
        "The tower of Arden is 30 metres tall."
    )
    assert pairs(text, "en") == [
        ("quantity", "10 metres"),
        ("quantity", "20 metres"),
        ("quantity", "30 metres"),
        ("name", "Arden"),
        ("name", "Belmoor"),
    ]
    assert pairs(text, "en", max_words=7) == []  # every sentence has 8 words
    assert answer_candidates(text, "en") == answer_candidates(text, "en")  # deterministic


def test_no_candidate_in_plain_text() -> None:
    assert pairs("The river flows slowly to the sea. It is wide and calm.", "en") == []
    assert pairs("", "en") == []


# --- the text functions --------------------------------------------------------------------------

DOC = "The Danube flows for 2,850 kilometres. It has flowed past Vienna since 1948."


def candidate(index: str, part: str | None = None) -> str:
    inputs = [_in("text", "input", "d"), _in("index", "string", index)]
    if part is not None:
        inputs.append(_in("part", "string", part))
    return value_of(text_workflow("candidate", inputs), {"d": DOC})


def test_candidate_answer_sentence_and_kind() -> None:
    assert [candidate(str(i)) for i in range(4)] == ["2,850 kilometres", "1948", "Danube", "Vienna"]
    assert candidate("1", "sentence") == "It has flowed past Vienna since 1948."
    assert candidate("0", "kind") == "quantity" and candidate("3", "kind") == "name"


def test_candidate_failures() -> None:
    inputs = [_in("text", "input", "d"), _in("index", "string", "4")]
    reason = failure_of("candidate", inputs, {"d": DOC})
    assert reason == "the text has 4 answer candidate(s); there is no candidate 4"
    assert failure_of("candidate", inputs, {"d": ""}) == "the text is empty"
    bad = [*inputs[:1], _in("index", "string", "0"), _in("part", "string", "verb")]
    assert failure_of("candidate", bad, {"d": DOC}) == "part 'verb' is not 'answer', 'sentence' or 'kind'"


def test_cloze() -> None:
    inputs = [_in("text", "input", "s"), _in("part", "input", "a"), _in("template", "input", "t")]
    values = {"s": "It flows for 2,850 kilometres to the sea.", "a": "2,850 kilometres", "t": 'Gap in "{}"?'}
    assert value_of(text_workflow("cloze", inputs), values) == 'Gap in "It flows for ___ to the sea."?'
    assert failure_of("cloze", inputs, {**values, "a": "2,851 kilometres"}).startswith(
        "'2,851 kilometres' is not in"
    )
    assert (
        failure_of("cloze", inputs, {**values, "t": "no placeholder"})
        == "the template 'no placeholder' has no {}"
    )


def test_mentions_ignores_the_answers_words() -> None:
    inputs = [_in("text", "input", "q"), _in("source", "input", "s"), _in("part", "input", "a")]
    sentence = "The Loire is the longest river of France."
    ok = {"q": "Which river is the longest?", "s": sentence, "a": "Loire"}
    assert value_of(text_workflow("mentions", inputs), ok) == "Which river is the longest?"
    reason = failure_of("mentions", inputs, {**ok, "q": "How long is the Loire?"})
    assert reason.startswith("'How long is the Loire?' shares no content word with")


def test_has_word_and_join() -> None:
    inputs = [_in("text", "input", "q"), _in("words", "input", "w")]
    words = ["How many", "How long"]
    assert (
        value_of(text_workflow("has_word", inputs), {"q": "How long is it?", "w": words}) == "How long is it?"
    )
    # word-aligned: "Howl" is not "How"; "many" alone is not "How many"
    reason = failure_of("has_word", inputs, {"q": "Howl, many wolves?", "w": words})
    assert reason == "'Howl, many wolves?' has none of 'How many, How long'"
    assert failure_of("has_word", inputs, {"q": "x", "w": {"a": 1}}) == "words is not a JSON list of strings"
    join = [_in("a", "input", "a"), _in("b", "input", "b")]
    assert value_of(text_workflow("join", join), {"a": "¿Cuándo", "b": " nació  él?"}) == "¿Cuándo nació él?"
    assert value_of(text_workflow("join", join), {"a": "When", "b": "was it?"}) == "When was it?"
    assert value_of(text_workflow("join", join), {"a": "", "b": " Is it?"}) == "Is it?"
