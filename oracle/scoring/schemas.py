"""Output JSON Schemas from untrusted authors (a requester's workflow or row), applied in bounded time.

A schema reaches a validator from the requester; a result checked against it comes from a node.
Either may be hostile, and ``jsonschema`` as is would let them stall or crash the validator (which
then misses its commit and is slashed):

* ``pattern`` / ``patternProperties`` run Python's backtracking ``re``: ``"^(a+)+$"`` against
  ``"aaaa…ab"`` takes exponential time (24 letters: seconds; 40: years). Here every pattern runs on
  RE2 (``google-re2``: linear time in the text, no backtracking); a pattern RE2 does not accept
  (back-references, look-around) makes the schema malformed. RE2 is the engine JSON Schema's own
  advice points to for untrusted patterns (ECMA-262 subset; ``\\d`` is ASCII digits only).
* ``$ref`` to anything but this document (``https://…``, ``urn:…``) would be an unresolvable
  reference at validation time (an exception, not a validation error): refused up front. A local
  reference to nowhere, or one that loops (``{"$ref": "#"}``), is only found when applied; then
  :func:`problems` yields a "cannot be applied" reason instead of raising.
* a deeply nested schema makes ``check_schema`` raise ``RecursionError``: refused above
  :data:`MAX_SCHEMA_DEPTH` levels or :data:`MAX_SCHEMA_BYTES` bytes.
* ``unevaluatedProperties`` next to ``patternProperties`` would run Python ``re`` inside
  ``jsonschema``'s annotation collection: refused (see :func:`schema_problem`).

* ``uniqueItems`` compares every pair of items in ``jsonschema`` when they are objects (quadratic:
  4,000 small objects, 43 KB, took 37.6 s in review): here items are hashed in a canonical form
  (linear).

``format`` stays an annotation (no format checker), as before: every validator treats it alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import re2
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import extend
from referencing.exceptions import Unresolvable

from oracle.scoring.safejson import depth

MAX_SCHEMA_DEPTH = 32
"""Deepest bracket nesting of a schema's JSON accepted."""
MAX_SCHEMA_BYTES = 64 * 1024
"""Largest schema accepted (compact JSON, UTF-8)."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a hostile pattern would otherwise write RE2's parse error to stderr
    return options


def _search(pattern: str, text: str) -> bool:
    return re2.compile(pattern, options=_options()).search(text) is not None


def _pattern(validator: Any, patrn: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(patrn, instance):
        yield ValidationError(f"{instance[:80]!r} does not match {patrn!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for patrn, subschema in patterns.items():
        for key, value in instance.items():
            if _search(patrn, key):
                yield from validator.descend(value, subschema, path=key, schema_path=patrn)


def _additional_properties(
    validator: Any, extra_schema: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = sorted(
        (k for k in instance if k not in properties and not any(_search(p, k) for p in patterns)), key=str
    )
    if validator.is_type(extra_schema, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], extra_schema, path=extra)
    elif not extra_schema and extras:
        yield ValidationError(
            f"Additional properties are not allowed ({', '.join(map(repr, extras))} unexpected)"
        )


def _canonical(value: Any) -> Any:
    """A hashable form of a JSON value equal exactly when JSON Schema calls the values equal
    (``1 == 1.0``; ``true`` is not ``1``; object key order ignored)."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("a", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("o", frozenset((k, _canonical(v)) for k, v in value.items()))
    return ("?", repr(value))


def _unique_items(
    validator: Any, unique: bool, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"{repr(instance)[:80]} has non-unique elements")
            return
        seen.add(key)


SafeValidator = extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    validators={
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "uniqueItems": _unique_items,
    },
)
"""Draft 2020-12 with RE2 for every regular expression it runs (see the module docstring)."""


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of every object in a JSON value, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MANY = ("allOf", "anyOf", "oneOf")
_RESOLUTION_KEYWORDS = ("$anchor", "$dynamicAnchor", "$dynamicRef")


def _pointer(schema: Any, ref: str) -> tuple[Any, str] | None:
    """(subschema, canonical pointer) a local JSON-pointer ``$ref`` names, or None if nowhere."""
    node = schema
    parts = [] if ref in ("#", "#/") else ref[2:].split("/")
    for raw in parts:
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node, "".join("/" + p for p in parts)


