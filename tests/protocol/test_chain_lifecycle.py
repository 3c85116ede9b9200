"""One task's whole lifecycle driven through the Python facade on a real Anvil, money checked.

Post -> 3 nodes commit and reveal (the last reveal draws the committee) -> the committee commits
and reveals scores (the last reveal finalizes) -> everyone claims. Expected medians, rewards and
refund are computed here from the settlement rules of docs/contracts.md and compared with the
contract's events, balances and token transfers.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from protocol.canonical import canonical_bytes, digest
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import JobParams, Market, Phase, events, model_id
from protocol.chain.registry import Registry, Role
from protocol.commitments import new_salt
from scripts.devnet import DEMO_MODEL, advance_past, fund_and_register, run_task

pytestmark = pytest.mark.integration

TOKEN = 10**18
WORKFLOW = {"config": {"max_steps": 3, "max_time": 30}, "tasks": [{"id": "a", "operator": "generation"}]}
INPUT = {"topic": "tides", "n": 1}
RESULTS = [{"text": "moon pulls the sea"}, {"text": "the sea follows the moon"}, {"text": "lorem ipsum"}]


def weighted_median(scores: Sequence[int], weights: Sequence[int]) -> int:
    """The lowest score s whose cumulative weight (of scores <= s) is at least half the total."""
    total = sum(weights)
    pairs = sorted(zip(scores, weights, strict=True))
    running = 0
    for value, weight in pairs:
        running += weight
        if 2 * running >= total:
            return value
    return 0


def test_whole_lifecycle_pays_by_the_rules(fresh_chain: SynodContracts) -> None:
    chain = fresh_chain
    market, registry = Market(chain), Registry(chain)
    actors, _ = fund_and_register(chain)
    params = JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=90 * TOKEN + 7,  # odd, so integer-division dust goes back to the requester
        k=3,
        m=3,
        threshold=60,
        tolerance=10,
        validator_share_bps=2500,
        commit_duration=300,
        reveal_duration=300,
        score_commit_duration=300,
        score_reveal_duration=300,
    )
    everyone = [*actors.nodes, *actors.validators, actors.requester]
    start = chain.head(0)
    tokens_before = {a.address: registry.token_balance(a.address, start) for a in everyone}
    market_before = registry.token_balance(chain.market.address, start)

    # post: the bounty is escrowed, only hashes are stored, the bytes travel in the events
    posted = market.post_task(actors.requester, params, WORKFLOW, INPUT)
    (task_id,) = posted.task_ids
    block = chain.head(0)
    stored = market.task(task_id, block)
    assert bytes(stored.inputHash) == digest(INPUT)
    assert bytes(market.job(posted.job_id, block).workflowHash) == digest(WORKFLOW)
    (task_event,) = events(chain, posted.receipts[-1], "TaskPosted")
    assert task_event["args"]["input"] == canonical_bytes(INPUT)
    assert registry.token_balance(chain.market.address, block) == market_before + params.bounty_per_task
    assert market.phase(task_id, block)[0] is Phase.COMMITTING

    # commit: identity-bound commitments, slots in order; the k-th commit closes the phase
    salts = [new_salt() for _ in actors.nodes]
    slots = []
    for node, result, salt in zip(actors.nodes, RESULTS, salts, strict=True):
        slot, _ = market.commit_result(node, task_id, digest(result), salt)
        slots.append(slot)
    assert slots == [0, 1, 2]
    assert market.phase(task_id, chain.head(0))[0] is Phase.REVEALING

    # reveal: the last reveal draws the committee
    reveal_receipts = [
        market.reveal_result(node, task_id, slot, digest(result), salt)
        for node, slot, result, salt in zip(actors.nodes, slots, RESULTS, salts, strict=True)
    ]
    revealed = [e["args"] for r in reveal_receipts for e in events(chain, r, "ResultRevealed")]
    assert [e["order"] for e in revealed] == [0, 1, 2]
    assert [bytes(e["resultDigest"]) for e in revealed] == [digest(r) for r in RESULTS]
    (drawn,) = events(chain, reveal_receipts[-1], "CommitteeDrawn")
    block = chain.head(0)
    assert market.phase(task_id, block)[0] is Phase.SCORE_COMMITTING
    seats = market.committee(task_id, block)
    by_address = {v.address: v for v in actors.validators}
    assert 1 <= len(seats) <= 3
    assert [s.validator for s in seats] == list(drawn["args"]["validators"])
    assert all(s.validator in by_address for s in seats)

    # score: seat j scores results; the last seat disagrees on result 1 when there are 3 seats
    vectors = [[90 - j, 70 + j, 20 + j] for j in range(len(seats))]
    if len(seats) == 3:
        vectors[2] = [91, 30, 22]
    score_salts = [new_salt() for _ in seats]
    for j, seat in enumerate(seats):
        market.commit_scores(by_address[seat.validator], task_id, j, vectors[j], score_salts[j])
    assert market.phase(task_id, chain.head(0))[0] is Phase.SCORE_REVEALING
    last = None
    for j, seat in enumerate(seats):
        last = market.reveal_scores(by_address[seat.validator], task_id, j, vectors[j], score_salts[j])
    assert last is not None
    (finalized,) = events(chain, last, "TaskFinalized")
    fin = finalized["args"]
    block = chain.head(0)
    assert market.phase(task_id, block)[0] is Phase.FINALIZED

    # settlement, recomputed from the rules
    weights = [s.weight for s in seats]
    medians = [weighted_median([v[i] for v in vectors], weights) for i in range(3)]
    accepted = [m >= params.threshold for m in medians]
    agreed = [all(abs(v[i] - medians[i]) <= params.tolerance for i in range(3)) for v in vectors]
    validator_pool = params.bounty_per_task * params.validator_share_bps // 10_000
    node_pool = params.bounty_per_task - validator_pool
    node_reward = node_pool // sum(accepted) if any(accepted) else 0
    validator_reward = validator_pool // sum(agreed) if any(agreed) else 0
    refund = params.bounty_per_task - node_reward * sum(accepted) - validator_reward * sum(agreed)
    assert list(fin["medians"]) == medians
    assert fin["acceptedMask"] == sum(1 << i for i, ok in enumerate(accepted) if ok)
    assert fin["agreedMask"] == sum(1 << j for j, ok in enumerate(agreed) if ok)
    assert (fin["nodeReward"], fin["validatorReward"], fin["refund"]) == (
        node_reward,
        validator_reward,
        refund,
    )
    assert accepted == [True, True, False]

    owed = {a.address: 0 for a in everyone}
    for node, ok in zip(actors.nodes, accepted, strict=True):
        owed[node.address] += node_reward if ok else 0
    for seat, ok in zip(seats, agreed, strict=True):
        owed[seat.validator] += validator_reward if ok else 0
    owed[actors.requester.address] += refund
    assert {a: market.balance_of(a, block) for a in owed} == owed
    assert sum(owed.values()) == params.bounty_per_task

    # claims: pull payments move exactly the credited tokens; the market holds nothing more
    for actor in everyone:
        if owed[actor.address]:
            amount, _ = market.claim(actor)
            assert amount == owed[actor.address]
    end = chain.head(0)
    for actor in everyone:
        spent = params.bounty_per_task if actor is actors.requester else 0
        assert (
            registry.token_balance(actor.address, end)
            == tokens_before[actor.address] - spent + owed[actor.address]
        )
        assert market.balance_of(actor.address, end) == 0
    assert registry.token_balance(chain.market.address, end) == market_before
    assert registry.treasury(end)[1] == 0  # nobody misbehaved: nothing slashed


def _params(**changes: int) -> JobParams:
    base = JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=50 * TOKEN,
        k=3,
        m=3,
        threshold=50,
        tolerance=20,
        validator_share_bps=2000,
        commit_duration=300,
        reveal_duration=300,
        score_commit_duration=300,
        score_reveal_duration=300,
    )
    return base.model_copy(update=changes)


def test_node_that_never_reveals_is_slashed(fresh_chain: SynodContracts) -> None:
    chain, market, registry = fresh_chain, Market(fresh_chain), Registry(fresh_chain)
    actors, _ = fund_and_register(chain)
    node3 = actors.nodes[2]
    block = chain.head(0)
    stake_before = registry.participant(node3.address, block).stake
    treasury_before = registry.treasury(block)[1]
    slash = int(chain.read(chain.registry.functions.slashAmount(int(Role.NODE)), block))
    assert slash == registry.min_stake(Role.NODE, block) // 10

    (task_id,) = market.post_task(actors.requester, _params(), WORKFLOW, INPUT).task_ids
    report = run_task(
        chain, actors, task_id, RESULTS, lambda seat, rs: [80] * len(rs), withhold=frozenset({2})
    )

    assert [node for node, _ in report.revealed] == ["node1", "node2"]
    assert report.slashed == (("node3", slash),)
    end = chain.head(0)
    assert registry.participant(node3.address, end).stake == stake_before - slash
    assert registry.treasury(end)[1] == treasury_before + slash
    assert report.finalized is not None and report.finalized["acceptedMask"] == 0b11
    claimed = dict(report.claims)
    assert "node3" not in claimed and claimed["node1"] == claimed["node2"] == report.finalized["nodeReward"]
    # conservation: the registry holds exactly stakes + unswept slashes; the market holds nothing
    staked = int(chain.read(chain.registry.functions.totalStaked(), end))
    assert registry.token_balance(chain.registry.address, end) == staked + registry.treasury(end)[1]
    assert registry.token_balance(chain.market.address, end) == 0


def test_no_commit_by_the_deadline_refunds_the_whole_bounty(fresh_chain: SynodContracts) -> None:
    chain, market, registry = fresh_chain, Market(fresh_chain), Registry(fresh_chain)
    actors, _ = fund_and_register(chain)
    requester = actors.requester
    before = registry.token_balance(requester.address, chain.head(0))
    (task_id,) = market.post_task(requester, _params(), WORKFLOW, INPUT).task_ids
    with pytest.raises(chain.errors.TaskNotFinalizable):
        market.finalize(requester, task_id)
    _, deadline = market.phase(task_id, chain.head(0))
    advance_past(chain, deadline)
    (refunded,) = events(chain, market.finalize(requester, task_id), "TaskRefunded")
    assert refunded["args"]["reason"] == 1  # RefundReason.NoCommit
    assert refunded["args"]["amount"] == _params().bounty_per_task
    assert market.phase(task_id, chain.head(0))[0] is Phase.REFUNDED
    amount, _ = market.claim(requester)
    assert amount == _params().bounty_per_task
    assert registry.token_balance(requester.address, chain.head(0)) == before


def test_cancel_before_the_first_commit(fresh_chain: SynodContracts) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    actors, _ = fund_and_register(chain)
    (task_id,) = market.post_task(actors.requester, _params(), WORKFLOW, INPUT).task_ids
    node1 = actors.nodes[0]
    with pytest.raises(chain.errors.TaskNotRequester) as info:
        market.cancel(node1, task_id)
    assert info.value.args == {
        "taskId": task_id,
        "caller": node1.address,
        "requester": actors.requester.address,
    }
    (refunded,) = events(chain, market.cancel(actors.requester, task_id), "TaskRefunded")
    assert refunded["args"]["reason"] == 0  # RefundReason.Cancelled
    assert market.balance_of(actors.requester.address, chain.head(0)) == _params().bounty_per_task
    with pytest.raises(chain.errors.TaskWrongPhase):
        market.commit_result(node1, task_id, digest("late"), new_salt())
