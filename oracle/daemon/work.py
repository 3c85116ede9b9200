"""The validator's work on one batch: fetch every revealed result, verify it, score it.

For each revealed node seat and each row of the batch, in this order (any failure scores that
result 0 with its reason in the record; nothing here raises for bad input):

1. fetch the digest from the node that revealed it (its registered multiaddr), the request signed
   by this validator's key (:mod:`protocol.p2p.auth`), within ``fetch_timeout`` seconds: a node
   that does not serve in time, or serves nothing, scores 0 for those rows;
2. :meth:`ResultEnvelope.from_bytes` with the revealed digest (bytes that hash to another digest,
   are not UTF-8, not canonical JSON or not an envelope score 0);
3. the envelope must name the job's workflow hash, the row's hash and the job's model; an
   explicit failure envelope scores 0;
4. the rows' surviving outputs go through :func:`oracle.scoring.pipeline.score_task`, one call per
   row (the results of one row are one task: agreement compares them with each other).

The job's workflow (its canonical bytes from ``JobPosted``, parsed as the node parses them) declares
the output contract (:func:`job_contract`, from :func:`workflow.outputs.declared_output`): its
output JSON schema, if any, and its determinism (``exact`` -> the exact digest rule, ``greedy`` ->
identical digests count as agreement, ``sampled`` -> no digest rule). A workflow whose declared
schema is malformed scores every result of the job 0 with that reason ("malformed workflow schema:
..."); one that does not parse declares nothing (its rows are scored on their own, as before).

The task text is the row: a row that is a JSON object contributes its ``task``/``prompt``/
``question``/``instruction`` string if it has one, else all its string values joined by newlines;
a string row is itself. A row may declare ``language`` (ISO 639-1), ``sources`` (strings) and an
output ``schema`` (JSON Schema); a malformed schema scores every result of that row 0 ("malformed
schema"), because it cannot be checked. When both the workflow and the row declare a schema, a
result must satisfy both (``{"allOf": [workflow's, row's]}``): each is a requirement the requester
stated, and neither can loosen the other. Every cell records the digest of the schema applied
(:func:`schema_digest`). A row whose JSON spells a lone surrogate (``"\\udc00"``, a string
with no UTF-8 form that no embedder or HTTP body can carry) scores every result of that row 0
(:data:`NO_UTF8_FORM`); it used to raise out of the pipeline and end the daemon, at every restart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import trio
import trio.lowlevel
from pydantic import BaseModel, ConfigDict, ValidationError

from oracle.scoring.model import MAX_RESULTS, MAX_SOURCES, MAX_TASK_CHARS, ResultScore, ScoreRequest
from oracle.scoring.safejson import UnsafeJsonError, loads
from oracle.scoring.schemas import schema_problem
from protocol.canonical import has_utf8_form, keccak256
from protocol.envelope import EnvelopeError, ResultEnvelope
from protocol.log import get_logger
from protocol.p2p.errors import P2pError
from workflow.errors import WorkflowError
from workflow.outputs import declared_output
from workflow.validate import parse_workflow_text

log = get_logger(__name__)

Fetch = Callable[[str, bytes], Awaitable[bytes]]
"""``await fetch(multiaddr, digest)`` -> the bytes served; raises :class:`P2pError` or
``trio.TooSlowError``."""

Scorer = Callable[[ScoreRequest], Awaitable[list[ResultScore]]]
"""``await scorer(request)``: :func:`score_task` with the daemon's embedder, identifier and judge."""

_TASK_FIELDS = ("task", "prompt", "question", "instruction")


class RevealedSeat(BaseModel):
    """A node seat that revealed: its node, the node's registered multiaddr, one digest per row."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seat: int
    node: str
    address: str
    digests: tuple[bytes, ...]


class JobContract(BaseModel):
    """What the job's workflow declares about every result (see :func:`job_contract`).

    ``output_schema``: the declared JSON Schema or None; ``schema_digest``: :func:`schema_digest` of
    it; ``determinism``: ``exact``, ``greedy`` or ``sampled`` (:class:`workflow.outputs.Determinism`);
    ``refused``: why every result of the job scores 0 (a malformed workflow or schema), or None;
    ``reason``: how it was derived (for the log and the journal).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    output_schema: dict[str, Any] | None = None
    schema_digest: str | None = None
    determinism: Literal["exact", "greedy", "sampled"] = "sampled"
    refused: str | None = None
    reason: str = "no workflow read"


