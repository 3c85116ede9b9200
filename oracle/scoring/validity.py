"""The validity stage: may this result be scored at all? Invalid results score 0.

In order, the first failure decides (its reason is kept):

1. UTF-8: bytes must decode strictly; text must encode (a lone surrogate is not UTF-8);
2. size: at most :data:`MAX_RESULT_BYTES` bytes;
3. non-empty: something besides white space;
4. schema (when the task has one): the result parses as JSON (:mod:`.safejson`: bounded depth
   and numbers) and matches the JSON Schema (``jsonschema``, draft 2020-12; the most relevant
   error, by ``jsonschema.exceptions.best_match``, is the reason);
5. language (when the task names one): the result's prose (for JSON, its string values) is
   identified by :class:`.language.LanguageIdentifier`; with at least :data:`MIN_LETTERS`
   letters, the expected language must be the most likely one, or be among the three most likely
   when the first is below :data:`CONFIDENT` (close languages such as es/gl/pt share words).
   Shorter texts (a name, a number) have no reliable language and pass this check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import Validity
from oracle.scoring.safejson import UnsafeJsonError, loads
from oracle.scoring.schemas import first_error

MAX_RESULT_BYTES = 64 * 1024
"""Largest result scored (a workflow's return value; the p2p layer caps fetches too)."""
MIN_LETTERS = 20
"""Fewer letters than this: the language is not checked."""
CONFIDENT = 0.5


def _strings(value: Any) -> Iterator[str]:
    """The string values (not keys) of a JSON document, depth first, in document order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def decode(result: str | bytes) -> tuple[str | None, str | None]:
    """(text, None) or (None, reason): strict UTF-8 and the size limit (rules 1 and 2)."""
    if isinstance(result, bytes):
        size = len(result)
        if size > MAX_RESULT_BYTES:
            return None, f"result is {size} bytes (limit {MAX_RESULT_BYTES})"
        try:
            return result.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            return None, f"not UTF-8 (byte {exc.start})"
    try:
        size = len(result.encode("utf-8"))
    except UnicodeEncodeError as exc:
        return None, f"not UTF-8 (character {exc.start} is a lone surrogate)"
    if size > MAX_RESULT_BYTES:
        return None, f"result is {size} bytes (limit {MAX_RESULT_BYTES})"
    return result, None


def check(
    result: str | bytes,
    *,
    schema: dict[str, Any] | None,
    language: str | None,
    identifier: LanguageIdentifier,
) -> Validity:
    """Apply the rules of the module docstring to one result. Never raises on bad input."""
    text, reason = decode(result)
    if text is None:
        return Validity(valid=False, reason=reason)
    if not text.strip():
        return Validity(valid=False, reason="empty result")
    prose, is_json = text, False
    if schema is not None:
        try:
            document = loads(text)
        except UnsafeJsonError as exc:
            return Validity(valid=False, reason=f"schema: {exc}", text=text)
        error = first_error(schema, document)
        if error is not None:
            return Validity(valid=False, reason=f"schema: {error}", text=text)
        prose, is_json = "\n".join(_strings(document)), True
    found: str | None = None
    if language is not None and sum(c.isalpha() for c in prose) >= MIN_LETTERS:
        guesses = identifier.guesses(prose)
        found = guesses[0].code if guesses else None
        top_confident = bool(guesses) and guesses[0].probability >= CONFIDENT
        allowed = {g.code for g in guesses[: 1 if top_confident else 3]}
        if language not in allowed:
            return Validity(
                valid=False,
                reason=f"language {found or 'unknown'}, expected {language}",
                text=prose,
                is_json=is_json,
                language=found,
            )
    return Validity(valid=True, text=prose, is_json=is_json, language=found)
