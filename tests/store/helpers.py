"""Shared helpers of the journal tests: signed transactions from the Anvil dev keys."""

from __future__ import annotations

from typing import Any

from protocol.chain.signer import anvil_dev_signer
from protocol.settings import DEVNET_CHAIN_ID
from protocol.store.models import ActionKey, SignedTx

RECIPIENT = "0x000000000000000000000000000000000000dEaD"
GWEI = 10**9


def dev_address(index: int) -> str:
    return anvil_dev_signer(index, DEVNET_CHAIN_ID).address


def signed_tx(
    index: int,
    nonce: int,
    *,
    value: int = 1,
    to: str | None = RECIPIENT,
    data: bytes = b"",
    gas: int = 21_000,
    max_fee: int = 2 * GWEI,
) -> SignedTx:
    """A signed EIP-1559 transaction from Anvil dev account ``index`` (chain 31337)."""
    signer = anvil_dev_signer(index, DEVNET_CHAIN_ID)
    tx: dict[str, Any] = {
        "chainId": DEVNET_CHAIN_ID,
        "nonce": nonce,
        "value": value,
        "gas": gas,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": GWEI,
        "data": data,
    }
    if to is not None:
        tx["to"] = to
    signed = signer.sign_transaction(tx)
    return SignedTx(
        raw=bytes(signed.raw_transaction), tx_hash=bytes(signed.hash), nonce=nonce, sender=signer.address
    )


def key_for(index: int, batch: int = 1, phase: str = "commit") -> ActionKey:
    return ActionKey(batch=batch, participant=dev_address(index), phase=phase)
