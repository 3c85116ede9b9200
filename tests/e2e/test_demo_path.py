"""The demo's path on a real devnet with the scripted model: separate node and validator
processes, one Anvil, real p2p. A requester posts bundled passages, waits until every batch is
terminal, exports (signed p2p fetches) and verifies; then one row is edited, one added and one
dropped, and verify names each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from devnet.chain import ROOT
from devnet.network import DevnetSpec, DevnetState, down, group_members, up
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

ROWS = 8


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetState]:
    state_dir = tmp_path_factory.mktemp("devnet")
    try:
        yield up(DevnetSpec(state_dir=state_dir, nodes=4, validators=3, model="scripted"))
    finally:
        down(state_dir)
    pgid = int((state_dir / "pgid").read_text())
    assert group_members(pgid) == [], "devnet processes outlived `down`"


@pytest.fixture(scope="module")
def requester(devnet: DevnetState) -> RequesterChain:
    env = devnet.requester_env()
    return connect(
        RequesterSettings(
            rpc_url=env["SYNOD_RPC_URL"],
            deployment=Path(env["SYNOD_DEPLOYMENT"]),
            artifacts_dir=ROOT / "out",
            dev_key=1,
        )
    )


@pytest.fixture(scope="module")
def exported(requester: RequesterChain, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    full = load_dataset(
        ROOT / "examples" / "workflows" / "qa_pairs.json", ROOT / "examples" / "data" / "passages.jsonl"
    )
    dataset = Dataset(full.workflow, full.spec, full.rows[:ROWS], full.sizes[:ROWS])
    params = JobParams(
        model=model_id("gemma3:270m"),
        bounty_per_task=10 * 10**18,
        batch_size=4,
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
    sender = requester.sender()
    posted = post_planned(
        requester.chain, sender, plan_job(requester.chain, sender, params, dataset, requester.units)
    )
    (job_id,) = posted.job_ids
    deadline = time.monotonic() + 1200
    while not job_status(requester.chain, job_id).terminal:
        assert time.monotonic() < deadline, "the job did not finish in 20 minutes"
        time.sleep(1.0)  # polling interval
    chain = requester.chain
    block = chain.head(0)
    history = load_history(chain, job_id, block)
    nodes = sorted({b.reveals[s].event.node for b, s, _ in history.accepted()})
    addresses = {str(k): v for k, v in p2p_addresses(chain, nodes, block).items()}
    signer = requester.signer()

    async def fetch() -> list[DatasetRow]:
        result = await export_rows(chain.chain_id, chain.market.address, [history], addresses, signer)
        assert result.failures == ()
        return list(result.rows)

    path = tmp_path_factory.mktemp("out") / "dataset.jsonl"
    write_jsonl(trio.run(fetch), path)
    return job_id, path


def test_every_batch_settles_and_the_export_verifies(
    requester: RequesterChain, exported: tuple[int, Path]
) -> None:
    job_id, path = exported
    status = job_status(requester.chain, job_id)
    assert [b.phase.name for b in status.batches] == ["SETTLED", "SETTLED"]
    rows = [DatasetRow.model_validate(v) for _, v in read_dataset(path)]
    assert len(rows) == status.accepted >= ROWS  # every row accepted from at least one node
    assert {r.dataset_row for r in rows} == set(range(ROWS))
    assert all(isinstance(r.result, list) and r.result[0] for r in rows)  # [questions, answers]
    report = verify_dataset(requester.chain, read_dataset(path))
    assert report.valid, [str(f) for f in report.findings]


def test_one_edited_added_and_dropped_row_are_each_named(
    requester: RequesterChain, exported: tuple[int, Path], tmp_path: Path
) -> None:
    _, path = exported
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    lines[0]["result"][1][0] = "an answer typed by hand"
    dropped = lines.pop(1)
    lines.append(dict(lines[2]))
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    report = verify_dataset(requester.chain, read_dataset(tampered))
    assert [(f.kind, f.line) for f in report.findings] == [
        ("altered", 1),
        ("added", len(lines)),
        ("dropped", None),
    ]
    assert report.findings[2].task == dropped["task"]
