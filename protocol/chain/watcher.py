"""The reorg-safe chain watcher: ``eth_getLogs`` from a persisted cursor to the confirmed head.

::

    store = MyStore()                      # a WatcherStore: the journal in a daemon
    watcher = Watcher(rpc, catalog, LogFilter(addresses=(market,)), store, settings)
    send, receive = trio.open_memory_channel[Delivery](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run, send)
        async with receive:
            async for item in receive:
                if isinstance(item, Rewind):
                    effects.rewind(item.fork_block)         # undo what blocks > fork_block did
                else:
                    for event in item.events:               # typed, in (block, logIndex) order
                        if effects.first(key_of(event), event.block_number):
                            ...                             # act, durably, idempotent by key
                item.processed()                            # only now does the cursor move

How it stays exact:

* **Cursor with "delivered up to" semantics.** The cursor is the last block whose events were
  *processed*: the watcher sends one :class:`Delivery` per range and saves the new cursor (with
  the remembered hashes, atomically, through :class:`WatcherStore`) only after the consumer
  called :meth:`Delivery.processed`. A crash in between replays that range: handlers idempotent
  by key (:class:`KeyedOnce`) turn the at-least-once delivery into exactly-once effects.
* **Confirmation depth.** Ranges end at ``head - confirmations``.
* **Reorgs.** The watcher remembers the hash of the cursor block and of every block that had
  logs, ``reorg_window`` blocks deep. Before each step it re-reads the cursor block: a different
  hash means some delivered block changed (a hash commits to all its ancestors); it then finds
  the newest remembered block whose hash still holds (the fork point), sends :class:`Rewind`,
  and replays from there. A log with ``removed: true`` also triggers that check. Logs are only
  delivered if each one's ``blockHash`` equals the header the same step read for its block, so a
  reorg racing the query is retried, never delivered half old, half new.
* **Hostile or failing endpoints.** Every call has the client's request timeout; failures are
  logged with the reason and retried with capped exponential backoff, forever (the process keeps
  running). A head behind the cursor (a lagging node) is waited out; blocks the node claims but
  cannot serve (a head it lies about) make the range shrink until it can; logs out of order are
  sorted; logs outside the range, from other addresses, duplicated or on an unknown block are
  refused (the step is retried).
* **Adaptive range.** Starts at ``initial_range`` blocks; halves on :class:`RangeTooLarge` and
  timeouts; doubles after a step with fewer than ``quiet_logs`` logs; within ``min_range`` ..
  ``max_range``.

The design follows what indexers built on ``eth_getLogs`` do (e.g. lido-oracle's frozen block
reference, ethers' ``removed`` handling), reduced to one cursor and one channel.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio
from pydantic import BaseModel, ConfigDict, Field

from protocol.chain.aio import AsyncRpc, parse_header, parse_logs
from protocol.chain.errors import ChainError, JsonRpcError, RangeTooLarge, RpcError, RpcTimeout
from protocol.chain.events import ChainEvent, EventCatalog, EventDecodeError
from protocol.chain.wire import BlockHeader, RawLog, hex_quantity
from protocol.log import get_logger
from protocol.settings import WatcherSettings
from protocol.types import Address

log = get_logger(__name__)


class LogFilter(BaseModel):
    """Which logs to watch: any of ``addresses`` (empty: all), ``topics`` by position (each a
    tuple of alternatives, ``None`` = any), as in ``eth_getLogs``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    addresses: tuple[Address, ...] = ()
    topics: tuple[tuple[bytes, ...] | None, ...] = ()


class WatcherState(BaseModel):
    """What the watcher persists: ``cursor`` = the last block processed (-1: none yet) and the
    remembered ``hashes`` (block number -> hash) of recent blocks up to the cursor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cursor: int = Field(ge=-1)
    hashes: dict[int, bytes] = Field(default_factory=dict)


class WatcherStore(Protocol):
    """Durable storage of one watcher's :class:`WatcherState` (the journal in a daemon).

    ``save`` must be atomic (cursor and hashes together) and is called only once everything up to
    the cursor was processed; ``load`` returns the last saved state, ``None`` before the first.
    """

    async def load(self) -> WatcherState | None:
        """The last saved state, or ``None``."""
        ...

    async def save(self, state: WatcherState) -> None:
        """Replace the saved state with ``state`` atomically."""
        ...


class MemoryWatcherStore:
    """A :class:`WatcherStore` in memory (tests, tools that need no restart)."""

    def __init__(self, state: WatcherState | None = None) -> None:
        self.state = state
        self.saves = 0

    async def load(self) -> WatcherState | None:
        """The last saved state."""
        return self.state

    async def save(self, state: WatcherState) -> None:
        """Keep ``state``."""
        self.state = state
        self.saves += 1


@dataclass(eq=False)
class _Item:
    _processed: trio.Event = field(default_factory=trio.Event, init=False, repr=False)

    def processed(self) -> None:
        """Tell the watcher this item's effects are durable: it may move its cursor past it."""
        self._processed.set()


