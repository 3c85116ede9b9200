"""Typed calls to TaskMarket v2 (batches), and the token approvals they need, over the contracts facade.

What each role calls (``sender`` is the caller's :class:`TxSender`; ``block`` a pinned :class:`BlockRef`)::

    requester: post_job(sender, params, workflow, rows) -> PostedJob    (split into batches of B rows
               and, past the contract's gas-safe size, into several jobs/transactions)
               cancel(sender, batch_id)
    node:      commit_result(sender, batch_id, digests, salt) -> (seat, receipt)
               reveal_result(sender, batch_id, seat, digests, salt)
    anyone:    draw_committee(sender, batch_id) -> (CommitteeDrawn | None, receipt)   (arm, then draw)
               settle(sender, batch_id, score_vectors) -> Settlement
               claim(sender) -> (amount, receipt)
    committee: commit_scores(sender, batch_id, seat, scores, salt) / reveal_scores(...) /
               reveal_scores_and_settle(..., score_vectors) -> Settlement (the last reveal settles)
               (the first commit_scores in phase Drawing draws the committee: see committee_preview)
    reads:     phase, batch, job, node_seat, committee, committee_preview, balance_of, claimed_of, limits,
               revealed_score_vectors (from logs), settle_vectors (ordered and checked for settle)

Function, struct and event names are ITaskMarket's; structs are passed by ABI field name
(:meth:`~protocol.chain.models.AbiModel.to_abi`) and read back as the typed models of
:mod:`protocol.chain.models`. Transactions are simulated first by the sender: a revert raises the decoded
custom error (``chain.errors.BatchWrongPhase`` ...) without spending gas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from protocol.canonical import canonical_bytes, keccak256
from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ChainError
from protocol.chain.models import (
    BatchPosted,
    BatchRefunded,
    BatchRescoring,
    BatchSettled,
    BatchView,
    Claimed,
    CommitteeDrawn,
    CommitteeSeat,
    CommitteeSeedArmed,
    DrawnValidators,
    EventModel,
    JobParams,
    JobPosted,
    JobView,
    MisconductSlashed,
    NodeSeat,
    Phase,
    PhaseOf,
    ResultCommitted,
    ScoresRevealed,
    view_value,
)
from protocol.chain.rpc import BlockRef, translated
from protocol.chain.sender import Receipt, TxSender
from protocol.commitments import result_commitment, score_commitment, scores_hash
from protocol.types import BatchId, Bytes32, JobId, TaskRef, address_of

E = TypeVar("E", bound=EventModel)

DEFAULT_MAX_POST_BYTES = 100_000
"""Calldata bytes of rows per ``postJob`` transaction the splitter aims below (whole batches; a batch
larger than this still goes alone). Keeps a post under common mempool size limits (geth: 128 KiB)."""


def model_id(name: str) -> Bytes32:
    """The on-chain id of a model: keccak256 of its name's UTF-8 bytes."""
    return Bytes32(keccak256(name.encode("utf-8")))


def events(chain: SynodContracts, receipt: Receipt, model: type[E]) -> list[E]:
    """The ``model`` events emitted by its contract in ``receipt``, typed, in log order."""
    address = chain.contracts[model.CONTRACT].address
    return [
        model.from_abi(e["args"])
        for e in chain.decode_logs(receipt.raw)
        if e["event"] == model.EVENT and e["address"] == address
    ]


def one_event(chain: SynodContracts, receipt: Receipt, model: type[E]) -> E:
    """The single ``model`` event of ``receipt``; :class:`ChainError` if there is not exactly one."""
    found = events(chain, receipt, model)
    if len(found) != 1:
        raise ChainError(f"{receipt.label} {receipt.tx_hash}: expected one {model.EVENT}, got {len(found)}")
    return found[0]


# ---------------------------------------------------------------------- posting plan


