"""``synod node run`` end to end: a real Anvil with the v2 contracts, the daemon as a real OS
process, a scripted Ollama-API server on 127.0.0.1 (zero model latency; everything else real),
real libp2p hosts fetching results, the Prometheus endpoint scraped over HTTP."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from devnet.scripted_model import ScriptedModelServer, hashed_reply
from protocol.canonical import canonical_bytes, keccak256
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market
from protocol.chain.models import Phase
from protocol.chain.signer import anvil_dev_signer
from protocol.chain.writer import TxCall
from protocol.commitments import encode_scores, input_hash, new_salt
from protocol.envelope import ResultEnvelope
from protocol.p2p.errors import AccessDenied
from protocol.p2p.host import P2pSettings, open_p2p_host
from scripts.devnet import DEMO_MODEL, ROOT, Actors, Devnet, fund_and_register, local_devnet, mine_to
from scripts.export_abi import export_abis
from tests.node.helpers import (
    MIN_PHASE_S,
    WORKFLOW,
    NodeHome,
    node_env,
    node_home,
    params,
    register_node,
    running,
    seated_validators,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def net() -> Iterator[tuple[Devnet, SynodContracts, Actors]]:
    with local_devnet(ROOT, params={"SYNOD_MIN_PHASE_DURATION": str(MIN_PHASE_S)}) as devnet:
        export_abis(ROOT)
        chain = SynodContracts.connect(devnet.settings, ROOT)
        actors, _ = fund_and_register(chain)
        register_node(chain)
        yield devnet, chain, actors


@pytest.fixture
def ollama() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(models=[DEMO_MODEL], answer=hashed_reply) as server:
        yield server


def _home(tmp_path: Path, devnet: Devnet, ollama: ScriptedModelServer, **run: object) -> NodeHome:
    provider = {"kind": "ollama", "url": ollama.url, "models": {DEMO_MODEL: DEMO_MODEL}}
    return node_home(tmp_path / "node", devnet, {"provider": provider, "claim_interval_s": 1.0, **run})


def _wait_phase(chain: SynodContracts, batch_id: int, phases: set[Phase], timeout: float = 60.0) -> Phase:
    """Poll the batch's effective phase until it is one of ``phases``."""
    market = Market(chain)
    deadline = time.monotonic() + timeout
    while True:
        phase = market.phase(batch_id, chain.head(0)).phase
        if phase in phases:
            return phase
        assert time.monotonic() < deadline, f"batch {batch_id} still {phase.name} after {timeout}s"
        time.sleep(0.1)  # the interval of a chain poll


def _fetch(multiaddr: str, digests: list[bytes], index: int | None, home: Path) -> list[bytes | Exception]:
    async def run() -> list[bytes | Exception]:
        settings = P2pSettings(identity_file=home / f"fetcher-{index}.key", fetch_timeout=20.0)
        signer = None if index is None else anvil_dev_signer(index, 31337)
        out: list[bytes | Exception] = []
        async with open_p2p_host(settings) as host:
            for d in digests:
                try:
                    out.append(await host.fetch(multiaddr, d, signer=signer))
                except AccessDenied as exc:
                    out.append(exc)
        return out

    return trio.run(run)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not exported"
    return float(match.group(1))


