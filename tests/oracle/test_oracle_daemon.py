"""``synod oracle run`` as a real OS process against real Anvil, real contracts and real libp2p nodes.

One batch of two rows (two labelled tasks, one in French) and three node seats: node1 serves good
answers, node2 a good answer and an off-topic one, node3 serves bytes that do not hash to the digest
it revealed. The committee is all three validators: validator1 is the daemon, validators 2 (double
stake) and 3 are scripted and score ``[80, 80, 80, 0, 0, 0]``. The daemon is killed with SIGKILL at
each of its crash points in turn (``SYNOD_HALT_AT``) and restarted; its last reveal settles the batch
(``revealScoresAndSettle``) and the last run claims.
Then: it committed and revealed exactly once, what it revealed is what it journaled, it agreed with
the medians and was paid, nobody was slashed, and ``synod oracle explain`` reports the same values.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from web3.types import RPCEndpoint

from oracle.daemon.explain import weighted_median
from oracle.daemon.journal import OracleJournal, entry_key
from oracle.daemon.service import HALT_POINTS
from oracle.daemon.work import schema_digest
from protocol.canonical import canonical_bytes, digest
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market, model_id
from protocol.chain.models import (
    BatchSettled,
    JobParams,
    Phase,
    ScoresCommitted,
    ScoresRevealed,
)
from protocol.commitments import encode_scores, new_salt
from protocol.envelope import success
from protocol.operator.config import OperatorRole, new_config, render_config
from protocol.types import Address
from scripts.bench_scoring import load
from scripts.devnet import DEMO_MODEL, ROOT, Devnet, free_port, fund_and_register, local_devnet
from tests.operator.fixtures import PASSWORD, cli_env, dev_keystore
from tests.p2p.helpers import dict_lookup, host

WORKFLOW: dict[str, Any] = {
    "name": "haiku",
    "description": "Write one haiku about the given topic.",
    "config": {"max_steps": 5, "max_time": 60, "tools": [], "max_tokens": 64, "temperature": 0, "seed": 7},
    "tasks": [
        {
            "id": "write",
            "name": "Write",
            "description": "Write the haiku",
            "prompt": "Write a haiku about {{topic}}. Answer with the haiku only.",
            "inputs": [{"name": "topic", "value": {"type": "input", "key": "topic"}, "required": True}],
            "operator": "generation",
            "outputs": [{"type": "write", "key": "haiku", "value": "__result"}],
        },
        {"id": "__end", "operator": "end"},
    ],
    "steps": [{"source": "write", "target": "__end"}],
    "return_value": {"input": {"type": "read", "key": "haiku"}},
}

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = 10**18
DAEMON_INDEX = 4
SCRIPTED = [80, 80, 80, 0, 0, 0]
"""The scripted validators' vector: node seat x row (seat * 2 + row)."""


def _params() -> JobParams:
    return JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=100 * TOKEN,
        batch_size=2,
        k=3,
        m=3,
        threshold=50,
        tolerance=40,
        junk_floor=0,
        validator_share_bps=2000,
        commit_duration=3600,
        reveal_duration=3600,
        score_commit_duration=3600,
        score_reveal_duration=3600,
    )


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    with local_devnet(ROOT) as net:
        yield net


def _config(tmp_path: Path, devnet: Devnet, metrics_port: int) -> Path:
    keystore = dev_keystore(tmp_path, DAEMON_INDEX, "validator")
    chain = {
        "rpc_url": devnet.rpc_url,
        "deployment": devnet.deployments_file,
        "artifacts_dir": ROOT / "out",
        "confirmations": 0,
        "log_range": 7,  # the start-up scan of ~100 blocks takes many eth_getLogs pages
    }
    config = new_config(OperatorRole.VALIDATOR, keystore=keystore, chain=chain)
    run = f"""
[run]
store_dir = "state"
poll_interval = 0.3

[run.p2p]
listen_port = 0
fetch_timeout = 5.0

[run.schedule]
claim_interval = 0.5

[run.metrics]
port = {metrics_port}
"""
    path = tmp_path / "validator.toml"
    path.write_text(render_config(config) + run, encoding="utf-8")
    return path