@dataclass(frozen=True, slots=True)
class PostLimits:
    """How much one ``postJob`` may carry: the contract's limits and a calldata budget for the rows."""

    max_rows: int
    """``MAX_ROWS_PER_POST`` (the contract reverts ``JobTooLarge`` above it)."""
    max_batches: int
    """``MAX_BATCHES_PER_POST``."""
    max_bytes: int = DEFAULT_MAX_POST_BYTES
    """Soft budget of ABI-encoded row bytes per transaction (whole batches; at least one batch)."""


def encoded_size(row_length: int) -> int:
    """ABI-encoded size of one ``row_length``-byte row inside a ``bytes[]``: offset, length, padded data."""
    return 64 + (row_length + 31) // 32 * 32


def plan_posts(row_sizes: Sequence[int], batch_size: int, limits: PostLimits) -> list[range]:
    """Split a dataset of ``len(row_sizes)`` rows into the row ranges of successive ``postJob`` calls.

    Every range but the last holds a whole number of batches of ``batch_size``, so the batches are the
    ones a single post would have made; each range respects ``limits.max_rows``, ``limits.max_batches``
    and, batch by batch, ``limits.max_bytes`` of ABI-encoded rows (``row_sizes`` are the rows' byte
    lengths). Raises :class:`ValueError` for no rows, a batch size outside 1..``max_rows``, or limits
    below one batch.
    """
    total = len(row_sizes)
    if total == 0:
        raise ValueError("a job needs at least one row")
    if not 1 <= batch_size <= limits.max_rows or limits.max_batches < 1:
        raise ValueError(f"batch size {batch_size} does not fit the post limits {limits}")
    plans: list[range] = []
    start = 0
    while start < total:
        end, batches, size = start, 0, 0
        while end < total:
            batch_end = min(end + batch_size, total)
            batch_bytes = sum(encoded_size(n) for n in row_sizes[end:batch_end])
            full = (
                batches + 1 > limits.max_batches
                or batch_end - start > limits.max_rows
                or size + batch_bytes > limits.max_bytes
            )
            if batches > 0 and full:
                break
            end, batches, size = batch_end, batches + 1, size + batch_bytes
        plans.append(range(start, end))
        start = end
    return plans


@dataclass(frozen=True, slots=True)
class PostedBatch:
    """One posted batch: its ids, the dataset rows it holds and what the chain recorded."""

    batch_id: BatchId
    job_id: JobId
    dataset_row: int
    """Index of the batch's first row among every row given to :meth:`Market.post_job`."""
    rows: int
    rows_hash: Bytes32
    commit_deadline: int

    def task(self, row: int) -> TaskRef:
        """The task of row ``row`` (0-based) of this batch."""
        if not 0 <= row < self.rows:
            raise ValueError(f"row {row} is outside batch {self.batch_id} of {self.rows} rows")
        return TaskRef(self.batch_id, row)


@dataclass(frozen=True, slots=True)
class PostedJob:
    """What one :meth:`Market.post_job` call posted: one on-chain job per transaction, their batches in
    dataset order, and every receipt (the approval, when one was needed, first)."""

    jobs: tuple[JobPosted, ...]
    batches: tuple[PostedBatch, ...]
    receipts: tuple[Receipt, ...]

    @property
    def job_ids(self) -> tuple[JobId, ...]:
        return tuple(JobId(j.job_id) for j in self.jobs)

    @property
    def batch_ids(self) -> tuple[BatchId, ...]:
        return tuple(b.batch_id for b in self.batches)

    def task(self, dataset_row: int) -> TaskRef:
        """Where dataset row ``dataset_row`` (index into the rows given to ``post_job``) lives on chain."""
        for batch in self.batches:
            if batch.dataset_row <= dataset_row < batch.dataset_row + batch.rows:
                return TaskRef(batch.batch_id, dataset_row - batch.dataset_row)
        raise ValueError(f"dataset row {dataset_row} was not posted")


