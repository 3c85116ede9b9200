"""The deployment JSON, the facade built from it, pinned reads, posted digests and the trio adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.canonical import canonical_bytes, digest, keccak256
from protocol.chain.aio import TrioChain
from protocol.chain.contracts import SynodContracts
from protocol.chain.deployment import CONTRACT_NAMES, load_deployment
from protocol.chain.errors import DeploymentError
from protocol.chain.market import Market, events, model_id
from protocol.chain.models import BatchPosted, JobParams, JobPosted
from protocol.chain.signer import anvil_dev_signer
from protocol.commitments import input_hash
from scripts.devnet import DEMO_MODEL, ROOT, Actors, Devnet, fund_and_register

pytestmark = pytest.mark.integration

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def test_deployment_file_loaded(devnet: Devnet, chain: SynodContracts) -> None:
    deployment = load_deployment(devnet.deployments_file)
    assert deployment.chain_id == 31337 == chain.chain_id
    assert set(CONTRACT_NAMES) <= set(deployment.contracts)
    assert deployment.deployer == anvil_dev_signer(0, 31337).address
    head = chain.head(0)
    assert 0 <= deployment.deploy_block <= head.number
    for name in CONTRACT_NAMES:
        ref = deployment.contracts[name]
        assert (ROOT / ref.artifact).is_file()
        assert len(chain.w3.eth.get_code(ref.address)) > 0
    # the contracts point at each other as deployed
    assert chain.read(chain.market.functions.registry(), head) == deployment.address("StakeRegistry")
    assert chain.read(chain.market.functions.token(), head) == deployment.address("DevnetToken")
    assert chain.read(chain.registry.functions.taskMarket(), head) == deployment.address("TaskMarket")


def test_bad_deployment_files_rejected(devnet: Devnet, tmp_path: Path) -> None:
    raw = json.loads(devnet.deployments_file.read_text())
    with pytest.raises(DeploymentError, match="cannot read"):
        load_deployment(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**raw, "surprise": 1}))
    with pytest.raises(DeploymentError, match="surprise"):
        load_deployment(broken)
    other_chain = tmp_path / "other.json"
    other_chain.write_text(json.dumps({**raw, "chainId": 5}))
    settings_ = devnet.settings.model_copy(update={"deployments_file": other_chain})
    with pytest.raises(DeploymentError, match="chain 5"):
        SynodContracts.connect(settings_, ROOT)


def test_reads_are_pinned_to_a_block(fresh_chain: SynodContracts) -> None:
    chain = fresh_chain
    before = chain.head(0)
    count_before = chain.read(chain.market.functions.batchCount(), before)
    fund_and_register(chain)  # moves the chain on
    after = chain.head(0)
    assert after.number > before.number
    assert chain.read(chain.market.functions.batchCount(), before) == count_before
    confirmed = chain.head(2)
    assert confirmed.number == after.number - 2


@pytest.fixture
def actors(fresh_chain: SynodContracts) -> Actors:
    return fund_and_register(fresh_chain)[0]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workflow=json_values, rows=st.lists(json_values, min_size=1, max_size=5))
def test_posted_hashes_equal_python_digests(
    fresh_chain: SynodContracts, actors: Actors, workflow: Any, rows: list[Any]
) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    params = JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=1,
        batch_size=2,
        k=1,
        m=1,
        threshold=0,
        tolerance=0,
        junk_floor=0,
        validator_share_bps=0,
        commit_duration=60,
        reveal_duration=60,
        score_commit_duration=60,
        score_reveal_duration=60,
    )
    posted = market.post_job(actors.requester, params, workflow, rows)
    block = chain.head(0)
    (job_event,) = events(chain, posted.receipts[-1], JobPosted)
    assert job_event.workflow == canonical_bytes(workflow)
    assert [b.rows for b in posted.batches] == [len(rows[i : i + 2]) for i in range(0, len(rows), 2)]
    posted_rows = [row for e in events(chain, posted.receipts[-1], BatchPosted) for row in e.rows]
    assert posted_rows == [canonical_bytes(row) for row in rows]
    for batch in posted.batches:
        chunk = rows[batch.dataset_row : batch.dataset_row + batch.rows]
        stored = market.batch(batch.batch_id, block).input_hash
        assert stored == input_hash(keccak256(job_event.workflow), [canonical_bytes(r) for r in chunk])
        assert [keccak256(canonical_bytes(r)) for r in chunk] == [digest(r) for r in chunk]


def test_trio_adapter_reads_and_sends(fresh_chain: SynodContracts) -> None:
    chain = fresh_chain
    sender = chain.sender(anvil_dev_signer(8, chain.chain_id))

    async def main() -> tuple[list[int], int]:
        aio = TrioChain(chain, trio.CapacityLimiter(2))
        with trio.fail_after(60):
            block = await aio.head()
            supplies: list[int] = []

            async def read_supply() -> None:
                supplies.append(await aio.read(chain.token.functions.totalSupply(), block))

            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(read_supply)
            receipt = await aio.transact(sender, chain.token.functions.mint(sender.address, 5))
            return supplies, receipt.gas_used

    supplies, gas_used = trio.run(main)
    assert len(set(supplies)) == 1 and len(supplies) == 4
    assert gas_used > 21_000
    assert chain.read(chain.token.functions.balanceOf(sender.address), chain.head(0)) == 5
