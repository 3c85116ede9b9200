"""Contract custom errors come back as the right Python exception, with the right argument values,
before any gas is spent (the sender simulates first)."""

from __future__ import annotations

import pytest

from protocol.canonical import digest
from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ChainError, ContractRevert
from protocol.chain.market import JobParams, Market, Phase, model_id
from protocol.chain.signer import anvil_dev_signer
from protocol.commitments import new_salt, result_commitment
from protocol.errors import SynodError
from scripts.devnet import DEMO_MODEL, Actors, fund_and_register

pytestmark = pytest.mark.integration

TOKEN = 10**18
WORKFLOW = {"w": 1}


def params(**changes: int) -> JobParams:
    base = JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=10 * TOKEN,
        k=2,
        m=3,
        threshold=50,
        tolerance=20,
        validator_share_bps=1000,
        commit_duration=120,
        reveal_duration=120,
        score_commit_duration=120,
        score_reveal_duration=120,
    )
    return base.model_copy(update=changes)


@pytest.fixture
def actors(fresh_chain: SynodContracts) -> Actors:
    return fund_and_register(fresh_chain)[0]


def _nonce_and_eth(chain: SynodContracts, address: str) -> tuple[int, int]:
    return chain.w3.eth.get_transaction_count(address), chain.w3.eth.get_balance(address)  # type: ignore[arg-type]


def test_zero_bounty_raises_before_sending(fresh_chain: SynodContracts, actors: Actors) -> None:
    chain, requester = fresh_chain, actors.requester
    before = _nonce_and_eth(chain, requester.address)
    with pytest.raises(chain.errors.TaskZeroBounty) as info:
        Market(chain).post_task(requester, params(bounty_per_task=0), WORKFLOW, {"row": 1})
    exc = info.value
    assert isinstance(exc, ContractRevert) and isinstance(exc, ChainError) and isinstance(exc, SynodError)
    assert exc.name == "TaskZeroBounty" and exc.args == {}
    assert exc.function == "postTask"
    assert _nonce_and_eth(chain, requester.address) == before  # nothing sent, no gas spent


@pytest.mark.parametrize(
    ("change", "error", "expected"),
    [
        ({"k": 0}, "TaskResultCountOutOfRange", {"k": 0, "maximum": "MAX_RESULTS"}),
        ({"m": 17}, "TaskCommitteeSizeOutOfRange", {"m": 17, "maximum": "MAX_COMMITTEE"}),
        ({"threshold": 101}, "TaskParamOutOfRange", {"value": 101, "maximum": "MAX_SCORE"}),
        (
            {"commit_duration": 0},
            "TaskDurationOutOfRange",
            {"duration": 0, "minimum": "MIN_PHASE_DURATION", "maximum": "MAX_PHASE_DURATION"},
        ),
    ],
)
def test_out_of_range_params(
    fresh_chain: SynodContracts,
    actors: Actors,
    change: dict[str, int],
    error: str,
    expected: dict[str, int | str],
) -> None:
    """Each bad parameter reverts with its error; limits named by string are read from the contract."""
    block = fresh_chain.head(0)
    functions = fresh_chain.market.functions
    want = {
        key: fresh_chain.read(functions[value](), block) if isinstance(value, str) else value
        for key, value in expected.items()
    }
    with pytest.raises(fresh_chain.errors[error]) as info:
        Market(fresh_chain).post_task(actors.requester, params(**change), WORKFLOW, {"row": 1})
    assert info.value.args == want
    assert want["maximum"] in (16, 100, 30 * 86_400)  # the documented limits (docs/contracts.md)


def test_wrong_phase_duplicate_and_mismatch(fresh_chain: SynodContracts, actors: Actors) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    (task_id,) = market.post_task(actors.requester, params(), WORKFLOW, {"row": 2}).task_ids
    node1, node2, node3 = actors.nodes
    result, salt = digest({"answer": 42}), new_salt()

    # revealing while the task is still Committing
    with pytest.raises(chain.errors.TaskWrongPhase) as phase_info:
        market.reveal_result(node1, task_id, 0, result, salt)
    assert phase_info.value.args == {
        "taskId": task_id,
        "expected": Phase.REVEALING,
        "actual": Phase.COMMITTING,
    }

    slot, _ = market.commit_result(node1, task_id, result, salt)
    with pytest.raises(chain.errors.TaskAlreadyCommitted) as dup:
        market.commit_result(node1, task_id, result, salt)
    assert dup.value.args == {"taskId": task_id, "node": node1.address}

    market.commit_result(node2, task_id, result, new_salt())  # k = 2: commits close
    with pytest.raises(chain.errors.TaskWrongPhase) as late:
        market.commit_result(node3, task_id, result, new_salt())
    assert late.value.args["actual"] == Phase.REVEALING

    wrong = digest({"answer": 41})
    with pytest.raises(chain.errors.TaskCommitmentMismatch) as mismatch:
        market.reveal_result(node1, task_id, slot, wrong, salt)
    args = mismatch.value.args
    assert args["taskId"] == task_id
    assert args["revealed"] == result_commitment(task_id, node1.address, wrong, salt)
    # TaskMarket keeps the low 224 bits of a commitment (packed with the node id in one slot)
    assert args["committed"][4:] == result_commitment(task_id, node1.address, result, salt)[4:]


def test_registry_errors_bubble_up_decoded(fresh_chain: SynodContracts, actors: Actors) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    (task_id,) = market.post_task(actors.requester, params(), WORKFLOW, {"row": 3}).task_ids
    stranger = chain.sender(anvil_dev_signer(9, chain.chain_id))
    with pytest.raises(chain.errors.RegistryNotRegistered) as info:
        market.commit_result(stranger, task_id, digest("x"), new_salt())
    assert info.value.args == {"account": stranger.address}


def test_token_and_claim_errors(fresh_chain: SynodContracts, actors: Actors) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    stranger = chain.sender(anvil_dev_signer(9, chain.chain_id))
    with pytest.raises(chain.errors.MarketNothingToClaim) as nothing:
        market.claim(stranger)
    assert nothing.value.args == {"account": stranger.address}
    # no tokens and no allowance: the ERC-20's own custom error, decoded from the token's ABI
    post = chain.market.functions.postTask(params().to_abi(), b"{}", b"{}")
    with pytest.raises(ContractRevert) as info:
        stranger.transact(post)
    assert info.value.name in {"ERC20InsufficientAllowance", "ERC20InsufficientBalance"}
    assert info.value.args["spender" if "Allowance" in info.value.name else "sender"] in {
        chain.market.address,
        stranger.address,
    }
