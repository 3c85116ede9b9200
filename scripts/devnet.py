"""Start a throwaway Anvil chain, build and deploy the contracts to it, and always stop it again.

Shared by ``make demo``, ``make bench`` and the pytest fixtures::

    with local_devnet(ROOT) as net:
        chain = SynodContracts.connect(net.settings, ROOT)

Every forge invocation holds ``/tmp/synod-forge.lock`` so concurrent builds never collide. The
deployment JSON goes to a private file under ``deployments/`` (the only directory the deploy
script may write) that is removed on exit, so parallel runs never share one.

The second half scripts the participants (Anvil dev accounts: nodes 1..3, validators 4..6,
requester 7): :func:`fund_and_register` sets them up and :func:`run_task` carries one posted task
through commit, reveal, the committee's scores, settlement and the claims.
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
from protocol.chain.market import Market, events, model_id
from protocol.chain.registry import Registry, Role
from protocol.chain.sender import Receipt, TxSender
from protocol.chain.signer import ANVIL_MNEMONIC, anvil_dev_signer
from protocol.commitments import new_salt
from protocol.errors import SynodError
from protocol.log import get_logger
from protocol.settings import DEVNET_CHAIN_ID, ChainSettings
from protocol.types import TaskId

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
        for i, node in enumerate(self.nodes, 1):
            if node.address == address:
                return f"node{i}"
        for i, validator in enumerate(self.validators, 1):
            if validator.address == address:
                return f"validator{i}"
        return "requester" if address == self.requester.address else address


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
    opened = chain.market.functions.openAccount(requester.address)
    receipts.append(requester.transact(opened, label="openAccount"))
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


@dataclass(frozen=True)
class Step:
    """One transaction of a lifecycle: who sent it and what it cost."""

    actor: str
    receipt: Receipt


@dataclass(frozen=True)
class LifecycleReport:
    """What happened to one task, read from the events of its transactions."""

    task_id: TaskId
    steps: tuple[Step, ...]
    revealed: tuple[tuple[str, bytes], ...]
    """(node, result digest) in reveal order: the order validators score in."""
    committee: tuple[str, ...]
    scores: tuple[tuple[str, tuple[int, ...]], ...]
    finalized: dict[str, Any] | None
    refunded: dict[str, Any] | None
    slashed: tuple[tuple[str, int], ...]
    claims: tuple[tuple[str, int], ...]

    @property
    def gas(self) -> int:
        return sum(step.receipt.gas_used for step in self.steps)


ScoreFn = Callable[[int, Sequence[Any]], list[int]]
"""(validator seat, revealed results in reveal order) -> one score 0..100 per result."""


def run_task(
    chain: SynodContracts,
    actors: Actors,
    task_id: TaskId,
    results: Sequence[Any],
    score: ScoreFn,
    withhold: frozenset[int] = frozenset(),
    claim: bool = True,
    salt_seed: bytes | None = None,
) -> LifecycleReport:
    """Carry posted task ``task_id`` to its end: node i commits ``results[i]`` and reveals it unless
    i is in ``withhold``; the drawn committee scores with ``score``; then everyone with a balance
    claims (if ``claim``). Salts come from ``salt_seed`` when given (reproducible gas), else random."""
    market = Market(chain)
    steps: list[Step] = []

    def salt(*parts: object) -> bytes:
        if salt_seed is None:
            return new_salt()
        return keccak256(salt_seed + repr(parts).encode())

    def record(actor: TxSender, receipt: Receipt) -> Receipt:
        steps.append(Step(actors.name_of(actor.address), receipt))
        return receipt

    committed: list[tuple[TxSender, int, bytes, bytes, Any]] = []
    for node, result in zip(actors.nodes, results, strict=False):
        result_digest: bytes = digest(result)
        result_salt = salt("result", task_id, node.address)
        slot, receipt = market.commit_result(node, task_id, result_digest, result_salt)
        record(node, receipt)
        committed.append((node, slot, result_digest, result_salt, result))
    revealed: list[tuple[str, bytes]] = []
    revealed_results: list[Any] = []
    last: Receipt | None = None
    for i, (node, slot, result_digest, result_salt, result) in enumerate(committed):
        if i in withhold:
            continue
        last = record(node, market.reveal_result(node, task_id, slot, result_digest, result_salt))
        revealed.append((actors.name_of(node.address), result_digest))
        revealed_results.append(result)
    drawn = [e for s in steps for e in events(chain, s.receipt, "CommitteeDrawn")]
    if not drawn:
        _, deadline = market.phase(task_id, chain.head(0))
        advance_past(chain, deadline)
        last = record(actors.requester, market.draw_committee(actors.requester, task_id))
        drawn = events(chain, last, "CommitteeDrawn")
    seats: list[str] = []
    scores: list[tuple[str, tuple[int, ...]]] = []
    if drawn:
        by_address = {v.address: v for v in actors.validators}
        seated = [by_address[a] for a in drawn[0]["args"]["validators"]]
        seats = [actors.name_of(v.address) for v in seated]
        vectors = [score(seat, revealed_results) for seat in range(len(seated))]
        salts = [salt("scores", task_id, seat) for seat in range(len(seated))]
        for seat, validator in enumerate(seated):
            record(validator, market.commit_scores(validator, task_id, seat, vectors[seat], salts[seat]))
        for seat, validator in enumerate(seated):
            record(validator, market.reveal_scores(validator, task_id, seat, vectors[seat], salts[seat]))
            scores.append((seats[seat], tuple(vectors[seat])))
    finalized = _first_args(chain, steps, "TaskFinalized")
    refunded = _first_args(chain, steps, "TaskRefunded")
    if finalized is None and refunded is None:
        _phase, deadline = market.phase(task_id, chain.head(0))
        advance_past(chain, deadline)
        record(actors.requester, market.finalize(actors.requester, task_id))
        finalized = _first_args(chain, steps, "TaskFinalized")
        refunded = _first_args(chain, steps, "TaskRefunded")
    slashed = tuple(
        (actors.name_of(e["args"]["account"]), int(e["args"]["amount"]))
        for s in steps
        for e in events(chain, s.receipt, "MisconductSlashed")
    )
    claims: list[tuple[str, int]] = []
    if claim:
        block = chain.head(0)
        for actor in (*actors.nodes, *actors.validators, actors.requester):
            if market.balance_of(actor.address, block) > 0:
                amount, receipt = market.claim(actor)
                record(actor, receipt)
                claims.append((actors.name_of(actor.address), amount))
    return LifecycleReport(
        task_id=task_id,
        steps=tuple(steps),
        revealed=tuple(revealed),
        committee=tuple(seats),
        scores=tuple(scores),
        finalized=finalized,
        refunded=refunded,
        slashed=slashed,
        claims=tuple(claims),
    )


def _first_args(chain: SynodContracts, steps: Sequence[Step], name: str) -> dict[str, Any] | None:
    for step in steps:
        found = events(chain, step.receipt, name)
        if found:
            return dict(found[0]["args"])
    return None
