"""The validator issue's seven adversaries (issue 9 section 5) in one devnet at once (issue 10 section 3).

A devnet with the scripted model (Anvil, 2 ``synod node run`` and 3 ``synod oracle run`` processes,
libp2p between them) runs beside seven scripted adversaries of tests/adversary/actors.py, each its own
registered, staked account with its own libp2p host: a node copying an honest node's commitment, a
node revealing garbage, a node revealing but never serving its bytes, a node that never reveals, a
validator scoring everything 100, a validator copying the first revealed score vector, a validator
that never reveals. The requester posts one job of several batches with k = 6 node seats (2 honest +
4 adversaries) and a committee of m = 6 (3 daemons + 3 adversaries; drawn by stake without
replacement, so everyone sits): every behaviour sits in every batch, and the test asserts it from
the chain's events, so a run in which one never sat fails.

The adversaries act on all batches concurrently, as soon as each phase lets them; the daemons act on
their own. Phases that the adversaries keep open (reveals, score commits, score reveals) are closed
with Anvil time travel once every honest participant has acted in every batch (phases are 600 s, so
no honest action can miss its deadline on a loaded machine). Then, per batch:

- the settlement equals the rules of docs/contracts.md computed here from the revealed vectors
  (tests/protocol/settlement_rules.py), and each adversary met its consequence (refused reveal and
  slashed, scored 0 and not paid and slashed as junk, slashed for not revealing, outside tolerance and
  unpaid, refused copy and slashed, slashed); the daemons scored the unserved results 0 and were
  paid (not punished for the node that did not serve);
- token conservation holds over every account (protocol/chain/conservation.py: balances, Transfer
  events, stakes, escrow, treasury), and each account's worth changed by exactly the sum, over the
  batches, of what the rules give it (honest participants paid in full), the slashes by the
  documented amount;
- ``synod job export`` (the real CLI) writes exactly the accepted results (the honest nodes' rows,
  none of an adversary) and ``synod job verify`` passes on the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
import trio
from eth_account import Account
from web3.types import RPCEndpoint

from devnet.chain import ROOT, advance_past, dev_private_key_hex
from devnet.demo import demo_job_params
from devnet.network import DevnetSpec, DevnetState, status
from protocol.chain.conservation import Holdings, check_conservation, holdings, token_transfers
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market
from protocol.chain.models import (
    BatchView,
    CommitteeDrawn,
    EventModel,
    Phase,
    ResultCommitted,
    ResultRevealed,
    Role,
    ScoresRevealed,
    SlashReason,
)
from protocol.chain.registry import Registry
from protocol.chain.sender import TxSender
from protocol.chain.signer import Signer, anvil_dev_signer
from protocol.p2p import P2pSettings, open_p2p_host
from protocol.types import Address, BatchId, address_of
from requester.connect import RequesterChain
from requester.export import DatasetRow
from tests.adversary.actors import (
    Ending,
    NodeActor,
    NodeBehaviour,
    PostedBatch,
    ValidatorActor,
    ValidatorBehaviour,
    batch_events,
    call,
    commit_member,
    commit_node,
    draw_when_due,
    learn_batch,
    read_ending,
    reveal_member,
    reveal_node,
    settle_when_due,
    until,
)
from tests.e2e.helpers import TOKEN, post_passages, requester_of, running_devnet
from tests.protocol.settlement_rules import Expected, expected_settlement

E = TypeVar("E", bound=EventModel)

pytestmark = [pytest.mark.e2e, pytest.mark.adversary, pytest.mark.slow, pytest.mark.timeout(1800)]

H, V = NodeBehaviour, ValidatorBehaviour
HONEST_NODES = 2
HONEST_VALIDATORS = 3
NODE_ADVERSARIES = (H.COPY_COMMITMENT, H.GARBAGE, H.NO_SERVE, H.NO_REVEAL)
VALIDATOR_ADVERSARIES = (V.ALL_100, V.COPY_REVEALED, V.NO_REVEAL)
FIRST_ADVERSARY_KEY = 2 + HONEST_NODES + HONEST_VALIDATORS
"""The devnet uses Anvil keys 0 (deployer), 1 (requester), then its nodes and validators."""
ROWS = 6
BATCH_SIZE = 2
BATCHES = ROWS // BATCH_SIZE
PHASE_SECONDS = 1200
"""Long phases, closed early by time travel once every honest participant has acted (a validator may
spend half the time left before its score-commit deadline fetching)."""
FETCH_TIMEOUT = 120.0
"""Seconds per result fetch, daemons and scripted members alike: at a load average of 30-50 a node
daemon takes over 20 s (the default) to answer a signed fetch, and a late result would score 0."""
PARAMS = demo_job_params(10 * TOKEN + 7, BATCH_SIZE, PHASE_SECONDS).model_copy(
    update={
        "k": HONEST_NODES + len(NODE_ADVERSARIES),
        "m": HONEST_VALIDATORS + len(VALIDATOR_ADVERSARIES),
    }
)  # an odd bounty: integer-division dust goes back to the requester
RUN_LIMIT = 1200.0
"""Seconds the whole run may take once the devnet is up."""
WAIT = 480.0
"""Seconds the honest daemons have for one phase of every batch (a loaded 2-core machine)."""


@dataclass
class Seats:
    """One batch as the adversaries played it."""

    batch: PostedBatch
    nodes: dict[NodeBehaviour, NodeActor]
    members: dict[ValidatorBehaviour, ValidatorActor]
    node_seats: list[Address] = field(default_factory=list)
    """Who holds each node seat (``ResultCommitted``)."""
    committee: list[Address] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)


@dataclass
class Adversaries:
    """The seven adversary accounts (their hosts live in the run's exit stack)."""

    nodes: dict[NodeBehaviour, NodeActor]
    """Account-level actors: their hosts serve (or withhold) every batch's bytes."""
    members: dict[ValidatorBehaviour, ValidatorActor]

    def for_batch(self, batch: PostedBatch) -> Seats:
        """Fresh per-batch actors of the same accounts, hosts and served bytes."""
        nodes = {
            kind: NodeActor(
                name=owner.name,
                sender=owner.sender,
                behaviour=kind,
                answers=owner.answers,
                served=owner.served,
                host=owner.host,
            )
            for kind, owner in self.nodes.items()
        }
        members = {
            kind: ValidatorActor(
                name=owner.name,
                sender=owner.sender,
                behaviour=kind,
                host=owner.host,
                fetch_deadline=FETCH_TIMEOUT,
                signer=owner.signer,
            )
            for kind, owner in self.members.items()
        }
        return Seats(batch=batch, nodes=nodes, members=members)

    def senders(self) -> list[TxSender]:
        return [n.sender for n in self.nodes.values()] + [m.sender for m in self.members.values()]

    def accounts(self) -> list[Address]:
        return [s.address for s in self.senders()]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetState]:
    spec = DevnetSpec(
        state_dir=tmp_path_factory.mktemp("adversary-devnet"),
        nodes=HONEST_NODES,
        validators=HONEST_VALIDATORS,
        model="scripted",
        fetch_timeout=FETCH_TIMEOUT,
    )
    with running_devnet(spec) as state:
        yield state