def test_a_batch_is_taken_computed_committed_revealed_served_settled_and_claimed(
    net: tuple[Devnet, SynodContracts, Actors], ollama: ScriptedModelServer, tmp_path: Path
) -> None:
    devnet, chain, actors = net
    market = Market(chain)
    node = _home(tmp_path, devnet, ollama)
    rows = [{"topic": "rain"}, {"topic": "fog"}, {"topic": "bread"}]
    with running(node) as daemon:
        started = daemon.wait("node_started", 90)
        assert node.address in started.text
        metrics_url = re.search(r"url=(\S+)", daemon.wait("metrics_listening").text)
        multiaddr = re.search(r"multiaddr=(\S+)", daemon.wait("node_p2p").text)
        assert metrics_url and multiaddr
        # a job whose workflow is not a workflow: logged with its batch id and skipped
        bad = chain.market.functions.postJob(
            params(k=1, batch_size=1).to_abi(), b"{not json", [b'{"topic":"x"}']
        )
        actors.requester.transact(bad, label="postJob")
        skipped = daemon.wait("node_batch_skipped", 60, contains="reason=malformed_workflow")
        bad_batch = int(re.search(r"batch=(\d+)", skipped.text).group(1))  # type: ignore[union-attr]
        # ... and the node goes on with the next job
        posted = market.post_job(actors.requester, params(k=1, batch_size=3), WORKFLOW, rows)
        (batch,) = posted.batches
        assert batch.batch_id == bad_batch + 1
        daemon.wait("node_revealed", 60, contains=f"batch={batch.batch_id}")
        assert _wait_phase(chain, batch.batch_id, {Phase.DRAWING}) is Phase.DRAWING
        assert ollama.requests == 3, "one generation per row"

        # what the node revealed are the digests of envelopes it serves, for the right rows
        logs = chain.market.events.ResultRevealed().get_logs(
            from_block=0, argument_filters={"batchId": batch.batch_id}
        )
        (revealed,) = logs
        assert revealed["args"]["node"] == node.address
        digests = [bytes(d) for d in revealed["args"]["digests"]]
        # the envelopes name the job's workflow: with the rows it hashes to the batch's stored input hash
        workflow_hash = keccak256(canonical_bytes(WORKFLOW))
        stored = market.batch(batch.batch_id, chain.head(0)).input_hash
        assert stored == input_hash(workflow_hash, [canonical_bytes(r) for r in rows])
        # the requester may fetch once reveals closed; an outsider and unsigned requests may not
        fetched = _fetch(multiaddr.group(1), digests, 7, tmp_path)
        for row, data, digest in zip(rows, fetched, digests, strict=True):
            assert isinstance(data, bytes)
            envelope = ResultEnvelope.from_bytes(data, expect_digest=digest)
            assert envelope.ok and envelope.output.startswith("answer ")
            assert envelope.input == "0x" + keccak256(canonical_bytes(row)).hex()
            assert envelope.workflow == "0x" + bytes(workflow_hash).hex()
            assert envelope.model == DEMO_MODEL
        assert len(set(digests)) == 3, "different rows, different results"
        assert all(isinstance(r, AccessDenied) for r in _fetch(multiaddr.group(1), digests[:1], 9, tmp_path))
        assert all(
            isinstance(r, AccessDenied) for r in _fetch(multiaddr.group(1), digests[:1], None, tmp_path)
        )

        # the committee is drawn; its member may fetch; the batch settles and the node claims
        view = market.batch(batch.batch_id, chain.head(0))
        while True:
            view = market.batch(batch.batch_id, chain.head(0))
            if view.seed_block:
                mine_to(chain, view.seed_block + 1)
            drawn, _ = market.draw_committee(actors.requester, batch.batch_id)
            if drawn is not None:
                break
        (member,) = seated_validators(actors, list(drawn.validators))
        member_index = next(i for i in (4, 5, 6) if anvil_dev_signer(i, 31337).address == member.address)
        (served,) = _fetch(multiaddr.group(1), digests[:1], member_index, tmp_path)
        assert served == fetched[0]
        vector = encode_scores([[100] * 3], 3)
        salt = new_salt()
        market.commit_scores(member, batch.batch_id, 0, vector, salt)
        market.reveal_scores(member, batch.batch_id, 0, vector, salt)
        ordered = market.settle_vectors(batch.batch_id, {0: vector}, chain.head(0))
        settled = market.settle(actors.requester, batch.batch_id, ordered)
        paid = settled.settled.node_paid[0] if settled.settled else 0
        assert paid == 3 * 10**18 * 8000 // 10000
        daemon.wait("node_claimed", 30)
        assert market.balance_of(node.address, chain.head(0)) == 0
        assert market.claimed_of(node.address, chain.head(0)) >= paid

        scrape = httpx.get(metrics_url.group(1), timeout=5).text
        assert _metric(scrape, "synod_node_batches_taken_total") == 1
        assert _metric(scrape, 'synod_node_batches_skipped_total{reason="malformed_workflow"}') == 1
        assert _metric(scrape, "synod_node_commits_total") == 1
        assert _metric(scrape, "synod_node_reveals_total") == 1
        assert _metric(scrape, 'synod_node_tasks_total{outcome="ok"}') == 3
        daemon.wait("node_batch_settled", 30)
        scrape = httpx.get(metrics_url.group(1), timeout=5).text
        assert _metric(scrape, "synod_node_paid_base_units_total") == paid
        assert daemon.stop() == 0
        assert daemon.events("node_stopped")


