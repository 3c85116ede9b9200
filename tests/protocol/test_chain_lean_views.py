"""The lean view path (``SynodContracts.view``/``read``: eth_abi through the provider, no web3
``ContractFunction.call``) answers exactly what web3 answers, on a real Anvil with a batch carried
through its committee: structs, several outputs, address lists, checksummed addresses, reverts."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from web3.types import RPCEndpoint, RPCResponse

from protocol.chain.aio import TrioChain
from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ContractRevert
from protocol.chain.market import Market
from protocol.chain.models import Phase, view_value
from protocol.chain.rpc import BlockRef, translated
from scripts.devnet import ROOT, Devnet, fund_and_register, run_batch
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


def test_head_reads_are_shared_within_max_age_only(devnet: Devnet) -> None:
    """TrioChain.head(max_age): a burst of concurrent callers costs ONE request (at depth 0 a
    single eth_getBlockByNumber("latest") carrying number, hash and timestamp); a head read
    longer than max_age before the call, or max_age 0, is read anew."""
    chain = SynodContracts.connect(devnet.settings, ROOT)
    methods: list[str] = []
    real = chain.w3.provider.make_request

    def counting(method: RPCEndpoint, params: Any) -> RPCResponse:
        methods.append(str(method))
        return real(method, params)

    chain.w3.provider.make_request = counting  # type: ignore[method-assign]
    reads = TrioChain(chain)

    async def main() -> None:
        refs: list[BlockRef] = []

        async def one() -> None:
            refs.append(await reads.head(max_age=5.0))

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(one)
        assert methods == ["eth_getBlockByNumber"] and len(set(refs)) == 1
        first = refs[0]
        assert first.timestamp is not None and first.timestamp > 0
        real(RPCEndpoint("evm_mine"), [])
        methods.clear()
        assert await reads.head(max_age=5.0) == first and methods == []  # within max_age: shared
        fresh = await reads.head()  # max_age 0: always a new read
        assert fresh.number == first.number + 1 and methods == ["eth_getBlockByNumber"]
        await trio.sleep(0.3)
        methods.clear()
        assert await reads.head(max_age=0.2) == fresh and methods == ["eth_getBlockByNumber"]

    trio.run(main)
