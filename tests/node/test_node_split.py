"""The work split (node/split.py) with four real node daemons on a real Anvil: with k = 3 each
batch is committed by exactly the three nodes the rotation names, the fourth never runs the
workflow (its log says why, its metrics count no task); with one daemon stopped, every batch still
fills its three seats before the commit deadline (the backup steps in after its wait)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from devnet.scripted_model import ScriptedModelServer, hashed_reply
from node.split import rank_of, split_seed
from protocol.canonical import keccak256
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market
from protocol.chain.models import Phase
from protocol.chain.signer import anvil_dev_signer
from scripts.devnet import DEMO_MODEL, ROOT, Actors, Devnet, fund_and_register, local_devnet
from scripts.export_abi import export_abis
from tests.node.helpers import MIN_PHASE_S, WORKFLOW, NodeProcess, node_home, params, register_node

pytestmark = pytest.mark.integration

DAEMONS = (1, 2, 3, 8)
"""Dev accounts run as node daemons: fund_and_register's nodes 1-3 and the node tests' 8."""
COMMIT_S = 40
BACKUP_DELAY = 0.5


@pytest.fixture(scope="module")
def net() -> Iterator[tuple[Devnet, SynodContracts, Actors]]:
    with local_devnet(ROOT, params={"SYNOD_MIN_PHASE_DURATION": str(MIN_PHASE_S)}) as devnet:
        export_abis(ROOT)
        chain = SynodContracts.connect(devnet.settings, ROOT)
        actors, _ = fund_and_register(chain)
        register_node(chain)
        yield devnet, chain, actors


def _tasks_ok(url: str) -> int:
    text = httpx.get(url, timeout=10).text
    match = re.search(r'^synod_node_tasks_total\{outcome="ok"\} (\S+)$', text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def _committers(chain: SynodContracts, batch_id: int) -> list[str]:
    logs = chain.market.events.ResultCommitted().get_logs(
        from_block=0, argument_filters={"batchId": batch_id}
    )
    return [str(entry["args"]["node"]) for entry in logs]


def _wait_revealing(
    chain: SynodContracts, batch_ids: Sequence[int], timeout: float, daemons: dict[int, NodeProcess]
) -> None:
    market = Market(chain)
    deadline = time.monotonic() + timeout
    for batch_id in batch_ids:
        while market.phase(batch_id, chain.head(0)).phase is Phase.COMMITTING:
            if time.monotonic() > deadline:
                tails = "\n".join(f"node {i}:\n" + "\n".join(d.raw[-25:]) for i, d in daemons.items())
                raise AssertionError(f"batch {batch_id} still Committing after {timeout}s\n{tails}")
            time.sleep(0.2)  # a chain poll's interval


def test_four_nodes_split_the_batches_and_three_still_fill_every_batch(
    net: tuple[Devnet, SynodContracts, Actors], tmp_path: Path
) -> None:
    devnet, chain, actors = net
    market = Market(chain)
    address = {i: anvil_dev_signer(i, 31337).address for i in DAEMONS}
    roster = list(address.values())
    with ScriptedModelServer(models=[DEMO_MODEL], answer=hashed_reply) as ollama, ExitStack() as stack:
        provider = {"kind": "ollama", "url": ollama.url, "models": {DEMO_MODEL: DEMO_MODEL}}
        run = {"provider": provider, "split": {"enabled": True, "backup_delay": BACKUP_DELAY}}
        daemons: dict[int, NodeProcess] = {}
        for i in DAEMONS:
            home = node_home(tmp_path / f"node{i}", devnet, run, index=i)
            daemons[i] = NodeProcess(home)
            stack.callback(daemons[i].close)
        metrics = {}
        for i, daemon in daemons.items():
            daemon.wait("node_started", 180)
            daemon.wait("node_worker_ready", 180)  # an owner still booting its worker is a slow owner
            found = re.search(r"url=(\S+)", daemon.wait("metrics_listening").text)
            assert found
            metrics[i] = found.group(1)

        # 1. all four alive: exactly the three owners of each batch compute and commit it
        rows = [{"topic": f"split {n}"} for n in range(8)]
        posted = market.post_job(actors.requester, params(k=3, batch_size=2, commit=COMMIT_S), WORKFLOW, rows)
        batch_ids = [b.batch_id for b in posted.batches]
        assert len(batch_ids) == 4
        (job,) = posted.jobs
        seed = split_seed(job.job_id, keccak256(bytes(job.workflow)))
        _wait_revealing(chain, batch_ids, COMMIT_S + 30, daemons)
        owned = {i: 0 for i in DAEMONS}
        for batch_id in batch_ids:
            owners = {a for a in roster if rank_of(batch_id, a, roster, seed)[0] < 3}
            assert set(_committers(chain, batch_id)) == owners
            (backup,) = [i for i in DAEMONS if address[i] not in owners]
            skipped = daemons[backup].wait(
                "node_batch_skipped", COMMIT_S, contains=f"batch={batch_id} reason=closed"
            )
            assert "work split: rank 4 of 4" in skipped.text and "0 of 2 rows run" in skipped.text
            for i in DAEMONS:
                owned[i] += address[i] in owners
        assert sum(owned.values()) == 12
        for i in DAEMONS:
            assert _tasks_ok(metrics[i]) == 2 * owned[i], f"node {i} ran only its own batches' rows"
        assert ollama.requests == 3 * len(rows), "no row computed by a fourth node"

        # 2. node 8 stopped: the three left fill every batch, the backup stepping in for node 8
        assert daemons[8].stop() == 0
        more = [{"topic": f"alone {n}"} for n in range(8)]
        posted = market.post_job(actors.requester, params(k=3, batch_size=2, commit=COMMIT_S), WORKFLOW, more)
        batch_ids = [b.batch_id for b in posted.batches]
        (job,) = posted.jobs
        seed = split_seed(job.job_id, keccak256(bytes(job.workflow)))
        _wait_revealing(chain, batch_ids, COMMIT_S + 30, daemons)
        stepped_in = 0
        for batch_id in batch_ids:
            view = market.batch(batch_id, chain.head(0))
            assert view.commit_count == 3, f"batch {batch_id} short of seats"
            assert set(_committers(chain, batch_id)) == {address[i] for i in (1, 2, 3)}
            if rank_of(batch_id, address[8], roster, seed)[0] < 3:  # node 8 owned it: the 4th stepped in
                (backup,) = [i for i in (1, 2, 3) if rank_of(batch_id, address[i], roster, seed)[0] == 3]
                daemons[backup].wait("node_batch_backup_started", 5, contains=f"batch={batch_id} ")
                stepped_in += 1
        assert stepped_in == 3, "node 8 owned 3 of the 4 consecutive batches"
        assert ollama.requests == 3 * (len(rows) + len(more))
        for i in (1, 2, 3):
            assert daemons[i].stop() == 0
