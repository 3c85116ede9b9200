# ruff: noqa: RUF002 - multilingual text: letters of other scripts are meant
"""Years of a text, and the scores of the dialogue and extraction workflows' outputs.

Years (:func:`years`): what ``extract_record`` copies into its ``year`` field, without the model
(a 270M model asked for "the first year the text mentions" gave a later year or 0 for 6 of 13
dev-set passages). A *year* is a run of four digits from 1000 to
2099 written without a group separator and not glued to other digits, separators or letters:
``in 1847``, ``1453 yılında``, ``1453'te`` and ``14. Juli 1789`` hold one; ``1.230 Kilometern``,
``2,850 kilometres``, ``1 000 kilomètres``, ``3.300`` and ``the 1450s`` do not (the last is a
decade), nor do ``$1500``, ``1500 metres`` or ``1200 members`` (quantities: :func:`years`; a
record's year was ``1500`` for a bridge 1500 metres long opened in 1932). The rule of the ``year``
kind of :mod:`workflow.eval.spans`, which still takes an unseparated quantity for a year; a year
before a counted noun (``In 1990 people left``) is missed: the record's year is then 0, not wrong.

Scores (what ``scripts/bench_data.py`` reports):

- a *dialogue turn* of ``persona_dialogue`` is grounded by :func:`workflow.eval.grounding.grounding`
  against the passage: a guide turn (an answer) by the default check, as ``qa_pairs``'s answers;
  a visitor turn (a question, in a persona's voice) with its first word exempt (``Und``, ``Ahoy``,
  ``Dis``), a quarter of its content words instead of 75% (a question's own words, ``many``,
  ``does``, ``long``, count as content words, and a four-letter word matches no inflection:
  ``How many kilometres does it flow to the sea?`` has 1 of 4 in its passage), and names not
  checked in German, which capitalises every noun (:data:`VISITOR_SHARE`; the workflow checks its
  visitor turns the same way);
  the workflow's guide turns are runs of their sentence's words (``span``), so they pass;
- an *extracted field* of ``extract_record`` is grounded when its value occurs in the passage:
  ``name`` a span of it (:func:`workflow.eval.text.locate`), ``year`` one of its :func:`years`,
  ``summary`` grounded by the default check. ``category`` is a label of a fixed list, not text, so
  it is not scored; ``year`` 0 (none) and an empty ``name``/``summary`` are *empty*, not scored as
  grounded but counted apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from workflow.eval.grounding import grounding, leaked_markers
from workflow.eval.spans import measured
from workflow.eval.text import locate

_YEAR = re.compile(r"(?<![\w.,])(1\d{3}|20\d{2})(?!\w|[.,]\d)")

VISITOR_SHARE = 0.25
"""Share of a visitor turn's content words that must occur in the passage (the first word exempt):
``How many kilometres does it flow to the sea?`` (1 of 4) passes, ``How long has it been in
use?`` (0 of 2) fails. It cannot tell a question's own words from an invented noun: ``¿Qué pasó con el
turista?`` (1 of 2) passes."""

NAMELESS_LANGUAGES = frozenset({"de"})
"""Languages whose questions are not checked for names (every German noun is capitalised)."""


def years(text: str) -> list[str]:
    """The years of ``text`` in order, as written (``["1847", "1902"]``); see the module docstring.
    A four-digit number after a currency sign or before a unit or a counted noun
    (:func:`workflow.eval.spans.measured`) is a quantity, not a year (``$1500``, ``1500 metres``,
    ``1200 members``)."""
    return [m.group(1) for m in _YEAR.finditer(text) if not measured(text, m.start(1), m.end(1))]


class TurnScore(BaseModel):
    """One dialogue turn, judged: who speaks (``visitor`` or ``guide``), whether it is grounded
    (and why not), and the few-shot example names and numbers it copies."""

    model_config = ConfigDict(frozen=True)

    speaker: str
    text: str
    grounded: bool
    reason: str | None
    leaked: tuple[str, ...]


def score_dialogue(
    passage: str, language: str, turns: Sequence[Any], *, markers: frozenset[str]
) -> list[TurnScore]:
    """Judge every turn of a dialogue (visitor first, then guide, alternating) against ``passage``
    (in ``language``, an ISO 639-1 code); ``markers`` are the few-shot examples' names and numbers
    (:func:`workflow.eval.grounding.example_markers`)."""
    scores: list[TurnScore] = []
    for i, raw in enumerate(turns):
        text = str(raw)
        if i % 2 == 0:
            report = grounding(
                text,
                passage,
                min_content_share=VISITOR_SHARE,
                skip_first=True,
                check_names=language not in NAMELESS_LANGUAGES,
            )
        else:
            report = grounding(text, passage)
        scores.append(
            TurnScore(
                speaker="visitor" if i % 2 == 0 else "guide",
                text=text,
                grounded=report.grounded,
                reason=report.reason,
                leaked=tuple(leaked_markers(text, markers, passage)),
            )
        )
    return scores


class FieldScore(BaseModel):
    """One extracted field, judged: ``empty`` (no value: year 0, no text) or ``grounded``."""

    model_config = ConfigDict(frozen=True)

    field: str
    value: Any
    empty: bool
    grounded: bool
    leaked: tuple[str, ...] = ()


def score_record(text: str, record: Any, *, markers: frozenset[str] = frozenset()) -> list[FieldScore]:
    """Judge the ``name``, ``year`` and ``summary`` of an ``extract_record`` result against ``text``
    (a field that is missing or of the wrong type is non-empty and not grounded; a record that is
    not a JSON object gives three such fields)."""
    if not isinstance(record, dict):
        return [
            FieldScore(field=f, value=None, empty=False, grounded=False) for f in ("name", "year", "summary")
        ]
    out: list[FieldScore] = []
    for field in ("name", "summary"):
        value = record.get(field)
        if isinstance(value, str) and not value.strip():
            out.append(FieldScore(field=field, value=value, empty=True, grounded=False))
            continue
        ok = isinstance(value, str) and (
            locate(value, text) is not None if field == "name" else grounding(value, text).grounded
        )
        leaked = tuple(leaked_markers(value, markers, text)) if isinstance(value, str) else ()
        out.append(FieldScore(field=field, value=value, empty=False, grounded=ok, leaked=leaked))
    year = record.get("year")
    is_int = isinstance(year, int) and not isinstance(year, bool)
    if is_int and year == 0:
        out.insert(1, FieldScore(field="year", value=0, empty=True, grounded=False))
    else:
        ok = is_int and str(year) in years(text)
        out.insert(1, FieldScore(field="year", value=year, empty=False, grounded=ok))
    return out
