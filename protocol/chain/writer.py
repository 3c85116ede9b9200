"""One transaction writer per key: a trio task fed by a memory channel, with its own nonce.

The writer owns everything about one account's transactions, so nothing else needs a lock::

    async with AsyncRpc.from_settings(settings, catalog) as rpc, trio.open_nursery() as nursery:
        writer = TxWriter(rpc, signer, chain_id, settings, journal=my_journal)
        await nursery.start(writer.run)
        with trio.fail_after(10):
            receipt = await writer.transact(TxCall.to_contract(token, data, label="mint"))

For every request, in order: simulate (``eth_call`` against ``pending``; a revert raises the decoded
:class:`ContractRevert` and nothing is sent), estimate gas, take the local nonce, price with
EIP-1559 fees, sign, tell the journal (:class:`TxJournal.intend`, *before* sending: the intent is
durable first), send, and poll for the receipt. Retries are bounded and logged; re-sends are byte
for byte (same hash: idempotent). The rules, after lido-oracle's ``tx_utils`` ("skip what is
already submitted, simulate, send, wait") and geth's replacement rule (a replacement must raise
both fees by >= 10 %):

* "nonce too low" on a transaction the node does not know -> :class:`NonceTooLow` is logged, the
  nonce is read again from the chain and the call re-signed (it was never in the pool, so it
  cannot run twice).
* No receipt after ``settings.stuck_after`` s -> the same nonce is re-signed with both fees
  raised ``fee_bump_percent`` (at most ``max_replacements`` times, never above
  ``max_fee_per_gas``); every hash sent for that nonce is watched, whichever is mined wins.
* A transaction is never abandoned in an unknown state: once signed and possibly sent, the
  writer keeps watching it until one of its hashes is mined or the nonce is provably taken by
  another transaction. A caller whose deadline expires gets control back at once (waiting is
  cancellable); the request stays tracked in :attr:`TxWriter.tracked` and its final outcome goes
  to the journal (:meth:`TxJournal.settle`) and the log (``tx_final``).
* A revert after mining is replayed with ``eth_call`` at the block it was mined in (the state
  after that block, which holds the earlier transactions that changed the outcome) and raised as
  :class:`TransactionReverted` with ``.revert`` the decoded custom error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

import trio
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict
from web3.contract.contract import ContractFunction

from protocol.chain.aio import AsyncRpc
from protocol.chain.errors import (
    ChainError,
    ContractRevert,
    JsonRpcError,
    NonceTooLow,
    RpcError,
    TransactionReverted,
)
from protocol.chain.signer import Signer
from protocol.chain.wire import WireReceipt, hex_data, hex_quantity
from protocol.log import get_logger
from protocol.settings import ChainSettings
from protocol.types import Address, address_of

log = get_logger(__name__)

GAS_MARGIN_PERCENT = 125
"""Gas limit = estimate x 1.25: headroom for state that moves between estimate and inclusion."""

PREPARE_ATTEMPTS = 3
"""Attempts for the steps before signing (simulate, estimate, fees): nothing is sent yet, so
after these the request fails with the RPC error."""

RESYNC_LIMIT = 5
"""Re-signs of one request after its nonce was taken elsewhere, before it fails."""

SEND_ATTEMPTS = 3
"""Attempts to hand one signed transaction to the node before watching for it regardless."""


@dataclass(frozen=True, slots=True)
class TxCall:
    """What to send: ``data`` to contract ``to`` with ``value`` wei; ``label`` names it in logs."""

    to: Address
    data: bytes
    value: int = 0
    label: str = "tx"

    @classmethod
    def from_function(cls, fn: ContractFunction, value: int = 0, label: str | None = None) -> TxCall:
        """The call a web3 contract function object describes (its address and ABI-encoded data)."""
        return cls(
            to=address_of(fn.address),
            data=bytes(HexBytes(fn._encode_transaction_data())),
            value=value,
            label=label or fn.fn_name,
        )


class TxIntent(BaseModel):
    """What the journal records before a signed transaction is sent (no key material).

    ``raw`` is the signed transaction: after a crash it can be re-sent byte for byte.
    ``replaces`` is the hash this one replaces (fee bump, same nonce) or ``None``.
    ``supersedes`` is set on the first intent of a re-sign with a NEW nonce (after "nonce too low"
    or the nonce provably taken by another transaction): the newest hash of the nonce given up.
    None of that nonce's hashes can be mined any more; the journal marks them superseded.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: int
    label: str
    sender: Address
    to: Address
    nonce: int
    tx_hash: bytes
    raw: bytes
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    replaces: bytes | None = None
    supersedes: bytes | None = None


