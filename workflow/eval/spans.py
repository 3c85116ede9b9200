# ruff: noqa: RUF002, RUF003 - multilingual text: letters and marks of other scripts are meant
"""Answer candidates: spans of a document that make good answers, chosen without a model.

A small model invents numbers and facts when asked to answer; it does much better when the answer
is given and it only has to ask the question. So the answer is picked here, deterministically, as
a span of one sentence, of one of these kinds (best first within a sentence):

- ``date``: a day, a month word and a year (``1 de novembro de 1755``, ``14. Juli 1789``,
  ``July 14, 1789``);
- ``quantity``: a number and the word after it (its unit or what it counts: ``2,850
  kilometres``, ``2.962 Metern``, ``300 species``); a number followed by no word stands alone;
- ``year``: a four-digit number from 1000 to 2099 written without a group separator, alone
  (``in 1707``; ``1453 yılında`` gives ``1453``): ``1,037 inhabitants`` is a quantity, and so are
  ``1500 metres`` and ``$1500`` (a unit after it or a currency sign before it, :func:`measured`),
  but an unseparated ``1037 inhabitants`` is taken for a year (``In 1990 people left``);
- ``names``: a list of two or more names (``Vienna, Bratislava, Budapest and Belgrade``);
- ``name``: a run of capitalised words, possibly joined by a short lower-case particle (``Isthmus
  of Panama``, ``Gerbier de Jonc``). A sentence's first word counts only when the document also
  writes it capitalised in mid-sentence (``Mount`` of ``Mount Fuji``, not ``The``). In German every
  noun is capitalised, so there a single word counts only after a lower-case word that is not an
  article (``in Ulm``, ``bei Schaffhausen``) or a comma; common nouns still get through (``nach
  Hause``), which is one reason names come after numbers.

Candidates are ordered round-robin over the sentences (the best of each sentence, then the second
best of each, ...), so the first three come from three sentences when the document has them, and
a repeated answer is dropped. Sentences over ``max_words`` words are skipped.

The idea (answer first, then a question for it) is the answer-aware question generation of
e.g. Du & Cardie, "Harvesting Paragraph-level Question-Answer Pairs from Wikipedia" (2018), where
candidate answers are spans chosen by a tagger; here the tagger is a handful of rules.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from workflow.eval.text import ORDINAL_DOT_LANGUAGES, normalise, sentences

Kind = Literal["date", "quantity", "year", "names", "name"]

_KIND_RANK: dict[str, int] = {"date": 0, "quantity": 1, "year": 2, "names": 3, "name": 4}

_NUM = r"\d+(?:[.,\u00a0\u202f ]\d{3}(?!\d))*(?:[.,]\d+)?"
_LETTERS = r"[^\W\d_]+"
_DATE = re.compile(
    rf"(?<![\w.,])(?:\d{{1,2}}\.?\s+(?:(?:de|di|del)\s+)?{_LETTERS}(?:\s+(?:de|del))?\s+\d{{4}}"
    rf"|{_LETTERS}\s+\d{{1,2}},\s+\d{{4}})(?!\d)"
)
_QUANTITY = re.compile(rf"(?<![\w.,]){_NUM}(?:\s+{_LETTERS})?")
_YEAR = re.compile(r"^(?:1\d{3}|20\d{2})$")
_TOKEN = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*|\S")
_PARTICLES = frozenset(
    {"of", "de", "del", "della", "di", "da", "do", "dos", "das", "von", "van", "der", "du", "des", "la", "le"}
)
_GERMAN_ARTICLES = frozenset(
    {"der", "die", "das", "den", "dem", "des", "ein", "eine", "einer", "eines", "einem", "einen"}
    | {"im", "am", "zum", "zur", "vom", "beim", "ins", "seine", "seinen", "seiner", "ihre", "ihren"}
)
_LIST_JOINERS = frozenset({"and", "et", "und", "y", "e", "ve", "en", "i", "och", "og", "a"})
_NOT_NAMES = frozenset(
    {
        *("the", "a", "an", "it", "its", "this", "that", "these", "those", "there", "he", "she", "they"),
        *("we", "you", "his", "her", "their", "our", "le", "la", "les", "un", "une", "il", "elle", "ils"),
        *("ce", "cette", "der", "die", "das", "ein", "eine", "es", "er", "sie", "el", "los", "las", "una"),
        *("lo", "gli", "os", "as", "um", "uma", "het", "een", "bu", "şu", "o"),
    }
)
"""Articles and pronouns: never a name alone, even where the document also writes them capitalised
mid-sentence (``with: The Eiffel Tower`` made every sentence's ``The`` a name answer)."""
_NOT_ANSWERS = frozenset({"d.C", "a.C"})
_NOT_UNITS = frozenset(
    {
        *("and", "or", "to", "of", "in", "on", "at", "the", "than", "et", "ou", "au", "aux", "les"),
        *("le", "la"),
        *("und", "oder", "bis", "zu", "der", "die", "das", "dem", "den", "y", "o", "en", "el", "los", "las"),
        *("em", "da", "do", "di", "del", "de", "ve", "ile", "il", "e", "a", "i", "tra", "fra", "entre"),
        *("is", "are", "was", "were", "has", "had", "ist", "sind", "war", "est", "sont", "es", "son"),
        *("era", "è", "é", "sono", "foi", "bir", "ve", "wurde", "wurden", "hat", "fue", "fu", "a", "ont"),
    }
)


class Candidate(BaseModel):
    """One answer candidate: the ``answer`` as the ``sentence`` writes it, and its kind."""

    model_config = ConfigDict(frozen=True)

    sentence: str
    answer: str
    kind: Kind


def _mid_capitalised(text: str, language: str | None) -> set[str]:
    """Words the document writes capitalised other than as the first word of a sentence."""
    found: set[str] = set()
    for sentence in sentences(text, language):
        tokens = re.findall(_LETTERS, sentence)
        found.update(w for w in tokens[1:] if w[0].isupper())
    return found


_CURRENCY = frozenset("$€£¥₺₹₽")
"""Signs that make the number after them an amount of money (``$1500``, ``€ 2000``), not a year."""

UNITS = frozenset(
    {
        *("%", "m", "km", "cm", "mm", "kg", "g", "t", "l", "ha", "m²", "km²", "m2", "km2", "ft", "mi", "mph"),
        *("kw", "mw", "gw", "kwh", "°c", "°f", "°", "usd", "eur", "dollars", "euros", "euro", "pounds"),
        *("metres", "meters", "metre", "meter", "kilometres", "kilometers", "miles", "feet", "tonnes"),
        *("tons", "mètres", "kilomètres", "metros", "kilómetros", "metri", "chilometri", "quilómetros"),
        *("quilômetros", "kilometer", "kilometern", "metern", "kilometre"),
    }
)
"""Units that may follow a number (compared casefolded, the next word alone): ``1500 metres``,
``2000 km`` are quantities, never years (``in 1990 km`` is no way to write a year)."""

COUNTED = frozenset(
    {
        *("people", "inhabitants", "members", "residents", "students", "employees", "cars", "visitors"),
        *("habitants", "membres", "personnes", "habitantes", "miembros", "personas", "abitanti", "membri"),
        *("persone", "pessoas", "einwohner", "mitglieder", "menschen", "personen", "kişi", "üye"),
    }
)
"""Counted nouns: ``1200 members`` is a quantity, but ``In 1990 people left`` holds a year, so only
a record's year (where a missed year gives 0, not a wrong one) treats a number before one as a
quantity; the lists are short and by language (``1037 Schafe`` is still taken for a year)."""

_NEXT_WORD = re.compile(r"\s*([^\s.,;:!?()\[\]\"]+)")


def measured(text: str, start: int, end: int, *, counted: bool = True) -> bool:
    """Whether the number at ``text[start:end]`` is a quantity: after a currency sign or before a
    word of :data:`UNITS` (or, with ``counted``, of :data:`COUNTED`)."""
    before = text[:start].rstrip()
    if before and before[-1] in _CURRENCY:
        return True
    following = _NEXT_WORD.match(text, end)
    if following is None:
        return False
    word = following.group(1).casefold()
    return word in UNITS or (counted and word in COUNTED)


def _numeric(sentence: str, ordinal_dots: bool) -> list[tuple[int, int, Kind]]:
    spans: list[tuple[int, int, Kind]] = [(m.start(), m.end(), "date") for m in _DATE.finditer(sentence)]
    for m in _QUANTITY.finditer(sentence):
        if any(s <= m.start() < e for s, e, _ in spans):
            continue
        number = re.match(_NUM, m.group(0))
        assert number is not None
        after = sentence[m.start() + number.end() : m.start() + number.end() + 2]
        if ordinal_dots and len(number.group(0)) <= 2 and after[:1] == "." and after[1:].isspace():
            continue  # an ordinal: ``16. Jahrhundert``, ``16. yüzyılda``
        unit = m.group(0)[number.end() :].strip()
        measure = measured(sentence, m.start(), m.start() + number.end(), counted=False)
        if _YEAR.match(number.group(0)) and not measure:  # ``in 1707``; ``1453 yılında`` is the year alone
            spans.append((m.start(), m.start() + number.end(), "year"))
        elif len(unit) < 2 or unit.casefold() in _NOT_UNITS:
            spans.append((m.start(), m.start() + number.end(), "quantity"))
        else:
            spans.append((m.start(), m.end(), "quantity"))
    return spans


def _names(sentence: str, mid: set[str], strict: bool) -> list[tuple[int, int, Kind]]:
    tokens = [(m.start(), m.end(), m.group(0)) for m in _TOKEN.finditer(sentence)]
    runs: list[list[int]] = []  # token indices of each run of names
    current: list[int] = []
    # The sentence's first word is its first run of letters: a quote, bracket, bullet or emoji
    # before it does not make ``"It``, ``(This``, ``- The`` or ``«Les`` a name (review rev6).
    first = next((i for i, (_, _, tok) in enumerate(tokens) if tok[0].isalpha()), -1)
    for i, (_, _, tok) in enumerate(tokens):
        is_word = tok[0].isalpha()
        capital = is_word and tok[0].isupper() and (i != first or tok in mid)
        if capital:
            current.append(i)
            continue
        nxt = tokens[i + 1][2] if i + 1 < len(tokens) else ""
        if current and tok in _PARTICLES and nxt[:1].isupper():
            current.append(i)
            continue
        if current:
            runs.append(current)
        current = []
    if current:
        runs.append(current)
    found: list[tuple[int, int, Kind]] = []
    for run in runs:
        words = [tokens[i][2] for i in run]
        before = tokens[run[0] - 1][2] if run[0] > 0 else ""
        german_noun = before in _GERMAN_ARTICLES or not (before == "," or before[:1].islower())
        if strict and len(words) == 1 and german_noun:
            continue  # German: ``der Weg``, ``Zehn Jahre``, ``16. Jahrhundert`` are nouns, not names
        if words[0] in _PARTICLES or words[-1] in _PARTICLES:
            continue
        if len(words) == 1 and words[0].casefold() in _NOT_NAMES:
            continue
        found.append((tokens[run[0]][0], tokens[run[-1]][1], "name"))
    # a list: names separated by commas and, before the last, a joining word (not an apposition)
    merged: list[tuple[int, int, Kind]] = []
    i = 0
    while i < len(found):
        j = i
        while j + 1 < len(found) and _list_gap(sentence[found[j][1] : found[j + 1][0]]) is not None:
            j += 1
        while j > i and not _list_gap(sentence[found[j - 1][1] : found[j][0]]):
            j -= 1  # the chain must end with a joining word
        merged.append((found[i][0], found[j][1], "names") if j > i else found[i])
        i = j + 1
    return merged


def _list_gap(gap: str) -> bool | None:
    """None if ``gap`` cannot separate names of a list; else whether it holds a joining word."""
    bits = gap.replace(",", " , ").split()
    if not bits or not all(b == "," or b in _LIST_JOINERS for b in bits):
        return None
    return any(b in _LIST_JOINERS for b in bits)


def answer_candidates(text: str, language: str | None, *, max_words: int = 80) -> list[Candidate]:
    """The answer candidates of ``text`` (in ``language``, an ISO 639-1 code or None), best first.

    Deterministic: the same text gives the same list. Empty when the text has no number, date or
    name (or only sentences over ``max_words`` words). A workflow asks for the candidates of the
    same document at every step of its loop, so the last few documents' lists are kept (a long
    document's segmentation is what costs).
    """
    return list(_candidates(text, language, max_words))


@lru_cache(maxsize=8)
def _candidates(text: str, language: str | None, max_words: int) -> tuple[Candidate, ...]:
    return tuple(_find_candidates(text, language, max_words=max_words))


def _find_candidates(text: str, language: str | None, *, max_words: int) -> list[Candidate]:
    mid = _mid_capitalised(text, language)
    strict = language == "de"
    per_sentence: list[list[Candidate]] = []
    for sentence in sentences(text, language):
        if len(sentence.split()) > max_words:
            continue
        spans = _numeric(sentence, language in ORDINAL_DOT_LANGUAGES)
        for start, end, kind in _names(sentence, mid, strict):
            if not any(s < end and start < e for s, e, _ in spans):
                spans.append((start, end, kind))
        spans.sort(key=lambda s: (_KIND_RANK[s[2]], s[0]))
        found = [
            Candidate(sentence=sentence, answer=sentence[s:e].strip(" ,;:"), kind=k)
            for s, e, k in spans
            if sentence[s:e].strip(" ,;:") not in _NOT_ANSWERS
        ]
        per_sentence.append(found)
    out: list[Candidate] = []
    seen: set[str] = set()
    depth = max((len(c) for c in per_sentence), default=0)
    for rank in range(depth):
        for found in per_sentence:
            if rank < len(found):
                key = normalise(found[rank].answer)
                if key and key not in seen:
                    seen.add(key)
                    out.append(found[rank])
    return out
