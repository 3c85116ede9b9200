"""Every payout, unpaid result, slash and claim of one account, explained from chain events.

Two layers, so the protocol version only touches the second:

* an **event list** (:class:`EventSource`): typed :class:`ChainEvent` records of one contract
  event, filtered by indexed arguments, over a block range; :class:`LogEventSource` reads them
  with ``eth_getLogs`` in ranges of ``chain.log_range`` blocks up to the confirmed head;
* an **interpretation** of those events into :class:`RewardEntry` rows (:func:`rewards_v2`, the
  protocol v2 interface, per batch: ``BatchSettled.nodePaid`` / ``agreedMask`` of the last
  ``CommitteeDrawn``, ``BatchRefunded``, ``MisconductSlashed`` with its reason, ``Claimed``).
  Protocol v1 (per-task settlement) no longer exists and is not read.

Rows (``kind``): ``payout`` (credited to the claimable balance), ``unpaid`` (settled without pay,
and why), ``pending`` (revealed, not settled yet), ``slash`` (taken from the stake), ``claim``
(paid out of the balance to the account). Amounts are integer base units; ``batch`` is the batch
id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict

from protocol.chain.contracts import SynodContracts
from protocol.chain.rpc import translated
from protocol.operator.config import OperatorRole
from protocol.types import Address

RewardKind = Literal["payout", "unpaid", "pending", "slash", "claim"]
TOPIC_OR_LIMIT = 100
"""Values per indexed-argument OR filter in one ``eth_getLogs`` (keeps requests small)."""

REFUND_REASONS = (
    "cancelled by the requester",
    "no commit in time",
    "no reveal in time",
    "no validator to draw",
    "committee not drawn in time",
)
"""v2 ``ITaskMarket.RefundReason`` in declaration order, in words (tests check it against the ABI)."""


class ChainEvent(BaseModel):
    """One decoded contract event, where it happened."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contract: str
    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str


class EventSource(Protocol):
    """Past events of the Synod contracts."""

    def events(
        self, contract: str, name: str, filters: Mapping[str, Any], from_block: int, to_block: int
    ) -> list[ChainEvent]:
        """Events ``name`` of ``contract`` in ``[from_block, to_block]`` whose indexed arguments
        match ``filters`` (a list value matches any of its items), in chain order."""
        ...


class LogEventSource:
    """:class:`EventSource` over ``eth_getLogs``, ``step`` blocks per request."""

    def __init__(self, chain: SynodContracts, step: int) -> None:
        self._chain = chain
        self._step = max(step, 1)

    def events(
        self, contract: str, name: str, filters: Mapping[str, Any], from_block: int, to_block: int
    ) -> list[ChainEvent]:
        event = self._chain.contracts[contract].events[name]
        out: list[ChainEvent] = []
        start = from_block
        while start <= to_block:
            end = min(start + self._step - 1, to_block)
            with translated(self._chain.errors, f"eth_getLogs {name}"):
                logs = event.get_logs(argument_filters=dict(filters), from_block=start, to_block=end)
            for log in logs:
                out.append(
                    ChainEvent(
                        contract=contract,
                        name=name,
                        args=dict(log["args"]),
                        block_number=int(log["blockNumber"]),
                        log_index=int(log["logIndex"]),
                        tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
                    )
                )
            start = end + 1
        return sorted(out, key=lambda e: (e.block_number, e.log_index))


class RewardEntry(BaseModel):
    """One line of ``rewards``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: RewardKind
    batch: int | None
    """The batch id; ``None`` for claims."""
    reason: str
    amount: int
    """Base units: credited (payout), taken (slash), paid out (claim); 0 for unpaid/pending."""
    tx_hash: str | None
    """The transaction that settled, slashed or claimed (``None`` while pending)."""
    block_number: int | None


class RewardsReport(BaseModel):
    """An account's rewards between two blocks, with totals."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: Address
    role: OperatorRole
    from_block: int
    to_block: int
    entries: list[RewardEntry]
    decimals: int
    symbol: str

    def total(self, kind: RewardKind) -> int:
        """The sum of the amounts of ``kind`` rows."""
        return sum(entry.amount for entry in self.entries if entry.kind == kind)


