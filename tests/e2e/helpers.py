"""The set-up every devnet test shares: start and stop a devnet, connect as its requester, post the
bundled Q&A passages, wait until a job is terminal, export its accepted results.

::

    with running_devnet(DevnetSpec(state_dir=..., nodes=4, validators=3, model="scripted")) as devnet:
        rc = requester_of(devnet)
        job_id = post_passages(rc, demo_job_params(10 * TOKEN, 4, 300), rows=8)
        wait_terminal(rc, job_id, limit=1200)
        rows = export_job(rc, job_id)

``running_devnet`` checks on the way out that ``down`` left no process of the devnet's group.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from devnet.chain import ROOT
from devnet.network import DevnetSpec, DevnetState, down, group_members, up
from protocol.chain.models import JobParams
from protocol.chain.sender import TxSender
from protocol.types import JobId
from requester.connect import RequesterChain, RequesterSettings, connect
from requester.export import DatasetRow, export_rows
from requester.history import load_history, p2p_addresses
from requester.post import plan_job, post_planned
from requester.rows import Dataset, load_dataset
from requester.status import job_status

TOKEN = 10**18
WORKFLOW = ROOT / "examples" / "workflows" / "qa_pairs.json"
PASSAGES = ROOT / "examples" / "data" / "passages.jsonl"


@contextmanager
def running_devnet(spec: DevnetSpec) -> Iterator[DevnetState]:
    """``up(spec)``, yield its state, ``down`` on exit; then assert no process of its group is left
    (namespaces, when ``spec.netns``, are deleted by ``down`` too)."""
    try:
        yield up(spec)
    finally:
        down(spec.state_dir)
    pgid = int((spec.state_dir / "pgid").read_text())
    assert group_members(pgid) == [], "devnet processes outlived `down`"


def requester_of(devnet: DevnetState) -> RequesterChain:
    """The devnet's requester (Anvil dev key 1), connected with the devnet's deployment."""
    env = devnet.requester_env()
    return connect(
        RequesterSettings(
            rpc_url=env["SYNOD_RPC_URL"],
            deployment=Path(env["SYNOD_DEPLOYMENT"]),
            artifacts_dir=ROOT / "out",
            dev_key=int(env["SYNOD_DEV_KEY"]),
        )
    )


def passages(rows: int) -> Dataset:
    """The first ``rows`` bundled passages with the Q&A workflow (examples/), checked."""
    full = load_dataset(WORKFLOW, PASSAGES)
    return Dataset(full.workflow, full.spec, full.rows[:rows], full.sizes[:rows])


def post_passages(rc: RequesterChain, params: JobParams, rows: int, sender: TxSender | None = None) -> JobId:
    """Post the first ``rows`` passages as one job as the requester (through ``sender``, the
    requester's one transaction sender when the caller keeps sending); returns its id."""
    sender = sender or rc.sender()
    plan = plan_job(rc.chain, sender, params, passages(rows), rc.units)
    (job_id,) = post_planned(rc.chain, sender, plan).job_ids
    return job_id


def wait_terminal(rc: RequesterChain, job_id: int, limit: float) -> None:
    """Poll until every batch of ``job_id`` is Settled or Refunded; fails after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not job_status(rc.chain, job_id).terminal:
        assert time.monotonic() < deadline, f"job {job_id} not terminal within {limit:.0f} s"
        time.sleep(1.0)  # polling interval


def export_job(rc: RequesterChain, job_id: int) -> list[DatasetRow]:
    """Every accepted result of ``job_id``, fetched over signed p2p from the nodes that revealed
    them (what ``synod job export`` writes); asserts no fetch failed."""
    chain = rc.chain
    block = chain.head(0)
    history = load_history(chain, job_id, block)
    nodes = sorted({b.reveals[s].event.node for b, s, _ in history.accepted()})
    addresses = {str(k): v for k, v in p2p_addresses(chain, nodes, block).items()}
    signer = rc.signer()

    async def fetch() -> list[DatasetRow]:
        result = await export_rows(chain.chain_id, chain.market.address, [history], addresses, signer)
        assert result.failures == (), result.failures
        return list(result.rows)

    return trio.run(fetch)