def _alive(devnet: DevnetState) -> None:
    for proc, running in status(devnet):
        if not running:
            tail = proc.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise AssertionError(f"devnet process {proc.name} died:\n{tail}")


def _fund(chain: SynodContracts, sender: TxSender) -> None:
    """Gas (Anvil funds only its first accounts) and tokens for an adversary account."""
    chain.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [sender.address, hex(10**21)])
    Registry(chain).mint(sender, sender.address, 10**24)


def _enlist(chain: SynodContracts, sender: TxSender, role: Role, p2p: bytes) -> None:
    """Register ``sender`` as ``role`` at the minimum stake, reachable at ``p2p``; an account already
    registered (a second run on the same chain) is topped up to the minimum and re-pointed."""
    registry = Registry(chain)
    block = chain.head(0)
    minimum = registry.min_stake(role, block)
    me = registry.participant(sender.address, block)
    if me.role is Role.NONE:
        models = [bytes(PARAMS.model)] if role is Role.NODE else []
        registry.register(sender, role, minimum, models, p2p)
        return
    if me.stake < minimum:
        missing = minimum - me.stake
        sender.transact(chain.token.functions.approve(chain.registry.address, missing), label="approve")
        sender.transact(chain.registry.functions.addStake(missing), label="addStake")
    sender.transact(chain.registry.functions.setP2pAddress(p2p), label="setP2pAddress")


