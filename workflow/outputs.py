"""What a workflow declares about its own return value: an output JSON schema and how reproducible it is.

A validator scores a node's result against the job's workflow, in the workflow's original format
(no new field): :func:`declared_output` reads it off the program.

**Schema.** The return value (``return_value.input``) is one memory read. The engine's memory has two
namespaces: the cache (``write`` outputs, non-list ``external_memory`` entries; read by ``read``) and
the stacks (``push`` outputs, list ``external_memory`` entries; read by ``pop``, ``peek`` and
``get_all``). The *writers* of the returned key are the reachable tasks (from the first step, along
every ``target``, ``target_if_not`` and ``fallback``) whose outputs write that key in that namespace;
``check`` and ``end`` tasks never write (the engine applies no outputs for them). A schema is declared
when every writer is a ``generation`` task whose ``schema`` decodes (:func:`workflow.schema.decode_schema`)
to a JSON schema, every writer stores ``__result`` (not a literal), no ``external_memory`` entry
pre-fills the key (nor the engine: it writes the entry input to ``__input`` before the first step,
so a path that skips the writers returns the row), and the writers' schemas are equal. Then the
returned text is that JSON document (the engine stores a reply that parses as JSON as a JSON
entry and renders it compact):

* ``read`` / ``pop`` / ``peek``: the schema itself, unless the text path's ``post_process`` changes the
  text: ``trim``, ``trim_start`` and ``trim_end`` leave compact JSON as it is, and a ``replace`` /
  ``append`` / ``prepend`` missing its operand is skipped (as the engine does); any other step
  (``to_lower``, ``to_upper``, a real ``replace``, ``append``, ``prepend``) means no schema;
* ``get_all`` with ``to_json`` and ``structured``: ``{"type": "array", "items": <schema>}`` (the
  engine returns the stack's JSON values as one array; ``post_process`` does not apply);
* ``get_all`` otherwise (entries joined as text, or an array of their texts), several reads, and
  reads of the entry input, a literal, a size or a search: no schema.

A writer's JSON schema that is not a valid JSON Schema (draft 2020-12, ``jsonschema``'s
``check_schema``) makes the contract *malformed* (``schema_error``): the declared output cannot be
checked; so does a schema string (or its base64 text) nested deeper than ``MAX_DEPTH`` brackets,
refused before it is decoded (the C JSON parser and ``check_schema`` recurse once per level).
A format constraint (base64 of text that is not a JSON object) is not a JSON schema: no
schema. A malformed schema on a task whose result is not returned is not looked at (nothing of it
reaches the result).

**Determinism** (:class:`Determinism`), from the reachable tasks:

* ``exact``: no task calls a model (``generation``, ``function_calling``, ``function_calling_raw``)
  or searches (the web or the memory's embedding index, including ``search`` reads and
  ``HaveSimilar`` conditions): ``text``, ``sample`` (seeded by ``config.seed``), ``check`` and ``end``
  only. Every honest node returns the same bytes.
* ``greedy``: models are called, all at temperature 0 (``config.temperature`` 0 or absent: the engine
  sends 0 then). Greedy decoding is reproducible on one build, but the same model can still differ
  across CPUs, quantisations and llama.cpp/Ollama builds (floating-point sums in another order pick
  another arg-max on near ties), and searches and tools read a changing world. So identical bytes are
  evidence of agreement, a difference is not evidence of a bad result.
* ``sampled``: a model is called at temperature > 0.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError as JsonSchemaError

from workflow.model import (
    R_END,
    R_INPUT,
    R_OUTPUT,
    Expression,
    InputValue,
    InputValueType,
    Operator,
    OutputType,
    PostProcessType,
    Task,
    TaskPostProcess,
    Workflow,
)
from workflow.schema import JsonSchema, SchemaError, decode_schema
from workflow.schema import json_text_depth as _text_depth
from workflow.validate import MAX_DEPTH, first_edges

MODEL_OPERATORS = frozenset({Operator.GENERATION, Operator.FUNCTION_CALLING, Operator.FUNCTION_CALLING_RAW})
"""Operators that call the model."""

_NO_WRITE = frozenset({Operator.CHECK, Operator.END})
"""Operators whose outputs the engine never applies."""

_TEXT_PRESERVING = frozenset({PostProcessType.TRIM, PostProcessType.TRIM_START, PostProcessType.TRIM_END})


class Determinism(StrEnum):
    """How reproducible a workflow's result is (see the module docstring)."""

    EXACT = "exact"
    GREEDY = "greedy"
    SAMPLED = "sampled"


