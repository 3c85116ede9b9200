"""Hostile output schemas (from a requester) and results (from a node): bounded time, no exception.

Each case was a break found in review (2026-11-30): before the fix, ``validity.check`` raised on a
``$ref`` it could not resolve and ran Python's backtracking ``re`` on a node's text, and
``ScoreRequest`` raised ``RecursionError`` (not ``ValueError``) on a deeply nested schema.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pydantic import ValidationError

from oracle.daemon.work import job_contract
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import ScoreRequest
from oracle.scoring.schemas import MAX_SCHEMA_DEPTH, first_error, schema_problem
from oracle.scoring.validity import check

pytestmark = pytest.mark.unit

CATASTROPHIC = "^(a+)+$"


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels - 1):
        schema = {"items": schema}
    return schema


def test_a_catastrophic_pattern_runs_in_linear_time(identifier: LanguageIdentifier) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": CATASTROPHIC}}}
    hostile = json.dumps({"a": "a" * 60_000 + "b"})  # Python re: 2**60000 steps; 24 letters took 2.5 s
    started = time.monotonic()
    verdict = check(hostile, schema=schema, language=None, identifier=identifier)
    assert time.monotonic() - started < 2.0
    assert not verdict.valid and verdict.reason is not None
    assert verdict.reason.startswith("schema: at a: ") and "does not match" in verdict.reason
    assert check('{"a": "aaa"}', schema=schema, language=None, identifier=identifier).valid


def test_pattern_properties_and_additional_properties_use_re2_too(identifier: LanguageIdentifier) -> None:
    schema = {
        "type": "object",
        "patternProperties": {CATASTROPHIC: {"type": "integer"}},
        "additionalProperties": False,
    }
    key = "a" * 50_000 + "b"
    started = time.monotonic()
    verdict = check(json.dumps({key: 1}), schema=schema, language=None, identifier=identifier)
    assert time.monotonic() - started < 2.0
    assert not verdict.valid and "Additional properties" in (verdict.reason or "")
    assert check('{"aa": 1}', schema=schema, language=None, identifier=identifier).valid
    assert not check('{"aa": "x"}', schema=schema, language=None, identifier=identifier).valid


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "string", "pattern": "(a)\\1"}, "is not RE2 syntax"),
        ({"type": "string", "pattern": "(?=a)a"}, "is not RE2 syntax"),
        ({"$ref": "https://example.com/s.json"}, "is not inside this schema"),
        ({"properties": {"a": {"$ref": "urn:x"}}}, "is not inside this schema"),
        ({"patternProperties": {"a": {}}, "unevaluatedProperties": False}, "unevaluatedProperties"),
        ({"type": "nope"}, "is not valid"),
        ({"$ref": "#"}, "$ref loop through '#'"),
        ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "$ref loop through '#/$defs/a'"),
        (
            {
                "$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"not": {"$ref": "#/$defs/a"}}},
                "properties": {"x": {"$ref": "#/$defs/a"}},
            },
            "$ref loop",
        ),
        ({"$ref": "#here"}, "is not a JSON pointer"),
        ({"$defs": {"a": {"$anchor": "here"}}}, "$anchor is not supported"),
        ({"$defs": {"a": {"$dynamicAnchor": "n"}}}, "$dynamicAnchor is not supported"),
        ({"properties": {"a": {"$id": "https://x/y", "type": "string"}}}, "$id below the root"),
        (_nested(MAX_SCHEMA_DEPTH + 1), f"limit {MAX_SCHEMA_DEPTH}"),
        (_nested(3000), f"limit {MAX_SCHEMA_DEPTH}"),
        ({"enum": ["x" * (64 * 1024)]}, "bytes"),
    ],
)
def test_unsafe_schemas_are_malformed_requests_not_exceptions(schema: dict[str, Any], fragment: str) -> None:
    problem = schema_problem(schema)
    assert problem is not None and fragment in problem
    with pytest.raises(ValidationError, match="malformed JSON Schema"):
        ScoreRequest.model_validate({"task": "t", "results": ["x"], "schema": schema})


def test_depth_limit_is_exact() -> None:
    assert schema_problem(_nested(MAX_SCHEMA_DEPTH)) is None
    assert schema_problem(_nested(MAX_SCHEMA_DEPTH + 1)) is not None


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"$ref": "#/$defs/nope"}, "schema cannot be applied: unresolvable reference"),
    ],
)
def test_a_local_reference_that_fails_when_applied_is_a_reason_not_an_exception(
    identifier: LanguageIdentifier, schema: dict[str, Any], reason: str
) -> None:
    assert schema_problem(schema) is None  # found only when applied
    assert (first_error(schema, {"a": 1}) or "").startswith(reason)
    verdict = check('{"a": 1}', schema=schema, language=None, identifier=identifier)
    assert (verdict.valid, (verdict.reason or "").startswith(f"schema: {reason}")) == (False, True)


def test_local_refs_and_recursive_schemas_still_work(identifier: LanguageIdentifier) -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            }
        },
        "$ref": "#/$defs/node",
    }
    assert schema_problem(tree) is None
    assert check('{"kids": [{"kids": []}]}', schema=tree, language=None, identifier=identifier).valid
    assert not check('{"kids": [{"kids": 3}]}', schema=tree, language=None, identifier=identifier).valid


def _workflow(schema: dict[str, Any]) -> bytes:
    task = {
        "id": "a",
        "prompt": "Say {topic}.",
        "inputs": [{"name": "topic", "value": {"type": "input", "key": ""}, "required": True}],
        "operator": "generation",
        "outputs": [{"type": "write", "key": "out", "value": "__result"}],
        "schema": json.dumps(schema),
    }
    data = {
        "config": {"max_steps": 5, "max_time": 60, "tools": [""]},
        "tasks": [task, {"id": "__end", "operator": "end"}],
        "steps": [{"source": "a", "target": "__end"}],
        "return_value": {"input": {"type": "read", "key": "out"}},
    }
    return json.dumps(data).encode()


def test_job_contract_refuses_an_unsafe_workflow_schema_once_per_job() -> None:
    ok = job_contract(
        _workflow({"type": "object", "properties": {"a": {"type": "string", "pattern": "^a+$"}}})
    )
    assert ok.refused is None and ok.output_schema is not None, ok.reason
    bad = job_contract(
        _workflow({"type": "object", "properties": {"a": {"type": "string", "pattern": "(a)\\1"}}})
    )
    assert bad.output_schema is None
    assert (bad.refused or "").startswith("malformed workflow schema: pattern '(a)\\\\1' is not RE2 syntax")


def test_unique_items_is_linear_and_keeps_json_equality(identifier: LanguageIdentifier) -> None:
    """Review finding (rev4): ``jsonschema``'s ``uniqueItems`` compared every pair of objects: a node's
    4,000-object array (43 KB, under the 64 KiB limit) took 37.6 s to check."""
    schema = {"type": "array", "uniqueItems": True}
    many = [{"a": i, "b": [i, {"c": str(i)}]} for i in range(6000)]
    started = time.monotonic()
    assert first_error(schema, many) is None
    assert first_error(schema, [*many, {"b": [5, {"c": "5"}], "a": 5.0}]) is not None  # key order, 5 == 5.0
    assert time.monotonic() - started < 2.0
    assert (
        first_error(schema, [1, True]) is None and first_error(schema, [0, False, None, "0", [], {}]) is None
    )
    assert first_error(schema, [1, 1.0]) is not None and first_error(schema, [[1, 2], [1, 2]]) is not None
    assert first_error(schema, [{"a": [1]}, {"a": [1.0]}]) is not None
    assert first_error({"uniqueItems": False}, [1, 1]) is None
    verdict = check(json.dumps(many[:3] + many[:1]), schema=schema, language=None, identifier=identifier)
    assert not verdict.valid and "non-unique" in (verdict.reason or "")
