"""The grounding check: is a generated text supported by its source, word for word?

A text is *grounded* in a source when

1. every number in it occurs in the source (numbers compared canonically, see
   :func:`workflow.eval.text.numbers`: ``2,850`` = ``2.850`` = ``2850``);
2. every name in it (a word starting with an upper-case letter, other than the first word of a
   sentence) occurs in the source, case-insensitively, up to a short inflection
   (:func:`workflow.eval.text.same_word`);
3. at least ``min_content_share`` (default 0.75: "most") of its content words (4+ letters) occur
   in the source the same way;

(with ``skip_first``, for questions, the text's first word is exempt from 2 and 3: it is
usually the question word, ``When``, ``Wann``, ``Combien``; ``check_names=False`` drops rule 2);
4. it has at least one word or number;
5. with ``check_negation``, every negation word in it (:data:`NEGATIONS`: ``not``, ``never``,
   ``nicht``, ``pas``, ...) occurs in the source: ``It is not active`` from ``It is active``
   has every content word of its source, so rules 1-3 pass it although it says the opposite.

It is a check of support, not of truth or relevance: an answer copied from the wrong sentence is
grounded. It errs on the strict side for paraphrases (a synonym is a missing content word) and on
the lenient side for recombinations of the source's own words. The README reports how it agrees
with a reading by hand.

A *leak* is a name or number of a prompt's few-shot examples that turns up in the output although
the source does not contain it: the model copied its examples instead of reading the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from workflow.eval.text import CONTENT_WORD_LETTERS, fold, numbers, occurs, words

MIN_CONTENT_SHARE = 0.75

NEGATIONS = frozenset(
    {
        *("not", "no", "never", "none", "nor", "isn", "wasn", "doesn", "didn", "aren", "weren", "hasn"),
        *("haven", "cannot", "nicht", "kein", "keine", "keinen", "nie", "niemals", "pas", "jamais", "aucun"),
        *("aucune", "nunca", "jamás", "ningún", "ninguna", "non", "mai", "nessun", "nessuna", "não", "nem"),
        *("nenhum", "nenhuma", "niet", "geen", "nooit", "değil", "yok"),
    }
)
"""Negation words (folded; ``isn`` of ``isn't``, as :func:`workflow.eval.text.words` splits it)
that rule 5 requires the source to hold too (the check is opt-in: a Spanish or Italian question
may well start with ``No``)."""


class Grounding(BaseModel):
    """The outcome of :func:`grounding`; ``reason`` says why not when ``grounded`` is false."""

    model_config = ConfigDict(frozen=True)

    grounded: bool
    missing_numbers: tuple[str, ...] = ()
    missing_names: tuple[str, ...] = ()
    content_share: float = 1.0
    reason: str | None = None


def grounding(
    text: str,
    source: str,
    *,
    min_content_share: float = MIN_CONTENT_SHARE,
    skip_first: bool = False,
    check_names: bool = True,
    check_negation: bool = False,
) -> Grounding:
    """Check ``text`` against ``source`` by the rules of the module docstring (rule 5 with
    ``check_negation``)."""
    source_numbers = set(numbers(source))
    source_words = {fold(w) for w in words(source)}
    missing_numbers = tuple(n for n in numbers(text) if n not in source_numbers)
    tokens = words(text)[1:] if skip_first else words(text)
    initial = _sentence_initial(text)
    missing_names = tuple(
        w
        for w in tokens
        if check_names and w[0].isupper() and w not in initial and not occurs(fold(w), source_words)
    )
    content = [fold(w) for w in tokens if len(w) >= CONTENT_WORD_LETTERS]
    found = sum(1 for w in content if occurs(w, source_words))
    share = found / len(content) if content else 1.0
    if not words(text) and not numbers(text):
        return Grounding(grounded=False, reason="the text has no word or number")
    added = [w for w in words(text) if fold(w) in NEGATIONS and fold(w) not in source_words]
    reason = None
    if check_negation and added:
        reason = f"negation {added[0]!r} is not in the source"
    elif missing_numbers:
        reason = f"number {missing_numbers[0]} is not in the source"
    elif missing_names:
        reason = f"name {missing_names[0]!r} is not in the source"
    elif share < min_content_share:
        reason = f"only {found} of {len(content)} content words occur in the source"
    return Grounding(
        grounded=reason is None,
        missing_numbers=missing_numbers,
        missing_names=missing_names,
        content_share=round(share, 3),
        reason=reason,
    )


_LABEL = re.compile(r"^\s*[^\W\d_][\w ]{0,30}:\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def _sentence_initial(text: str) -> set[str]:
    """The first word of each sentence of ``text`` (capitalised by spelling, not as a name)."""
    return {found[0] for piece in _SENTENCE_END.split(text) if (found := words(piece))}


def example_markers(example_texts: Iterable[str]) -> frozenset[str]:
    """The folded names and canonical numbers of few-shot example texts (what a copy would show).

    Line labels (``Question:``) and the first word of each sentence are not names: ``When`` in
    ``Question: When was ...`` is not a marker.
    """
    found: set[str] = set()
    for text in example_texts:
        found.update(numbers(text))
        for line in text.splitlines():
            for sentence in _SENTENCE_END.split(_LABEL.sub("", line)):
                tokens = words(sentence)
                found.update(fold(w) for w in tokens[1:] if w[0].isupper())
    return frozenset(found)


def leaked_markers(text: str, markers: frozenset[str], source: str) -> list[str]:
    """The example markers that occur in ``text`` but not in ``source`` (empty: no leak)."""
    source_tokens = {fold(w) for w in words(source)} | set(numbers(source))
    text_tokens = [fold(w) for w in words(text)] + numbers(text)
    return sorted({t for t in text_tokens if t in markers and t not in source_tokens})
