"""Start a throwaway Anvil chain, build and deploy the contracts to it, and always stop it again.

Shared by ``make demo``, ``make bench`` and the pytest fixtures::

    with local_devnet(ROOT) as net:
        chain = SynodContracts.connect(net.settings, ROOT)

Every forge invocation holds ``/tmp/synod-forge.lock`` so concurrent builds never collide. The
deployment JSON goes to a private file under ``deployments/`` (the only directory the deploy
script may write) that is removed on exit, so parallel runs never share one.

The second half scripts the participants (Anvil dev accounts: nodes 1..3, validators 4..6,
requester 7): :func:`fund_and_register` sets them up and :func:`run_batch` carries one posted batch
through commit, reveal, the committee draw, the committee's scores, settlement and the claims.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from web3.types import RPCEndpoint

from protocol.canonical import digest, keccak256
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market, Settlement, events, model_id
from protocol.chain.models import (
    BatchRefunded,
    BatchSettled,
    CommitteeDrawn,
    DrawnValidators,
    MisconductSlashed,
    Phase,
    Role,
    SlashReason,
)
from protocol.chain.registry import Registry
from protocol.chain.sender import Receipt, TxSender
from protocol.chain.signer import ANVIL_MNEMONIC, anvil_dev_signer
from protocol.commitments import encode_scores, new_salt
from protocol.errors import SynodError
from protocol.log import get_logger
from protocol.settings import DEVNET_CHAIN_ID, ChainSettings
from protocol.types import BatchId

log = get_logger(__name__)

ROOT = Path(__file__).resolve().parents[1]
"""The project directory (forge, artifacts and deployments are relative to it)."""

FORGE_LOCK = "/tmp/synod-forge.lock"


class DevnetError(SynodError):
    """Anvil did not start, or the build or the deployment failed (with the tool's output)."""


@dataclass(frozen=True)
class Devnet:
    """A running Anvil chain with the contracts deployed."""

    rpc_url: str
    deployments_file: Path
    settings: ChainSettings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (Anvil's bind is retried on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin(root: Path, tool: str) -> str:
    path = root / "node_modules" / ".bin" / tool
    if not path.exists():
        raise DevnetError(f"{path} is missing: run `make setup`")
    return str(path)


def _wait_ready(process: subprocess.Popen[bytes], rpc_url: str, timeout: float) -> bool:
    """Poll ``eth_chainId`` until Anvil answers; False if it exited (a port clash) first."""
    deadline = time.monotonic() + timeout
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                reply = client.post(rpc_url, json=body)
                if reply.status_code == 200 and int(reply.json()["result"], 16) == DEVNET_CHAIN_ID:
                    return True
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.05)  # polling interval, not a wait for a fixed event
    raise DevnetError(f"anvil did not answer on {rpc_url} within {timeout}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def anvil(root: Path = ROOT, timeout: float = 30.0, attempts: int = 3) -> Iterator[str]:
    """Run Anvil on a free port of 127.0.0.1; yields its RPC URL; always kills it."""
    for _ in range(attempts):
        port = free_port()
        rpc_url = f"http://127.0.0.1:{port}"
        cmd = [_bin(root, "anvil"), "--host", "127.0.0.1", "--port", str(port), "--chain-id", "31337"]
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
            try:
                if not _wait_ready(process, rpc_url, timeout):
                    stderr.seek(0)
                    log.warning(
                        "anvil_start_retry", port=port, stderr=stderr.read()[-500:].decode(errors="replace")
                    )
                    continue
                log.info("anvil_started", rpc_url=rpc_url, pid=process.pid)
                yield rpc_url
                return
            finally:
                _stop(process)
    raise DevnetError(f"anvil failed to start after {attempts} attempts")


def _run_locked(root: Path, args: list[str], env: Mapping[str, str], what: str) -> str:
    cmd = ["flock", FORGE_LOCK, _bin(root, "forge"), *args]
    result = subprocess.run(cmd, cwd=root, env=dict(env), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DevnetError(
            f"{what} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result.stdout


def forge_build(root: Path = ROOT) -> None:
    """``forge build`` under the shared lock (a no-op when nothing changed)."""
    env = {**os.environ, "FOUNDRY_DISABLE_NIGHTLY_WARNING": "1"}
    _run_locked(root, ["build"], env, "forge build")


def dev_private_key_hex(index: int) -> str:
    """Anvil's well-known dev key ``index`` as hex, for forge's ``--private-key`` (devnet only)."""
    seed = seed_from_mnemonic(ANVIL_MNEMONIC, "")
    return "0x" + key_from_seed(seed, f"m/44'/60'/0'/0/{index}").hex()


def deploy(root: Path, rpc_url: str, deployments_file: Path, params: Mapping[str, str] | None = None) -> None:
    """Run ``scripts/Deploy.s.sol`` against ``rpc_url``; it writes ``deployments_file``.

    ``params`` are the deploy script's env settings (``SYNOD_MIN_NODE_STAKE`` ...).
    """
    env = {
        **os.environ,
        **(params or {}),
        "FOUNDRY_DISABLE_NIGHTLY_WARNING": "1",
        "SYNOD_DEPLOYMENTS_FILE": str(deployments_file),
    }
    args = ["script", "scripts/Deploy.s.sol", "--rpc-url", rpc_url, "--broadcast"]
    args += ["--private-key", dev_private_key_hex(0)]
    _run_locked(root, args, env, "forge script scripts/Deploy.s.sol")
    if not deployments_file.exists():
        raise DevnetError(f"the deploy script did not write {deployments_file}")
    log.info("deployed", rpc_url=rpc_url, deployments_file=str(deployments_file))


@contextmanager
def local_devnet(
    root: Path = ROOT, params: Mapping[str, str] | None = None, build: bool = True
) -> Iterator[Devnet]:
    """Anvil + build + deploy; yields the :class:`Devnet`; stops Anvil and removes the file after."""
    if build:
        forge_build(root)
    deployments_file = root / "deployments" / f".run-{os.getpid()}-{secrets.token_hex(4)}.json"
    try:
        with anvil(root) as rpc_url:
            deploy(root, rpc_url, deployments_file, params)
            settings = ChainSettings(rpc_url=rpc_url, deployments_file=deployments_file, receipt_timeout=30.0)
            yield Devnet(rpc_url=rpc_url, deployments_file=deployments_file, settings=settings)
    finally:
        deployments_file.unlink(missing_ok=True)


# ---------------------------------------------------------------------- scripted participants

REQUESTER_INDEX = 7
NODE_INDICES = (1, 2, 3)
VALIDATOR_INDICES = (4, 5, 6)
DEMO_MODEL = "gemma3:270m"
MAX_UINT256 = 2**256 - 1


@dataclass(frozen=True)
class Actors:
    """Anvil dev accounts 1..3 as nodes, 4..6 as validators, 7 as the requester, registered and funded."""

    requester: TxSender
    nodes: tuple[TxSender, ...]
    validators: tuple[TxSender, ...]

    def name_of(self, address: str) -> str:
        """``node1``.., ``validator1``.., ``requester``, or the address itself."""
        for i, node in enumerate(self.nodes, 1):
            if node.address == address:
                return f"node{i}"
        for i, validator in enumerate(self.validators, 1):
            if validator.address == address:
                return f"validator{i}"
        return "requester" if address == self.requester.address else address

    def everyone(self) -> tuple[TxSender, ...]:
        """Nodes, validators, then the requester."""
        return (*self.nodes, *self.validators, self.requester)


def fund_and_register(chain: SynodContracts, funds: int = 10**24) -> tuple[Actors, list[Receipt]]:
    """Mint ``funds`` to every actor, register nodes (serving :data:`DEMO_MODEL`) and validators with
    the minimum stake; the requester approves the market and opens its market account once (as a
    real requester would)."""
    registry = Registry(chain)
    block = chain.head(0)
    senders = {i: chain.sender(anvil_dev_signer(i, chain.chain_id)) for i in range(1, 8)}
    receipts: list[Receipt] = []
    for sender in senders.values():
        receipts.append(registry.mint(sender, sender.address, funds))
    model = model_id(DEMO_MODEL)
    for i in NODE_INDICES:
        stake = registry.min_stake(Role.NODE, block)
        p2p = f"/ip4/127.0.0.1/tcp/{4000 + i}".encode()
        receipts += registry.register(senders[i], Role.NODE, stake, [model], p2p)
    for i in VALIDATOR_INDICES:
        stake = registry.min_stake(Role.VALIDATOR, block)
        p2p = f"/ip4/127.0.0.1/tcp/{4000 + i}".encode()
        receipts += registry.register(senders[i], Role.VALIDATOR, stake, [], p2p)
    requester = senders[REQUESTER_INDEX]
    approve = chain.token.functions.approve(chain.market.address, MAX_UINT256)
    receipts.append(requester.transact(approve, label="approve"))
    # registration opened the participants' market accounts; the requester opens its own (refunds)
    receipts.append(Market(chain).open_account(requester, requester.address))
    actors = Actors(
        requester=requester,
        nodes=tuple(senders[i] for i in NODE_INDICES),
        validators=tuple(senders[i] for i in VALIDATOR_INDICES),
    )
    return actors, receipts


def advance_past(chain: SynodContracts, deadline: int) -> None:
    """Mine a block with a timestamp just past ``deadline`` (Anvil time travel)."""
    chain.w3.provider.make_request(RPCEndpoint("evm_setNextBlockTimestamp"), [deadline + 1])
    chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])


def mine_to(chain: SynodContracts, number: int) -> None:
    """Mine empty blocks until the head is at least block ``number`` (Anvil)."""
    missing = number - int(chain.w3.eth.block_number)
    if missing > 0:
        chain.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(missing)])


