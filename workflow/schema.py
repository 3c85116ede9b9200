"""A task's ``schema``: the structured-output constraint, in every form the original accepts.

The original engine takes ``schema`` in two forms, by provider: on its Ollama path, base64 of a
format constraint (decoded, sent to the model as text in a leading assistant message, with JSON
output requested); on its OpenAI-compatible and Gemini paths, the JSON schema itself as raw JSON
text (Gemini's dialect writes types upper-case: ``"OBJECT"``). Synod accepts every form on every
provider:

* raw JSON text of an object, or base64 of one -> a JSON schema (:class:`JsonSchema`), passed to
  the provider as its structured-output constraint (Gemini's upper-case type names lower-cased);
* base64 of any other UTF-8 text (a regular expression, a plain instruction) -> a text constraint
  (:class:`TextConstraint`), sent as the original's Ollama path does: a leading assistant message
  holding the text, with JSON output requested.

Anything else is :class:`SchemaError`.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

_GEMINI_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})


class SchemaError(ValueError):
    """A ``schema`` that is neither JSON nor base64 of UTF-8 text."""


@dataclass(frozen=True)
class JsonSchema:
    """A JSON schema (a JSON object) constraining the output."""

    schema: dict[str, Any]


@dataclass(frozen=True)
class TextConstraint:
    """A format constraint given as text (e.g. a regular expression), not a JSON schema."""

    text: str


def _lower_types(node: Any) -> Any:
    """Gemini's upper-case ``type`` names as JSON-schema ones, recursively."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "type" and isinstance(value, str) and value in _GEMINI_TYPES:
                out[key] = value.lower()
            else:
                out[key] = _lower_types(value)
        return out
    if isinstance(node, list):
        return [_lower_types(item) for item in node]
    return node


MAX_SCHEMA_DEPTH = 32
"""A schema nested deeper than this many brackets is refused before it is parsed."""

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def json_text_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, brackets inside strings not counted.

    Checked before ``json.loads``: the C parser recurses once per level and, with a raised
    recursion limit (py_ecc raises it to 100,000 when imported), a hostile ``[[[[...`` can
    overflow the C stack and kill the process instead of raising ``RecursionError``.
    """
    brackets = _BRACKET.findall(_JSON_STRING.sub('""', text))
    steps = (1 if b in "[{" else -1 for b in brackets)
    return max(itertools.accumulate(steps, initial=0))


def _as_object(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    if json_text_depth(stripped) > MAX_SCHEMA_DEPTH:
        raise SchemaError(f"a JSON schema nested deeper than {MAX_SCHEMA_DEPTH} levels")
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def decode_schema(value: str) -> JsonSchema | TextConstraint:
    """The constraint a task's ``schema`` string describes; raise :class:`SchemaError` if none."""
    raw = _as_object(value)
    if raw is not None:
        return JsonSchema(_lower_types(raw))
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise SchemaError(
            f"neither a JSON schema nor base64 of one (or of a format constraint): {exc}"
        ) from exc
    if not decoded.strip():
        raise SchemaError("base64 of empty text")
    inner = _as_object(decoded)
    if inner is not None:
        return JsonSchema(_lower_types(inner))
    return TextConstraint(decoded)
