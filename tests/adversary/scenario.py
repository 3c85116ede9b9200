"""The machinery of the adversary suite (issue 9, section 5): one network per test module, one batch
per case, and the checks every case shares.

A module's :class:`Network` is a real Anvil with the contracts, the scripted actors registered (Anvil
dev accounts: nodes 1..3, validators 4..6, requester 7) and a real ``synod oracle run`` process for
each validator account the module names as a daemon; the daemons run for the whole module (they load
their scoring models once) and see every batch. Each case then runs one batch of two rows (two tasks
of the project's labelled scoring set) with k = 3 node seats and a committee of m = 3 (every
registered validator is drawn). What the batch must pay and slash is computed from the rules of
docs/contracts.md (tests/protocol/settlement_rules.py) and from what each actor was scripted to do,
never from the contract's settlement; then :func:`settle_and_check` proves

- the settlement event matches the rules to the token (medians, node pay, agreeing members, refund);
- exactly the expected accounts are slashed, for the expected reason, by the expected amount;
- token conservation holds over every account (protocol/chain/conservation.py), and every
  participant's worth changed by exactly what the rules give: honest participants are paid in full.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from protocol.chain.conservation import Holdings, check_conservation, holdings, token_transfers
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market, model_id
from protocol.chain.models import JobParams, Phase, Role, SlashReason
from protocol.chain.registry import Registry
from protocol.chain.sender import TxSender
from protocol.types import Address
from scripts.devnet import DEMO_MODEL, ROOT, VALIDATOR_INDICES, Actors, fund_and_register, local_devnet
from tests.adversary.actors import (
    HONEST_SCORE,
    BatchRun,
    NodeActor,
    NodeBehaviour,
    ValidatorActor,
    ValidatorBehaviour,
    run_batch,
)
from tests.adversary.daemons import OracleProcess, oracle_daemons
from tests.protocol.settlement_rules import Expected, expected_settlement

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
H, V = NodeBehaviour, ValidatorBehaviour
REVEALING_NODES = (H.HONEST, H.GARBAGE, H.OFF_TOPIC, H.NO_SERVE)
VOTING_MEMBERS = (V.DAEMON, V.ALL_100)
HONEST_MEMBERS = (V.DAEMON,)


def _labelled_tasks() -> tuple[list[dict[str, Any]], list[list[str]], list[str]]:
    """Two tasks of the project's labelled scoring set (tests/data) as rows, their good answers (what
    honest nodes return: the real scoring pipeline has to accept them) and an off-topic answer each."""
    rows: list[dict[str, Any]] = []
    answers: list[list[str]] = []
    off_topic: list[str] = []
    with (ROOT / "tests" / "data" / "scoring_labelled.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            task = json.loads(line)
            if task.get("schema") or task.get("sources"):
                continue
            row: dict[str, Any] = {"question": task["task"]}
            if task.get("language"):
                row["language"] = task["language"]
            rows.append(row)
            answers.append([r["text"] for r in task["results"] if r["accept"]])
            off_topic.append(next(r["text"] for r in task["results"] if r["kind"] == "off_topic"))
            if len(rows) == 2:
                return rows, answers, off_topic
    raise AssertionError("the labelled set has fewer than two plain tasks")


ROWS, GOOD, OFF_TOPIC = _labelled_tasks()


@contextmanager
def open_network(root: Path, daemon_indices: Sequence[int]) -> Iterator[Network]:
    """Anvil + contracts + the scripted accounts registered + a daemon per index in
    ``daemon_indices`` (validator dev accounts 4..6); everything stopped on exit."""
    with local_devnet(ROOT) as devnet:
        chain = SynodContracts.connect(devnet.settings, ROOT)
        actors, _ = fund_and_register(chain)
        with oracle_daemons(devnet, daemon_indices, root) as daemons:
            yield Network(chain=chain, actors=actors, daemons=tuple(daemons))


@dataclass(frozen=True)
class Network:
    """A module's chain, its registered scripted accounts and its running validator daemons."""

    chain: SynodContracts
    actors: Actors
    daemons: tuple[OracleProcess, ...]

    @property
    def daemon_accounts(self) -> frozenset[Address]:
        """The validator accounts played by real daemons (Anvil dev accounts)."""
        indices = {d.index for d in self.daemons}
        return frozenset(
            v.address for i, v in zip(VALIDATOR_INDICES, self.actors.validators, strict=True) if i in indices
        )

    def alive(self) -> None:
        """Raise if a daemon has died."""
        for daemon in self.daemons:
            daemon.check_alive()


@dataclass
class World:
    """One case: the actors with their behaviours and the holdings before anything happened."""

    net: Network
    nodes: list[NodeActor]
    validators: list[ValidatorActor]
    accounts: list[Address]
    before: Holdings
    min_node_stake: int
    min_validator_stake: int

    @property
    def chain(self) -> SynodContracts:
        return self.net.chain

    @property
    def requester(self) -> TxSender:
        return self.net.actors.requester


