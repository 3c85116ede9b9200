"""Scripted participants of the adversary suite: honest and dishonest nodes and validators.

Every actor works only from what it could see in reality: chain views and events (read over the
contracts facade), and result bytes fetched over real libp2p from the address each node registered
on chain. The chain calls are synchronous web3, run through ``trio.to_thread.run_sync`` so the libp2p
hosts of the same process keep serving meanwhile.

Nodes (:class:`NodeBehaviour`): an honest node serves real result envelopes
(:mod:`protocol.envelope`); a copier commits another node's commitment as its own; a garbage node
reveals (and serves) bytes that are no result envelope; an off-topic node serves well-formed
envelopes of answers about something else; a withholder reveals honest-looking digests
but its host answers ``not_found``; a silent node commits and never reveals.

Validators (:class:`ValidatorBehaviour`): the honest ones are the real validator daemon
(``synod oracle run``, started by :mod:`tests.adversary.daemons`; the script only waits for it); the
scripted ones score everything 100, try to copy another member's score vector (after it is revealed,
or by copying its commitment), or score with a fixed rubric (:func:`judge`: fetch every revealed
result over libp2p, check it against its digest, the job and the row), commit and never reveal.

:func:`run_batch` carries one posted batch through its whole lifecycle with these actors; the caller
computes what the batch must pay from the rules and compares. Its steps (:func:`learn_batch`,
:func:`commit_node`, :func:`reveal_node`, :func:`commit_member`, :func:`reveal_member`) are public so
that a devnet test (tests/e2e/test_devnet_adversaries.py) can drive the same actors beside real daemons.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from protocol.canonical import Digest, canonical_bytes, keccak256
from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ChainError, ContractRevert
from protocol.chain.market import Market
from protocol.chain.models import (
    BatchPosted,
    BatchRefunded,
    BatchRescoring,
    BatchSettled,
    CommitteeDrawn,
    EventModel,
    JobParams,
    JobPosted,
    MisconductSlashed,
    Phase,
    ResultCommitted,
    ResultRevealed,
    ScoresCommitted,
    ScoresRevealed,
)
from protocol.chain.sender import TxSender
from protocol.chain.signer import Signer
from protocol.commitments import encode_scores, new_salt, score_commitment
from protocol.envelope import EnvelopeError, ResultEnvelope, success
from protocol.log import get_logger
from protocol.p2p import FetchLimits, P2pError, P2pHost, P2pSettings, open_p2p_host
from protocol.types import BatchId
from scripts.devnet import DEMO_MODEL, advance_past, mine_to

log = get_logger(__name__)

T = TypeVar("T")
E = TypeVar("E", bound=EventModel)

HONEST_SCORE = 90
"""What the scripted rubric (:func:`judge`) gives a good result (minus the member's ``bias``)."""
FETCH_DEADLINE = 10.0
"""Seconds a scripted member allows one fetch (dial, request, answer)."""


class NodeBehaviour(enum.Enum):
    """What a scripted node does with its seat."""

    HONEST = "honest"
    COPY_COMMITMENT = "copies the first commitment it sees on chain"
    GARBAGE = "reveals and serves bytes that are no result envelope"
    OFF_TOPIC = "reveals and serves well-formed envelopes of answers to another question"
    NO_SERVE = "reveals, then never serves the bytes"
    NO_REVEAL = "commits, never reveals"


class ValidatorBehaviour(enum.Enum):
    """What a scripted committee member does with its seat."""

    DAEMON = "the real validator daemon, synod oracle run, in its own process"
    ALL_100 = "scores everything 100"
    COPY_REVEALED = "waits for the first revealed score vector and commits a copy"
    COPY_COMMITMENT = "commits the first score commitment it sees, reveals that member's vector"
    NO_REVEAL = "commits, never reveals"


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a synchronous chain call in a worker thread (the trio loop keeps serving libp2p)."""
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def batch_events(chain: SynodContracts, model: type[E], batch_id: int, from_block: int) -> list[E]:
    """Every ``model`` event of ``batch_id`` from ``from_block`` to the head, in chain order."""
    event = getattr(chain.market.events, model.EVENT)
    logs = event.get_logs(from_block=from_block, argument_filters={"batchId": batch_id})
    ordered = sorted(logs, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
    return [model.from_abi(entry["args"]) for entry in ordered]


def judge(
    data: bytes | None, digest: bytes, workflow_hash: bytes, row: bytes, bias: int = 0
) -> tuple[int, str]:
    """The scripted rubric's score for one fetched result, and why.

    0 when nothing was served, the bytes do not hash to the revealed ``digest``, are no canonical
    envelope, are for another job or row, record a failure, or hold an empty output; otherwise
    :data:`HONEST_SCORE` - ``bias``. (The real daemon runs the whole scoring pipeline instead.)
    """
    if data is None:
        return 0, "not served"
    try:
        envelope = ResultEnvelope.from_bytes(data, expect_digest=digest)
    except EnvelopeError as exc:
        return 0, f"bad envelope: {exc}"
    if envelope.workflow != "0x" + workflow_hash.hex() or envelope.input != "0x" + keccak256(row).hex():
        return 0, "envelope of another job or row"
    if not envelope.ok or not envelope.output.strip():
        return 0, "failure or empty output"
    return HONEST_SCORE - bias, "good"


@dataclass
class NodeActor:
    """A scripted node: its account, behaviour, the bytes it serves and what it did."""

    name: str
    sender: TxSender
    behaviour: NodeBehaviour
    answers: Sequence[str] = ()
    """The workflow's output per row (an honest node's answers)."""
    served: dict[bytes, bytes] = field(default_factory=dict)
    seat: int | None = None
    digests: list[bytes] = field(default_factory=list)
    salt: bytes = b""
    revealed: bool = False
    reveal_refused: ContractRevert | None = None
    copied: str | None = None
    """For a copier: the node whose commitment it copied."""
    host: P2pHost | None = None

    def results(self, workflow_hash: bytes, rows: Sequence[bytes]) -> list[bytes]:
        """The bytes this node commits to, one per row (garbage for a garbage node)."""
        if self.behaviour is NodeBehaviour.GARBAGE:
            return [b"\xff\xfe garbage from " + self.name.encode() + bytes([r]) for r in range(len(rows))]
        return [
            success(workflow_hash=workflow_hash, row=row, model=DEMO_MODEL, output=answer).to_bytes()
            for row, answer in zip(rows, self.answers, strict=True)
        ]

    async def lookup(self, digest: Digest) -> bytes | None:
        """The p2p server's lookup: nothing at all for a node that does not serve."""
        if self.behaviour is NodeBehaviour.NO_SERVE:
            return None
        return self.served.get(bytes(digest))


