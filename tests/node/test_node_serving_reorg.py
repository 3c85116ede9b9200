"""A reorg that removes a revealed batch must take it out of the node's serving memory.

Batch ids are the market's counter: after a reorg forgets batch 7 (:meth:`NodeDaemon._rewind`),
the new chain may post a DIFFERENT batch 7 (another job, rows and committee). The serving memory
kept the old batch's bytes (by digest) and its committee under (7, round 0); left there, the old
committee kept access to the old results and the new batch's committee was checked against the
old members (denied: the node's revealed results unavailable to the validators scoring them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from node.daemon import NodeDaemon
from node.serving import ServingCache
from node.state import BatchRecord, BatchStatus, JobRecord, NodeState, TaskRecord
from protocol.canonical import keccak256
from protocol.chain.models import Phase
from protocol.chain.rpc import BlockRef
from protocol.store import open_store
from protocol.types import Address, address_of
from tests.node.helpers import params

pytestmark = pytest.mark.unit

OLD_MEMBER = address_of("0x" + "aa" * 20)
NEW_MEMBER = address_of("0x" + "bb" * 20)
OLD_ROWS = [f'{{"old":{i}}}'.encode() for i in range(4)]
NEW_ROWS = [f'{{"new":{i}}}'.encode() for i in range(4)]


@dataclass
class _Seat:
    validator: Address


@dataclass
class _Phase:
    phase: Phase


@dataclass
class _View:
    round: int


class _Market:
    """The three views :func:`node.serving.read_admission` reads; ``member`` is the chain's current
    committee of every batch (round 0, ScoreCommitting)."""

    def __init__(self) -> None:
        self.member = OLD_MEMBER
        self.committee_reads = 0

    def phase(self, batch_id: int, block: BlockRef) -> _Phase:
        return _Phase(Phase.SCORE_COMMITTING)

    def batch(self, batch_id: int, block: BlockRef) -> _View:
        return _View(0)

    def committee(self, batch_id: int, block: BlockRef) -> list[_Seat]:
        self.committee_reads += 1
        return [_Seat(self.member)]


class _Writer:
    def forget_nonce(self) -> None:
        pass


class _Gauge:
    def set(self, value: float) -> None:
        pass


class _Metrics:
    open_batches = _Gauge()


def _record(state: NodeState, job_id: int, rows: list[bytes], block: int) -> None:
    state.put_job(
        JobRecord(
            job_id=job_id,
            workflow=b"{}",
            workflow_hash=keccak256(b"{}"),
            requester="0x" + f"{job_id:02x}" * 20,
            params=params(),
            block=block,
        )
    )
    state.put_batch(
        BatchRecord(
            batch_id=7,
            job_id=job_id,
            first_row=0,
            commit_deadline=10**10,
            rows=(b"{}",) * len(rows),
            status=BatchStatus.REVEALED,
            block=block,
        )
    )
    for row, data in enumerate(rows):
        state.put_task(TaskRecord(batch_id=7, row=row, digest=keccak256(data), error=None, seconds=0.1))


def test_a_reorged_batch_leaves_the_serving_memory_and_its_reused_id_gets_the_new_committee(
    tmp_path: Path,
) -> None:
    state = NodeState.open(tmp_path / "state")
    market = _Market()
    old = [bytes(keccak256(r)) for r in OLD_ROWS]
    new = [bytes(keccak256(r)) for r in NEW_ROWS]

    async def main() -> None:
        async with open_store(tmp_path / "journal.sqlite") as store:
            for r in (*OLD_ROWS, *NEW_ROWS):
                await store.put_result_bytes(r)
            daemon = NodeDaemon.__new__(NodeDaemon)  # the access and rewind state only
            daemon.state = state
            daemon.store = store
            daemon.address = address_of("0x" + "99" * 20)
            daemon._serving = ServingCache()
            daemon._access_ok = {}
            daemon._drivers = {}
            daemon._workflows = {}
            daemon._writer = _Writer()  # type: ignore[assignment]
            daemon.metrics = _Metrics()  # type: ignore[assignment]
            daemon._market = market  # type: ignore[assignment]

            async def read(fn: Any, *args: Any) -> Any:
                return fn(*args, BlockRef(number=20, hash=b"\x01" * 32))

            daemon._read = read  # type: ignore[method-assign]

            _record(state, 1, OLD_ROWS, block=10)
            assert await daemon.access("peer", old[0], OLD_MEMBER) is True
            assert daemon._serving.result(old[1]) == OLD_ROWS[1]

            await daemon._rewind(5)  # batch 7 (posted at block 10) is gone
            market.member = NEW_MEMBER  # the new chain's batch 7 (another job) drew another committee
            _record(state, 2, NEW_ROWS, block=12)

            assert daemon._serving.result(old[1]) is None, "the reorged batch's bytes are still kept"
            assert await daemon.access("peer", old[1], OLD_MEMBER) is False
            assert await daemon.access("peer", new[0], NEW_MEMBER) is True
            assert await daemon.access("peer", new[1], OLD_MEMBER) is False

    trio.run(main)
    state.close()
    assert market.committee_reads == 2, "the new batch's committee was read, not the old one reused"


def test_a_reorg_drops_the_committees_of_batches_it_keeps(tmp_path: Path) -> None:
    """Batch 7 was posted below the fork (kept by the rewind) but its committee may have been
    drawn above it: the new chain's draw (another seed, same round) must be read, not the old one."""
    state = NodeState.open(tmp_path / "state")
    market = _Market()
    old = [bytes(keccak256(r)) for r in OLD_ROWS]

    async def main() -> None:
        async with open_store(tmp_path / "journal.sqlite") as store:
            for r in OLD_ROWS:
                await store.put_result_bytes(r)
            daemon = NodeDaemon.__new__(NodeDaemon)
            daemon.state = state
            daemon.store = store
            daemon.address = address_of("0x" + "99" * 20)
            daemon._serving = ServingCache()
            daemon._access_ok = {}
            daemon._drivers = {}
            daemon._workflows = {}
            daemon._writer = _Writer()  # type: ignore[assignment]
            daemon.metrics = _Metrics()  # type: ignore[assignment]
            daemon._market = market  # type: ignore[assignment]

            async def read(fn: Any, *args: Any) -> Any:
                return fn(*args, BlockRef(number=20, hash=b"\x01" * 32))

            daemon._read = read  # type: ignore[method-assign]
            _record(state, 1, OLD_ROWS, block=3)
            assert await daemon.access("peer", old[0], OLD_MEMBER) is True
            await daemon._rewind(5)  # the batch (block 3) stays; its draw is redone
            market.member = NEW_MEMBER
            assert await daemon.access("peer", old[1], NEW_MEMBER) is True
            assert await daemon.access("peer", old[2], OLD_MEMBER) is False
            assert daemon._serving.result(old[3]) == OLD_ROWS[3], "the batch's bytes stay kept"

    trio.run(main)
    state.close()
    assert market.committee_reads == 2
