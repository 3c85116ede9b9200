"""The compute node daemon: watch -> decide -> run the workflows -> store -> commit -> reveal -> claim.

Everything runs in :meth:`NodeDaemon.run`'s trio nursery (started by :mod:`node.main` beside the
p2p host and the metrics endpoint); nothing is fire-and-forget:

* the **writer** (:class:`protocol.chain.writer.TxWriter`, journaled by
  :class:`protocol.store.chain_adapters.JournalTxLog`: labels ``commit@BATCH``, ``reveal@BATCH``,
  ``claim@BLOCK``): the only sender of the key;
* the **watcher** (:class:`protocol.chain.watcher.Watcher`, cursor in the journal) -> the
  **consumer**, which records jobs and batches, asks the decider (:mod:`node.decider`) and starts
  one **batch driver** per taken batch in the ``batches`` nursery, and counts settlements/slashes;
* each batch driver: the rows' workflows under a concurrency limit (:mod:`node.work`), each
  envelope stored by digest in the journal before anything else; the commit policy; the salt
  journaled (``node.sqlite``) BEFORE the commit is submitted; the commit; waiting for the
  Revealing phase; the reveal. Every step first asks the journal whether it was already done, so a
  restarted daemon resumes every open batch without sending a transaction twice, recomputing a
  stored result or drawing a new salt;
* the **claimer**: claims the credited balance every ``run.claim_interval_s``;
* the **lag meter**: watcher lag and RPC errors for the metrics.

Crash points for fault tests (``SYNOD_HALT_AT`` / ``run.halt_at``): ``after_workflows``,
``after_commit_sent``, ``after_commit_mined``, ``after_reveal_sent``: the daemon logs
``halt_point point=...`` and SIGKILLs itself the first time it reaches the point.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import trio

from node.config import NodeRunSettings
from node.decider import BatchOffer, Decision, NodeCapacity, commit_policy, decide, estimated_seconds
from node.metrics import NodeMetrics
from node.rows import RowWriter
from node.serving import ServingCache, load_batch, read_admission, revealed_of
from node.split import load_roster, plan, split_seed
from node.state import BatchRecord, BatchStatus, JobRecord, NodeState
from node.work import TaskOutcome, TaskRunner
from protocol.canonical import keccak256
from protocol.chain.aio import AsyncRpc, TrioChain
from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ChainError, ContractRevert, TransactionReverted
from protocol.chain.events import ChainEvent, EventCatalog
from protocol.chain.market import Market
from protocol.chain.models import JobParams, Phase
from protocol.chain.signer import Signer
from protocol.chain.watcher import Delivery, LogFilter, Rewind, Watcher, WatcherItem, topics_of
from protocol.chain.wire import WireReceipt, hex_data
from protocol.chain.writer import TxCall, TxHandle, TxWriter
from protocol.commitments import new_salt, result_commitment
from protocol.errors import SynodError
from protocol.log import get_logger
from protocol.settings import ChainSettings, WatcherSettings
from protocol.store import ActionKey, ActionState, Store
from protocol.store.chain_adapters import JournalTxLog, journal_watcher_store
from protocol.store.errors import ChainLookupFailed
from protocol.store.recovery import MinedTx, recover
from protocol.types import Address
from workflow.errors import WorkflowError
from workflow.model import Workflow
from workflow.validate import parse_workflow_text

log = get_logger(__name__)

WATCHED_EVENTS = ("JobPosted", "BatchPosted", "BatchSettled", "MisconductSlashed", "Claimed")
REVEALED_PHASES = frozenset({Phase.DRAWING, Phase.SCORE_COMMITTING, Phase.SCORE_REVEALING, Phase.SETTLED})
"""Phases after the reveals closed: results may be served to the committee and the requester."""
SCORING_PHASES = frozenset({Phase.SCORE_COMMITTING, Phase.SCORE_REVEALING})
"""Phases with a drawn committee that may fetch: its members are kept per (batch, round)."""
RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
ACCESS_MEMORY_S = 10.0
"""An account the access rule admitted for a batch is admitted again for this many seconds
without re-reading the chain (a committee member fetches a whole batch: 2 chain reads per result
overloaded the RPC). A member replaced by a new draw keeps access at most this long."""


def seats_filled(exc: ContractRevert | TransactionReverted) -> bool:
    """Whether ``exc`` is the market's ``BatchSeatsFull``, from the commit's simulation or its mined
    replay: the batch's k seats were taken between the node's seat check and its commit (a backup
    finishing together with the owners). That batch was served by others, so the node skips it as
    closed; it did not abandon work it owed (review finding rev5, session 17)."""
    revert = exc if isinstance(exc, ContractRevert) else exc.revert
    return revert is not None and revert.name == "BatchSeatsFull"


def halt(point: str) -> None:
    """Log ``halt_point point=POINT``, flush the logs, and SIGKILL this process (fault tests)."""
    log.warning("halt_point", point=point)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class RpcLookup:
    """:class:`protocol.store.recovery.ChainLookup` over the async client, each call under
    ``timeout`` seconds; failures raise :class:`ChainLookupFailed`."""

    def __init__(self, rpc: AsyncRpc, timeout: float) -> None:
        self._rpc = rpc
        self._timeout = timeout

    async def _call(self, what: str, method: str, params: list[Any]) -> Any:
        try:
            with trio.fail_after(self._timeout):
                return await self._rpc.request(method, params, write=True)
        except trio.TooSlowError:
            raise ChainLookupFailed(f"{what}: no answer within {self._timeout}s") from None
        except ChainError as exc:
            raise ChainLookupFailed(f"{what}: {exc}") from None

    async def receipt(self, tx_hash: bytes) -> MinedTx | None:
        """The receipt of ``tx_hash`` if mined."""
        raw = await self._call("receipt", "eth_getTransactionReceipt", [hex_data(tx_hash)])
        if raw is None:
            return None
        return MinedTx(block_number=int(raw["blockNumber"], 16), success=int(raw["status"], 16) == 1)

    async def is_known(self, tx_hash: bytes) -> bool:
        """Whether the node knows ``tx_hash`` (pending or mined)."""
        return await self._call("known", "eth_getTransactionByHash", [hex_data(tx_hash)]) is not None

    async def mined_nonce(self, address: Address) -> int:
        """The account's mined transaction count."""
        return int(await self._call("nonce", "eth_getTransactionCount", [address, "latest"]), 16)

    async def send_raw(self, raw: bytes) -> None:
        """Re-send journaled bytes ("already known" is success)."""
        try:
            await self._call("send", "eth_sendRawTransaction", [hex_data(raw)])
        except ChainLookupFailed as exc:
            if "already known" not in str(exc).lower():
                raise


