"""Read a workflow and a JSONL file of input rows, and check every row before anything is sent.

A row is one JSON object per line (blank lines are skipped; a leading byte order mark is ignored).
It must give every entry input the workflow reads (``{"type": "input", "key": K}`` with
``required: true``), unless the workflow's own ``external_memory`` supplies ``K``, and a value it
gives for one must not be ``null`` or blank text; a workflow that reads the whole entry input (key ``""``)
needs a non-empty row. Rows are posted as their canonical JSON bytes (:mod:`protocol.canonical`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.canonical import canonical_bytes
from protocol.errors import CanonicalError
from requester.errors import InputError
from workflow.errors import WorkflowValidationError
from workflow.model import Workflow
from workflow.reads import EntryInput
from workflow.validate import entry_input_keys, parse_workflow

MAX_ROW_BYTES = 64 * 1024
"""Largest canonical row accepted, in bytes (a post carries rows in calldata)."""


@dataclass(frozen=True)
class Dataset:
    """A checked workflow and its rows: ``spec`` is the workflow JSON as posted, ``rows`` the row
    objects in file order, ``sizes`` their canonical byte lengths."""

    workflow: Workflow
    spec: dict[str, Any]
    rows: tuple[dict[str, Any], ...]
    sizes: tuple[int, ...]


def read_workflow(path: Path) -> tuple[Workflow, dict[str, Any]]:
    """Parse and validate the workflow file; returns (the model, the JSON object to post).

    Raises :class:`InputError` naming the file and the invalid field."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the workflow {path}: {exc.strerror}; check --workflow") from None
    except ValueError as exc:
        raise InputError(f"the workflow {path} is not JSON ({exc}); fix the file") from None
    if not isinstance(spec, dict):
        raise InputError(f"the workflow {path} must be a JSON object (a Synod workflow)")
    try:
        workflow = parse_workflow(spec)
    except WorkflowValidationError as exc:
        raise InputError(
            f"the workflow {path} is invalid: {exc}; run `synod workflow validate {path}`"
        ) from None
    return workflow, spec


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a JSONL file as (line number, object). Raises :class:`InputError` for an
    unreadable file, a line that is not a JSON object, or a file with no rows."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte order mark (Windows editors) is not content
    except OSError as exc:
        raise InputError(f"cannot read the rows {path}: {exc.strerror}; check --rows") from None
    except UnicodeDecodeError:
        raise InputError(f"the rows file {path} is not UTF-8 text") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path} line {number}: not JSON ({exc.msg}); one JSON object per line"
            ) from None
        if not isinstance(value, dict):
            raise InputError(
                f"{path} line {number}: a row must be a JSON object of the workflow's inputs, "
                f"got {type(value).__name__}"
            )
        rows.append((number, value))
    if not rows:
        raise InputError(f"{path} has no rows: write one JSON object per line")
    return rows


def _blank(value: Any) -> bool:
    """A required input with nothing in it: ``null`` or a string of whitespace only."""
    return value is None or (isinstance(value, str) and not value.strip())


def check_rows(workflow: Workflow, rows: list[tuple[int, dict[str, Any]]], where: str) -> list[int]:
    """Check every row against the workflow's entry inputs; returns their canonical sizes.

    Raises :class:`InputError` on the first bad row, naming ``where`` (the file), the line, the
    missing input and the task that reads it."""
    needed = entry_input_keys(workflow)
    sizes: list[int] = []
    for number, row in rows:
        entry = EntryInput(row, workflow.external_memory)
        for key, used_by in needed.items():
            if key and key in row and _blank(row[key]):
                raise InputError(
                    f"{where} line {number}: {key!r} is {json.dumps(row[key])}, but {used_by} needs a value; "
                    "fill it in or leave the row out"
                )
            if entry.has(key):
                continue
            if not key:
                raise InputError(
                    f"{where} line {number}: the row is empty, but {used_by} reads the whole input"
                )
            raise InputError(
                f"{where} line {number}: the row has no {key!r}, which {used_by} needs; add "
                f'"{key}": ... to every row (the row has {sorted(row) or "no keys"})'
            )
        try:
            size = len(canonical_bytes(row))
        except (CanonicalError, TypeError, ValueError) as exc:
            raise InputError(f"{where} line {number}: the row cannot be canonical JSON: {exc}") from None
        if size > MAX_ROW_BYTES:
            raise InputError(
                f"{where} line {number}: the row is {size} bytes, over {MAX_ROW_BYTES}; shorten it"
            )
        sizes.append(size)
    return sizes


def load_dataset(workflow_path: Path, rows_path: Path) -> Dataset:
    """:func:`read_workflow` + :func:`read_rows` + :func:`check_rows`."""
    workflow, spec = read_workflow(workflow_path)
    rows = read_rows(rows_path)
    sizes = check_rows(workflow, rows, str(rows_path))
    return Dataset(workflow, spec, tuple(r for _, r in rows), tuple(sizes))
