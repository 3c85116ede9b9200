"""Batches carried through their whole lifecycle by the Python facade on a real Anvil, money checked.

post (a job of several batches) -> node commits -> reveals (the last arms the committee seed) -> draw
-> score commits -> score reveals -> settle -> claims. What every batch must pay is recomputed from the
rules of docs/contracts.md (tests/protocol/settlement_rules.py) and compared with the contract's
events, balances and token transfers, to the token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from protocol.canonical import canonical_bytes, digest
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market, events, model_id
from protocol.chain.models import (
    BatchRescoring,
    CommitteeDrawn,
    CommitteeSeedArmed,
    JobParams,
    Phase,
    RefundReason,
    ResultCommitted,
    Role,
    SlashReason,
)
from protocol.chain.registry import Registry
from protocol.commitments import committee_seed, input_hash, new_salt, rows_hash, seed_entropy
from protocol.types import TaskRef
from scripts.devnet import (
    DEMO_MODEL,
    Actors,
    BatchReport,
    advance_past,
    claim_all,
    fund_and_register,
    run_batch,
)
from tests.protocol.settlement_rules import Expected, expected_settlement

pytestmark = pytest.mark.integration

TOKEN = 10**18
WORKFLOW = {"config": {"max_steps": 3, "max_time": 30}, "tasks": [{"id": "a", "operator": "generation"}]}


def params(**changes: int) -> JobParams:
    base = JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=30 * TOKEN + 7,  # odd: integer-division dust goes back to the requester
        batch_size=3,
        k=3,
        m=3,
        threshold=60,
        tolerance=10,
        junk_floor=10,
        validator_share_bps=2500,
        commit_duration=600,
        reveal_duration=600,
        score_commit_duration=600,
        score_reveal_duration=600,
    )
    return base.model_copy(update=changes)


def results_for(rows: Sequence[dict[str, Any]], node: int) -> list[dict[str, Any]]:
    """Node ``node``'s result per row; ``quality`` and ``trap`` tell the scripted validators what to score."""
    return [
        {
            "row": r["n"],
            "node": node,
            "quality": 30 if node == 2 and r["n"] % 2 else 90,
            "trap": bool(r.get("trap")),
        }
        for r in rows
    ]


def honest(round_: int, seat: int, by_seat: Sequence[Sequence[Any] | None]) -> list[list[int]]:
    """Score = the result's quality, +-seat; committee seat 2 is far off on rows marked ``trap``."""
    rows = len(next(r for r in by_seat if r is not None))
    matrix = []
    for results in by_seat:
        if results is None:
            matrix.append([0] * rows)
            continue
        matrix.append(
            [
                max(0, min(100, r["quality"] + seat - 1)) if not r.get("trap") or seat != 2 else 0
                for r in results
            ]
        )
    return matrix


def expected_for(chain: SynodContracts, report: BatchReport, job: JobParams, round_: int = -1) -> Expected:
    """The settlement the rules give for ``report``'s deciding round."""
    vectors = report.vectors[round_]
    seats = sorted(vectors)
    scored = report.settled is not None and report.settled.scored
    return expected_settlement(
        rows=report.rows,
        commit_count=len(report.seats),
        revealed=report.revealed,
        voter_seats=seats,
        vectors=[vectors[s] for s in seats],
        weights=[report.weights[round_][s] for s in seats],
        bounty_per_task=job.bounty_per_task,
        validator_share_bps=job.validator_share_bps,
        threshold=job.threshold,
        tolerance=job.tolerance,
        junk_floor=job.junk_floor,
        scored=scored,
    )


def credits(actors: Actors, report: BatchReport, expected: Expected) -> dict[str, int]:
    """What ``expected`` credits, by actor name."""
    owed: dict[str, int] = {}
    for seat, name in enumerate(report.seats):
        owed[name] = owed.get(name, 0) + expected.node_paid[seat]
    committee = report.committees[-1]
    for seat, name in enumerate(committee):
        if expected.agreed_mask >> seat & 1:
            owed[name] = owed.get(name, 0) + expected.validator_reward
    owed["requester"] = owed.get("requester", 0) + expected.refund
    return owed


def by_name(actors: Actors) -> dict[str, str]:
    return {actors.name_of(a.address): a.address for a in actors.everyone()}


