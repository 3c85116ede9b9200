"""The synchronous TxSender (scripts, market.py/registry.py helpers) names reverts and stale
nonces the way the async writer does: replayed at the mined block, NonceTooLow by name."""

from __future__ import annotations

import threading
import time

import pytest
from web3 import Web3
from web3.types import RPCEndpoint

from protocol.chain.errors import NonceTooLow, RevertCatalog, TransactionReverted
from protocol.chain.rpc import make_web3
from protocol.chain.sender import TxSender
from protocol.chain.signer import anvil_dev_signer
from protocol.settings import ChainSettings
from tests.chain.helpers import DEPLOYER, OTHER, artifact

pytestmark = pytest.mark.integration


def _setup(anvil_url: str) -> tuple[Web3, TxSender, object]:
    settings = ChainSettings(rpc_url=anvil_url, receipt_timeout=20.0)
    w3 = make_web3(settings)
    data = artifact("DevnetToken")
    tx = w3.eth.send_transaction({"from": DEPLOYER, "data": data["bytecode"]["object"]})
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    token = w3.eth.contract(address=address, abi=data["abi"])
    catalog = RevertCatalog({"DevnetToken": data["abi"]})
    sender = TxSender(w3, anvil_dev_signer(3, 31337), catalog, settings, 31337)
    return w3, sender, token


def test_a_mined_revert_is_replayed_at_its_own_block(anvil_url: str) -> None:
    w3, spender, token = _setup(anvil_url)
    owner = anvil_dev_signer(2, 31337).address
    fns = token.functions  # type: ignore[attr-defined]
    w3.eth.wait_for_transaction_receipt(fns.mint(owner, 10).transact({"from": owner}))
    w3.eth.wait_for_transaction_receipt(fns.approve(spender.address, 10).transact({"from": owner}))
    w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])
    outcome: list[BaseException] = []

    def spend() -> None:
        try:
            spender.transact(fns.transferFrom(owner, spender.address, 10))
        except BaseException as exc:  # collected for the main thread's asserts
            outcome.append(exc)

    thread = threading.Thread(target=spend)
    thread.start()
    try:
        deadline = 200
        while not w3.eth.get_transaction_count(spender.address, "pending") and deadline:
            time.sleep(0.02)  # polling anvil's pool for the spender's tx
            deadline -= 1
        fns.transfer(OTHER, 10).transact(
            {"from": owner, "maxPriorityFeePerGas": 10**11, "maxFeePerGas": 10**12}
        )
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    finally:
        thread.join(timeout=30)
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
    (error,) = outcome
    assert isinstance(error, TransactionReverted)
    assert error.revert is not None and error.revert.name == "ERC20InsufficientBalance"
    assert error.revert.args == {"sender": owner, "balance": 0, "needed": 10}
    assert error.block_number == w3.eth.block_number


def test_a_stale_nonce_is_named(anvil_url: str) -> None:
    w3, sender, token = _setup(anvil_url)
    fns = token.functions  # type: ignore[attr-defined]
    sender.transact(fns.mint(sender.address, 1))
    # the key is used behind the sender's back: its local nonce is now stale
    w3.eth.wait_for_transaction_receipt(fns.mint(OTHER, 1).transact({"from": sender.address}))
    with pytest.raises(NonceTooLow):
        sender.transact(fns.mint(sender.address, 2))
    # it resynchronised: the next one goes through
    assert sender.transact(fns.mint(sender.address, 2)).gas_used > 0
