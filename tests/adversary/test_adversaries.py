"""The adversaries of issue 9 (section 5), each in a real batch on a real Anvil with real libp2p.

Every case runs one batch of two rows with k = 3 node seats and a committee of m = 3 (every
registered validator is drawn): two honest nodes and one adversary node, or three nodes (two honest,
one garbage) and a committee with one adversary member. What the batch must pay and slash is computed
from the rules of docs/contracts.md (tests/protocol/settlement_rules.py) and from what each actor was
scripted to do, never from the contract's own views; then

- the settlement event matches the rules to the token (medians, node pay, agreeing members, refund);
- exactly the expected accounts are slashed, for the expected reason, by the expected amount;
- token conservation holds over every account (protocol/chain/conservation.py), and every
  participant's worth changed by exactly what the rules give: honest participants are paid in full.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from protocol.chain.conservation import Holdings, check_conservation, holdings, token_transfers
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market, model_id
from protocol.chain.models import JobParams, Phase, Role, SlashReason
from protocol.chain.registry import Registry
from protocol.chain.sender import TxSender
from protocol.types import Address
from scripts.devnet import DEMO_MODEL, fund_and_register
from tests.adversary.actors import (
    HONEST_SCORE,
    BatchRun,
    NodeActor,
    NodeBehaviour,
    ValidatorActor,
    ValidatorBehaviour,
    run_batch,
)
from tests.protocol.settlement_rules import Expected, expected_settlement

pytestmark = [pytest.mark.adversary, pytest.mark.integration]

TOKEN = 10**18
PARAMS = JobParams(
    model=model_id(DEMO_MODEL),
    bounty_per_task=30 * TOKEN + 7,  # odd: integer-division dust goes back to the requester
    batch_size=2,
    k=3,
    m=3,
    threshold=60,
    tolerance=10,
    junk_floor=20,
    validator_share_bps=2500,
    commit_duration=600,
    reveal_duration=600,
    score_commit_duration=600,
    score_reveal_duration=600,
)
WORKFLOW: dict[str, Any] = {
    "config": {"max_steps": 3, "max_time": 30},
    "tasks": [{"id": "qa", "operator": "generation"}],
}
ROWS = [
    {"passage": "The Rhine rises in the Swiss Alps and flows into the North Sea."},
    {"passage": "Bread dough rises because yeast turns sugar into carbon dioxide."},
]
H, V = NodeBehaviour, ValidatorBehaviour
REVEALING_NODES = (H.HONEST, H.GARBAGE, H.NO_SERVE)
VOTING_MEMBERS = (V.HONEST, V.ALL_100)


@dataclass
class World:
    """The registered actors of one case and the holdings before anything happened."""

    chain: SynodContracts
    requester: TxSender
    nodes: list[NodeActor]
    validators: list[ValidatorActor]
    accounts: list[Address]
    before: Holdings
    min_node_stake: int
    min_validator_stake: int


def make_world(
    chain: SynodContracts, node_kinds: Sequence[NodeBehaviour], validator_kinds: Sequence[ValidatorBehaviour]
) -> World:
    actors, _ = fund_and_register(chain)
    nodes = [
        NodeActor(name=f"node{i + 1}", sender=s, behaviour=b)
        for i, (s, b) in enumerate(zip(actors.nodes, node_kinds, strict=True))
    ]
    validators = [
        ValidatorActor(name=f"validator{i + 1}", sender=s, behaviour=b, bias=i)
        for i, (s, b) in enumerate(zip(actors.validators, validator_kinds, strict=True))
    ]
    accounts = [a.address for a in actors.everyone()]
    block = chain.head(0)
    registry = Registry(chain)
    return World(
        chain=chain,
        requester=actors.requester,
        nodes=nodes,
        validators=validators,
        accounts=accounts,
        before=holdings(chain, accounts, block),
        min_node_stake=registry.min_stake(Role.NODE, block),
        min_validator_stake=registry.min_stake(Role.VALIDATOR, block),
    )


def play(world: World, tmp_path: Path) -> BatchRun:
    async def main() -> BatchRun:
        with trio.fail_after(240):
            return await run_batch(
                world.chain, world.requester, world.nodes, world.validators, PARAMS, WORKFLOW, ROWS, tmp_path
            )

    return trio.run(main)


def honest_vector(member: ValidatorActor, run: BatchRun) -> bytes:
    """What the honest rubric must give, from the nodes' scripts: good results HONEST_SCORE - bias,
    garbage, unserved and unrevealed results 0."""
    rows = len(run.rows)
    cells = bytearray(len(run.nodes) * rows)
    for seat, node in enumerate(run.nodes):
        if node.behaviour is H.HONEST:
            for row in range(rows):
                cells[seat * rows + row] = HONEST_SCORE - member.bias
    return bytes(cells)


def expected_of(world: World, run: BatchRun) -> Expected:
    """The settlement the rules give for what the actors were scripted to do."""
    revealed = [s for s, n in enumerate(run.nodes) if n.behaviour in REVEALING_NODES]
    voters = [s for s, m in enumerate(run.committee) if m.behaviour in VOTING_MEMBERS]
    vectors = []
    for seat in voters:
        member = run.committee[seat]
        if member.behaviour is V.ALL_100:
            vectors.append(bytes([100] * (len(run.nodes) * len(run.rows))))
        else:
            vectors.append(honest_vector(member, run))
    return expected_settlement(
        rows=len(run.rows),
        commit_count=len(run.nodes),
        revealed=revealed,
        voter_seats=voters,
        vectors=vectors,
        weights=[world.min_validator_stake] * len(voters),  # every member staked the minimum
        bounty_per_task=PARAMS.bounty_per_task,
        validator_share_bps=PARAMS.validator_share_bps,
        threshold=PARAMS.threshold,
        tolerance=PARAMS.tolerance,
        junk_floor=PARAMS.junk_floor,
    )


def expected_slashes(world: World, run: BatchRun, want: Expected) -> set[tuple[Address, SlashReason, int]]:
    """docs/contracts.md "Slashing": min(stake, minimum stake / 10) per misconduct and batch."""
    node_slash, validator_slash = world.min_node_stake // 10, world.min_validator_stake // 10
    slashed: set[tuple[Address, SlashReason, int]] = set()
    for seat, node in enumerate(run.nodes):
        if node.behaviour in (H.NO_REVEAL, H.COPY_COMMITMENT):
            slashed.add((node.sender.address, SlashReason.NO_REVEAL, node_slash))
        elif seat in want.junk:
            slashed.add((node.sender.address, SlashReason.JUNK, node_slash))
    for member in run.committee:
        if member.behaviour is V.COPY_REVEALED:
            slashed.add((member.sender.address, SlashReason.NO_SCORE_COMMIT, validator_slash))
        elif member.behaviour in (V.NO_REVEAL, V.COPY_COMMITMENT):
            slashed.add((member.sender.address, SlashReason.NO_SCORE_REVEAL, validator_slash))
    return slashed


def settle_and_check(world: World, run: BatchRun) -> Expected:
    """Compare the batch with the rules, claim everything, and check conservation and every account."""
    chain, market = world.chain, Market(world.chain)
    want = expected_of(world, run)
    settled = run.settlement.settled
    assert settled is not None and settled.scored and settled.round == 0
    assert run.settlement.rescoring is None and run.settlement.refunded is None
    view = market.batch(run.batch_id, chain.head(0))
    assert view.revealed_seats() == [s for s, n in enumerate(run.nodes) if n.behaviour in REVEALING_NODES]
    # the honest members scored what the rubric gives from the nodes' scripts: their fetches over
    # libp2p and their digest checks worked, and failed exactly where the node misbehaved
    for member in run.committee:
        if member.behaviour in (V.HONEST, V.NO_REVEAL):
            assert member.vector == honest_vector(member, run), member.reasons
    assert (settled.medians, settled.node_paid) == (want.medians, want.node_paid)
    assert (settled.agreed_mask, settled.validator_reward, settled.refund) == (
        want.agreed_mask,
        want.validator_reward,
        want.refund,
    )
    got_slashes = {(e.account, e.reason, e.amount) for e in run.settlement.slashed}
    slashes = expected_slashes(world, run, want)
    assert got_slashes == slashes
    assert len(run.settlement.slashed) == len(slashes)  # once per batch and holder

    # honest participants paid in full: each row's node pool split between the two honest nodes,
    # the validator pool split among the honest members (nobody else agreed)
    validator_pool_row = PARAMS.bounty_per_task * PARAMS.validator_share_bps // 10_000
    node_pool_row = PARAMS.bounty_per_task - validator_pool_row
    rows = len(run.rows)
    honest_members = [s for s, m in enumerate(run.committee) if m.behaviour is V.HONEST]
    for seat, node in enumerate(run.nodes):
        assert settled.node_paid[seat] == (rows * (node_pool_row // 2) if node.behaviour is H.HONEST else 0)
    assert settled.agreed_mask == sum(1 << s for s in honest_members)
    assert settled.validator_reward == validator_pool_row * rows // len(honest_members)

    claims = dict(claim_all_world(world))
    after = holdings(chain, world.accounts, chain.head(0))
    deltas = check_conservation(
        world.before, after, token_transfers(chain, world.before.block + 1, after.block)
    )
    owed: dict[Address, int] = dict.fromkeys(deltas, 0)
    owed[world.requester.address] = -PARAMS.bounty_per_task * rows + want.refund
    for seat, node in enumerate(run.nodes):
        owed[node.sender.address] += want.node_paid[seat]
    for seat, member in enumerate(run.committee):
        if want.agreed_mask >> seat & 1:
            owed[member.sender.address] += want.validator_reward
    for account, _reason, amount in slashes:
        owed[account] -= amount
    assert deltas == owed
    assert after.treasury_unswept - world.before.treasury_unswept == sum(a for _, _, a in slashes)
    assert after.escrow == world.before.escrow == 0  # nothing left in the market
    assert all(after.claimable[a] == 0 for a in world.accounts)
    assert claims.get(world.requester.address, 0) == want.refund
    assert market.phase(run.batch_id, chain.head(0)).phase is Phase.SETTLED
    registry = Registry(chain)
    assert all(registry.participant(a, chain.head(0)).open_seats == 0 for a in world.accounts)
    return want


def claim_all_world(world: World) -> list[tuple[Address, int]]:
    market, block = Market(world.chain), world.chain.head(0)
    senders = [world.requester, *(n.sender for n in world.nodes), *(v.sender for v in world.validators)]
    out: list[tuple[Address, int]] = []
    for sender in senders:
        if market.balance_of(sender.address, block) > 0:
            amount, _ = market.claim(sender)
            out.append((sender.address, amount))
    return out


HONEST_COMMITTEE = (V.HONEST, V.HONEST, V.HONEST)


def test_node_copying_a_commitment_cannot_reveal_it(fresh_chain: SynodContracts, tmp_path: Path) -> None:
    world = make_world(fresh_chain, (H.HONEST, H.HONEST, H.COPY_COMMITMENT), HONEST_COMMITTEE)
    run = play(world, tmp_path)
    copier = next(n for n in run.nodes if n.behaviour is H.COPY_COMMITMENT)
    victim = run.nodes[0]
    assert copier.seat is not None and not copier.revealed
    # it did hold a seat with the very same commitment, and revealed the victim's digests and salt
    refused = copier.reveal_refused
    assert refused is not None and refused.name == "BatchCommitmentMismatch"
    assert refused.args["batchId"] == run.batch_id
    assert refused.args["revealed"] != refused.args["committed"]  # the commitment binds the committer
    assert victim.revealed
    settle_and_check(world, run)


def test_garbage_reveal_is_scored_zero_and_not_paid(fresh_chain: SynodContracts, tmp_path: Path) -> None:
    world = make_world(fresh_chain, (H.HONEST, H.HONEST, H.GARBAGE), HONEST_COMMITTEE)
    run = play(world, tmp_path)
    seat = next(s for s, n in enumerate(run.nodes) if n.behaviour is H.GARBAGE)
    for member in run.committee:
        assert all(member.reasons[(seat, r)].startswith("bad envelope") for r in range(len(run.rows)))
    want = settle_and_check(world, run)
    assert want.node_paid[seat] == 0 and seat in want.junk


def test_reveal_without_serving_scores_zero_and_validators_are_not_punished(
    fresh_chain: SynodContracts, tmp_path: Path
) -> None:
    world = make_world(fresh_chain, (H.HONEST, H.NO_SERVE, H.HONEST), HONEST_COMMITTEE)
    run = play(world, tmp_path)
    seat = next(s for s, n in enumerate(run.nodes) if n.behaviour is H.NO_SERVE)
    assert run.nodes[seat].revealed
    for member in run.committee:
        assert all(member.reasons[(seat, r)] == "not served" for r in range(len(run.rows)))
    want = settle_and_check(world, run)
    assert want.node_paid[seat] == 0
    assert want.agreed_mask == 0b111  # every member scored it 0 and was paid


def test_node_that_never_reveals_is_slashed(fresh_chain: SynodContracts, tmp_path: Path) -> None:
    world = make_world(fresh_chain, (H.NO_REVEAL, H.HONEST, H.HONEST), HONEST_COMMITTEE)
    run = play(world, tmp_path)
    silent = next(n for n in run.nodes if n.behaviour is H.NO_REVEAL)
    want = settle_and_check(world, run)
    assert (silent.sender.address, SlashReason.NO_REVEAL, world.min_node_stake // 10) in {
        (e.account, e.reason, e.amount) for e in run.settlement.slashed
    }
    assert want.node_paid[run.nodes.index(silent)] == 0


# validator cases: two honest nodes and a garbage node, so that scoring everything 100 shows
GARBAGE_BATCH = (H.HONEST, H.HONEST, H.GARBAGE)


def test_validator_scoring_everything_100_is_outside_tolerance_and_unpaid(
    fresh_chain: SynodContracts, tmp_path: Path
) -> None:
    world = make_world(fresh_chain, GARBAGE_BATCH, (V.HONEST, V.ALL_100, V.HONEST))
    run = play(world, tmp_path)
    want = settle_and_check(world, run)
    seat = next(s for s, m in enumerate(run.committee) if m.behaviour is V.ALL_100)
    assert not want.agreed_mask >> seat & 1
    assert want.validator_reward > 0


@pytest.mark.parametrize("copy", [V.COPY_REVEALED, V.COPY_COMMITMENT], ids=["after-reveal", "commitment"])
def test_validator_copying_a_score_vector_is_prevented(
    fresh_chain: SynodContracts, tmp_path: Path, copy: ValidatorBehaviour
) -> None:
    world = make_world(fresh_chain, GARBAGE_BATCH, (V.HONEST, V.HONEST, copy))
    run = play(world, tmp_path)
    copier = next(m for m in run.committee if m.behaviour is copy)
    assert copier.seen_at_commit == 0  # no score vector is public while commits are open
    assert not copier.revealed
    (refused,) = copier.refused
    if copy is V.COPY_REVEALED:
        # the first vector became public only once the commit window had closed
        assert refused.name == "BatchWrongPhase"
        assert refused.args["expected"] == Phase.SCORE_COMMITTING
        assert refused.args["actual"] == Phase.SCORE_REVEALING
    else:
        # the copied commitment binds the member that made it: its vector and salt do not open it
        assert refused.name == "BatchCommitmentMismatch"
    settle_and_check(world, run)


def test_validator_that_never_reveals_is_slashed(fresh_chain: SynodContracts, tmp_path: Path) -> None:
    world = make_world(fresh_chain, GARBAGE_BATCH, (V.NO_REVEAL, V.HONEST, V.HONEST))
    run = play(world, tmp_path)
    silent = next(m for m in run.committee if m.behaviour is V.NO_REVEAL)
    assert silent.vector is not None and not silent.revealed
    settle_and_check(world, run)
    assert (silent.sender.address, SlashReason.NO_SCORE_REVEAL, world.min_validator_stake // 10) in {
        (e.account, e.reason, e.amount) for e in run.settlement.slashed
    }