def _chunks(values: Sequence[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(values), size):
        yield list(values[i : i + size])


def _claims(source: EventSource, account: Address, from_block: int, to_block: int) -> list[RewardEntry]:
    return [
        RewardEntry(
            kind="claim",
            batch=None,
            reason="claimed to the account",
            amount=int(e.args["amount"]),
            tx_hash=e.tx_hash,
            block_number=e.block_number,
        )
        for e in source.events("TaskMarket", "Claimed", {"account": account}, from_block, to_block)
    ]


def _in_order(entries: list[RewardEntry]) -> list[RewardEntry]:
    """Chain order; rows not settled yet (no block) last."""
    big = 2**63
    return sorted(
        entries, key=lambda r: (r.block_number if r.block_number is not None else big, r.batch or 0)
    )


SLASH_REASONS_V2 = (
    "result commitment never revealed",
    "score vector never committed",
    "score commitment never revealed",
    "junk results (medians below the job's junk floor)",
)
"""v2 ``ITaskMarket.SlashReason`` in declaration order, in words."""


def _v2_settlements(
    source: EventSource, batch_ids: Sequence[int], from_block: int, to_block: int, with_committees: bool
) -> tuple[dict[int, ChainEvent], dict[int, ChainEvent], dict[int, ChainEvent]]:
    settled: dict[int, ChainEvent] = {}
    refunded: dict[int, ChainEvent] = {}
    drawn: dict[int, ChainEvent] = {}  # the last committee drawn per batch
    for chunk in _chunks(sorted(set(batch_ids)), TOPIC_OR_LIMIT):
        for e in source.events("TaskMarket", "BatchSettled", {"batchId": chunk}, from_block, to_block):
            settled[int(e.args["batchId"])] = e
        for e in source.events("TaskMarket", "BatchRefunded", {"batchId": chunk}, from_block, to_block):
            refunded[int(e.args["batchId"])] = e
        if with_committees:
            for e in source.events("TaskMarket", "CommitteeDrawn", {"batchId": chunk}, from_block, to_block):
                drawn[int(e.args["batchId"])] = e
    return settled, refunded, drawn


def _refund_entry(batch_id: int, e: ChainEvent) -> RewardEntry:
    code = int(e.args["reason"])
    why = REFUND_REASONS[code] if code < len(REFUND_REASONS) else f"reason {code}"
    return RewardEntry(
        kind="unpaid",
        batch=batch_id,
        reason=f"batch refunded to the requester: {why}",
        amount=0,
        tx_hash=e.tx_hash,
        block_number=e.block_number,
    )


def _pending(batch_id: int) -> RewardEntry:
    return RewardEntry(
        kind="pending", batch=batch_id, reason="not settled yet", amount=0, tx_hash=None, block_number=None
    )


def rewards_v2(
    source: EventSource, account: Address, role: OperatorRole, from_block: int, to_block: int
) -> list[RewardEntry]:
    """Protocol v2 (batches) events -> the account's rows, in chain order (pending rows last).

    Nodes: each ``ResultRevealed`` (seat ``s``, one digest per row), paid ``nodePaid[s]`` of the
    ``BatchSettled`` (whose ``medians`` byte ``s * rows + r`` is row ``r``'s median), or unpaid by
    ``BatchRefunded``. Validators: each ``ScoresRevealed``; paid ``validatorReward`` when the
    batch's last ``CommitteeDrawn`` seats the account at a seat set in ``agreedMask``. Slashes:
    market ``MisconductSlashed`` (with its reason). Claims: ``Claimed``.
    """
    entries: list[RewardEntry] = []
    if role is OperatorRole.NODE:
        revealed = source.events("TaskMarket", "ResultRevealed", {"node": account}, from_block, to_block)
        ids = [int(e.args["batchId"]) for e in revealed]
        settled, refunded, _ = _v2_settlements(source, ids, from_block, to_block, with_committees=False)
        for e in revealed:
            batch_id, seat, rows = int(e.args["batchId"]), int(e.args["seat"]), len(e.args["digests"])
            done = settled.get(batch_id)
            if done is not None:
                paid = list(done.args["nodePaid"])
                amount = int(paid[seat]) if seat < len(paid) else 0
                medians = bytes(done.args["medians"])[seat * rows : (seat + 1) * rows]
                if not bool(done.args["scored"]):
                    why = "no committee reached quorum: every revealed result paid"
                else:
                    shown = ", ".join(str(m) for m in medians) or "-"
                    why = f"{'paid' if amount else 'not paid'} for {rows} row(s) (row medians {shown})"
                entries.append(
                    RewardEntry(
                        kind="payout" if amount else "unpaid",
                        batch=batch_id,
                        reason=why,
                        amount=amount,
                        tx_hash=done.tx_hash,
                        block_number=done.block_number,
                    )
                )
            elif batch_id in refunded:
                entries.append(_refund_entry(batch_id, refunded[batch_id]))
            else:
                entries.append(_pending(batch_id))
    else:
        revealed = source.events("TaskMarket", "ScoresRevealed", {"validator": account}, from_block, to_block)
        ids = sorted({int(e.args["batchId"]) for e in revealed})
        settled, refunded, drawn = _v2_settlements(source, ids, from_block, to_block, with_committees=True)
        for batch_id in ids:
            done = settled.get(batch_id)
            if done is not None:
                committee = drawn.get(batch_id)
                members = [str(a) for a in committee.args["validators"]] if committee is not None else []
                final_seat = members.index(account) if account in members else None
                agreed = final_seat is not None and (int(done.args["agreedMask"]) >> final_seat) & 1 == 1
                if not bool(done.args["scored"]):
                    why = "no committee reached quorum: the validator share went back to the requester"
                elif final_seat is None:
                    why = f"a later committee (round {int(done.args['round'])}) settled the batch"
                else:
                    why = "scores agreed with the medians" if agreed else "scores outside the tolerance"
                amount = int(done.args["validatorReward"]) if agreed else 0
                entries.append(
                    RewardEntry(
                        kind="payout" if amount else "unpaid",
                        batch=batch_id,
                        reason=why,
                        amount=amount,
                        tx_hash=done.tx_hash,
                        block_number=done.block_number,
                    )
                )
            elif batch_id in refunded:
                entries.append(_refund_entry(batch_id, refunded[batch_id]))
            else:
                entries.append(_pending(batch_id))
    for e in source.events("TaskMarket", "MisconductSlashed", {"account": account}, from_block, to_block):
        code = int(e.args["reason"])
        entries.append(
            RewardEntry(
                kind="slash",
                batch=int(e.args["batchId"]),
                reason=SLASH_REASONS_V2[code] if code < len(SLASH_REASONS_V2) else f"reason {code}",
                amount=int(e.args["amount"]),
                tx_hash=e.tx_hash,
                block_number=e.block_number,
            )
        )
    return _in_order(entries + _claims(source, account, from_block, to_block))


def rewards_report(
    chain: SynodContracts,
    account: Address,
    role: OperatorRole,
    decimals: int,
    symbol: str,
    log_range: int,
    from_block: int | None = None,
    to_block: int | None = None,
) -> RewardsReport:
    """The report from the deployment block (default) to the confirmed head (default).

    Raises :class:`~protocol.chain.errors.RpcError` when the logs cannot be read.
    """
    start = chain.deployment.deploy_block if from_block is None else from_block
    end = chain.head().number if to_block is None else to_block
    # Right after the deployment the confirmed head can sit below it: nothing to read yet.
    entries = [] if end < start else rewards_v2(LogEventSource(chain, log_range), account, role, start, end)
    return RewardsReport(
        address=account,
        role=role,
        from_block=start,
        to_block=end,
        entries=entries,
        decimals=decimals,
        symbol=symbol,
    )
