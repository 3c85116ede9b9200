# ruff: noqa: RUF001, RUF002 - multilingual text: letters and marks of other scripts are meant
"""Words, numbers, names and sentences of a text, the same way for every check.

Language-agnostic on purpose (the data workflows run on documents in any language): a *word* is a
run of letters (apostrophes and hyphens split words, so ``İstanbul'daki`` gives ``İstanbul`` and
``daki``); a *name* is a word that starts with an upper-case letter; a *number* is a run of digits
with its group and decimal separators, normalised so that ``2,850``, ``2.850`` and ``2 850`` are all
``2850`` and ``0,8`` is ``0.8``. Sentences come from ``sentencex`` (Wikimedia's rule-based
segmenter, ~300 languages), with one repair: it ends a sentence after an ordinal such as German
``16. Jahrhundert`` or Turkish ``16. yüzyılda``; a piece ending in a one- or two-digit number and a
dot is joined to the next when that starts with a lower-case letter, or, in languages that write
ordinals so (German, Turkish, the Nordic and Central European ones), with any letter.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_WORD = re.compile(r"[^\W\d_]+")
_NUMBER = re.compile(r"\d+(?:[.,\u00a0\u202f ]\d{3}(?!\d))*(?:[.,]\d+)?")
_GROUPED = re.compile(r"^\d{1,3}(?:[.,\u00a0\u202f ]\d{3})+$")
_ORDINAL_END = re.compile(r"(?:^|\s)\d{1,2}\.\s*$")
_SPACE = re.compile(r"\s+")
ORDINAL_DOT_LANGUAGES = frozenset(
    {
        "de",
        "tr",
        "da",
        "no",
        "nb",
        "nn",
        "is",
        "fi",
        "et",
        "lv",
        "lt",
        "hu",
        "cs",
        "sk",
        "pl",
        "sl",
        "hr",
        "sr",
        "bs",
    }
)
_EDGE_PUNCT = "\"'`´‘’“”«»„‚.,;:!?¡¿()[]{}<>-–—…·•*/\\|"

CONTENT_WORD_LETTERS = 4
"""A word of at least this many letters counts as a content word (a language-agnostic stand-in
for a stop-word list: short words are mostly articles, pronouns and prepositions)."""


def words(text: str) -> list[str]:
    """The words of ``text`` in order, as written."""
    return _WORD.findall(text)


def fold(word: str) -> str:
    """Case-folded and NFC-normalised, for comparison (``Straße`` and ``STRASSE`` fold alike)."""
    return unicodedata.normalize("NFC", word).casefold()


def content_words(text: str) -> list[str]:
    """The folded words of at least :data:`CONTENT_WORD_LETTERS` letters."""
    return [fold(w) for w in words(text) if len(w) >= CONTENT_WORD_LETTERS]


def names(text: str) -> list[str]:
    """Words that start with an upper-case letter (proper names; in German, every noun too)."""
    return [w for w in words(text) if w[0].isupper()]


def _canonical_number(token: str) -> str:
    if _GROUPED.match(token):
        return re.sub(r"\D", "", token)
    parts = re.split(r"[.,\u00a0\u202f ]", token)
    if len(parts) == 1:
        return token
    return "".join(parts[:-1]) + "." + parts[-1]


def numbers(text: str) -> list[str]:
    """The numbers of ``text``, canonical: digits, and a ``.`` before decimals (``1,642`` -> ``1642``)."""
    return [_canonical_number(m.group(0)) for m in _NUMBER.finditer(text)]


def same_word(word: str, other: str) -> bool:
    """Whether two folded words are the same word up to a short inflection.

    Equal, or both at least five letters long and sharing a prefix at least as long as the shorter
    one minus two letters (and at least four letters): ``kilometre``/``kilometres``,
    ``Rhein``/``Rheins``, ``erupted``/``eruption``; not ``Paris``/``Parma``.
    """
    if word == other:
        return True
    shorter = min(len(word), len(other))
    if shorter < 5:
        return False
    need = max(4, shorter - 2)
    return word[:need] == other[:need]


def occurs(word: str, vocabulary: Iterable[str]) -> bool:
    """Whether the folded ``word`` is in ``vocabulary`` (folded words), up to :func:`same_word`."""
    return any(same_word(word, v) for v in vocabulary)


def normalise(text: str) -> str:
    """For comparing whole phrases: folded, spaces collapsed, punctuation trimmed at both ends."""
    return _SPACE.sub(" ", fold(text)).strip().strip(_EDGE_PUNCT).strip()


def sentences(text: str, language: str | None) -> list[str]:
    """The sentences of ``text``, trimmed, in order (``language``: an ISO 639-1 code, or None).

    An unknown or missing language falls back to sentencex's generic rules.
    """
    from sentencex import segment

    pieces = [p.strip() for p in segment(language or "en", text)]
    ordinal_dots = language in ORDINAL_DOT_LANGUAGES
    out: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        follows = piece[0].islower() or (ordinal_dots and piece[0].isalpha())
        if out and _ORDINAL_END.search(out[-1]) and follows:
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def locate(phrase: str, source: str) -> str | None:
    """The text of ``source`` that ``phrase`` copies word for word, as written in ``source``.

    Words are compared folded, and up to a short inflection (:func:`same_word`: ``1.230
    Kilometer`` finds ``1.230 Kilometern``; digit runs must be equal); punctuation and spacing
    between them may differ, and the phrase's leading and trailing punctuation is ignored. The
    match starts and ends on word boundaries of ``source``; an exact match wins over an inflected
    one. None if the phrase has no word or is not a run of the source's words.
    """
    tokens = [fold(w) for w in _TOKEN.findall(phrase)]
    if not tokens:
        return None
    spans = [(m.start(), m.end(), fold(m.group(0))) for m in _TOKEN.finditer(source)]
    n = len(tokens)
    for equal in (str.__eq__, _same_token):
        for i in range(len(spans) - n + 1):
            if all(equal(spans[i + k][2], tokens[k]) for k in range(n)):
                return source[spans[i][0] : spans[i + n - 1][1]]
    return None


def _same_token(word: str, other: str) -> bool:
    if word.isdigit() or other.isdigit():
        return word == other
    return same_word(word, other)


_TOKEN = re.compile(r"[^\W_]+")
"""Words and digit runs (for :func:`locate`, where numbers count as words)."""
