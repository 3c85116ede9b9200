"""Typed calls to TaskMarket (and the token approvals they need) over the contracts facade.

Function, struct and event names are ITaskMarket's; argument order comes from the ABI (structs
are passed by field name and read back as named tuples), so nothing here restates the ABI.
Transactions go through a :class:`TxSender` (simulated first: a revert raises the decoded custom
error without spending gas); reads take a pinned :class:`BlockRef`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from web3.types import EventData

from protocol.canonical import canonical_bytes, keccak256
from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ChainError
from protocol.chain.rpc import BlockRef
from protocol.chain.sender import Receipt, TxSender
from protocol.commitments import result_commitment, score_commitment
from protocol.types import Address, Bytes32, JobId, TaskId, address_of


class Phase(IntEnum):
    """``ITaskMarket.Phase`` (the ABI carries an enum as its uint8 value only)."""

    NONE = 0
    COMMITTING = 1
    REVEALING = 2
    SCORE_COMMITTING = 3
    SCORE_REVEALING = 4
    FINALIZED = 5
    REFUNDED = 6


def model_id(name: str) -> Bytes32:
    """The on-chain id of a model: keccak256 of its name's UTF-8 bytes."""
    return Bytes32(keccak256(name.encode("utf-8")))


class JobParams(BaseModel):
    """``ITaskMarket.JobParams``; only the Solidity types are checked here, the contract judges the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: bytes = Field(min_length=32, max_length=32)
    bounty_per_task: int = Field(ge=0, lt=2**96)
    k: int = Field(ge=0, lt=2**8)
    m: int = Field(ge=0, lt=2**8)
    threshold: int = Field(ge=0, lt=2**8)
    tolerance: int = Field(ge=0, lt=2**8)
    validator_share_bps: int = Field(ge=0, lt=2**16)
    commit_duration: int = Field(ge=0, lt=2**32)
    reveal_duration: int = Field(ge=0, lt=2**32)
    score_commit_duration: int = Field(ge=0, lt=2**32)
    score_reveal_duration: int = Field(ge=0, lt=2**32)

    def to_abi(self) -> dict[str, Any]:
        """The struct by its Solidity field names (web3 orders it from the ABI)."""
        return {
            "model": self.model,
            "bountyPerTask": self.bounty_per_task,
            "k": self.k,
            "m": self.m,
            "threshold": self.threshold,
            "tolerance": self.tolerance,
            "validatorShareBps": self.validator_share_bps,
            "commitDuration": self.commit_duration,
            "revealDuration": self.reveal_duration,
            "scoreCommitDuration": self.score_commit_duration,
            "scoreRevealDuration": self.score_reveal_duration,
        }


@dataclass(frozen=True, slots=True)
class PostedJob:
    """A posted job: its id, its tasks' ids (one per input row, in row order) and the receipts."""

    job_id: JobId
    task_ids: tuple[TaskId, ...]
    receipts: tuple[Receipt, ...]
    """The approval (when one was needed) and the post."""


@dataclass(frozen=True, slots=True)
class Seat:
    """One committee seat: its validator, stake weight at the draw, and its score commit/reveal flags."""

    validator: Address
    weight: int
    committed: bool
    revealed: bool


def events(chain: SynodContracts, receipt: Receipt, name: str) -> list[EventData]:
    """The decoded events called ``name`` in ``receipt``, in log order."""
    return [e for e in chain.decode_logs(receipt.raw) if e["event"] == name]


def _one(chain: SynodContracts, receipt: Receipt, name: str) -> EventData:
    found = events(chain, receipt, name)
    if len(found) != 1:
        raise ChainError(f"{receipt.label} {receipt.tx_hash}: expected one {name} event, got {len(found)}")
    return found[0]


