# ruff: noqa: RUF001 - multilingual text: letters and marks of other scripts are meant
"""The checks of workflow.eval: words, numbers, sentences, spans, grounding, leaks, language, scores."""

from __future__ import annotations

import pytest

from workflow.eval.grounding import example_markers, grounding, leaked_markers
from workflow.eval.language import LanguageIdentifier
from workflow.eval.scores import copied_fields, grounded_turns, score_qa
from workflow.eval.text import locate, names, normalise, numbers, same_word, sentences, words

pytestmark = pytest.mark.unit

DANUBE = (
    "The Danube rises in the Black Forest in Germany and flows for about 2,850 kilometres to the "
    "Black Sea. Four capital cities lie on its banks: Vienna, Bratislava, Budapest and Belgrade. "
    "Since 1948 the Danube Commission has regulated shipping on the river."
)


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("about 2,850 kilometres", ["2850"]),
        ("mit 2.962 Metern", ["2962"]),
        ("environ 1 000 kilomètres", ["1000"]),
        ("une acidité de 0,8 degré", ["0.8"]),
        ("2.4 metres across", ["2.4"]),
        ("on 20 July 1969", ["20", "1969"]),
        ("between 1969 and 1972", ["1969", "1972"]),
        ("12,5 und 12345", ["12.5", "12345"]),
        ("no digits here", []),
    ],
)
def test_numbers_are_canonical(text: str, expected: list[str]) -> None:
    assert numbers(text) == expected


def test_words_split_apostrophes_and_names_are_capitalised() -> None:
    assert words("İstanbul'daki ilk kahvehaneler") == ["İstanbul", "daki", "ilk", "kahvehaneler"]
    assert names("Il revint en France en 1870.") == ["Il", "France"]


def test_same_word_tolerates_short_inflections_only() -> None:
    assert same_word("kilometre", "kilometres")
    assert same_word("rhein", "rheins")
    assert same_word("erupted", "eruption")
    assert not same_word("paris", "parma")
    assert not same_word("cat", "cats")  # under five letters: exact only


def test_sentences_repair_ordinals_and_keep_real_ends() -> None:
    text = (
        "Mit dem Bau wurde 1248 begonnen, doch die Arbeiten ruhten ab dem 16. Jahrhundert lange. "
        "Erst 1880 wurde der Dom vollendet. Er ist 157 Meter hoch."
    )
    assert sentences(text, "de") == [
        "Mit dem Bau wurde 1248 begonnen, doch die Arbeiten ruhten ab dem 16. Jahrhundert lange.",
        "Erst 1880 wurde der Dom vollendet.",
        "Er ist 157 Meter hoch.",
    ]
    assert sentences("Kahve 16. yüzyılda geldi. İlk kahvehane 1554 yılında açıldı.", "tr") == [
        "Kahve 16. yüzyılda geldi.",
        "İlk kahvehane 1554 yılında açıldı.",
    ]
    assert sentences("   ", "en") == []
    # outside the ordinal-dot languages a number ends a sentence before a capital
    assert sentences("A market on day 1. The town has 1037 inhabitants.", "en") == [
        "A market on day 1.",
        "The town has 1037 inhabitants.",
    ]


def test_locate_returns_the_source_text_of_a_word_run() -> None:
    assert locate("vienna, bratislava", DANUBE) == "Vienna, Bratislava"
    assert locate("the Black Sea.", DANUBE) == "the Black Sea"
    assert locate("2,850 kilometres", DANUBE) == "2,850 kilometres"
    assert locate("2850 kilometres", DANUBE) is None  # digits must be copied as written
    assert locate("2,850 kilometre", DANUBE) == "2,850 kilometres"  # a short inflection is the same word
    assert locate("2,851 kilometres", DANUBE) is None
    assert locate("Black Danube", DANUBE) is None
    assert locate("Vien", DANUBE) is None  # whole words only
    assert locate("?!", DANUBE) is None


def test_normalise_ignores_case_spacing_and_edge_punctuation() -> None:
    assert normalise("  When was it BUILT ? ") == normalise("when was it built")


def test_grounding_accepts_copied_facts() -> None:
    report = grounding("It flows about 2850 kilometres to the Black Sea", DANUBE)
    assert report.grounded and report.reason is None
    # the first word of a sentence is capitalised by spelling, not a name; a name elsewhere is checked
    assert grounding("Since 1948 it has regulated shipping. Vienna lies on its banks.", DANUBE).grounded
    assert not grounding("Since 1948 the Commission of Odessa has regulated shipping.", DANUBE).grounded


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("It flows 3,000 kilometres.", "number 3000 is not in the source"),
        ("It flows to Odessa.", "name 'Odessa' is not in the source"),
        ("", "the text has no word or number"),
    ],
)
def test_grounding_rejects_invented_numbers_and_names(text: str, reason: str) -> None:
    report = grounding(text, DANUBE)
    assert not report.grounded and report.reason == reason


