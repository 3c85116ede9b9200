"""Parse and check a workflow before anything runs.

Every rejection is a :class:`WorkflowValidationError` naming the JSON path (``tasks[2].operator``)
and the reason. Checks, in order: size and nesting caps on the raw JSON, the schema (pydantic),
then the program: unique ids, prompts present and under the size cap, operator-specific inputs,
and a step graph in which every reachable task can still reach the end.

Things the original engine (Ollama Workflows) accepts and runs are *warnings*, not errors: an
unknown field (the original's serde ignores it; it is dropped here), a step target or fallback
naming no task (the run ends there), a placeholder no input binds (left in the text), a tool name
Synod does not know (resolved only when a tool-calling task runs), a task that ends the run
without executing. ``strict=True`` turns every warning into a :class:`WorkflowValidationError`,
for authors who want a typo to be an error.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from workflow import textops
from workflow.errors import WorkflowValidationError
from workflow.model import (
    R_END,
    R_EXPECTED,
    R_OUTPUTS,
    Edge,
    InputValue,
    InputValueType,
    Operator,
    PostProcessType,
    Task,
    Workflow,
)
from workflow.prompt import placeholders
from workflow.schema import SchemaError, decode_schema
from workflow.schema import json_text_depth as _text_depth
from workflow.tools.registry import ALL, ORIGINAL_TOOL_NAMES, SYNOD_TOOL_NAMES, known_tool_name

MAX_FILE_BYTES = 8 * 1024 * 1024
"""A workflow file larger than this is refused unread."""
MAX_PROMPT_BYTES = 1024 * 1024
"""A prompt (or one message) larger than this is refused."""
MAX_DEPTH = 32
"""JSON nesting deeper than this is refused."""
MAX_TASKS = 1000
MAX_STEPS = 1000

_KEYED = {
    InputValueType.READ,
    InputValueType.POP,
    InputValueType.PEEK,
    InputValueType.GET_ALL,
    InputValueType.SIZE,
}


def _depth_error(value: Any, limit: int) -> str | None:
    """The path of the first value nested deeper than ``limit``, iteratively (no recursion)."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "$")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict | list) and depth > limit:
            return path
        if isinstance(node, dict):
            for key, item in node.items():
                stack.append((item, depth + 1, f"{path}.{key}" if path != "$" else str(key)))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                stack.append((item, depth + 1, f"{path}[{i}]"))
    return None


def _loc_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part and (part[0].isupper() or "[" in part or "," in part):
            continue  # a union member's tag, not a field
        else:
            out += f".{part}" if out else part
    return out or "$"


def _from_pydantic(err: ValidationError) -> WorkflowValidationError:
    # The deepest error is the most specific (a union reports one error per member).
    errors = err.errors()
    _, first = max(enumerate(errors), key=lambda item: (len(item[1]["loc"]), -item[0]))
    loc = first["loc"]
    if first["type"] == "extra_forbidden":
        return WorkflowValidationError(_loc_path(loc), f"unknown field {loc[-1]!r}")
    if first["type"] == "missing":
        return WorkflowValidationError(_loc_path(loc), "required field is missing")
    return WorkflowValidationError(_loc_path(loc), str(first["msg"]))


