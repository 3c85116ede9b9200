"""The demo's path on a real devnet with the scripted model: separate node and validator
processes, one Anvil, real p2p. A requester posts bundled passages, waits until every batch is
terminal, exports (signed p2p fetches) and verifies; then one row is edited, one added and one
dropped, and verify names each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devnet.demo import demo_job_params
from devnet.network import DevnetSpec, DevnetState
from requester.connect import RequesterChain
from requester.export import DatasetRow, write_jsonl
from requester.status import job_status
from requester.verify import read_dataset, verify_dataset
from tests.e2e.helpers import TOKEN, export_job, post_passages, requester_of, running_devnet, wait_terminal

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

ROWS = 8


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetState]:
    spec = DevnetSpec(state_dir=tmp_path_factory.mktemp("devnet"), nodes=4, validators=3, model="scripted")
    with running_devnet(spec) as state:
        yield state


@pytest.fixture(scope="module")
def requester(devnet: DevnetState) -> RequesterChain:
    return requester_of(devnet)


@pytest.fixture(scope="module")
def exported(requester: RequesterChain, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    job_id = post_passages(requester, demo_job_params(10 * TOKEN, batch_size=4, phase_seconds=300), ROWS)
    wait_terminal(requester, job_id, limit=1200)
    path = tmp_path_factory.mktemp("out") / "dataset.jsonl"
    write_jsonl(export_job(requester, job_id), path)
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
