"""The SQLite journal behind the chain layer, on a real Anvil: a watcher restarted from the journal
resumes right after its saved cursor (no event twice, none lost), and a TxWriter with the journal
records each intent before the send and its outcome after mining (checked in the journal's rows)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from protocol.chain.aio import AsyncRpc
from protocol.chain.errors import ContractRevert, RevertCatalog
from protocol.chain.events import ViewDecoder
from protocol.chain.signer import anvil_dev_signer
from protocol.chain.watcher import Delivery, LogFilter, Watcher, WatcherItem, topics_of
from protocol.chain.wire import hex_data
from protocol.chain.writer import TxCall, TxIntent, TxOutcome, TxWriter
from protocol.settings import ChainSettings, WatcherSettings
from protocol.store import ActionKey, ActionState, Store
from protocol.store.chain_adapters import JournalTxLog, action_key_from_label, journal_watcher_store
from protocol.types import Address
from tests.chain.helpers import OTHER, abi, canonical_values, deploy, send_tx, spam, token_catalog

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
SETTINGS = WatcherSettings(initial_range=2, max_range=2, poll_interval=0.05, backoff_initial=0.05)


def test_watcher_restarted_from_the_journal_resumes_after_its_cursor(anvil_url: str, tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    spammer: list[Address] = []

    async def prefill() -> int:
        async with AsyncRpc.open(anvil_url, 5.0) as rpc:
            spammer.append(await deploy(rpc, "EventSpammer"))
            for i in range(12):
                await spam(rpc, spammer[0], 10 * i, 10)
            return await rpc.block_number()

    async def run(stop_after: int | None, until: int) -> tuple[list[int], list[tuple[int, int]]]:
        """Run a watcher on the journal: process deliveries; with ``stop_after``, the process stops
        when delivery ``stop_after + 1`` arrives (unprocessed), after ``stop_after`` acknowledged."""
        values: list[int] = []
        ranges: list[tuple[int, int]] = []
        store = await Store.open(path)
        try:
            async with AsyncRpc.open(anvil_url, 5.0) as rpc, trio.open_nursery() as nursery:
                catalog = token_catalog()
                log_filter = LogFilter(addresses=tuple(spammer), topics=topics_of(catalog, ["Transfer"]))
                watcher = Watcher(rpc, catalog, log_filter, journal_watcher_store(store, "node"), SETTINGS)
                send, receive = trio.open_memory_channel[WatcherItem](0)

                async def consume() -> None:
                    async with receive:
                        async for item in receive:
                            assert isinstance(item, Delivery), "no reorg in this test"
                            if stop_after is not None and len(ranges) == stop_after:
                                nursery.cancel_scope.cancel()
                                return
                            values.extend(int(e.value) for e in item.events)  # type: ignore[attr-defined]
                            ranges.append((item.from_block, item.to_block))
                            item.processed()

                nursery.start_soon(consume)
                await nursery.start(watcher.run, send)
                await watcher.wait_caught_up(until)
                nursery.cancel_scope.cancel()
        finally:
            store.close()
        return values, ranges

    head = trio.run(prefill)
    first_values, first_ranges = trio.run(run, 3, head)
    assert len(first_ranges) == 3 and first_values, "the first run stopped too early to test anything"
    with _closing(Store.open_sync(path, read_only=True)) as ro:
        saved = ro.load_watch_state_sync("node")
    assert saved is not None
    assert saved.cursor == first_ranges[-1][1], "the cursor is the last acknowledged block"
    assert saved.cursor < head, "the first run must stop in the middle of the catch-up"
    assert saved.hashes and max(saved.hashes) == saved.cursor

    second_values, second_ranges = trio.run(run, None, head)
    assert second_ranges[0][0] == saved.cursor + 1, "resumes right after the cursor"
    assert second_ranges[-1][1] == head

    async def canonical() -> list[int]:
        async with AsyncRpc.open(anvil_url, 5.0) as rpc:
            return await canonical_values(rpc, tuple(spammer), head)

    expected = trio.run(canonical)
    assert len(expected) == 120
    assert first_values + second_values == expected, "every event once, in chain order, across the restart"


class _closing:
    """Close a :class:`Store` at the end of a ``with`` block."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, *_exc: object) -> None:
        self.store.close()


class _CheckingLog(JournalTxLog):
    """The journal adapter, checking at each intent that the row is durable (read back through a
    second connection) while the node has not seen the transaction yet."""

    def __init__(self, store: Store, path: Path, rpc: AsyncRpc) -> None:
        super().__init__(store)
        self.path = path
        self.rpc = rpc
        self.checked: list[tuple[ActionState | None, bool]] = []
        self.outcomes: list[TxOutcome] = []
        self.intents_seen: list[int] = []
        self.intents: list[TxIntent] = []

    async def intend(self, intent: TxIntent) -> None:
        self.intents_seen.append(intent.nonce)
        self.intents.append(intent)
        await super().intend(intent)
        with _closing(Store.open_sync(self.path, read_only=True)) as reader:
            row = reader.get_action_sync(action_key_from_label(intent))
        seen = await self.rpc.request("eth_getTransactionByHash", [hex_data(intent.tx_hash)])
        self.checked.append((row.state if row is not None else None, seen is not None))

    async def settle(self, outcome: TxOutcome) -> None:
        self.outcomes.append(outcome)
        await super().settle(outcome)