def _top_up(chain: SynodContracts, sender: TxSender, minimum: int) -> None:
    """An account slashed in an earlier case adds stake back to the minimum: a node below it may not
    commit, a validator below it weighs 0 in the committee draw."""
    stake = Registry(chain).participant(sender.address, chain.head(0)).stake
    if stake < minimum:
        missing = minimum - stake
        sender.transact(chain.token.functions.approve(chain.registry.address, missing), label="approve")
        sender.transact(chain.registry.functions.addStake(missing), label="addStake")


def make_world(
    net: Network, node_kinds: Sequence[NodeBehaviour], validator_kinds: Sequence[ValidatorBehaviour]
) -> World:
    """The case's actors: node ``i`` / validator ``i`` of the network with behaviour ``kinds[i]``
    (a DAEMON position must be an account a daemon plays, and the other way round)."""
    chain, actors = net.chain, net.actors
    registry, block = Registry(chain), chain.head(0)
    min_node_stake = registry.min_stake(Role.NODE, block)
    min_validator_stake = registry.min_stake(Role.VALIDATOR, block)
    nodes = []
    for i, (sender, kind) in enumerate(zip(actors.nodes, node_kinds, strict=True)):
        _top_up(chain, sender, min_node_stake)
        # each honest-looking node answers with its own good answer of the labelled set
        answers = OFF_TOPIC if kind is H.OFF_TOPIC else [good[i % len(good)] for good in GOOD]
        nodes.append(NodeActor(name=f"node{i + 1}", sender=sender, behaviour=kind, answers=answers))
    validators = []
    for i, (sender, member_kind) in enumerate(zip(actors.validators, validator_kinds, strict=True)):
        if (member_kind is ValidatorBehaviour.DAEMON) != (sender.address in net.daemon_accounts):
            raise ValueError(
                f"validator {i + 1} is {member_kind.name}, but a daemon plays {sorted(net.daemon_accounts)}"
            )
        if member_kind is not ValidatorBehaviour.DAEMON:
            # below the minimum a validator weighs 0 in the draw: a slashed adversary stakes up again
            _top_up(chain, sender, min_validator_stake)
        validators.append(
            ValidatorActor(name=f"validator{i + 1}", sender=sender, behaviour=member_kind, bias=i)
        )
    accounts = [a.address for a in actors.everyone()]
    block = chain.head(0)
    return World(
        net=net,
        nodes=nodes,
        validators=validators,
        accounts=accounts,
        before=holdings(chain, accounts, block),
        min_node_stake=min_node_stake,
        min_validator_stake=min_validator_stake,
    )


