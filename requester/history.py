"""Every event of a job, read back from the chain with where it happened.

``load_history(chain, job_id)`` finds the job's ``JobPosted`` (its ``jobId`` is an indexed topic),
then every TaskMarket event whose first indexed topic is one of the job's batch ids
(``BatchPosted``, ``ResultCommitted``, ``ResultRevealed``, ``CommitteeDrawn``, ``ScoresRevealed``,
``BatchSettled``, ``BatchRefunded``, ``MisconductSlashed`` ...), in ``eth_getLogs`` windows of
``log_range`` blocks. Status, export and verify all read this one picture, so they agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hexbytes import HexBytes

from protocol.chain.contracts import SynodContracts
from protocol.chain.models import (
    BatchPosted,
    BatchRefunded,
    BatchSettled,
    CommitteeDrawn,
    EventModel,
    JobPosted,
    MisconductSlashed,
    P2pAddressUpdated,
    ParticipantRegistered,
    ResultCommitted,
    ResultRevealed,
    ScoresRevealed,
    decode_event,
)
from protocol.chain.rpc import BlockRef, translated
from protocol.commitments import decode_scores
from protocol.types import Address
from requester.errors import UnknownJob

E = TypeVar("E", bound=EventModel)

DEFAULT_LOG_RANGE = 5_000
"""Blocks per ``eth_getLogs`` window."""
_TOPIC_CHUNK = 64
"""Batch ids per ``eth_getLogs`` topic list (providers cap OR-lists)."""


@dataclass(frozen=True)
class Logged(Generic[E]):
    """One event and where it was emitted."""

    event: E
    tx_hash: str
    block: int
    log_index: int


@dataclass
class BatchHistory:
    """What the chain recorded for one batch (the committee and scores of the last round only)."""

    posted: Logged[BatchPosted]
    commits: dict[int, Logged[ResultCommitted]] = field(default_factory=dict)
    """By node seat."""
    reveals: dict[int, Logged[ResultRevealed]] = field(default_factory=dict)
    """By node seat."""
    draw: Logged[CommitteeDrawn] | None = None
    """The last committee drawn."""
    scores: dict[int, Logged[ScoresRevealed]] = field(default_factory=dict)
    """Score vectors revealed after the last draw, by committee seat."""
    settled: Logged[BatchSettled] | None = None
    refunded: Logged[BatchRefunded] | None = None
    slashed: list[Logged[MisconductSlashed]] = field(default_factory=list)

    @property
    def batch_id(self) -> int:
        return self.posted.event.batch_id

    @property
    def rows(self) -> int:
        return len(self.posted.event.rows)

    @property
    def terminal(self) -> bool:
        """Settled or refunded."""
        return self.settled is not None or self.refunded is not None

    def median(self, seat: int, row: int) -> int | None:
        """The settled median of result (seat, row), ``None`` when unsettled or settled unscored."""
        if self.settled is None or not self.settled.event.scored:
            return None
        return self.settled.event.medians[seat * self.rows + row]

    def accepted(self, seat: int, row: int, threshold: int) -> bool:
        """Whether the contract paid result (seat, row): revealed and (unscored fallback, or the
        median reached ``threshold``); see docs/contracts.md, settlement rule."""
        if self.settled is None or seat not in self.reveals:
            return False
        median = self.median(seat, row)
        return median is None or median >= threshold

    def validator_scores(self, seat: int, row: int) -> list[tuple[int, Address, int]]:
        """(committee seat, validator, score) of every revealed vector for result (seat, row)."""
        out: list[tuple[int, Address, int]] = []
        for committee_seat, logged in sorted(self.scores.items()):
            matrix = decode_scores(logged.event.scores, self.rows)
            if seat < len(matrix):
                out.append((committee_seat, logged.event.validator, matrix[seat][row]))
        return out


@dataclass
class JobHistory:
    """A job's ``JobPosted`` and its batches in id order."""

    job: Logged[JobPosted]
    batches: dict[int, BatchHistory]
    head: int
    """The block the history was read up to."""

    @property
    def job_id(self) -> int:
        return self.job.event.job_id

    @property
    def threshold(self) -> int:
        return self.job.event.params.threshold

    def accepted(self) -> Iterator[tuple[BatchHistory, int, int]]:
        """(batch, node seat, row) of every accepted result, in batch, row, seat order."""
        for batch in self.batches.values():
            for row in range(batch.rows):
                for seat in sorted(batch.reveals):
                    if batch.accepted(seat, row, self.threshold):
                        yield batch, seat, row


def logged_event(entry: Any, model: type[E]) -> Logged[E]:
    event = decode_event(entry, model.CONTRACT)
    assert isinstance(event, model)
    return Logged(
        event,
        "0x" + bytes(HexBytes(entry["transactionHash"])).hex(),
        int(entry["blockNumber"]),
        int(entry["logIndex"]),
    )


