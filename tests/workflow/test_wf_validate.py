"""Rejection of invalid and hostile workflows, before any model call, naming the JSON path and reason."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from wf_helpers import EXAMPLES, workflow_dict

from workflow.errors import WorkflowValidationError
from workflow.model import Operator, Workflow
from workflow.validate import MAX_PROMPT_BYTES, load_workflow, parse_workflow, parse_workflow_text

pytestmark = pytest.mark.unit

Mutator = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutator:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _del(path: str) -> Mutator:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[parts[-1]]

    return mutate


def _loop_forever(data: dict[str, Any]) -> None:
    data["tasks"].append(dict(data["tasks"][0], id="B"))
    data["steps"] = [{"source": "A", "target": "B"}, {"source": "B", "target": "A"}]


def _trap_cycle(data: dict[str, Any]) -> None:
    data["tasks"].append(dict(data["tasks"][0], id="B"))
    data["steps"] = [
        {
            "source": "A",
            "target": "__end",
            "condition": {
                "input": {"type": "read", "key": "out"},
                "expression": "Equal",
                "expected": "x",
                "target_if_not": "B",
            },
        },
        {"source": "B", "target": "B"},
    ]


def _deep(data: dict[str, Any]) -> None:
    node: dict[str, Any] = {}
    data["external_memory"] = {"deep": node}
    for _ in range(100):
        node["x"] = {}
        node = node["x"]


CASES: list[tuple[str, Mutator, str, str]] = [
    ("unknown operator", _set("tasks.0.operator", "telepathy"), "tasks[0].operator", "Input should be"),
    ("unknown field", _set("tasks.0.colour", "red"), "tasks[0].colour", "unknown field 'colour'"),
    ("unknown top field", _set("extra", 1), "extra", "unknown field"),
    ("missing config", _del("config"), "config", "required field is missing"),
    ("missing max_steps", _del("config.max_steps"), "config.max_steps", "required field is missing"),
    ("missing operator", _del("tasks.0.operator"), "tasks[0].operator", "required field is missing"),
    ("missing prompt", _del("tasks.0.prompt"), "tasks[0].prompt", "required field is missing"),
    ("missing required flag", _del("tasks.0.inputs.0.required"), "tasks[0].inputs[0].required", "missing"),
    (
        "bad value type",
        _set("tasks.0.inputs.0.value.type", "teleport"),
        "tasks[0].inputs[0].value.type",
        "Input",
    ),
    ("bad output type", _set("tasks.0.outputs.0.type", "shred"), "tasks[0].outputs[0].type", "Input"),
    (
        "bad expression",
        _set(
            "steps.0.condition",
            {
                "input": {"type": "read", "key": "a"},
                "expected": "1",
                "expression": "Roughly",
                "target_if_not": "A",
            },
        ),
        "steps[0].condition.expression",
        "Input",
    ),
    ("step to undefined task", _set("steps.0.target", "Z"), "steps[0].target", "no task with id 'Z'"),
    ("step from undefined task", _set("steps.0.source", "Q"), "steps[0].source", "no task with id 'Q'"),
    ("fallback to undefined", _set("steps.0.fallback", "nowhere"), "steps[0].fallback", "'nowhere'"),
    ("duplicate id", _set("tasks.1.id", "A"), "tasks[1].id", "duplicate task id 'A'"),
    (
        "unbound placeholder",
        _set("tasks.0.prompt", "About {topik}"),
        "tasks[0].prompt",
        "{topik} is never bound",
    ),
    (
        "unbound double placeholder",
        _set("tasks.0.prompt", "{{who}}"),
        "tasks[0].prompt",
        "{who} is never bound",
    ),
    ("huge prompt", _set("tasks.0.prompt", "x" * (MAX_PROMPT_BYTES + 1)), "tasks[0].prompt", "over the"),
    ("cycle with no exit", _loop_forever, "steps", "no path from 'A'"),
    ("trap cycle", _trap_cycle, "steps", "cycle with no exit"),
    ("deep nesting", _deep, "external_memory.deep" + ".x" * 30, "nested deeper than 32"),
    ("no steps", _set("steps", []), "steps", "at least 1"),
    ("negative max_time", _set("config.max_time", -1), "config.max_time", "greater than 0"),
    ("unknown tool", _set("config.tools", ["telescope"]), "config.tools[0]", "unknown tool 'telescope'"),
    (
        "replace without rhs",
        _set("return_value.post_process", [{"process_type": "replace", "lhs": "a"}]),
        "return_value.post_process[0]",
        "replace needs both lhs and rhs",
    ),
    (
        "read without key",
        _set("tasks.0.inputs.0.value", {"type": "read", "key": ""}),
        "tasks[0].inputs[0].value.key",
        "a read needs a key",
    ),
    ("bad schema", _set("tasks.0.schema", "%%%"), "tasks[0].schema", "not base64"),
    (
        "function calling without tools",
        _set("tasks.0.operator", "function_calling"),
        "tasks[0].operator",
        "needs config.tools",
    ),
    ("check without inputs", _set("tasks.0.operator", "check"), "tasks[0].inputs", "'__output'"),
    (
        "return list item missing key",
        _set("return_value", {"input": [{"type": "read"}]}),
        "return_value.input[0].key",
        "required field is missing",
    ),
    (
        "bad custom tool",
        _set("config.custom_tools", [{"name": "t", "description": "d", "mode": "http_request"}]),
        "config.custom_tools[0]",
        "needs 'url' and 'method'",
    ),
]


@pytest.mark.parametrize(("label", "mutate", "path", "reason"), CASES, ids=[c[0] for c in CASES])
def test_invalid_workflow_is_rejected_with_path_and_reason(
    label: str, mutate: Mutator, path: str, reason: str
) -> None:
    data = workflow_dict()
    mutate(data)
    with pytest.raises(WorkflowValidationError) as info:
        parse_workflow(data)
    assert info.value.path == path, (label, str(info.value))
    assert reason in info.value.reason, (label, str(info.value))


def test_task_without_own_step_is_rejected() -> None:
    data = workflow_dict()
    data["tasks"].append(dict(data["tasks"][0], id="B"))
    data["steps"] = [{"source": "A", "target": "B"}]
    with pytest.raises(WorkflowValidationError) as info:
        parse_workflow(data)
    assert info.value.path == "tasks[2].id" and "would never run" in info.value.reason


def test_not_json_and_not_object() -> None:
    with pytest.raises(WorkflowValidationError, match=r"^\$: not JSON"):
        parse_workflow_text("{nope")
    with pytest.raises(WorkflowValidationError, match="a workflow is a JSON object"):
        parse_workflow_text("[1, 2]")


def test_very_deep_json_text_fails_fast() -> None:
    with pytest.raises(WorkflowValidationError, match="nested deeper"):
        parse_workflow_text("[" * 100_000 + "]" * 100_000)


def test_deep_json_is_refused_before_the_parser_even_with_a_raised_recursion_limit() -> None:
    """json.loads recurses in C per level: with a high recursion limit it would overflow the C stack."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        with pytest.raises(WorkflowValidationError, match="nested deeper"):
            parse_workflow_text('{"a": ' * 200_000 + "1" + "}" * 200_000)
    finally:
        sys.setrecursionlimit(limit)
    # brackets inside strings are text, not nesting
    with pytest.raises(WorkflowValidationError) as info:
        parse_workflow_text('{"name": "' + "[" * 1000 + '"}')
    assert "nested deeper" not in str(info.value)


