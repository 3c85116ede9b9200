"""A validator steps a live batch once per head block: at an unchanged head a step would re-read
the same chain state and do nothing (the bench's profile: a third of a validator's CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from oracle.daemon.service import OracleDaemon
from protocol.chain.errors import ChainError
from protocol.chain.rpc import BlockRef
from tests.oracle.test_oracle_review import HEAD, _daemon, rpc_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


class _CountingStep(OracleDaemon):
    """The real daemon whose steps are counted; batch 6's step meets an RPC failure, batch 7 ends."""

    calls: list[tuple[int, int]]

    async def step(self, batch_id: int, head: BlockRef, now: int) -> None:
        self.calls.append((batch_id, head.number))
        if batch_id == 6:
            raise ChainError("connection refused")
        if batch_id == 7:
            self.live.pop(batch_id, None)  # settled: dropped from the live set


def test_a_batch_is_stepped_again_only_at_a_new_head_or_after_a_failure(rpc_url: str, tmp_path: Path) -> None:  # noqa: F811
    daemon, journal = _daemon(rpc_url, tmp_path)
    daemon.__class__ = _CountingStep
    assert isinstance(daemon, _CountingStep)
    daemon.calls = []
    daemon.live = {5: 0, 6: 0, 7: 0}

    async def step_due(head: int) -> None:
        ref = BlockRef(number=head, hash=b"\x00" * 32)
        async with trio.open_nursery() as steps:
            for batch in sorted(daemon.live):
                if daemon.due(batch, head, 0):
                    steps.start_soon(daemon._guarded_step, batch, ref, 0)

    try:
        trio.run(step_due, HEAD)
        trio.run(step_due, HEAD)  # the same head: only the failed batch 6 is stepped again
        trio.run(step_due, HEAD + 1)  # a new block: every live batch
    finally:
        journal.close()
    # (the steps of one poll run concurrently, in no set order)
    assert sorted(daemon.calls) == sorted(
        [(5, HEAD), (6, HEAD), (7, HEAD), (6, HEAD), (5, HEAD + 1), (6, HEAD + 1)]
    )
    assert daemon.live == {5: 0, 6: 0}
    assert 7 not in daemon._stepped  # a batch that left the live set is forgotten
    assert not daemon.due(5, HEAD + 1, 0) and daemon.due(6, HEAD + 1, 0) and daemon.due(5, HEAD + 2, 0)


@pytest.mark.unit
def test_a_batch_in_a_nodes_phase_waits_for_its_deadline_or_a_phase_change(tmp_path: Path) -> None:
    daemon, journal = _daemon("http://127.0.0.1:9", tmp_path)  # no RPC is made
    journal.close()
    grace = daemon.settings.margins.settle_grace
    daemon._quiet[5] = 1000 + grace  # stepped in Committing, deadline 1000
    assert not daemon.due(5, HEAD, 1000 + grace)  # up to deadline + grace: nothing to do
    assert daemon.due(5, HEAD, 1000 + grace + 1)  # past it: the refund path may be due
    assert daemon.due(6, HEAD, 0)  # a batch never stepped
    daemon._quiet.pop(5)  # what _scan does on a BatchPhaseChanged of batch 5
    assert daemon.due(5, HEAD, 0)