def test_job_of_several_batches_pays_every_batch_by_the_rules(fresh_chain: SynodContracts) -> None:
    chain = fresh_chain
    market, registry = Market(chain), Registry(chain)
    actors, _ = fund_and_register(chain)
    job = params()
    rows = [{"n": n, "topic": f"topic {n}"} for n in range(7)]
    rows[4]["trap"] = True
    start = chain.head(0)
    tokens_before = {a.address: registry.token_balance(a.address, start) for a in actors.everyone()}
    market_before = registry.token_balance(chain.market.address, start)

    # post: one transaction, batches of 3, 3 and 1 rows; the bytes travel in the events, hashes stored
    posted = market.post_job(actors.requester, job, WORKFLOW, rows)
    assert len(posted.jobs) == 1 and posted.jobs[0].row_count == 7 and posted.jobs[0].batch_count == 3
    assert [b.rows for b in posted.batches] == [3, 3, 1]
    assert [b.dataset_row for b in posted.batches] == [0, 3, 6]
    ids = posted.batch_ids
    assert list(ids) == list(range(ids[0], ids[0] + 3))
    assert posted.task(4) == TaskRef(ids[1], 1)
    block = chain.head(0)
    stored_job = market.job(posted.job_ids[0], block)
    assert stored_job.params == job and stored_job.first_batch_id == ids[0] and stored_job.row_count == 7
    for batch in posted.batches:
        raw = [canonical_bytes(r) for r in rows[batch.dataset_row : batch.dataset_row + batch.rows]]
        view = market.batch(batch.batch_id, block)
        assert batch.rows_hash == rows_hash(raw)
        assert view.input_hash == input_hash(digest(WORKFLOW), raw)  # one stored word: workflow + rows
        assert (view.rows, view.first_row, view.phase) == (batch.rows, batch.dataset_row, Phase.COMMITTING)
    assert registry.token_balance(chain.market.address, block) == market_before + 7 * job.bounty_per_task

    reports = []
    for batch in posted.batches:
        chunk = rows[batch.dataset_row : batch.dataset_row + batch.rows]
        results = [results_for(chunk, node) for node in range(3)]
        reports.append(run_batch(chain, actors, batch.batch_id, results, honest, claim=False))

    owed: dict[str, int] = {}
    names = by_name(actors)
    for report in reports:
        settled = report.settled
        assert settled is not None and settled.scored and settled.round == 0
        assert report.slashed == ()  # nobody misbehaved
        want = expected_for(chain, report, job)
        assert settled.medians == want.medians
        assert settled.node_paid == want.node_paid
        assert (settled.agreed_mask, settled.validator_reward, settled.refund) == (
            want.agreed_mask,
            want.validator_reward,
            want.refund,
        )
        assert sum(want.node_paid) + want.validator_reward * bin(want.agreed_mask).count(
            "1"
        ) + want.refund == (report.rows * job.bounty_per_task)
        for name, amount in credits(actors, report, want).items():
            owed[name] = owed.get(name, 0) + amount
        assert market.phase(report.batch_id, chain.head(0)).phase is Phase.SETTLED
        # the seed is the hash of the armed block mixed with the node seats: anyone can recheck it
        armed = [e for s in report.steps for e in events(chain, s.receipt, CommitteeSeedArmed)]
        commits = [e for s in report.steps for e in events(chain, s.receipt, ResultCommitted)]
        seat_ids = [(registry.participant(c.node, chain.head(0)).id, c.commitment) for c in commits]
        seed_hash = bytes(chain.w3.eth.get_block(armed[-1].seed_block)["hash"])
        (drawn,) = [e for s in report.steps for e in events(chain, s.receipt, CommitteeDrawn)]
        assert drawn.seed == committee_seed(seed_hash, seed_entropy(seat_ids), report.batch_id, 0)
    # batch 2 held the trap row: committee seat 2 scored it 0, far from the median, and went unpaid
    assert reports[1].settled is not None and reports[1].settled.agreed_mask == 0b011
    assert reports[0].settled is not None and reports[0].settled.agreed_mask == 0b111
    # node 3's odd rows scored 30 < threshold 60: rejected, their pools split by the others
    assert reports[0].settled.medians[2 * 3 + 1] < job.threshold

    block = chain.head(0)
    assert {name: market.balance_of(names[name], block) for name in owed} == owed
    assert sum(owed.values()) == 7 * job.bounty_per_task
    claims = dict(claim_all(chain, actors))
    assert claims == {name: amount for name, amount in owed.items() if amount}
    end = chain.head(0)
    for actor in actors.everyone():
        name = actors.name_of(actor.address)
        spent = 7 * job.bounty_per_task if actor is actors.requester else 0
        assert registry.token_balance(actor.address, end) == tokens_before[actor.address] - spent + owed.get(
            name, 0
        )
        assert market.balance_of(actor.address, end) == 0
        assert market.claimed_of(actor.address, end) == owed.get(name, 0)
        assert registry.participant(actor.address, end).open_seats == 0  # every seat released
    assert registry.token_balance(chain.market.address, end) == market_before
    assert registry.treasury(end)[1] == 0


