"""The v2 (batch) interpretation of events into reward rows, over an in-memory event list (the real
chain's events are checked in test_operator_chain.py): per-seat pay and medians, the last committee's
agreed mask, refunds, pending, slashes with their reasons, claims."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from protocol.chain.models import RefundReason, SlashReason
from protocol.operator.config import OperatorRole
from protocol.operator.rewards import REFUND_REASONS, SLASH_REASONS_V2, ChainEvent, rewards_v2
from protocol.types import Address

pytestmark = pytest.mark.unit

ME = Address("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
OTHER = Address("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC")


class ListSource:
    """An EventSource over a list, applying filters as eth_getLogs does (a list = any of)."""

    def __init__(self, events: list[ChainEvent]) -> None:
        self.events_ = events
        self.queries: list[tuple[str, Mapping[str, Any]]] = []

    def events(
        self, contract: str, name: str, filters: Mapping[str, Any], from_block: int, to_block: int
    ) -> list[ChainEvent]:
        self.queries.append((name, dict(filters)))

        def match(e: ChainEvent) -> bool:
            if (e.contract, e.name) != (contract, name):
                return False
            for key, want in filters.items():
                options = want if isinstance(want, list) else [want]
                if e.args[key] not in options:
                    return False
            return from_block <= e.block_number <= to_block

        return [e for e in self.events_ if match(e)]


def ev(contract: str, name: str, block: int, **args: Any) -> ChainEvent:
    return ChainEvent(
        contract=contract, name=name, args=args, block_number=block, log_index=0, tx_hash=f"0x{block:064x}"
    )


def settled_v2(
    batch: int, block: int, scored: bool, medians: bytes, paid: list[int], agreed: int, rnd: int = 0
) -> ChainEvent:
    return ev(
        "TaskMarket",
        "BatchSettled",
        block,
        batchId=batch,
        requester=OTHER,
        round=rnd,
        scored=scored,
        medians=medians,
        nodePaid=paid,
        agreedMask=agreed,
        validatorReward=4,
        refund=0,
    )


def test_v2_node_rows() -> None:
    digests = [b"\x01" * 32, b"\x02" * 32]  # a batch of two rows
    source = ListSource(
        [
            ev(
                "TaskMarket",
                "ResultRevealed",
                10,
                batchId=1,
                node=ME,
                seat=1,
                digests=digests,
                salt=b"s" * 32,
            ),
            ev(
                "TaskMarket",
                "ResultRevealed",
                11,
                batchId=2,
                node=ME,
                seat=0,
                digests=digests,
                salt=b"s" * 32,
            ),
            ev(
                "TaskMarket",
                "ResultRevealed",
                12,
                batchId=3,
                node=ME,
                seat=0,
                digests=digests,
                salt=b"s" * 32,
            ),
            ev(
                "TaskMarket",
                "ResultRevealed",
                13,
                batchId=4,
                node=ME,
                seat=0,
                digests=digests,
                salt=b"s" * 32,
            ),
            ev(
                "TaskMarket",
                "ResultRevealed",
                14,
                batchId=5,
                node=ME,
                seat=0,
                digests=digests,
                salt=b"s" * 32,
            ),
            # seat 1's medians are bytes 2..3 (seat * rows + row)
            settled_v2(1, 20, True, bytes([10, 20, 80, 90]), [0, 50], agreed=0),
            settled_v2(2, 21, True, bytes([10, 20, 80, 90]), [0, 50], agreed=0),
            settled_v2(3, 22, False, bytes(4), [25, 25], agreed=0),
            ev("TaskMarket", "BatchRefunded", 23, batchId=4, requester=OTHER, reason=4, amount=9),
            ev("TaskMarket", "MisconductSlashed", 24, batchId=6, account=ME, reason=3, amount=10),
            ev("TaskMarket", "Claimed", 25, account=ME, amount=75),
        ]
    )
    rows = rewards_v2(source, ME, OperatorRole.NODE, 0, 100)
    assert [(r.kind, r.batch, r.amount) for r in rows] == [
        ("payout", 1, 50),
        ("unpaid", 2, 0),
        ("payout", 3, 25),
        ("unpaid", 4, 0),
        ("slash", 6, 10),
        ("claim", None, 75),
        ("pending", 5, 0),
    ]
    assert rows[0].reason == "paid for 2 row(s) (row medians 80, 90)"
    assert rows[1].reason == "not paid for 2 row(s) (row medians 10, 20)"
    assert rows[2].reason == "no committee reached quorum: every revealed result paid"
    assert rows[3].reason == "batch refunded to the requester: committee not drawn in time"
    assert rows[4].reason == "junk results (medians below the job's junk floor)"


def test_v2_validator_rows_use_the_last_committee() -> None:
    source = ListSource(
        [
            ev("TaskMarket", "CommitteeDrawn", 9, batchId=1, round=0, validators=[OTHER, ME], weights=[1, 1]),
            ev("TaskMarket", "ScoresRevealed", 10, batchId=1, validator=ME, seat=1, scores=b"\x05"),
            ev("TaskMarket", "CommitteeDrawn", 9, batchId=2, round=0, validators=[ME, OTHER], weights=[1, 1]),
            ev("TaskMarket", "ScoresRevealed", 10, batchId=2, validator=ME, seat=0, scores=b"\x05"),
            ev("TaskMarket", "CommitteeDrawn", 15, batchId=2, round=1, validators=[OTHER], weights=[1]),
            ev("TaskMarket", "CommitteeDrawn", 9, batchId=3, round=0, validators=[ME], weights=[1]),
            ev("TaskMarket", "ScoresRevealed", 10, batchId=3, validator=ME, seat=0, scores=b"\x05"),
            settled_v2(1, 20, True, b"\x05", [1], agreed=0b10),  # seat 1 (ME) agreed
            settled_v2(2, 21, True, b"\x05", [1], agreed=0b1, rnd=1),  # round 1's seat 0 is OTHER
            settled_v2(3, 22, True, b"\x05", [1], agreed=0b0),
            ev("TaskMarket", "MisconductSlashed", 23, batchId=7, account=ME, reason=2, amount=10),
        ]
    )
    rows = rewards_v2(source, ME, OperatorRole.VALIDATOR, 0, 100)
    assert [(r.kind, r.batch, r.amount, r.reason) for r in rows] == [
        ("payout", 1, 4, "scores agreed with the medians"),
        ("unpaid", 2, 0, "a later committee (round 1) settled the batch"),
        ("unpaid", 3, 0, "scores outside the tolerance"),
        ("slash", 7, 10, "score commitment never revealed"),
    ]


def test_reason_words_follow_the_contract_enums() -> None:
    """One phrase per member of the contract enums (mirrored in protocol.chain.models)."""
    assert len(REFUND_REASONS) == len(RefundReason)
    assert len(SLASH_REASONS_V2) == len(SlashReason)
    assert REFUND_REASONS[RefundReason.NO_DRAW] == "committee not drawn in time"
    assert SLASH_REASONS_V2[-1].startswith("junk")
