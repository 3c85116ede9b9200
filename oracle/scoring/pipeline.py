"""The pipeline: one task's results through every stage, one :class:`ResultScore` per result.

``score_task`` is what the validator daemon and ``synod oracle score`` call. Validity and the
injection check are synchronous and cheap; the embeddings (one batch for the results, the task,
the sources and the sentences to ground) run on the embedder's worker thread; the judge, when
given, is asked once per result that passed every gate (sequentially: the local model runs one
call at a time anyway).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from oracle.scoring import agreement, injection, validity
from oracle.scoring.combine import (
    Calibration,
    factors,
    finished,
    greedy_agreement,
    originality,
    ramp,
    score,
)
from oracle.scoring.grounding import ground
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import Components, ResultScore, ScoreRequest, Validity
from oracle.scoring.quality import Judge
from oracle.scoring.text import ngrams, sentences
from protocol.canonical import keccak256
from protocol.log import get_logger
from workflow.embeddings import Embedder

log = get_logger(__name__)

EMBED_CHARS = 2000
"""Texts are embedded from their first characters (e5 reads 512 tokens at most)."""
MAX_CLAIMS = 40
"""At most this many sentences of a result are grounded (the rest are not looked at)."""

Matrix = npt.NDArray[np.float32]


async def score_task(
    request: ScoreRequest,
    *,
    embedder: Embedder,
    identifier: LanguageIdentifier,
    judge: Judge | None = None,
    calibration: Calibration | None = None,
) -> list[ResultScore]:
    """Score every result of ``request``, in order. Bad results are scored 0 with a logged reason."""
    cal = calibration or Calibration()
    # every stage below that reads only a result's text is computed once per distinct text: the k
    # results of a greedy or exact row are often byte-identical (the same pure function of the same
    # input gives the same answer, so scores are unchanged; tests/scoring/test_pipeline.py checks it)
    checked: dict[str | bytes, Validity] = {}
    checks: list[Validity] = []
    for i, result in enumerate(request.results):
        check = checked.get(result)
        if check is None:
            check = validity.check(
                result, schema=request.output_schema, language=request.language, identifier=identifier
            )
            checked[result] = check
        if not check.valid:
            log.warning("result_invalid", index=i, reason=check.reason)
        checks.append(check)
    detected: dict[str, injection.InjectionFinding] = {}
    clean = injection.InjectionFinding(found=False)
    findings: list[injection.InjectionFinding] = []
    for c in checks:
        if not c.valid:
            findings.append(clean)
            continue
        if c.text not in detected:
            detected[c.text] = injection.detect(c.text)
        findings.append(detected[c.text])
    for i, finding in enumerate(findings):
        if finding.found:
            log.warning("result_injection", index=i, reason=finding.reason)
    live = [i for i, c in enumerate(checks) if c.valid and not findings[i].found]

    texts = [checks[i].text for i in live]
    split = {t: sentences(t)[:MAX_CLAIMS] for t in dict.fromkeys(texts)} if request.sources else {}
    claims = [split[t] for t in texts] if request.sources else []
    source_sentences = [s for src in request.sources for s in sentences(src)] if texts else []
    # one batch for every passage (deduplicated): the embedder's cost is per call and per text
    wanted = [*texts, *request.sources, *source_sentences, *(c for cs in claims for c in cs)]
    unique = list(dict.fromkeys(t[:EMBED_CHARS] for t in wanted))
    matrix = await embedder.embed_passages(unique) if unique else np.zeros((0, 1), dtype=np.float32)
    row_of = {t: r for r, t in enumerate(unique)}

    def rows(items: list[str]) -> Matrix:
        if not items:
            return np.zeros((0, matrix.shape[1]), dtype=np.float32)
        return matrix[[row_of[t[:EMBED_CHARS]] for t in items]]

    result_vectors = rows(texts)
    task_vector = await embedder.embed_query(request.task[:EMBED_CHARS])
    relevance = agreement.relevance(result_vectors, task_vector, rows(list(request.sources)))
    peers = agreement.peer_agreement(result_vectors, range(len(live)), texts)
    known = [p for p in peers if p is not None]
    typical = float(np.median(known)) if known else None
    digests: list[float | None] = [None] * len(live)
    rule: Literal["exact", "greedy"] | None = (
        "exact" if request.deterministic else "greedy" if request.greedy else None
    )
    if rule is not None:
        # the result's own text (for JSON, ``checks[i].text`` is only its string values)
        raw = [(validity.decode(request.results[i])[0] or "").encode("utf-8") for i in live]
        hashed = {r: keccak256(r) for r in dict.fromkeys(raw)}
        digests = agreement.digest_agreement([hashed[r] for r in raw], range(len(live)))

    grounded: dict[int, tuple[float, tuple[str, ...]]] = {}
    if claims:
        source_sentence_vectors = rows(source_sentences)
        by_text: dict[tuple[str, str | None], tuple[float, tuple[str, ...]]] = {}
        for k, cs in enumerate(claims):
            language = request.language or checks[live[k]].language
            key = (texts[k], language)
            if key not in by_text:
                found = ground(
                    cs,
                    rows(cs),
                    source_sentence_vectors,
                    sources=request.sources,
                    task=request.task,
                    language=language,
                )
                by_text[key] = (found.share, found.unsupported)
            grounded[live[k]] = by_text[key]

    out: list[ResultScore] = []
    position = {i: k for k, i in enumerate(live)}
    originals: list[set[str]] | None = None  # the task's and sources' n-grams, once
    copies: dict[str, float] = {}
    for i, check in enumerate(checks):
        if i not in position:
            components = Components(
                valid=check.valid,
                invalid_reason=check.reason,
                injection=findings[i].found,
                injection_reason=findings[i].reason,
                language=check.language,
            )
        else:
            k = position[i]
            peer = peers[k]
            enough_peers = len(live) - 1 >= cal.min_peers
            if check.text not in copies:
                if originals is None:
                    originals = [ngrams(t) for t in (request.task, *request.sources)]
                copies[check.text] = agreement.copy_share_of(ngrams(check.text), originals)
            copy = copies[check.text]
            share, unsupported = grounded.get(i, (None, ()))
            verdict = await judge.grade(request.task, check.text) if judge is not None else None
            components = Components(
                valid=True,
                language=check.language,
                relevance=round(relevance[k], 4),
                peer_agreement=None if peer is None else round(peer, 4),
                prompt_copy=round(copy, 4),
                digest_agreement=digests[k],
                digest_rule=None if digests[k] is None else rule,
                completeness=1.0 if finished(check.text, is_json=check.is_json) else 0.0,
                grounding=None if share is None else round(share, 4),
                unsupported=unsupported,
                quality=None if verdict is None else verdict.score,
                quality_reason=None if verdict is None else verdict.reason,
                injection=bool(verdict and verdict.injection),
                injection_reason=verdict.reason if verdict and verdict.injection else None,
                topic=round(ramp(relevance[k], cal.relevance_low, cal.relevance_high), 4),
                agreement=_agreement(
                    round(ramp(peer - typical, cal.outlier_low, cal.outlier_high), 4)
                    if peer is not None and typical is not None and enough_peers
                    else None,
                    digests[k] if rule == "greedy" else None,
                ),
                originality=round(originality(copy, check.text, cal), 4),
            )
        value = score(components, cal)
        out.append(
            ResultScore(index=i, score=value, accepted=value >= cal.accept_threshold, components=components)
        )
        log.debug("result_scored", index=i, score=value, factors=factors(components, cal))
    return out


def _agreement(embedding: float | None, digest_share: float | None) -> float | None:
    """The ``agreement`` component: the embedding one, raised by identical digests on greedy tasks."""
    raised = greedy_agreement(embedding, digest_share)
    return None if raised is None else round(raised, 4)