class Market:
    """TaskMarket operations for any participant; one instance per facade."""

    def __init__(self, chain: SynodContracts) -> None:
        self.chain = chain
        self._fns = chain.market.functions

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

    def post_job(
        self, sender: TxSender, params: JobParams, workflow: Any, inputs: Sequence[Any]
    ) -> PostedJob:
        """Escrow ``bounty * len(inputs)`` and post one task per input row (canonical JSON bytes)."""
        approval = self.ensure_allowance(
            sender, self.chain.market.address, params.bounty_per_task * len(inputs)
        )
        rows = [canonical_bytes(row) for row in inputs]
        fn = self._fns.postJob(params.to_abi(), canonical_bytes(workflow), rows)
        receipt = sender.transact(fn, label="postJob")
        return self._posted(receipt, approval)

    def post_task(self, sender: TxSender, params: JobParams, workflow: Any, input_row: Any) -> PostedJob:
        """Post a single task (a job of one row)."""
        approval = self.ensure_allowance(sender, self.chain.market.address, params.bounty_per_task)
        fn = self._fns.postTask(params.to_abi(), canonical_bytes(workflow), canonical_bytes(input_row))
        receipt = sender.transact(fn, label="postTask")
        return self._posted(receipt, approval)

    def _posted(self, receipt: Receipt, approval: Receipt | None) -> PostedJob:
        job = _one(self.chain, receipt, "JobPosted")["args"]
        task_ids = tuple(TaskId(int(e["args"]["taskId"])) for e in events(self.chain, receipt, "TaskPosted"))
        receipts = (approval, receipt) if approval is not None else (receipt,)
        return PostedJob(JobId(int(job["jobId"])), task_ids, receipts)

    def cancel(self, sender: TxSender, task_id: TaskId) -> Receipt:
        return sender.transact(self._fns.cancel(task_id), label="cancel")

    # ------------------------------------------------------------------ nodes

    def commit_result(
        self, sender: TxSender, task_id: TaskId, result_digest: bytes, salt: bytes
    ) -> tuple[int, Receipt]:
        """Commit to ``result_digest``; returns the slot to reveal in and the receipt."""
        commitment = result_commitment(task_id, sender.address, result_digest, salt)
        receipt = sender.transact(self._fns.commitResult(task_id, commitment), label="commitResult")
        return int(_one(self.chain, receipt, "ResultCommitted")["args"]["slot"]), receipt

    def reveal_result(
        self, sender: TxSender, task_id: TaskId, slot: int, result_digest: bytes, salt: bytes
    ) -> Receipt:
        return sender.transact(
            self._fns.revealResult(task_id, slot, result_digest, salt), label="revealResult"
        )

    # ------------------------------------------------------------------ validators

    def draw_committee(self, sender: TxSender, task_id: TaskId) -> Receipt:
        return sender.transact(self._fns.drawCommittee(task_id), label="drawCommittee")

    def commit_scores(
        self, sender: TxSender, task_id: TaskId, seat: int, scores: Sequence[int], salt: bytes
    ) -> Receipt:
        commitment = score_commitment(task_id, sender.address, scores, salt)
        return sender.transact(self._fns.commitScores(task_id, seat, commitment), label="commitScores")

    def reveal_scores(
        self, sender: TxSender, task_id: TaskId, seat: int, scores: Sequence[int], salt: bytes
    ) -> Receipt:
        return sender.transact(
            self._fns.revealScores(task_id, seat, list(scores), salt), label="revealScores"
        )

    # ------------------------------------------------------------------ anyone

    def finalize(self, sender: TxSender, task_id: TaskId) -> Receipt:
        return sender.transact(self._fns.finalize(task_id), label="finalize")

    def claim(self, sender: TxSender) -> tuple[int, Receipt]:
        """Claim the caller's whole balance; returns the amount paid (from the market's ``Claimed`` event)."""
        receipt = sender.transact(self._fns.claim(), label="claim")
        claimed = _one(self.chain, receipt, "Claimed")  # decoded from the market's logs only
        account = claimed["args"]["account"]
        if account != sender.address:
            raise ChainError(f"claim {receipt.tx_hash}: Claimed for {account}, expected {sender.address}")
        return int(claimed["args"]["amount"]), receipt

    # ------------------------------------------------------------------ reads (pinned)

    def phase(self, task_id: TaskId, block: BlockRef) -> tuple[Phase, int]:
        """The effective phase of ``task_id`` at ``block`` and its deadline."""
        phase, deadline = self.chain.read(self._fns.phaseOf(task_id), block)
        return Phase(phase), int(deadline)

    def task(self, task_id: TaskId, block: BlockRef) -> Any:
        """The stored ``TaskView`` (a named tuple: ``.phase``, ``.commitCount``, ...)."""
        return self.chain.read(self._fns.task(task_id), block)

    def job(self, job_id: JobId, block: BlockRef) -> Any:
        """The stored ``JobView`` (a named tuple)."""
        return self.chain.read(self._fns.job(job_id), block)

    def committee(self, task_id: TaskId, block: BlockRef) -> list[Seat]:
        """Every committee seat of ``task_id`` in seat order."""
        size = int(self.task(task_id, block).committeeSize)
        seats = []
        for index in range(size):
            validator, weight, committed, revealed, _seal = self.chain.read(
                self._fns.seat(task_id, index), block
            )
            seats.append(Seat(address_of(validator), int(weight), bool(committed), bool(revealed)))
        return seats

    def balance_of(self, account: Address, block: BlockRef) -> int:
        """Claimable balance of ``account`` on TaskMarket."""
        return int(self.chain.read(self._fns.balanceOf(account), block))