async def _open_adversaries(
    chain: SynodContracts, stack: AsyncExitStack, home: Path, answers: list[str]
) -> Adversaries:
    """Each adversary account funded, its libp2p host listening and registered at the minimum stake
    with the host's address (as a real participant would once its host listens)."""
    nodes: dict[NodeBehaviour, NodeActor] = {}
    members: dict[ValidatorBehaviour, ValidatorActor] = {}
    kinds: list[NodeBehaviour | ValidatorBehaviour] = [*NODE_ADVERSARIES, *VALIDATOR_ADVERSARIES]
    for key, kind in enumerate(kinds, FIRST_ADVERSARY_KEY):
        signer = Signer(Account.from_key(dev_private_key_hex(key)))  # past Anvil's 10 funded accounts
        sender = chain.sender(signer)
        settings = P2pSettings(identity_file=home / f"adversary{key}.key", fetch_timeout=FETCH_TIMEOUT)
        await call(_fund, chain, sender)
        if isinstance(kind, NodeBehaviour):
            node = NodeActor(name=f"{kind.name.lower()}-node", sender=sender, behaviour=kind, answers=answers)
            node.host = await stack.enter_async_context(open_p2p_host(settings, lookup=node.lookup))
            await call(_enlist, chain, sender, Role.NODE, node.host.multiaddr.encode())
            nodes[kind] = node
        else:
            host = await stack.enter_async_context(open_p2p_host(settings))
            members[kind] = ValidatorActor(
                name=f"{kind.name.lower()}-validator", sender=sender, behaviour=kind, host=host, signer=signer
            )
            await call(_enlist, chain, sender, Role.VALIDATOR, host.multiaddr.encode())
    return Adversaries(nodes=nodes, members=members)


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups: trio nests one per host and nursery."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


@dataclass(frozen=True)
class Played:
    """What the run left for the assertions."""

    job_id: int
    seats: list[Seats]
    endings: list[Ending]
    vectors: list[dict[int, bytes]]
    """Per batch: the revealed score vectors by committee seat (``ScoresRevealed``)."""
    revealed: list[set[Address]]
    """Per batch: the nodes that revealed (``ResultRevealed``)."""
    adversaries: Adversaries
    honest_nodes: frozenset[Address]
    honest_validators: frozenset[Address]
    before: Holdings
    after: Holdings
    deltas: dict[Address, int]
    requester: Address
    min_node_stake: int
    min_validator_stake: int