class TxOutcome(BaseModel):
    """How a request ended: ``mined`` (status 1), ``reverted`` (mined, status 0), ``refused``
    (simulation reverted or the node refused it: nothing was sent), ``failed`` (an error before
    anything was sent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: int
    label: str
    status: Literal["mined", "reverted", "refused", "failed"]
    tx_hash: bytes | None = None
    nonce: int | None = None
    block_number: int | None = None
    gas_used: int | None = None
    reason: str | None = None


class TxJournal(Protocol):
    """The writer's durable hook: ``intend`` is awaited BEFORE a signed transaction is sent (a
    replacement is a new intent); ``settle`` once per request when its outcome is final."""

    async def intend(self, intent: TxIntent) -> None:
        """Record the intent durably. An exception here propagates out of :meth:`TxWriter.run`
        (the service stops): nothing is ever sent without its journal entry. A later intent with
        the same ``request_id`` follows an earlier one: a fee bump (same nonce, ``replaces``
        names the hash it replaces) or a re-sign with a new nonce after the old one was taken
        (``supersedes`` names the newest hash given up)."""
        ...

    async def settle(self, outcome: TxOutcome) -> None:
        """Record the final outcome."""
        ...


class TxHandle:
    """A submitted request: wait for it with :meth:`wait` (cancellable; the request goes on)."""

    def __init__(self, request_id: int, call: TxCall) -> None:
        self.request_id = request_id
        self.call = call
        self.sent: list[bytes] = []
        """Every hash signed for this request (the first, then replacements)."""
        self.nonce: int | None = None
        self.receipt: WireReceipt | None = None
        self.error: ChainError | None = None
        self._done = trio.Event()

    @property
    def done(self) -> bool:
        """Whether the outcome is final."""
        return self._done.is_set()

    def _finish(self, receipt: WireReceipt | None, error: ChainError | None) -> None:
        self.receipt, self.error = receipt, error
        self._done.set()

    async def wait(self) -> WireReceipt:
        """The receipt of the mined transaction; raises what the request ended with
        (:class:`ContractRevert`, :class:`TransactionReverted`, :class:`RpcError`)."""
        await self._done.wait()
        if self.error is not None:
            raise self.error
        assert self.receipt is not None
        return self.receipt


@dataclass
class _Fees:
    max_fee: int
    tip: int

    def bumped(self, percent: int, cap: int | None) -> _Fees | None:
        tip = math.ceil(self.tip * (100 + percent) / 100) + 1
        fee = math.ceil(self.max_fee * (100 + percent) / 100) + 1
        if cap is not None and fee > cap:
            return None
        return _Fees(fee, min(tip, fee))


@dataclass
class _Stats:
    sent: int = 0
    replaced: int = 0
    resynced: int = 0
    mined: int = 0
    reverted: int = 0
    refused: int = 0
    failed: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class TxWriter:
    """Sends the transactions of one key, one after another, from a trio memory channel.

    Start :meth:`run` in a nursery (``await nursery.start(writer.run)``); callers use
    :meth:`submit` (returns a :class:`TxHandle` at once) or :meth:`transact` (submit + wait).
    ``settings`` gives ``receipt_poll``, ``stuck_after``, ``fee_bump_percent``,
    ``max_fee_per_gas`` and ``max_replacements``. One writer per key per process: two writers (or
    any other sender) on one key make each other resynchronise through :class:`NonceTooLow`.
    """

    def __init__(
        self,
        rpc: AsyncRpc,
        signer: Signer,
        chain_id: int,
        settings: ChainSettings,
        journal: TxJournal | None = None,
        buffer: int = 64,
    ) -> None:
        self._rpc = rpc
        self._signer = signer
        self._chain_id = chain_id
        self._settings = settings
        self._journal = journal
        self._send, self._receive = trio.open_memory_channel[TxHandle](buffer)
        self._ids = 0
        self._nonce: int | None = None
        self.tracked: dict[int, TxHandle] = {}
        """Requests submitted and not final yet, by request id."""
        self.stats = _Stats()

    @property
    def address(self) -> Address:
        """The account this writer sends from."""
        return self._signer.address

    def __repr__(self) -> str:
        return f"TxWriter({self.address}, nonce={self._nonce}, tracked={len(self.tracked)})"

    async def submit(self, call: TxCall) -> TxHandle:
        """Queue ``call``; returns its handle (waits only while the queue is full)."""
        self._ids += 1
        handle = TxHandle(self._ids, call)
        self.tracked[handle.request_id] = handle
        await self._send.send(handle)
        return handle

    async def transact(self, call: TxCall) -> WireReceipt:
        """Submit ``call`` and wait for its receipt (see :meth:`TxHandle.wait`). Under a caller's
        deadline this returns or raises in time; the transaction stays tracked regardless."""
        handle = await self.submit(call)
        return await handle.wait()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer loop: handle requests one at a time until cancelled."""
        task_status.started()
        async with self._receive:
            async for handle in self._receive:
                await self._handle(handle)

    # ------------------------------------------------------------------ one request

    async def _handle(self, handle: TxHandle) -> None:
        call = handle.call
        receipt: WireReceipt | None = None
        error: ChainError | None = None
        try:
            receipt = await self._execute(handle)
            if receipt.status != 1:
                error = await self._reverted(handle, receipt)
        except ContractRevert as exc:
            error = exc
            await self._settle(handle, "refused", reason=str(exc))
        except ChainError as exc:
            error = exc
            await self._settle(handle, "failed", reason=str(exc))
        else:
            status: Literal["mined", "reverted"] = "mined" if error is None else "reverted"
            await self._settle(
                handle,
                status,
                tx_hash=receipt.transaction_hash,
                block=receipt.block_number,
                gas=receipt.gas_used,
                reason=None if error is None else str(error),
            )
        finally:
            self.tracked.pop(handle.request_id, None)
        log.info(
            "tx_final",
            label=call.label,
            request=handle.request_id,
            ok=error is None,
            tx_hash=receipt.transaction_hash if receipt else None,
            error=None if error is None else type(error).__name__,
        )
        handle._finish(receipt, error)

    async def _settle(
        self,
        handle: TxHandle,
        status: Literal["mined", "reverted", "refused", "failed"],
        tx_hash: bytes | None = None,
        block: int | None = None,
        gas: int | None = None,
        reason: str | None = None,
    ) -> None:
        setattr(self.stats, status, getattr(self.stats, status) + 1)
        if self._journal is None:
            return
        outcome = TxOutcome(
            request_id=handle.request_id,
            label=handle.call.label,
            status=status,
            tx_hash=tx_hash,
            nonce=handle.nonce,
            block_number=block,
            gas_used=gas,
            reason=reason,
        )
        await self._journal.settle(outcome)

    async def _prepare(self, call: TxCall) -> tuple[int, _Fees]:
        """Simulate, estimate and price ``call`` (nothing sent); bounded retries on RPC errors."""
        for attempt in range(1, PREPARE_ATTEMPTS + 1):
            try:
                await self._rpc.call(
                    call.to, call.data, "pending", sender=self.address, value=call.value, what=call.label
                )
                tx = {
                    "from": self.address,
                    "to": call.to,
                    "data": hex_data(call.data),
                    "value": hex_quantity(call.value),
                }
                estimate, block, tip = await self._rpc.batch_results(
                    [
                        ("eth_estimateGas", [tx, "pending"]),
                        ("eth_getBlockByNumber", ["latest", False]),
                        ("eth_maxPriorityFeePerGas", []),
                    ],
                    write=True,
                )
                gas = int(estimate, 16) * GAS_MARGIN_PERCENT // 100
                base = int(block["baseFeePerGas"], 16)
                priority = int(tip, 16)
                return gas, _Fees(max_fee=2 * base + priority, tip=priority)
            except ContractRevert:
                raise
            except (RpcError, KeyError, TypeError, ValueError) as exc:
                if attempt == PREPARE_ATTEMPTS:
                    if isinstance(exc, RpcError):
                        raise
                    raise RpcError(f"{call.label}: malformed estimate/fee reply: {exc!r}") from None
                log.warning("tx_prepare_retry", label=call.label, attempt=attempt, error=str(exc))
                await trio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    async def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = await self._rpc.transaction_count(self.address, "pending", write=True)
        return self._nonce

    def _sign(self, call: TxCall, nonce: int, gas: int, fees: _Fees) -> tuple[bytes, bytes]:
        tx = {
            "type": 2,
            "chainId": self._chain_id,
            "nonce": nonce,
            "to": call.to,
            "value": call.value,
            "data": call.data,
            "gas": gas,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.tip,
        }
        signed = self._signer.sign_transaction(tx)
        return bytes(signed.raw_transaction), bytes(signed.hash)

    async def _execute(self, handle: TxHandle) -> WireReceipt:
        call = handle.call
        gas, fees = await self._prepare(call)
        given_up: bytes | None = None  # the newest hash of a nonce abandoned in an earlier pass
        for _ in range(RESYNC_LIMIT):  # a pass per nonce; another only when the nonce was taken
            nonce = await self._next_nonce()
            handle.nonce = nonce
            hashes: list[bytes] = []
            replacements = 0
            current = fees
            while True:  # one pass per fee level of this nonce
                raw, tx_hash = self._sign(call, nonce, gas, current)
                if self._journal is not None:
                    await self._journal.intend(
                        TxIntent(
                            request_id=handle.request_id,
                            label=call.label,
                            sender=self.address,
                            to=call.to,
                            nonce=nonce,
                            tx_hash=tx_hash,
                            raw=raw,
                            max_fee_per_gas=current.max_fee,
                            max_priority_fee_per_gas=current.tip,
                            replaces=hashes[-1] if hashes else None,
                            supersedes=None if hashes else given_up,
                        )
                    )
                hashes.append(tx_hash)
                handle.sent.append(tx_hash)
                try:
                    await self._deliver(call, raw, tx_hash, nonce, hashes)
                except NonceTooLow:
                    if len(hashes) == 1:  # our nonce was taken before we ever got in: re-sign
                        self.stats.resynced += 1
                        self._nonce = None
                        given_up = hashes[-1]
                        break
                    # a replacement refused because an earlier hash of ours was mined: watch them
                receipt = await self._watch(call, nonce, hashes, self._settings.stuck_after)
                if receipt is _TAKEN:
                    self.stats.resynced += 1
                    self._nonce = None
                    given_up = hashes[-1]
                    break
                if isinstance(receipt, WireReceipt):
                    self._nonce = nonce + 1
                    return receipt
                bumped = current.bumped(self._settings.fee_bump_percent, self._settings.max_fee_per_gas)
                if bumped is None or replacements >= self._settings.max_replacements:
                    log.warning("tx_stuck_at_max_fee", label=call.label, nonce=nonce, tx_hash=tx_hash)
                    receipt = await self._watch(call, nonce, hashes, None)
                    if isinstance(receipt, WireReceipt):
                        self._nonce = nonce + 1
                        return receipt
                    self.stats.resynced += 1
                    self._nonce = None
                    given_up = hashes[-1]
                    break
                replacements += 1
                self.stats.replaced += 1
                log.info(
                    "tx_replace",
                    label=call.label,
                    nonce=nonce,
                    old=tx_hash,
                    max_fee=bumped.max_fee,
                    tip=bumped.tip,
                )
                current = bumped
        raise RpcError(
            f"{call.label}: nonce taken elsewhere {RESYNC_LIMIT} times; is another sender using the key?"
        )

    async def _deliver(
        self, call: TxCall, raw: bytes, tx_hash: bytes, nonce: int, hashes: list[bytes]
    ) -> None:
        """Hand ``raw`` to the node; re-sent byte for byte on timeouts. Raises :class:`NonceTooLow`
        only when the node refuses the nonce and has none of our hashes for it."""
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                await self._rpc.send_raw_transaction(raw)
                self.stats.sent += 1
                log.debug("tx_sent", label=call.label, tx_hash=tx_hash, nonce=nonce, attempt=attempt)
                return
            except NonceTooLow as exc:
                if await self._any_known(hashes):
                    return  # an earlier attempt of ours got in (and maybe mined): watch it
                log.warning("tx_nonce_too_low", label=call.label, nonce=nonce, error=exc.rpc_message)
                raise
            except JsonRpcError as exc:
                if "already known" in exc.rpc_message.lower() or await self._any_known([tx_hash]):
                    return
                if len(hashes) > 1:
                    # a refused replacement ("underpriced", or anything else): an earlier hash of
                    # this nonce may still be pending, so keep watching it, never give the nonce up
                    log.warning(
                        "tx_replacement_refused", label=call.label, nonce=nonce, error=exc.rpc_message
                    )
                    return  # the earlier fee level stays in the pool; keep watching it
                raise
            except RpcError as exc:  # timeout, connection: the node may or may not have it
                log.warning("tx_send_retry", label=call.label, attempt=attempt, error=str(exc))
                await trio.sleep(0.1 * 2**attempt)
        log.warning("tx_send_unconfirmed", label=call.label, tx_hash=tx_hash, nonce=nonce)

    async def _any_known(self, hashes: list[bytes]) -> bool:
        try:
            replies = await self._rpc.batch(
                [("eth_getTransactionByHash", [hex_data(h)]) for h in hashes], write=True
            )
        except RpcError:
            return False
        return any(r is not None and not isinstance(r, JsonRpcError) for r in replies)

    async def _watch(
        self, call: TxCall, nonce: int, hashes: list[bytes], patience: float | None
    ) -> WireReceipt | object | None:
        """Poll the receipts of ``hashes`` until one is mined (returned), ``patience`` seconds
        pass (``None``), or the account's mined nonce passed ``nonce`` with none of ours mined
        (:data:`_TAKEN`). RPC failures are logged and polled through: the tx is never dropped."""
        deadline = None if patience is None else trio.current_time() + patience
        poll = self._settings.receipt_poll
        failures = 0
        while deadline is None or trio.current_time() < deadline:
            try:
                calls = [("eth_getTransactionReceipt", [hex_data(h)]) for h in hashes]
                calls.append(("eth_getTransactionCount", [self.address, "latest"]))
                replies = await self._rpc.batch(calls, write=True)
                for reply in replies[:-1]:
                    if reply is not None and not isinstance(reply, JsonRpcError):
                        receipt = WireReceipt.model_validate(reply)
                        return receipt
                count = replies[-1]
                if isinstance(count, str) and int(count, 16) > nonce:
                    # mined nonce moved past ours; re-check receipts once (a race with mining)
                    again = await self._rpc.batch(calls[:-1], write=True)
                    for reply in again:
                        if reply is not None and not isinstance(reply, JsonRpcError):
                            return WireReceipt.model_validate(reply)
                    log.warning("tx_nonce_taken_elsewhere", label=call.label, nonce=nonce)
                    return _TAKEN
                failures = 0
            except (RpcError, ValueError) as exc:
                failures += 1
                log.warning(
                    "tx_receipt_retry", label=call.label, nonce=nonce, failures=failures, error=str(exc)
                )
                await trio.sleep(min(poll * 2**failures, 5.0))
                continue
            await trio.sleep(poll)
        return None

    async def _reverted(self, handle: TxHandle, receipt: WireReceipt) -> TransactionReverted:
        """Name a mined revert by replaying the call at the end of its block."""
        call = handle.call
        revert: ContractRevert | None = None
        reason = "no reason"
        try:
            await self._rpc.call(
                call.to,
                call.data,
                receipt.block_number,
                sender=self.address,
                value=call.value,
                what=call.label,
                write=True,
            )
        except ContractRevert as exc:
            revert, reason = exc, str(exc)
        except RpcError as exc:
            reason = f"replay failed: {exc}"
        tx_hash = "0x" + receipt.transaction_hash.hex()
        return TransactionReverted(
            f"{call.label}: {tx_hash} reverted in block {receipt.block_number}: {reason}",
            tx_hash,
            receipt.gas_used,
            revert,
            receipt.block_number,
        )


_TAKEN = object()
"""Sentinel of :meth:`TxWriter._watch`: the nonce was used by a transaction that is not ours."""

__all__ = ["TxCall", "TxHandle", "TxIntent", "TxJournal", "TxOutcome", "TxWriter"]