def test_missing_reveal_and_silent_committee_seat_are_slashed(fresh_chain: SynodContracts) -> None:
    chain, market, registry = fresh_chain, Market(fresh_chain), Registry(fresh_chain)
    actors, _ = fund_and_register(chain)
    job = params(batch_size=2)
    block = chain.head(0)
    node_slash = registry.slash_amount(Role.NODE, block)
    validator_slash = registry.slash_amount(Role.VALIDATOR, block)
    assert node_slash == registry.min_stake(Role.NODE, block) // 10
    stakes: dict[str, int] = {
        a.address: registry.participant(a.address, block).stake for a in (*actors.nodes, *actors.validators)
    }
    treasury_before = registry.treasury(block)[1]

    rows = [{"n": 0}, {"n": 2}]
    (batch,) = market.post_job(actors.requester, job, WORKFLOW, rows).batches
    results = [results_for(rows, node) for node in range(3)]
    report = run_batch(
        chain, actors, batch.batch_id, results, honest, withhold=frozenset({2}), silent=frozenset({(0, 2)})
    )
    assert report.revealed == (0, 1)
    silent = report.committees[0][2]
    assert sorted(report.slashed) == sorted(
        [("node3", SlashReason.NO_REVEAL, node_slash), (silent, SlashReason.NO_SCORE_REVEAL, validator_slash)]
    )
    settled = report.settled
    assert settled is not None and settled.scored  # 2 of 3 seats revealed: a majority
    want = expected_for(chain, report, job)
    assert (settled.medians, settled.node_paid, settled.agreed_mask, settled.refund) == (
        want.medians,
        want.node_paid,
        want.agreed_mask,
        want.refund,
    )
    assert settled.node_paid[2] == 0 and settled.agreed_mask >> 2 & 1 == 0
    end = chain.head(0)
    names = by_name(actors)
    assert registry.participant(names["node3"], end).stake == stakes[names["node3"]] - node_slash
    assert registry.participant(names[silent], end).stake == stakes[names[silent]] - validator_slash
    assert registry.treasury(end)[1] == treasury_before + node_slash + validator_slash
    # conservation: the registry holds stakes + unswept slashes; the market holds nothing after the claims
    assert (
        registry.token_balance(chain.registry.address, end)
        == registry.total_staked(end) + registry.treasury(end)[1]
    )
    assert registry.token_balance(chain.market.address, end) == 0


def test_silent_committee_is_redrawn_then_nodes_paid_by_the_fallback(fresh_chain: SynodContracts) -> None:
    chain, market, registry = fresh_chain, Market(fresh_chain), Registry(fresh_chain)
    actors, _ = fund_and_register(chain)
    job = params(batch_size=1)
    rows = [{"n": 0}]
    (batch,) = market.post_job(actors.requester, job, WORKFLOW, rows).batches
    results = [results_for(rows, node) for node in range(3)]
    # round 0: two of three seats commit and never reveal (no majority); round 1: the new committee is silent
    silent = frozenset({(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)})
    report = run_batch(chain, actors, batch.batch_id, results, honest, silent=silent)
    assert len(report.committees) == 2
    rescoring = [e for s in report.steps for e in events(chain, s.receipt, BatchRescoring)]
    assert [(e.round, e.voters, e.committee_size) for e in rescoring] == [(0, 1, 3)]
    settled = report.settled
    assert settled is not None and not settled.scored and settled.round == 1
    want = expected_for(chain, report, job)
    assert not want.scored
    assert (settled.node_paid, settled.agreed_mask, settled.validator_reward, settled.refund) == (
        want.node_paid,
        0,
        0,
        want.refund,
    )
    assert settled.node_paid == (want.node_paid[0],) * 3 and settled.node_paid[0] > 0  # nobody left unpaid
    slashed = {(name, reason) for name, reason, _ in report.slashed}
    round0 = report.committees[0]
    assert {(round0[1], SlashReason.NO_SCORE_REVEAL), (round0[2], SlashReason.NO_SCORE_REVEAL)} <= slashed
    assert all(reason is SlashReason.NO_SCORE_REVEAL for _, reason in slashed)
    assert len(report.slashed) == 2 + len(report.committees[1])
    end = chain.head(0)
    assert all(registry.participant(a.address, end).open_seats == 0 for a in actors.everyone())


