"""The per-key transaction writer against a real Anvil: journal before send, simulation, nonce
resync, fee bumps, a caller's deadline, and a revert after mining named at the right block."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from protocol.chain.aio import DEADLINE_MARGIN, AsyncRpc
from protocol.chain.errors import ContractRevert, NonceTooLow, RevertCatalog, TransactionReverted
from protocol.chain.events import ViewDecoder
from protocol.chain.signer import anvil_dev_signer
from protocol.chain.wire import hex_data
from protocol.chain.writer import TxCall, TxIntent, TxOutcome, TxWriter
from protocol.settings import ChainSettings
from protocol.types import Address
from tests.chain.helpers import OTHER, abi, automine, deploy, mine, send_tx
from tests.chain.proxy import HostileProxy

pytestmark = pytest.mark.integration

CHAIN_ID = 31337


class RecordingJournal:
    """A :class:`TxJournal` that checks, at ``intend`` time, that the node has NOT seen the
    transaction yet (the intent really comes before the send)."""

    def __init__(self, rpc: AsyncRpc) -> None:
        self.rpc = rpc
        self.intents: list[TxIntent] = []
        self.outcomes: list[TxOutcome] = []
        self.known_at_intent: list[bool] = []

    async def intend(self, intent: TxIntent) -> None:
        seen = await self.rpc.request("eth_getTransactionByHash", [hex_data(intent.tx_hash)])
        self.known_at_intent.append(seen is not None)
        self.intents.append(intent)

    async def settle(self, outcome: TxOutcome) -> None:
        self.outcomes.append(outcome)


def _token_call(token: Address, name: str, *args: object) -> TxCall:
    return TxCall(to=token, data=ViewDecoder(abi("DevnetToken")).encode(name, *args), label=name)


async def _balance(rpc: AsyncRpc, token: Address, who: Address) -> int:
    views = ViewDecoder(abi("DevnetToken"))
    model = views.decode("balanceOf", await rpc.call(token, views.encode("balanceOf", who), "latest"))
    return int(model.value)  # type: ignore[attr-defined]


def _run(
    anvil_url: str,
    body: Callable[[AsyncRpc, TxWriter, RecordingJournal, Address], Awaitable[None]],
    key_index: int = 3,
    **overrides: object,
) -> None:
    settings = ChainSettings(rpc_url=anvil_url, receipt_poll=0.02, **overrides)  # type: ignore[arg-type]

    async def scenario() -> None:
        catalog = RevertCatalog({"DevnetToken": abi("DevnetToken")})
        async with AsyncRpc.from_settings(settings, catalog) as rpc, trio.open_nursery() as nursery:
            token = await deploy(rpc, "DevnetToken")
            journal = RecordingJournal(rpc)
            writer = TxWriter(rpc, anvil_dev_signer(key_index, CHAIN_ID), CHAIN_ID, settings, journal)
            await nursery.start(writer.run)
            await body(rpc, writer, journal, token)
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_intent_is_journaled_before_the_send_and_receipts_come_back(anvil_url: str) -> None:
    async def body(rpc: AsyncRpc, writer: TxWriter, journal: RecordingJournal, token: Address) -> None:
        start_nonce = await rpc.transaction_count(writer.address)
        receipts = [
            await writer.transact(_token_call(token, "mint", writer.address, i + 1)) for i in range(3)
        ]
        assert [r.status for r in receipts] == [1, 1, 1]
        assert [i.tx_hash for i in journal.intents] == [r.transaction_hash for r in receipts]
        assert [i.nonce for i in journal.intents] == [start_nonce, start_nonce + 1, start_nonce + 2]
        assert journal.known_at_intent == [False, False, False]
        assert [o.status for o in journal.outcomes] == ["mined"] * 3
        assert await _balance(rpc, token, writer.address) == 6
        assert writer.tracked == {}

    _run(anvil_url, body)


def test_a_simulated_revert_sends_nothing(anvil_url: str) -> None:
    async def body(rpc: AsyncRpc, writer: TxWriter, journal: RecordingJournal, token: Address) -> None:
        nonce = await rpc.transaction_count(writer.address)
        with pytest.raises(ContractRevert) as info:
            await writer.transact(_token_call(token, "transfer", OTHER, 5))
        assert info.value.name == "ERC20InsufficientBalance"
        assert info.value.args == {"sender": writer.address, "balance": 0, "needed": 5}
        assert await rpc.transaction_count(writer.address) == nonce
        assert journal.intents == []
        assert [o.status for o in journal.outcomes] == ["refused"]

    _run(anvil_url, body)


def test_nonce_too_low_is_named_and_the_writer_resyncs(anvil_url: str) -> None:
    async def body(rpc: AsyncRpc, writer: TxWriter, journal: RecordingJournal, token: Address) -> None:
        await writer.transact(_token_call(token, "mint", writer.address, 1))
        stale_nonce = await rpc.transaction_count(writer.address)
        # another sender uses the same key behind the writer's back
        await send_tx(rpc, token, ViewDecoder(abi("DevnetToken")).encode("mint", OTHER, 1), writer.address)
        # the raw error is named
        signed = anvil_dev_signer(3, CHAIN_ID).sign_transaction(
            {
                "type": 2,
                "chainId": CHAIN_ID,
                "nonce": stale_nonce - 1,
                "to": OTHER,
                "value": 1,
                "gas": 21000,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 1,
            }
        )
        with pytest.raises(NonceTooLow):
            await rpc.send_raw_transaction(bytes(signed.raw_transaction))
        receipt = await writer.transact(_token_call(token, "mint", writer.address, 2))
        assert receipt.status == 1
        assert writer.stats.resynced == 1
        assert journal.intents[-1].nonce == stale_nonce + 1
        assert journal.intents[-2].nonce == stale_nonce  # the refused one, superseded
        assert await _balance(rpc, token, writer.address) == 3

    _run(anvil_url, body)


def test_a_stuck_transaction_is_replaced_with_higher_fees(anvil_url: str) -> None:
    async def body(rpc: AsyncRpc, writer: TxWriter, journal: RecordingJournal, token: Address) -> None:
        await automine(rpc, False)
        handle = await writer.submit(_token_call(token, "mint", writer.address, 9))
        with trio.fail_after(10):
            while len(handle.sent) < 2:  # noqa: ASYNC110 -- polling for readiness
                await trio.sleep(0.02)
        await mine(rpc, 1)
        with trio.fail_after(10):
            receipt = await handle.wait()
        await automine(rpc, True)
        first, second = journal.intents[:2]
        assert second.nonce == first.nonce and second.replaces == first.tx_hash
        assert second.max_fee_per_gas >= first.max_fee_per_gas * 115 // 100
        assert second.max_priority_fee_per_gas > first.max_priority_fee_per_gas
        assert receipt.transaction_hash in handle.sent[1:]
        assert await rpc.receipt(first.tx_hash) is None  # the replaced one never mined
        assert writer.stats.replaced >= 1
        assert await _balance(rpc, token, writer.address) == 9

    _run(anvil_url, body, stuck_after=0.3)


def test_a_caller_deadline_leaves_the_transaction_tracked_until_its_outcome(anvil_url: str) -> None:
    async def body(rpc: AsyncRpc, writer: TxWriter, journal: RecordingJournal, token: Address) -> None:
        await automine(rpc, False)
        start = trio.current_time()
        with trio.move_on_after(0.5) as scope:
            await writer.transact(_token_call(token, "mint", writer.address, 4))
        assert scope.cancelled_caught
        assert trio.current_time() - start < 0.5 + DEADLINE_MARGIN + 0.25
        (handle,) = writer.tracked.values()
        assert not handle.done and len(journal.intents) == 1
        await mine(rpc, 1)
        with trio.fail_after(10):
            receipt = await handle.wait()
        await automine(rpc, True)
        assert receipt.status == 1
        assert journal.outcomes[-1].status == "mined"
        assert journal.outcomes[-1].tx_hash == receipt.transaction_hash
        assert writer.tracked == {}

    _run(anvil_url, body, stuck_after=60.0)


def test_a_revert_after_mining_is_replayed_at_its_block_and_named(anvil_url: str) -> None:
    async def body(rpc: AsyncRpc, spender: TxWriter, journal: RecordingJournal, token: Address) -> None:
        views = ViewDecoder(abi("DevnetToken"))
        owner = anvil_dev_signer(2, CHAIN_ID).address
        await send_tx(rpc, token, views.encode("mint", owner, 10), owner)
        await send_tx(rpc, token, views.encode("approve", spender.address, 10), owner)
        await automine(rpc, False)
        # the spender's transferFrom passes simulation (owner holds 10) ...
        handle = await spender.submit(_token_call(token, "transferFrom", owner, spender.address, 10))
        with trio.fail_after(10):
            while not handle.sent:  # noqa: ASYNC110 -- polling for readiness
                await trio.sleep(0.02)
        # ... then the owner moves the tokens away in the same block, ahead of it (higher tip)
        await rpc.request(
            "eth_sendTransaction",
            [
                {
                    "from": owner,
                    "to": token,
                    "data": hex_data(views.encode("transfer", OTHER, 10)),
                    "maxPriorityFeePerGas": hex(10**11),
                    "maxFeePerGas": hex(10**12),
                }
            ],
        )
        await mine(rpc, 1)
        with pytest.raises(TransactionReverted) as info, trio.fail_after(10):
            await handle.wait()
        await automine(rpc, True)
        error = info.value
        receipt = await rpc.receipt(bytes.fromhex(error.tx_hash[2:]))
        assert receipt is not None and receipt.status == 0
        assert error.block_number == receipt.block_number
        assert error.revert is not None
        assert error.revert.name == "ERC20InsufficientBalance"
        assert error.revert.args == {"sender": owner, "balance": 0, "needed": 10}
        assert journal.outcomes[-1].status == "reverted"

    _run(anvil_url, body)


def test_a_send_whose_reply_is_lost_is_resent_byte_for_byte_never_twice(anvil_url: str) -> None:
    """The node takes the transaction but the reply never comes (the request times out): the
    writer re-sends the same signed bytes (never a new nonce), so it is mined exactly once."""

    async def scenario() -> None:
        catalog = RevertCatalog({"DevnetToken": abi("DevnetToken")})
        async with trio.open_nursery() as nursery:
            proxy: HostileProxy = await nursery.start(HostileProxy(anvil_url).run)
            settings = ChainSettings(rpc_url=proxy.url, rpc_timeout=1.0, receipt_poll=0.02)
            async with (
                AsyncRpc.open(anvil_url, 5.0, catalog) as chain,
                AsyncRpc.from_settings(settings, catalog) as rpc,
            ):
                token = await deploy(chain, "DevnetToken")
                journal = RecordingJournal(chain)
                writer = TxWriter(rpc, anvil_dev_signer(3, CHAIN_ID), CHAIN_ID, settings, journal)
                await nursery.start(writer.run)
                nonce = await chain.transaction_count(writer.address)
                await proxy.set_mode("swallow")
                with trio.fail_after(20):
                    receipt = await writer.transact(_token_call(token, "mint", writer.address, 5))
                assert proxy.counts["swallowed"] == 1
                assert receipt.status == 1
                assert await chain.transaction_count(writer.address) == nonce + 1
                assert await _balance(chain, token, writer.address) == 5
                assert [i.tx_hash for i in journal.intents] == [receipt.transaction_hash]
                # and the writer goes on with the next nonce
                await writer.transact(_token_call(token, "mint", writer.address, 1))
                assert await chain.transaction_count(writer.address) == nonce + 2
            nursery.cancel_scope.cancel()

    trio.run(scenario)


@pytest.mark.unit
def test_fee_bumps_raise_both_fees_and_stop_at_the_cap() -> None:
    from protocol.chain.writer import _Fees

    fees = _Fees(max_fee=1000, tip=100)
    bumped = fees.bumped(15, None)
    assert bumped == _Fees(max_fee=1151, tip=116)  # ceil(x * 1.15) + 1: strictly above +15 %
    assert fees.bumped(15, 1151) == bumped  # exactly at the cap: allowed
    assert fees.bumped(15, 1150) is None  # one wei below: no bump, keep waiting at the last fee
    assert _Fees(max_fee=10, tip=10).bumped(10, None) == _Fees(max_fee=12, tip=12)  # tip <= fee
