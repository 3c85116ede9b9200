"""``job post`` refuses what the contract would refuse before any transaction, on a real chain.

The requester here (Anvil key 9) holds tokens but has never approved the market: the first thing a
post would send is the approval, so a parameter the contract reverts on must be caught before it.
Each case asserts the flag is named and the account's nonce did not move; each boundary that the
contract accepts is planned without error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devnet.chain import DEMO_MODEL, ROOT, Devnet
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import model_id
from protocol.chain.models import JobParams
from protocol.chain.registry import Registry
from protocol.chain.sender import TxSender
from protocol.chain.signer import anvil_dev_signer
from protocol.operator.amounts import TokenUnits
from requester.errors import InputError
from requester.post import plan_job
from requester.rows import Dataset, load_dataset

pytestmark = pytest.mark.integration

TOKEN = 10**18
KEY = 9
WORKFLOW = ROOT / "examples" / "workflows" / "qa_pairs.json"
UNITS = TokenUnits(18, "SYN")


@pytest.fixture(scope="module")
def requester(chain: SynodContracts) -> TxSender:
    sender = chain.sender(anvil_dev_signer(KEY, chain.chain_id))
    Registry(chain).mint(sender, sender.address, 1000 * TOKEN)
    return sender


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("rows") / "rows.jsonl"
    path.write_text(
        "".join(json.dumps({"document": f"passage {i}"}) + "\n" for i in range(3)), encoding="utf-8"
    )
    return load_dataset(WORKFLOW, path)


def _params(**change: Any) -> JobParams:
    base: dict[str, Any] = {
        "model": model_id(DEMO_MODEL),
        "bounty_per_task": TOKEN,
        "batch_size": 2,
        "k": 3,
        "m": 3,
        "threshold": 60,
        "tolerance": 15,
        "junk_floor": 20,
        "validator_share_bps": 2000,
        "commit_duration": 600,
        "reveal_duration": 600,
        "score_commit_duration": 600,
        "score_reveal_duration": 600,
    }
    return JobParams(**(base | change))


REFUSED = [
    ({"bounty_per_task": 0}, r"--bounty-per-task must be above 0"),
    ({"batch_size": 0}, r"--batch-size 0 is outside 1\.\.256"),
    ({"batch_size": 257}, r"--batch-size 257 is outside 1\.\.256"),
    ({"k": 0}, r"--k 0 .*outside 1\.\.16"),
    ({"k": 17}, r"--k 17 .*outside 1\.\.16"),
    ({"m": 17}, r"--m 17 .*outside 1\.\.16"),
    ({"batch_size": 256, "k": 4, "m": 5}, r"256 x 4 x 5 = 5120 scores per batch, over the contract's 4096"),
    ({"threshold": 101}, r"--threshold 101 is outside 0\.\.100"),
    ({"tolerance": 101}, r"--tolerance 101 is outside 0\.\.100"),
    ({"threshold": 50, "junk_floor": 51}, r"--junk-floor 51 must not exceed --threshold 50"),
    ({"validator_share_bps": 10_001}, r"--validator-share-bps 10001 is outside 0\.\.10000"),
    ({"reveal_duration": 29}, r"--durations: the reveal phase of 29 s is outside 30\.\.2592000"),
    ({"score_reveal_duration": 30 * 86400 + 1}, r"score-reveal phase of 2592001 s is outside"),
]


@pytest.mark.parametrize(("change", "message"), REFUSED, ids=[m.split(" ")[0] + str(c) for c, m in REFUSED])
def test_parameters_the_contract_refuses_are_named_before_any_transaction(
    chain: SynodContracts, requester: TxSender, dataset: Dataset, change: dict[str, Any], message: str
) -> None:
    nonce = chain.w3.eth.get_transaction_count(requester.address)
    with pytest.raises(InputError, match=message):
        plan_job(chain, requester, _params(**change), dataset, UNITS)
    assert chain.w3.eth.get_transaction_count(requester.address) == nonce


def test_the_contracts_boundaries_are_accepted(
    chain: SynodContracts, requester: TxSender, dataset: Dataset
) -> None:
    for change in (
        {"batch_size": 256, "k": 4, "m": 4},  # 4096 cells: exactly the maximum
        {"batch_size": 1, "k": 16, "m": 16},
        {"threshold": 100, "tolerance": 100, "junk_floor": 100, "validator_share_bps": 10_000},
        {"commit_duration": 30, "score_reveal_duration": 30 * 86400},
    ):
        plan = plan_job(chain, requester, _params(**change), dataset, UNITS)
        assert plan.escrow == 3 * TOKEN and plan.allowance == 0 and plan.transactions == 2


def test_post_command_with_batch_size_257_sends_nothing(
    devnet: Devnet, chain: SynodContracts, requester: TxSender, tmp_path: Path
) -> None:
    """Before the fix the approval was mined, then the post reverted (JobBatchSizeOutOfRange)."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"document": "a"}\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNOD_")} | {"PYTHONPATH": str(ROOT)}
    nonce = chain.w3.eth.get_transaction_count(requester.address)
    run = subprocess.run(
        [sys.executable, "-m", "cli.main", "job", "post", "--workflow", str(WORKFLOW), "--rows", str(rows),
         "--bounty-per-task", "1", "--batch-size", "257", "--rpc-url", devnet.rpc_url,
         "--deployment", str(devnet.deployments_file), "--artifacts-dir", str(ROOT / "out"),
         "--dev-key", str(KEY)],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--batch-size 257 is outside 1..256" in run.stderr and "(nothing was sent)" in run.stderr
    assert chain.w3.eth.get_transaction_count(requester.address) == nonce