@dataclass(eq=False)
class Delivery(_Item):
    """The events of blocks ``from_block..to_block`` (inclusive), in (block, logIndex) order."""

    from_block: int
    to_block: int
    events: tuple[ChainEvent, ...]


@dataclass(eq=False)
class Rewind(_Item):
    """A reorg: everything derived from blocks above ``fork_block`` is void; they will be
    delivered again (those that still exist) after this."""

    fork_block: int
    was_cursor: int


WatcherItem = Delivery | Rewind
"""What the watcher sends through its channel."""


class KeyedOnce:
    """Idempotency by key: :meth:`first` is true the first time a key is seen, false after, so a
    handler acts once per key (e.g. ``(batch, participant, phase)``) however often an event is
    replayed. :meth:`rewind` forgets the keys first seen above a fork block (a reorg removed
    them; if they come back they count as new). In memory; a daemon keeps the same table in its
    journal, in the transaction that records the effect."""

    def __init__(self) -> None:
        self._seen: dict[Hashable, int] = {}

    def first(self, key: Hashable, block: int) -> bool:
        """Whether ``key`` is new (then it is remembered as first seen at ``block``)."""
        if key in self._seen:
            return False
        self._seen[key] = block
        return True

    def rewind(self, fork_block: int) -> list[Hashable]:
        """Forget keys first seen above ``fork_block``; returns them (their effects to undo)."""
        dropped = [k for k, b in self._seen.items() if b > fork_block]
        for key in dropped:
            del self._seen[key]
        return dropped

    def __contains__(self, key: Hashable) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)


def phase_key(batch: int, participant: Address, phase: str) -> tuple[int, Address, str]:
    """The idempotency key of a daemon's handlers: one action per (batch, participant, phase)."""
    return (batch, participant, phase)


class _Refused(ChainError):
    """A reply the watcher will not deliver (logged, retried)."""


class _Unavailable(_Refused):
    """A block the node's head claims but the node cannot serve (retried with a smaller range)."""


@dataclass(eq=False)
class _Prefetch:
    first: int
    last: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    result: tuple[list[RawLog], dict[int, BlockHeader]] | None = None
    error: ChainError | None = None


@dataclass
class WatcherStats:
    """Counters since start (for logs, metrics and the bench)."""

    events: int = 0
    deliveries: int = 0
    rewinds: int = 0
    retries: int = 0
    refused: int = 0
    range: int = 0
    prefetched: int = 0


