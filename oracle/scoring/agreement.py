"""The agreement stage: on topic, in line with the other results, not a copy of the prompt.

Pure functions over embeddings (L2-normalised rows from multilingual-e5-small, so a dot product
is the cosine similarity) and texts; :mod:`oracle.scoring.pipeline` does the embedding.

- *relevance*: the best cosine similarity of the result (as an e5 ``passage``) to the task (as an
  e5 ``query``) or to one of its sources (as passages). e5's similarities are compressed: unrelated
  texts sit near 0.70-0.78, a text on the same subject above 0.80; the calibrated ramp is in
  :mod:`.combine`.
- *peer agreement*: the median similarity of the result to the task's other distinct results
  (identical texts count once and not against each other); an outlier
  is a result whose peer agreement falls well below the task's typical one (median of the
  results' peer agreements). The idea of scoring by agreement with peers is the "output
  agreement" of peer-prediction mechanisms (Miller, Resnick, Zeckhauser 2005), here on embeddings.
- *prompt copy*: how much of the result is a verbatim copy of the task or of one source: for each
  of them, the smaller of (share of the result's character 5-grams found in it) and (share of its
  5-grams found in the result); the largest over task and sources. A result quoting a sentence of
  a long source stays low; a result that is the prompt, or the prompt with a few words changed,
  is near 1. Character n-grams work for scripts without spaces (Japanese).
- *digest agreement* (deterministic and greedy workflows): the share of the other results with the
  same digest (keccak256 of the result's text); :mod:`.combine` says how each rule uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

import numpy as np
import numpy.typing as npt

from oracle.scoring.text import ngrams

Matrix = npt.NDArray[np.float32]


def relevance(results: Matrix, task: Matrix, sources: Matrix) -> list[float]:
    """Per result row: max cosine to the task vector (dim,) and to each source row (m, dim)."""
    if results.shape[0] == 0:
        return []
    scores = results @ task
    if sources.shape[0]:
        scores = np.maximum(scores, (results @ sources.T).max(axis=1))
    return [float(s) for s in scores]


def peer_agreement(
    results: Matrix, members: Sequence[int], keys: Sequence[str] | None = None
) -> list[float | None]:
    """Per result row: median cosine to the other rows listed in ``members`` (None if none).

    ``members``: the rows that take part (the valid results); a row outside it still gets its
    median against the members, so every result is measured against the same peers. ``keys``
    (the texts): identical results count once, and not against each other, so a few nodes
    submitting one copied text cannot make an honest, different result look like an outlier.
    """
    n = results.shape[0]
    sims = results @ results.T
    out: list[float | None] = []
    for i in range(n):
        seen: set[str] = set()
        others: list[float] = []
        for j in members:
            if j == i:
                continue
            if keys is not None:
                if keys[j] == keys[i] or keys[j] in seen:
                    continue
                seen.add(keys[j])
            others.append(float(sims[i, j]))
        out.append(float(np.median(others)) if others else None)
    return out


def copy_share(result: str, originals: Sequence[str]) -> float:
    """The prompt-copy measure of the module docstring, 0..1 (0 when there is nothing to copy)."""
    return copy_share_of(ngrams(result), [ngrams(o) for o in originals])


def copy_share_of(mine: AbstractSet[str], originals: Sequence[AbstractSet[str]]) -> float:
    """:func:`copy_share` from the n-gram sets (:func:`.text.ngrams`) of the result and of each
    original, so a caller scoring several results against one task takes the task's n-grams once."""
    if not mine:
        return 0.0
    best = 0.0
    for theirs in originals:
        if not theirs:
            continue
        common = len(mine & theirs)
        best = max(best, min(common / len(mine), common / len(theirs)))
    return best


def digest_agreement(digests: Sequence[bytes], members: Sequence[int]) -> list[float | None]:
    """Per result: the share of the other members with an identical digest (None if alone)."""
    out: list[float | None] = []
    for i, digest in enumerate(digests):
        others = [j for j in members if j != i]
        out.append(sum(digests[j] == digest for j in others) / len(others) if others else None)
    return out
