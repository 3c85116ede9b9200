"""``declared_output``: the output schema and determinism a workflow declares, checked on real engine runs."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import pytest
import trio
from jsonschema import Draft202012Validator
from wf_helpers import EXAMPLES, ScriptedProvider, workflow_dict

from workflow.engine import Engine
from workflow.errors import WorkflowValidationError
from workflow.outputs import Determinism, declared_output
from workflow.validate import parse_workflow

pytestmark = pytest.mark.unit

ANSWER = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["answer"],
    "additionalProperties": False,
}
OTHER = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
GOOD = '{"answer": "Paris", "confidence": 0.9}'


def _gen(
    task_id: str, key: str, *, schema: Any = None, kind: str = "write", value: str = "__result"
) -> dict[str, Any]:
    task: dict[str, Any] = {
        "id": task_id,
        "prompt": f"Answer about {{topic}} ({task_id}).",
        "inputs": [{"name": "topic", "value": {"type": "input", "key": ""}, "required": True}],
        "operator": "generation",
        "outputs": [{"type": kind, "key": key, "value": value}],
    }
    if schema is not None:
        task["schema"] = schema if isinstance(schema, str) else json.dumps(schema)
    return task


def _end() -> dict[str, Any]:
    return {"id": "__end", "operator": "end"}


def _wf(
    tasks: list[dict[str, Any]], steps: list[dict[str, Any]], rv: dict[str, Any], **config: Any
) -> dict[str, Any]:
    data = workflow_dict(tasks=[*tasks, _end()], steps=steps, return_value=rv)
    data["config"].update(config)
    return data


def _chain(*ids: str) -> list[dict[str, Any]]:
    return [{"source": a, "target": b} for a, b in zip(ids, [*ids[1:], "__end"], strict=True)]


def _run(data: dict[str, Any], replies: list[str]) -> str:
    """The value a real engine run returns with the model scripted to ``replies``."""

    async def main() -> str:
        result = await Engine(ScriptedProvider(replies)).run(parse_workflow(data), {"topic": "France"})
        return result.value

    return trio.run(main)


def _conforms(schema: dict[str, Any], text: str) -> bool:
    return Draft202012Validator(schema).is_valid(json.loads(text))


def test_a_schema_writer_declares_its_schema_and_real_runs_meet_it() -> None:
    data = _wf([_gen("A", "out", schema=ANSWER)], _chain("A"), {"input": {"type": "read", "key": "out"}})
    contract = declared_output(parse_workflow(data))
    assert contract.schema == ANSWER and contract.schema_error is None
    assert "tasks[0]" in contract.reason
    assert _conforms(ANSWER, _run(data, ["  " + GOOD + "\n"]))  # stored as JSON, rendered compact
    assert not _conforms(ANSWER, _run(data, ['{"answer": 3}']))


def test_a_base64_schema_and_gemini_type_names_decode_to_the_same_schema() -> None:
    gemini = json.dumps(ANSWER).replace('"object"', '"OBJECT"').replace('"string"', '"STRING"')
    encoded = base64.b64encode(gemini.encode()).decode()
    data = _wf([_gen("A", "out", schema=encoded)], _chain("A"), {"input": {"type": "read", "key": "out"}})
    assert declared_output(parse_workflow(data)).schema == ANSWER


def test_a_format_constraint_is_not_a_json_schema() -> None:
    encoded = base64.b64encode(b"^[A-Z][a-z]+$").decode()
    data = _wf([_gen("A", "out", schema=encoded)], _chain("A"), {"input": {"type": "read", "key": "out"}})
    contract = declared_output(parse_workflow(data))
    assert contract.schema is None and contract.schema_error is None
    assert "format constraint" in contract.reason


def test_two_writers_one_without_schema_declare_none() -> None:
    tasks = [_gen("A", "out", schema=ANSWER), _gen("B", "out")]
    data = _wf(tasks, _chain("A", "B"), {"input": {"type": "read", "key": "out"}})
    contract = declared_output(parse_workflow(data))
    assert contract.schema is None
    assert "tasks[1] ('B') writes 'out' without a schema" in contract.reason
    assert not _conforms(ANSWER, json.dumps(_run(data, [GOOD, "Paris."])))  # B's plain text is returned


def test_two_writers_with_the_same_schema_declare_it_different_ones_none() -> None:
    same = _wf(
        [_gen("A", "out", schema=ANSWER), _gen("B", "out", schema=ANSWER)],
        _chain("A", "B"),
        {"input": {"type": "read", "key": "out"}},
    )
    assert declared_output(parse_workflow(same)).schema == ANSWER
    differ = _wf(
        [_gen("A", "out", schema=ANSWER), _gen("B", "out", schema=OTHER)],
        _chain("A", "B"),
        {"input": {"type": "read", "key": "out"}},
    )
    contract = declared_output(parse_workflow(differ))
    assert contract.schema is None and "different schemas" in contract.reason


def test_writers_that_cannot_run_do_not_count() -> None:
    # C writes 'out' without a schema but no step reaches it; a check task's outputs are never applied
    check = {
        "id": "K",
        "operator": "check",
        "inputs": [
            {"name": "__output", "value": {"type": "read", "key": "out"}},
            {"name": "__expected", "value": {"type": "string", "key": "x"}},
        ],
        "outputs": [{"type": "write", "key": "out", "value": "oops"}],
    }
    tasks = [_gen("A", "out", schema=ANSWER), check, _gen("C", "out")]
    steps = [{"source": "A", "target": "K"}, {"source": "K", "target": "__end", "fallback": "__end"}]
    data = _wf(tasks, steps, {"input": {"type": "read", "key": "out"}})
    assert declared_output(parse_workflow(data)).schema == ANSWER
    # once a step reaches C, its schema-less write counts
    steps[1] = {"source": "K", "target": "__end", "fallback": "C"}
    steps.append({"source": "C", "target": "__end"})
    data = _wf(tasks, steps, {"input": {"type": "read", "key": "out"}})
    assert "tasks[2] ('C') writes 'out' without a schema" in declared_output(parse_workflow(data)).reason


def test_a_literal_write_a_tool_task_or_prefilled_memory_declare_none() -> None:
    literal = _wf(
        [_gen("A", "out", schema=ANSWER, value='{"answer": "fixed"}')],
        _chain("A"),
        {"input": {"type": "read", "key": "out"}},
    )
    assert "writes a literal" in declared_output(parse_workflow(literal)).reason
    prefilled = _wf([_gen("A", "out", schema=ANSWER)], _chain("A"), {"input": {"type": "read", "key": "out"}})
    prefilled["external_memory"] = {"out": "default"}
    assert "external_memory" in declared_output(parse_workflow(prefilled)).reason
    stack_only = _wf(
        [_gen("A", "out", schema=ANSWER)], _chain("A"), {"input": {"type": "read", "key": "out"}}
    )
    stack_only["external_memory"] = {"out": ["a stack, not the cache"]}  # other namespace: no effect
    assert declared_output(parse_workflow(stack_only)).schema == ANSWER
    tool = _wf([_gen("A", "out", schema=ANSWER)], _chain("A"), {"input": {"type": "read", "key": "out"}})
    tool["tasks"][0]["operator"] = "function_calling"
    tool["config"]["tools"] = ["ALL"]
    assert "function_calling task" in declared_output(parse_workflow(tool)).reason


@pytest.mark.parametrize(
    ("steps", "kept"),
    [
        ([{"process_type": "trim"}, {"process_type": "trim_end"}], True),
        ([{"process_type": "append"}, {"process_type": "replace", "lhs": "a"}], True),  # skipped steps
        ([{"process_type": "replace", "lhs": "x", "rhs": "x"}], True),
        ([{"process_type": "to_upper"}], False),
        ([{"process_type": "replace", "lhs": "Paris", "rhs": "Lyon"}], False),
        ([{"process_type": "append", "rhs": "!"}], False),
    ],
)
def test_post_process_keeps_the_schema_only_when_it_keeps_the_text(
    steps: list[dict[str, Any]], kept: bool
) -> None:
    rv = {"input": {"type": "read", "key": "out"}, "post_process": steps}
    data = _wf([_gen("A", "out", schema=ANSWER)], _chain("A"), rv)
    contract = declared_output(parse_workflow(data))
    assert (contract.schema == ANSWER) is kept
    if kept:
        assert _conforms(ANSWER, _run(data, [GOOD]))
    else:
        assert "post_process" in contract.reason


def test_structured_to_json_skips_post_process() -> None:
    rv = {
        "input": {"type": "read", "key": "out"},
        "to_json": True,
        "structured": True,
        "post_process": [{"process_type": "to_upper"}],
    }
    data = _wf([_gen("A", "out", schema=ANSWER)], _chain("A"), rv)
    assert declared_output(parse_workflow(data)).schema == ANSWER
    assert _conforms(ANSWER, _run(data, [GOOD]))


def test_pop_of_pushed_results_declares_the_schema() -> None:
    data = _wf(
        [_gen("A", "out", schema=ANSWER, kind="push")], _chain("A"), {"input": {"type": "pop", "key": "out"}}
    )
    assert declared_output(parse_workflow(data)).schema == ANSWER
    assert _conforms(ANSWER, _run(data, [GOOD]))
    wrong_namespace = _wf(
        [_gen("A", "out", schema=ANSWER, kind="push")], _chain("A"), {"input": {"type": "read", "key": "out"}}
    )
    assert "no reachable task writes 'out'" in declared_output(parse_workflow(wrong_namespace)).reason


def test_get_all_declares_an_array_only_as_structured_json() -> None:
    tasks = [_gen("A", "out", schema=ANSWER, kind="push"), _gen("B", "out", schema=ANSWER, kind="push")]
    rv = {"input": {"type": "get_all", "key": "out"}, "to_json": True, "structured": True}
    data = _wf(tasks, _chain("A", "B"), rv)
    contract = declared_output(parse_workflow(data))
    assert contract.schema == {"type": "array", "items": ANSWER}
    assert _conforms(contract.schema, _run(data, [GOOD, '{"answer": "Lyon"}']))
    assert not _conforms(contract.schema, _run(data, [GOOD, "Lyon"]))
    texts: list[dict[str, Any]] = [
        {"input": {"type": "get_all", "key": "out"}},
        {"input": {"type": "get_all", "key": "out"}, "to_json": True},
    ]
    for as_text in texts:
        data = _wf(tasks, _chain("A", "B"), as_text)
        assert declared_output(parse_workflow(data)).schema is None


def test_other_return_values_declare_none() -> None:
    for rv in (
        {"input": [{"type": "read", "key": "out"}, {"type": "read", "key": "out"}], "to_json": True},
        {"input": {"type": "input", "key": ""}},
        {"input": {"type": "string", "key": "{}"}},
    ):
        data = _wf([_gen("A", "out", schema=ANSWER)], _chain("A"), rv)
        assert declared_output(parse_workflow(data)).schema is None


@pytest.mark.parametrize(
    "schema", [{"type": "objekt"}, {"type": "object", "required": "answer"}, {"minLength": -1}]
)
def test_a_malformed_json_schema_is_reported(schema: dict[str, Any]) -> None:
    data = _wf([_gen("A", "out", schema=schema)], _chain("A"), {"input": {"type": "read", "key": "out"}})
    contract = declared_output(parse_workflow(data))
    assert contract.schema is None
    assert contract.schema_error is not None
    assert contract.schema_error.startswith("malformed workflow schema: tasks[0] ('A'): ")


def test_a_malformed_schema_on_a_task_not_returned_is_not_looked_at() -> None:
    tasks = [_gen("A", "draft", schema={"type": "objekt"}), _gen("B", "out", schema=ANSWER)]
    data = _wf(tasks, _chain("A", "B"), {"input": {"type": "read", "key": "out"}})
    contract = declared_output(parse_workflow(data))
    assert contract.schema == ANSWER and contract.schema_error is None


def _text_only() -> dict[str, Any]:
    task = {
        "id": "T",
        "prompt": "copy",
        "inputs": [{"name": "text", "value": {"type": "input", "key": ""}, "required": True}],
        "operator": "text",
        "outputs": [{"type": "write", "key": "out", "value": "__result"}],
    }
    return _wf([task], _chain("T"), {"input": {"type": "read", "key": "out"}})


def test_determinism_levels() -> None:
    text_only = _text_only()
    contract = declared_output(parse_workflow(text_only))
    assert contract.determinism is Determinism.EXACT and contract.deterministic
    assert _run(text_only, []) == _run(text_only, [])
    default = _wf([_gen("A", "out")], _chain("A"), {"input": {"type": "read", "key": "out"}})
    assert declared_output(parse_workflow(default)).determinism is Determinism.GREEDY  # engine default: 0
    zero = _wf([_gen("A", "out")], _chain("A"), {"input": {"type": "read", "key": "out"}}, temperature=0)
    assert declared_output(parse_workflow(zero)).determinism is Determinism.GREEDY
    sampled = _wf(
        [_gen("A", "out")], _chain("A"), {"input": {"type": "read", "key": "out"}}, temperature=0.01
    )
    contract = declared_output(parse_workflow(sampled))
    assert contract.determinism is Determinism.SAMPLED and not contract.deterministic
    assert "temperature 0.01" in contract.reason


def test_a_search_is_never_exact_and_unreachable_model_calls_do_not_count() -> None:
    search = _text_only()
    search["tasks"][0]["inputs"][0]["value"] = {"type": "search", "key": "France"}
    assert declared_output(parse_workflow(search)).determinism is Determinism.GREEDY
    data = _text_only()
    data["tasks"].insert(1, _gen("A", "other"))  # never reached: no step goes to A
    data["config"]["temperature"] = 0.9
    assert declared_output(parse_workflow(data)).determinism is Determinism.EXACT


def test_the_examples_derive_a_contract() -> None:
    for path in sorted(EXAMPLES.glob("*.json")):
        if path.name.endswith(".input.json"):
            continue
        contract = declared_output(parse_workflow(json.loads(path.read_text(encoding="utf-8"))))
        assert contract.schema_error is None and contract.reason


@pytest.mark.parametrize("encode", [False, True])
@pytest.mark.parametrize("levels", [32, 33, 20_000])
def test_a_schema_string_nested_too_deep_is_refused_before_it_is_decoded(encode: bool, levels: int) -> None:
    """Review finding (rev4): a 20,000-level schema string segfaulted the validator daemon (py_ecc
    raises the recursion limit, so decoding and ``check_schema`` overflowed the C stack)."""
    text = '{"items":' * (levels - 1) + "{}" + "}" * (levels - 1)
    schema = base64.b64encode(text.encode()).decode() if encode else text
    data = _wf([_gen("A", "out", schema=schema)], _chain("A"), {"input": {"type": "read", "key": "out"}})
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # as in the daemon: py_ecc sets it on import
    try:
        if levels <= 32:
            contract = declared_output(parse_workflow(data))
            assert contract.schema_error is None and contract.schema is not None
        else:
            # refused when the workflow is parsed (workflow.schema checks the depth before decoding):
            # the node never runs it and the validator declares nothing for it
            with pytest.raises(WorkflowValidationError, match="nested deeper than 32 levels"):
                parse_workflow(data)
    finally:
        sys.setrecursionlimit(limit)


def test_the_entry_input_key_is_prefilled_so_it_declares_no_schema() -> None:
    """Review finding (rev4): the engine writes the job's row to ``__input`` before the first step,
    so a returned ``read __input`` is the row itself on any path where the schema task does not run
    (here a condition skips it); the schema must not be declared (an honest node would score 0)."""
    skip: dict[str, Any] = {
        "source": "A",
        "target": "__end",
        "condition": {
            "input": {"type": "input", "key": ""},
            "expression": "Equal",
            "expected": "skip",
            "target_if_not": "B",
        },
    }
    check_task = {"id": "A", "operator": "end", "inputs": [], "outputs": []}
    steps = [skip, {"source": "B", "target": "__end"}]
    data = _wf(
        [check_task, _gen("B", "__input", schema=ANSWER)],
        steps,
        {"input": {"type": "read", "key": "__input"}},
    )
    workflow = parse_workflow(data)
    contract = declared_output(workflow)
    assert contract.schema is None and contract.schema_error is None
    assert "__input" in contract.reason, contract.reason