def _reference_loop(schema: dict[str, Any]) -> str | None:
    """A ``$ref`` that reaches itself without consuming any of the instance (``{"$ref": "#"}``,
    or through ``allOf``/``anyOf``/``oneOf``/``not``/``if``/``then``/``else``/``dependentSchemas``):
    ``jsonschema`` would recurse until the stack ends, and with the recursion limit raised (py_ecc
    raises it to 100,000 on import) that is a segmentation fault, not a ``RecursionError``."""
    done: set[str] = set()
    on_path: set[str] = set()

    def visit(node: Any, where: str) -> str | None:
        if not isinstance(node, dict) or where in done:
            return None
        if where in on_path:
            return where
        on_path.add(where)
        nexts: list[tuple[Any, str]] = []
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = _pointer(schema, ref)
            if target is not None:
                nexts.append(target)
        for key in _IN_PLACE_ONE:
            if key in node:
                nexts.append((node[key], f"{where}/{key}"))
        for key in _IN_PLACE_MANY:
            if isinstance(node.get(key), list):
                nexts.extend((sub, f"{where}/{key}/{i}") for i, sub in enumerate(node[key]))
        if isinstance(node.get("dependentSchemas"), dict):
            nexts.extend(
                (sub, f"{where}/dependentSchemas/{k}") for k, sub in node["dependentSchemas"].items()
            )
        for sub, path in nexts:
            looped = visit(sub, path)
            if looped is not None:
                return looped
        on_path.discard(where)
        done.add(where)
        return None

    for key, value in _walk(schema):
        if (
            key == "$ref"
            and isinstance(value, str)
            and value not in ("#", "#/")
            and not value.startswith("#/")
        ):
            return f"$ref {value[:100]!r} is not a JSON pointer into this schema"
    starts = [(schema, "")] + [
        target
        for key, value in _walk(schema)
        if key == "$ref" and isinstance(value, str) and (target := _pointer(schema, value)) is not None
    ]
    for node, where in starts:
        looped = visit(node, where)
        if looped is not None:
            return f"$ref loop through '#{looped}' (it never consumes the instance)"
    return None


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` cannot be applied safely (one line), or None when it can. Never raises.

    Checks, in order: size (:data:`MAX_SCHEMA_BYTES`) and nesting (:data:`MAX_SCHEMA_DEPTH`); a
    valid draft 2020-12 schema (``check_schema``); every ``pattern`` and ``patternProperties`` key
    compiles on RE2; every ``$ref`` points into this document (``#``, ``#/json/pointer``; no
    ``$anchor``, ``$dynamicRef``, ``$dynamicAnchor``, nor ``$id`` below the root); no reference
    loop that never consumes the instance (:func:`_reference_loop`); no ``unevaluatedProperties``
    together with ``patternProperties``.
    """
    try:
        text = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"not JSON: {type(exc).__name__}"
    if len(text.encode("utf-8", errors="replace")) > MAX_SCHEMA_BYTES:
        return f"schema over {MAX_SCHEMA_BYTES} bytes"
    nesting = depth(text)
    if nesting > MAX_SCHEMA_DEPTH:
        return f"schema nested {nesting} levels deep (limit {MAX_SCHEMA_DEPTH})"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc.message[:200]
    except RecursionError:
        return "schema too deeply nested to check"
    patterns: list[str] = []
    has_pattern_properties = has_unevaluated = False
    for key, value in _walk(schema):
        if key == "pattern" and isinstance(value, str):
            patterns.append(value)
        elif key == "patternProperties" and isinstance(value, dict):
            has_pattern_properties = True
            patterns.extend(value)
        elif key == "unevaluatedProperties":
            has_unevaluated = True
        elif key in ("$ref", "$dynamicRef") and isinstance(value, str) and not value.startswith("#"):
            return f"{key} {value[:100]!r} is not inside this schema (no schema is ever fetched)"
    for patrn in patterns:
        try:
            re2.compile(patrn, options=_options())
        except re2.error as exc:
            return f"pattern {patrn[:100]!r} is not RE2 syntax: {str(exc)[:100]}"
    keys = [key for key, _ in _walk(schema)]
    for key in _RESOLUTION_KEYWORDS:
        if key in keys:
            return f"{key} is not supported (references must be JSON pointers into this schema)"
    if keys.count("$id") > (1 if "$id" in schema else 0):
        return "$id below the root is not supported (references must be JSON pointers into this schema)"
    loop = _reference_loop(schema)
    if loop is not None:
        return loop
    if has_pattern_properties and has_unevaluated:
        return "unevaluatedProperties with patternProperties is not supported (a backtracking regex)"
    return None


def first_error(schema: dict[str, Any], document: Any) -> str | None:
    """The most relevant reason ``document`` fails ``schema`` ("at PATH: message"), or None if it
    passes. ``schema`` must have passed :func:`schema_problem`. A schema that fails only when
    applied (a local ``$ref`` to nowhere, a reference loop) gives "schema cannot be applied: …".
    Never raises."""
    try:
        error = best_match(SafeValidator(schema).iter_errors(document))
    except Unresolvable as exc:
        return f"schema cannot be applied: unresolvable reference: {str(exc)[:150]}"
    except RecursionError:
        return "schema cannot be applied: its references loop"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "$"
    return f"at {where}: {error.message[:200]}"


__all__ = ["MAX_SCHEMA_BYTES", "MAX_SCHEMA_DEPTH", "SafeValidator", "first_error", "schema_problem"]