@dataclass
class ValidatorActor:
    """A scripted committee member: its account, behaviour and what it did."""

    name: str
    sender: TxSender
    behaviour: ValidatorBehaviour
    bias: int = 0
    """Subtracted from :data:`HONEST_SCORE` (honest members differ a little)."""
    host: P2pHost | None = None
    fetch_deadline: float = FETCH_DEADLINE
    """Seconds this member allows one fetch."""
    signer: Signer | None = None
    """Signs this member's fetches (a node daemon serves only signed requests of its committee)."""
    seat: int | None = None
    vector: bytes | None = None
    """The vector this member committed to (``None``: it never committed)."""
    salt: bytes = b""
    revealed: bool = False
    reasons: dict[tuple[int, int], str] = field(default_factory=dict)
    """Why the honest rubric gave each (node seat, row) its score."""
    seen_at_commit: int = -1
    """For a copier: how many score vectors were public when it had to commit."""
    refused: list[ContractRevert] = field(default_factory=list)
    """The copier's transactions the contract refused."""


@dataclass
class BatchRun:
    """What happened to one batch, as the actors saw it."""

    batch_id: BatchId
    post_block: int
    rows: list[bytes]
    workflow_hash: bytes
    nodes: list[NodeActor]
    """By node seat (commit order)."""
    committee: list[ValidatorActor]
    """By committee seat."""
    weights: list[int]
    settlement: Ending
    vectors: dict[int, bytes]
    """Revealed score vectors by committee seat (read back from the chain's events)."""

    @property
    def revealed_seats(self) -> list[int]:
        return [s for s, n in enumerate(self.nodes) if n.revealed]