def _play(devnet: DevnetState, rc: RequesterChain, home: Path) -> Played:
    chain, market = rc.chain, Market(rc.chain)
    requester = rc.sender()
    honest_nodes = frozenset(address_of(p.address) for p in devnet.operators("node"))
    honest_validators = frozenset(address_of(p.address) for p in devnet.operators("validator"))
    deployer = anvil_dev_signer(0, chain.chain_id).address

    def alive() -> None:
        _alive(devnet)

    def events(model: type[E], seats: Seats) -> list[E]:
        return batch_events(chain, model, seats.batch.batch_id, seats.batch.post_block)

    def view(seats: Seats) -> BatchView:
        return market.batch(seats.batch.batch_id, chain.head(0))

    async def every(fn: Callable[[Seats], Awaitable[None]], seats: list[Seats]) -> None:
        async with trio.open_nursery() as nursery:
            for one in seats:
                nursery.start_soon(fn, one)

    async def close(expected: Phase, seats: list[Seats]) -> None:
        """Every batch is in ``expected`` and every honest participant acted: jump past its deadlines."""
        head = await call(chain.head, 0)
        now = [await call(market.phase, s.batch.batch_id, head) for s in seats]
        assert [p.phase for p in now] == [expected] * len(seats), now
        await call(advance_past, chain, max(int(p.deadline) for p in now))

    async def play() -> Played:
        async with AsyncExitStack() as stack:
            answers = ["an answer this node withholds"] * BATCH_SIZE
            adversaries = await _open_adversaries(chain, stack, home, answers)
            registry, block = Registry(chain), await call(chain.head, 0)
            min_node_stake = await call(registry.min_stake, Role.NODE, block)
            min_validator_stake = await call(registry.min_stake, Role.VALIDATOR, block)
            accounts = [
                deployer,
                requester.address,
                *honest_nodes,
                *honest_validators,
                *adversaries.accounts(),
            ]
            before = await call(holdings, chain, accounts, block)
            job_id = await call(post_passages, rc, PARAMS, ROWS, requester)
            job = await call(market.job, job_id, await call(chain.head, 0))
            assert job.batch_count == BATCHES
            seats = [
                adversaries.for_batch(await learn_batch(chain, BatchId(job.first_batch_id + i), before.block))
                for i in range(BATCHES)
            ]

            # ---- commits: the adversaries at once; the copier as soon as an honest node committed
            async def commit(one: Seats) -> None:
                async with trio.open_nursery() as nursery:
                    for kind, node in one.nodes.items():
                        if kind is not H.COPY_COMMITMENT:
                            nursery.start_soon(commit_node, one.batch, node)

                def honest_commit() -> bool:
                    return any(address_of(e.node) in honest_nodes for e in events(ResultCommitted, one))

                await until("an honest commitment to copy", honest_commit, alive, WAIT)
                victim = next(e for e in await call(events, ResultCommitted, one) if e.node in honest_nodes)
                await commit_node(one.batch, one.nodes[H.COPY_COMMITMENT], copy_from=victim.node)

            await every(commit, seats)

            def all_seated() -> bool:
                return all(view(s).commit_count == PARAMS.k for s in seats)

            await until("every node seat of every batch", all_seated, alive, WAIT)
            for one in seats:
                commits = sorted(await call(events, ResultCommitted, one), key=lambda e: int(e.seat))
                one.node_seats = [address_of(e.node) for e in commits]

            # ---- reveals: the copier once its victim revealed (the salt is public then)
            async def reveal(one: Seats) -> None:
                copier = one.nodes[H.COPY_COMMITMENT]
                async with trio.open_nursery() as nursery:
                    for kind, node in one.nodes.items():
                        if kind is not H.COPY_COMMITMENT:
                            nursery.start_soon(reveal_node, one.batch, node)

                def victim_revealed() -> bool:
                    return any(e.node == copier.copied for e in events(ResultRevealed, one))

                await until("the copied node's reveal", victim_revealed, alive, WAIT)
                await reveal_node(one.batch, copier)

            await every(reveal, seats)

            def honest_revealed() -> bool:
                return all(
                    honest_nodes <= {address_of(e.node) for e in events(ResultRevealed, s)} for s in seats
                )

            await until("the honest nodes' reveals", honest_revealed, alive, WAIT)
            await close(Phase.REVEALING, seats)

            # ---- the draw: the daemons or the requester, whoever comes first
            async def draw(one: Seats) -> None:
                await draw_when_due(chain, requester, one.batch.batch_id)
                (drawn,) = await call(events, CommitteeDrawn, one)
                one.committee = [address_of(a) for a in drawn.validators]
                one.weights = [int(w) for w in drawn.weights]
                for member in one.members.values():
                    if member.sender.address in one.committee:
                        member.seat = one.committee.index(member.sender.address)

            await every(draw, seats)
            for one in seats:
                missing = [k.name for k, m in one.members.items() if m.seat is None]
                assert not missing, f"batch {one.batch.batch_id}: {missing} not drawn: {one.committee}"

            def daemon_mask(one: Seats) -> int:
                return sum(1 << i for i, a in enumerate(one.committee) if a in honest_validators)

            # ---- score commits: the copier of revealed vectors looks as late as it can
            async def score_commit(one: Seats) -> None:
                async with trio.open_nursery() as nursery:
                    for kind in (V.ALL_100, V.NO_REVEAL):
                        nursery.start_soon(commit_member, one.batch, one.members[kind], PARAMS.k)

                def daemons_committed() -> bool:
                    return view(one).score_commit_mask & daemon_mask(one) == daemon_mask(one)

                await until("the daemons' score commits", daemons_committed, alive, WAIT)
                await commit_member(one.batch, one.members[V.COPY_REVEALED], PARAMS.k)

            await every(score_commit, seats)
            await close(Phase.SCORE_COMMITTING, seats)

            # ---- score reveals: the copier once a vector is public
            async def score_reveal(one: Seats) -> None:
                await reveal_member(one.batch, one.members[V.ALL_100])
                await reveal_member(one.batch, one.members[V.NO_REVEAL])  # does nothing

                def some_revealed() -> bool:
                    return bool(events(ScoresRevealed, one))

                await until("a revealed score vector", some_revealed, alive, WAIT)
                await reveal_member(one.batch, one.members[V.COPY_REVEALED])

                def daemons_revealed() -> bool:
                    return view(one).score_reveal_mask & daemon_mask(one) == daemon_mask(one)

                await until("the daemons' score reveals", daemons_revealed, alive, WAIT)

            await every(score_reveal, seats)
            await close(Phase.SCORE_REVEALING, seats)

            # ---- settlement (the daemons or the requester) and claims (the daemons claim on their own)
            async def settle(one: Seats) -> None:
                await settle_when_due(chain, requester, one.batch.batch_id, one.batch.post_block)

            await every(settle, seats)
            endings = [await read_ending(chain, s.batch.batch_id, s.batch.post_block) for s in seats]
            vectors = [
                {int(e.seat): bytes(e.scores) for e in await call(events, ScoresRevealed, s)} for s in seats
            ]
            revealed = [{address_of(e.node) for e in await call(events, ResultRevealed, s)} for s in seats]
            for sender in (requester, *adversaries.senders()):
                if await call(market.balance_of, sender.address, await call(chain.head, 0)) > 0:
                    await call(market.claim, sender)
            daemons = honest_nodes | honest_validators

            def daemons_claimed() -> bool:
                head = chain.head(0)
                return all(market.balance_of(a, head) == 0 for a in daemons)

            await until("the daemons' claims", daemons_claimed, alive, 120.0)
            after = await call(holdings, chain, accounts, await call(chain.head, 0))
            transfers = await call(token_transfers, chain, before.block + 1, after.block)
            deltas = check_conservation(before, after, transfers)
            return Played(
                job_id=job_id,
                seats=seats,
                endings=endings,
                vectors=vectors,
                revealed=revealed,
                adversaries=adversaries,
                honest_nodes=honest_nodes,
                honest_validators=honest_validators,
                before=before,
                after=after,
                deltas=deltas,
                requester=requester.address,
                min_node_stake=min_node_stake,
                min_validator_stake=min_validator_stake,
            )

    async def main() -> Played:
        try:
            with trio.fail_after(RUN_LIMIT):
                return await play()
        except BaseExceptionGroup as group:  # the first real error, not ten levels of groups
            first, *others = _leaves(group)
            first.add_note(f"{len(others)} other error(s): {[repr(e)[:200] for e in others]}")
            raise first from None

    return trio.run(main)


