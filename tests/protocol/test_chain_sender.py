"""The transaction sender against a real Anvil: local nonces, simulation, timeouts, re-sends."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_typing import HexStr
from pydantic import SecretStr
from web3.exceptions import ContractLogicError
from web3.types import RPCEndpoint

from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import TransactionTimeout
from protocol.chain.rpc import revert_data
from protocol.chain.sender import TxSender
from protocol.chain.signer import anvil_dev_signer, load_signer, write_keystore
from protocol.settings import KeystoreKey

pytestmark = pytest.mark.integration


def _automine(chain: SynodContracts, on: bool) -> None:
    chain.w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [on])


def test_local_nonce_counts_up_and_receipts_carry_gas(fresh_chain: SynodContracts) -> None:
    chain = fresh_chain
    sender = chain.sender(anvil_dev_signer(8, chain.chain_id))
    start = chain.w3.eth.get_transaction_count(sender.address)
    receipts = [sender.transact(chain.token.functions.mint(sender.address, i + 1)) for i in range(3)]
    assert [r.label for r in receipts] == ["mint"] * 3
    assert all(r.gas_used > 21_000 for r in receipts)
    assert [r.block_number for r in receipts] == sorted({r.block_number for r in receipts})
    assert chain.w3.eth.get_transaction_count(sender.address) == start + 3
    assert chain.read(chain.token.functions.balanceOf(sender.address), chain.head(0)) == 6


def test_simulate_returns_the_call_result(fresh_chain: SynodContracts) -> None:
    chain = fresh_chain
    sender = chain.sender(anvil_dev_signer(8, chain.chain_id))
    assert sender.simulate(chain.token.functions.approve(chain.market.address, 10)) is True


def test_no_receipt_in_time_raises_after_bounded_resends(fresh_chain: SynodContracts) -> None:
    chain = fresh_chain
    impatient = chain.settings.model_copy(update={"receipt_timeout": 0.3, "send_retries": 2})
    sender = TxSender(chain.w3, anvil_dev_signer(8, chain.chain_id), chain.errors, impatient, chain.chain_id)
    _automine(chain, False)
    try:
        with pytest.raises(TransactionTimeout) as info:
            sender.transact(chain.token.functions.mint(sender.address, 7))
        pending = info.value.tx_hash
        # the same signed transaction was re-sent, never a second one with a new nonce
        assert chain.w3.eth.get_transaction_count(sender.address, "pending") == (
            chain.w3.eth.get_transaction_count(sender.address, "latest") + 1
        )
    finally:
        _automine(chain, True)
    chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert chain.w3.eth.get_transaction_receipt(HexStr(pending))["status"] == 1
    # the sender resynchronises its nonce from the chain and goes on
    receipt = sender.transact(chain.token.functions.mint(sender.address, 1))
    assert receipt.gas_used > 0
    assert chain.read(chain.token.functions.balanceOf(sender.address), chain.head(0)) == 8


def test_a_keystore_account_transacts(fresh_chain: SynodContracts, tmp_path: Path) -> None:
    chain = fresh_chain
    key = Account.create().key
    path = tmp_path / "node.json"
    address = write_keystore(path, bytes(key), "s3cret-pass")
    settings = chain.settings.model_copy(
        update={"key": KeystoreKey(path=path, password=SecretStr("s3cret-pass"))}
    )
    signer = load_signer(settings.key, chain.chain_id)  # type: ignore[arg-type]
    assert signer.address == address
    chain.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [address, hex(10**18)])
    receipt = chain.sender(signer).transact(chain.token.functions.mint(address, 3))
    assert receipt.gas_used > 21_000
    assert chain.read(chain.token.functions.balanceOf(address), chain.head(0)) == 3


def test_revert_data_is_read_from_web3_errors(fresh_chain: SynodContracts) -> None:
    chain = fresh_chain
    selector = chain.errors.BatchNotFound.selector
    data = "0x" + selector.hex() + (5).to_bytes(32, "big").hex()
    assert revert_data(ContractLogicError("execution reverted", data=data)) == bytes.fromhex(data[2:])
    assert revert_data(ContractLogicError("execution reverted", data={"data": data})) == bytes.fromhex(
        data[2:]
    )
    assert revert_data(ContractLogicError("execution reverted", data=None)) is None
    with pytest.raises(chain.errors.BatchNotFound) as info:
        chain.read(chain.market.functions.settle(5, []), chain.head(0))  # eth_call of a write
    assert info.value.args == {"batchId": 5}
    assert info.value.data == bytes.fromhex(data[2:])
