"""The combination: components -> one score 0..100 and the acceptance decision.

Every stage tests for one way a result can be bad, so each becomes a *factor* in 0..1 where 1
means "no sign of that problem", and the score is ``100 x`` their product, rounded:

- validity and injection are gates: an invalid result or one that instructs the grader is 0;
- ``topic`` = ramp(relevance, :attr:`Calibration.relevance_low`, ``relevance_high``): off-topic -> 0;
- ``agreement`` = ramp(peer agreement - the task's typical peer agreement, ``outlier_low``,
  ``outlier_high``): an outlier among the results -> 0 (1 when there are fewer than
  :attr:`Calibration.min_peers` other results: no majority to disagree with);
- ``originality`` = 1 - ramp(prompt copy, ``copy_low``, ``copy_high``): a copy of the prompt or
  a source -> 0. A finished *statement* (it ends with ``.``/``!``/``。``..., not with a question
  mark) is held to the looser ramp ``statement_copy_low`` .. ``statement_copy_high``: a short
  answer naturally restates the question's words ("The capital of France is Paris." shares 63 % of
  its 5-grams with "What is the capital of France?"), while a copy asks back or stops mid-way
  (:func:`restates`);
- ``completeness``: 0 for an answer cut off mid-sentence (:func:`finished`);
- ``grounding`` = ramp(share of supported sentences, ``grounded_low``, 1): one unsupported claim in
  a two-sentence answer fails it, one in six does not;
- ``digest``: deterministic workflows (no model call): ramp of the share of identical digests (a
  lone different result among identical ones -> 0). Greedy workflows (temperature 0) get no
  ``digest`` factor: there an identical digest only raises ``agreement`` to at least the same ramp
  (:func:`greedy_agreement`), because greedy output may differ across machines;
- ``quality``: the judge's score, when the judge is on.

Why a product: the failures are independent and each one alone makes a result worthless to the
requester (a fluent answer in the wrong language, a correct one that is a copy), so a weighted mean
would let strength on one axis buy off a failure on another. Why ramps: near a threshold the score
moves smoothly, so validators with slightly different models land near each other and inside the
on-chain tolerance. The default acceptance threshold is 50: a result passes when at most one factor
is borderline (about 0.5) and none has failed; the ramps were set on tasks 1-12 of the labelled set
and checked on the held-out tasks 13-16 (docs/scoring.md has the figures).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from oracle.scoring.model import Components

ACCEPT_THRESHOLD = 50
"""Default acceptance: a result with ``score >= ACCEPT_THRESHOLD`` is accepted."""

_TERMINAL = (*".!?。！？…」』)]}»\"'”’*`", "```")
_HANGING = tuple(",;:-–—(/&")


class Calibration(BaseModel):
    """The ramps' end points (cosines of multilingual-e5-small; shares 0..1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    relevance_low: float = 0.79
    relevance_high: float = 0.83
    outlier_low: float = -0.08
    outlier_high: float = -0.03
    min_peers: int = Field(default=2, ge=1)
    copy_low: float = 0.5
    copy_high: float = 0.7
    statement_copy_low: float = 0.75
    statement_copy_high: float = 0.95
    grounded_low: float = 0.6
    accept_threshold: int = Field(default=ACCEPT_THRESHOLD, ge=0, le=100)


def ramp(value: float, low: float, high: float) -> float:
    """0 at or below ``low``, 1 at or above ``high``, linear between."""
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    return (value - low) / (high - low)


def finished(text: str, *, is_json: bool) -> bool:
    """Whether ``text`` ends like a finished answer.

    JSON that parsed is finished. Prose is cut off when it ends on a hanging character (comma,
    colon, dash, open bracket), or when it ends without sentence-final punctuation and its last
    line is a sentence (at least :data:`LONG_LINE_WORDS` words) rather than a list item or title.
    """
    if is_json:
        return True
    stripped = text.rstrip()
    if not stripped:
        return False
    if stripped.endswith(_HANGING):
        return False
    if stripped.endswith(_TERMINAL):
        return True
    last_line = stripped.splitlines()[-1]
    if any(ord(c) > 0x2E80 for c in last_line[-3:]):  # CJK: no spaces, judge by punctuation alone
        return False
    return len(last_line.split()) < LONG_LINE_WORDS


LONG_LINE_WORDS = 7

_QUESTION_MARKS = ("?", "？", "؟")


def restates(text: str) -> bool:
    """Whether ``text`` is a finished statement (ends with terminal punctuation other than a
    question mark), so its overlap with the prompt may be a restatement rather than a copy."""
    stripped = text.rstrip().rstrip("\"'”’»」』)]*`")
    return bool(stripped) and stripped.endswith(_TERMINAL) and not stripped.endswith(_QUESTION_MARKS)


def originality(copy: float, text: str, cal: Calibration) -> float:
    """1 - ramp(prompt copy): the statement ramp for :func:`restates` texts, the strict one otherwise."""
    if restates(text):
        return 1.0 - ramp(copy, cal.statement_copy_low, cal.statement_copy_high)
    return 1.0 - ramp(copy, cal.copy_low, cal.copy_high)


def factors(c: Components, cal: Calibration) -> dict[str, float]:
    """The 0..1 factors of the module docstring for ``c`` (gates excluded)."""
    out: dict[str, float] = {}
    if c.topic is not None:
        out["topic"] = c.topic
    if c.agreement is not None:
        out["agreement"] = c.agreement
    if c.originality is not None:
        out["originality"] = c.originality
    if c.completeness is not None:
        out["completeness"] = c.completeness
    if c.grounding is not None:
        out["grounding"] = ramp(c.grounding, cal.grounded_low, 1.0) if c.grounding < 1.0 else 1.0
    if c.digest_agreement is not None and c.digest_rule != "greedy":
        out["digest"] = ramp(c.digest_agreement, 0.0, 0.5)
    if c.quality is not None:
        out["quality"] = c.quality
    return out


def greedy_agreement(agreement: float | None, digest_share: float | None) -> float | None:
    """The ``agreement`` factor of a greedy workflow's result: at least ``ramp(digest_share, 0,
    0.5)`` (identical to half of the others or more: 1), never lower than the embedding
    ``agreement``; None stays None (too few peers to judge agreement at all)."""
    if agreement is None or digest_share is None:
        return agreement
    return max(agreement, ramp(digest_share, 0.0, 0.5))


def score(c: Components, cal: Calibration) -> int:
    """The score 0..100 of the module docstring."""
    if not c.valid or c.injection:
        return 0
    product = 1.0
    for value in factors(c, cal).values():
        product *= value
    return round(100 * product)