def _node_txs(chain: SynodContracts, address: str, first_block: int) -> list[str]:
    """The 4-byte selectors of the transactions ``address`` sent since ``first_block``, in order."""
    fns = chain.market.functions
    calls = {
        "commitResult": fns.commitResult(1, b"\x00" * 32),
        "revealResult": fns.revealResult(1, 0, [], b"\x00" * 32),
        "claim": fns.claim(),
    }
    names = {TxCall.from_function(fn).data[:4]: name for name, fn in calls.items()}
    sent = []
    for number in range(first_block, int(chain.w3.eth.block_number) + 1):
        block = chain.w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] == address:
                data = bytes(tx["input"])
                sent.append(names.get(data[:4], "0x" + data[:4].hex()))
    return sent


@pytest.mark.fault
@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["after_workflows", "after_commit_sent", "after_commit_mined", "after_reveal_sent"]
)
def test_killed_at_each_stage_the_restarted_node_finishes_the_batch_sending_nothing_twice(
    net: tuple[Devnet, SynodContracts, Actors], ollama: ScriptedModelServer, tmp_path: Path, point: str
) -> None:
    devnet, chain, actors = net
    market = Market(chain)
    node = _home(tmp_path, devnet, ollama, claim_interval_s=0)
    first_block = int(chain.w3.eth.block_number) + 1
    with running(node, SYNOD_HALT_AT=point) as daemon:
        daemon.wait("node_started", 90)
        posted = market.post_job(
            actors.requester, params(k=1, batch_size=2), WORKFLOW, [{"topic": "a"}, {"topic": "b"}]
        )
        (batch,) = posted.batches
        daemon.wait("halt_point", 60, contains=f"point={point}")
        assert daemon.process.wait(30) == -9, "SIGKILLed itself"
    assert ollama.requests == 2
    with running(node) as daemon:
        daemon.wait("node_revealed", 90, contains=f"batch={batch.batch_id}")
        assert _wait_phase(chain, batch.batch_id, {Phase.DRAWING}) is Phase.DRAWING
        assert daemon.stop() == 0
    assert ollama.requests == 2, "stored results are not recomputed after a restart"
    assert _node_txs(chain, node.address, first_block) == ["commitResult", "revealResult"]
    assert not chain.market.events.MisconductSlashed().get_logs(
        from_block=first_block, argument_filters={"account": node.address}
    )