@dataclass(frozen=True)
class ValidationWarning:
    """Something the original engine accepts that is probably a mistake: ``path`` and ``reason``."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class CheckedWorkflow:
    """A parsed, checked workflow and the warnings found on the way (empty under ``strict``)."""

    workflow: Workflow
    warnings: tuple[ValidationWarning, ...] = ()


@dataclass
class _Findings:
    """Collects warnings; under ``strict`` the first one is raised as an error instead."""

    strict: bool
    warnings: list[ValidationWarning] = field(default_factory=list)

    def warn(self, path: str, reason: str) -> None:
        if self.strict:
            raise WorkflowValidationError(path, reason)
        self.warnings.append(ValidationWarning(path, reason))


def inspect_workflow_file(path: str | Path, *, strict: bool = False) -> CheckedWorkflow:
    """Read, parse and check a workflow file; the workflow and its warnings.

    Raises :class:`WorkflowValidationError` for an unreadable, oversized or invalid file (and, with
    ``strict``, for anything that would be a warning).
    """
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise WorkflowValidationError(str(file), f"cannot read the file: {exc.strerror}") from exc
    if size > MAX_FILE_BYTES:
        raise WorkflowValidationError(str(file), f"file is {size} bytes, over the {MAX_FILE_BYTES} cap")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowValidationError(str(file), f"cannot read the file as UTF-8: {exc}") from exc
    return inspect_workflow_text(text, strict=strict)


def load_workflow(path: str | Path, *, strict: bool = False) -> Workflow:
    """Read, parse and check a workflow file (warnings dropped; see :func:`inspect_workflow_file`)."""
    return inspect_workflow_file(path, strict=strict).workflow


def inspect_workflow_text(text: str, *, strict: bool = False) -> CheckedWorkflow:
    """Parse JSON text into a checked workflow and its warnings."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise WorkflowValidationError("$", f"workflow is over the {MAX_FILE_BYTES}-byte cap")
    if _text_depth(text) > MAX_DEPTH + 1:
        raise WorkflowValidationError("$", f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise WorkflowValidationError("$", f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError as exc:
        raise WorkflowValidationError(
            "$", f"not JSON: {exc.msg} at line {exc.lineno} col {exc.colno}"
        ) from exc
    return inspect_workflow(data, strict=strict)


def parse_workflow_text(text: str, *, strict: bool = False) -> Workflow:
    """Parse JSON text into a checked workflow (warnings dropped)."""
    return inspect_workflow_text(text, strict=strict).workflow


def parse_workflow(data: Any, *, strict: bool = False) -> Workflow:
    """Check a decoded JSON value and return the workflow it describes (warnings dropped)."""
    return inspect_workflow(data, strict=strict).workflow


def _drop_field(data: Any, loc: Sequence[int | str]) -> bool:
    """Remove the field at pydantic ``loc`` from ``data``; union tags in ``loc`` are skipped."""
    node = data
    for part in loc[:-1]:
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        # else: a union member's tag (``InputValue``, ``tuple[...]``): not in the data
    last = loc[-1]
    if isinstance(node, dict) and isinstance(last, str) and last in node:
        del node[last]
        return True
    return False


def _validate_lenient(data: dict[str, Any], findings: _Findings) -> Workflow:
    """Validate; unknown fields are dropped with a warning (an error under ``strict``)."""
    work: dict[str, Any] | None = None
    while True:
        try:
            return Workflow.model_validate(work if work is not None else data)
        except ValidationError as exc:
            extras = [e for e in exc.errors() if e["type"] == "extra_forbidden"]
            if findings.strict or not extras:
                raise _from_pydantic(exc) from None
            if work is None:
                work = copy.deepcopy(data)
            dropped = False
            for error in extras:
                loc = error["loc"]
                if _drop_field(work, loc):
                    dropped = True
                    findings.warn(_loc_path(loc), f"unknown field {loc[-1]!r} ignored (as the original does)")
            if not dropped:
                raise _from_pydantic(exc) from None


def inspect_workflow(data: Any, *, strict: bool = False) -> CheckedWorkflow:
    """Check a decoded JSON value; the workflow and the warnings (see the module docstring)."""
    if not isinstance(data, dict):
        raise WorkflowValidationError("$", f"a workflow is a JSON object, not {type(data).__name__}")
    deep = _depth_error(data, MAX_DEPTH)
    if deep is not None:
        raise WorkflowValidationError(deep, f"nested deeper than {MAX_DEPTH} levels")
    for name, cap in (("tasks", MAX_TASKS), ("steps", MAX_STEPS)):
        items = data.get(name)
        if isinstance(items, list) and len(items) > cap:
            raise WorkflowValidationError(name, f"more than {cap} {name}")
    findings = _Findings(strict)
    workflow = _validate_lenient(data, findings)
    check_workflow(workflow, findings)
    return CheckedWorkflow(workflow, tuple(findings.warnings))


def check_workflow(workflow: Workflow, findings: _Findings | None = None) -> None:
    """The checks the schema alone cannot express (warnings go to ``findings``; strict if absent)."""
    found = findings if findings is not None else _Findings(strict=True)
    known_tools = {*ORIGINAL_TOOL_NAMES, *SYNOD_TOOL_NAMES, ALL}
    for i, name in enumerate(workflow.config.tools):
        if not known_tool_name(name):
            shown = ", ".join(sorted(known_tools))
            found.warn(
                f"config.tools[{i}]",
                f"unknown tool {name!r} (known: {shown}); a tool-calling task will fail on it",
            )
    declared = [*(workflow.config.custom_tools or ())]
    declared += [workflow.config.custom_tool] if workflow.config.custom_tool is not None else []
    for template in declared:
        if not template.name.strip():
            found.warn("config.custom_tools", "a custom tool with an empty name is ignored")
        elif template.url is not None and not template.url.startswith(("http://", "https://")):
            found.warn(
                "config.custom_tools",
                f"custom tool {template.name!r}: url {template.url!r} is not http(s); a call to it fails",
            )
    names = [t.name for t in workflow.custom_templates()]
    for name in names:
        if names.count(name) > 1:
            raise WorkflowValidationError("config.custom_tools", f"two custom tools named {name!r}")
    ids = _check_tasks(workflow.tasks, workflow, found)
    _check_steps(workflow.steps, ids, found)
    _check_graph(workflow, ids, found)
    rv = workflow.return_value
    values = rv.input if isinstance(rv.input, tuple) else (rv.input,)
    for i, value in enumerate(values):
        where = "return_value.input" + (f"[{i}]" if isinstance(rv.input, tuple) else "")
        _check_value(value, where)
    for i, step in enumerate(rv.post_process or ()):
        where = f"return_value.post_process[{i}]"
        kind = step.process_type
        # The original logs and skips such a step; Synod warns.
        if kind is PostProcessType.REPLACE and (step.lhs is None or step.rhs is None):
            found.warn(where, "replace needs both lhs and rhs (skipped, as the original)")
        if kind is PostProcessType.APPEND and step.rhs is None:
            found.warn(where, "append needs rhs (skipped, as the original)")
        if kind is PostProcessType.PREPEND and step.lhs is None:
            found.warn(where, "prepend needs lhs (skipped, as the original)")


def _check_value(value: InputValue, where: str) -> None:
    if value.type in _KEYED and not value.key:
        raise WorkflowValidationError(f"{where}.key", f"a {value.type.value} needs a key")
    if value.type is InputValueType.SEARCH:
        if value.search_query is None and not value.key:
            raise WorkflowValidationError(where, "a search needs search_query or a key (the query)")
        if value.search_query is not None and value.search_query.type is InputValueType.SEARCH:
            raise WorkflowValidationError(f"{where}.search_query.type", "a search query cannot be a search")


def _check_prompt(text: str, where: str, bound: set[str], found: _Findings) -> None:
    size = len(text.encode("utf-8"))
    if size > MAX_PROMPT_BYTES:
        raise WorkflowValidationError(where, f"prompt is {size} bytes, over the {MAX_PROMPT_BYTES} cap")
    for name in dict.fromkeys(placeholders(text)):
        if name not in bound:
            known = ", ".join(sorted(bound)) or "none"
            found.warn(
                where,
                f"placeholder {{{name}}} is never bound: no input named {name!r} (inputs: {known}); "
                "it stays in the text",
            )


def _check_tasks(tasks: Sequence[Task], workflow: Workflow, found: _Findings) -> set[str]:
    ids: set[str] = set()
    for i, task in enumerate(tasks):
        here = f"tasks[{i}]"
        if task.id in ids:
            raise WorkflowValidationError(f"{here}.id", f"duplicate task id {task.id!r}")
        ids.add(task.id)
        names: set[str] = set()
        for j, inp in enumerate(task.inputs):
            if inp.name in names:
                raise WorkflowValidationError(f"{here}.inputs[{j}].name", f"duplicate input {inp.name!r}")
            names.add(inp.name)
            _check_value(inp.value, f"{here}.inputs[{j}].value")
        if task.prompt is not None and task.messages:
            raise WorkflowValidationError(here, "give either prompt or messages, not both")
        needs_prompt = task.operator not in (Operator.END, Operator.CHECK)
        if needs_prompt and task.prompt is None and task.messages is None:
            raise WorkflowValidationError(f"{here}.prompt", "required field is missing (or give messages)")
        if task.prompt is not None:
            _check_prompt(task.prompt, f"{here}.prompt", names, found)
        for k, message in enumerate(task.messages or ()):
            _check_prompt(message.content, f"{here}.messages[{k}].content", names, found)
        if task.operator is Operator.CHECK:
            for reserved in (R_OUTPUTS, R_EXPECTED):
                if reserved not in names:
                    raise WorkflowValidationError(
                        f"{here}.inputs", f"a check needs an input named {reserved!r}"
                    )
        if task.operator is Operator.TEXT:
            problem = textops.problem(task)
            if problem is not None:
                raise WorkflowValidationError(f"{here}.{problem[0]}", problem[1])
        if task.operator is Operator.SAMPLE:
            for j, inp in enumerate(task.inputs):
                if inp.value.type is InputValueType.GET_ALL:
                    found.warn(
                        f"{here}.inputs[{j}].value.type",
                        "a sample input names a stack; get_all fails the task when it runs (as the original)",
                    )
        calls_tools = task.operator in (Operator.FUNCTION_CALLING, Operator.FUNCTION_CALLING_RAW)
        if calls_tools and not [t for t in workflow.config.tools if t] and not workflow.custom_templates():
            found.warn(
                f"{here}.operator",
                f"{task.operator.value} with no config.tools or config.custom_tools: the task will fail",
            )
        if task.schema_ is not None:
            try:
                decode_schema(task.schema_)
            except SchemaError as exc:
                raise WorkflowValidationError(f"{here}.schema", str(exc)) from exc
        for j, out in enumerate(task.outputs):
            if out.type.value in ("write", "push") and not out.key:
                raise WorkflowValidationError(f"{here}.outputs[{j}].key", f"a {out.type.value} needs a key")
    return ids


def _check_steps(steps: Sequence[Edge], ids: set[str], found: _Findings) -> None:
    known = ids | {R_END}
    if steps[0].source not in known:
        raise WorkflowValidationError(
            "steps[0].source", f"no task with id {steps[0].source!r}: nothing to run"
        )

    def target(name: str, where: str) -> None:
        if name not in known:
            found.warn(where, f"no task with id {name!r}: the run ends there")

    for i, step in enumerate(steps):
        if step.source not in known:
            found.warn(
                f"steps[{i}].source",
                f"no task with id {step.source!r}: a run that steps to it fails (as the original)",
            )
        target(step.target, f"steps[{i}].target")
        if step.condition is not None:
            target(step.condition.target_if_not, f"steps[{i}].condition.target_if_not")
            _check_value(step.condition.input, f"steps[{i}].condition.input")
        if step.fallback is not None:
            target(step.fallback, f"steps[{i}].fallback")


def first_edges(steps: Iterable[Edge]) -> dict[str, Edge]:
    """The step taken after each task: the first whose source it is (as the original)."""
    edges: dict[str, Edge] = {}
    for step in steps:
        edges.setdefault(step.source, step)
    return edges


def _successors(edge: Edge) -> list[str]:
    out = [edge.target]
    if edge.condition is not None:
        out.append(edge.condition.target_if_not)
    if edge.fallback is not None:
        out.append(edge.fallback)
    return out


def _check_graph(workflow: Workflow, ids: set[str], found: _Findings) -> None:
    edges = first_edges(workflow.steps)
    operators = {t.id: t.operator for t in workflow.tasks}
    index = {t.id: i for i, t in enumerate(workflow.tasks)}
    start = workflow.steps[0].source
    reachable: list[str] = []
    seen = {start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        reachable.append(node)
        edge = edges.get(node) if node != R_END else None
        for nxt in _successors(edge) if edge else ():
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    # A node with no step of its own ends the program without running (as the original): meant for
    # __end and end tasks, probably a mistake for anything else.
    for node in reachable:
        if node in ids and node not in edges and operators.get(node) is not Operator.END:
            found.warn(
                f"tasks[{index[node]}].id",
                f"task {node!r} is a step target but has no step of its own, so reaching it ends the run "
                f"without running it (add a step from {node!r} to {R_END!r})",
            )
    # Terminals: __end, a node with no step of its own, and a step source naming no task (the run
    # fails there, as the original: it still leaves the loop).
    terminals = {n for n in reachable if n == R_END or n not in edges or n not in ids}
    if not terminals:
        raise WorkflowValidationError("steps", f"no path from {start!r} to {R_END!r}: every task loops")
    # Backwards from the terminals: which reachable nodes can still end?
    preds: dict[str, set[str]] = {}
    for node in reachable:
        edge = edges.get(node) if node != R_END else None
        for nxt in _successors(edge) if edge else ():
            preds.setdefault(nxt, set()).add(node)
    can_end = set(terminals)
    queue = deque(terminals)
    while queue:
        node = queue.popleft()
        for prev in preds.get(node, ()):
            if prev not in can_end:
                can_end.add(prev)
                queue.append(prev)
    trapped = [n for n in reachable if n not in can_end]
    if trapped:
        raise WorkflowValidationError(
            "steps",
            f"cycle with no exit: from {', '.join(repr(n) for n in trapped)} the program can never reach "
            f"{R_END!r}",
        )


def entry_input_keys(workflow: Workflow) -> dict[str, str]:
    """The entry-input keys a run needs (``required`` inputs of type ``input``) -> where used."""
    needed: dict[str, str] = {}
    for i, task in enumerate(workflow.tasks):
        for j, inp in enumerate(task.inputs):
            if inp.required and inp.value.type is InputValueType.INPUT:
                needed.setdefault(inp.value.key, f"tasks[{i}].inputs[{j}]")
    return needed
