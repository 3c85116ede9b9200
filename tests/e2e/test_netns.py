"""Nodes in their own network namespaces: libp2p and JSON-RPC cross veth links.

Three node processes run each in a namespace (``ip netns``) with its own veth pair; Anvil, the
scripted model server and the validators stay in the root namespace. A batch must settle through
them and the requester's export (fetched from the nodes' namespaced addresses) must verify.
Skips, printing the reason, only where namespaces cannot be made.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devnet.demo import demo_job_params
from devnet.netns import unavailable
from devnet.network import DevnetSpec, DevnetState
from requester.export import write_jsonl
from requester.history import load_history
from requester.verify import read_dataset, verify_dataset
from tests.e2e.helpers import TOKEN, export_job, post_passages, requester_of, running_devnet, wait_terminal

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetState]:
    reason = unavailable()
    if reason is not None:
        print(f"SKIP netns scenario: {reason}")
        pytest.skip(reason)
    state_dir = tmp_path_factory.mktemp("netns-devnet")
    spec = DevnetSpec(state_dir=state_dir, nodes=3, validators=3, model="scripted", netns=True)
    with running_devnet(spec) as state:
        yield state
    assert not (state_dir / "netns").exists()


def test_a_batch_settles_across_namespaces_and_exports(devnet: DevnetState, tmp_path: Path) -> None:
    nodes = devnet.operators("node")
    assert all(n.p2p.startswith("/ip4/10.") for n in nodes), [n.p2p for n in nodes]
    rc = requester_of(devnet)
    job_id = post_passages(rc, demo_job_params(TOKEN, batch_size=3, phase_seconds=300), rows=3)
    wait_terminal(rc, job_id, limit=1200)
    history = load_history(rc.chain, job_id, rc.chain.head(0))
    accepted = list(history.accepted())
    assert len(accepted) == 9  # 3 rows x 3 namespaced nodes, validators fetched every result across veth
    path = tmp_path / "dataset.jsonl"
    write_jsonl(export_job(rc, job_id), path)  # fetched from the nodes' namespaced addresses
    report = verify_dataset(rc.chain, read_dataset(path))
    assert report.valid and report.ok == 9, [str(f) for f in report.findings]