def schema_digest(schema: dict[str, Any]) -> str:
    """``0x`` + keccak256 of the schema's JSON (sorted keys, ASCII escapes, no spaces): names the
    schema applied in the journal without copying it. Never raises for a parsed JSON value."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "0x" + keccak256(text.encode("ascii")).hex()


def job_contract(workflow: bytes) -> JobContract:
    """The :class:`JobContract` of a job's workflow bytes (as posted). Never raises.

    Parsed as the node parses it (UTF-8, :func:`workflow.validate.parse_workflow_text`). A workflow
    that declares a malformed output schema is ``refused``; one that does not parse declares
    nothing (no schema, ``sampled``: its rows are scored on their own, and ``reason`` says why).
    """
    try:
        parsed = parse_workflow_text(workflow.decode("utf-8"))
    except (UnicodeDecodeError, WorkflowError, RecursionError) as exc:
        # Nothing declared can be read: the rows are scored on their own, as before this contract
        # existed (another engine version may parse what this one cannot; not a reason to score 0).
        return JobContract(
            reason=f"workflow not parsed ({type(exc).__name__}: {str(exc)[:200]}): no contract"
        )
    contract = declared_output(parsed)
    problem = contract.schema_error
    if problem is None and contract.schema is not None:
        unsafe = schema_problem(contract.schema)  # e.g. a backtracking-only regex, a remote $ref
        problem = None if unsafe is None else f"malformed workflow schema: {unsafe}"
    if problem is not None:
        return JobContract(determinism=contract.determinism.value, refused=problem, reason=contract.reason)
    return JobContract(
        output_schema=contract.schema,
        schema_digest=None if contract.schema is None else schema_digest(contract.schema),
        determinism=contract.determinism.value,
        reason=contract.reason,
    )


def _rebased(value: Any, prefix: str) -> Any:
    """``value`` with every local ``$ref`` (``#``, ``#/...``) moved under ``#`` + ``prefix``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and (item == "#" or item.startswith("#/")):
                out[key] = "#" + prefix + item[1:]
            else:
                out[key] = _rebased(item, prefix)
        return out
    if isinstance(value, list):
        return [_rebased(item, prefix) for item in value]
    return value


def applied_schema(workflow: dict[str, Any] | None, row: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema a result of a row must satisfy: the workflow's, the row's, or both (``allOf``).

    Both: ``{"allOf": [workflow's, row's]}``, each with its local ``$ref`` pointers rebased
    (``#/$defs/x`` -> ``#/allOf/0/$defs/x``) and its root ``$id`` dropped, so each schema's references
    still name its own parts under the new root. Never raises; the inputs are not changed.
    """
    if workflow is None or row is None or workflow == row:
        return workflow if workflow is not None else row
    parts = [
        _rebased({k: v for k, v in schema.items() if k != "$id"}, f"/allOf/{i}")
        for i, schema in enumerate((workflow, row))
    ]
    return {"allOf": parts}


class BatchWork(BaseModel):
    """Everything needed to score a batch, read from the chain (events of the batch and its job);
    ``contract`` is what the job's workflow declares (:func:`job_contract`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: int
    round: int
    commit_count: int
    rows: tuple[bytes, ...]
    workflow_hash: bytes
    model_id: bytes
    revealed: tuple[RevealedSeat, ...]
    contract: JobContract = JobContract()


class Cell(BaseModel):
    """One result's score: ``seat`` x ``row``; ``reason`` says why a result scored 0 before the
    pipeline (fetch, envelope, binding, a refused workflow), ``components`` is the pipeline's full
    breakdown; ``schema_digest``: :func:`schema_digest` of the output schema applied (None: none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seat: int
    row: int
    digest: str
    score: int
    reason: str | None = None
    components: dict[str, Any] | None = None
    schema_digest: str | None = None


@dataclass(frozen=True)
class RowTask:
    """What the scoring pipeline needs from a row (or the reason it cannot be scored)."""

    task: str
    schema: dict[str, Any] | None
    sources: tuple[str, ...]
    language: str | None
    refused: str | None = None


NO_UTF8_FORM = "malformed row: a string with no UTF-8 form (a lone surrogate escape)"
"""Why a row spelling a lone surrogate scores every result 0 (the node refuses such a row too)."""


def row_task(row: bytes) -> RowTask:
    """The task text and the declared checks of one row (see the module docstring). Never raises."""
    try:
        value: Any = loads(row.decode("utf-8"))
    except (UnicodeDecodeError, UnsafeJsonError):
        text = row.decode("utf-8", errors="replace")
        return RowTask(task=text[:MAX_TASK_CHARS] or "(empty row)", schema=None, sources=(), language=None)
    if not has_utf8_form(value):  # e.g. "\\udc00": plain ASCII JSON, but a string no encoder takes
        text = row.decode("utf-8", errors="replace")[:MAX_TASK_CHARS] or "(empty row)"
        return RowTask(task=text, schema=None, sources=(), language=None, refused=NO_UTF8_FORM)
    if isinstance(value, str):
        return RowTask(task=value[:MAX_TASK_CHARS] or "(empty row)", schema=None, sources=(), language=None)
    if not isinstance(value, dict):
        return RowTask(task=json.dumps(value)[:MAX_TASK_CHARS], schema=None, sources=(), language=None)
    task = next((value[k] for k in _TASK_FIELDS if isinstance(value.get(k), str) and value[k].strip()), None)
    if task is None:
        skip = {"language", "sources", "schema"}
        task = "\n".join(v for k, v in value.items() if k not in skip and isinstance(v, str)) or json.dumps(
            value, ensure_ascii=False
        )
    schema = value.get("schema")
    sources = value.get("sources")
    language = value.get("language")
    clean_sources = (
        tuple(s for s in sources if isinstance(s, str))[:MAX_SOURCES] if isinstance(sources, list) else ()
    )
    refused = None
    if schema is not None and not isinstance(schema, dict):
        refused = "malformed schema: not a JSON object"
    return RowTask(
        task=task[:MAX_TASK_CHARS],
        schema=schema if isinstance(schema, dict) else None,
        sources=clean_sources,
        language=language if isinstance(language, str) else None,
        refused=refused,
    )


def check_envelope(
    data: bytes, digest: bytes, work: BatchWork, row: int, hashes: dict[bytes, bytes] | None = None
) -> tuple[str | None, str]:
    """(output, "") for a valid envelope of this row, else (None, reason). Never raises.

    ``hashes``: a keccak256 memo (``{bytes: digest}``) a caller checking many envelopes of one
    batch passes to every call, so each row's and model name's hash is taken once, not once per
    seat (the envelope's own digest is always computed from ``data``)."""
    memo: dict[bytes, bytes] = {} if hashes is None else hashes

    def hashed(value: bytes) -> bytes:
        found = memo.get(value)
        if found is None:
            found = memo[value] = keccak256(value)
        return found

    try:
        envelope = ResultEnvelope.from_bytes(data, expect_digest=digest)
    except EnvelopeError as exc:
        return None, f"envelope: {exc}"
    if envelope.workflow != "0x" + work.workflow_hash.hex():
        return None, f"envelope names workflow {envelope.workflow}, not the job's"
    if envelope.input != "0x" + hashed(work.rows[row]).hex():
        return None, f"envelope names input {envelope.input}, not row {row}"
    if hashed(envelope.model.encode("utf-8")) != work.model_id:
        return None, f"envelope names model {envelope.model!r}, not the job's"
    if envelope.error is not None:
        return None, f"the node reported a failure: {envelope.error[:200]}"
    return envelope.output, ""


async def fetch_all(
    work: BatchWork, fetch: Fetch, concurrency: int, budget: float | None = None
) -> dict[tuple[int, int], tuple[str | None, str]]:
    """Fetch and verify every revealed (seat, row): ``{(seat, row): (output or None, reason)}``.

    ``budget`` (seconds) bounds the whole fetch phase: a (seat, row) still unfetched when it runs
    out gets ``(None, "not fetched in time: ...")``, so slow-serving nodes (each fetch just under its
    own deadline) cannot push this validator past its score-commit deadline. ``None``: no bound.
    """
    limiter = trio.CapacityLimiter(concurrency)
    out: dict[tuple[int, int], tuple[str | None, str]] = {}
    hashes: dict[bytes, bytes] = {}  # check_envelope's memo: rows and model names of this batch

    async def one(seat: RevealedSeat, row: int) -> None:
        digest = seat.digests[row]
        async with limiter:
            try:
                data = await fetch(seat.address, digest)
            except (P2pError, trio.TooSlowError) as exc:
                reason = f"not served: {type(exc).__name__}: {str(exc)[:200]}"
                log.warning("fetch_failed", batch=work.batch_id, seat=seat.seat, row=row, reason=reason)
                out[(seat.seat, row)] = (None, reason)
                return
        output, reason = check_envelope(data, digest, work, row, hashes)
        if output is None:
            log.warning("result_refused", batch=work.batch_id, seat=seat.seat, row=row, reason=reason)
        out[(seat.seat, row)] = (output, reason)

    with trio.move_on_after(math.inf if budget is None else max(budget, 0.0)) as scope:
        async with trio.open_nursery() as nursery:
            for seat in work.revealed:
                for row in range(len(work.rows)):
                    nursery.start_soon(one, seat, row)
    if scope.cancelled_caught:
        missing = [
            (s.seat, r) for s in work.revealed for r in range(len(work.rows)) if (s.seat, r) not in out
        ]
        log.warning("fetch_budget_spent", batch=work.batch_id, budget=budget, unfetched=len(missing))
        for key in missing:
            out[key] = (None, f"not fetched in time: the batch's fetch budget of {budget:.0f}s ran out")
    return out


async def score_fetched(
    work: BatchWork,
    fetched: dict[tuple[int, int], tuple[str | None, str]],
    scorer: Scorer,
    max_result_chars: int,
) -> list[Cell]:
    """Score every (revealed seat, row); unrevealed seats get no cell (their bytes are ignored).

    A trio checkpoint between rows: scoring is synchronous CPU work whenever the embeddings come
    from the cache (no thread hop), and a 128-row batch held the validator's event loop for
    seconds under load: its other batches' pipelined fetches then sat unwritten past the nodes'
    request timeout and were reset (the devnet bench's run lost hundreds of results that way)."""
    cells: list[Cell] = []
    contract = work.contract
    for row in range(len(work.rows)):
        await trio.lowlevel.checkpoint()
        spec = row_task(work.rows[row])
        refused = contract.refused or spec.refused
        live: list[tuple[RevealedSeat, str]] = []
        for seat in work.revealed:
            output, reason = fetched.get((seat.seat, row), (None, "not fetched"))
            digest = "0x" + seat.digests[row].hex()
            if output is not None and len(output) > max_result_chars:
                reason = f"result is {len(output)} characters (limit {max_result_chars})"
                output = None
            if output is None or refused:
                cells.append(Cell(seat=seat.seat, row=row, digest=digest, score=0, reason=refused or reason))
            else:
                live.append((seat, output))
        if not live:
            continue
        schema = applied_schema(contract.output_schema, spec.schema)
        try:
            request = ScoreRequest.model_validate(
                {
                    "task": spec.task,
                    "results": tuple(o for _, o in live)[:MAX_RESULTS],
                    "schema": schema,
                    "sources": spec.sources,
                    "language": spec.language,
                    "deterministic": contract.determinism == "exact",
                    "greedy": contract.determinism == "greedy",
                }
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            reason = f"row cannot be scored: {first[:200]}"
            log.warning("row_refused", batch=work.batch_id, row=row, reason=reason)
            for seat, _ in live:
                cells.append(
                    Cell(
                        seat=seat.seat, row=row, digest="0x" + seat.digests[row].hex(), score=0, reason=reason
                    )
                )
            continue
        scores = await scorer(request)
        applied = None if schema is None else schema_digest(schema)
        for (seat, _), result in zip(live, scores, strict=True):
            cells.append(
                Cell(
                    seat=seat.seat,
                    row=row,
                    digest="0x" + seat.digests[row].hex(),
                    score=result.score,
                    components=result.components.model_dump(mode="json"),
                    schema_digest=applied,
                )
            )
    return sorted(cells, key=lambda c: (c.seat, c.row))


def score_vector(cells: Sequence[Cell], commit_count: int, rows: int) -> bytes:
    """The on-chain score vector: byte ``seat * rows + row``; seats without cells (unrevealed) 0."""
    vector = bytearray(commit_count * rows)
    for cell in cells:
        vector[cell.seat * rows + cell.row] = cell.score
    return bytes(vector)