async def _fetch_all(
    chain: SynodContracts, me: ValidatorActor, run_rows: list[bytes], batch_id: int, post_block: int
) -> dict[tuple[int, int], bytes | None]:
    """Fetch every revealed result of the batch over p2p, each within :data:`FETCH_DEADLINE`."""
    assert me.host is not None
    host = me.host
    reveals = await call(batch_events, chain, ResultRevealed, batch_id, post_block)
    head = await call(chain.head, 0)
    fetched: dict[tuple[int, int], bytes | None] = {}
    limits = FetchLimits(deadline=me.fetch_deadline, max_size=1024 * 1024)

    async def one(seat: int, row: int, address: str, digest: bytes) -> None:
        try:
            fetched[(seat, row)] = await host.fetch(address, digest, limits, signer=me.signer)
        except P2pError:
            fetched[(seat, row)] = None

    async with trio.open_nursery() as nursery:
        for reveal in reveals:
            raw = await call(chain.read, chain.registry.functions.p2pAddressOf(reveal.node), head)
            address = bytes(raw).decode()
            for row, digest in enumerate(reveal.digests[: len(run_rows)]):
                nursery.start_soon(one, reveal.seat, row, address, bytes(digest))
    return fetched


async def _honest_vector(
    chain: SynodContracts,
    me: ValidatorActor,
    rows: list[bytes],
    workflow_hash: bytes,
    batch_id: int,
    post_block: int,
    commit_count: int,
) -> bytes:
    fetched = await _fetch_all(chain, me, rows, batch_id, post_block)
    reveals = {r.seat: r for r in await call(batch_events, chain, ResultRevealed, batch_id, post_block)}
    matrix = [[0] * len(rows) for _ in range(commit_count)]
    for seat, reveal in reveals.items():
        for row, digest in enumerate(reveal.digests):
            score, why = judge(fetched.get((seat, row)), bytes(digest), workflow_hash, rows[row], me.bias)
            matrix[seat][row] = score
            me.reasons[(seat, row)] = why
    return encode_scores(matrix, len(rows))


@dataclass(frozen=True)
class Ending:
    """How the batch ended, read from the chain's events (whoever sent the settle)."""

    settled: BatchSettled | None
    refunded: BatchRefunded | None
    rescoring: tuple[BatchRescoring, ...]
    slashed: tuple[MisconductSlashed, ...]


async def until(
    what: str, check: Callable[[], bool], alive: Callable[[], None], limit: float = 120.0
) -> None:
    """Poll ``check`` (in a thread) until true; ``alive`` raises if a daemon died meanwhile."""
    with trio.fail_after(limit):
        while not await call(check):
            alive()
            await trio.sleep(0.2)  # polling interval of the chain state, not a wait for an event
    log.debug("adversary_waited", what=what)


async def run_batch(
    chain: SynodContracts,
    requester: TxSender,
    nodes: Sequence[NodeActor],
    validators: Sequence[ValidatorActor],
    params: JobParams,
    workflow: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    tmp_path: Path,
    alive: Callable[[], None] = lambda: None,
) -> BatchRun:
    """Post ``rows`` as one batch and play every scripted actor through commit, reveal, the draw,
    the scores and settlement, side by side with the real daemons (:attr:`ValidatorBehaviour.DAEMON`
    members act on their own; the script waits for them). Deadlines are passed with Anvil time
    travel where a phase cannot close early; the draw and the settlement are sent by whoever comes
    first (daemons or the requester here).

    Nodes commit in the order given (copiers after the others, when there is something to copy);
    dishonest members act after the others. ``alive`` raises when a daemon has died. Returns the
    :class:`BatchRun`; claims are left to the caller.
    """
    market = Market(chain)
    async with AsyncExitStack() as stack:
        scripted: list[NodeActor | ValidatorActor] = [
            *nodes,
            *(v for v in validators if v.behaviour is not ValidatorBehaviour.DAEMON),
        ]
        for actor in scripted:
            settings = P2pSettings(identity_file=tmp_path / f"{actor.name}.key", fetch_timeout=FETCH_DEADLINE)
            lookup = actor.lookup if isinstance(actor, NodeActor) else None
            actor.host = await stack.enter_async_context(open_p2p_host(settings, lookup=lookup))
            # what a real participant does once its host listens: publish the address on chain
            fn = chain.registry.functions.setP2pAddress(actor.host.multiaddr.encode())
            await call(actor.sender.transact, fn, label="setP2pAddress")
        return await _lifecycle(chain, market, requester, nodes, validators, params, workflow, rows, alive)


