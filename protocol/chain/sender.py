"""One transaction sender per key: local nonce, simulate, send, wait, bounded retries.

Simulation (``eth_call`` from the sender) comes first, so a transaction that would revert raises
the decoded :class:`~protocol.chain.errors.ContractRevert` without spending gas. A signed
transaction is re-sent byte for byte on a timeout (same nonce, same hash: idempotent), never
re-signed with a new nonce, so a retry can never do a thing twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import TimeExhausted, TransactionNotFound, Web3RPCError
from web3.types import Nonce, TxParams, TxReceipt, Wei

from protocol.chain.errors import (
    ContractRevert,
    NonceTooLow,
    RevertCatalog,
    RpcError,
    TransactionReverted,
    TransactionTimeout,
)
from protocol.chain.rpc import translated
from protocol.chain.signer import Signer
from protocol.log import get_logger
from protocol.settings import ChainSettings
from protocol.types import Address

log = get_logger(__name__)

GAS_MARGIN_PERCENT = 125
"""Gas limit = estimate x 1.25: headroom for state that moves between estimate and inclusion."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a mined transaction came to."""

    label: str
    tx_hash: str
    block_number: int
    gas_used: int
    raw: TxReceipt


class TxSender:
    """Sends the transactions of one account, one at a time (thread-safe)."""

    def __init__(
        self, w3: Web3, signer: Signer, catalog: RevertCatalog, settings: ChainSettings, chain_id: int
    ) -> None:
        self._w3 = w3
        self._signer = signer
        self._catalog = catalog
        self._settings = settings
        self._chain_id = chain_id
        self._nonce: int | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> Address:
        return self._signer.address

    def __repr__(self) -> str:
        return f"TxSender({self.address}, nonce={self._nonce})"

    def simulate(self, fn: ContractFunction, value: int = 0) -> Any:
        """``eth_call`` ``fn`` from this account against the pending state; returns its result."""
        label = fn.fn_name
        with translated(self._catalog, label):
            return fn.call({"from": self.address, "value": Wei(value)}, block_identifier="pending")

    def transact(self, fn: ContractFunction, value: int = 0, label: str | None = None) -> Receipt:
        """Simulate, sign, send and wait for ``fn``; returns the receipt of a successful transaction.

        Raises the decoded :class:`ContractRevert` if the simulation reverts (nothing is sent),
        :class:`TransactionReverted` if it reverts once mined, :class:`TransactionTimeout` or
        :class:`RpcError` when the node cannot be made to take or mine it.
        """
        name = label or fn.fn_name
        with self._lock:
            self.simulate(fn, value)
            if self._nonce is None:
                self._nonce = self._fetch_nonce()
            params: TxParams = {
                "from": self.address,
                "value": Wei(value),
                "nonce": Nonce(self._nonce),
                "chainId": self._chain_id,
            }
            with translated(self._catalog, name):
                tx = fn.build_transaction(params)  # estimates gas, fills EIP-1559 fees
            tx["gas"] = int(tx["gas"]) * GAS_MARGIN_PERCENT // 100
            signed = self._signer.sign_transaction(dict(tx))
            receipt = self._send_and_wait(
                name, bytes(signed.raw_transaction), HexBytes(signed.hash), self._nonce
            )
        return self._check(name, fn, value, receipt)

    def _fetch_nonce(self) -> int:
        with translated(self._catalog, "eth_getTransactionCount"):
            return int(self._w3.eth.get_transaction_count(self.address, "pending"))

    def _send_and_wait(self, name: str, raw: bytes, tx_hash: HexBytes, nonce: int) -> TxReceipt:
        attempts = self._settings.send_retries
        for attempt in range(1, attempts + 1):
            try:
                self._w3.eth.send_raw_transaction(raw)
            except Web3RPCError as exc:
                # An earlier attempt reached the node ("already known", "already imported",
                # "nonce too low" once mined: wording differs by client), so ask the node itself.
                if not self._known(tx_hash):
                    self._nonce = None  # resynchronise from the chain next time
                    if "nonce too low" in str(exc).lower():
                        raise NonceTooLow(
                            "eth_sendRawTransaction", -32000, f"{name}: nonce {nonce} too low: {exc}"
                        ) from None
                    raise RpcError(f"{name}: node refused the transaction: {exc}") from None
            except OSError as exc:  # connection reset, HTTP timeout: the tx may or may not be in
                log.warning("tx_send_retry", label=name, attempt=attempt, error=type(exc).__name__)
                continue
            log.debug("tx_sent", label=name, tx_hash=tx_hash.to_0x_hex(), nonce=nonce, attempt=attempt)
            try:
                receipt = self._w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=self._settings.receipt_timeout, poll_latency=self._settings.receipt_poll
                )
            except TimeExhausted:
                log.warning("tx_receipt_timeout", label=name, tx_hash=tx_hash.to_0x_hex(), attempt=attempt)
                continue
            except (Web3RPCError, OSError) as exc:
                log.warning("tx_receipt_retry", label=name, attempt=attempt, error=type(exc).__name__)
                continue
            self._nonce = nonce + 1
            return receipt
        self._nonce = None
        raise TransactionTimeout(
            f"{name}: no receipt for {tx_hash.to_0x_hex()} after {attempts} attempts of "
            f"{self._settings.receipt_timeout}s",
            tx_hash.to_0x_hex(),
        )

    def _known(self, tx_hash: HexBytes) -> bool:
        """Whether the node has this exact transaction (pending or mined)."""
        try:
            self._w3.eth.get_transaction(tx_hash)
        except (TransactionNotFound, Web3RPCError, OSError):
            return False
        return True

    def _check(self, name: str, fn: ContractFunction, value: int, receipt: TxReceipt) -> Receipt:
        tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
        gas_used = int(receipt["gasUsed"])
        block = int(receipt["blockNumber"])
        if receipt["status"] != 1:
            reason = "no reason"
            revert: ContractRevert | None = None
            try:  # replay at the end of the block it was mined in: earlier transactions of that
                # block (what made it revert) are applied there; the parent block misses them
                with translated(self._catalog, name):
                    fn.call({"from": self.address, "value": Wei(value)}, block_identifier=block)
            except ContractRevert as exc:
                reason, revert = str(exc), exc
            except RpcError:
                pass
            raise TransactionReverted(
                f"{name}: {tx_hash} reverted in block {block}: {reason}", tx_hash, gas_used, revert, block
            )
        log.info("tx_mined", label=name, tx_hash=tx_hash, block=block, gas_used=gas_used)
        return Receipt(label=name, tx_hash=tx_hash, block_number=block, gas_used=gas_used, raw=receipt)