@dataclass(frozen=True)
class Step:
    """One transaction of a lifecycle: who sent it and what it cost."""

    actor: str
    receipt: Receipt


@dataclass(frozen=True)
class BatchReport:
    """What happened to one batch, read from the events of its transactions."""

    batch_id: BatchId
    rows: int
    steps: tuple[Step, ...]
    seats: tuple[str, ...]
    """Node names by node seat (commit order)."""
    digests: tuple[tuple[bytes, ...], ...]
    """The digests each node seat committed to, by seat."""
    revealed: tuple[int, ...]
    """Node seats that revealed."""
    committees: tuple[tuple[str, ...], ...]
    """Validator names by committee seat, one tuple per scoring round."""
    weights: tuple[tuple[int, ...], ...]
    """Their weights (stakes at the draw), per round."""
    vectors: tuple[dict[int, bytes], ...]
    """Revealed score vectors by committee seat, per round."""
    settlement: Settlement | None
    """The final settle call (settled or refunded), when the batch ended by ``settle``."""
    refunded: BatchRefunded | None
    slashed: tuple[tuple[str, SlashReason, int], ...]
    claims: tuple[tuple[str, int], ...]

    @property
    def gas(self) -> int:
        """Sum of ``gasUsed`` over every step."""
        return sum(step.receipt.gas_used for step in self.steps)

    @property
    def settled(self) -> BatchSettled | None:
        """The ``BatchSettled`` event, if the batch was settled."""
        return self.settlement.settled if self.settlement else None