def _topic(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def get_logs(
    chain: SynodContracts, address: str, topics: list[Any], start: int, end: int, step: int
) -> list[Any]:
    entries: list[Any] = []
    low = start
    while low <= end:
        high = min(end, low + step - 1)
        query: Any = {"address": address, "fromBlock": low, "toBlock": high, "topics": topics}
        with translated(chain.errors, "eth_getLogs"):
            entries += chain.w3.eth.get_logs(query)
        low = high + 1
    return entries


def find_job(
    chain: SynodContracts, job_id: int, block: BlockRef, log_range: int = DEFAULT_LOG_RANGE
) -> Logged[JobPosted]:
    """The ``JobPosted`` of ``job_id``; :class:`UnknownJob` if the chain has no such job."""
    market = chain.market
    topic0 = "0x" + bytes(HexBytes(market.events.JobPosted().topic)).hex()
    start = chain.deployment.deploy_block
    entries = get_logs(chain, market.address, [topic0, _topic(job_id)], start, block.number, log_range)
    decoded = [e for e in chain.decode_logs(entries) if e["event"] == "JobPosted"]
    if not decoded:
        count = int(chain.read(market.functions.jobCount(), block))
        raise UnknownJob(
            f"job {job_id} does not exist on chain {chain.chain_id} (jobs posted there: {count}); "
            "check the id with `synod job list`"
        )
    return logged_event(decoded[0], JobPosted)


_BATCH_EVENTS: dict[str, type[EventModel]] = {
    "BatchPosted": BatchPosted,
    "ResultCommitted": ResultCommitted,
    "ResultRevealed": ResultRevealed,
    "CommitteeDrawn": CommitteeDrawn,
    "ScoresRevealed": ScoresRevealed,
    "BatchSettled": BatchSettled,
    "BatchRefunded": BatchRefunded,
    "MisconductSlashed": MisconductSlashed,
}


def load_history(
    chain: SynodContracts, job_id: int, block: BlockRef | None = None, log_range: int = DEFAULT_LOG_RANGE
) -> JobHistory:
    """Read job ``job_id``'s events up to ``block`` (default: the latest block).

    Raises :class:`UnknownJob` for an id the chain does not know, the chain layer's errors
    (:class:`~protocol.chain.errors.RpcError` ...) when the RPC fails."""
    block = block or chain.head(0)
    job = find_job(chain, job_id, block, log_range)
    first, count = job.event.first_batch_id, job.event.batch_count
    ids = list(range(first, first + count))
    entries: list[Any] = []
    for i in range(0, len(ids), _TOPIC_CHUNK):
        topics = [None, [_topic(b) for b in ids[i : i + _TOPIC_CHUNK]]]
        entries += get_logs(chain, chain.market.address, topics, job.block, block.number, log_range)
    decoded = sorted(
        (e for e in chain.decode_logs(entries) if e["event"] in _BATCH_EVENTS),
        key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])),
    )
    batches: dict[int, BatchHistory] = {}
    for entry in decoded:
        name = str(entry["event"])
        logged: Logged[Any] = logged_event(entry, _BATCH_EVENTS[name])
        event = logged.event
        if name == "BatchPosted":
            if event.job_id == job_id:
                batches[event.batch_id] = BatchHistory(posted=logged)
            continue
        batch = batches.get(event.batch_id)
        if batch is None:
            continue
        if name == "ResultCommitted":
            batch.commits[event.seat] = logged
        elif name == "ResultRevealed":
            batch.reveals[event.seat] = logged
        elif name == "CommitteeDrawn":
            batch.draw = logged
            batch.scores = {}
        elif name == "ScoresRevealed":
            batch.scores[event.seat] = logged
        elif name == "BatchSettled":
            batch.settled = logged
        elif name == "BatchRefunded":
            batch.refunded = logged
        elif name == "MisconductSlashed":
            batch.slashed.append(logged)
    return JobHistory(job=job, batches=dict(sorted(batches.items())), head=block.number)


def p2p_addresses(
    chain: SynodContracts, accounts: Sequence[str], block: BlockRef, log_range: int = DEFAULT_LOG_RANGE
) -> dict[Address, str]:
    """The latest p2p multiaddr each of ``accounts`` registered (``ParticipantRegistered``, then
    any ``P2pAddressUpdated``); accounts with none are left out."""
    registry = chain.registry
    wanted = {a.lower() for a in accounts}
    names = {"ParticipantRegistered", "P2pAddressUpdated"}
    topics = [["0x" + bytes(HexBytes(registry.events[n]().topic)).hex() for n in sorted(names)]]
    entries = get_logs(
        chain, registry.address, topics, chain.deployment.deploy_block, block.number, log_range
    )
    found: dict[Address, str] = {}
    for entry in sorted(
        chain.decode_logs(entries), key=lambda e: (int(e["blockNumber"]), int(e["logIndex"]))
    ):
        if entry["event"] not in names:
            continue
        event = decode_event(entry, "StakeRegistry")
        assert isinstance(event, ParticipantRegistered | P2pAddressUpdated)
        if event.account.lower() in wanted:
            found[event.account] = bytes(event.p2p_address).decode("utf-8", errors="replace")
    return found
