"""Sentences, numbers, names and character n-grams, the same way for every stage.

Language-agnostic on purpose (results come in any language): NFKC first (so full-width digits
are digits), sentences split after ``.!?`` + space, after ``。！？``, and at line ends; a *number*
is a run of digits with its group and decimal separators, canonical (``2,850`` = ``2.850`` =
``2850``; ``0,8`` = ``0.8``); a *name* is a capitalised word that does not start a sentence.
The conventions follow :mod:`workflow.eval.text`; the two were written in parallel and should be
folded into one (the oracle may import it).
"""

from __future__ import annotations

import re
import unicodedata

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？])|\n+")
_WORD = re.compile(r"[^\W\d_]+")
_NUMBER = re.compile(r"\d+(?:[.,\u00a0\u202f ]\d{3}(?!\d))*(?:[.,]\d+)?")
_GROUPED = re.compile(r"^\d{1,3}(?:[.,\u00a0\u202f ]\d{3})+$")
_SPACE = re.compile(r"\s+")


def nfkc(text: str) -> str:
    """NFKC-normalised text (full-width forms folded, ligatures split)."""
    return unicodedata.normalize("NFKC", text)


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, trimmed, empty ones dropped, in order."""
    return [s.strip() for s in _SENTENCE.split(nfkc(text)) if s and s.strip()]


def words(text: str) -> list[str]:
    """The words (runs of letters) of ``text``, as written."""
    return _WORD.findall(text)


def _canonical_number(token: str) -> str:
    if _GROUPED.match(token):
        return re.sub(r"\D", "", token)
    parts = re.split(r"[.,\u00a0\u202f ]", token)
    return token if len(parts) == 1 else "".join(parts[:-1]) + "." + parts[-1]


def numbers(text: str) -> list[str]:
    """Canonical numbers of ``text`` in order (``1,642`` -> ``1642``, ``0,8`` -> ``0.8``)."""
    return [_canonical_number(m.group(0)) for m in _NUMBER.finditer(nfkc(text))]


def names(sentence: str) -> list[str]:
    """Capitalised words of one sentence other than its first word (candidate proper names)."""
    found = words(sentence)
    return [w for w in found[1:] if w[0].isupper() and len(w) >= 2]


def same_word(word: str, other: str) -> bool:
    """Folded words equal, or sharing a prefix of all but two letters (min. 4): an inflection."""
    a, b = word.casefold(), other.casefold()
    if a == b:
        return True
    shorter = min(len(a), len(b))
    if shorter < 5:
        return False
    need = max(4, shorter - 2)
    return a[:need] == b[:need]


def flat(text: str) -> str:
    """Case-folded, NFKC, white space collapsed: the form n-grams are taken from."""
    return _SPACE.sub(" ", nfkc(text).casefold()).strip()


def ngrams(text: str, n: int = 5) -> set[str]:
    """Character ``n``-grams of :func:`flat` text (script-agnostic: works without spaces too)."""
    f = flat(text)
    if len(f) < n:
        return {f} if f else set()
    return {f[i : i + n] for i in range(len(f) - n + 1)}