def test_ten_megabyte_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    data = workflow_dict()
    data["tasks"][0]["prompt"] = "x" * (10 * 1024 * 1024)
    big.write_text(json.dumps(data))
    with pytest.raises(WorkflowValidationError, match="over the"):
        load_workflow(big)


def test_missing_file() -> None:
    with pytest.raises(WorkflowValidationError, match="cannot read the file"):
        load_workflow("/nonexistent/workflow.json")


def test_model_is_frozen() -> None:
    workflow = parse_workflow(workflow_dict())
    with pytest.raises(ValueError):
        workflow.tasks[0].id = "B"  # type: ignore[misc]


def test_original_field_names_and_variants_are_accepted() -> None:
    data = workflow_dict()
    data["config"].update(
        {"custom_tool": None, "max_tokens": 100, "temperature": 0.2, "top_k": 5, "logits": False}
    )
    data["tasks"][0]["schema"] = "eyJ0eXBlIjogIm9iamVjdCJ9"  # {"type": "object"}
    data["tasks"][0]["inputs"].append(
        {
            "name": "n",
            "value": {"type": "search", "key": "", "search_query": {"type": "read", "key": "q"}},
            "required": False,
        }
    )
    data["steps"][0]["fallback"] = "__end"
    data["return_value"] = {"input": [{"type": "read", "key": "out"}], "to_json": False, "post_process": []}
    workflow = parse_workflow(data)
    assert workflow.tasks[0].operator is Operator.GENERATION
    assert workflow.tasks[0].schema_ == "eyJ0eXBlIjogIm9iamVjdCJ9"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    workflow = load_workflow(path)
    assert isinstance(workflow, Workflow) and workflow.description