@pytest.fixture(scope="module")
def played(devnet: DevnetState, tmp_path_factory: pytest.TempPathFactory) -> Played:
    started = time.monotonic()
    result = _play(devnet, requester_of(devnet), tmp_path_factory.mktemp("adversaries"))
    print(f"adversary run: {time.monotonic() - started:.0f} s, load {os.getloadavg()}")
    return result


def _seat_of(one: Seats, actor: NodeActor) -> int:
    return one.node_seats.index(actor.sender.address)


def _expected(played: Played, index: int) -> Expected:
    """Batch ``index``'s settlement by the rules, from the scripts and the daemons' revealed vectors."""
    one, vectors = played.seats[index], played.vectors[index]
    revealing = played.honest_nodes | {one.nodes[k].sender.address for k in (H.GARBAGE, H.NO_SERVE)}
    all_100 = one.members[V.ALL_100].seat
    assert all_100 is not None
    voters = sorted([i for i, a in enumerate(one.committee) if a in played.honest_validators] + [all_100])
    cells = PARAMS.k * BATCH_SIZE
    return expected_settlement(
        rows=BATCH_SIZE,
        commit_count=PARAMS.k,
        revealed=sorted(i for i, a in enumerate(one.node_seats) if a in revealing),
        voter_seats=voters,
        vectors=[bytes([100] * cells) if v == all_100 else vectors[v] for v in voters],
        weights=[played.min_validator_stake] * len(voters),  # nobody was slashed before the draws
        bounty_per_task=PARAMS.bounty_per_task,
        validator_share_bps=PARAMS.validator_share_bps,
        threshold=PARAMS.threshold,
        tolerance=PARAMS.tolerance,
        junk_floor=PARAMS.junk_floor,
    )