ScoreFn = Callable[[int, int, Sequence[Sequence[Any] | None]], list[list[int]]]
"""(round, committee seat, results by node seat with ``None`` for a seat that did not reveal) ->
scores[node seat][row], one list per node seat (any 0..100 values for unrevealed seats: the contract
ignores them)."""


def run_batch(
    chain: SynodContracts,
    actors: Actors,
    batch_id: BatchId,
    results: Sequence[Sequence[Any]],
    score: ScoreFn,
    withhold: frozenset[int] = frozenset(),
    silent: frozenset[tuple[int, int]] = frozenset(),
    claim: bool = True,
    salt_seed: bytes | None = None,
) -> BatchReport:
    """Carry posted batch ``batch_id`` to its end, playing every participant.

    Node i commits ``results[i]`` (one result per row of the batch) and reveals unless i is in
    ``withhold``; the drawn committee scores with ``score``, except committee seats ``(round, seat)``
    in ``silent``, which commit but never reveal; deadlines are passed with Anvil time travel when a
    phase cannot close early; then ``settle`` (again after a re-scoring round) and, if ``claim``,
    every actor with a balance claims. Salts come from ``salt_seed`` when given (reproducible gas).
    """
    market = Market(chain)
    steps: list[Step] = []

    def salt(*parts: object) -> bytes:
        if salt_seed is None:
            return new_salt()
        return keccak256(salt_seed + repr(parts).encode())

    def record(actor: TxSender, receipt: Receipt) -> Receipt:
        steps.append(Step(actors.name_of(actor.address), receipt))
        return receipt

    def pass_deadline(expected: Phase) -> None:
        now = market.phase(batch_id, chain.head(0))
        if now.phase is expected:
            advance_past(chain, now.deadline)

    rows = market.batch(batch_id, chain.head(0)).rows
    committed: list[tuple[TxSender, int, list[bytes], bytes]] = []
    for node, node_results in zip(actors.nodes, results, strict=False):
        if len(node_results) != rows:
            raise ValueError(f"batch {batch_id} has {rows} rows, {len(node_results)} results given")
        node_digests: list[bytes] = [digest(r) for r in node_results]
        node_salt = salt("result", batch_id, node.address)
        seat, receipt = market.commit_result(node, batch_id, node_digests, node_salt)
        record(node, receipt)
        committed.append((node, seat, node_digests, node_salt))
    pass_deadline(Phase.COMMITTING)  # fewer than k commits: commits close at the deadline
    revealed_results: dict[int, Sequence[Any]] = {}
    for i, (node, seat, node_digests, node_salt) in enumerate(committed):
        if i not in withhold:
            record(node, market.reveal_result(node, batch_id, seat, node_digests, node_salt))
            revealed_results[seat] = results[i]
    pass_deadline(Phase.REVEALING)  # a withheld reveal: reveals close at the deadline

    by_address = {v.address: v for v in actors.validators}
    committees: list[tuple[str, ...]] = []
    weights: list[tuple[int, ...]] = []
    vectors: list[dict[int, bytes]] = []
    settlement: Settlement | None = None
    refunded: BatchRefunded | None = None
    for round_ in range(2):
        if market.phase(batch_id, chain.head(0)).phase is not Phase.DRAWING:
            break
        drawn: CommitteeDrawn | None = None
        preview: DrawnValidators | None = None
        while drawn is None:
            view = market.batch(batch_id, chain.head(0))
            if view.seed_block != 0:
                mine_to(chain, view.seed_block + 1)  # gas estimation runs against the latest block
                ahead = market.committee_preview(batch_id, chain.head(0))
                if ahead.validators:
                    preview = ahead  # no draw transaction: the first score commit draws this committee
                    break
            drawn, receipt = market.draw_committee(actors.requester, batch_id)
            record(actors.requester, receipt)
            refunds = events(chain, receipt, BatchRefunded)
            if refunds:
                refunded = refunds[0]
                break
        seating = drawn if drawn is not None else preview
        if seating is None:
            break
        seated = [by_address[a] for a in seating.validators]
        committees.append(tuple(actors.name_of(v.address) for v in seated))
        weights.append(tuple(seating.weights))
        by_seat = [revealed_results.get(seat) for seat in range(len(committed))]
        matrices = [score(round_, seat, by_seat) for seat in range(len(seated))]
        scores = [encode_scores(m, rows) for m in matrices]
        salts = [salt("scores", batch_id, round_, seat) for seat in range(len(seated))]
        for seat, validator in enumerate(seated):
            receipt = market.commit_scores(validator, batch_id, seat, scores[seat], salts[seat])
            record(validator, receipt)
            if seat == 0 and drawn is None:
                folded = events(chain, receipt, CommitteeDrawn)
                if not folded or tuple(folded[0].validators) != tuple(seating.validators):
                    raise DevnetError(f"batch {batch_id}: the first score commit drew another committee")
        round_vectors: dict[int, bytes] = {}
        revealing = [seat for seat in range(len(seated)) if (round_, seat) not in silent]
        settlement = None
        for seat in revealing:
            validator = seated[seat]
            round_vectors[seat] = scores[seat]
            if seat == revealing[-1] and len(revealing) == len(seated):
                # The last reveal settles in the same transaction (revealScoresAndSettle).
                ordered = [round_vectors[s] for s in sorted(round_vectors)]
                settlement = market.reveal_scores_and_settle(
                    validator, batch_id, seat, scores[seat], salts[seat], ordered
                )
                record(validator, settlement.receipt)
            else:
                record(validator, market.reveal_scores(validator, batch_id, seat, scores[seat], salts[seat]))
        vectors.append(round_vectors)
        if settlement is None:
            view = market.batch(batch_id, chain.head(0))
            if view.score_reveal_mask != view.score_commit_mask:  # a silent seat: settle after the deadline
                pass_deadline(Phase.SCORE_REVEALING)
            ordered = market.settle_vectors(batch_id, round_vectors, chain.head(0))
            settlement = market.settle(actors.requester, batch_id, ordered)
            record(actors.requester, settlement.receipt)
        if settlement.rescoring is None:
            break
    if settlement is None and refunded is None:
        # refunded without a committee (no reveal, no draw in time): settle after the deadline
        now = market.phase(batch_id, chain.head(0))
        if now.phase not in (Phase.SETTLED, Phase.REFUNDED):
            advance_past(chain, now.deadline)
            settlement = market.settle(actors.requester, batch_id, [])
            record(actors.requester, settlement.receipt)
    if settlement is not None and settlement.refunded is not None:
        refunded = settlement.refunded
    slashed = tuple(
        (actors.name_of(e.account), e.reason, e.amount)
        for s in steps
        for e in events(chain, s.receipt, MisconductSlashed)
    )
    claims = claim_all(chain, actors, record) if claim else []
    return BatchReport(
        batch_id=batch_id,
        rows=rows,
        steps=tuple(steps),
        seats=tuple(actors.name_of(node.address) for node, *_ in committed),
        digests=tuple(tuple(d) for _, _, d, _ in committed),
        revealed=tuple(sorted(revealed_results)),
        committees=tuple(committees),
        weights=tuple(weights),
        vectors=tuple(vectors),
        settlement=settlement,
        refunded=refunded,
        slashed=slashed,
        claims=tuple(claims),
    )


def claim_all(
    chain: SynodContracts, actors: Actors, record: Callable[[TxSender, Receipt], Receipt] | None = None
) -> list[tuple[str, int]]:
    """Every actor with a market balance claims it; returns (name, amount) in actor order."""
    market = Market(chain)
    block = chain.head(0)
    claims: list[tuple[str, int]] = []
    for actor in actors.everyone():
        if market.balance_of(actor.address, block) > 0:
            amount, receipt = market.claim(actor)
            if record is not None:
                record(actor, receipt)
            claims.append((actors.name_of(actor.address), amount))
    return claims


__all__ = [
    "DEMO_MODEL",
    "FORGE_LOCK",
    "MAX_UINT256",
    "NODE_INDICES",
    "REQUESTER_INDEX",
    "ROOT",
    "VALIDATOR_INDICES",
    "Actors",
    "BatchReport",
    "Devnet",
    "DevnetError",
    "ScoreFn",
    "Step",
    "advance_past",
    "anvil",
    "claim_all",
    "deploy",
    "dev_private_key_hex",
    "forge_build",
    "free_port",
    "fund_and_register",
    "local_devnet",
    "mine_to",
    "run_batch",
]
