"""``make bench`` (watcher part): typed events per second the chain watcher delivers on a pre-filled Anvil.

Prints one ``name=value`` line on stdout (logs go to stderr):

- ``watcher_events_per_s``: a fresh Anvil is filled with :data:`EVENTS` ERC-20 ``Transfer`` events
  (tests/contracts/utils/EventSpammer.sol, :data:`PER_TX` per transaction, :data:`TX_PER_BLOCK`
  transactions per block); then a :class:`~protocol.chain.watcher.Watcher` starts from block 0 and
  the clock runs until it has delivered every event, decoded into typed models, through its trio
  channel to a consumer that acknowledges each range (the cursor saved in memory each time).
  Everything a daemon's watcher does is included: ``eth_getLogs`` in ranges, the block headers of
  every block with logs (hash checks), decoding, delivery, acknowledgement.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from types import FrameType

import trio

from protocol.chain.aio import AsyncRpc
from protocol.chain.events import EventCatalog, ViewDecoder
from protocol.chain.watcher import LogFilter, MemoryWatcherStore, Watcher, WatcherItem, topics_of
from protocol.chain.wire import hex_data
from protocol.errors import SynodError
from protocol.log import configure, get_logger
from protocol.settings import WatcherSettings
from protocol.types import Address, address_of
from scripts.devnet import ROOT, anvil, forge_build

log = get_logger("scripts.bench_watcher")

EVENTS = 60_000
PER_TX = 300
TX_PER_BLOCK = 5
DEPLOYER = address_of("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266")
SETTINGS = WatcherSettings(initial_range=4, max_range=4, quiet_logs=1, poll_interval=0.05)
"""Four blocks (6,000 events) per ``eth_getLogs``: a range a public endpoint would accept."""


def _artifact(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((ROOT / "out" / f"{name}.sol" / f"{name}.json").read_text())
    return data


async def _wait(rpc: AsyncRpc, tx_hash: str) -> Address | None:
    with trio.fail_after(30):
        while (receipt := await rpc.receipt(bytes.fromhex(tx_hash[2:]))) is None:  # noqa: ASYNC110 -- polling for readiness
            await trio.sleep(0.01)
    if receipt.status != 1:
        raise SynodError(f"bench set-up transaction {tx_hash} reverted")
    return receipt.contract_address


async def _prefill(rpc: AsyncRpc) -> Address:
    bytecode = _artifact("EventSpammer")["bytecode"]["object"]  # type: ignore[index]
    created = await rpc.request("eth_sendTransaction", [{"from": DEPLOYER, "data": bytecode}])
    spammer = await _wait(rpc, created)
    assert spammer is not None
    views = ViewDecoder(_artifact("EventSpammer")["abi"])  # type: ignore[arg-type]
    await rpc.request("evm_setAutomine", [False])
    last = ""
    for i in range(EVENTS // PER_TX):
        data = views.encode("spam", DEPLOYER, i * PER_TX, PER_TX)
        last = await rpc.request(
            "eth_sendTransaction", [{"from": DEPLOYER, "to": spammer, "data": hex_data(data)}]
        )
        if (i + 1) % TX_PER_BLOCK == 0:
            await rpc.request("evm_mine", [])
    await rpc.request("evm_mine", [])
    await rpc.request("evm_setAutomine", [True])
    await _wait(rpc, last)
    return spammer


async def _bench(url: str) -> float:
    async with AsyncRpc.open(url, 30.0) as rpc:
        spammer = await _prefill(rpc)
        head = await rpc.block_number()
        catalog = EventCatalog({"EventSpammer": _artifact("EventSpammer")["abi"]})  # type: ignore[dict-item]
        log_filter = LogFilter(addresses=(spammer,), topics=topics_of(catalog, ["Transfer"]))
        watcher = Watcher(rpc, catalog, log_filter, MemoryWatcherStore(), SETTINGS)
        received = 0

        async def consume(receive: trio.MemoryReceiveChannel[WatcherItem]) -> None:
            nonlocal received
            async with receive:
                async for item in receive:
                    received += len(getattr(item, "events", ()))
                    item.processed()

        async with trio.open_nursery() as nursery:
            send, receive = trio.open_memory_channel[WatcherItem](0)
            nursery.start_soon(consume, receive)
            start = time.perf_counter()
            await nursery.start(watcher.run, send)
            await watcher.wait_caught_up(head)
            elapsed = time.perf_counter() - start
            nursery.cancel_scope.cancel()
    if received != EVENTS:
        raise SynodError(f"the watcher delivered {received} events, expected {EVENTS}")
    log.info(
        "watcher_bench",
        events=received,
        seconds=round(elapsed, 3),
        deliveries=watcher.stats.deliveries,
        prefetched=watcher.stats.prefetched,
    )
    return received / elapsed


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    """Build, start Anvil, pre-fill, run the watcher, print the figure."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    configure("INFO")
    forge_build(ROOT)
    with anvil(ROOT) as url:
        rate = trio.run(_bench, url)
    print(f"watcher_events_per_s={rate:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
