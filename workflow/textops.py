# ruff: noqa: RUF001, RUF002 - multilingual text: letters and marks of other scripts are meant
"""The ``text`` operator (a Synod extension): small deterministic text functions, no model call.

A base model does well when a workflow breaks its job into small steps *and checks each one*; the
original format can branch on a condition, but its conditions compare with a literal, so a
workflow cannot ask "is this answer a span of that sentence?" or "was this question asked before?".
A ``text`` task can. Its ``prompt`` names the function, its inputs are the arguments (by input
name), its result goes to its ``outputs`` like any task's; a check that does not hold *fails the
task*, so the step's ``fallback`` decides what happens next (retry with the next sentence, say),
exactly as with the original ``check`` operator::

    {"id": "keep", "operator": "text", "prompt": "span",
     "inputs": [{"name": "text", "value": {"type": "read", "key": "raw_answer"}, "required": true},
                {"name": "source", "value": {"type": "read", "key": "sentence"}, "required": true}],
     "outputs": [{"type": "write", "key": "answer", "value": "__result"}]}

Functions (inputs in brackets, ``?`` optional; a check returns its ``text`` unchanged):

- ``sentence`` [text, index, max_words?]: the ``index``-th sentence of ``text`` (0-based; split by
  :func:`workflow.eval.text.sentences` with the text's identified language); fails past the last,
  and on a sentence of more than ``max_words`` words (one that would not fit a small model's prompt).
- ``candidate`` [text, index, part?, max_words?]: the ``index``-th answer candidate of ``text``
  (0-based; a date, a number with its unit, a year, a list of names or a name, as the text writes
  it: :func:`workflow.eval.spans.answer_candidates`); with ``part: sentence`` the sentence that
  holds it, with ``part: kind`` its kind (``date``, ``quantity``, ``year``, ``names``, ``name``);
  fails past the last candidate.
- ``has_word`` [text, words]: ``text`` holds one of ``words`` (a JSON list of words or phrases,
  compared folded and word-aligned): a question for a year asks "when".
- ``join`` [any inputs]: the inputs' texts in order, joined by a space where neither side has one
  (a question word given to the model, and the model's continuation of it).
- ``cloze`` [text, part, template]: ``template`` with its ``{}`` replaced by ``text`` in which
  ``part`` is replaced by ``___`` (a fill-in-the-gap question, the fallback when a model's
  question fails its checks); fails when ``part`` is not in ``text`` or the template has no ``{}``.
- ``mentions`` [text, source, part?]: ``text`` shares a content word (4+ letters, up to a short
  inflection) with ``source`` other than the words of ``part``: a question about the sentence.
- ``span`` [text, source]: ``text`` as a run of ``source``'s own words, written as in ``source``
  (:func:`workflow.eval.text.locate`); fails if it is not one.
- ``grounded`` [text, source, share?, names?]: the grounding check of
  :mod:`workflow.eval.grounding` (numbers and names of ``text`` in ``source``, a ``share`` of its
  content words too: default 0.75; the first word, a question word, exempt). ``names: off`` skips
  the name rule (German questions capitalise every noun: ``Stadt`` is not a name); ``negation: on``
  adds the negation rule (``not``, ``nicht``, ``pas``, ... must be in ``source`` too).
- ``novel`` [text, examples, source]: ``text`` holds no name or number of the few-shot
  ``examples`` that ``source`` lacks (:func:`workflow.eval.grounding.leaked_markers`): a copied
  example is rejected.
- ``question`` [text, words?]: ends with a question mark (``?``, ``？``, ``؟``, ``;`` in Greek,
  ``՞``) and has at least three words. ``words`` (a JSON list, default none): question words or
  particles that make a text a question without the mark (Turkish ``mı``, ``kaç``, ``nerede``:
  Turkish questions often lack it); such a text is returned with a ``?`` in place of a final ``.``.
- ``answers`` [text, part, slack?]: ``text`` (the model's reply to a question) gives ``part`` (the
  planned answer): holds it with at most ``slack`` (default 3) more words, or is a run of it that
  keeps its numbers (:mod:`workflow.eval.roundtrip`); a round-trip check of a generated question.
- ``unseen`` [text, seen?]: no entry of ``seen`` (a ``get_all`` read) equals ``text`` (compared
  folded, punctuation and spacing ignored).
- ``excludes`` [text, part]: ``part`` does not occur in ``text`` (folded, word-aligned), nor do
  all of its content words (4+ letters; ``una ciudadela inca`` is given away by ``¿Qué fue la
  ciudadela inca?``).
- ``same_language`` [text, reference]: both identified as the same language (fastText lid.176,
  :mod:`workflow.eval.language`); fails when either cannot be identified.
- ``language`` [text]: the ISO 639 code of the text's language (``en``, ``tr``, ...); fails when
  it cannot be identified.
- ``lookup`` [key, table]: the entry ``key`` of ``table`` (a JSON object, e.g. an
  ``external_memory`` entry): few-shot examples by language, say; fails when there is none. A key
  that is a JSON string (``"place"``, a schema-constrained reply) is looked up by its text, so a
  table of allowed values checks a label.
- ``object`` [any inputs]: a JSON object of the inputs by name, each value as stored (a JSON
  entry stays a number, list, ...; a string stays a string): builds a record from checked fields.
- ``year`` [text, index?]: the ``index``-th (default 0: the first) year ``text`` writes, as a JSON
  number (four digits from 1000 to 2099, no separator, not a decade:
  :func:`workflow.eval.records.years`); fails when there is none (a record's year copied from the
  text, never invented).
- ``copy`` [text]: returns ``text`` (to push a value that the steps before have checked).
- ``fail`` [message]: always fails, with ``message`` as the reason: a clear end for a workflow.

Checking a task here before the run: :func:`problem` (used by ``validate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from workflow.eval.grounding import MIN_CONTENT_SHARE, example_markers, grounding, leaked_markers
from workflow.eval.language import LanguageIdentifier
from workflow.eval.records import years
from workflow.eval.roundtrip import DEFAULT_SLACK, disagreement
from workflow.eval.scores import GAP
from workflow.eval.spans import answer_candidates
from workflow.eval.text import content_words, fold, locate, normalise, occurs, sentences, words
from workflow.memory import Entry, Value
from workflow.model import Task


class TextCheckFailed(Exception):
    """A text function's check did not hold (the engine fails the task with ``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Args = Mapping[str, Value]