@dataclass(frozen=True)
class PostedBatch:
    """What every actor learns of one posted batch from the chain alone."""

    chain: SynodContracts
    batch_id: BatchId
    post_block: int
    rows: list[bytes]
    """The rows' canonical bytes (the ``BatchPosted`` event)."""
    workflow_hash: bytes
    """The job's workflow hash (of the ``JobPosted`` workflow bytes; bound in the batch's input hash)."""


def _job_workflow(chain: SynodContracts, job_id: int, block: int) -> bytes:
    """The workflow bytes of job ``job_id``'s ``JobPosted`` (emitted with its batches, at or after
    ``block``: callers may pass a block from before the post)."""
    logs = chain.market.events.JobPosted.get_logs(
        from_block=block, to_block="latest", argument_filters={"jobId": job_id}
    )
    (posted,) = [p for p in (JobPosted.from_abi(e["args"]) for e in logs) if p.job_id == job_id]
    return bytes(posted.workflow)


async def learn_batch(chain: SynodContracts, batch_id: BatchId, post_block: int) -> PostedBatch:
    """Read batch ``batch_id`` (posted in block ``post_block``) as a node would: its rows from the
    ``BatchPosted`` event, the workflow hash from its job's ``JobPosted``."""
    (event,) = await call(batch_events, chain, BatchPosted, batch_id, post_block)
    workflow = await call(_job_workflow, chain, event.job_id, post_block)
    return PostedBatch(
        chain, batch_id, post_block, [bytes(r) for r in event.rows], bytes(keccak256(workflow))
    )


async def commit_node(batch: PostedBatch, node: NodeActor, copy_from: str | None = None) -> None:
    """``node`` takes a seat of ``batch`` (sets ``node.seat``). An honest-looking node commits to its
    own results (and serves them from then on); a copier commits the first commitment on chain (of
    ``copy_from``, when given) as its own. Raises :class:`LookupError` when a copier finds nothing to
    copy, :class:`ContractRevert` when the contract refuses the seat."""
    chain = batch.chain
    if node.behaviour is NodeBehaviour.COPY_COMMITMENT:
        seen = await call(batch_events, chain, ResultCommitted, batch.batch_id, batch.post_block)
        victims = [e for e in seen if copy_from is None or e.node == copy_from]
        if not victims:
            raise LookupError(f"no commitment of {copy_from or 'anyone'} to copy in batch {batch.batch_id}")
        node.copied = victims[0].node
        fn = chain.market.functions.commitResult(batch.batch_id, bytes(victims[0].commitment))
        receipt = await call(node.sender.transact, fn, label="commitResult")
        (mine,) = [
            e
            for e in await call(batch_events, chain, ResultCommitted, batch.batch_id, receipt.block_number)
            if e.node == node.sender.address
        ]
        node.seat = int(mine.seat)
        return
    data = node.results(batch.workflow_hash, batch.rows)
    node.served.update({keccak256(d): d for d in data})
    node.digests = [keccak256(d) for d in data]
    node.salt = new_salt()
    node.seat, _ = await call(
        Market(chain).commit_result, node.sender, batch.batch_id, node.digests, node.salt
    )


