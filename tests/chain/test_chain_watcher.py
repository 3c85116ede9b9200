"""The watcher against a real Anvil: order, confirmations, reorgs, a hostile and a failing RPC,
a restart in the middle of a catch-up. Effects are idempotent by key (the Transfer's value) and
every test ends by checking each canonical event took effect exactly once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from protocol.chain.aio import AsyncRpc
from protocol.chain.events import EventCatalog
from protocol.chain.watcher import (
    Delivery,
    KeyedOnce,
    LogFilter,
    MemoryWatcherStore,
    Rewind,
    Watcher,
    WatcherItem,
    WatcherState,
    WatcherStore,
    phase_key,
    topics_of,
)
from protocol.settings import WatcherSettings
from protocol.types import Address
from tests.chain.helpers import (
    DEPLOYER,
    OTHER,
    abi,
    canonical_values,
    deploy,
    mine,
    mint,
    spam,
    token_catalog,
)
from tests.chain.proxy import HostileProxy
from tests.chain.sqlite_store import SqliteWatcherStore
from tests.chain.watcher_harness import Effects

pytestmark = pytest.mark.integration

FAST = WatcherSettings(
    initial_range=2, max_range=64, quiet_logs=50, poll_interval=0.05, backoff_initial=0.05, backoff_max=0.5
)


def _watcher(
    rpc: AsyncRpc,
    addresses: tuple[Address, ...],
    store: WatcherStore,
    settings: WatcherSettings = FAST,
    confirmations: int = 0,
) -> Watcher:
    catalog = token_catalog()
    log_filter = LogFilter(addresses=addresses, topics=topics_of(catalog, ["Transfer"]))
    return Watcher(rpc, catalog, log_filter, store, settings, confirmations=confirmations)


async def _with_watcher(
    url: str,
    watcher_url: str | None,
    body: Callable[[AsyncRpc, Watcher, Effects], Awaitable[None]],
    addresses: Callable[[AsyncRpc], Awaitable[tuple[Address, ...]]],
    store: WatcherStore | None = None,
    settings: WatcherSettings = FAST,
    confirmations: int = 0,
    rpc_timeout: float = 1.0,
) -> Effects:
    """Run ``body`` with a watcher (through ``watcher_url``, default the chain itself) and an
    :class:`Effects` consumer; both are stopped when ``body`` returns."""
    effects = Effects()
    async with AsyncRpc.open(url, 5.0) as rpc:
        contracts = await addresses(rpc)
        async with AsyncRpc.open(watcher_url or url, rpc_timeout) as wrpc, trio.open_nursery() as nursery:
            watcher = _watcher(wrpc, contracts, store or MemoryWatcherStore(), settings, confirmations)
            send, receive = trio.open_memory_channel[WatcherItem](0)
            nursery.start_soon(effects.consume, receive)
            await nursery.start(watcher.run, send)
            await body(rpc, watcher, effects)
            nursery.cancel_scope.cancel()
    return effects


async def _token(rpc: AsyncRpc) -> tuple[Address, ...]:
    return (await deploy(rpc, "DevnetToken"),)


def test_delivers_in_order_up_to_the_confirmed_head_only(anvil_url: str) -> None:
    contracts: list[Address] = []

    async def addresses(rpc: AsyncRpc) -> tuple[Address, ...]:
        contracts.extend([await deploy(rpc, "DevnetToken"), await deploy(rpc, "EventSpammer")])
        return tuple(contracts)

    async def body(rpc: AsyncRpc, watcher: Watcher, effects: Effects) -> None:
        token, spammer = contracts
        for i in range(3):
            await spam(rpc, spammer, 1000 + 40 * i, 40)  # 40 Transfers in one block
            await mint(rpc, token, OTHER, 10 + i)
        head = await rpc.block_number()
        with trio.fail_after(20):
            await watcher.wait_caught_up(head - 2)
        # the two newest blocks (spam #3 and mint 12) are not confirmed yet: not delivered
        assert effects.values() == sorted([*range(1000, 1080), 10, 11])
        assert watcher.caught_up_to == head - 2
        await mine(rpc, 2)
        with trio.fail_after(20):
            await watcher.wait_caught_up(head)
        effects.assert_exactly_once(await canonical_values(rpc, tuple(contracts), head))
        assert effects.handled == 123  # nothing delivered twice without a reorg
        # the range grew from 2 blocks while quiet; deliveries contiguous (checked by Effects)
        assert watcher.stats.range > FAST.initial_range

    store = MemoryWatcherStore()
    trio.run(_with_watcher, anvil_url, None, body, addresses, store, FAST, 2)
    assert store.state is not None
    assert store.saves >= 3


def test_reorg_rewinds_to_the_fork_and_replays(anvil_url: str) -> None:
    token: list[Address] = []

    async def addresses(rpc: AsyncRpc) -> tuple[Address, ...]:
        token.extend(await _token(rpc))
        return tuple(token)

    async def body(rpc: AsyncRpc, watcher: Watcher, effects: Effects) -> None:
        for value in range(1, 7):
            await mint(rpc, token[0], OTHER, value)  # one block each
        head = await rpc.block_number()
        with trio.fail_after(20):
            await watcher.wait_caught_up(head)
        assert effects.values() == [1, 2, 3, 4, 5, 6]
        # Replace the last 2 blocks (mints 5 and 6): a new mint of value 5 (same key, another tx,
        # another block) and a new value 100; mint 6 is gone.
        data5 = _mint_data(OTHER, 5)
        data100 = _mint_data(OTHER, 100)
        txs = [
            [{"from": DEPLOYER, "to": token[0], "data": data100}, 0],
            [{"from": DEPLOYER, "to": token[0], "data": data5}, 1],
        ]
        await rpc.request("anvil_reorg", [2, txs])
        assert await rpc.block_number() == head
        await mine(rpc, 1)
        with trio.fail_after(20):
            await watcher.wait_caught_up(head + 1)
        assert effects.rewinds == [head - 2]
        effects.assert_exactly_once(await canonical_values(rpc, tuple(token), head + 1))
        assert effects.values() == [1, 2, 3, 4, 5, 100]
        assert watcher.stats.rewinds == 1

    trio.run(_with_watcher, anvil_url, None, body, addresses)


def test_reorg_shallower_than_the_confirmations_is_never_seen(anvil_url: str) -> None:
    token: list[Address] = []

    async def addresses(rpc: AsyncRpc) -> tuple[Address, ...]:
        token.extend(await _token(rpc))
        return tuple(token)

    async def body(rpc: AsyncRpc, watcher: Watcher, effects: Effects) -> None:
        for value in range(1, 6):
            await mint(rpc, token[0], OTHER, value)
        head = await rpc.block_number()
        with trio.fail_after(20):
            await watcher.wait_caught_up(head - 3)
        await rpc.request(
            "anvil_reorg", [2, [[{"from": DEPLOYER, "to": token[0], "data": _mint_data(OTHER, 50)}, 0]]]
        )
        await mine(rpc, 3)
        with trio.fail_after(20):
            await watcher.wait_caught_up(head)
        assert effects.rewinds == []
        effects.assert_exactly_once(await canonical_values(rpc, tuple(token), head))
        assert effects.values() == [1, 2, 3, 50]

    trio.run(_with_watcher, anvil_url, None, body, addresses, None, FAST, 3)


def _mint_data(to: Address, value: int) -> str:
    from protocol.chain.events import ViewDecoder

    return "0x" + ViewDecoder(abi("DevnetToken")).encode("mint", to, value).hex()


def test_hostile_rpc_shuffles_limits_removes_and_lies(anvil_url: str) -> None:
    token: list[Address] = []
    proxy = HostileProxy(anvil_url, lie=1000, limit=4)

    async def scenario() -> Effects:
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.run)
            await proxy.set_mode("shuffle", "limit", "removed")

            async def addresses(rpc: AsyncRpc) -> tuple[Address, ...]:
                token.append(await deploy(rpc, "EventSpammer"))
                for i in range(12):
                    await spam(rpc, token[0], 100 * i, 5)
                return tuple(token)

            async def body(rpc: AsyncRpc, watcher: Watcher, effects: Effects) -> None:
                head = await rpc.block_number()
                with trio.fail_after(30):
                    await watcher.wait_caught_up(head)
                assert proxy.counts["shuffled"] > 0
                assert proxy.counts["limit_refused"] > 0
                assert proxy.counts["removed"] == 1
                assert watcher.stats.retries >= 2
                # now a head 1000 blocks ahead that the node cannot serve: nothing invented
                await proxy.set_mode("lie")
                for i in range(12, 15):
                    await spam(rpc, token[0], 100 * i, 5)
                retries = watcher.stats.retries
                with trio.fail_after(30):
                    while proxy.counts["head_lie"] < 3 or watcher.stats.retries < retries + 2:  # noqa: ASYNC110 -- polling for readiness
                        await trio.sleep(0.05)
                await proxy.set_mode("pass")
                new_head = await rpc.block_number()
                with trio.fail_after(30):
                    await watcher.wait_caught_up(new_head)
                effects.assert_exactly_once(await canonical_values(rpc, tuple(token), new_head))
                assert len(effects.values()) == 75

            effects = await _with_watcher(anvil_url, proxy.url, body, addresses)
            nursery.cancel_scope.cancel()
        return effects

    trio.run(scenario)


async def _outage(anvil_url: str, seconds: float) -> None:
    proxy = HostileProxy(anvil_url, lag=3)
    token: list[Address] = []
    settings = WatcherSettings(
        initial_range=4, max_range=64, poll_interval=0.1, backoff_initial=0.05, backoff_max=1.0
    )

    async def addresses(rpc: AsyncRpc) -> tuple[Address, ...]:
        token.extend(await _token(rpc))
        return tuple(token)

    async def body(rpc: AsyncRpc, watcher: Watcher, effects: Effects) -> None:
        value = 0

        async def mint_until(duration: float, seen: Callable[[], bool]) -> None:
            """Mint every 0.25 s for ``duration`` s and until the watcher met the fault."""
            nonlocal value
            end = trio.current_time() + duration
            with trio.fail_after(duration + 30):
                while trio.current_time() < end or not seen():
                    value += 1
                    await mint(rpc, token[0], OTHER, value)
                    await trio.sleep(0.25)

        await mint_until(0.5, lambda: True)
        phase = seconds / 3
        retries = watcher.stats.retries
        await proxy.set_mode("refuse")
        await mint_until(phase, lambda: watcher.stats.retries > retries)
        await proxy.set_mode("hang")
        await mint_until(phase, lambda: proxy.counts["hung"] > 0)
        await proxy.set_mode("lag")
        await mint_until(phase, lambda: proxy.counts["head_lag"] > 0)
        assert watcher.stats.retries > 0
        await proxy.set_mode("pass")
        head = await rpc.block_number()
        with trio.fail_after(60):
            await watcher.wait_caught_up(head)
        effects.assert_exactly_once(await canonical_values(rpc, tuple(token), head))
        assert len(effects.values()) == value
        assert proxy.counts["hung"] > 0 and proxy.counts["head_lag"] > 0

    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        await _with_watcher(anvil_url, proxy.url, body, addresses, None, settings, 0, rpc_timeout=1.0)
        nursery.cancel_scope.cancel()


def test_rpc_down_refusing_hanging_then_lagging_for_3s(anvil_url: str) -> None:
    trio.run(_outage, anvil_url, 3.0)


@pytest.mark.slow
def test_rpc_down_refusing_hanging_then_lagging_for_30s(anvil_url: str) -> None:
    trio.run(_outage, anvil_url, 30.0)


def test_restart_in_the_middle_of_a_catch_up(anvil_url: str, tmp_path: Path) -> None:
    store = SqliteWatcherStore(tmp_path / "journal.sqlite")
    settings = WatcherSettings(initial_range=2, max_range=2, poll_interval=0.05, backoff_initial=0.05)
    spammer: list[Address] = []
    crashed_range: list[tuple[int, int, int]] = []

    async def prefill() -> int:
        async with AsyncRpc.open(anvil_url, 5.0) as rpc:
            spammer.append(await deploy(rpc, "EventSpammer"))
            for i in range(20):
                await spam(rpc, spammer[0], 10 * i, 10)
            return await rpc.block_number()

    async def consume(
        receive: trio.MemoryReceiveChannel[WatcherItem], crash_after: int | None, process: trio.CancelScope
    ) -> None:
        """Apply effects durably, then acknowledge; with ``crash_after``, the whole process
        "dies" (everything cancelled at once) after that delivery's effects, before its ack."""
        deliveries = 0
        async with receive:
            async for item in receive:
                if isinstance(item, Rewind):
                    await store.rewind(item.fork_block)
                else:
                    assert isinstance(item, Delivery)
                    keys = [(str(int(e.value)), e.block_number) for e in item.events]  # type: ignore[attr-defined]
                    await store.apply(keys)
                    deliveries += 1
                    if crash_after is not None and deliveries == crash_after:
                        crashed_range.append((item.from_block, item.to_block, len(keys)))
                        process.cancel()
                        return
                item.processed()

    async def run(crash_after: int | None, until: int) -> int:
        async with AsyncRpc.open(anvil_url, 5.0) as rpc, trio.open_nursery() as nursery:
            watcher = _watcher(rpc, tuple(spammer), store, settings)
            send, receive = trio.open_memory_channel[WatcherItem](0)
            nursery.start_soon(consume, receive, crash_after, nursery.cancel_scope)
            await nursery.start(watcher.run, send)
            await watcher.wait_caught_up(until)
            nursery.cancel_scope.cancel()
        return watcher.stats.deliveries

    head = trio.run(prefill)
    trio.run(run, 4, head)
    assert crashed_range, "the simulated crash did not happen"
    saved = trio.run(store.load)
    assert saved is not None
    ((crash_from, _crash_to, crashed_events),) = crashed_range
    assert crashed_events > 0
    assert saved.cursor == crash_from - 1, "the unacknowledged range must not count as delivered"
    trio.run(run, None, head)
    assert trio.run(store.load).cursor == head  # type: ignore[union-attr]
    async_values = trio.run(_canonical, anvil_url, spammer[0], head)
    assert store.effects() == sorted(str(v) for v in async_values)
    assert len(async_values) == 200
    # the crashed range was handed over twice; its effects count once
    assert store.deliveries_seen() == 200 + crashed_events


async def _canonical(url: str, address: Address, head: int) -> list[int]:
    async with AsyncRpc.open(url, 5.0) as rpc:
        return await canonical_values(rpc, (address,), head)


def test_keyed_once_and_phase_keys() -> None:
    once = KeyedOnce()
    key = phase_key(7, DEPLOYER, "commit")
    assert once.first(key, 10) is True
    assert once.first(key, 12) is False
    assert once.first(phase_key(7, DEPLOYER, "reveal"), 11) is True
    assert once.rewind(10) == [phase_key(7, DEPLOYER, "reveal")]
    assert key in once and len(once) == 1
    assert once.rewind(9) == [key]
    assert len(once) == 0


def test_watcher_state_validates(built: Path) -> None:
    assert WatcherState(cursor=-1).hashes == {}
    with pytest.raises(ValueError):
        WatcherState(cursor=-2)
    catalog = EventCatalog({"DevnetToken": abi("DevnetToken")})
    assert topics_of(catalog, ["Transfer", "Approval"]) == (
        (catalog["Transfer"].topic, catalog["Approval"].topic),
    )