@dataclass(frozen=True)
class TextFunction:
    """One function: its required and optional input names (None: any name) and what it does."""

    required: tuple[str, ...]
    optional: tuple[str, ...] | None
    run: Callable[[Args, LanguageIdentifier], Entry]


_QUESTION_MARKS = ("?", "？", "؟", ";", "՞")


def _text(args: Args, name: str) -> str:
    value = args.get(name)
    return "" if value is None else value.text().strip()


def _entries(args: Args, name: str) -> list[str]:
    value = args.get(name)
    if value is None or value.is_none():
        return []
    if value.kind == "list":
        return [e.text() for e in value.entries or ()]
    return [value.text()]


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _sentence(args: Args, lang: LanguageIdentifier) -> Entry:
    text = _text(args, "text")
    raw_index = _text(args, "index")
    try:
        index = int(raw_index)
    except ValueError:
        raise TextCheckFailed(f"index {_short(raw_index)} is not an integer") from None
    if not text:
        raise TextCheckFailed("the text is empty")
    found = sentences(text, lang.code(text))
    if not 0 <= index < len(found):
        raise TextCheckFailed(f"the text has {len(found)} sentence(s); there is no sentence {index}")
    limit = _text(args, "max_words")
    size = len(found[index].split())
    if limit.isdigit() and size > int(limit):
        raise TextCheckFailed(f"sentence {index} has {size} words, over max_words={limit}")
    return Entry(found[index], False)


def _candidate(args: Args, lang: LanguageIdentifier) -> Entry:
    text, raw_index, part = _text(args, "text"), _text(args, "index"), _text(args, "part") or "answer"
    limit = _text(args, "max_words")
    try:
        index = int(raw_index)
    except ValueError:
        raise TextCheckFailed(f"index {_short(raw_index)} is not an integer") from None
    if part not in ("answer", "sentence", "kind"):
        raise TextCheckFailed(f"part {_short(part)} is not 'answer', 'sentence' or 'kind'")
    if not text:
        raise TextCheckFailed("the text is empty")
    found = answer_candidates(text, lang.code(text), max_words=int(limit) if limit.isdigit() else 80)
    if not 0 <= index < len(found):
        raise TextCheckFailed(f"the text has {len(found)} answer candidate(s); there is no candidate {index}")
    chosen = found[index]
    return Entry({"answer": chosen.answer, "sentence": chosen.sentence, "kind": chosen.kind}[part], False)


def _word_list(args: Args) -> list[str]:
    value = args.get("words")
    wanted = None if value is None else value.to_json_value()
    options = [wanted] if isinstance(wanted, str) else wanted
    if not isinstance(options, list) or not all(isinstance(w, str) for w in options):
        raise TextCheckFailed("words is not a JSON list of strings")
    return options


def _has_word(args: Args, lang: LanguageIdentifier) -> Entry:
    text = _text(args, "text")
    options = _word_list(args)
    if not any(locate(w, text) is not None for w in options if w.strip()):
        raise TextCheckFailed(f"{_short(text)} has none of {_short(', '.join(options))}")
    return Entry(text, False)


