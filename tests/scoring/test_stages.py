"""The pure stages on constructed inputs: agreement, grounding, the combination, text helpers."""

from __future__ import annotations

import numpy as np
import pytest

from oracle.scoring import agreement
from oracle.scoring.combine import Calibration, finished, originality, ramp, restates, score
from oracle.scoring.grounding import MIN_SENTENCE_SIMILARITY, ground
from oracle.scoring.model import Components
from oracle.scoring.text import numbers, sentences

pytestmark = pytest.mark.unit


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def with_cosine(c: float) -> np.ndarray:
    """A unit vector whose cosine to (1, 0) is ``c``."""
    return np.asarray([c, np.sqrt(1 - c * c)], dtype=np.float32)


def test_copy_share_of_a_verbatim_copy_is_one_and_of_unrelated_text_zero() -> None:
    prompt = "Explain in two or three sentences why the sky is blue."
    assert agreement.copy_share(prompt, [prompt]) == 1.0
    assert (
        agreement.copy_share("  EXPLAIN in two or three   sentences why the sky is blue. ", [prompt]) == 1.0
    )
    assert agreement.copy_share("Bananas are yellow fruit rich in potassium.", [prompt]) == 0.0
    assert agreement.copy_share("anything", []) == 0.0


def test_quoting_one_sentence_of_a_long_source_is_not_a_copy() -> None:
    source = (
        "The Rhine rises in the Swiss Alps and flows north. It crosses Lake Constance, forms part of the "
        "border between Germany and France, and passes Cologne and Duisburg. In the Netherlands it splits "
        "into several branches before reaching the North Sea. Barges carry coal, grain and containers "
        "along it, which makes it one of the busiest waterways in the world."
    )
    quote = "It crosses Lake Constance."
    assert agreement.copy_share(quote, [source]) < 0.1
    assert agreement.copy_share(source, [source]) == 1.0


def test_copy_share_works_without_spaces() -> None:
    prompt = "日本の四季について、短く説明してください。"
    assert agreement.copy_share(prompt, [prompt]) == 1.0
    assert agreement.copy_share("春は桜が咲き、夏は暑いです。", [prompt]) == 0.0


def test_relevance_takes_the_best_of_task_and_sources() -> None:
    results = np.stack([with_cosine(0.5), with_cosine(0.9)])
    task = np.asarray([1.0, 0.0], dtype=np.float32)
    assert agreement.relevance(results, task, np.zeros((0, 2), dtype=np.float32)) == pytest.approx([0.5, 0.9])
    source = np.stack([with_cosine(0.5)])  # identical to result 0
    assert agreement.relevance(results, task, source)[0] == pytest.approx(1.0)


def test_peer_agreement_is_the_median_over_the_members_only() -> None:
    a, b, c = unit(1, 0, 0), unit(1, 0.1, 0), unit(0, 0, 1)
    peers = agreement.peer_agreement(np.stack([a, b, c]), [0, 1])
    assert peers[0] == pytest.approx(float(a @ b))
    assert peers[2] == pytest.approx(float(np.median([c @ a, c @ b])))
    assert agreement.peer_agreement(np.stack([a]), [0]) == [None]


def test_identical_results_count_once_and_not_against_each_other() -> None:
    a, b = unit(1, 0, 0), unit(1, 0.5, 0)
    peers = agreement.peer_agreement(np.stack([a, a, a, b]), range(4), ["x", "x", "x", "y"])
    assert peers == pytest.approx([float(a @ b)] * 4)
    assert agreement.peer_agreement(np.stack([a, a]), range(2), ["x", "x"]) == [None, None]


def test_digest_agreement() -> None:
    d = [b"x", b"x", b"x", b"y"]
    assert agreement.digest_agreement(d, range(4)) == [2 / 3, 2 / 3, 2 / 3, 0.0]
    assert agreement.digest_agreement([b"x"], [0]) == [None]


SOURCE = "Marie Curie won the Nobel Prize in Physics in 1903. She won the Nobel Prize in Chemistry in 1911."


def _ground(
    claims: list[str], cosines: list[float], language: str | None = "en"
) -> tuple[float, tuple[str, ...]]:
    vectors = np.stack([with_cosine(c) for c in cosines])
    source_vectors = np.asarray([[1.0, 0.0]], dtype=np.float32)
    found = ground(claims, vectors, source_vectors, sources=[SOURCE], task="Which prizes?", language=language)
    return found.share, found.unsupported


def test_grounding_numbers_names_and_similarity() -> None:
    assert _ground(["She won in 1903 and 1911."], [0.95]) == (1.0, ())
    assert _ground(["She won the Chemistry prize in 1,911."], [0.95]) == (1.0, ())  # canonical 1911
    share, why = _ground(["She won in 1921."], [0.95])
    assert (share, why) == (0.0, ("number 1921 not in the sources",))
    share, why = _ground(["She shared it with Albert Einstein."], [0.95])
    assert why == ("name 'Albert' not in the sources",)
    assert _ground(["She won Physics prizes."], [0.95]) == (1.0, ())  # inflection of a source name