class PartialPostError(ChainError):
    """A job split into several posts failed after some of them were mined: ``posted`` holds those
    (their batches are live and escrowed); the cause is the failing post's error."""

    def __init__(self, message: str, posted: PostedJob) -> None:
        super().__init__(message)
        self.posted = posted


@dataclass(frozen=True, slots=True)
class Settlement:
    """What one ``settle`` call did: exactly one of settled / refunded / rescoring, and the slashes (for
    ``reveal_scores_and_settle``: all empty when the reveal was not the round's last)."""

    settled: BatchSettled | None
    refunded: BatchRefunded | None
    rescoring: BatchRescoring | None
    armed: CommitteeSeedArmed | None
    slashed: tuple[MisconductSlashed, ...]
    receipt: Receipt


class Market:
    """TaskMarket operations for any participant; one instance per facade."""

    def __init__(self, chain: SynodContracts) -> None:
        self.chain = chain
        self._fns = chain.market.functions

    def _view(self, name: str, block: BlockRef, *args: Any) -> Any:
        return view_value("TaskMarket", name, self.chain.view("TaskMarket", name, args, block))

    # ------------------------------------------------------------------ requester

    def ensure_allowance(self, sender: TxSender, spender: str, amount: int) -> Receipt | None:
        """Approve ``spender`` for ``amount`` tokens unless the allowance already covers it."""
        token = self.chain.token.functions
        current = int(
            self.chain.read(token.allowance(sender.address, address_of(spender)), self.chain.head(0))
        )
        if current >= amount:
            return None
        return sender.transact(token.approve(address_of(spender), amount), label="approve")

    def limits(self, block: BlockRef, max_bytes: int = DEFAULT_MAX_POST_BYTES) -> PostLimits:
        """The contract's per-post limits (``MAX_ROWS_PER_POST``, ``MAX_BATCHES_PER_POST``)."""
        return PostLimits(
            max_rows=int(self._view("MAX_ROWS_PER_POST", block)),
            max_batches=int(self._view("MAX_BATCHES_PER_POST", block)),
            max_bytes=max_bytes,
        )

    def post_job(
        self,
        sender: TxSender,
        params: JobParams,
        workflow: Any,
        inputs: Sequence[Any],
        max_post_bytes: int = DEFAULT_MAX_POST_BYTES,
    ) -> PostedJob:
        """Escrow ``bounty_per_task * len(inputs)`` and post every input row (canonical JSON bytes).

        The rows are split into batches of ``params.batch_size`` by the contract; when they exceed one
        transaction's gas-safe size (:meth:`limits`) they are posted as several jobs of whole batches,
        one transaction each, in order (see :func:`plan_posts`). Raises the decoded custom error of the
        first post that would revert (``JobNoRows``, ``JobBatchSizeOutOfRange``, ...; nothing is sent);
        when a later post fails, :class:`PartialPostError` carries what the earlier ones posted.
        """
        spec = canonical_bytes(workflow)
        rows = [canonical_bytes(row) for row in inputs]
        limits = self.limits(self.chain.head(0), max_post_bytes)
        if rows and 1 <= params.batch_size <= limits.max_rows:
            plans = plan_posts([len(r) for r in rows], params.batch_size, limits)
        else:  # not splittable: one post, and the contract names what is wrong (JobNoRows, ...)
            plans = [range(len(rows))]
        receipts: list[Receipt] = []
        approval = self.ensure_allowance(
            sender, self.chain.market.address, params.bounty_per_task * len(rows)
        )
        if approval is not None:
            receipts.append(approval)
        jobs: list[JobPosted] = []
        batches: list[PostedBatch] = []
        for plan in plans:
            chunk = rows[plan.start : plan.stop]
            label = "postJob" if len(plans) == 1 else f"postJob[{len(jobs) + 1}/{len(plans)}]"
            try:
                receipt = sender.transact(self._fns.postJob(params.to_abi(), spec, chunk), label=label)
            except ChainError as exc:
                if not jobs:
                    raise
                done = PostedJob(tuple(jobs), tuple(batches), tuple(receipts))
                raise PartialPostError(f"{label} failed after {len(jobs)} posts: {exc}", done) from exc
            receipts.append(receipt)
            job = one_event(self.chain, receipt, JobPosted)
            posted = events(self.chain, receipt, BatchPosted)
            if len(posted) != job.batch_count or job.row_count != len(chunk):
                raise ChainError(
                    f"{label} {receipt.tx_hash}: {len(posted)} BatchPosted for {job.batch_count}"
                )
            jobs.append(job)
            batches += [
                PostedBatch(
                    batch_id=BatchId(b.batch_id),
                    job_id=JobId(b.job_id),
                    dataset_row=plan.start + b.first_row,
                    rows=len(b.rows),
                    rows_hash=Bytes32(b.rows_hash),
                    commit_deadline=b.commit_deadline,
                )
                for b in posted
            ]
        return PostedJob(tuple(jobs), tuple(batches), tuple(receipts))

    def cancel(self, sender: TxSender, batch_id: int) -> tuple[BatchRefunded, Receipt]:
        """Refund a batch before its first commit (its requester only)."""
        receipt = sender.transact(self._fns.cancel(batch_id), label="cancel")
        return one_event(self.chain, receipt, BatchRefunded), receipt

    # ------------------------------------------------------------------ nodes

    def commit_result(
        self, sender: TxSender, batch_id: int, digests: Sequence[bytes], salt: bytes
    ) -> tuple[int, Receipt]:
        """Take a node seat committing to ``digests`` (one per row, in row order); returns the seat."""
        commitment = result_commitment(batch_id, sender.address, digests, salt)
        receipt = sender.transact(self._fns.commitResult(batch_id, commitment), label="commitResult")
        return one_event(self.chain, receipt, ResultCommitted).seat, receipt

    def reveal_result(
        self, sender: TxSender, batch_id: int, seat: int, digests: Sequence[bytes], salt: bytes
    ) -> Receipt:
        """Reveal the committed ``digests`` and ``salt`` at node ``seat``."""
        fn = self._fns.revealResult(batch_id, seat, [bytes(d) for d in digests], salt)
        return sender.transact(fn, label="revealResult")

    # ------------------------------------------------------------------ committee

    def draw_committee(self, sender: TxSender, batch_id: int) -> tuple[CommitteeDrawn | None, Receipt]:
        """Arm the committee seed, or draw once ``block.number > seedBlock``; the drawn event, if drawn.

        A draw with no active validator refunds the batch instead (``BatchRefunded`` in the receipt).
        """
        receipt = sender.transact(self._fns.drawCommittee(batch_id), label="drawCommittee")
        drawn = events(self.chain, receipt, CommitteeDrawn)
        return (drawn[0] if drawn else None), receipt

    def commit_scores(
        self, sender: TxSender, batch_id: int, seat: int, scores: bytes, salt: bytes
    ) -> Receipt:
        """Commit to score vector ``scores`` (see :func:`protocol.commitments.encode_scores`) at ``seat``."""
        commitment = score_commitment(batch_id, sender.address, scores, salt)
        return sender.transact(self._fns.commitScores(batch_id, seat, commitment), label="commitScores")

    def reveal_scores(
        self, sender: TxSender, batch_id: int, seat: int, scores: bytes, salt: bytes
    ) -> Receipt:
        """Reveal the committed score vector at committee ``seat``."""
        return sender.transact(
            self._fns.revealScores(batch_id, seat, bytes(scores), salt), label="revealScores"
        )

    def reveal_scores_and_settle(
        self,
        sender: TxSender,
        batch_id: int,
        seat: int,
        scores: bytes,
        salt: bytes,
        score_vectors: Sequence[bytes],
    ) -> Settlement:
        """Reveal at committee ``seat`` and, when this reveal is the round's last, settle in the same
        transaction (``revealScoresAndSettle``: one transaction less per batch). ``score_vectors`` are the
        round's vectors as :meth:`settle_vectors` orders them once this seat has revealed (this one
        included). When other committed seats have not revealed yet it only reveals: every field of the
        returned :class:`Settlement` but ``receipt`` is then empty."""
        fn = self._fns.revealScoresAndSettle(
            batch_id, seat, bytes(scores), salt, [bytes(v) for v in score_vectors]
        )
        return self._settlement(sender.transact(fn, label="revealScoresAndSettle"))

    # ------------------------------------------------------------------ anyone

    def settle(self, sender: TxSender, batch_id: int, score_vectors: Sequence[bytes] = ()) -> Settlement:
        """Settle, re-score or refund ``batch_id``; ``score_vectors`` as :meth:`settle_vectors` orders them.

        Raises ``BatchNotSettleable`` (decoded, with ``readyAt``) when it is too early.
        """
        fn = self._fns.settle(batch_id, [bytes(v) for v in score_vectors])
        return self._settlement(sender.transact(fn, label="settle"))

    def _settlement(self, receipt: Receipt) -> Settlement:
        settled = events(self.chain, receipt, BatchSettled)
        refunded = events(self.chain, receipt, BatchRefunded)
        rescoring = events(self.chain, receipt, BatchRescoring)
        armed = events(self.chain, receipt, CommitteeSeedArmed)
        return Settlement(
            settled=settled[0] if settled else None,
            refunded=refunded[0] if refunded else None,
            rescoring=rescoring[0] if rescoring else None,
            armed=armed[0] if armed else None,
            slashed=tuple(events(self.chain, receipt, MisconductSlashed)),
            receipt=receipt,
        )

    def claim(self, sender: TxSender) -> tuple[int, Receipt]:
        """Claim the caller's whole balance; returns the amount paid (from the market's ``Claimed``)."""
        receipt = sender.transact(self._fns.claim(), label="claim")
        claimed = one_event(self.chain, receipt, Claimed)
        if claimed.account != sender.address:
            raise ChainError(f"claim {receipt.tx_hash}: Claimed for {claimed.account}, not {sender.address}")
        return claimed.amount, receipt

    def open_account(self, sender: TxSender, account: str) -> Receipt:
        """Create ``account``'s balance slot ahead of its first credit (idempotent; cheaper settlements)."""
        return sender.transact(self._fns.openAccount(address_of(account)), label="openAccount")

    # ------------------------------------------------------------------ reads (pinned)

    def phase(self, batch_id: int, block: BlockRef) -> PhaseOf:
        """The effective phase of ``batch_id`` at ``block`` (deadline transitions applied) and its end."""
        result: PhaseOf = self._view("phaseOf", block, batch_id)
        return result

    def batch(self, batch_id: int, block: BlockRef) -> BatchView:
        """The stored batch (its stored phase may lag :meth:`phase` until the next call touches it)."""
        result: BatchView = self._view("batch", block, batch_id)
        return result

    def job(self, job_id: int, block: BlockRef) -> JobView:
        """The stored job."""
        result: JobView = self._view("job", block, job_id)
        return result

    def node_seat(self, batch_id: int, seat: int, block: BlockRef) -> NodeSeat:
        """Node seat ``seat`` of ``batch_id``."""
        result: NodeSeat = self._view("nodeSeat", block, batch_id, seat)
        return result

    def committee(self, batch_id: int, block: BlockRef) -> list[CommitteeSeat]:
        """Every committee seat of the current round, in seat order."""
        size = self.batch(batch_id, block).committee_size
        return [self._view("committeeSeat", block, batch_id, seat) for seat in range(size)]

    def committee_preview(self, batch_id: int, block: BlockRef) -> DrawnValidators:
        """The committee a draw of ``batch_id`` at ``block`` would seat, in seat order (empty when no draw
        would happen: not in phase Drawing, seed not usable). The first ``commit_scores`` of a drawn
        validator performs that draw itself, so no separate ``draw_committee`` transaction is needed; a
        stake change before it is mined can change the committee (the commit then reverts
        ``BatchNotCommitteeSeat``)."""
        result: DrawnValidators = self._view("committeePreview", block, batch_id)
        return result

    def balance_of(self, account: str, block: BlockRef) -> int:
        """Claimable balance of ``account``."""
        return int(self._view("balanceOf", block, address_of(account)))

    def claimed_of(self, account: str, block: BlockRef) -> int:
        """Total ``account`` has claimed so far."""
        return int(self._view("claimedOf", block, address_of(account)))

    def batch_count(self, block: BlockRef) -> int:
        return int(self._view("batchCount", block))

    def job_count(self, block: BlockRef) -> int:
        return int(self._view("jobCount", block))

    def draw_ready(self, batch: BatchView, block: BlockRef) -> bool:
        """Whether ``drawCommittee`` sent now would draw (not only arm): ``block`` is past the armed seed
        block (gas estimation runs against the latest block, so the head itself must be past it) and
        within the 256-block window."""
        return batch.seed_block != 0 and batch.seed_block < block.number < batch.seed_block + 256

    def revealed_score_vectors(self, batch_id: int, from_block: int, block: BlockRef) -> dict[int, bytes]:
        """The score vectors revealed in the batch's current round, by committee seat, from the logs.

        Scans ``CommitteeDrawn`` and ``ScoresRevealed`` of ``batch_id`` in ``from_block..block`` (give
        the deployment block or the batch's post block) and keeps the reveals after the last draw.
        Daemons following the chain get the same from their watcher.
        """
        market = self.chain.market
        ranges = {
            "from_block": from_block,
            "to_block": block.number,
            "argument_filters": {"batchId": batch_id},
        }
        with translated(self.chain.errors, "eth_getLogs"):
            drawn = market.events.CommitteeDrawn.get_logs(**ranges)
            revealed = market.events.ScoresRevealed.get_logs(**ranges)
        if not drawn:
            return {}
        last = max((int(e["blockNumber"]), int(e["logIndex"])) for e in drawn)
        vectors: dict[int, bytes] = {}
        for entry in sorted(revealed, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"]))):
            if (int(entry["blockNumber"]), int(entry["logIndex"])) > last:
                event = ScoresRevealed.from_abi(entry["args"])
                vectors[event.seat] = event.scores
        return vectors

    def settle_vectors(self, batch_id: int, revealed: Mapping[int, bytes], block: BlockRef) -> list[bytes]:
        """The ``scoreVectors`` argument of ``settle``: one vector per seat of ``scoreRevealMask``, in
        seat order, each checked against the seat's stored hash. Raises :class:`ChainError` when a
        revealed seat's vector is missing from ``revealed`` or does not match its seal."""
        batch = self.batch(batch_id, block)
        out: list[bytes] = []
        for seat in batch.score_revealed_seats():
            vector = revealed.get(seat)
            if vector is None:
                raise ChainError(f"batch {batch_id}: committee seat {seat} revealed, its vector is missing")
            seal = self._view("committeeSeat", block, batch_id, seat).seal
            if scores_hash(vector) != seal:
                raise ChainError(
                    f"batch {batch_id}: the vector given for seat {seat} does not match its seal"
                )
            out.append(bytes(vector))
        return out


__all__ = [
    "DEFAULT_MAX_POST_BYTES",
    "JobParams",
    "Market",
    "PartialPostError",
    "Phase",
    "PostLimits",
    "PostedBatch",
    "PostedJob",
    "Settlement",
    "encoded_size",
    "events",
    "model_id",
    "one_event",
    "plan_posts",
]