def _join(args: Args, lang: LanguageIdentifier) -> Entry:
    out = ""
    for value in args.values():
        piece = value.text()
        if out and piece and not out[-1].isspace() and not piece[0].isspace():
            out += " "
        out += piece
    return Entry(" ".join(out.split()), False)


def _cloze(args: Args, lang: LanguageIdentifier) -> Entry:
    text, part, template = _text(args, "text"), _text(args, "part"), _text(args, "template")
    if "{}" not in template:
        raise TextCheckFailed(f"the template {_short(template)} has no {{}}")
    where = text.find(part) if part else -1
    if where < 0:
        raise TextCheckFailed(f"{_short(part)} is not in {_short(text)}")
    gapped = text[:where] + GAP + text[where + len(part) :]
    return Entry(template.replace("{}", gapped, 1), False)


def _mentions(args: Args, lang: LanguageIdentifier) -> Entry:
    text, source, part = _text(args, "text"), _text(args, "source"), _text(args, "part")
    excluded = content_words(part)
    shared = [w for w in content_words(text) if occurs(w, content_words(source)) and not occurs(w, excluded)]
    if not shared:
        raise TextCheckFailed(f"{_short(text)} shares no content word with {_short(source)}")
    return Entry(text, False)


def _span(args: Args, lang: LanguageIdentifier) -> Entry:
    text, source = _text(args, "text"), _text(args, "source")
    found = locate(text, source)
    if found is None:
        raise TextCheckFailed(f"{_short(text)} is not a span of the source")
    return Entry(found, False)


def _grounded(args: Args, lang: LanguageIdentifier) -> Entry:
    text, source, raw_share = _text(args, "text"), _text(args, "source"), _text(args, "share")
    try:
        share = float(raw_share) if raw_share else MIN_CONTENT_SHARE
    except ValueError:
        raise TextCheckFailed(f"share {_short(raw_share)} is not a number") from None
    negation = _text(args, "negation") == "on"
    report = grounding(text, source, min_content_share=share, skip_first=True, check_negation=negation)
    if _text(args, "names") == "off" and report.reason is not None and report.reason.startswith("name "):
        report = grounding(
            text, source, min_content_share=share, skip_first=True, check_names=False, check_negation=negation
        )
    if not report.grounded:
        raise TextCheckFailed(f"{_short(text)} is not grounded: {report.reason}")
    return Entry(text, False)


def _novel(args: Args, lang: LanguageIdentifier) -> Entry:
    text, source = _text(args, "text"), _text(args, "source")
    leaked = leaked_markers(text, example_markers([_text(args, "examples")]), source)
    if leaked:
        raise TextCheckFailed(f"{_short(text)} copies the examples: {', '.join(leaked)}")
    return Entry(text, False)


def _question(args: Args, lang: LanguageIdentifier) -> Entry:
    text = _text(args, "text")
    if len(words(text)) < 3:
        raise TextCheckFailed(f"{_short(text)} has fewer than three words")
    if text.endswith(_QUESTION_MARKS):
        return Entry(text, False)
    forms = [w for w in _word_list(args) if w.strip()] if args.get("words") is not None else []
    if any(locate(w, text) is not None for w in forms):
        return Entry(text.rstrip(" .") + "?", False)
    if forms:
        raise TextCheckFailed(
            f"{_short(text)} does not end with a question mark and has none of {_short(', '.join(forms))}"
        )
    raise TextCheckFailed(f"{_short(text)} does not end with a question mark")


def _answers(args: Args, lang: LanguageIdentifier) -> Entry:
    text, part, raw_slack = _text(args, "text"), _text(args, "part"), _text(args, "slack")
    if raw_slack and not raw_slack.isdigit():
        raise TextCheckFailed(f"slack {_short(raw_slack)} is not a whole number")
    reason = disagreement(text, part, slack=int(raw_slack) if raw_slack else DEFAULT_SLACK)
    if reason is not None:
        raise TextCheckFailed(f"{_short(text)} does not answer {_short(part)}: {reason}")
    return Entry(text, False)


def _unseen(args: Args, lang: LanguageIdentifier) -> Entry:
    text = _text(args, "text")
    key = normalise(text)
    if any(normalise(seen) == key for seen in _entries(args, "seen")):
        raise TextCheckFailed(f"{_short(text)} was seen before")
    return Entry(text, False)


def _excludes(args: Args, lang: LanguageIdentifier) -> Entry:
    text, part = _text(args, "text"), _text(args, "part")
    vocabulary = [fold(w) for w in words(text)]
    content = content_words(part)
    given = bool(content) and all(occurs(w, vocabulary) for w in content)
    if part and (locate(part, text) is not None or given):
        raise TextCheckFailed(f"{_short(text)} contains {_short(part)}")
    return Entry(text, False)