class Watcher:
    """Follows ``log_filter`` from the persisted cursor to ``head - confirmations`` (see module doc).

    ``start_block`` is where a watcher without saved state begins (e.g. the deployment block).
    :meth:`run` never returns on its own; cancel its nursery to stop it. ``idle`` is set whenever
    the watcher has caught up with the confirmed head (tests and benches wait on it).
    """

    def __init__(
        self,
        rpc: AsyncRpc,
        catalog: EventCatalog,
        log_filter: LogFilter,
        store: WatcherStore,
        settings: WatcherSettings,
        confirmations: int = 0,
        start_block: int = 0,
    ) -> None:
        self._rpc = rpc
        self._catalog = catalog
        self._filter = log_filter
        self._store = store
        self._settings = settings
        self._confirmations = confirmations
        self._start = start_block
        self._range = settings.initial_range
        self.stats = WatcherStats(range=self._range)
        self.caught_up_to = -1
        """The confirmed head the watcher last caught up with (-1 before)."""
        self._caught_up = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._prefetch: _Prefetch | None = None

    async def wait_caught_up(self, block: int) -> None:
        """Wait until everything up to ``block`` has been processed."""
        while self.caught_up_to < block:
            await self._caught_up.wait()

    def _mark_caught_up(self, block: int) -> None:
        self.caught_up_to = block
        self._caught_up.set()
        self._caught_up = trio.Event()

    async def run(
        self,
        send: trio.MemorySendChannel[WatcherItem],
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Watch forever, sending :class:`Delivery` / :class:`Rewind` items into ``send``."""
        state = await self._store.load() or WatcherState(cursor=self._start - 1)
        log.info("watcher_start", cursor=state.cursor, remembered=len(state.hashes))
        task_status.started()
        backoff = self._settings.backoff_initial
        async with send, trio.open_nursery() as nursery:
            self._nursery = nursery
            while True:
                try:
                    state, idle = await self._step(state, send)
                    backoff = self._settings.backoff_initial
                    if idle:
                        await trio.sleep(self._settings.poll_interval)
                except (RpcError, _Refused, EventDecodeError) as exc:
                    self.stats.retries += 1
                    self.stats.refused += isinstance(exc, _Refused)
                    if isinstance(exc, RangeTooLarge | RpcTimeout | _Unavailable):
                        self._shrink()
                    log.warning(
                        "watcher_retry",
                        reason=type(exc).__name__,
                        error=str(exc)[:300],
                        cursor=state.cursor,
                        range=self._range,
                        backoff=backoff,
                    )
                    self._drop_prefetch()
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, self._settings.backoff_max)

    # ------------------------------------------------------------------ prefetch

    def _start_prefetch(self, first: int, last: int) -> None:
        """Fetch ``first..last`` in the background while the current range is decoded and
        processed: the node's work overlaps ours. Used only if the next step asks for exactly
        this range, after its own cursor check (so a reorg meanwhile is still caught)."""
        self._drop_prefetch()
        assert self._nursery is not None
        prefetch = _Prefetch(first, last)
        self._prefetch = prefetch

        async def fetch() -> None:
            with prefetch.scope:
                try:
                    prefetch.result = await self._fetch(first, last)
                except (RpcError, _Refused) as exc:
                    prefetch.error = exc
            prefetch.done.set()

        self._nursery.start_soon(fetch)

    def _drop_prefetch(self) -> None:
        if self._prefetch is not None:
            self._prefetch.scope.cancel()
            self._prefetch = None

    async def _fetch_or_prefetched(
        self, first: int, last: int
    ) -> tuple[list[RawLog], dict[int, BlockHeader]]:
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is None or (prefetch.first, prefetch.last) != (first, last):
            if prefetch is not None:
                prefetch.scope.cancel()
            return await self._fetch(first, last)
        await prefetch.done.wait()
        if prefetch.error is not None:
            raise prefetch.error
        if prefetch.result is None:  # cancelled: fetch afresh
            return await self._fetch(first, last)
        self.stats.prefetched += 1
        return prefetch.result

    def _shrink(self) -> None:
        self._range = max(self._settings.min_range, self._range // 2)
        self.stats.range = self._range

    def _grow(self) -> None:
        self._range = min(self._settings.max_range, self._range * 2)
        self.stats.range = self._range

    async def _step(
        self, state: WatcherState, send: trio.MemorySendChannel[WatcherItem]
    ) -> tuple[WatcherState, bool]:
        """One step: verify the cursor, then fetch, check and deliver one range. Returns the new
        state and whether the watcher is idle (caught up)."""
        calls: list[tuple[str, Sequence[object]]] = [("eth_blockNumber", [])]
        remembered = state.hashes.get(state.cursor)
        if remembered is not None:
            calls.append(("eth_getBlockByNumber", [hex_quantity(state.cursor), False]))
        replies = await self._rpc.batch(calls)
        _raise_errors(replies)
        head = _quantity(replies[0], "eth_blockNumber")
        if remembered is not None:
            header = parse_header(replies[1], "eth_getBlockByNumber")
            if header is None:
                # the node does not have our cursor block: it lags behind (or its chain got
                # shorter in a reorg, which its head will show once it has caught up)
                log.warning("watcher_node_behind_cursor", cursor=state.cursor, head=head)
                return state, True
            if header.hash != remembered:
                return await self._rewind(state, send), False
        target = head - self._confirmations
        if target <= state.cursor:
            self._mark_caught_up(state.cursor)
            return state, True
        first = state.cursor + 1
        last = min(state.cursor + self._range, target)
        logs, headers = await self._fetch_or_prefetched(first, last)
        if len(logs) < self._settings.quiet_logs:
            self._grow()
        if last < target:
            self._start_prefetch(last + 1, min(last + self._range, target))
        if any(entry.removed for entry in logs):
            log.warning("watcher_removed_log", first=first, last=last)
            raise _Refused(f"a log in {first}..{last} came back removed: a reorg is under way")
        events = tuple(e for e in (self._catalog.decode(entry) for entry in logs) if e is not None)
        delivery = Delivery(from_block=first, to_block=last, events=events)
        await send.send(delivery)
        await delivery._processed.wait()
        hashes = {n: h for n, h in state.hashes.items() if n > last - self._settings.reorg_window}
        hashes.update({n: h.hash for n, h in headers.items()})
        new_state = WatcherState(cursor=last, hashes=hashes)
        await self._store.save(new_state)
        self.stats.events += len(events)
        self.stats.deliveries += 1
        if last == target:
            self._mark_caught_up(last)
        return new_state, False

    async def _fetch(self, first: int, last: int) -> tuple[list[RawLog], dict[int, BlockHeader]]:
        """The filtered logs of ``first..last`` in chain order, checked against the headers of
        their blocks and of ``last`` (the header of ``last`` comes in the same batch as the logs:
        a node that cannot serve it makes the range shrink)."""
        query: dict[str, object] = {"fromBlock": hex_quantity(first), "toBlock": hex_quantity(last)}
        if self._filter.addresses:
            query["address"] = list(self._filter.addresses)
        if self._filter.topics:
            query["topics"] = [
                None if t is None else ["0x" + w.hex() for w in t] for t in self._filter.topics
            ]
        head_reply, logs_reply = await self._rpc.batch(
            [("eth_getBlockByNumber", [hex_quantity(last), False]), ("eth_getLogs", [query])]
        )
        if isinstance(head_reply, JsonRpcError) or head_reply is None:
            raise _Unavailable(f"block {last} unavailable although the node reported it: {head_reply}")
        if isinstance(logs_reply, JsonRpcError):
            raise logs_reply
        headers = {last: _header(head_reply, last)}
        logs = parse_logs(logs_reply)
        wanted = sorted({entry.block_number for entry in logs} - {last})
        if any(not first <= n <= last for n in wanted):
            raise _Refused(f"eth_getLogs({first}..{last}) returned logs outside the range")
        if wanted:
            replies = await self._rpc.batch(
                [("eth_getBlockByNumber", [hex_quantity(n), False]) for n in wanted]
            )
            for number, reply in zip(wanted, replies, strict=True):
                if isinstance(reply, JsonRpcError) or reply is None:
                    raise _Unavailable(f"block {number} unavailable although it has logs: {reply}")
                headers[number] = _header(reply, number)
        allowed = set(self._filter.addresses)
        hashes = {number: header.hash for number, header in headers.items()}
        positions = [(entry.block_number, entry.log_index) for entry in logs]
        for entry, position in zip(logs, positions, strict=True):
            if entry.block_hash != hashes[entry.block_number]:
                raise _Refused(
                    f"log {position} is on block 0x{entry.block_hash.hex()}, not the canonical one"
                )
            if allowed and entry.address not in allowed:
                raise _Refused(f"log {position} from {entry.address}, which the filter excludes")
        if len(set(positions)) != len(positions):
            raise _Refused(f"eth_getLogs({first}..{last}) returned a log twice")
        order = sorted(range(len(logs)), key=positions.__getitem__)
        return [logs[i] for i in order], headers

    async def _rewind(self, state: WatcherState, send: trio.MemorySendChannel[WatcherItem]) -> WatcherState:
        """Find the fork point among the remembered hashes, tell the consumer, persist."""
        numbers = sorted(state.hashes, reverse=True)
        replies = await self._rpc.batch([("eth_getBlockByNumber", [hex_quantity(n), False]) for n in numbers])
        _raise_errors(replies)
        fork = None
        for number, reply in zip(numbers, replies, strict=True):
            header = parse_header(reply, "eth_getBlockByNumber")
            if header is not None and header.hash == state.hashes[number]:
                fork = number
                break
        if fork is None:
            # deeper than every remembered block: rewinding further is always safe (idempotent
            # replay), so go back to below the oldest one we knew
            fork = max(self._start - 1, (min(numbers) if numbers else state.cursor) - 1)
            log.error("watcher_reorg_deeper_than_window", cursor=state.cursor, fork=fork)
        log.warning("watcher_reorg", cursor=state.cursor, fork=fork, depth=state.cursor - fork)
        rewind = Rewind(fork_block=fork, was_cursor=state.cursor)
        await send.send(rewind)
        await rewind._processed.wait()
        new_state = WatcherState(cursor=fork, hashes={n: h for n, h in state.hashes.items() if n <= fork})
        await self._store.save(new_state)
        self.stats.rewinds += 1
        return new_state


def _header(raw: object, number: int) -> BlockHeader:
    header = parse_header(raw, "eth_getBlockByNumber")
    if header is None or header.number != number:
        raise _Unavailable(f"block {number} unavailable (got {header and header.number})")
    return header


def _raise_errors(replies: Iterable[object]) -> None:
    for reply in replies:
        if isinstance(reply, JsonRpcError):
            raise reply


def _quantity(raw: object, what: str) -> int:
    if isinstance(raw, str) and raw.startswith("0x"):
        try:
            return int(raw, 16)
        except ValueError:
            pass
    raise RpcError(f"{what}: expected a hex quantity, got {raw!r:.100}")


def topics_of(catalog: EventCatalog, names: Iterable[str]) -> tuple[tuple[bytes, ...]]:
    """A ``topics`` filter matching any of the named events of ``catalog``."""
    return (tuple(catalog[name].topic for name in names),)


__all__ = [
    "Delivery",
    "KeyedOnce",
    "LogFilter",
    "MemoryWatcherStore",
    "Rewind",
    "Watcher",
    "WatcherItem",
    "WatcherState",
    "WatcherStats",
    "WatcherStore",
    "phase_key",
    "topics_of",
]
