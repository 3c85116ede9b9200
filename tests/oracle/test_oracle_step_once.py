"""A validator steps a live batch once per head block: at an unchanged head a step would re-read
the same chain state and do nothing (the bench's profile: a third of a validator's CPU)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trio

from oracle.daemon.service import OracleDaemon
from protocol.chain.errors import ChainError
from protocol.chain.models import Phase, PhaseOf
from protocol.chain.rpc import BlockRef
from tests.oracle.test_oracle_review import HEAD, MARKET, _daemon, rpc_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


class _CountingStep(OracleDaemon):
    """The real daemon whose steps are counted; batch 6's step meets an RPC failure, batch 7 ends."""

    calls: list[tuple[int, int]]

    async def step(self, batch_id: int, head: BlockRef, now: int) -> None:
        self.calls.append((batch_id, head.number))
        if batch_id == 6:
            raise ChainError("connection refused")
        if batch_id == 7:
            self.live.pop(batch_id, None)  # settled: dropped from the live set


def test_a_batch_is_stepped_again_only_at_a_new_head_or_after_a_failure(rpc_url: str, tmp_path: Path) -> None:  # noqa: F811
    daemon, journal = _daemon(rpc_url, tmp_path)
    daemon.__class__ = _CountingStep
    assert isinstance(daemon, _CountingStep)
    daemon.calls = []
    daemon.live = {5: 0, 6: 0, 7: 0}

    async def step_due(head: int) -> None:
        ref = BlockRef(number=head, hash=b"\x00" * 32)
        async with trio.open_nursery() as steps:
            for batch in sorted(daemon.live):
                if daemon.due(batch, head, 0):
                    steps.start_soon(daemon._guarded_step, batch, ref, 0)

    try:
        trio.run(step_due, HEAD)
        trio.run(step_due, HEAD)  # the same head: only the failed batch 6 is stepped again
        trio.run(step_due, HEAD + 1)  # a new block: every live batch
    finally:
        journal.close()
    # (the steps of one poll run concurrently, in no set order)
    assert sorted(daemon.calls) == sorted(
        [(5, HEAD), (6, HEAD), (7, HEAD), (6, HEAD), (5, HEAD + 1), (6, HEAD + 1)]
    )
    assert daemon.live == {5: 0, 6: 0}
    assert 7 not in daemon._stepped  # a batch that left the live set is forgotten
    assert not daemon.due(5, HEAD + 1, 0) and daemon.due(6, HEAD + 1, 0) and daemon.due(5, HEAD + 2, 0)


@pytest.mark.unit
def test_a_batch_in_a_nodes_phase_waits_for_its_deadline_or_a_phase_change(tmp_path: Path) -> None:
    daemon, journal = _daemon("http://127.0.0.1:9", tmp_path)  # no RPC is made
    journal.close()
    grace = daemon.settings.margins.settle_grace
    daemon._quiet[5] = 1000 + grace  # stepped in Committing, deadline 1000
    assert not daemon.due(5, HEAD, 1000 + grace)  # up to deadline + grace: nothing to do
    assert daemon.due(5, HEAD, 1000 + grace + 1)  # past it: the refund path may be due
    assert daemon.due(6, HEAD, 0)  # a batch never stepped
    daemon._quiet.pop(5)  # what _scan does on a BatchPhaseChanged of batch 5
    assert daemon.due(5, HEAD, 0)


class _LogsRpc(BaseHTTPRequestHandler):
    """eth_getLogs only: the market's unfiltered logs hold one event of batch 5 (a ResultRevealed
    filling it, say); the BatchPosted query (filtered by its topic) finds nothing."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        query = request["params"][0] if request["params"] else {}
        if request["method"] != "eth_getLogs":
            reply["error"] = {"code": -32601, "message": "not served here"}
        elif query.get("topics"):
            reply["result"] = []
        else:
            reply["result"] = [
                {
                    "address": MARKET,
                    "topics": ["0x" + "ab" * 32, "0x" + f"{5:064x}", "0x" + "00" * 12 + "22" * 20],
                    "data": "0x",
                    "blockNumber": hex(HEAD),
                    "blockHash": "0x" + "01" * 32,
                    "transactionHash": "0x" + "02" * 32,
                    "transactionIndex": "0x0",
                    "logIndex": "0x0",
                    "removed": False,
                }
            ]
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_any_event_of_a_quiet_batch_makes_it_due(tmp_path: Path) -> None:
    # the k-th commit and the last reveal move a batch's phase without a BatchPhaseChanged: when
    # only that event cleared the quiet time, validators waited for the commit deadline (900 s)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LogsRpc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        daemon, journal = _daemon(f"http://127.0.0.1:{server.server_address[1]}", tmp_path)
        try:
            daemon._quiet = {5: 10_000.0, 6: 10_000.0}
            trio.run(daemon._scan, 1, HEAD)
        finally:
            journal.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert daemon._quiet == {6: 10_000.0}
    assert daemon.due(5, HEAD, 0) and not daemon.due(6, HEAD, 0)
    assert daemon.cursor == HEAD


class _StalePhaseMarket:
    """The market's reads for one step at block HEAD - 1: batch 5 in Committing (deadline 10,000);
    the phase read returns only once ``release`` is set (a slow RPC under load)."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def phase(self, batch_id: int, block: BlockRef) -> PhaseOf:
        assert self.release.wait(30), "the test never released the step"
        return PhaseOf(phase=Phase.COMMITTING, deadline=10_000)

    def batch(self, batch_id: int, block: BlockRef) -> object:
        return object()


def test_an_event_seen_while_a_step_reads_an_older_block_still_makes_the_batch_due(tmp_path: Path) -> None:
    """Review (rev5): a step reads the batch's phase at its head (H - 1) and then marks the batch
    quiet until the deadline; a tick scanning block H meanwhile (the step outlived a poll) saw the
    batch's event (its last reveal: Revealing -> Drawing, no BatchPhaseChanged) and cleared the
    quiet time *before* the step set it from its older read. The event was consumed, the batch
    slept until its commit deadline plus grace: the committee missed its draw and scoring windows."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LogsRpc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    release = threading.Event()
    try:
        daemon, journal = _daemon(f"http://127.0.0.1:{server.server_address[1]}", tmp_path)
        daemon.market = _StalePhaseMarket(release)  # type: ignore[assignment]
        daemon.live = {5: 0}

        async def race() -> None:
            async with trio.open_nursery() as steps:
                daemon._stepping.add(5)
                steps.start_soon(daemon._guarded_step, 5, BlockRef(number=HEAD - 1, hash=b"\x00" * 32), 100)
                await daemon._scan(HEAD, HEAD)  # the next tick: batch 5's event in block HEAD
                release.set()

        try:
            trio.run(race)
        finally:
            journal.close()
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert daemon._stepped == {5: HEAD - 1} and daemon.cursor == HEAD
    assert daemon.due(5, HEAD, 100), "the event in block HEAD was lost: the batch sleeps to its deadline"
    # without an event after the step's block, the batch is quiet as before
    assert not daemon.due(5, HEAD - 1, 100)