def test_no_commit_by_the_deadline_refunds_the_whole_batch(fresh_chain: SynodContracts) -> None:
    chain, market, registry = fresh_chain, Market(fresh_chain), Registry(fresh_chain)
    actors, _ = fund_and_register(chain)
    requester = actors.requester
    before = registry.token_balance(requester.address, chain.head(0))
    job = params(batch_size=2)
    (batch,) = market.post_job(requester, job, WORKFLOW, [{"n": 1}, {"n": 2}]).batches
    now = market.phase(batch.batch_id, chain.head(0))
    assert now.phase is Phase.COMMITTING and now.deadline == batch.commit_deadline
    with pytest.raises(chain.errors.BatchNotSettleable) as early:
        market.settle(requester, batch.batch_id)
    assert early.value.args == {
        "batchId": batch.batch_id,
        "phase": Phase.COMMITTING,
        "readyAt": batch.commit_deadline + 1,
    }
    advance_past(chain, batch.commit_deadline)
    outcome = market.settle(requester, batch.batch_id)
    assert outcome.refunded is not None and outcome.settled is None
    assert outcome.refunded.reason is RefundReason.NO_COMMIT
    assert outcome.refunded.amount == 2 * job.bounty_per_task
    assert market.phase(batch.batch_id, chain.head(0)).phase is Phase.REFUNDED
    amount, _ = market.claim(requester)
    assert amount == 2 * job.bounty_per_task
    assert registry.token_balance(requester.address, chain.head(0)) == before


def test_cancel_before_the_first_commit(fresh_chain: SynodContracts) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    actors, _ = fund_and_register(chain)
    job = params(batch_size=1)
    first, second = market.post_job(actors.requester, job, WORKFLOW, [{"n": 1}, {"n": 2}]).batches
    node1 = actors.nodes[0]
    with pytest.raises(chain.errors.BatchNotRequester) as info:
        market.cancel(node1, first.batch_id)
    assert info.value.args == {
        "batchId": first.batch_id,
        "caller": node1.address,
        "requester": actors.requester.address,
    }
    refunded, _ = market.cancel(actors.requester, first.batch_id)
    assert (refunded.reason, refunded.amount) == (RefundReason.CANCELLED, job.bounty_per_task)
    assert market.balance_of(actors.requester.address, chain.head(0)) == job.bounty_per_task
    with pytest.raises(chain.errors.BatchWrongPhase) as late:
        market.commit_result(node1, first.batch_id, [digest("late")], new_salt())
    assert late.value.args["actual"] == Phase.REFUNDED
    # the job's other batch is untouched; once it has a commit it can no longer be cancelled
    market.commit_result(node1, second.batch_id, [digest("r")], new_salt())
    with pytest.raises(chain.errors.BatchHasCommits) as busy:
        market.cancel(actors.requester, second.batch_id)
    assert busy.value.args == {"batchId": second.batch_id, "commitCount": 1}


def test_a_seated_node_cannot_withdraw_before_it_is_slashed(fresh_chain: SynodContracts) -> None:
    """Withdraw-before-slash is closed: a node that commits, never reveals and starts unbonding at once
    cannot withdraw while its seat is open, and is slashed when the batch ends."""
    chain, market, registry = fresh_chain, Market(fresh_chain), Registry(fresh_chain)
    actors, _ = fund_and_register(chain)
    node = actors.nodes[0]
    (batch,) = market.post_job(actors.requester, params(batch_size=1), WORKFLOW, [{"n": 1}]).batches
    market.commit_result(node, batch.batch_id, [digest("never revealed")], new_salt())
    registry.begin_unbonding(node)
    record = registry.participant(node.address, chain.head(0))
    assert record.open_seats == 1
    advance_past(chain, record.unbonding_end)
    with pytest.raises(chain.errors.RegistrySeatsOpen) as info:
        registry.withdraw(node)
    assert info.value.args == {"account": node.address, "openSeats": 1}
    now = market.phase(batch.batch_id, chain.head(0))
    assert now.phase is Phase.REVEALING
    advance_past(chain, now.deadline)
    outcome = market.settle(actors.requester, batch.batch_id)
    assert outcome.refunded is not None and outcome.refunded.reason is RefundReason.NO_REVEAL
    slash = registry.slash_amount(Role.NODE, chain.head(0))
    assert [(e.account, e.reason, e.amount) for e in outcome.slashed] == [
        (node.address, SlashReason.NO_REVEAL, slash)
    ]
    before = registry.token_balance(node.address, chain.head(0))
    registry.withdraw(node)
    assert registry.token_balance(node.address, chain.head(0)) == before + record.stake - slash
