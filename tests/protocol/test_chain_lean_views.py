"""The lean view path (``SynodContracts.view``/``read``: eth_abi through the provider, no web3
``ContractFunction.call``) answers exactly what web3 answers, on a real Anvil with a batch carried
through its committee: structs, several outputs, address lists, checksummed addresses, reverts."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ContractRevert
from protocol.chain.market import Market
from protocol.chain.models import Phase, view_value
from protocol.chain.rpc import BlockRef, translated
from scripts.devnet import fund_and_register, run_batch
from tests.protocol.test_chain_lifecycle import WORKFLOW, honest, params, results_for

pytestmark = pytest.mark.integration


def _web3(chain: SynodContracts, contract: str, name: str, args: tuple[Any, ...], block: BlockRef) -> Any:
    fn = chain.contracts[contract].functions[name](*args)
    with translated(chain.errors, name):
        return fn.call(block_identifier=block.block_identifier)


def test_lean_views_answer_what_web3_answers(fresh_chain: SynodContracts) -> None:
    chain = fresh_chain
    market = Market(chain)
    actors, _ = fund_and_register(chain)
    rows = [{"n": n, "topic": f"topic {n}"} for n in range(3)]
    posted = market.post_job(actors.requester, params(), WORKFLOW, rows * 2)
    done, waiting = posted.batches[0].batch_id, posted.batches[1].batch_id
    report = run_batch(chain, actors, done, [results_for(rows, n) for n in range(3)], honest, claim=False)
    assert report.settled is not None
    block = chain.head(0)
    validator = actors.validators[0].address
    node = actors.nodes[0].address
    calls: list[tuple[str, str, tuple[Any, ...]]] = [
        ("TaskMarket", "phaseOf", (done,)),  # two outputs
        ("TaskMarket", "phaseOf", (waiting,)),
        ("TaskMarket", "batch", (done,)),  # one struct
        ("TaskMarket", "job", (posted.job_ids[0],)),  # a struct with an address (the requester)
        ("TaskMarket", "nodeSeat", (done, 0)),  # address + bool
        ("TaskMarket", "committeeSeat", (done, 0)),
        ("TaskMarket", "committeePreview", (waiting,)),  # address[] + uint96[] (empty: Committing)
        ("TaskMarket", "balanceOf", (node,)),
        ("TaskMarket", "MAX_ROWS_PER_POST", ()),
        ("StakeRegistry", "p2pAddressOf", (node,)),  # bytes
        ("StakeRegistry", "participant", (validator,)),
        ("StakeRegistry", "accountsOf", ([1, 2, 3],)),  # address[] from a uint32[] argument
    ]
    for contract, name, args in calls:
        lean = chain.view(contract, name, args, block)
        slow = _web3(chain, contract, name, args, block)
        assert view_value(contract, name, lean) == view_value(contract, name, slow), (name, args)
    # addresses come back checksummed, as web3 gives them (eth_abi alone gives lower case)
    assert market.job(posted.job_ids[0], block).requester == actors.requester.address
    accounts = chain.view("StakeRegistry", "accountsOf", ([1, 2, 3, 4],), block)
    assert set(accounts) <= {a.address for a in actors.everyone()} and len(set(accounts)) == 4
    assert market.phase(done, block).phase is Phase.SETTLED
    # read(ContractFunction) stays web3's: callers read its named tuples by field
    fn = chain.contracts["StakeRegistry"].functions.participant(validator)
    typed = view_value(
        "StakeRegistry", "participant", chain.view("StakeRegistry", "participant", (validator,), block)
    )
    assert int(chain.read(fn, block).role) == typed.role.value and typed.stake > 0


def test_a_reverting_view_raises_the_same_decoded_error(fresh_chain: SynodContracts) -> None:
    chain = fresh_chain
    block = chain.head(0)
    stranger = "0x" + "42" * 20  # not registered: requireEligibleNode reverts with a custom error
    with pytest.raises(ContractRevert) as slow:
        _web3(chain, "StakeRegistry", "requireEligibleNode", (stranger, 1), block)
    with pytest.raises(ContractRevert) as lean:
        chain.view("StakeRegistry", "requireEligibleNode", (stranger, 1), block)
    assert type(lean.value) is type(slow.value)
    assert lean.value.args == slow.value.args
