"""Rejection of invalid and hostile workflows, before any model call, naming the JSON path and reason;
warnings (errors under ``strict``) for what the original engine accepts but is probably a mistake."""

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
from workflow.validate import (
    MAX_PROMPT_BYTES,
    entry_input_keys,
    inspect_workflow,
    load_workflow,
    parse_workflow,
    parse_workflow_text,
)

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
    ("missing config", _del("config"), "config", "required field is missing"),
    ("missing max_steps", _del("config.max_steps"), "config.max_steps", "required field is missing"),
    ("missing operator", _del("tasks.0.operator"), "tasks[0].operator", "required field is missing"),
    ("missing prompt", _del("tasks.0.prompt"), "tasks[0].prompt", "required field is missing"),
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
    ("step from undefined task", _set("steps.0.source", "Q"), "steps[0].source", "no task with id 'Q'"),
    ("duplicate id", _set("tasks.1.id", "A"), "tasks[1].id", "duplicate task id 'A'"),
    ("huge prompt", _set("tasks.0.prompt", "x" * (MAX_PROMPT_BYTES + 1)), "tasks[0].prompt", "over the"),
    ("cycle with no exit", _loop_forever, "steps", "no path from 'A'"),
    ("trap cycle", _trap_cycle, "steps", "cycle with no exit"),
    ("deep nesting", _deep, "external_memory.deep" + ".x" * 30, "nested deeper than 32"),
    ("no steps", _set("steps", []), "steps", "at least 1"),
    ("negative max_time", _set("config.max_time", -1), "config.max_time", "greater than 0"),
    (
        "read without key",
        _set("tasks.0.inputs.0.value", {"type": "read", "key": ""}),
        "tasks[0].inputs[0].value.key",
        "a read needs a key",
    ),
    ("bad schema", _set("tasks.0.schema", "%%%"), "tasks[0].schema", "neither a JSON schema nor base64"),
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


def _to_nowhere(data: dict[str, Any]) -> None:
    data["tasks"].append(dict(data["tasks"][0], id="B"))
    data["steps"] = [{"source": "A", "target": "B"}]


WARNINGS: list[tuple[str, Mutator, str, str]] = [
    ("unknown field", _set("tasks.0.colour", "red"), "tasks[0].colour", "unknown field 'colour'"),
    ("unknown top field", _set("extra", 1), "extra", "unknown field 'extra'"),
    (
        "unknown field in a value",
        _set("tasks.0.inputs.0.value.required", True),
        "tasks[0].inputs[0].value.required",
        "unknown field 'required'",
    ),
    ("step to undefined task", _set("steps.0.target", "end"), "steps[0].target", "the run ends there"),
    ("fallback to undefined", _set("steps.0.fallback", "nowhere"), "steps[0].fallback", "'nowhere'"),
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
    ("unknown tool", _set("config.tools", ["telescope"]), "config.tools[0]", "unknown tool 'telescope'"),
    ("empty tool name", _set("config.tools", [""]), "config.tools[0]", "unknown tool ''"),
    (
        "replace without rhs",
        _set("return_value.post_process", [{"process_type": "replace", "lhs": "a"}]),
        "return_value.post_process[0]",
        "replace needs both lhs and rhs",
    ),
    (
        "function calling without tools",
        _set("tasks.0.operator", "function_calling"),
        "tasks[0].operator",
        "no config.tools",
    ),
    ("task without own step", _to_nowhere, "tasks[2].id", "without running it"),
]


@pytest.mark.parametrize(("label", "mutate", "path", "reason"), WARNINGS, ids=[c[0] for c in WARNINGS])
def test_what_the_original_accepts_is_a_warning_and_an_error_under_strict(
    label: str, mutate: Mutator, path: str, reason: str
) -> None:
    data = workflow_dict()
    mutate(data)
    checked = inspect_workflow(data)
    assert [(w.path, reason in w.reason) for w in checked.warnings] == [(path, True)], (
        label,
        checked.warnings,
    )
    with pytest.raises(WorkflowValidationError) as info:
        parse_workflow(data, strict=True)
    assert info.value.path == path and reason in info.value.reason, (label, str(info.value))


def test_unknown_fields_are_dropped_where_they_stand() -> None:
    data = workflow_dict()
    data["return_value"]["input"]["required"] = True  # a single read inside a union
    data["steps"][0]["note"] = "x"
    checked = inspect_workflow(data)
    assert sorted(w.path for w in checked.warnings) == ["return_value.input.required", "steps[0].note"]
    assert "required" in data["return_value"]["input"]  # the caller's data is not changed
    assert checked.workflow.return_value.input == parse_workflow(workflow_dict()).return_value.input


def test_sdk_style_explicit_nulls_and_a_missing_required_flag_take_defaults() -> None:
    data = workflow_dict()
    data["name"] = None
    data["config"].update({"tools": None, "stop": None, "seed": None, "custom_tools": None})
    data["tasks"][0].update({"name": None, "description": None, "schema": None, "outputs": None})
    del data["tasks"][0]["inputs"][0]["required"]
    checked = inspect_workflow(data)
    assert checked.warnings == ()
    task = checked.workflow.tasks[0]
    assert (task.name, task.outputs, task.inputs[0].required) == ("", (), False)
    assert (checked.workflow.config.tools, checked.workflow.config.seed) == ((), 0)


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


EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.json") if not p.name.endswith(".input.json"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_validates_strictly_and_ships_a_sample_input(path: Path) -> None:
    workflow = load_workflow(path, strict=True)
    assert isinstance(workflow, Workflow) and workflow.description
    sample = json.loads(path.with_suffix(".input.json").read_text(encoding="utf-8"))
    # an entry input the workflow's own external_memory supplies needs no sample value
    needed = set(entry_input_keys(workflow)) - set(workflow.external_memory or {})
    assert needed and needed <= set(sample), (path.name, needed, sorted(sample))
    assert all(isinstance(v, str) and v.strip() for v in sample.values())
