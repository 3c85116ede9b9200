"""One dataset row per accepted result, proven from chain data.

For each accepted result (batch, node seat, row) of a job (:meth:`JobHistory.accepted`), the
requester fetches the result's bytes from the node over p2p (``/synod/result/1.0.0``) with a
request signed by the requester's key (the node's access rule admits a job's requester once the
batch is revealed), parses them with :meth:`ResultEnvelope.from_bytes` against the revealed digest,
and checks the envelope is for this row, this workflow and the job's model. The row written is a
:class:`DatasetRow`: the input, the result, the envelope, who produced and scored it, and the
transactions and blocks that prove each step. :mod:`requester.verify` re-derives every chain field
with :func:`chain_fields`, so export and verify cannot disagree.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from pydantic import BaseModel, ConfigDict

from protocol.canonical import keccak256
from protocol.chain.market import model_id
from protocol.chain.signer import Signer
from protocol.envelope import EnvelopeError, ResultEnvelope
from protocol.errors import SynodError
from protocol.log import get_logger
from protocol.p2p.host import P2pHost, P2pSettings, open_p2p_host
from requester.history import BatchHistory, JobHistory

log = get_logger(__name__)

FETCH_CONCURRENCY = 8
"""Results fetched at once."""


class ValidatorScore(BaseModel):
    """One committee member's score for the result."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seat: int
    validator: str
    score: int


class DatasetRow(BaseModel):
    """One line of an export (JSON). Chain fields first, then what the node served.

    ``task`` is ``"<batch>:<row>"``; ``dataset_row`` the row's index in its job; ``median`` is
    ``None`` for a batch settled without scores (the contract's unscored fallback); ``tx`` and
    ``blocks`` are keyed ``post``, ``commit``, ``reveal``, ``settle``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain_id: int
    market: str
    job_id: int
    batch_id: int
    row: int
    task: str
    dataset_row: int
    input: dict[str, Any]
    node: str
    node_seat: int
    digest: str
    median: int | None
    scores: list[ValidatorScore]
    tx: dict[str, str]
    blocks: dict[str, int]
    result: Any
    """The envelope's output, parsed when it is JSON."""
    envelope: dict[str, Any]
    """The committed :class:`ResultEnvelope` (its canonical bytes hash to ``digest``)."""

    def key(self) -> tuple[int, int, int]:
        """(batch, node seat, row): one accepted result."""
        return self.batch_id, self.node_seat, self.row


CHAIN_FIELDS = (
    "chain_id",
    "market",
    "job_id",
    "batch_id",
    "row",
    "task",
    "dataset_row",
    "node",
    "node_seat",
    "digest",
    "median",
    "scores",
    "tx",
    "blocks",
)
"""The fields :func:`chain_fields` derives; ``input`` is compared by its posted bytes."""


def chain_fields(
    chain_id: int, market: str, history: JobHistory, batch: BatchHistory, seat: int, row: int
) -> dict[str, Any]:
    """Every :class:`DatasetRow` field the chain alone determines, for result (seat, row)."""
    reveal = batch.reveals[seat]
    commit = batch.commits[seat]
    settled = batch.settled
    assert settled is not None
    return {
        "chain_id": chain_id,
        "market": market,
        "job_id": history.job_id,
        "batch_id": batch.batch_id,
        "row": row,
        "task": f"{batch.batch_id}:{row}",
        "dataset_row": batch.posted.event.first_row + row,
        "node": reveal.event.node,
        "node_seat": seat,
        "digest": "0x" + bytes(reveal.event.digests[row]).hex(),
        "median": batch.median(seat, row),
        "scores": [
            {"seat": s, "validator": v, "score": score} for s, v, score in batch.validator_scores(seat, row)
        ],
        "tx": {
            "post": batch.posted.tx_hash,
            "commit": commit.tx_hash,
            "reveal": reveal.tx_hash,
            "settle": settled.tx_hash,
        },
        "blocks": {
            "post": batch.posted.block,
            "commit": commit.block,
            "reveal": reveal.block,
            "settle": settled.block,
        },
    }


def posted_row(batch: BatchHistory, row: int) -> bytes:
    """The row's bytes as posted (``BatchPosted.rows``)."""
    return bytes(batch.posted.event.rows[row])


