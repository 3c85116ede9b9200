"""After a crash: reconcile the journal's unfinished actions with the chain.

For each action still ``intended`` or ``sent`` (in journal order), asking a :class:`ChainLookup`:

1. one of its transactions has a receipt -> ``mined_success`` / ``mined_reverted``;
2. else the sender's mined nonce has passed the live transactions' nonce (superseded ones, given
   up by a re-sign with a newer nonce, do not count) -> the nonce went to some
   other transaction (receipts are asked once more first, closing the race with a late mining)
   -> ``dropped``;
3. else, if the chain (mempool) knows one of its transactions -> ``sent``, left to the writer;
4. else it was never sent (the crash came between the journal and the send) -> the newest signed
   transaction is re-sent byte for byte (same nonce and hash, so it can never act twice) -> ``sent``.

The idea is lido-oracle's "skip what is already submitted" (``tx_utils.py``) made durable by a
write-ahead log, as databases do (ARIES-style redo from a log written before the effect).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

import trio
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from protocol.log import get_logger
from protocol.store.db import Store
from protocol.store.errors import ChainLookupFailed
from protocol.store.models import Action, ActionKey, ActionState
from protocol.types import Address

log = get_logger(__name__)

T = TypeVar("T")


class MinedTx(BaseModel):
    """A receipt reduced to what recovery needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    block_number: int
    success: bool


class ChainLookup(Protocol):
    """What recovery asks the chain. Every method raises :class:`ChainLookupFailed` on failure."""

    async def receipt(self, tx_hash: bytes) -> MinedTx | None:
        """The receipt of ``tx_hash`` if it is mined, else ``None``."""
        ...

    async def is_known(self, tx_hash: bytes) -> bool:
        """Whether the node knows ``tx_hash`` at all (pending in its mempool, or mined)."""
        ...

    async def mined_nonce(self, address: Address) -> int:
        """How many transactions ``address`` has mined (``eth_getTransactionCount(.., latest)``)."""
        ...

    async def send_raw(self, raw: bytes) -> None:
        """Broadcast a signed transaction (``eth_sendRawTransaction``)."""
        ...


class Outcome(enum.StrEnum):
    """What recovery did for one action."""

    MINED = "mined"
    DROPPED = "dropped"
    PENDING = "pending"
    RESENT = "resent"
    FAILED = "failed"


class Recovered(BaseModel):
    """One reconciled action: its key, states before and after, and what was done."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: ActionKey
    before: ActionState
    after: ActionState
    outcome: Outcome
    tx_hash: bytes | None
    reason: str = ""


async def _find_receipt(chain: ChainLookup, action: Action) -> tuple[bytes, MinedTx] | None:
    for tx in reversed(action.txs):
        mined = await chain.receipt(tx.tx_hash)
        if mined is not None:
            return tx.tx_hash, mined
    return None


async def _reconcile(store: Store, chain: ChainLookup, action: Action, resend: bool) -> Recovered:
    key, before = action.key, action.state

    def done(updated: Action, outcome: Outcome, tx_hash: bytes | None, reason: str = "") -> Recovered:
        return Recovered(
            key=key, before=before, after=updated.state, outcome=outcome, tx_hash=tx_hash, reason=reason
        )

    found = await _find_receipt(chain, action)
    if found is None:
        first = action.live_txs[0]
        if await chain.mined_nonce(first.sender) > first.nonce:
            found = await _find_receipt(chain, action)  # mined between the two questions?
            if found is None:
                updated = await store.mark_dropped(key)
                return done(updated, Outcome.DROPPED, None, f"nonce {first.nonce} used by another tx")
    if found is not None:
        tx_hash, mined = found
        updated = await store.mark_mined(key, tx_hash, mined.block_number, mined.success)
        return done(updated, Outcome.MINED, tx_hash)
    for tx in reversed(action.txs):
        if await chain.is_known(tx.tx_hash):
            updated = await store.mark_sent(key, tx.tx_hash)
            return done(updated, Outcome.PENDING, tx.tx_hash)
    latest = action.latest_tx
    if not resend:
        return done(action, Outcome.FAILED, latest.tx_hash, "not on chain and resend disabled")
    await chain.send_raw(latest.raw)
    updated = await store.mark_sent(key, latest.tx_hash)
    return done(updated, Outcome.RESENT, latest.tx_hash)


async def recover(store: Store, chain: ChainLookup, *, resend: bool = True) -> list[Recovered]:
    """Reconcile every unfinished action of ``store`` with ``chain``; returns one record per action.

    A lookup failure (:class:`ChainLookupFailed`) on one action is logged and reported as
    ``Outcome.FAILED`` with the action left unchanged; the others still run.
    """
    results: list[Recovered] = []
    for action in await store.unfinished_actions():
        try:
            result = await _reconcile(store, chain, action, resend)
        except ChainLookupFailed as exc:
            result = Recovered(
                key=action.key,
                before=action.state,
                after=action.state,
                outcome=Outcome.FAILED,
                tx_hash=action.latest_tx.tx_hash,
                reason=str(exc),
            )
        log.info(
            "journal_recovered",
            key=str(result.key),
            before=result.before.value,
            after=result.after.value,
            outcome=result.outcome.value,
            tx_hash=result.tx_hash,
            reason=result.reason,
        )
        results.append(result)
    return results


class Web3Lookup:
    """:class:`ChainLookup` over a web3 HTTP provider, each call in a worker thread under
    ``trio.fail_after(timeout)``. The provider's own request timeout bounds the thread; a call
    past the deadline is abandoned (reads only, and a re-send of bytes already journaled)."""

    def __init__(self, w3: Web3, timeout: float = 10.0, limiter: trio.CapacityLimiter | None = None) -> None:
        self._w3 = w3
        self._timeout = timeout
        self._limiter = limiter or trio.CapacityLimiter(2)

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            with trio.fail_after(self._timeout):
                return await trio.to_thread.run_sync(fn, limiter=self._limiter, abandon_on_cancel=True)
        except trio.TooSlowError:
            raise ChainLookupFailed(f"{what}: no answer within {self._timeout}s") from None
        except (Web3RPCError, OSError, ValueError) as exc:
            raise ChainLookupFailed(f"{what}: {exc}") from None

    async def receipt(self, tx_hash: bytes) -> MinedTx | None:
        def get() -> MinedTx | None:
            try:
                rcpt = self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None
            return MinedTx(block_number=rcpt["blockNumber"], success=rcpt["status"] == 1)

        return await self._call("eth_getTransactionReceipt", get)

    async def is_known(self, tx_hash: bytes) -> bool:
        def get() -> bool:
            try:
                self._w3.eth.get_transaction(HexBytes(tx_hash))
            except TransactionNotFound:
                return False
            return True

        return await self._call("eth_getTransactionByHash", get)

    async def mined_nonce(self, address: Address) -> int:
        return await self._call(
            "eth_getTransactionCount", partial(self._w3.eth.get_transaction_count, address, "latest")
        )

    async def send_raw(self, raw: bytes) -> None:
        def send() -> None:
            try:
                self._w3.eth.send_raw_transaction(raw)
            except Web3RPCError as exc:
                if "already known" in str(exc).lower():
                    return  # the same bytes are in the mempool: that is what we wanted
                raise

        await self._call("eth_sendRawTransaction", send)