def play(world: World, tmp_path: Path) -> BatchRun:
    """Run the case's batch (the daemons act on their own) and return what happened."""

    async def main() -> BatchRun:
        with trio.fail_after(300):
            return await run_batch(
                world.chain,
                world.requester,
                world.nodes,
                world.validators,
                PARAMS,
                WORKFLOW,
                ROWS,
                tmp_path,
                world.net.alive,
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


def daemon_logs(net: Network) -> list[str]:
    """The log of every daemon of the network so far."""
    assert net.daemons, "no daemon runs"
    return [d.log() for d in net.daemons]


def expected_of(world: World, run: BatchRun) -> Expected:
    """The settlement the rules give for what the actors were scripted to do."""
    revealed = [s for s, n in enumerate(run.nodes) if n.behaviour in REVEALING_NODES]
    voters = [s for s, m in enumerate(run.committee) if m.behaviour in VOTING_MEMBERS]
    vectors = []
    for seat in voters:
        member = run.committee[seat]
        if member.behaviour is V.DAEMON:
            vectors.append(run.vectors[seat])  # checked against the nodes' scripts in settle_and_check
        else:  # ALL_100
            vectors.append(bytes([100] * (len(run.nodes) * len(run.rows))))
    return expected_settlement(
        rows=len(run.rows),
        commit_count=len(run.nodes),
        revealed=revealed,
        voter_seats=voters,
        vectors=vectors,
        weights=[world.before.stakes[run.committee[s].sender.address] for s in voters],  # raw stakes
        bounty_per_task=PARAMS.bounty_per_task,
        validator_share_bps=PARAMS.validator_share_bps,
        threshold=PARAMS.threshold,
        tolerance=PARAMS.tolerance,
        junk_floor=PARAMS.junk_floor,
    )


def expected_slashes(world: World, run: BatchRun, want: Expected) -> set[tuple[Address, SlashReason, int]]:
    """docs/contracts.md "Slashing": min(stake, minimum stake / 10) per misconduct and batch."""
    stakes = world.before.stakes

    def node_slash(a: Address) -> int:
        return min(stakes[a], world.min_node_stake // 10)

    def validator_slash(a: Address) -> int:
        return min(stakes[a], world.min_validator_stake // 10)

    slashed: set[tuple[Address, SlashReason, int]] = set()
    for seat, node in enumerate(run.nodes):
        who = node.sender.address
        if node.behaviour in (H.NO_REVEAL, H.COPY_COMMITMENT):
            slashed.add((who, SlashReason.NO_REVEAL, node_slash(who)))
        elif seat in want.junk:
            slashed.add((who, SlashReason.JUNK, node_slash(who)))
    for member in run.committee:
        who = member.sender.address
        if member.behaviour is V.COPY_REVEALED:
            slashed.add((who, SlashReason.NO_SCORE_COMMIT, validator_slash(who)))
        elif member.behaviour in (V.NO_REVEAL, V.COPY_COMMITMENT):
            slashed.add((who, SlashReason.NO_SCORE_REVEAL, validator_slash(who)))
    return slashed


def settle_and_check(world: World, run: BatchRun) -> Expected:
    """Compare the batch with the rules, claim everything, and check conservation and every account."""
    chain, market = world.chain, Market(world.chain)
    want = expected_of(world, run)
    settled = run.settlement.settled
    assert settled is not None and settled.scored and settled.round == 0
    assert run.settlement.rescoring == () and run.settlement.refunded is None
    assert run.weights == [world.before.stakes[m.sender.address] for m in run.committee]
    view = market.batch(run.batch_id, chain.head(0))
    assert view.revealed_seats() == [s for s, n in enumerate(run.nodes) if n.behaviour in REVEALING_NODES]
    # the honest members scored what the rubric gives from the nodes' scripts: their fetches over
    # libp2p and their digest checks worked, and failed exactly where the node misbehaved
    rows = len(run.rows)
    for seat, member in enumerate(run.committee):
        if member.behaviour is V.NO_REVEAL:
            assert member.vector == honest_vector(member, run), member.reasons
        if member.behaviour is V.DAEMON:
            # the real daemon: the pipeline accepted the honest answers, and every result that was
            # garbage, not served or not revealed scored 0
            vector = run.vectors[seat]
            for node_seat, node in enumerate(run.nodes):
                cells = vector[node_seat * rows : (node_seat + 1) * rows]
                if node.behaviour is H.HONEST:
                    assert min(cells) >= PARAMS.threshold, (member.name, list(vector))
                elif node.behaviour is H.OFF_TOPIC:  # a valid envelope: the pipeline judges it
                    assert max(cells) < PARAMS.threshold, (member.name, list(vector))
                else:
                    assert set(cells) == {0}, (member.name, node.behaviour, list(vector))
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
    honest_members = [s for s, m in enumerate(run.committee) if m.behaviour in HONEST_MEMBERS]
    for seat, node in enumerate(run.nodes):
        assert settled.node_paid[seat] == (rows * (node_pool_row // 2) if node.behaviour is H.HONEST else 0)
    assert settled.agreed_mask == sum(1 << s for s in honest_members)
    assert settled.validator_reward == validator_pool_row * rows // len(honest_members)

    claims = dict(claim_all_world(world))
    after = wait_for_daemon_claims(world)
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
    assert (
        claims.get(world.requester.address, 0)
        == world.before.claimable[world.requester.address] + want.refund
    )
    assert market.phase(run.batch_id, chain.head(0)).phase is Phase.SETTLED
    registry = Registry(chain)
    assert all(registry.participant(a, chain.head(0)).open_seats == 0 for a in world.accounts)
    return want


def wait_for_daemon_claims(world: World, limit: float = 60.0) -> Holdings:
    """The holdings once every daemon has claimed its balance (they claim on their own schedule)."""
    deadline = time.monotonic() + limit
    while True:
        world.net.alive()
        after = holdings(world.chain, world.accounts, world.chain.head(0))
        if all(after.claimable[a] == 0 for a in world.net.daemon_accounts):
            return after
        if time.monotonic() > deadline:
            raise AssertionError(f"the daemons did not claim within {limit}s: {dict(after.claimable)}")
        time.sleep(0.3)  # polling the chain for the daemons' claims


def claim_all_world(world: World) -> list[tuple[Address, int]]:
    """Every scripted account claims its balance (the daemons claim their own)."""
    market, block = Market(world.chain), world.chain.head(0)
    senders = [
        world.requester,
        *(n.sender for n in world.nodes),
        *(v.sender for v in world.validators if v.behaviour is not V.DAEMON),
    ]
    out: list[tuple[Address, int]] = []
    for sender in senders:
        if market.balance_of(sender.address, block) > 0:
            amount, _ = market.claim(sender)
            out.append((sender.address, amount))
    return out