def check_envelope(
    envelope: ResultEnvelope, history: JobHistory, batch: BatchHistory, row: int
) -> str | None:
    """Why ``envelope`` is not a result of this row of this job, or ``None`` when it is."""
    if envelope.input != "0x" + keccak256(posted_row(batch, row)).hex():
        return "the envelope's input hash is not the posted row's"
    if envelope.workflow != "0x" + keccak256(bytes(history.job.event.workflow)).hex():
        return "the envelope's workflow hash is not the job's"
    if bytes(model_id(envelope.model)) != bytes(history.job.event.model):
        return f"the envelope's model {envelope.model!r} is not the job's"
    return None


def result_of(envelope: ResultEnvelope) -> Any:
    """The row's ``result``: the output parsed when it is JSON, else the text."""
    return json.loads(envelope.output) if envelope.output_is_json else envelope.output


@dataclass(frozen=True)
class ExportFailure:
    """An accepted result that could not be exported, and why."""

    batch_id: int
    node_seat: int
    row: int
    node: str
    reason: str


@dataclass(frozen=True)
class Export:
    rows: tuple[DatasetRow, ...]
    failures: tuple[ExportFailure, ...]


async def _fetch_one(
    p2p: P2pHost, signer: Signer, address: str | None, digest: bytes, fetch_seconds: float
) -> ResultEnvelope | str:
    if address is None:
        return "the node registered no p2p address"
    try:
        with trio.fail_after(fetch_seconds):
            data = await p2p.fetch(address, digest, signer=signer)
    except trio.TooSlowError:
        return f"no answer from {address} within {fetch_seconds}s"
    except SynodError as exc:
        return f"fetch from {address} failed: {exc}"
    try:
        return ResultEnvelope.from_bytes(data, expect_digest=digest)
    except EnvelopeError as exc:
        return f"the bytes served by {address} are not the committed result: {exc}"


async def export_rows(
    chain_id: int,
    market: str,
    histories: Sequence[JobHistory],
    addresses: dict[str, str],
    signer: Signer,
    fetch_seconds: float = 30.0,
    identity_dir: Path | None = None,
) -> Export:
    """Fetch, check and assemble every accepted result of ``histories``.

    ``addresses`` maps node addresses to their registered multiaddrs. Each fetch is signed by
    ``signer`` (the requester) and bounded by ``fetch_seconds`` seconds; a result that cannot be fetched
    or does not prove out is an :class:`ExportFailure`, never a row."""
    todo = [(h, b, s, r) for h in histories for b, s, r in h.accepted()]
    found: dict[int, ResultEnvelope | str] = {}
    lower = {a.lower(): m for a, m in addresses.items()}
    limiter = trio.CapacityLimiter(FETCH_CONCURRENCY)
    with tempfile.TemporaryDirectory(dir=identity_dir) as tmp:
        settings = P2pSettings(identity_file=Path(tmp) / "requester.key", fetch_timeout=fetch_seconds)
        async with open_p2p_host(settings) as p2p:

            async def one(i: int, batch: BatchHistory, seat: int, row: int) -> None:
                node = batch.reveals[seat].event.node
                async with limiter:
                    found[i] = await _fetch_one(
                        p2p,
                        signer,
                        lower.get(node.lower()),
                        bytes(batch.reveals[seat].event.digests[row]),
                        fetch_seconds,
                    )

            async with trio.open_nursery() as nursery:
                for i, (_h, batch, seat, row) in enumerate(todo):
                    nursery.start_soon(one, i, batch, seat, row)
    rows: list[DatasetRow] = []
    failures: list[ExportFailure] = []
    for i, (history, batch, seat, row) in enumerate(todo):
        outcome = found[i]
        node = batch.reveals[seat].event.node
        if isinstance(outcome, ResultEnvelope):
            wrong = check_envelope(outcome, history, batch, row)
            if wrong is None:
                fields = chain_fields(chain_id, market, history, batch, seat, row)
                rows.append(
                    DatasetRow(
                        **fields,
                        input=json.loads(posted_row(batch, row)),
                        result=result_of(outcome),
                        envelope=outcome.model_dump(),
                    )
                )
                continue
            outcome = wrong
        failures.append(ExportFailure(batch.batch_id, seat, row, node, outcome))
        log.warning("export_row_failed", batch=batch.batch_id, seat=seat, row=row, node=node, reason=outcome)
    return Export(tuple(rows), tuple(failures))


def write_jsonl(rows: Sequence[DatasetRow], path: Path) -> None:
    """One JSON object per line (sorted keys), written whole then renamed into place."""
    tmp = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row.model_dump(mode="json"), sort_keys=True, ensure_ascii=False) + "\n")
    tmp.replace(path)