def test_grounding_content_share_boundary() -> None:
    # 4 content words, 3 in the source: 0.75, exactly the threshold -> grounded
    assert grounding("capital cities banks yellow", DANUBE).content_share == 0.75
    assert grounding("capital cities banks yellow", DANUBE).grounded
    # 5 content words, 3 in the source: 0.6 -> not grounded
    below = grounding("capital cities banks yellow green", DANUBE)
    assert not below.grounded and below.content_share == 0.6
    assert below.reason == "only 3 of 5 content words occur in the source"


def test_grounding_skip_first_exempts_a_question_word() -> None:
    assert grounding("Which cities lie on its banks?", DANUBE).content_share == 0.667
    assert not grounding("Which cities lie on its banks?", DANUBE).grounded
    assert grounding("Which cities lie on its banks?", DANUBE, skip_first=True).grounded


def test_example_markers_and_leaks() -> None:
    shots = (
        "Topic: The Harrowgate lighthouse stands off Elmsby.\nQuestion: When was it built?\nAnswer: in 1847\n"
    )
    markers = example_markers([shots])
    assert markers == frozenset({"harrowgate", "elmsby", "1847"})  # not "when", not the labels
    assert leaked_markers("When was the Harrowgate lighthouse built? in 1847", markers, DANUBE) == [
        "1847",
        "harrowgate",
    ]
    assert leaked_markers("When was the Danube Commission set up? 1948", markers, DANUBE) == []
    # a marker the source itself contains is not a leak
    assert leaked_markers("Elmsby", markers, "Elmsby is a town.") == []


def test_language_identifier_on_short_questions(identifier: LanguageIdentifier) -> None:
    assert identifier.code("When was the tower completed?") == "en"
    assert identifier.code("Quand la tour fut-elle achevée ?") == "fr"
    assert identifier.code("Wann wurde der Dom vollendet?") == "de"
    assert identifier.code("¿Dónde nació Cervantes?") == "es"
    assert identifier.code("Ayasofya hangi yılda inşa edildi?") == "tr"
    assert identifier.code("Quanti spettatori poteva ospitare il Colosseo?") == "it"
    assert identifier.code("Qual é a altura da estátua?") == "pt"
    assert identifier.code("1889 - 2024") is None
    found = identifier.identify("Der Rhein mündet in die Nordsee.")
    assert found is not None and found.code == "de" and 0.3 <= found.score <= 1.0


def test_score_qa_judges_each_pair(identifier: LanguageIdentifier) -> None:
    markers = frozenset({"harrowgate", "1847"})
    scores = score_qa(
        DANUBE,
        "en",
        [
            "Which cities lie on the banks of the Danube?",
            "When was the Harrowgate lighthouse built?",
            "which cities lie on the banks of the Danube",
            "Wo entspringt die Donau?",
        ],
        ["Vienna, Bratislava, Budapest and Belgrade", "in 1847", "Odessa", "im Schwarzwald"],
        markers=markers,
        example_questions=["When was the Harrowgate lighthouse built?"],
        identifier=identifier,
    )
    assert [s.grounded for s in scores] == [True, False, False, False]
    assert scores[1].leaked == (
        "1847",
        "harrowgate",
        "example question 'When was the Harrowgate lighthouse built?'",
    )
    assert [s.distinct for s in scores] == [True, True, False, True]
    assert [s.language_match for s in scores] == [True, True, True, False]
    assert scores[3].language == "de"


def test_score_qa_ignores_unpaired_items(identifier: LanguageIdentifier) -> None:
    scores = score_qa(
        DANUBE,
        "en",
        ["Q one?", "Q two?"],
        ["Vienna"],
        markers=frozenset(),
        example_questions=[],
        identifier=identifier,
    )
    assert len(scores) == 1


def test_grounded_turns_count_guide_turns_and_missing_ones() -> None:
    turns = ["What is it?", "It flows to the Black Sea.", "And then?", "It flows to Odessa."]
    assert grounded_turns(DANUBE, turns, expected=2) == (1, 2)
    assert grounded_turns(DANUBE, turns[:2], expected=2) == (1, 2)
    assert grounded_turns(DANUBE, [], expected=2) == (0, 2)


def test_copied_fields() -> None:
    record = {
        "name": "Danube Commission",
        "category": "organization",
        "year": 1948,
        "summary": "The Danube flows to the Black Sea.",
    }
    assert copied_fields(DANUBE, record) == (3, 3)
    assert copied_fields(DANUBE, {**record, "name": "Danube Council", "year": 1950}) == (1, 3)
    assert copied_fields(
        "A river with no dates.", {**record, "year": 0, "name": "river", "summary": "A river."}
    ) == (3, 3)
    assert copied_fields(DANUBE, {**record, "year": True}) == (2, 3)
    assert copied_fields(DANUBE, "not a record") == (0, 3)