def test_grounding_similarity_threshold_is_inclusive() -> None:
    at = MIN_SENTENCE_SIMILARITY
    assert _ground(["She won twice."], [at + 1e-4])[0] == 1.0
    share, why = _ground(["She won twice."], [at - 0.01])
    assert share == 0.0 and why[0].startswith("sentence 'She won twice.'")


def test_grounding_share_and_german_names() -> None:
    share, _ = _ground(["She won in 1903.", "She won in 1999."], [0.95, 0.95])
    assert share == 0.5
    # German capitalises nouns: names are not checked, numbers still are
    assert _ground(["Sie gewann den Preis."], [0.95], language="de") == (1.0, ())
    assert _ground(["Sie gewann den Preis."], [0.95], language="en")[0] == 0.0


def test_grounding_of_nothing_is_zero() -> None:
    found = ground(
        [],
        np.zeros((0, 2), dtype=np.float32),
        np.zeros((1, 2), dtype=np.float32),
        sources=[SOURCE],
        task="t",
        language="en",
    )
    assert (found.share, found.unsupported) == (0.0, ("no sentence",))


def test_numbers_and_sentences() -> None:
    assert numbers("1.230 km, 2,850 m, 0,8 and 1903; ３７７６") == ["1230", "2850", "0.8", "1903", "3776"]
    assert sentences("One. Two! 三つ。四つ？\nFive") == ["One.", "Two!", "三つ。", "四つ?", "Five"]  # NFKC


def test_ramp_ends_are_exact() -> None:
    assert ramp(0.79, 0.79, 0.83) == 0.0
    assert ramp(0.83, 0.79, 0.83) == 1.0
    assert ramp(0.81, 0.79, 0.83) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("text", "is_json", "expected"),
    [
        ("The sky is blue.", False, True),
        ("日本には四つの季節があります。", False, True),
        ("1. Close the tap\n2. Shorter showers\n3. Full loads only", False, True),
        ("The sky looks blue because the molecules in the air scatter", False, False),
        ("日本には四つの季節があり、春には桜が咲いて、夏は", False, False),
        ("A list of things:", False, False),
        ("Tips, such as", False, True),  # the rule's limit: a short unpunctuated line reads as a list item
        ('{"a": 1}', True, True),
    ],
)
def test_finished(text: str, is_json: bool, expected: bool) -> None:
    assert finished(text, is_json=is_json) is expected


def test_score_gates_and_product() -> None:
    cal = Calibration()
    perfect = Components(valid=True, topic=1.0, agreement=1.0, originality=1.0, completeness=1.0)
    assert score(perfect, cal) == 100
    assert score(perfect.model_copy(update={"valid": False}), cal) == 0
    assert score(perfect.model_copy(update={"injection": True}), cal) == 0
    assert score(perfect.model_copy(update={"topic": 0.5, "originality": 0.5}), cal) == 25
    # grounding: full support keeps 1; the ramp starts at grounded_low
    assert score(perfect.model_copy(update={"grounding": 1.0}), cal) == 100
    assert score(perfect.model_copy(update={"grounding": cal.grounded_low}), cal) == 0
    assert score(perfect.model_copy(update={"grounding": 0.8}), cal) == 50
    assert score(perfect.model_copy(update={"quality": 0.7}), cal) == 70
    assert score(perfect.model_copy(update={"digest_agreement": 0.0}), cal) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The capital of France is Paris.", True),
        ("Paris!", True),
        ('"Paris."', True),
        ("日本の首都は東京です。", True),
        ("What is the capital city of France?", False),
        ("Qu'est-ce que c'est ？", False),
        ("The capital of France is", False),
        ("", False),
    ],
)
def test_restates_only_finished_statements(text: str, expected: bool) -> None:
    assert restates(text) is expected


def test_a_statement_may_restate_the_question_a_question_may_not() -> None:
    cal = Calibration()
    # the same overlap: a restating answer keeps full originality, a question asking back loses it
    assert originality(0.63, "The capital of France is Paris.", cal) == 1.0
    assert originality(0.63, "What is the capital city of France?", cal) == pytest.approx(0.35)
    # the statement ramp's ends are exact
    assert originality(cal.statement_copy_low, "A statement.", cal) == 1.0
    assert originality(cal.statement_copy_high, "A statement.", cal) == 0.0
    assert originality(0.85, "A statement.", cal) == pytest.approx(0.5)
    assert originality(1.0, "A verbatim copy of a statement prompt.", cal) == 0.0
