"""Nodes in their own network namespaces: libp2p and JSON-RPC cross veth links.

Three node processes run each in a namespace (``ip netns``) with its own veth pair; Anvil, the
scripted model server and the validators stay in the root namespace. A batch must settle through
them and the requester's export (fetched from the nodes' namespaced addresses) must verify.
Skips, printing the reason, only where namespaces cannot be made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from devnet.chain import ROOT
from devnet.netns import unavailable
from devnet.network import DevnetSpec, DevnetState, down, up
from protocol.chain.market import model_id
from protocol.chain.models import JobParams
from requester.connect import RequesterChain, RequesterSettings, connect
from requester.export import DatasetRow, export_rows, write_jsonl
from requester.history import load_history, p2p_addresses
from requester.post import plan_job, post_planned
from requester.rows import Dataset, load_dataset
from requester.status import job_status
from requester.verify import read_dataset, verify_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetState]:
    reason = unavailable()
    if reason is not None:
        print(f"SKIP netns scenario: {reason}")
        pytest.skip(reason)
    state_dir = tmp_path_factory.mktemp("netns-devnet")
    try:
        yield up(DevnetSpec(state_dir=state_dir, nodes=3, validators=3, model="scripted", netns=True))
    finally:
        down(state_dir)
    assert not (state_dir / "netns").exists()


def test_a_batch_settles_across_namespaces_and_exports(devnet: DevnetState, tmp_path: Path) -> None:
    nodes = devnet.operators("node")
    assert all(n.p2p.startswith("/ip4/10.") for n in nodes), [n.p2p for n in nodes]
    env = devnet.requester_env()
    rc: RequesterChain = connect(
        RequesterSettings(
            rpc_url=env["SYNOD_RPC_URL"],
            deployment=Path(env["SYNOD_DEPLOYMENT"]),
            artifacts_dir=ROOT / "out",
            dev_key=1,
        )
    )
    full = load_dataset(
        ROOT / "examples" / "workflows" / "qa_pairs.json", ROOT / "examples" / "data" / "passages.jsonl"
    )
    dataset = Dataset(full.workflow, full.spec, full.rows[:3], full.sizes[:3])
    params = JobParams(
        model=model_id("gemma3:270m"),
        bounty_per_task=10**18,
        batch_size=3,
        k=3,
        m=3,
        threshold=60,
        tolerance=20,
        junk_floor=20,
        validator_share_bps=2000,
        commit_duration=300,
        reveal_duration=300,
        score_commit_duration=300,
        score_reveal_duration=300,
    )
    sender = rc.sender()
    (job_id,) = post_planned(rc.chain, sender, plan_job(rc.chain, sender, params, dataset, rc.units)).job_ids
    deadline = time.monotonic() + 1200
    while not job_status(rc.chain, job_id).terminal:
        assert time.monotonic() < deadline
        time.sleep(1.0)  # polling interval
    block = rc.chain.head(0)
    history = load_history(rc.chain, job_id, block)
    accepted = list(history.accepted())
    assert len(accepted) == 9  # 3 rows x 3 namespaced nodes, validators fetched every result across veth
    addresses = {str(k): v for k, v in p2p_addresses(rc.chain, [n.address for n in nodes], block).items()}
    signer = rc.signer()

    async def fetch() -> list[DatasetRow]:
        result = await export_rows(rc.chain.chain_id, rc.chain.market.address, [history], addresses, signer)
        assert result.failures == ()
        return list(result.rows)

    path = tmp_path / "dataset.jsonl"
    write_jsonl(trio.run(fetch), path)
    report = verify_dataset(rc.chain, read_dataset(path))
    assert report.valid and report.ok == 9, [str(f) for f in report.findings]