async def reveal_node(batch: PostedBatch, node: NodeActor) -> None:
    """``node`` reveals as its behaviour says (a silent node does nothing). A copier reveals the
    digests and salt its victim revealed (the first reveal when it copied nobody in particular);
    the contract's refusal is kept in ``node.reveal_refused``."""
    chain = batch.chain
    assert node.seat is not None
    if node.behaviour is NodeBehaviour.NO_REVEAL:
        return
    if node.behaviour is NodeBehaviour.COPY_COMMITMENT:
        # the copied seat's digests and salt are public now: reveal them as its own
        reveals = await call(batch_events, chain, ResultRevealed, batch.batch_id, batch.post_block)
        victim = next(r for r in reveals if node.copied is None or r.node == node.copied)
        fn = chain.market.functions.revealResult(
            batch.batch_id, node.seat, [bytes(d) for d in victim.digests], bytes(victim.salt)
        )
        try:
            await call(node.sender.transact, fn, label="revealResult")
            node.revealed = True
        except ContractRevert as exc:
            node.reveal_refused = exc
        return
    await call(Market(chain).reveal_result, node.sender, batch.batch_id, node.seat, node.digests, node.salt)
    node.revealed = True


async def commit_member(batch: PostedBatch, member: ValidatorActor, commit_count: int) -> None:
    """Committee member ``member`` (``member.seat`` set) commits its scores as its behaviour says:
    a silent member scores with the rubric (:func:`judge`, fetching over libp2p), the copier of
    revealed vectors commits nothing while none is public (``member.seen_at_commit`` counts them),
    the commitment copier commits the first score commitment on chain. Daemons do nothing here."""
    chain, batch_id, post_block = batch.chain, batch.batch_id, batch.post_block
    assert member.seat is not None
    behaviour = member.behaviour
    if behaviour is ValidatorBehaviour.DAEMON:
        return
    if behaviour is ValidatorBehaviour.NO_REVEAL:
        member.vector = await _honest_vector(
            chain, member, batch.rows, batch.workflow_hash, batch_id, post_block, commit_count
        )
    elif behaviour is ValidatorBehaviour.ALL_100:
        member.vector = bytes([100] * (commit_count * len(batch.rows)))
    elif behaviour is ValidatorBehaviour.COPY_REVEALED:
        public = await call(batch_events, chain, ScoresRevealed, batch_id, post_block)
        member.seen_at_commit = len(public)
        if not public:
            return  # nothing to copy yet: it waits, and the commit window closes
        member.vector = bytes(public[0].scores)
    elif behaviour is ValidatorBehaviour.COPY_COMMITMENT:
        commitments = await call(batch_events, chain, ScoresCommitted, batch_id, post_block)
        member.seen_at_commit = len(await call(batch_events, chain, ScoresRevealed, batch_id, post_block))
        fn = chain.market.functions.commitScores(batch_id, member.seat, bytes(commitments[0].commitment))
        await call(member.sender.transact, fn, label="commitScores")
        return
    assert member.vector is not None
    member.salt = new_salt()
    await call(Market(chain).commit_scores, member.sender, batch_id, member.seat, member.vector, member.salt)


async def reveal_member(batch: PostedBatch, member: ValidatorActor) -> None:
    """Committee member ``member`` reveals as its behaviour says, once some vector is public: the
    copier of revealed vectors now tries to commit a copy (refused: the commit window is closed),
    the commitment copier reveals the copied member's vector and salt (refused: the commitment binds
    its maker); refusals are kept in ``member.refused``. Daemons and silent members do nothing."""
    chain, batch_id, post_block = batch.chain, batch.batch_id, batch.post_block
    assert member.seat is not None
    behaviour = member.behaviour
    if behaviour in (ValidatorBehaviour.NO_REVEAL, ValidatorBehaviour.DAEMON):
        return
    if behaviour is ValidatorBehaviour.COPY_REVEALED and member.vector is None:
        # the first vector is public now: too late, the commit window is closed
        first = (await call(batch_events, chain, ScoresRevealed, batch_id, post_block))[0]
        copy = bytes(first.scores)
        salt = new_salt()
        commitment = score_commitment(batch_id, member.sender.address, copy, salt)
        fn = chain.market.functions.commitScores(batch_id, member.seat, commitment)
        try:
            await call(member.sender.transact, fn, label="commitScores")
            member.vector, member.salt = copy, salt
        except ContractRevert as exc:
            member.refused.append(exc)
            return
    if behaviour is ValidatorBehaviour.COPY_COMMITMENT:
        # reveal the copied member's vector and salt (both public once it revealed)
        first = (await call(batch_events, chain, ScoresRevealed, batch_id, post_block))[0]
        their_salt = await call(_revealed_salt, chain, batch_id, int(first.seat), post_block)
        fn = chain.market.functions.revealScores(batch_id, member.seat, bytes(first.scores), their_salt)
        try:
            await call(member.sender.transact, fn, label="revealScores")
            member.vector, member.revealed = bytes(first.scores), True
        except ContractRevert as exc:
            member.refused.append(exc)
        return
    assert member.vector is not None
    await call(Market(chain).reveal_scores, member.sender, batch_id, member.seat, member.vector, member.salt)
    member.revealed = True