def _same_language(args: Args, lang: LanguageIdentifier) -> Entry:
    text, reference = _text(args, "text"), _text(args, "reference")
    want = lang.code(reference)
    if want is None:
        raise TextCheckFailed("the language of the reference cannot be identified")
    got = lang.code(text)
    if got != want:
        raise TextCheckFailed(f"{_short(text)} is in language {got or 'unknown'}, the reference in {want}")
    return Entry(text, False)


def _language(args: Args, lang: LanguageIdentifier) -> Entry:
    text = _text(args, "text")
    found = lang.code(text)
    if found is None:
        raise TextCheckFailed(f"the language of {_short(text, 40)} cannot be identified")
    return Entry(found, False)


def _lookup(args: Args, lang: LanguageIdentifier) -> Entry:
    key = _text(args, "key")
    raw = args.get("key")
    if raw is not None and raw.kind == "entry" and raw.entry is not None and isinstance(raw.entry.value, str):
        key = raw.entry.value.strip()  # a JSON string key (a schema-constrained reply "place"): its text
    value = args.get("table")
    table = None if value is None else value.to_json_value()
    if not isinstance(table, dict):
        raise TextCheckFailed("the table is not a JSON object")
    if key not in table:
        raise TextCheckFailed(f"the table has no entry {key!r} (entries: {', '.join(sorted(table))})")
    return Entry.of(table[key])


def _object(args: Args, lang: LanguageIdentifier) -> Entry:
    return Entry({name: value.to_json_value() for name, value in args.items()}, True)


def _year(args: Args, lang: LanguageIdentifier) -> Entry:
    text, raw_index = _text(args, "text"), _text(args, "index") or "0"
    if not raw_index.isdigit():
        raise TextCheckFailed(f"index {_short(raw_index)} is not a whole number")
    found = years(text)
    index = int(raw_index)
    if index >= len(found):
        raise TextCheckFailed(f"the text writes {len(found)} year(s); there is no year {index}")
    return Entry(int(found[index]), True)


def _copy(args: Args, lang: LanguageIdentifier) -> Entry:
    return Entry(_text(args, "text"), False)


def _fail(args: Args, lang: LanguageIdentifier) -> Entry:
    raise TextCheckFailed(_text(args, "message") or "the workflow ended in its failure task")


FUNCTIONS: Mapping[str, TextFunction] = {
    "sentence": TextFunction(("text", "index"), ("max_words",), _sentence),
    "candidate": TextFunction(("text", "index"), ("part", "max_words"), _candidate),
    "has_word": TextFunction(("text", "words"), (), _has_word),
    "join": TextFunction((), None, _join),
    "cloze": TextFunction(("text", "part", "template"), (), _cloze),
    "mentions": TextFunction(("text", "source"), ("part",), _mentions),
    "span": TextFunction(("text", "source"), (), _span),
    "grounded": TextFunction(("text", "source"), ("share", "names", "negation"), _grounded),
    "novel": TextFunction(("text", "examples", "source"), (), _novel),
    "question": TextFunction(("text",), ("words",), _question),
    "answers": TextFunction(("text", "part"), ("slack",), _answers),
    "unseen": TextFunction(("text",), ("seen",), _unseen),
    "excludes": TextFunction(("text", "part"), (), _excludes),
    "same_language": TextFunction(("text", "reference"), (), _same_language),
    "language": TextFunction(("text",), (), _language),
    "lookup": TextFunction(("key", "table"), (), _lookup),
    "object": TextFunction((), None, _object),
    "year": TextFunction(("text",), ("index",), _year),
    "copy": TextFunction(("text",), (), _copy),
    "fail": TextFunction(("message",), (), _fail),
}
"""The ``text`` operator's functions by name (the task's ``prompt``)."""


def problem(task: Task) -> tuple[str, str] | None:
    """Why a ``text`` task cannot run, as (field, reason), or None: an unknown function name, a
    missing or unknown argument."""
    name = (task.prompt or "").strip()
    function = FUNCTIONS.get(name)
    if function is None:
        return "prompt", f"unknown text function {name!r} (known: {', '.join(sorted(FUNCTIONS))})"
    given = [inp.name for inp in task.inputs]
    for needed in function.required:
        if needed not in given:
            return "inputs", f"text function {name!r} needs an input named {needed!r}"
    if function.optional is None:
        return None
    allowed = {*function.required, *function.optional}
    for i, inp in enumerate(task.inputs):
        if inp.name not in allowed:
            return f"inputs[{i}].name", f"text function {name!r} takes no input {inp.name!r}"
    return None


def run(task: Task, args: Args, lang: LanguageIdentifier) -> Entry:
    """Run the task's function on its gathered inputs; raise :class:`TextCheckFailed`."""
    function = FUNCTIONS.get((task.prompt or "").strip())
    if function is None:  # validate rejects this; a hand-built Task may not have been validated
        raise TextCheckFailed(f"unknown text function {task.prompt!r}")
    return function.run(args, lang)