def _expected_slashes(played: Played, index: int) -> set[tuple[Address, SlashReason, int]]:
    """docs/contracts.md "Slashing": minimum stake / 10 per misconduct and batch (stakes stay above it)."""
    one = played.seats[index]
    node, member = played.min_node_stake // 10, played.min_validator_stake // 10
    return {
        (one.nodes[H.COPY_COMMITMENT].sender.address, SlashReason.NO_REVEAL, node),
        (one.nodes[H.NO_REVEAL].sender.address, SlashReason.NO_REVEAL, node),
        (one.nodes[H.GARBAGE].sender.address, SlashReason.JUNK, node),
        (one.nodes[H.NO_SERVE].sender.address, SlashReason.JUNK, node),
        (one.members[V.COPY_REVEALED].sender.address, SlashReason.NO_SCORE_COMMIT, member),
        (one.members[V.NO_REVEAL].sender.address, SlashReason.NO_SCORE_REVEAL, member),
    }


def test_every_behaviour_sat_in_every_batch(played: Played) -> None:
    node_adversaries = {a.sender.address for a in played.adversaries.nodes.values()}
    member_adversaries = {a.sender.address for a in played.adversaries.members.values()}
    assert len(played.seats) == BATCHES
    for one in played.seats:
        # read back from ResultCommitted and CommitteeDrawn: a behaviour that never sat fails here
        assert sorted(one.node_seats) == sorted(played.honest_nodes | node_adversaries)
        assert sorted(one.committee) == sorted(played.honest_validators | member_adversaries)
        for kind, node in one.nodes.items():
            assert node.seat == _seat_of(one, node), kind
        assert one.weights == [played.min_validator_stake] * PARAMS.m


