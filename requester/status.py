"""A job's progress from the chain: batches and tasks per phase, commits, reveals, scores,
accepted results, slashes, and the time left to the next deadline.

Phases are the contract's effective ones (``phaseOf``: deadline transitions applied) at one
pinned block; counts come from :mod:`requester.history`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hexbytes import HexBytes

from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market
from protocol.chain.models import JobPosted, Phase
from protocol.chain.rpc import BlockRef
from requester.history import DEFAULT_LOG_RANGE, JobHistory, Logged, get_logs, load_history, logged_event

TERMINAL = (Phase.SETTLED, Phase.REFUNDED)


@dataclass(frozen=True)
class BatchStatus:
    """One batch at the pinned block."""

    batch_id: int
    rows: int
    phase: Phase
    deadline: int
    """When the current phase ends (unix seconds; 0 when terminal)."""
    commits: int
    reveals: int
    scores: int
    """Score vectors revealed in the current round."""
    committee: int
    accepted: int
    """Accepted results (0 until settled)."""
    paid: int
    """Tokens credited to nodes and validators by settlement (base units)."""
    refund: int
    slashes: int


@dataclass(frozen=True)
class JobStatus:
    """Every batch of one job, and the block and time they were read at."""

    job_id: int
    requester: str
    rows: int
    block: int
    now: int
    """The block's timestamp."""
    batches: tuple[BatchStatus, ...]

    @property
    def by_phase(self) -> dict[Phase, tuple[int, int]]:
        """phase -> (batches, tasks) in it."""
        batches: Counter[Phase] = Counter()
        tasks: Counter[Phase] = Counter()
        for b in self.batches:
            batches[b.phase] += 1
            tasks[b.phase] += b.rows
        return {p: (batches[p], tasks[p]) for p in Phase if batches[p]}

    @property
    def terminal(self) -> bool:
        """Every batch settled or refunded."""
        return all(b.phase in TERMINAL for b in self.batches)

    @property
    def next_deadline(self) -> int | None:
        """Seconds to the earliest deadline of a live batch (0 when passed), ``None`` when all are done."""
        live = [b.deadline for b in self.batches if b.phase not in TERMINAL]
        return max(0, min(live) - self.now) if live else None

    @property
    def accepted(self) -> int:
        return sum(b.accepted for b in self.batches)


def job_status(chain: SynodContracts, job_id: int, log_range: int = DEFAULT_LOG_RANGE) -> JobStatus:
    """The status of job ``job_id`` at the latest block; :class:`~requester.errors.UnknownJob` if none."""
    block = chain.head(0)
    history = load_history(chain, job_id, block, log_range)
    return status_of(chain, history, block)


def status_of(chain: SynodContracts, history: JobHistory, block: BlockRef) -> JobStatus:
    """:class:`JobStatus` of ``history`` with phases read at ``block``."""
    market = Market(chain)
    now = int(chain.w3.eth.get_block(block.number)["timestamp"])
    out: list[BatchStatus] = []
    for batch in history.batches.values():
        phase = market.phase(batch.batch_id, block)
        accepted = sum(
            1
            for row in range(batch.rows)
            for seat in batch.reveals
            if batch.accepted(seat, row, history.threshold)
        )
        settled = batch.settled.event if batch.settled else None
        paid = 0
        if settled is not None:
            agreed = bin(settled.agreed_mask).count("1")
            paid = sum(settled.node_paid) + agreed * settled.validator_reward
        refund = settled.refund if settled else (batch.refunded.event.amount if batch.refunded else 0)
        out.append(
            BatchStatus(
                batch_id=batch.batch_id,
                rows=batch.rows,
                phase=phase.phase,
                deadline=0 if phase.phase in TERMINAL else phase.deadline,
                commits=len(batch.commits),
                reveals=len(batch.reveals),
                scores=len(batch.scores),
                committee=len(batch.draw.event.validators) if batch.draw else 0,
                accepted=accepted,
                paid=paid,
                refund=refund,
                slashes=len(batch.slashed),
            )
        )
    job = history.job.event
    return JobStatus(job.job_id, job.requester, job.row_count, block.number, now, tuple(out))


def list_jobs(
    chain: SynodContracts, requester: str | None = None, log_range: int = DEFAULT_LOG_RANGE
) -> list[Logged[JobPosted]]:
    """Every ``JobPosted`` (of ``requester`` when given: its indexed topic), oldest first."""
    market = chain.market
    topic0 = "0x" + bytes(HexBytes(market.events.JobPosted().topic)).hex()
    topics: list[object] = [topic0, None]
    if requester is not None:
        topics.append("0x" + bytes(HexBytes(requester)).rjust(32, b"\0").hex())
    entries = get_logs(
        chain, market.address, topics, chain.deployment.deploy_block, chain.head(0).number, log_range
    )
    found = [logged_event(e, JobPosted) for e in chain.decode_logs(entries) if e["event"] == "JobPosted"]
    return sorted(found, key=lambda j: j.event.job_id)


__all__ = ["BatchStatus", "JobStatus", "job_status", "list_jobs", "status_of"]