class Daemon:
    """Starts ``synod oracle run`` processes; every log goes to one file per run."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.tmp_path = tmp_path
        self.config = config
        self.runs = 0
        self.procs: list[subprocess.Popen[bytes]] = []

    def stop_all(self) -> None:
        """Kill any run still alive (a failed test must not leave a daemon behind)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def log(self, run: int) -> str:
        return (self.tmp_path / f"daemon-{run}.log").read_text(encoding="utf-8", errors="replace")

    def start(self, halt_at: str | None) -> subprocess.Popen[bytes]:
        self.runs += 1
        env = cli_env(self.tmp_path, SYNOD_KEYSTORE_PASSWORD=PASSWORD)
        if halt_at is not None:
            env["SYNOD_HALT_AT"] = halt_at
        cmd = [
            sys.executable,
            "-m",
            "cli.main",
            "--log-level",
            "INFO",
            "oracle",
            "run",
            "--config",
            str(self.config),
        ]
        with (self.tmp_path / f"daemon-{self.runs}.log").open("wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=self.tmp_path, env=env, stdin=subprocess.DEVNULL, stderr=out, stdout=out
            )
        self.procs.append(proc)
        return proc


async def _until(
    chain: SynodContracts,
    what: str,
    check: Callable[[], bool],
    proc: subprocess.Popen[bytes] | None,
    limit: float = 120.0,
) -> None:
    """Poll ``check`` (in a thread), mining one block per poll (the committee seed needs later blocks)."""
    with trio.fail_after(limit):
        while True:
            if await trio.to_thread.run_sync(check):
                return
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"daemon exited ({proc.returncode}) while waiting for {what}")
            await trio.to_thread.run_sync(chain.w3.provider.make_request, RPCEndpoint("evm_mine"), [])
            await trio.sleep(0.3)


async def _killed_at(daemon: Daemon, chain: SynodContracts, point: str) -> None:
    proc = daemon.start(point)
    with trio.fail_after(180):
        while proc.poll() is None:  # mine: the committee seed block must pass
            await trio.to_thread.run_sync(chain.w3.provider.make_request, RPCEndpoint("evm_mine"), [])
            await trio.sleep(0.3)
    assert proc.returncode == -signal.SIGKILL, daemon.log(daemon.runs)[-3000:]
    assert f"halt_point point={point}" in daemon.log(daemon.runs)


def _seat_of(market: Market, chain: SynodContracts, batch: int, who: Address) -> int:
    seats = market.committee(batch, chain.head(0))
    return next(i for i, s in enumerate(seats) if s.validator == who)


def _events(chain: SynodContracts, name: str, batch: int) -> list[Any]:
    event = getattr(chain.market.events, name)
    return list(event.get_logs(from_block=0, to_block="latest", argument_filters={"batchId": batch}))


