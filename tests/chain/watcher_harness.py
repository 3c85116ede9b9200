"""A consumer for the watcher tests whose effects are idempotent by key (the Transfer's value).

"Exactly once to the handlers' effects" is checked by counting, per key, how many times an
effect was applied and not undone by a rewind: every canonical key must end at exactly 1.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio

from protocol.chain.watcher import Delivery, KeyedOnce, Rewind, WatcherItem


class Effects:
    """Applies each Transfer value once (:class:`KeyedOnce`), undoes on :class:`Rewind`, and
    checks the watcher's order: positions strictly increase except across a rewind."""

    def __init__(self) -> None:
        self.once = KeyedOnce()
        self.applied: Counter[int] = Counter()
        self.handled = 0
        self.rewinds: list[int] = []
        self.deliveries: list[tuple[int, int]] = []
        self.last_position: tuple[int, int] = (-1, -1)
        self.last_block = -1

    def handle(self, item: WatcherItem) -> None:
        if isinstance(item, Rewind):
            for key in self.once.rewind(item.fork_block):
                assert isinstance(key, int)
                self.applied[key] -= 1
            self.rewinds.append(item.fork_block)
            self.last_position = (item.fork_block, 1 << 30)
            self.last_block = item.fork_block
        else:
            assert isinstance(item, Delivery)
            assert item.from_block == self.last_block + 1 or not self.deliveries, (
                f"gap or overlap: delivery {item.from_block}..{item.to_block} after block {self.last_block}"
            )
            self.deliveries.append((item.from_block, item.to_block))
            for event in item.events:
                assert event.position > self.last_position, f"{event.position} after {self.last_position}"
                assert item.from_block <= event.block_number <= item.to_block
                self.last_position = event.position
                self.handled += 1
                value = int(event.value)  # type: ignore[attr-defined]
                if self.once.first(value, event.block_number):
                    self.applied[value] += 1
            self.last_block = item.to_block
        item.processed()

    def values(self) -> list[int]:
        """The keys whose effect stands, sorted."""
        return sorted(k for k, n in self.applied.items() if n > 0)

    def assert_exactly_once(self, canonical: list[int]) -> None:
        """Every canonical key applied exactly once, nothing else standing."""
        assert sorted(canonical) == self.values(), (sorted(canonical), self.values())
        assert all(n in (0, 1) for n in self.applied.values()), self.applied
        assert len(set(canonical)) == len(canonical), "test bug: keys must be unique"

    async def consume(self, receive: trio.MemoryReceiveChannel[WatcherItem]) -> None:
        async with receive:
            async for item in receive:
                self.handle(item)


def values_of(events: Any) -> list[int]:
    return [int(e.value) for e in events]