def _run_cli(
    node: NodeHome, *extra: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "node", "run", "--config", str(node.config), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=node.home,
        env=node_env(node.home, **env),
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_start_up_refusals_name_what_to_fix(
    net: tuple[Devnet, SynodContracts, Actors], ollama: ScriptedModelServer, tmp_path: Path
) -> None:
    devnet, _chain, _actors = net
    provider = {"kind": "ollama", "url": ollama.url}
    bad = node_home(
        tmp_path / "bad", devnet, {"provider": {**provider, "kind": "llamafile"}, "concurrency": 0}
    )
    result = _run_cli(bad)
    assert result.returncode == 2
    assert "run.provider.kind" in result.stderr and "run.concurrency" in result.stderr
    assert "greater than or equal to 1" in result.stderr

    good = node_home(tmp_path / "good", devnet, {"provider": provider})
    result = _run_cli(good, SYNOD_KEYSTORE_PASSWORD="not the password")
    assert result.returncode == 2 and "wrong password" in result.stderr

    stranger = node_home(tmp_path / "stranger", devnet, {"provider": provider}, index=9)
    result = _run_cli(stranger)
    assert result.returncode == 3
    assert "is not registered: run `synod node register --stake AMOUNT`" in result.stderr

    with ScriptedModelServer(models=["other-model:1b"], answer=hashed_reply) as elsewhere:
        missing = node_home(
            tmp_path / "missing", devnet, {"provider": {"kind": "ollama", "url": elsewhere.url}}
        )
        result = _run_cli(missing)
    assert result.returncode == 3
    assert f"model {DEMO_MODEL!r} is not served by the ollama provider" in result.stderr
    assert "other-model:1b" in result.stderr


def test_a_second_daemon_on_the_same_store_refuses_naming_the_first(
    net: tuple[Devnet, SynodContracts, Actors], ollama: ScriptedModelServer, tmp_path: Path
) -> None:
    devnet, _chain, _actors = net
    node = _home(tmp_path, devnet, ollama)
    with running(node) as first:
        first.wait("node_started", 90)
        second = _run_cli(node)
        assert second.returncode == 2
        assert str(first.process.pid) in second.stderr and "lock" in second.stderr.lower()
        assert first.process.poll() is None, "the first daemon runs on"
        assert first.stop() == 0


def test_a_node_stops_computing_a_batch_whose_seats_other_nodes_filled(
    net: tuple[Devnet, SynodContracts, Actors], tmp_path: Path
) -> None:
    """k = 1: another node commits while this node's first task is in the model; the node runs no
    further row, sends no commit and records the batch as skipped (``closed``), metrics included."""
    devnet, chain, actors = net
    market = Market(chain)
    in_model, release = threading.Event(), threading.Event()

    def held(prompt: str) -> str:
        in_model.set()
        release.wait(60)
        return "answer " + prompt[-12:]

    with ScriptedModelServer(models=[DEMO_MODEL], answer=held) as ollama:
        node = _home(tmp_path, devnet, ollama, concurrency=1, seat_check_s=0.0)
        rows = [{"topic": f"seat {i}"} for i in range(5)]
        with running(node) as daemon:
            daemon.wait("node_started", 240)
            metrics_url = re.search(r"url=(\S+)", daemon.wait("metrics_listening").text)
            assert metrics_url
            first_block = chain.head(0).number + 1  # (the head may hold this node's registration)
            posted = market.post_job(actors.requester, params(k=1, batch_size=5), WORKFLOW, rows)
            (batch,) = posted.batches
            daemon.wait("node_batch_taken", 60, contains=f"batch={batch.batch_id}")
            assert in_model.wait(60), "the node never asked the model"
            seat, _ = market.commit_result(actors.nodes[0], batch.batch_id, [b"\x01" * 32] * 5, new_salt())
            assert seat == 0
            release.set()
            skipped = daemon.wait("node_batch_skipped", 60, contains=f"batch={batch.batch_id}")
            assert "reason=closed" in skipped.text and "1 of 5 rows run" in skipped.text
            assert ollama.requests == 1, "no row started after the seats were found filled"
            scrape = httpx.get(metrics_url.group(1), timeout=5).text
            # (older batches of this module's chain, replayed on the fresh store, count as closed too)
            closed = [ln for ln in daemon.events("node_batch_skipped") if "reason=closed" in ln.text]
            assert _metric(scrape, 'synod_node_batches_skipped_total{reason="closed"}') == len(closed) >= 1
            assert _metric(scrape, "synod_node_commits_total") == 0
            assert _node_txs(chain, node.address, first_block) == []
            assert daemon.stop() == 0


def test_a_batch_over_capacity_waits_for_a_free_slot_instead_of_being_dropped(
    net: tuple[Devnet, SynodContracts, Actors], ollama: ScriptedModelServer, tmp_path: Path
) -> None:
    """``max_open_batches = 1`` and a job of 3 one-row batches: the 2nd and 3rd are skipped for
    capacity at first, then taken one by one as drivers end, and all three are revealed."""
    devnet, chain, actors = net
    market = Market(chain)
    node = _home(tmp_path, devnet, ollama, max_open_batches=1)
    rows = [{"topic": "hail"}, {"topic": "snow"}, {"topic": "sleet"}]
    with running(node) as daemon:
        daemon.wait("node_started", 240)
        posted = market.post_job(actors.requester, params(k=1, batch_size=1), WORKFLOW, rows)
        ids = [b.batch_id for b in posted.batches]
        assert len(ids) == 3
        for batch_id in ids:
            daemon.wait("node_revealed", 90, contains=f"batch={batch_id} ")
        deferred = [ln.text for ln in daemon.events("node_batch_skipped") if "reason=capacity" in ln.text]
        assert any(f"batch={ids[1]} " in t for t in deferred) and any(
            f"batch={ids[2]} " in t for t in deferred
        )
        taken = [ln.text for ln in daemon.events("node_batch_taken")]
        assert [sum(f"batch={i} " in t for t in taken) for i in ids] == [1, 1, 1]
        assert ollama.requests == 3
        assert daemon.stop() == 0