def test_daemon_scores_survives_kill_at_every_point_and_explains(tmp_path: Path, devnet: Devnet) -> None:
    chain = SynodContracts.connect(devnet.settings, ROOT)
    market = Market(chain)
    actors, _ = fund_and_register(chain)
    me = actors.validators[0].address
    # validator2 weighs double: the medians are stake-weighted
    v2 = actors.validators[1]
    v2.transact(chain.token.functions.approve(chain.registry.address, 100 * TOKEN), label="approve")
    v2.transact(chain.registry.functions.addStake(100 * TOKEN), label="addStake")

    tasks = load()
    rows = [{"task": tasks[0]["task"]}, {"task": tasks[1]["task"], "language": "fr"}]
    texts = [
        [tasks[0]["results"][0]["text"], tasks[1]["results"][0]["text"]],
        [tasks[0]["results"][1]["text"], tasks[1]["results"][3]["text"]],  # row 1: off-topic
        [tasks[0]["results"][2]["text"], tasks[1]["results"][1]["text"]],
    ]
    posted = market.post_job(actors.requester, _params(), WORKFLOW, rows)
    (batch_ref,) = posted.batches
    batch = batch_ref.batch_id
    workflow_hash = digest(WORKFLOW)  # the job's workflow bytes (JobPosted), bound in the batch's inputHash
    served: list[dict[bytes, bytes]] = []
    digests: list[list[bytes]] = []
    for i, node_texts in enumerate(texts):
        envelopes = [
            success(workflow_hash=workflow_hash, row=canonical_bytes(r), model=DEMO_MODEL, output=t)
            for r, t in zip(rows, node_texts, strict=True)
        ]
        digests.append([e.digest() for e in envelopes])
        if i == 2:  # node3 serves other bytes under its digests
            served.append({e.digest(): e.to_bytes().replace(b"output", b"outpuT") for e in envelopes})
        else:
            served.append({e.digest(): e.to_bytes() for e in envelopes})
    committee = {v.address for v in actors.validators}

    async def only_committee(peer_id: str, digest: bytes, account: Address | None) -> bool:
        return account in committee

    metrics_port = free_port()
    daemon = Daemon(tmp_path, _config(tmp_path, devnet, metrics_port))

    async def main() -> None:
        async with (
            host(tmp_path, "n1", lookup=dict_lookup(served[0]), access=only_committee) as h1,
            host(tmp_path, "n2", lookup=dict_lookup(served[1]), access=only_committee) as h2,
            host(tmp_path, "n3", lookup=dict_lookup(served[2]), access=only_committee) as h3,
        ):
            for node, h in zip(actors.nodes, (h1, h2, h3), strict=True):
                address = h.multiaddr.encode()
                await trio.to_thread.run_sync(node.transact, chain.registry.functions.setP2pAddress(address))
            salts = [new_salt() for _ in actors.nodes]
            seats = []
            for node, node_digests, salt in zip(actors.nodes, digests, salts, strict=True):
                seat, _ = await trio.to_thread.run_sync(market.commit_result, node, batch, node_digests, salt)
                seats.append(seat)
            assert seats == [0, 1, 2]
            for node, seat, node_digests, salt in zip(actors.nodes, seats, digests, salts, strict=True):
                await trio.to_thread.run_sync(market.reveal_result, node, batch, seat, node_digests, salt)

            # 1: the daemon draws the committee, fetches, and dies before scoring
            await _killed_at(daemon, chain, "after_fetch")
            assert market.phase(batch, chain.head(0)).phase is Phase.SCORE_COMMITTING
            assert not (tmp_path / "state" / "oracle.sqlite").exists() or _journaled(tmp_path, batch) is None
            scripted = actors.validators[1:]
            vector = encode_scores([SCRIPTED[0:2], SCRIPTED[2:4], SCRIPTED[4:6]], 2)
            vsalts = [new_salt() for _ in scripted]
            for v, s in zip(scripted, vsalts, strict=True):
                seat = _seat_of(market, chain, batch, v.address)
                await trio.to_thread.run_sync(market.commit_scores, v, batch, seat, vector, s)

            # 2: scores journaled, then killed before committing
            await _killed_at(daemon, chain, "after_scoring")
            record = _journaled(tmp_path, batch)
            assert record is not None and len(record["cells"]) == 6
            assert not market.committee(batch, chain.head(0))[_seat_of(market, chain, batch, me)].committed

            # 3: commits the journaled vector, killed right after
            await _killed_at(daemon, chain, "after_commit_sent")
            assert market.phase(batch, chain.head(0)).phase is Phase.SCORE_REVEALING
            for v, s in zip(scripted, vsalts, strict=True):
                seat = _seat_of(market, chain, batch, v.address)
                await trio.to_thread.run_sync(market.reveal_scores, v, batch, seat, vector, s)

            # 4: the daemon's is the last reveal: it reveals and settles in one transaction
            # (revealScoresAndSettle), killed right after
            await _killed_at(daemon, chain, "after_reveal_sent")
            assert market.phase(batch, chain.head(0)).phase is Phase.SETTLED

            # 5: a clean run claims (nothing left to settle); SIGTERM stops it with exit 0
            proc = daemon.start(None)
            try:
                await _until(chain, "claim", lambda: market.claimed_of(me, chain.head(0)) > 0, proc)
                # the claim and the settled batch's last step run concurrently in the same pass: the
                # batch leaves the live set (and the gauge) at the end of that step, maybe after the claim
                await _until(
                    chain,
                    "no live batch",
                    lambda: "synod_oracle_live_batches 0.0" in _scrape(metrics_port),
                    proc,
                )
                metrics = await trio.to_thread.run_sync(_scrape, metrics_port)
                assert 'synod_oracle_transactions_total{action="settle"}' not in metrics
                assert 'synod_oracle_transactions_total{action="claim"} 1.0' in metrics
                assert "synod_oracle_live_batches 0.0" in metrics
            finally:
                proc.send_signal(signal.SIGTERM)
                await trio.to_thread.run_sync(proc.wait, 30)
            assert proc.returncode == 0, daemon.log(daemon.runs)[-3000:]

    try:
        trio.run(main)
    finally:
        daemon.stop_all()

    record = _journaled(tmp_path, batch)
    assert record is not None
    committed = [ScoresCommitted.from_abi(e["args"]) for e in _events(chain, "ScoresCommitted", batch)]
    revealed = [ScoresRevealed.from_abi(e["args"]) for e in _events(chain, "ScoresRevealed", batch)]
    assert [c.validator for c in committed].count(me) == 1  # no double action across 5 runs
    mine = [r for r in revealed if r.validator == me]
    assert len(mine) == 1
    assert "0x" + mine[0].scores.hex() == record["vector"]  # revealed = journaled
    cells = {(c["seat"], c["row"]): c for c in record["cells"]}
    assert cells[(0, 0)]["score"] >= 50 and cells[(0, 1)]["score"] >= 50 and cells[(1, 0)]["score"] >= 50
    assert cells[(1, 1)]["score"] < 50  # off-topic
    assert cells[(1, 1)]["components"]["topic"] < 0.5
    for row in (0, 1):  # node3's bytes do not hash to its digests
        assert cells[(2, row)]["score"] == 0
        assert "DigestMismatch" in cells[(2, row)]["reason"]
    assert all(c["components"] is not None for k, c in cells.items() if k[0] < 2)

    (settled_entry,) = _events(chain, "BatchSettled", batch)
    (my_reveal,) = [e for e in _events(chain, "ScoresRevealed", batch) if e["args"]["validator"] == me]
    assert settled_entry["transactionHash"] == my_reveal["transactionHash"]  # the last reveal settled
    settled = BatchSettled.from_abi(settled_entry["args"])
    my_seat = mine[0].seat
    assert settled.agreed_mask >> my_seat & 1  # within tolerance of the medians: paid
    assert _events(chain, "MisconductSlashed", batch) == []
    weights = {r.seat: (3 if r.validator == actors.validators[1].address else 1) for r in revealed}
    vectors = {r.seat: r.scores for r in revealed}
    expected = [
        weighted_median([vectors[s][c] for s in sorted(vectors)], [weights[s] for s in sorted(vectors)])
        for c in range(6)
    ]
    assert list(settled.medians) == expected == SCRIPTED  # validator2 + validator3 outweigh the daemon
    assert settled.node_paid[0] > 0 and settled.node_paid[2] == 0
    assert settled.validator_reward > 0
    assert market.claimed_of(me, chain.head(0)) == settled.validator_reward

    # explain: every vector, the medians, my components
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "oracle",
            "explain",
            str(batch),
            "--json",
            "--config",
            str(daemon.config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=cli_env(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (round0,) = report["rounds"]
    assert {v["seat"]: bytes(v["scores"]) for v in round0["voters"]} == vectors
    assert round0["medians"] == SCRIPTED and report["settled_medians"] == SCRIPTED
    assert report["medians_match"] is True
    assert [v["within_tolerance"] for v in round0["voters"]] == [True, True, True]
    assert report["my_cells"] == record["cells"]
    assert report["phase"] == "SETTLED"
    text = subprocess.run(
        [sys.executable, "-m", "cli.main", "oracle", "explain", str(batch), "--config", str(daemon.config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=cli_env(tmp_path),
        check=False,
    )
    assert text.returncode == 0, text.stderr
    assert "stake-weighted median" in text.stdout and str(SCRIPTED) in text.stdout
    assert "recomputed match: True" in text.stdout and "(me)" in text.stdout


def _scrape(port: int) -> str:
    with httpx.Client(timeout=10) as client:
        reply = client.get(f"http://127.0.0.1:{port}/metrics")
    reply.raise_for_status()
    return reply.text


def _journaled(tmp_path: Path, batch: int) -> dict[str, Any] | None:
    journal = OracleJournal.open(tmp_path / "state", read_only=True)
    try:
        return journal.get_sync(entry_key("scored_r0", batch))
    finally:
        journal.close()


def test_halt_points_are_the_documented_ones() -> None:
    assert HALT_POINTS == ("after_fetch", "after_scoring", "after_commit_sent", "after_reveal_sent")
    assert os.environ.get("SYNOD_HALT_AT") is None


# ---------------------------------------------------------------------- the workflow's output schema

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def _answer_workflow(schema: dict[str, Any]) -> dict[str, Any]:
    """One generation task whose ``schema`` (the original format: JSON text) shapes the result."""
    workflow: dict[str, Any] = json.loads(json.dumps(WORKFLOW))
    workflow["config"]["temperature"] = 0.7  # sampled: no digest rule, the schema alone decides
    task = workflow["tasks"][0]
    task["prompt"] = "Answer the question {{question}} as JSON."
    task["inputs"] = [{"name": "question", "value": {"type": "input", "key": "task"}, "required": True}]
    task["schema"] = json.dumps(schema)
    return workflow


def _phase_is(market: Market, chain: SynodContracts, batch: int, phase: Phase) -> Callable[[], bool]:
    return lambda: market.phase(batch, chain.head(0)).phase is phase


@pytest.mark.timeout(1200)  # its own anvil and deploy: forge runs under a lock shared by every worktree
def test_daemon_applies_the_workflows_schema_and_survives_a_malformed_one(tmp_path: Path) -> None:
    """Job A's workflow declares a JSON schema: node1's result meets it, node2's is plain text. Job B's
    workflow declares a malformed schema (``"type": "objekt"``): node3's result. The other two
    validators vote 100 and 0 on every result, so each median is the daemon's own score (equal stakes).
    A: node2's median is 0 and it is not paid, node1 is accepted; B: 0 with the reason logged once,
    and the daemon keeps running (SIGTERM ends it with 0)."""
    with local_devnet(ROOT) as net:
        chain = SynodContracts.connect(net.settings, ROOT)
        market = Market(chain)
        actors, _ = fund_and_register(chain)
        question = {"task": "What is the capital of France?"}
        good = '{"answer":"Paris is the capital of France."}'
        params_a = _params().model_copy(update={"batch_size": 1, "k": 2})
        params_b = _params().model_copy(update={"batch_size": 1, "k": 1})
        workflow_a, workflow_b = _answer_workflow(ANSWER_SCHEMA), _answer_workflow({"type": "objekt"})
        posted_a = market.post_job(actors.requester, params_a, workflow_a, [question])
        posted_b = market.post_job(actors.requester, params_b, workflow_b, [question])
        batch_a, batch_b = posted_a.batches[0].batch_id, posted_b.batches[0].batch_id
        job_b = posted_b.job_ids[0]
        outputs = {  # node index -> (batch, job, output)
            0: (batch_a, posted_a.job_ids[0], good),
            1: (batch_a, posted_a.job_ids[0], "Paris is the capital of France."),
            2: (batch_b, job_b, good),
        }
        workflow_hashes = {posted_a.job_ids[0]: digest(workflow_a), job_b: digest(workflow_b)}
        served: list[dict[bytes, bytes]] = []
        for _, job, output in outputs.values():
            workflow_hash = workflow_hashes[job]
            envelope = success(
                workflow_hash=workflow_hash, row=canonical_bytes(question), model=DEMO_MODEL, output=output
            )
            served.append({envelope.digest(): envelope.to_bytes()})
        committee = {v.address for v in actors.validators}

        async def only_committee(peer_id: str, digest: bytes, account: Address | None) -> bool:
            return account in committee

        daemon = Daemon(tmp_path, _config(tmp_path, net, free_port()))
        scripted = actors.validators[1:]
        votes = {scripted[0].address: 100, scripted[1].address: 0}
        batches = {batch_a: 2, batch_b: 1}  # batch -> node seats

        async def main() -> None:
            async with (
                host(tmp_path, "n1", lookup=dict_lookup(served[0]), access=only_committee) as h1,
                host(tmp_path, "n2", lookup=dict_lookup(served[1]), access=only_committee) as h2,
                host(tmp_path, "n3", lookup=dict_lookup(served[2]), access=only_committee) as h3,
            ):
                commits = []
                for i, (node, h) in enumerate(zip(actors.nodes, (h1, h2, h3), strict=True)):
                    fn = chain.registry.functions.setP2pAddress(h.multiaddr.encode())
                    await trio.to_thread.run_sync(node.transact, fn)
                    batch, digests, salt = outputs[i][0], list(served[i]), new_salt()
                    seat, _ = await trio.to_thread.run_sync(market.commit_result, node, batch, digests, salt)
                    commits.append((node, batch, seat, digests, salt))
                for node, batch, seat, digests, salt in commits:  # a batch reveals once its k seats are taken
                    await trio.to_thread.run_sync(market.reveal_result, node, batch, seat, digests, salt)
                proc = daemon.start(None)
                try:
                    salts = {(b, v.address): new_salt() for b in batches for v in scripted}
                    for batch, seats in batches.items():  # the daemon draws; the scripted two commit
                        await _until(
                            chain,
                            f"committee of {batch}",
                            _phase_is(market, chain, batch, Phase.SCORE_COMMITTING),
                            proc,
                        )
                        for v in scripted:
                            vector = encode_scores([[votes[v.address]]] * seats, 1)
                            seat = _seat_of(market, chain, batch, v.address)
                            salt = salts[(batch, v.address)]
                            await trio.to_thread.run_sync(market.commit_scores, v, batch, seat, vector, salt)
                    for batch, seats in batches.items():  # the daemon commits; all reveal
                        await _until(
                            chain,
                            f"the daemon's commit on {batch}",
                            _phase_is(market, chain, batch, Phase.SCORE_REVEALING),
                            proc,
                        )
                        for v in scripted:
                            vector = encode_scores([[votes[v.address]]] * seats, 1)
                            seat = _seat_of(market, chain, batch, v.address)
                            salt = salts[(batch, v.address)]
                            await trio.to_thread.run_sync(market.reveal_scores, v, batch, seat, vector, salt)
                    for batch in batches:
                        await _until(
                            chain,
                            f"settlement of {batch}",
                            _phase_is(market, chain, batch, Phase.SETTLED),
                            proc,
                        )
                    assert proc.poll() is None  # still running after refusing job B
                finally:
                    proc.send_signal(signal.SIGTERM)
                    await trio.to_thread.run_sync(proc.wait, 30)
                assert proc.returncode == 0, daemon.log(daemon.runs)[-3000:]

        try:
            trio.run(main)
        finally:
            daemon.stop_all()

        settled_a = BatchSettled.from_abi(_events(chain, "BatchSettled", batch_a)[0]["args"])
        settled_b = BatchSettled.from_abi(_events(chain, "BatchSettled", batch_b)[0]["args"])
        record_a, record_b = _journaled(tmp_path, batch_a), _journaled(tmp_path, batch_b)
        me = actors.validators[0].address
        mine = {
            batch: [
                r
                for r in (ScoresRevealed.from_abi(e["args"]) for e in _events(chain, "ScoresRevealed", batch))
                if r.validator == me
            ]
            for batch in batches
        }
    assert record_a is not None and record_b is not None
    cells = {c["seat"]: c for c in record_a["cells"]}
    assert cells[0]["score"] >= 50 and cells[0]["schema_digest"] == schema_digest(ANSWER_SCHEMA)
    assert cells[1]["score"] == 0
    assert cells[1]["components"]["invalid_reason"].startswith("schema: ")
    assert record_a["contract"]["schema_digest"] == schema_digest(ANSWER_SCHEMA)
    assert record_a["contract"]["determinism"] == "sampled"
    assert list(settled_a.medians) == [cells[0]["score"], 0]  # the daemon's scores are the medians
    assert settled_a.node_paid[0] > 0 and settled_a.node_paid[1] == 0
    (cell_b,) = record_b["cells"]
    assert cell_b["score"] == 0 and cell_b["components"] is None
    assert cell_b["reason"].startswith("malformed workflow schema: tasks[0] ('write'): ")
    assert list(settled_b.medians) == [0] and settled_b.node_paid[0] == 0
    for settled, batch in ((settled_a, batch_a), (settled_b, batch_b)):
        (revealed,) = mine[batch]
        assert settled.agreed_mask >> revealed.seat & 1  # the daemon agreed with the medians
    lines = daemon.log(daemon.runs).splitlines()
    refusals = [line for line in lines if " job_refused " in line]
    assert len(refusals) == 1, refusals  # once per job, though the daemon stepped batch B many times
    assert f"job_refused job={job_b} " in refusals[0]
    assert "reason=\"malformed workflow schema: tasks[0] ('write'): " in refusals[0]