@dataclass(frozen=True)
class OutputContract:
    """What :func:`declared_output` found.

    ``schema``: the JSON Schema (draft 2020-12) every honest result satisfies, or None.
    ``schema_error``: why the declared schema is malformed (then ``schema`` is None), or None.
    ``determinism``: :class:`Determinism`. ``reason``: one line saying how both were derived.
    """

    schema: dict[str, Any] | None
    determinism: Determinism
    reason: str
    schema_error: str | None = None

    @property
    def deterministic(self) -> bool:
        """True when the result cannot depend on sampling (``exact`` or ``greedy``)."""
        return self.determinism is not Determinism.SAMPLED


def reachable_tasks(workflow: Workflow) -> list[tuple[int, Task]]:
    """The tasks a run can execute, as (index in ``tasks``, task), in ``tasks`` order.

    Walks the engine's graph: the first step's source, then each task's first step (``target``,
    ``condition.target_if_not``, ``fallback``). A task with no step of its own is never executed.
    """
    edges = first_edges(workflow.steps)
    start = workflow.steps[0].source
    seen = {start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        edge = edges.get(node) if node != R_END else None
        if edge is None:
            continue
        nexts = [edge.target]
        if edge.condition is not None:
            nexts.append(edge.condition.target_if_not)
        if edge.fallback is not None:
            nexts.append(edge.fallback)
        for nxt in nexts:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return [(i, t) for i, t in enumerate(workflow.tasks) if t.id in seen and t.id in edges]


def _changes_text(step: TaskPostProcess) -> bool:
    kind = step.process_type
    if kind in _TEXT_PRESERVING:
        return False
    if kind is PostProcessType.REPLACE:
        return step.lhs is not None and step.rhs is not None and step.lhs != step.rhs
    if kind is PostProcessType.APPEND:
        return bool(step.rhs)
    if kind is PostProcessType.PREPEND:
        return bool(step.lhs)
    return True  # to_lower, to_upper


def _schema_text_depth(value: str) -> int:
    """The bracket nesting of a task's ``schema`` string, or of its base64 decoding if it has one."""
    found = _text_depth(value)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return found
    return max(found, _text_depth(decoded))


def _schema(
    workflow: Workflow, tasks: list[tuple[int, Task]]
) -> tuple[dict[str, Any] | None, str, str | None]:
    """(schema, reason, schema_error) of the module docstring."""
    rv = workflow.return_value
    if isinstance(rv.input, tuple):
        return None, "no output schema: the return value is several reads", None
    read: InputValue = rv.input
    if read.type is InputValueType.READ:
        namespace = OutputType.WRITE
    elif read.type in (InputValueType.POP, InputValueType.PEEK, InputValueType.GET_ALL):
        namespace = OutputType.PUSH
    else:
        return None, f"no output schema: the return value is a {read.type.value} read", None
    key = read.key
    if read.type is InputValueType.GET_ALL and not (rv.to_json and rv.structured):
        return None, f"no output schema: get_all {key!r} is returned as text, not as JSON values", None
    if key == R_INPUT and namespace is OutputType.WRITE:
        return None, f"no output schema: the engine pre-fills {R_INPUT!r} with the entry input", None
    external = workflow.external_memory or {}
    if key in external and isinstance(external[key], list) == (namespace is OutputType.PUSH):
        return None, f"no output schema: external_memory pre-fills {key!r}", None
    writers = [
        (i, t, out)
        for i, t in tasks
        if t.operator not in _NO_WRITE
        for out in t.outputs
        if out.type is namespace and out.key == key
    ]
    if not writers:
        return None, f"no output schema: no reachable task {namespace.value}s {key!r}", None
    schemas: list[dict[str, Any]] = []
    for i, task, out in writers:
        where = f"tasks[{i}] ({task.id!r})"
        if task.operator is not Operator.GENERATION:
            return None, f"no output schema: {where} writes {key!r} and is a {task.operator.value} task", None
        if out.value != R_OUTPUT:
            return None, f"no output schema: {where} writes a literal to {key!r}", None
        if task.schema_ is None:
            return None, f"no output schema: {where} writes {key!r} without a schema", None
        nesting = _schema_text_depth(task.schema_)
        if nesting > MAX_DEPTH:  # decoding it could overflow the C stack (the limit is raised by py_ecc)
            problem = f"malformed workflow schema: {where}: nested {nesting} levels deep (limit {MAX_DEPTH})"
            return None, f"malformed workflow schema: {where}", problem
        try:
            constraint = decode_schema(task.schema_)
        except SchemaError as exc:
            return None, f"malformed workflow schema: {where}", f"malformed workflow schema: {where}: {exc}"
        except RecursionError:  # json.loads of a schema string nested thousands of levels deep
            return (
                None,
                f"malformed workflow schema: {where}",
                f"malformed workflow schema: {where}: too deep",
            )
        if not isinstance(constraint, JsonSchema):
            return None, f"no output schema: {where} has a format constraint, not a JSON schema", None
        try:
            Draft202012Validator.check_schema(constraint.schema)
        except JsonSchemaError as exc:
            problem = f"malformed workflow schema: {where}: {exc.message[:200]}"
            return None, f"malformed workflow schema: {where}", problem
        except RecursionError:
            return (
                None,
                f"malformed workflow schema: {where}",
                f"malformed workflow schema: {where}: too deep",
            )
        schemas.append(constraint.schema)
    if any(s != schemas[0] for s in schemas[1:]):
        return (
            None,
            f"no output schema: the {len(writers)} writers of {key!r} declare different schemas",
            None,
        )
    names = ", ".join(f"tasks[{i}]" for i, _, _ in writers)
    if read.type is InputValueType.GET_ALL:
        return {"type": "array", "items": schemas[0]}, f"output schema: array of {names}'s schema", None
    structured_json = bool(rv.to_json and rv.structured)
    changing = [s for s in (rv.post_process or ()) if _changes_text(s)]
    if changing and not structured_json:
        step = changing[0].process_type.value
        return None, f"no output schema: return_value.post_process {step} changes the text", None
    return schemas[0], f"output schema: {names}'s schema ({read.type.value} {key!r})", None


def _determinism(workflow: Workflow, tasks: list[tuple[int, Task]]) -> tuple[Determinism, str]:
    model = [f"tasks[{i}]" for i, t in tasks if t.operator in MODEL_OPERATORS]
    searching = [f"tasks[{i}]" for i, t in tasks if t.operator is Operator.SEARCH]
    reads = [inp.value for _, t in tasks for inp in t.inputs]
    rv = workflow.return_value
    reads += list(rv.input) if isinstance(rv.input, tuple) else [rv.input]
    for step in workflow.steps:
        if step.condition is not None:
            reads.append(step.condition.input)
            if step.condition.expression is Expression.HAVE_SIMILAR:
                searching.append(f"a HaveSimilar condition of {step.source!r}")
    if any(r.type is InputValueType.SEARCH for r in reads):
        searching.append("a search read")
    if not model and not searching:
        return Determinism.EXACT, "exact: no task calls a model or searches"
    temperature = workflow.config.temperature or 0.0
    if model and temperature > 0:
        return Determinism.SAMPLED, f"sampled: {model[0]} calls the model at temperature {temperature}"
    what = model[0] + " calls the model at temperature 0" if model else searching[0] + " searches"
    return Determinism.GREEDY, f"greedy: {what}"


def declared_output(workflow: Workflow) -> OutputContract:
    """The :class:`OutputContract` of a checked ``workflow`` (see the module docstring). Pure; never
    raises for a workflow that :func:`workflow.validate.parse_workflow` accepted."""
    tasks = reachable_tasks(workflow)
    schema, schema_reason, problem = _schema(workflow, tasks)
    determinism, why = _determinism(workflow, tasks)
    return OutputContract(
        schema=schema, determinism=determinism, reason=f"{schema_reason}; {why}", schema_error=problem
    )


__all__ = ["MODEL_OPERATORS", "Determinism", "OutputContract", "declared_output", "reachable_tasks"]