async def read_ending(chain: SynodContracts, batch_id: int, post_block: int) -> Ending:
    """How batch ``batch_id`` ended, from its events."""
    return Ending(
        settled=_one_or_none(await call(batch_events, chain, BatchSettled, batch_id, post_block)),
        refunded=_one_or_none(await call(batch_events, chain, BatchRefunded, batch_id, post_block)),
        rescoring=tuple(await call(batch_events, chain, BatchRescoring, batch_id, post_block)),
        slashed=tuple(await call(batch_events, chain, MisconductSlashed, batch_id, post_block)),
    )


async def draw_when_due(chain: SynodContracts, sender: TxSender, batch_id: int) -> None:
    """Arm and draw the committee of ``batch_id`` from ``sender`` until the batch leaves Drawing
    (anyone may; a race lost to a daemon is a refused simulation or a reverted transaction, and
    is retried while the batch is still Drawing). Mines up to the seed block."""
    market = Market(chain)
    with trio.fail_after(120):
        while (await call(market.phase, batch_id, await call(chain.head, 0))).phase is Phase.DRAWING:
            current = await call(market.batch, batch_id, await call(chain.head, 0))
            if current.seed_block != 0:
                await call(mine_to, chain, current.seed_block + 1)
            try:
                await call(market.draw_committee, sender, batch_id)
            except (ContractRevert, ChainError) as exc:  # refused, or mined after a daemon's draw
                log.debug("adversary_draw_lost", reason=type(exc).__name__)
                await trio.sleep(0.2)


async def settle_when_due(chain: SynodContracts, sender: TxSender, batch_id: int, post_block: int) -> None:
    """Send the settlement of ``batch_id`` from ``sender`` until the batch is Settled (anyone may;
    a lost race with a daemon is a refused simulation, retried)."""
    market = Market(chain)
    with trio.fail_after(120):
        while (await call(market.phase, batch_id, await call(chain.head, 0))).phase is not Phase.SETTLED:
            head = await call(chain.head, 0)
            vectors = await call(market.revealed_score_vectors, batch_id, post_block, head)
            try:
                ordered_vectors = await call(market.settle_vectors, batch_id, vectors, head)
                await call(market.settle, sender, batch_id, ordered_vectors)
            except (ContractRevert, ChainError) as exc:
                log.debug("adversary_settle_lost", reason=type(exc).__name__)
                await trio.sleep(0.2)


