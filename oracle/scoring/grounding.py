"""The grounding stage: are the result's claims supported by the task's sources?

Method (per sentence of the result; a sentence is a claim):

1. every number in the sentence occurs among the sources' numbers (canonical form, so
   ``2,850`` = ``2850``; a number that also occurs in the task itself counts as given);
2. every name (capitalised word not starting the sentence) occurs in the sources or the task, up
   to a short inflection (:func:`.text.same_word`); skipped for German, where every noun is
   capitalised, and for scripts without case;
3. the sentence is close in meaning to some sentence of the sources: the best cosine similarity
   of its e5 embedding to the source sentences' is at least :data:`MIN_SENTENCE_SIMILARITY`.

The score is the share of sentences that pass all three; the first failures are kept in
``unsupported`` for the explanation.

Limits: it checks support, not truth; an answer copied from the wrong sentence is supported.
Rule 3 cannot tell a claim from its negation or a swapped relation ("A founded B" vs "B founded
A"): embeddings of the two are nearly identical; rules 1 and 2 catch false numbers, dates and
names, which are most false claims in practice. Paraphrases with new capitalised words (titles,
adjectives of nationality) can fail rule 2. Idea: sentence-level entailment by retrieval and
similarity, as in the SummaC family of factual-consistency checks (Laban et al., 2022), without
an NLI model (none ships offline here).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from oracle.scoring.text import names, numbers, same_word, words

Matrix = npt.NDArray[np.float32]

MIN_SENTENCE_SIMILARITY = 0.80
"""A claim is close in meaning to a source sentence at this cosine (e5, passage-passage)."""
NO_CASE_LANGUAGES = frozenset({"de", "ja", "zh", "ko", "th", "ar", "he", "hi"})
"""Languages in which a capital letter does not mark a name (German nouns) or does not exist."""


class Grounded(BaseModel):
    """The grounding of one result: ``share`` of supported sentences and what was not."""

    model_config = ConfigDict(frozen=True)

    share: float
    unsupported: tuple[str, ...] = ()


def ground(
    claims: Sequence[str],
    claim_vectors: Matrix,
    source_vectors: Matrix,
    *,
    sources: Sequence[str],
    task: str,
    language: str | None,
) -> Grounded:
    """Ground the sentences ``claims`` (rows of ``claim_vectors``) in the source sentences' rows."""
    if not claims:
        return Grounded(share=0.0, unsupported=("no sentence",))
    given = "\n".join([*sources, task])
    known_numbers = set(numbers(given))
    known_words = {w.casefold() for w in words(given)}
    check_names = language not in NO_CASE_LANGUAGES
    best = (
        (claim_vectors @ source_vectors.T).max(axis=1)
        if source_vectors.shape[0]
        else np.zeros(len(claims), dtype=np.float32)
    )
    supported = 0
    problems: list[str] = []
    for i, claim in enumerate(claims):
        missing = [n for n in numbers(claim) if n not in known_numbers]
        if missing:
            problems.append(f"number {missing[0]} not in the sources")
            continue
        if check_names:
            unknown = [n for n in names(claim) if not any(same_word(n, w) for w in known_words)]
            if unknown:
                problems.append(f"name {unknown[0]!r} not in the sources")
                continue
        if float(best[i]) < MIN_SENTENCE_SIMILARITY:
            problems.append(f"sentence {claim[:60]!r} not close to any source sentence")
            continue
        supported += 1
    return Grounded(share=supported / len(claims), unsupported=tuple(problems[:5]))