def test_tx_writer_journals_intent_before_send_and_outcome_after_mining(
    anvil_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "journal.sqlite"
    settings = ChainSettings(rpc_url=anvil_url, receipt_poll=0.02)
    signer = anvil_dev_signer(3, CHAIN_ID)
    views = ViewDecoder(abi("DevnetToken"))

    async def scenario() -> None:
        catalog = RevertCatalog({"DevnetToken": abi("DevnetToken")})
        store = await Store.open(path)
        try:
            async with AsyncRpc.from_settings(settings, catalog) as rpc, trio.open_nursery() as nursery:
                token = await deploy(rpc, "DevnetToken")
                journal = _CheckingLog(store, path, rpc)
                writer = TxWriter(rpc, signer, CHAIN_ID, settings, journal)
                await nursery.start(writer.run)
                receipts = []
                for batch in (7, 8):
                    call = TxCall(
                        to=token, data=views.encode("mint", writer.address, batch), label=f"commit@{batch}"
                    )
                    receipts.append(await writer.transact(call))
                # a call the simulation refuses is never sent, so it leaves no row
                refused = TxCall(to=token, data=views.encode("transfer", OTHER, 10**30), label="reveal@7")
                with pytest.raises(ContractRevert):
                    await writer.transact(refused)
                nonce = await rpc.transaction_count(writer.address)
                nursery.cancel_scope.cancel()
        finally:
            store.close()
        assert journal.checked == [(ActionState.INTENDED, False), (ActionState.INTENDED, False)]
        assert [o.status for o in journal.outcomes] == ["mined", "mined", "refused"]
        assert nonce == journal.intents_seen[-1] + 1, "the refused call took no nonce"
        with _closing(Store.open_sync(path, read_only=True)) as reader:
            for batch, receipt in zip((7, 8), receipts, strict=True):
                row = reader.get_action_sync(
                    ActionKey(batch=batch, participant=signer.address, phase="commit")
                )
                assert row is not None
                assert row.state is ActionState.MINED_SUCCESS
                assert row.mined_tx_hash == receipt.transaction_hash
                assert row.block_number == receipt.block_number
                assert [t.tx_hash for t in row.txs] == [receipt.transaction_hash]
                assert row.txs[0].sender == signer.address
            assert (
                reader.get_action_sync(ActionKey(batch=7, participant=signer.address, phase="reveal")) is None
            )
            assert reader.unfinished_actions_sync() == []

    trio.run(scenario)


def test_a_nonce_resync_supersedes_the_journaled_tx_and_the_writer_goes_on(
    anvil_url: str, tmp_path: Path
) -> None:
    """Another sender takes the writer's cached nonce: the writer re-signs with a fresh nonce and
    the journal records the re-sign under the same key (old tx superseded) instead of stopping."""
    path = tmp_path / "journal.sqlite"
    settings = ChainSettings(rpc_url=anvil_url, receipt_poll=0.02)
    signer = anvil_dev_signer(4, CHAIN_ID)
    views = ViewDecoder(abi("DevnetToken"))

    async def scenario() -> tuple[int, bytes, list[TxIntent]]:
        catalog = RevertCatalog({"DevnetToken": abi("DevnetToken")})
        store = await Store.open(path)
        try:
            async with AsyncRpc.from_settings(settings, catalog) as rpc, trio.open_nursery() as nursery:
                token = await deploy(rpc, "DevnetToken")
                journal = _CheckingLog(store, path, rpc)
                writer = TxWriter(rpc, signer, CHAIN_ID, settings, journal)
                await nursery.start(writer.run)
                mint = views.encode("mint", writer.address, 1)
                await writer.transact(TxCall(to=token, data=mint, label="commit@1"))
                stale = await rpc.transaction_count(writer.address)
                await send_tx(rpc, token, views.encode("mint", OTHER, 1), writer.address)  # behind its back
                with trio.fail_after(30):
                    receipt = await writer.transact(TxCall(to=token, data=mint, label="commit@2"))
                # the writer is still alive: a third request goes through
                await writer.transact(TxCall(to=token, data=mint, label="reveal@2"))
                nursery.cancel_scope.cancel()
        finally:
            store.close()
        assert receipt.status == 1 and writer.stats.resynced == 1
        return stale, receipt.transaction_hash, journal.intents

    stale, mined_hash, _ = trio.run(scenario)
    with _closing(Store.open_sync(path, read_only=True)) as reader:
        row = reader.get_action_sync(ActionKey(batch=2, participant=signer.address, phase="commit"))
        assert row is not None
        assert row.state is ActionState.MINED_SUCCESS and row.mined_tx_hash == mined_hash
        assert [t.nonce for t in row.txs] == [stale, stale + 1]
        assert row.superseded == (row.txs[0].tx_hash,)
        assert row.live_txs[0].tx_hash == mined_hash
        assert reader.unfinished_actions_sync() == []