async def _lifecycle(
    chain: SynodContracts,
    market: Market,
    requester: TxSender,
    nodes: Sequence[NodeActor],
    validators: Sequence[ValidatorActor],
    params: JobParams,
    workflow: dict[str, Any],
    rows_in: Sequence[dict[str, Any]],
    alive: Callable[[], None],
) -> BatchRun:
    posted = await call(market.post_job, requester, params, workflow, list(rows_in))
    (posted_batch,) = posted.batches
    batch = await learn_batch(chain, posted_batch.batch_id, posted.receipts[-1].block_number)
    batch_id, post_block = batch.batch_id, batch.post_block

    async def phase() -> tuple[Phase, int]:
        now = await call(market.phase, batch_id, await call(chain.head, 0))
        return now.phase, int(now.deadline)

    async def close(expected: Phase) -> None:
        current, deadline = await phase()
        if current is expected:
            await call(advance_past, chain, deadline)

    # ---- commit: honest-looking nodes first, copiers last (they need something to copy)
    ordered = sorted(nodes, key=lambda n: n.behaviour is NodeBehaviour.COPY_COMMITMENT)
    for node in ordered:
        await commit_node(batch, node)
    await close(Phase.COMMITTING)
    by_seat = sorted(nodes, key=lambda n: n.seat if n.seat is not None else 99)

    # ---- reveal
    for node in ordered:
        await reveal_node(batch, node)
    await close(Phase.REVEALING)

    # ---- committee draw: anyone may call it (the daemons do too)
    await draw_when_due(chain, requester, batch_id)
    (drawn,) = await call(batch_events, chain, CommitteeDrawn, batch_id, post_block)
    by_address = {v.sender.address: v for v in validators}
    committee = [by_address[a] for a in drawn.validators]
    for seat, member in enumerate(committee):
        member.seat = seat
    commit_count = len(nodes)
    daemon_mask = sum(1 << s for s, m in enumerate(committee) if m.behaviour is ValidatorBehaviour.DAEMON)

    # ---- score commits: the daemons and honest members first, adversaries as late as they can
    def late(v: ValidatorActor) -> bool:
        return v.behaviour not in (
            ValidatorBehaviour.DAEMON,
            ValidatorBehaviour.NO_REVEAL,
        )

    def daemons_committed() -> bool:
        return market.batch(batch_id, chain.head(0)).score_commit_mask & daemon_mask == daemon_mask

    await until("the daemons' score commits", daemons_committed, alive)
    for member in sorted(committee, key=late):
        await commit_member(batch, member, commit_count)
    await close(Phase.SCORE_COMMITTING)

    # ---- score reveals: the daemons reveal on their own as soon as the phase opens
    def daemons_revealed() -> bool:
        return market.batch(batch_id, chain.head(0)).score_reveal_mask & daemon_mask == daemon_mask

    await until("the daemons' score reveals", daemons_revealed, alive)
    for member in sorted(committee, key=late):
        await reveal_member(batch, member)
    for member in committee:
        if member.behaviour is ValidatorBehaviour.DAEMON:
            member.revealed = True
    await close(Phase.SCORE_REVEALING)

    # ---- settle: anyone (the daemons settle batches they sit in; the requester tries too)
    await settle_when_due(chain, requester, batch_id, post_block)
    head = await call(chain.head, 0)
    vectors = await call(market.revealed_score_vectors, batch_id, post_block, head)
    return BatchRun(
        batch_id=batch_id,
        post_block=post_block,
        rows=batch.rows,
        workflow_hash=batch.workflow_hash,
        nodes=by_seat,
        committee=committee,
        weights=[int(w) for w in drawn.weights],
        settlement=await read_ending(chain, batch_id, post_block),
        vectors=dict(vectors),
    )


def _one_or_none(found: Sequence[E]) -> E | None:
    if len(found) > 1:
        raise AssertionError(f"{len(found)} {type(found[0]).__name__} events for one batch")
    return found[0] if found else None


def _revealed_salt(chain: SynodContracts, batch_id: int, seat: int, from_block: int) -> bytes:
    """The salt committee ``seat`` revealed with (read from its ``revealScores`` calldata)."""
    logs = chain.market.events.ScoresRevealed.get_logs(
        from_block=from_block, argument_filters={"batchId": batch_id}
    )
    for entry in logs:
        if int(entry["args"]["seat"]) == seat:
            tx = chain.w3.eth.get_transaction(entry["transactionHash"])
            _fn, args = chain.market.decode_function_input(tx["input"])
            return bytes(args["salt"])
    raise LookupError(f"seat {seat} of batch {batch_id} revealed nothing")


def row_bytes(rows: Sequence[dict[str, Any]]) -> list[bytes]:
    """The canonical bytes of ``rows`` (what the chain's events carry)."""
    return [canonical_bytes(r) for r in rows]