class BatchAbandoned(SynodError):
    """A batch driver gives the batch up (the reason is recorded and logged)."""


class SeatsFilled(SynodError):
    """Other nodes filled the batch's k seats (or its commit phase ended) before this node
    committed: the driver stops computing and records the batch as skipped (``closed``)."""


@dataclass
class NodeChain:
    """The node's chain handles: the async client (writer, watcher), the web3 facade in threads
    (typed reads), the event catalog, the settings and the first block to watch."""

    rpc: AsyncRpc
    contracts: SynodContracts
    catalog: EventCatalog
    settings: ChainSettings
    chain_id: int
    start_block: int
    confirmations: int

    @property
    def market_address(self) -> Address:
        return Address(self.contracts.market.address)


@dataclass
class _Driver:
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class NodeDaemon:
    """One node account's daemon. ``runner`` runs the rows (:class:`node.work.InlineRunner` or the
    worker process :class:`node.worker.WorkflowWorker`) for each served on-chain model name;
    ``served`` maps model ids (bytes32) to those names."""

    def __init__(
        self,
        chain: NodeChain,
        signer: Signer,
        settings: NodeRunSettings,
        store: Store,
        state: NodeState,
        runner: TaskRunner,
        served: Mapping[bytes, str],
        metrics: NodeMetrics,
        halt_at: str | None = None,
    ) -> None:
        self.chain = chain
        self.signer = signer
        self.address = signer.address
        self.settings = settings
        self.store = store
        self.state = state
        self.runner = runner
        self.served = dict(served)
        self.metrics = metrics
        self.halt_at = halt_at or None
        self._reads = TrioChain(chain.contracts)
        self._market = Market(chain.contracts)
        self._slots = trio.CapacityLimiter(settings.concurrency)
        self._rows = RowWriter(store, state)
        self._drivers: dict[int, _Driver] = {}
        self._workflows: dict[int, Workflow] = {}
        self._writer: TxWriter | None = None
        self._batches: trio.Nursery | None = None
        self._clock_offset = 0.0
        self._seat_checks: dict[int, float] = {}
        """batch id -> monotonic time of its last seat check that found a free seat."""
        self._seat_locks: dict[int, trio.Lock] = {}
        """batch id -> the lock of its seat checks (one chain read at a time per batch)."""
        self._access_ok: dict[tuple[int, Address], float] = {}
        """(batch, account) -> monotonic time until which the access rule admits it unasked."""
        self._serving = ServingCache()
        """Revealed batches' results by digest and committees by (batch, round) (p2p serving)."""
        self._waiting: deque[int] = deque()
        """Batches skipped for ``capacity``, oldest first: re-decided when a driver ends."""
        self._freed_send, self._freed = trio.open_memory_channel[None](1)
        self._rosters: dict[bytes, tuple[float, tuple[Address, ...]]] = {}
        """model id -> (monotonic time read, the nodes eligible for it): the work split's roster."""
        self.watcher: Watcher | None = None

    # ------------------------------------------------------------------ helpers

    def _halt_if(self, point: str) -> None:
        if self.halt_at == point:
            self.halt_at = None
            halt(point)

    async def _run(self, *args: Any) -> Any:
        return await trio.to_thread.run_sync(*args)

    async def _read(self, fn: Any, *args: Any) -> Any:
        """A typed market read at a freshly read confirmed head, under the RPC deadline.

        Not the shared head of :meth:`TrioChain.head` ``max_age``: with the node's reads sharing a
        head of half a poll interval, ``tests/node/test_node_daemon.py -k "served_settled_and_claimed
        or killed_at_each_stage"`` failed 2 runs of 3 (a restarted node never acted on a batch posted
        right after its start, nothing logged for 60 s; cause not found, session 18); with a fresh
        head, 3 of 3 passed, as session 17's code does."""
        with trio.fail_after(self.chain.settings.rpc_timeout * 2):
            head = await self._reads.head()
            return await self._reads.run(fn, *args, head)

    async def _sync_clock(self) -> None:
        """Re-read the chain's clock (the latest block's timestamp); on an RPC failure keep the
        last offset (logged and counted): deadlines are re-checked by the chain anyway."""
        try:
            with trio.fail_after(self.chain.settings.rpc_timeout):
                block = await self.chain.rpc.block("latest")
        except (ChainError, trio.TooSlowError) as exc:
            self.metrics.rpc_errors.inc()
            log.warning("node_clock_unavailable", error=str(exc)[:200])
            return
        if block is not None:
            self._clock_offset = block.timestamp - time.time()

    def chain_now(self) -> float:
        """Chain time estimate: wall clock plus the offset of the latest block's timestamp."""
        return time.time() + self._clock_offset

    @property
    def writer(self) -> TxWriter:
        assert self._writer is not None, "the writer starts first"
        return self._writer

    # ------------------------------------------------------------------ the service

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every service until cancelled; reports started once the writer runs and the
        journal was reconciled with the chain."""
        journal = JournalTxLog(self.store)
        self._writer = TxWriter(
            self.chain.rpc, self.signer, self.chain.chain_id, self.chain.settings, journal
        )
        await self._sync_clock()
        recovered = await recover(self.store, RpcLookup(self.chain.rpc, self.chain.settings.rpc_timeout))
        for item in recovered:
            log.info("node_recovered_action", key=str(item.key), outcome=item.outcome.value)
        log_filter = LogFilter(
            addresses=(self.chain.market_address,), topics=topics_of(self.chain.catalog, WATCHED_EVENTS)
        )
        self.watcher = Watcher(
            self.chain.rpc,
            self.chain.catalog,
            log_filter,
            journal_watcher_store(self.store, "node"),
            WatcherSettings(poll_interval=self.settings.poll_interval_s),
            confirmations=self.chain.confirmations,
            start_block=self.chain.start_block,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(self.writer.run)
            batches = await nursery.start(self._batch_nursery)
            self._batches = batches
            for record in await self._run(self.state.open_batches):
                log.info("node_resume_batch", batch=record.batch_id, status=record.status.value)
                self._start_driver(record.batch_id)
            send, receive = trio.open_memory_channel[WatcherItem](0)
            nursery.start_soon(self._consume, receive)
            await nursery.start(self.watcher.run, send)
            nursery.start_soon(self._claimer)
            nursery.start_soon(self._take_waiting)
            nursery.start_soon(self._lag_meter)
            log.info("node_started", address=self.address, open_batches=len(self._drivers))
            task_status.started()

    async def _batch_nursery(self, task_status: trio.TaskStatus[trio.Nursery]) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started(nursery)
            await trio.sleep_forever()

    def _start_driver(self, batch_id: int) -> None:
        if batch_id in self._drivers:
            return
        driver = _Driver()
        self._drivers[batch_id] = driver
        self.metrics.open_batches.set(len(self._drivers))
        assert self._batches is not None
        self._batches.start_soon(self._drive, batch_id, driver)

    # ------------------------------------------------------------------ events

    async def _consume(self, receive: trio.MemoryReceiveChannel[WatcherItem]) -> None:
        async with receive:
            async for item in receive:
                if isinstance(item, Rewind):
                    await self._rewind(item.fork_block)
                elif isinstance(item, Delivery):
                    for event in item.events:
                        await self._on_event(event)
                item.processed()

    async def _rewind(self, fork_block: int) -> None:
        forgotten = await self._run(self.state.forget_above, fork_block)
        for batch_id in forgotten:
            driver = self._drivers.pop(batch_id, None)
            if driver is not None:
                driver.scope.cancel()
            await self.store.forget_batch(batch_id, self.address)
            self._workflows.pop(batch_id, None)
            # the serving memory and admissions of the old batch: its id may come back as another
            self._serving.forget(batch_id)
        # a batch posted below the fork may have been drawn above it: its committee (and the
        # admissions made from it) may differ on the new chain, so every one is read again
        self._serving.forget_committees()
        self._access_ok = {}
        self.writer.forget_nonce()  # our transactions above the fork may be gone
        self.metrics.open_batches.set(len(self._drivers))
        log.warning("node_reorg", fork_block=fork_block, forgotten_batches=forgotten)

    async def _on_event(self, event: ChainEvent) -> None:
        args = event.args()
        name = type(event).event_name
        if name == "JobPosted":
            params = JobParams.model_validate(_plain(args["params"]))
            job = JobRecord(
                job_id=int(args["jobId"]),
                workflow=bytes(args["workflow"]),
                workflow_hash=keccak256(bytes(args["workflow"])),
                requester=str(args["requester"]),
                params=params,
                block=event.block_number,
            )
            await self._run(self.state.put_job, job)
        elif name == "BatchPosted":
            await self._on_batch(event, args)
        elif name == "BatchSettled":
            await self._on_settled(int(args["batchId"]), args)
        elif name == "MisconductSlashed" and str(args["account"]) == self.address:
            self.metrics.slashed.inc()
            self.metrics.slashed_amount.inc(int(args["amount"]))
            log.warning(
                "node_slashed",
                batch=int(args["batchId"]),
                reason=int(args["reason"]),
                amount=int(args["amount"]),
            )
        elif name == "Claimed" and str(args["account"]) == self.address:
            self.metrics.earnings.inc(int(args["amount"]))

    async def _on_settled(self, batch_id: int, args: Mapping[str, Any]) -> None:
        record = await self._run(self.state.batch, batch_id)
        if record is None or record.seat is None:
            return
        paid = list(args["nodePaid"])
        amount = int(paid[record.seat]) if record.seat < len(paid) else 0
        self.metrics.paid.inc(amount)
        log.info("node_batch_settled", batch=batch_id, seat=record.seat, paid=amount)

    async def _on_batch(self, event: ChainEvent, args: Mapping[str, Any]) -> None:
        batch_id = int(args["batchId"])
        if await self._run(self.state.batch, batch_id) is not None:
            return  # a replay after a restart: already recorded (and resumed if open)
        self.metrics.batches_seen.inc()
        job = await self._run(self.state.job, int(args["jobId"]))
        rows = tuple(bytes(r) for r in args["rows"])
        decision = await self._decide(batch_id, job, len(rows), int(args["commitDeadline"]))
        record = BatchRecord(
            batch_id=batch_id,
            job_id=int(args["jobId"]),
            first_row=int(args["firstRow"]),
            commit_deadline=int(args["commitDeadline"]),
            rows=rows,
            status=BatchStatus.TAKEN if decision.take else BatchStatus.SKIPPED,
            reason=decision.reason or "",
            block=event.block_number,
        )
        await self._run(self.state.put_batch, record)
        if not decision.take:
            assert decision.reason is not None
            self.metrics.batches_skipped.labels(reason=decision.reason).inc()
            log.info("node_batch_skipped", batch=batch_id, reason=decision.reason, detail=decision.detail)
            if decision.reason == "capacity":
                self._waiting.append(batch_id)  # re-decided when a batch driver ends
                if len(self._drivers) < self.settings.max_open_batches:
                    self._wake_waiting()  # a driver ended while this batch was being recorded
            return
        self.metrics.batches_taken.inc()
        log.info("node_batch_taken", batch=batch_id, rows=len(rows), detail=decision.detail)
        self._start_driver(batch_id)

    async def _decide(
        self, batch_id: int, job: JobRecord | None, rows: int, commit_deadline: int
    ) -> Decision:
        """The decider's answer for the batch now (its view read from the chain)."""
        workflow_error = None
        params = job.params if job is not None else None
        if job is not None:
            try:
                self._workflows[batch_id] = parse_workflow_text(job.workflow.decode("utf-8"))
            except (UnicodeDecodeError, WorkflowError) as exc:
                workflow_error = f"{type(exc).__name__}: {exc}"[:300]
        task_seconds = self.settings.default_task_seconds
        if job is not None:
            measured = await self._run(self.state.speed, job.workflow_hash)
            task_seconds = measured if measured is not None else task_seconds
        accepting = True
        if params is not None and workflow_error is None:
            try:
                view = await self._read(self._market.batch, batch_id)
                accepting = view.phase is Phase.COMMITTING and view.commit_count < params.k
            except (ChainError, trio.TooSlowError) as exc:  # undecided: let the commit's simulation say
                self.metrics.rpc_errors.inc()
                log.warning("node_batch_view_failed", batch=batch_id, error=str(exc)[:200])
        offer = BatchOffer(params, rows, commit_deadline, workflow_error, accepting)
        capacity = NodeCapacity(
            served=frozenset(self.served),
            min_bounty_per_task=self.settings.min_bounty_per_task,
            open_batches=len(self._drivers),
            max_open_batches=self.settings.max_open_batches,
            concurrency=self.settings.concurrency,
            task_seconds=task_seconds,
            margin_s=self.settings.deadline_margin_s,
        )
        await self._sync_clock()
        return decide(offer, capacity, int(self.chain_now()))

    def _wake_waiting(self) -> None:
        """Nudge :meth:`_take_waiting` (a nudge already pending is enough)."""
        with suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self._freed_send.send_nowait(None)

    async def _take_waiting(self) -> None:
        """Batches skipped for ``capacity`` are re-decided, oldest first, whenever a batch driver
        ends (so a job of more batches than ``run.max_open_batches`` is worked through, not
        dropped); a batch that no longer fits (closed, deadline) stays skipped with the new reason.
        The queue is in memory: after a restart, such batches stay skipped."""
        while True:
            await self._freed.receive()
            while self._waiting and len(self._drivers) < self.settings.max_open_batches:
                batch_id = self._waiting.popleft()
                record = await self._run(self.state.batch, batch_id)
                if record is None or record.status is not BatchStatus.SKIPPED:
                    continue
                job = await self._run(self.state.job, record.job_id)
                decision = await self._decide(batch_id, job, len(record.rows), record.commit_deadline)
                if not decision.take:
                    assert decision.reason is not None
                    await self._run(self.state.set_status, batch_id, BatchStatus.SKIPPED, decision.reason)
                    log.info(
                        "node_batch_skipped", batch=batch_id, reason=decision.reason, detail=decision.detail
                    )
                    if decision.reason == "capacity":
                        self._waiting.appendleft(batch_id)
                        break
                    continue
                await self._run(self.state.set_status, batch_id, BatchStatus.TAKEN)
                self.metrics.batches_taken.inc()
                log.info("node_batch_taken", batch=batch_id, rows=len(record.rows), detail=decision.detail)
                self._start_driver(batch_id)

    # ------------------------------------------------------------------ one batch

    async def _drive(self, batch_id: int, driver: _Driver) -> None:
        """Carry one batch to its reveal, retrying RPC failures (every step is idempotent)."""
        attempt = 0
        with driver.scope:
            try:
                while True:
                    try:
                        await self._drive_once(batch_id)
                        return
                    except SeatsFilled as exc:
                        await self._skip_closed(batch_id, str(exc))
                        return
                    except BatchAbandoned as exc:
                        await self._abandon(batch_id, str(exc))
                        return
                    except (ContractRevert, TransactionReverted) as exc:
                        if seats_filled(exc):  # a backup's commit raced the owners' last one
                            await self._skip_closed(batch_id, f"seats filled as we committed: {exc}")
                        else:
                            await self._abandon(batch_id, f"{type(exc).__name__}: {exc}")
                        return
                    except (ChainError, ChainLookupFailed, trio.TooSlowError) as exc:
                        self.metrics.rpc_errors.inc()
                        delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                        attempt += 1
                        log.warning("node_batch_retry", batch=batch_id, attempt=attempt, error=str(exc)[:300])
                        await trio.sleep(delay)
            finally:
                self._seat_checks.pop(batch_id, None)
                self._seat_locks.pop(batch_id, None)
                if self._drivers.get(batch_id) is driver:
                    del self._drivers[batch_id]
                self._wake_waiting()
                self.metrics.open_batches.set(len(self._drivers))

    async def _skip_closed(self, batch_id: int, detail: str) -> None:
        self.metrics.batches_skipped.labels(reason="closed").inc()
        log.info("node_batch_skipped", batch=batch_id, reason="closed", detail=detail[:300])
        await self._run(self.state.set_status, batch_id, BatchStatus.SKIPPED, f"closed: {detail}"[:500])

    async def _seats_open(self, batch_id: int, k: int, max_age: float) -> bool:
        """Whether the batch still takes a commit (Committing, fewer than ``k`` commits), read
        from the chain unless a check less than ``max_age`` seconds ago found a free seat. An RPC
        failure answers True (counted): the commit's own simulation decides then.

        Checks of one batch take turns (the rows that start together used to read the same view
        once each): a caller that waited for another's read uses its answer when it is fresh
        enough, so a burst of rows costs one read."""
        checked = self._seat_checks.get(batch_id)
        if checked is not None and time.monotonic() - checked < max_age:
            return True
        async with self._seat_locks.setdefault(batch_id, trio.Lock()):
            checked = self._seat_checks.get(batch_id)
            if checked is not None and time.monotonic() - checked < max_age:
                return True  # read by the caller ahead of us
            try:
                view = await self._read(self._market.batch, batch_id)
            except (ChainError, trio.TooSlowError) as exc:
                self.metrics.rpc_errors.inc()
                log.warning("node_batch_view_failed", batch=batch_id, error=str(exc)[:200])
                return True
            if view.phase is Phase.COMMITTING and view.commit_count < k:
                self._seat_checks[batch_id] = time.monotonic()
                return True
            return False

    async def _abandon(self, batch_id: int, reason: str) -> None:
        self.metrics.batches_abandoned.inc()
        log.warning("node_batch_abandoned", batch=batch_id, reason=reason[:500])
        await self._run(self.state.set_status, batch_id, BatchStatus.ABANDONED, reason[:500])

    async def _drive_once(self, batch_id: int) -> None:
        record = await self._run(self.state.batch, batch_id)
        if record is None or not record.status.open:
            return
        job = await self._run(self.state.job, record.job_id)
        if job is None:
            raise BatchAbandoned("its job is no longer recorded")
        if record.status is BatchStatus.TAKEN:
            await self._compute(record, job)
            record = await self._run(self.state.batch, batch_id)
            assert record is not None
        tasks = await self._run(self.state.tasks, batch_id)
        digests = [tasks[i].digest for i in range(len(record.rows))]
        if record.status is BatchStatus.COMPUTED:
            failed = sum(1 for t in tasks.values() if t.error is not None)
            commit, why = commit_policy(len(record.rows), failed, job.params)
            if not commit:
                raise BatchAbandoned(why)
            seat = await self._commit(record, digests)
            record = await self._run(self.state.batch, batch_id)
            assert record is not None and record.seat == seat
        if record.status is BatchStatus.COMMITTED:
            assert record.seat is not None and record.salt is not None
            await self._reveal(record, digests)

    async def _compute(self, record: BatchRecord, job: JobRecord) -> None:
        """Run every row not yet stored (a restart recomputes nothing already stored)."""
        done = await self._run(self.state.tasks, record.batch_id)
        missing = [i for i in range(len(record.rows)) if i not in done]
        if missing and not done:
            await self._defer(record, job)
        if missing:
            workflow = self._workflows.get(record.batch_id)
            if workflow is None:
                try:
                    workflow = parse_workflow_text(job.workflow.decode("utf-8"))
                except (UnicodeDecodeError, WorkflowError) as exc:
                    raise BatchAbandoned(f"malformed workflow: {exc}") from None
            model = self.served.get(bytes(job.params.model))
            if model is None:
                raise BatchAbandoned("the job's model is no longer served")
            await self._sync_clock()
            closed: list[int] = []  # set by the first task that finds the seats filled
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    for row in missing:
                        nursery.start_soon(self._task, record, job, workflow, model, row, scope, closed)
            if closed:
                stored = len(await self._run(self.state.tasks, record.batch_id))
                raise SeatsFilled(f"seats filled while computing: {stored} of {len(record.rows)} rows run")
        await self._run(self.state.set_status, record.batch_id, BatchStatus.COMPUTED)
        tasks = await self._run(self.state.tasks, record.batch_id)
        failed = {i: t.error for i, t in tasks.items() if t.error is not None}
        log.info("node_batch_computed", batch=record.batch_id, rows=len(record.rows), failed=len(failed))
        self._halt_if("after_workflows")

    async def _roster(self, model: bytes) -> tuple[Address, ...]:
        """The nodes eligible for ``model`` (:func:`node.split.load_roster`), re-read at most
        every ``run.split.roster_refresh_s``. Raises the chain's errors and ``trio.TooSlowError``."""
        cached = self._rosters.get(model)
        if cached is not None and time.monotonic() - cached[0] < self.settings.split.roster_refresh_s:
            return cached[1]
        roster: tuple[Address, ...] = await self._read(load_roster, self.chain.contracts, model)
        self._rosters[model] = (time.monotonic(), roster)
        return roster

    async def _defer(self, record: BatchRecord, job: JobRecord) -> None:
        """The work split (:mod:`node.split`): return at once if this node owns the batch (ranked
        below k), the split is off or the roster cannot be read; else wait as a backup until the
        plan's start, re-reading the seats, and raise :class:`SeatsFilled` when the owners filled
        them (no row run). Deterministic from the chain, so a restart waits the same way."""
        split = self.settings.split
        if not split.enabled:
            return
        k = int(job.params.k)
        try:
            roster = await self._roster(bytes(job.params.model))
        except (ChainError, trio.TooSlowError) as exc:
            self.metrics.rpc_errors.inc()
            log.warning("node_split_unavailable", batch=record.batch_id, error=str(exc)[:200])
            return
        measured = await self._run(self.state.speed, job.workflow_hash)
        task_seconds = measured if measured is not None else self.settings.default_task_seconds
        place = plan(
            record.batch_id,
            self.address,
            roster,
            split_seed(job.job_id, job.workflow_hash),
            k,
            commit_deadline=record.commit_deadline,
            commit_duration=int(job.params.commit_duration),
            delay_fraction=split.backup_delay,
            estimated_s=estimated_seconds(len(record.rows), self.settings.concurrency, task_seconds),
            safety=split.safety,
            margin_s=self.settings.deadline_margin_s,
        )
        if place.owner:
            log.info("node_batch_owned", batch=record.batch_id, rank=place.rank + 1, of=place.size, k=k)
            return
        await self._sync_clock()
        self.metrics.batches_deferred.inc()
        log.info(
            "node_batch_deferred",
            batch=record.batch_id,
            rank=place.rank + 1,
            of=place.size,
            k=k,
            start_in_s=round(place.start_at - self.chain_now(), 1),
        )
        interval = max(self.settings.poll_interval_s, self.settings.seat_check_s, 0.2)
        while True:
            if not await self._seats_open(record.batch_id, k, 0.0):
                self.metrics.split_saved.inc()
                raise SeatsFilled(
                    f"work split: rank {place.rank + 1} of {place.size}, the batch's {k} seats were "
                    f"filled while this node waited as a backup (0 of {len(record.rows)} rows run)"
                )
            left = place.start_at - self.chain_now()
            if left <= 0:
                break
            await trio.sleep(min(interval, left))
        log.info("node_batch_backup_started", batch=record.batch_id, rank=place.rank + 1, of=place.size)

    async def _task(
        self,
        record: BatchRecord,
        job: JobRecord,
        workflow: Workflow,
        model: str,
        row: int,
        batch_scope: trio.CancelScope,
        closed: list[int],
    ) -> None:
        """Run one row (when a slot is free and the batch still has a free seat) and store it;
        on filled seats: record the row in ``closed`` and cancel the batch's other tasks."""
        async with self._slots:
            if not await self._seats_open(record.batch_id, int(job.params.k), self.settings.seat_check_s):
                closed.append(row)
                batch_scope.cancel()
                return
            remaining = record.commit_deadline - self.settings.deadline_margin_s - self.chain_now()
            text = job.workflow.decode("utf-8")
            outcome = await self.runner.execute(
                model, workflow, text, job.workflow_hash, record.rows[row], remaining
            )
        with trio.CancelScope(shield=True):  # a row that ran is stored even if its batch is stopping
            await self._store_outcome(record, job, row, outcome)

    async def _store_outcome(
        self, record: BatchRecord, job: JobRecord, row: int, outcome: TaskOutcome
    ) -> None:
        # envelope, task record and speed, group-committed with the rows finished meanwhile
        # (node/rows.py): durable when this returns, as before
        await self._rows.store(record.batch_id, row, outcome, job.workflow_hash, self.settings.speed_alpha)
        self.metrics.workflow_seconds.observe(outcome.seconds)
        if outcome.error is None:
            self.metrics.tasks.labels(outcome="ok").inc()
        else:
            self.metrics.tasks.labels(outcome="failed").inc()
            log.warning("node_task_failed", batch=record.batch_id, row=row, reason=outcome.error)

    # ------------------------------------------------------------------ transactions

    async def _journaled(self, phase: str, batch_id: int, call: TxCall, halt_point: str) -> WireReceipt:
        """Send ``call`` once per (batch, phase): resume a journaled one, else submit it."""
        key = ActionKey(batch=batch_id, participant=self.address, phase=phase)
        action = await self.store.get_action(key)
        if action is None:
            handle = await self.writer.submit(call)
            if self.halt_at == halt_point:
                await self._wait_sent(handle)
                self._halt_if(halt_point)
            return await handle.wait()
        if action.state is ActionState.DROPPED:
            raise BatchAbandoned(f"{phase}: its transaction was dropped (nonce used by another transaction)")
        if action.state in (ActionState.MINED_SUCCESS, ActionState.MINED_REVERTED):
            assert action.mined_tx_hash is not None
            receipt = await self.chain.rpc.receipt(action.mined_tx_hash)
            if receipt is None:
                raise ChainError(f"{phase}@{batch_id}: journaled as mined but no receipt (yet)")
        else:
            receipt = await self._await_journaled(key)
        if receipt.status != 1:
            raise BatchAbandoned(f"{phase}: transaction 0x{receipt.transaction_hash.hex()} reverted")
        return receipt

    async def _wait_sent(self, handle: TxHandle) -> None:
        """Wait until the chain node knows one of the request's transactions (or it finished)."""
        with trio.fail_after(self.chain.settings.receipt_timeout):
            while not handle.done:
                for tx_hash in list(handle.sent):
                    if (
                        await self.chain.rpc.request("eth_getTransactionByHash", [hex_data(tx_hash)])
                        is not None
                    ):
                        return
                await trio.sleep(0.01)

    async def _await_journaled(self, key: ActionKey) -> WireReceipt:
        """After a restart: poll the receipts of a journaled action's live transactions until one
        is mined (recorded in the journal), or its nonce is taken (dropped: the batch is abandoned)."""
        while True:
            action = await self.store.get_action(key)
            assert action is not None
            for tx in action.live_txs:
                receipt = await self.chain.rpc.receipt(tx.tx_hash)
                if receipt is not None:
                    await self.store.mark_mined(key, tx.tx_hash, receipt.block_number, receipt.status == 1)
                    return receipt
            nonce = action.live_txs[0].nonce
            taken = await self.chain.rpc.transaction_count(self.address, "latest") > nonce
            if taken and all([await self.chain.rpc.receipt(t.tx_hash) is None for t in action.live_txs]):
                await self.store.mark_dropped(key)
                raise BatchAbandoned(f"{key.phase}: nonce {nonce} was used by another transaction")
            await trio.sleep(self.settings.poll_interval_s)

    async def _commit(self, record: BatchRecord, digests: list[bytes]) -> int:
        batch_id = record.batch_id
        key = ActionKey(batch=batch_id, participant=self.address, phase="commit")
        if await self.store.get_action(key) is None:
            await self._sync_clock()
            left = record.commit_deadline - self.chain_now()
            if left <= 0:  # (the simulation would refuse it too; this saves the round trip)
                raise BatchAbandoned(f"commit window closed ({-left:.1f}s ago)")
            job = await self._run(self.state.job, record.job_id)
            if job is not None and not await self._seats_open(batch_id, int(job.params.k), 0.0):
                raise SeatsFilled("seats filled before the commit")
        salt = await self._run(self.state.ensure_salt, batch_id, bytes(new_salt()))  # durable first
        commitment = result_commitment(batch_id, self.address, digests, salt)
        fn = self.chain.contracts.market.functions.commitResult(batch_id, commitment)
        receipt = await self._journaled(
            "commit", batch_id, TxCall.from_function(fn, label=f"commit@{batch_id}"), "after_commit_sent"
        )
        seat = self._seat_from(receipt, batch_id)
        await self._run(self.state.set_seat, batch_id, seat)
        self.metrics.commits.inc()
        log.info("node_committed", batch=batch_id, seat=seat, tx_hash=receipt.transaction_hash)
        self._halt_if("after_commit_mined")
        return seat

    def _seat_from(self, receipt: WireReceipt, batch_id: int) -> int:
        for raw in receipt.logs:
            event = self.chain.catalog.decode(raw)
            if event is not None and type(event).event_name == "ResultCommitted":
                args = event.args()
                if int(args["batchId"]) == batch_id and str(args["node"]) == self.address:
                    return int(args["seat"])
        raise BatchAbandoned(
            f"commit receipt 0x{receipt.transaction_hash.hex()} has no ResultCommitted for us"
        )

    async def _reveal(self, record: BatchRecord, digests: list[bytes]) -> None:
        batch_id = record.batch_id
        assert record.seat is not None and record.salt is not None
        key = ActionKey(batch=batch_id, participant=self.address, phase="reveal")
        if await self.store.get_action(key) is None:
            while True:  # wait for the Revealing phase (k commits, or the commit deadline passed)
                phase = await self._read(self._market.phase, batch_id)
                if phase.phase is Phase.REVEALING:
                    break
                if phase.phase is not Phase.COMMITTING:
                    raise BatchAbandoned(f"missed the reveal: the batch is {phase.phase.name}")
                await trio.sleep(self.settings.poll_interval_s)
        fn = self.chain.contracts.market.functions.revealResult(
            batch_id, record.seat, list(digests), record.salt
        )
        receipt = await self._journaled(
            "reveal", batch_id, TxCall.from_function(fn, label=f"reveal@{batch_id}"), "after_reveal_sent"
        )
        await self._run(self.state.set_status, batch_id, BatchStatus.REVEALED)
        self.metrics.reveals.inc()
        log.info("node_revealed", batch=batch_id, seat=record.seat, tx_hash=receipt.transaction_hash)

    # ------------------------------------------------------------------ background services

    async def _claimer(self) -> None:
        interval = self.settings.claim_interval_s
        if interval <= 0:
            return
        while True:
            await trio.sleep(interval)
            try:
                balance = int(await self._read(self._market.balance_of, self.address))
                if balance > 0:
                    with trio.fail_after(self.chain.settings.receipt_timeout * 2):
                        block = await self.chain.rpc.block_number()
                        fn = self.chain.contracts.market.functions.claim()
                        receipt = await self.writer.transact(TxCall.from_function(fn, label=f"claim@{block}"))
                    log.info("node_claimed", amount=balance, tx_hash=receipt.transaction_hash)
            except (ChainError, trio.TooSlowError) as exc:
                self.metrics.rpc_errors.inc()
                log.warning("node_claim_failed", error=str(exc)[:300])

    async def _lag_meter(self) -> None:
        while True:
            await trio.sleep(max(self.settings.poll_interval_s, 1.0))
            try:
                with trio.fail_after(self.chain.settings.rpc_timeout):
                    head = await self.chain.rpc.block_number()
            except (ChainError, trio.TooSlowError):
                self.metrics.rpc_errors.inc()
                continue
            if self.watcher is not None and self.watcher.caught_up_to >= 0:
                self.metrics.watcher_lag.set(
                    max(head - self.chain.confirmations - self.watcher.caught_up_to, 0)
                )

    # ------------------------------------------------------------------ p2p

    async def lookup(self, digest: bytes) -> bytes | None:
        """The stored bytes of ``digest`` (the result server's lookup): from the serving cache when
        a revealed batch holding it was loaded there (:mod:`node.serving`), else the journal."""
        data = self._serving.result(digest)
        return data if data is not None else await self.store.get_result(digest)

    async def access(self, peer_id: str, digest: bytes, account: Address | None) -> bool:
        """The result server's rule: the signing ``account`` is on the committee of a batch holding
        ``digest`` and that batch is past its reveals, or it is the job's requester and the batch is
        revealed (Drawing or later) or settled. Unsigned requests and everyone else are refused.
        An admission is remembered for :data:`ACCESS_MEMORY_S` per (batch, account).

        The common case is memory only: the batches this node revealed are looked up in the
        serving cache (loaded whole, one thread hop, on their first ADMITTED request: a refused
        one reads batch records only); only a digest no kept batch admits goes to the node's
        state (batches not yet recorded as revealed, as before, and batches too large to keep)."""
        if account is None:
            return False
        now = time.monotonic()
        kept = self._serving.batches_of(digest)
        for served in kept:
            if self._access_ok.get((served.batch_id, account), 0.0) > now:
                return True  # admitted for this batch moments ago (ACCESS_MEMORY_S)
        for served in kept:
            verdict = await self._admits(served.batch_id, served.requester, account, now)
            if verdict is not None:
                return verdict
        done = {s.batch_id for s in kept}
        # kept batches are not looked at again, oversized ones never loaded again; the bytes of a
        # batch are read only once a request for it is admitted (a refused request, e.g. of a free
        # account for a public digest, must cost records, not a batch's bytes)
        skip = frozenset(done) | self._serving.oversize
        ids, found = await self._run(revealed_of, self.state, bytes(digest), skip)
        for batch_id, requester in found:
            done.add(batch_id)
            if self._access_ok.get((batch_id, account), 0.0) <= now:
                verdict = await self._admits(batch_id, requester, account, now)
                if verdict is None:
                    continue
                if not verdict:
                    return False
            served = await self._run(
                load_batch, self.state, self.store, batch_id, requester, self._serving.max_bytes
            )
            self._serving.add(served)
            return True
        for batch_id in ids:
            if batch_id in done:
                continue
            # COMMITTED too: the chain's phase below is the authority, and the journal may not yet
            # have recorded our reveal's receipt when a fast committee asks (it used to be denied);
            # REVEALED here: a batch too large for the serving memory (never loaded again)
            record = await self._run(self.state.batch, batch_id)
            if record is None or record.status not in (BatchStatus.COMMITTED, BatchStatus.REVEALED):
                continue
            if self._access_ok.get((batch_id, account), 0.0) > now:
                return True
            job = await self._run(self.state.job, record.job_id)
            verdict = await self._admits(batch_id, None if job is None else job.requester, account, now)
            if verdict is not None:
                return verdict
        return False

    async def _admits(
        self, batch_id: int, requester: str | None, account: Address, now: float
    ) -> bool | None:
        """The chain's word on ``account`` for ``batch_id``: True (admitted, remembered), False
        (a chain read failed: refuse the request) or None (not for this batch: try the next).
        The committee is kept per (batch, round) in the serving cache while the batch is scoring."""
        try:
            check = await self._read(
                read_admission, self._market, batch_id, self._serving.rounds_of(batch_id)
            )
        except (ChainError, trio.TooSlowError) as exc:
            self.metrics.rpc_errors.inc()
            log.warning("node_access_check_failed", batch=batch_id, error=str(exc)[:200])
            return False
        if check.phase not in SCORING_PHASES:
            self._serving.forget_committee(batch_id)
        if check.phase not in REVEALED_PHASES:
            return None
        if requester is not None and account == requester:
            admitted = True
        else:
            members = check.members
            if check.fresh and check.round is not None:
                members = self._serving.remember_committee(batch_id, check.round, members)
            admitted = account in members
        if not admitted:
            return None
        if len(self._access_ok) > 10_000:
            self._access_ok = {k: t for k, t in self._access_ok.items() if t > now}
        self._access_ok[(batch_id, account)] = now + ACCESS_MEMORY_S
        return True


def _plain(value: Any) -> Any:
    """A generated event struct as a plain dict (for the typed :class:`JobParams`)."""
    if hasattr(value, "model_dump"):
        return {k: getattr(value, k) for k in type(value).model_fields}
    return value
