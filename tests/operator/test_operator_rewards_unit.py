"""The v1 interpretation of events into reward rows, over an in-memory event list (the real
chain's events are checked in test_operator_chain.py): mask bits at both ends, refunds, pending,
slashes, claims, and the OR filters the interpretation asks for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from protocol.operator.config import OperatorRole
from protocol.operator.rewards import ChainEvent, rewards_v1, rewards_v2
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


def finalized(task: int, block: int, accepted: int, agreed: int, medians: list[int]) -> ChainEvent:
    return ev(
        "TaskMarket",
        "TaskFinalized",
        block,
        taskId=task,
        requester=OTHER,
        medians=medians,
        acceptedMask=accepted,
        agreedMask=agreed,
        nodeReward=7,
        validatorReward=3,
        refund=0,
    )


def test_node_rows() -> None:
    source = ListSource(
        [
            ev("TaskMarket", "ResultRevealed", 10, taskId=1, node=ME, order=0),
            ev("TaskMarket", "ResultRevealed", 11, taskId=2, node=ME, order=15),
            ev("TaskMarket", "ResultRevealed", 12, taskId=3, node=ME, order=1),
            ev("TaskMarket", "ResultRevealed", 13, taskId=4, node=ME, order=0),
            ev("TaskMarket", "ResultRevealed", 14, taskId=5, node=ME, order=0),
            ev("TaskMarket", "ResultRevealed", 10, taskId=1, node=OTHER, order=1),
            finalized(
                1, 20, accepted=0b10, agreed=0, medians=[40, 90]
            ),  # only OTHER's result (bit 1) accepted
            finalized(2, 21, accepted=1 << 15, agreed=0, medians=[0] * 15 + [77]),  # bit 15: the last seat
            finalized(3, 22, accepted=0b10, agreed=0, medians=[10, 60]),
            ev("TaskMarket", "TaskRefunded", 23, taskId=4, requester=OTHER, reason=2, amount=100),
            ev("StakeRegistry", "Slashed", 24, account=ME, taskId=6, role=1, amount=5, treasuryBalance=5),
            ev("StakeRegistry", "Slashed", 24, account=OTHER, taskId=6, role=1, amount=5, treasuryBalance=10),
            ev("TaskMarket", "Claimed", 25, account=ME, amount=14),
        ]
    )
    rows = rewards_v1(source, ME, OperatorRole.NODE, 0, 100)
    summary = [(r.kind, r.batch, r.amount, r.block_number) for r in rows]
    assert summary == [
        ("unpaid", 1, 0, 20),
        ("payout", 2, 7, 21),
        ("payout", 3, 7, 22),
        ("unpaid", 4, 0, 23),
        ("slash", 6, 5, 24),
        ("claim", None, 14, 25),
        ("pending", 5, 0, None),
    ]
    assert rows[0].reason == "result not accepted (median score 40)"
    assert rows[1].reason == "result accepted (median score 77)"
    assert rows[3].reason == "task refunded to the requester: no reveal in time"
    assert rows[4].reason == "result commitment never revealed"
    assert rows[0].tx_hash == f"0x{20:064x}"
    settlement_filters = [f for name, f in source.queries if name == "TaskFinalized"]
    assert settlement_filters == [{"taskId": [1, 2, 3, 4, 5]}]


def test_validator_rows_and_range() -> None:
    source = ListSource(
        [
            ev("TaskMarket", "ScoresRevealed", 10, taskId=1, validator=ME, seat=0),
            ev("TaskMarket", "ScoresRevealed", 11, taskId=2, validator=ME, seat=2),
            ev("TaskMarket", "ScoresRevealed", 500, taskId=9, validator=ME, seat=0),  # outside the range
            finalized(1, 20, accepted=1, agreed=0b110, medians=[50]),  # seat 0 not agreed
            finalized(2, 21, accepted=1, agreed=0b100, medians=[50]),  # seat 2 agreed
            ev("StakeRegistry", "Slashed", 22, account=ME, taskId=3, role=2, amount=10, treasuryBalance=10),
        ]
    )
    rows = rewards_v1(source, ME, OperatorRole.VALIDATOR, 0, 100)
    assert [(r.kind, r.batch, r.amount) for r in rows] == [
        ("unpaid", 1, 0),
        ("payout", 2, 3),
        ("slash", 3, 10),
    ]
    assert rows[0].reason == "scores outside the tolerance of the medians"
    assert rows[2].reason == "score commitment never revealed"


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
