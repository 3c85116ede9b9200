"""One task: a row through the job's workflow on the engine, into a result envelope.

:func:`run_task` never raises for the task's own failures: a row that is not a JSON object, a
workflow error (the model server dropped, a step limit, a tool), the task's deadline, or a result
over the envelope cap (:data:`protocol.envelope.MAX_ENVELOPE_BYTES`), even an unexpected exception
from the engine (logged ``node_task_crashed``) all give a failure envelope
(:func:`protocol.envelope.failure`) with the reason, so the batch can be judged as a whole and one
hostile row never ends the node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import trio

from protocol.canonical import has_utf8_form, keccak256
from protocol.envelope import EnvelopeError, ResultEnvelope, failure, success
from protocol.log import get_logger
from workflow.engine import Engine
from workflow.model import Workflow

log = get_logger(__name__)


@dataclass(frozen=True)
class TaskOutcome:
    """A row's envelope, its canonical bytes and digest, the failure reason (None = a result) and
    the seconds the run took."""

    envelope: ResultEnvelope
    data: bytes
    digest: bytes
    error: str | None
    seconds: float


def parse_row(row: bytes) -> dict[str, object]:
    """A posted row's inputs: its bytes must be a JSON object whose every string (keys included)
    has a UTF-8 form. Raises :class:`ValueError`.

    JSON text may spell a lone surrogate (``"\\udc00"``) in plain ASCII; ``json.loads`` returns it
    as a Python string that cannot be encoded, and the first prompt hash or HTTP body built from it
    raised ``UnicodeEncodeError`` out of the engine: one such row crashed the node (and again after
    every restart, since the batch resumes). Such a row is malformed here instead.
    """
    try:
        value = json.loads(row.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"malformed row: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"malformed row: a JSON {type(value).__name__}, not an object")
    _check_utf8(value)
    return value


def _check_utf8(value: object) -> None:
    """Raise :class:`ValueError` if a string anywhere in ``value`` (a parsed JSON value) has no UTF-8
    form (:func:`protocol.canonical.has_utf8_form`)."""
    if not has_utf8_form(value):
        raise ValueError("malformed row: a string with no UTF-8 form (a lone surrogate escape)")


def _outcome(envelope: ResultEnvelope, started: float) -> TaskOutcome:
    data = envelope.to_bytes()
    return TaskOutcome(envelope, data, keccak256(data), envelope.error, time.perf_counter() - started)


async def run_task(
    engine: Engine,
    workflow: Workflow,
    workflow_hash: bytes,
    row: bytes,
    model: str,
    deadline_s: float,
) -> TaskOutcome:
    """Run ``workflow`` on ``row`` with ``engine`` under ``deadline_s`` seconds; the envelope
    records ``model`` (the on-chain model name) and the job's ``workflow_hash``."""
    started = time.perf_counter()

    def failed(reason: str) -> TaskOutcome:
        return _outcome(failure(workflow_hash=workflow_hash, row=row, model=model, reason=reason), started)

    try:
        inputs = parse_row(row)
    except ValueError as exc:
        return failed(str(exc))
    if deadline_s <= 0:
        return failed("no time left before the commit deadline")
    with trio.move_on_after(deadline_s) as scope:
        try:
            outcome = await engine.execute(workflow, inputs)
        except Exception as exc:  # an engine bug must fail this task, not end the node (and loop)
            log.error("node_task_crashed", error=type(exc).__name__, reason=str(exc)[:300])
            return failed(f"engine error: {type(exc).__name__}: {exc}")
    if scope.cancelled_caught:
        return failed(f"deadline: the task ran past its {deadline_s:.1f}s share of the commit window")
    if outcome.error is not None:
        return failed(f"{type(outcome.error).__name__}: {outcome.error}")
    assert outcome.result is not None
    try:
        envelope = success(workflow_hash=workflow_hash, row=row, model=model, output=outcome.result.value)
    except EnvelopeError as exc:
        return failed(f"result too large: {exc}")
    return _outcome(envelope, started)


class TaskRunner(Protocol):
    """Where the daemon runs a row: :class:`InlineRunner` (on the daemon's own event loop) or
    :class:`node.worker.WorkflowWorker` (a child process). Both never raise for the task's own
    failures (:func:`run_task`)."""

    @property
    def models(self) -> tuple[str, ...]:
        """The on-chain model names it serves."""
        ...

    async def execute(
        self,
        model: str,
        workflow: Workflow,
        workflow_text: str,
        workflow_hash: bytes,
        row: bytes,
        deadline_s: float,
    ) -> TaskOutcome:
        """Run ``row`` through the workflow on ``model`` under ``deadline_s`` seconds."""
        ...


class InlineRunner:
    """Rows run on the caller's event loop with the given engines (on-chain model name -> engine):
    ``run.workflow_process = false``, and the unit tests."""

    def __init__(self, engines: Mapping[str, Engine]) -> None:
        self._engines = dict(engines)

    @property
    def models(self) -> tuple[str, ...]:
        """The on-chain model names it serves."""
        return tuple(self._engines)

    async def execute(
        self,
        model: str,
        workflow: Workflow,
        workflow_text: str,
        workflow_hash: bytes,
        row: bytes,
        deadline_s: float,
    ) -> TaskOutcome:
        """:func:`run_task` with the model's engine."""
        return await run_task(self._engines[model], workflow, workflow_hash, row, model, deadline_s)
