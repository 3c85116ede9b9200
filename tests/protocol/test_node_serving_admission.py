"""The node's access check reads (:func:`node.serving.read_admission`) on a real Anvil, at each
block of a batch that is re-drawn: the committee kept per (batch, round) is used only for the
round the chain names, so a re-draw never keeps an old member in."""

from __future__ import annotations

import pytest

from devnet.chain import Step
from node.serving import ServingCache, read_admission
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market, events
from protocol.chain.models import BatchRescoring, CommitteeDrawn, Phase
from protocol.chain.rpc import BlockRef
from protocol.types import address_of
from scripts.devnet import fund_and_register, run_batch
from tests.protocol.test_chain_lifecycle import WORKFLOW, honest, params, results_for

pytestmark = pytest.mark.integration


def _at(chain: SynodContracts, number: int) -> BlockRef:
    return BlockRef(number, bytes(chain.w3.eth.get_block(number)["hash"]))


def _block_of(
    chain: SynodContracts, steps: tuple[Step, ...], event: type[CommitteeDrawn | BatchRescoring], round_: int
) -> int:
    """The block of the step that emitted ``event`` for round ``round_``."""
    for step in steps:
        rounds = (
            [e.round for e in events(chain, step.receipt, CommitteeDrawn)]
            if event is CommitteeDrawn
            else [e.round for e in events(chain, step.receipt, BatchRescoring)]
        )
        if round_ in rounds:
            return step.receipt.block_number
    raise AssertionError(f"no {event.__name__} of round {round_}")


def test_a_redraw_moves_admission_to_the_new_round_committee(fresh_chain: SynodContracts) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    actors, _ = fund_and_register(chain)
    rows = [{"n": 0}]
    (batch,) = market.post_job(actors.requester, params(batch_size=1), WORKFLOW, rows).batches
    results = [results_for(rows, node) for node in range(3)]
    # round 0: one of three seats reveals (no majority: re-drawn); round 1: silent, settled by fallback
    silent = frozenset({(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)})
    report = run_batch(chain, actors, batch.batch_id, results, honest, silent=silent, claim=False)
    named = {actors.name_of(v.address): v.address for v in actors.validators}
    round0 = frozenset(address_of(named[n]) for n in report.committees[0])
    round1 = frozenset(address_of(named[n]) for n in report.committees[1])
    batch_id = batch.batch_id

    drawn0 = _at(chain, _block_of(chain, report.steps, CommitteeDrawn, 0))
    first = read_admission(market, batch_id, {}, drawn0)
    assert first.phase in (Phase.SCORE_COMMITTING, Phase.SCORE_REVEALING)
    assert (first.round, first.members, first.fresh) == (0, round0, True)
    cache = ServingCache()
    kept = cache.remember_committee(batch_id, 0, first.members)
    again = read_admission(market, batch_id, cache.rounds_of(batch_id), drawn0)
    assert (again.round, again.members, again.fresh) == (0, kept, False), "round 0 served from memory"

    rescored = _at(chain, _block_of(chain, report.steps, BatchRescoring, 0))
    between = read_admission(market, batch_id, cache.rounds_of(batch_id), rescored)
    assert (between.phase, between.round, between.members) == (Phase.DRAWING, None, frozenset())

    drawn1 = _at(chain, _block_of(chain, report.steps, CommitteeDrawn, 1))
    after = read_admission(market, batch_id, cache.rounds_of(batch_id), drawn1)
    assert after.phase in (Phase.SCORE_COMMITTING, Phase.SCORE_REVEALING)
    assert (after.round, after.members, after.fresh) == (1, round1, True), "round 0's entry is not used"
    cache.remember_committee(batch_id, 1, after.members)
    assert cache.rounds_of(batch_id) == {1: round1}, "the old round's committee is dropped"

    ended = read_admission(market, batch_id, cache.rounds_of(batch_id), chain.head(0))
    assert (ended.phase, ended.round, ended.members) == (Phase.SETTLED, None, frozenset())