def test_each_batch_settles_by_the_rules_and_each_adversary_meets_its_consequence(played: Played) -> None:
    rows = BATCH_SIZE
    validator_pool_row = PARAMS.bounty_per_task * PARAMS.validator_share_bps // 10_000
    node_pool_row = PARAMS.bounty_per_task - validator_pool_row
    for index, (one, ending) in enumerate(zip(played.seats, played.endings, strict=True)):
        settled = ending.settled
        assert settled is not None and settled.scored and settled.round == 0, ending
        assert ending.refunded is None and ending.rescoring == ()
        want = _expected(played, index)
        assert (settled.medians, settled.node_paid) == (want.medians, want.node_paid)
        assert (settled.agreed_mask, settled.validator_reward, settled.refund) == (
            want.agreed_mask,
            want.validator_reward,
            want.refund,
        )
        got = {(address_of(e.account), e.reason, e.amount) for e in ending.slashed}
        assert got == _expected_slashes(played, index), ending.slashed
        assert len(ending.slashed) == len(got), ending.slashed  # once per batch and holder

        daemons = [i for i, a in enumerate(one.committee) if a in played.honest_validators]
        honest_seats = [i for i, a in enumerate(one.node_seats) if a in played.honest_nodes]
        # the daemons' own scores: honest results pass, every other result scored 0
        for seat in daemons:
            vector = played.vectors[index][seat]
            for node_seat in range(PARAMS.k):
                cells = vector[node_seat * rows : (node_seat + 1) * rows]
                if node_seat in honest_seats:
                    assert min(cells) >= PARAMS.threshold, list(vector)
                else:
                    assert set(cells) == {0}, (node_seat, list(vector))
        # honest participants paid in full: two honest nodes per row, three agreeing daemons
        for seat in range(PARAMS.k):
            assert settled.node_paid[seat] == (rows * (node_pool_row // 2) if seat in honest_seats else 0)
        assert settled.agreed_mask == sum(1 << s for s in daemons)
        assert settled.validator_reward == validator_pool_row * rows // len(daemons)

        # node adversaries
        copier = one.nodes[H.COPY_COMMITMENT]
        assert copier.copied in played.honest_nodes and not copier.revealed
        refused = copier.reveal_refused
        assert refused is not None and refused.name == "BatchCommitmentMismatch", refused
        assert refused.args["revealed"] != refused.args["committed"]  # the commitment binds the committer
        garbage, no_serve = one.nodes[H.GARBAGE], one.nodes[H.NO_SERVE]
        assert garbage.revealed and no_serve.revealed
        assert {_seat_of(one, garbage), _seat_of(one, no_serve)} <= set(want.junk)
        assert one.nodes[H.NO_REVEAL].sender.address not in played.revealed[index]
        revealing = {garbage.sender.address, no_serve.sender.address}
        assert played.revealed[index] == played.honest_nodes | revealing
        # validator adversaries
        all_100 = one.members[V.ALL_100]
        assert all_100.seat is not None
        assert all_100.revealed and played.vectors[index][all_100.seat] == bytes([100] * PARAMS.k * rows)
        assert not settled.agreed_mask >> all_100.seat & 1
        copy = one.members[V.COPY_REVEALED]
        assert copy.seen_at_commit == 0 and copy.vector is None and not copy.revealed
        (late,) = copy.refused
        assert late.name == "BatchWrongPhase" and late.args["expected"] == Phase.SCORE_COMMITTING
        silent = one.members[V.NO_REVEAL]
        assert silent.vector is not None and not silent.revealed
        # its own rubric fetched over libp2p: garbage refused, nothing served (its fetches of the
        # honest daemons' results, signed as a committee member, may time out under load: not checked)
        for seat, address in enumerate(one.node_seats):
            why = {silent.reasons.get((seat, r)) for r in range(rows)}
            if address == garbage.sender.address:
                assert all(w is not None and w.startswith("bad envelope") for w in why), why
            elif address == no_serve.sender.address:
                assert why == {"not served"}, why


def test_tokens_are_conserved_and_every_account_changes_by_the_rules(played: Played) -> None:
    # check_conservation (in the run) proved balances, Transfer events, stakes and escrow consistent;
    # here every account's worth delta is compared with the rules, batch by batch, summed
    owed: dict[Address, int] = dict.fromkeys(played.deltas, 0)
    owed[played.requester] -= PARAMS.bounty_per_task * ROWS
    slashed = 0
    for index, one in enumerate(played.seats):
        want = _expected(played, index)
        owed[played.requester] += want.refund
        for seat, address in enumerate(one.node_seats):
            owed[address] += want.node_paid[seat]
        for seat, address in enumerate(one.committee):
            if want.agreed_mask >> seat & 1:
                owed[address] += want.validator_reward
        for account, _reason, amount in _expected_slashes(played, index):
            owed[account] -= amount
            slashed += amount
    assert played.deltas == owed
    assert all(played.deltas[a] > 0 for a in played.honest_nodes | played.honest_validators)
    assert played.after.treasury_unswept - played.before.treasury_unswept == slashed
    assert played.after.escrow == played.before.escrow == 0
    assert all(v == 0 for v in played.after.claimable.values())  # everyone claimed
    assert played.after.total_staked == played.before.total_staked - slashed


def test_export_holds_only_accepted_results_and_verifies(
    played: Played, devnet: DevnetState, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNOD_")}
    env.update(devnet.requester_env())
    env["PYTHONPATH"] = str(ROOT)
    out = tmp_path / "dataset.jsonl"

    def synod(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    export = synod("job", "export", str(played.job_id), "--out", str(out))
    assert export.returncode == 0, export.stdout + export.stderr
    rows = [DatasetRow.model_validate(json.loads(x)) for x in out.read_text(encoding="utf-8").splitlines()]
    accepted = set()
    for index, one in enumerate(played.seats):
        want = _expected(played, index)
        for seat, address in enumerate(one.node_seats):
            for row in range(BATCH_SIZE):
                if want.medians[seat * BATCH_SIZE + row] >= PARAMS.threshold:
                    accepted.add((one.batch.batch_id, row, address))
    assert {a for _, _, a in accepted} == played.honest_nodes  # no adversary result was accepted
    assert len(accepted) == ROWS * HONEST_NODES
    assert sorted((r.batch_id, r.row, address_of(r.node)) for r in rows) == sorted(accepted)
    assert all(r.median is not None and r.median >= PARAMS.threshold for r in rows)
    verify = synod("job", "verify", str(out))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"verified: {len(accepted)} rows of job(s) {played.job_id}" in " ".join(verify.stdout.split())
