"""The validator daemon: a level-triggered loop over the chain's live batches.

Every ``poll_interval`` seconds the daemon reads the confirmed head, adds the batches posted since
its last look (``BatchPosted`` logs; on start it scans from ``start_block`` or the deployment
block), and for every live batch decides from the chain's *current* state what is due, so a
restart at any point simply resumes (kubernetes-controller style reconciliation; lido-oracle's
"skip what is already submitted, simulate, send, wait"):

* **Drawing**: call ``drawCommittee`` (arm the seed, then draw once the seed block is past), if
  ``schedule.draw``; a lost race (someone else drew first) is a refused simulation, logged.
* **ScoreCommitting**, a seat of this validator not committed: the scores of the round come from
  the journal (``scored_r<round>@<batch>``) or are computed now (:mod:`oracle.daemon.work`) and
  journaled with their salt *before* ``commitScores`` is sent.
* **ScoreRevealing**, a seat committed and not revealed: ``revealScores`` with the journaled vector
  and salt (``revealScoresAndSettle`` with the round's vectors when it is the last committed seat to
  reveal and ``schedule.settle`` is on: the reveal settles the batch, no ``settle`` transaction
  follows). Without a journaled record the daemon never reveals (it would not be its own score).
* a batch that is due to settle (all committed seats revealed, or a deadline passed with the
  refund path open): ``settle`` with the round's revealed vectors, if ``schedule.settle``.
* Settled / Refunded: dropped from the live set.

Crash points for fault tests (``SYNOD_HALT_AT``): ``after_fetch``, ``after_scoring``,
``after_commit_sent``, ``after_reveal_sent`` (:func:`halt`). Every transaction is simulated before
it is sent (:class:`~protocol.chain.sender.TxSender`), and each seat's committed/revealed flag is
read from the chain before acting, so a restart never sends an action twice.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import trio
from eth_utils.abi import event_abi_to_log_topic
from prometheus_client import CollectorRegistry, Counter, Gauge

from oracle.daemon.config import OracleRunSettings
from oracle.daemon.journal import OracleJournal, entry_key
from oracle.daemon.prefetch import prefetch
from oracle.daemon.work import (
    BatchWork,
    Cell,
    JobContract,
    RevealedSeat,
    Scorer,
    fetch_all,
    job_contract,
    score_fetched,
    score_vector,
)
from protocol.canonical import keccak256
from protocol.chain.aio import TrioChain
from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ChainError, ContractRevert, TransactionReverted
from protocol.chain.market import Market
from protocol.chain.models import BatchPosted, BatchView, JobPosted, Phase, ResultRevealed
from protocol.chain.rpc import BlockRef, translated
from protocol.chain.sender import TxSender
from protocol.chain.signer import Signer
from protocol.commitments import input_hash, new_salt, score_commitment
from protocol.log import get_logger
from protocol.p2p.host import P2pHost

log = get_logger(__name__)

HALT_POINTS = ("after_fetch", "after_scoring", "after_commit_sent", "after_reveal_sent")
"""The oracle's crash points (``SYNOD_HALT_AT``), in lifecycle order."""

_TERMINAL = (Phase.SETTLED, Phase.REFUNDED)
MAX_CACHED_CONTRACTS = 256
"""Job contracts kept in memory (a job's is derived again, and logged again, once evicted)."""


def halt(point: str, halt_at: str | None) -> None:
    """If ``point`` is ``halt_at``: log ``halt_point point=<point>`` and SIGKILL this process."""
    if halt_at != point:
        return
    log.warning("halt_point", point=point)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class OracleMetrics:
    """The daemon's Prometheus metrics (on the registry it is given)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches_scored = Counter("synod_oracle_batches_scored", "batches scored", registry=registry)
        self.results_scored = Counter("synod_oracle_results_scored", "results scored", registry=registry)
        self.fetch_failures = Counter(
            "synod_oracle_fetch_failures", "results not served or refused", registry=registry
        )
        self.transactions = Counter(
            "synod_oracle_transactions", "transactions mined", ["action"], registry=registry
        )
        self.races_lost = Counter(
            "synod_oracle_races_lost", "draws/settles someone else did first", ["action"], registry=registry
        )
        self.live_batches = Gauge("synod_oracle_live_batches", "batches followed", registry=registry)
        self.head = Gauge("synod_oracle_head_block", "last confirmed head processed", registry=registry)


class OracleDaemon:
    """One validator: ``sender``/``signer`` are its key; ``scorer`` the scoring pipeline.

    ``claim_min`` is in the token's smallest unit. ``halt_at`` is ``$SYNOD_HALT_AT`` (or None).
    ``log_range``: blocks per ``eth_getLogs`` when scanning for new batches (``chain.log_range``).
    """

    def __init__(
        self,
        chain: SynodContracts,
        sender: TxSender,
        signer: Signer,
        settings: OracleRunSettings,
        journal: OracleJournal,
        scorer: Scorer,
        metrics: OracleMetrics,
        *,
        claim_min: int,
        halt_at: str | None = None,
        log_range: int = 5_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain = chain
        self.tc = TrioChain(chain)
        self.market = Market(chain)
        self.sender = sender
        self.signer = signer
        self.me = sender.address
        self.settings = settings
        self.journal = journal
        self.scorer = scorer
        self.metrics = metrics
        self.claim_min = claim_min
        self.halt_at = halt_at
        self.clock = clock
        self.log_range = log_range
        self.cursor = (
            settings.start_block if settings.start_block is not None else chain.deployment.deploy_block
        ) - 1
        self.live: dict[int, int] = {}
        """batch id -> block it was posted in (lower bound of its log scans)."""
        self.last_claim: float | None = None
        self.p2p: P2pHost | None = None
        self._stepping: set[int] = set()
        """Batches whose step task is running (at most one per batch)."""
        self._stepped: dict[int, int] = {}
        """batch id -> the head block number of its last step that ended without an error."""
        self._quiet: dict[int, float] = {}
        """batch id -> block time until which the batch is in a nodes' phase (Committing,
        Revealing) with nothing for a validator to do: its deadline plus ``settle_grace``. Dropped
        when any event of the batch is seen (its k-th commit or last reveal moves the phase on
        without a ``BatchPhaseChanged``)."""
        self._event_block: dict[int, int] = {}
        """live batch id -> the block of its latest event seen by :meth:`_scan`: a step that read
        the chain at an older block does not mark the batch quiet (the event would be lost)."""
        self._send_lock = trio.Lock()
        self._contracts: dict[int, tuple[bytes, JobContract]] = {}
        """job id -> what its workflow declares (:func:`job_contract`), derived and logged once."""

    # ------------------------------------------------------------------ loop

    async def run(
        self, p2p: P2pHost, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Poll until cancelled; one failing batch or RPC call is logged and retried next poll."""
        self.p2p = p2p
        log.info("oracle_started", validator=self.me, peer_id=p2p.peer_id, from_block=self.cursor + 1)
        task_status.started()
        async with trio.open_nursery() as steps:
            while True:
                try:
                    await self.tick(steps)
                except ChainError as exc:
                    log.warning("poll_failed", error=type(exc).__name__, reason=str(exc)[:300])
                await trio.sleep(self.settings.poll_interval)

    async def tick(self, steps: trio.Nursery) -> None:
        """One pass: new batches, the claim schedule, and a step for every live batch whose previous
        step has finished, each in its own task of ``steps`` (so scoring one batch never delays the
        draw, commit or reveal of another; one step per batch at a time)."""
        head = await self.tc.head()
        if head.number > self.cursor:
            await self._scan(self.cursor + 1, head.number)
        self.metrics.head.set(head.number)
        # the head read brings its block's timestamp (one request at depth 0): no second read
        now = head.timestamp
        if now is None:
            now = await self.tc.run(self._block_time, head.number)
        for batch_id in sorted(self.live):
            if batch_id not in self._stepping and self.due(batch_id, head.number, now):
                self._stepping.add(batch_id)
                steps.start_soon(self._guarded_step, batch_id, head, now)
        self.metrics.live_batches.set(len(self.live))
        await self._claim(head)

    def due(self, batch_id: int, head: int, now: float) -> bool:
        """Whether ``batch_id`` needs a step at head block ``head`` (block time ``now``).

        Not when its last step ended without an error at this same head: a step decides from the
        chain's state at the head and the head's timestamp only, so it would read the same state
        (a phase, a batch view, the committee: up to six eth_calls) and do nothing again. Nor while
        the batch is in a nodes' phase (Committing, Revealing) before its deadline plus
        ``settle_grace`` and no event of it was seen since (:meth:`_scan`; a fill of its seats or
        reveals, a lazy ``BatchPhaseChanged``): nothing but a phase change or that deadline gives
        a validator work there. Every poll of every live
        batch used to re-read its phase and view (a third of a devnet validator's CPU in the
        bench's profile). A failed step is retried at the next poll all the same."""
        if self._stepped.get(batch_id) == head:
            return False
        quiet = self._quiet.get(batch_id)
        return quiet is None or now > quiet

    def _block_time(self, number: int) -> int:
        """Block ``number``'s timestamp (unix seconds); RPC failures raise :class:`ChainError` (the
        loop in :meth:`run` survives only those: a raw web3 error here used to end the daemon)."""
        with translated(self.chain.errors, "eth_getBlockByNumber"):
            return int(self.chain.w3.eth.get_block(number)["timestamp"])

    async def _guarded_step(self, batch_id: int, head: BlockRef, now: int) -> None:
        try:
            await self.step(batch_id, head, now)
            if batch_id in self.live:
                self._stepped[batch_id] = head.number
            else:
                self._stepped.pop(batch_id, None)
                self._quiet.pop(batch_id, None)
                self._event_block.pop(batch_id, None)
        except ChainError as exc:
            log.warning("batch_step_failed", batch=batch_id, error=type(exc).__name__, reason=str(exc)[:300])
        except Exception as exc:  # one batch's bug or hostile input must not end every batch's daemon
            log.error("batch_step_crashed", batch=batch_id, error=type(exc).__name__, reason=str(exc)[:300])
        finally:
            self._stepping.discard(batch_id)
            self.metrics.live_batches.set(len(self.live))  # a finished batch leaves the gauge at once

    async def _scan(self, first: int, last: int) -> None:
        """Add the batches posted in ``first..last``, ``log_range`` blocks per ``eth_getLogs``."""

        market = self.chain.market
        posted_topic = bytes(event_abi_to_log_topic(market.events.BatchPosted.abi))

        def get(start: int, end: int) -> tuple[list[Any], list[Any]]:
            # every event of the market in ONE eth_getLogs (BatchPosted among them, decoded here):
            # a batch's phase moves on a commit or reveal that fills it (ResultCommitted,
            # ResultRevealed), a draw, or a deadline (BatchPhaseChanged); each names its batch as
            # its first indexed topic
            with translated(self.chain.errors, "eth_getLogs"):
                query = {"address": market.address, "fromBlock": start, "toBlock": end}
                changed = list(self.chain.w3.eth.get_logs(query))  # type: ignore[arg-type]
                posted = [
                    market.events.BatchPosted().process_log(entry)
                    for entry in changed
                    if entry["topics"] and bytes(entry["topics"][0]) == posted_topic
                ]
            return posted, changed

        for start in range(first, last + 1, self.log_range):
            end = min(last, start + self.log_range - 1)
            posted, changed = await self.tc.run(get, start, end)
            for entry in posted:
                event = BatchPosted.from_abi(entry["args"])
                self.live.setdefault(event.batch_id, int(entry["blockNumber"]))
            for entry in changed:
                if len(entry["topics"]) > 1:  # (JobPosted's is a job id: a harmless extra step)
                    batch_id = int.from_bytes(bytes(entry["topics"][1]), "big")
                    self._quiet.pop(batch_id, None)
                    if batch_id in self.live:
                        block = int(entry["blockNumber"])
                        self._event_block[batch_id] = max(block, self._event_block.get(batch_id, block))
            self.cursor = end

    # ------------------------------------------------------------------ one batch

    async def step(self, batch_id: int, head: BlockRef, now: int) -> None:
        """Do what is due for ``batch_id`` at ``head`` (block time ``now``)."""
        phase = await self.tc.run(self.market.phase, batch_id, head)
        if phase.phase in _TERMINAL:
            self.live.pop(batch_id, None)
            log.info("batch_done", batch=batch_id, phase=phase.phase.name)
            return
        view = await self.tc.run(self.market.batch, batch_id, head)
        late = now > phase.deadline + self.settings.margins.settle_grace
        newer_event = self._event_block.get(batch_id, -1) > head.number  # scanned during this step
        if phase.phase in (Phase.COMMITTING, Phase.REVEALING) and not late and not newer_event:
            self._quiet[batch_id] = phase.deadline + self.settings.margins.settle_grace
        else:
            self._quiet.pop(batch_id, None)
        if phase.phase is Phase.DRAWING:
            if now > phase.deadline:
                if late:
                    await self._settle(batch_id, view, head)
            elif self.settings.schedule.draw:
                await self._draw(batch_id, view, head)
        elif phase.phase is Phase.SCORE_COMMITTING:
            for seat in await self._my_seats(batch_id, head):
                if not seat[1]:
                    await self._commit(batch_id, view, seat[0], head, now, phase.deadline)
        elif phase.phase is Phase.SCORE_REVEALING:
            for seat in await self._my_seats(batch_id, head):
                if seat[1] and not seat[2]:
                    await self._reveal(batch_id, view, seat[0], now, phase.deadline)
            view = await self.tc.run(self.market.batch, batch_id, await self.tc.head())
            if view.phase in _TERMINAL:
                return  # the last reveal settled (revealScoresAndSettle)
            all_in = view.score_commit_mask == view.score_reveal_mask
            if (all_in and view.score_reveal_mask != 0) or late:
                await self._settle(batch_id, view, head)
        elif late and phase.phase in (Phase.COMMITTING, Phase.REVEALING):
            await self._settle(batch_id, view, head)  # the refund paths (no commit, no reveal)

    async def _my_seats(self, batch_id: int, head: BlockRef) -> list[tuple[int, bool, bool]]:
        seats = await self.tc.run(self.market.committee, batch_id, head)
        return [(i, s.committed, s.revealed) for i, s in enumerate(seats) if s.validator == self.me]

    # ------------------------------------------------------------------ actions

    async def _send(self, action: str, fn: Any) -> Any:
        """Simulate and send; a refused simulation or a revert after mining is a lost race (None)."""
        try:
            async with self._send_lock:  # one account, one nonce sequence: steps run concurrently
                receipt = await self.tc.transact(self.sender, fn, label=action)
        except (ContractRevert, TransactionReverted) as exc:
            self.metrics.races_lost.labels(action).inc()
            log.info("tx_skipped", action=action, reason=str(exc)[:200])
            return None
        self.metrics.transactions.labels(action).inc()
        log.info("tx_mined", action=action, tx_hash=receipt.tx_hash, block=receipt.block_number)
        return receipt

    async def _draw(self, batch_id: int, view: BatchView, head: BlockRef) -> None:
        armed = view.seed_block != 0 and head.number < view.seed_block + 256
        if armed and not self.market.draw_ready(view, head):
            return  # wait for the seed block to pass
        await self._send("drawCommittee", self.chain.market.functions.drawCommittee(batch_id))

    async def _settle(self, batch_id: int, view: BatchView, head: BlockRef) -> None:
        if not self.settings.schedule.settle:
            return
        head = await self.tc.head()
        since = self.live.get(batch_id, self.chain.deployment.deploy_block)
        revealed = await self.tc.run(self.market.revealed_score_vectors, batch_id, since, head)
        vectors = await self.tc.run(self.market.settle_vectors, batch_id, revealed, head)
        fn = self.chain.market.functions.settle(batch_id, [bytes(v) for v in vectors])
        if await self._send("settle", fn) is not None:
            log.info("batch_settle_sent", batch=batch_id, vectors=len(vectors))

    async def scores(
        self, batch_id: int, view: BatchView, head: BlockRef, now: int, deadline: int
    ) -> dict[str, Any]:
        """The journaled score record of the batch's current round, computed and journaled first if
        absent (fetch, verify, score; see :mod:`oracle.daemon.work`). Fetching may use half of the
        time left before ``deadline - commit_margin`` (block time ``now``, taken as seconds of wall
        time); results not fetched by then score 0, leaving the other half for scoring."""
        key = entry_key(f"scored_r{view.round}", batch_id)
        record = await self.journal.get(key)
        if record is not None:
            return record
        work = await self._work(batch_id, view, head)
        assert self.p2p is not None
        p2p, signer = self.p2p, self.signer

        budget = (deadline - self.settings.margins.commit_margin - now) / 2
        # one stream per node first (oracle.daemon.prefetch); then only what is still missing
        started = trio.current_time()
        prefetched = await prefetch(
            work,
            lambda address, digests, limit: p2p.fetch_many(address, digests, limit, signer=signer),
            max(min(budget / 2, self.settings.p2p.fetch_timeout * 3), 1.0),
        )

        async def fetch(address: str, digest: bytes) -> bytes:
            data = prefetched.get((address, bytes(digest)))
            if data is not None:
                return data
            with trio.fail_after(self.settings.p2p.fetch_timeout + 1.0):
                return await p2p.fetch(address, digest, signer=signer)

        left = budget - (trio.current_time() - started)
        fetched = await fetch_all(work, fetch, self.settings.p2p.fetch_concurrency, left)
        failures = sum(1 for output, _ in fetched.values() if output is None)
        self.metrics.fetch_failures.inc(failures)
        log.info("batch_fetched", batch=batch_id, results=len(fetched), refused=failures)
        halt("after_fetch", self.halt_at)
        cells = await score_fetched(work, fetched, self.scorer, self.settings.scoring.max_result_chars)
        vector = score_vector(cells, work.commit_count, len(work.rows))
        record = {
            "batch": batch_id,
            "round": view.round,
            "rows": len(work.rows),
            "commit_count": work.commit_count,
            "contract": work.contract.model_dump(mode="json", exclude={"output_schema"}),
            "vector": "0x" + vector.hex(),
            "salt": "0x" + new_salt().hex(),
            "cells": [c.model_dump(mode="json") for c in cells],
        }
        record = await self.journal.put(key, record)
        self.metrics.batches_scored.inc()
        self.metrics.results_scored.inc(len(cells))
        log.info("batch_scored", batch=batch_id, round=view.round, vector=vector)
        halt("after_scoring", self.halt_at)
        return record

    async def _commit(
        self, batch_id: int, view: BatchView, seat: int, head: BlockRef, now: int, deadline: int
    ) -> None:
        record = await self.scores(batch_id, view, head, now, deadline)
        vector, salt = bytes.fromhex(record["vector"][2:]), bytes.fromhex(record["salt"][2:])
        rows = view.rows
        if len(vector) != view.commit_count * rows:
            log.error(
                "score_vector_shape", batch=batch_id, expected=view.commit_count * rows, got=len(vector)
            )
            return
        if now > deadline - self.settings.margins.commit_margin:
            log.warning("commit_late", batch=batch_id, seat=seat, deadline=deadline, now=now)
        commitment = score_commitment(batch_id, self.me, vector, salt)
        receipt = await self._send(
            "commitScores", self.chain.market.functions.commitScores(batch_id, seat, commitment)
        )
        if receipt is not None:
            await self.journal.put(
                entry_key(f"commit_r{view.round}_s{seat}", batch_id),
                {"tx": receipt.tx_hash, "block": receipt.block_number},
            )
            halt("after_commit_sent", self.halt_at)

    async def _reveal(self, batch_id: int, view: BatchView, seat: int, now: int, deadline: int) -> None:
        record = await self.journal.get(entry_key(f"scored_r{view.round}", batch_id))
        if record is None:
            log.error("reveal_impossible", batch=batch_id, seat=seat, reason="no journaled score record")
            return
        if now > deadline - self.settings.margins.reveal_margin:
            log.warning("reveal_late", batch=batch_id, seat=seat, deadline=deadline, now=now)
        vector, salt = bytes.fromhex(record["vector"][2:]), bytes.fromhex(record["salt"][2:])
        last = view.score_reveal_mask | (1 << seat) == view.score_commit_mask
        if last and self.settings.schedule.settle:
            # Every other committed seat has revealed: this reveal also settles (one transaction less).
            # If another reveal races in meanwhile, the vectors miss it and the transaction reverts (a
            # lost race); the next step reveals again with the fresh view.
            head = await self.tc.head()
            since = self.live.get(batch_id, self.chain.deployment.deploy_block)
            revealed = await self.tc.run(self.market.revealed_score_vectors, batch_id, since, head)
            revealed[seat] = vector
            vectors = [revealed[s] for s in sorted(revealed) if view.score_commit_mask & (1 << s)]
            fn = self.chain.market.functions.revealScoresAndSettle(batch_id, seat, vector, salt, vectors)
            action = "revealScoresAndSettle"
        else:
            fn = self.chain.market.functions.revealScores(batch_id, seat, vector, salt)
            action = "revealScores"
        receipt = await self._send(action, fn)
        if receipt is not None:
            await self.journal.put(
                entry_key(f"reveal_r{view.round}_s{seat}", batch_id),
                {"tx": receipt.tx_hash, "block": receipt.block_number},
            )
            halt("after_reveal_sent", self.halt_at)

    async def _claim(self, head: BlockRef) -> None:
        interval = self.settings.schedule.claim_interval
        if interval <= 0:
            return
        if self.last_claim is not None and self.clock() - self.last_claim < interval:
            return
        self.last_claim = self.clock()
        balance = await self.tc.run(self.market.balance_of, self.me, head)
        if balance == 0 or balance < self.claim_min:
            return
        await self._send("claim", self.chain.market.functions.claim())

    # ------------------------------------------------------------------ chain reads

    async def _work(self, batch_id: int, view: BatchView, head: BlockRef) -> BatchWork:
        since = self.live.get(batch_id, self.chain.deployment.deploy_block)
        market = self.chain.market

        def logs() -> tuple[list[Any], list[Any]]:
            ranges = {"from_block": since, "to_block": head.number, "argument_filters": {"batchId": batch_id}}
            with translated(self.chain.errors, "eth_getLogs"):
                return (
                    list(market.events.BatchPosted.get_logs(**ranges)),
                    list(market.events.ResultRevealed.get_logs(**ranges)),
                )

        posted_logs, revealed_logs = await self.tc.run(logs)
        posted = BatchPosted.from_abi(posted_logs[0]["args"])
        job = await self.tc.run(self.market.job, posted.job_id, head)
        workflow_hash, contract = await self._contract(posted.job_id, int(posted_logs[0]["blockNumber"]))
        rows = tuple(bytes(r) for r in posted.rows)
        if bytes(view.input_hash) != input_hash(workflow_hash, rows):  # cannot happen with a correct contract
            contract = JobContract(
                reason="the posted workflow and rows do not hash to the batch's input hash: no contract"
            )
        revealed_seats = set(view.revealed_seats())
        seats: list[RevealedSeat] = []
        for entry in revealed_logs:
            event = ResultRevealed.from_abi(entry["args"])
            if event.seat not in revealed_seats:
                continue
            raw = await self.tc.read(self.chain.registry.functions.p2pAddressOf(event.node), head)
            address = bytes(raw).decode("utf-8", errors="replace")
            seats.append(
                RevealedSeat(
                    seat=event.seat,
                    node=event.node,
                    address=address,
                    digests=tuple(bytes(d) for d in event.digests),
                )
            )
        return BatchWork(
            batch_id=batch_id,
            round=view.round,
            commit_count=view.commit_count,
            rows=rows,
            workflow_hash=workflow_hash,
            model_id=bytes(job.params.model),
            revealed=tuple(sorted(seats, key=lambda s: s.seat)),
            contract=contract,
        )

    async def _contract(self, job_id: int, block: int) -> tuple[bytes, JobContract]:
        """The job's workflow hash and :class:`JobContract`: from the workflow bytes of its
        ``JobPosted`` (emitted in the transaction, so the block, of its batches' ``BatchPosted``; the
        caller checks them with the rows against the batch's stored input hash); derived once per job
        and process, and logged then (``job_contract``, and ``job_refused`` with the reason when every
        result of the job will score 0). Raises :class:`ChainError` when the event cannot be read (the
        step is retried next poll)."""
        cached = self._contracts.get(job_id)
        if cached is not None:
            return cached
        market = self.chain.market

        def logs() -> list[Any]:
            with translated(self.chain.errors, "eth_getLogs"):
                return list(
                    market.events.JobPosted.get_logs(
                        from_block=block, to_block=block, argument_filters={"jobId": job_id}
                    )
                )

        found = [JobPosted.from_abi(e["args"]) for e in await self.tc.run(logs)]
        posted = [p for p in found if p.job_id == job_id]
        if not posted:
            raise ChainError(f"JobPosted of job {job_id} not found in block {block}")
        workflow = bytes(posted[0].workflow)
        # parsing a large workflow is CPU work: off the event loop
        contract = await trio.to_thread.run_sync(job_contract, workflow)
        entry = (bytes(keccak256(workflow)), contract)
        self._contracts[job_id] = entry
        while len(self._contracts) > MAX_CACHED_CONTRACTS:  # oldest first (insertion order)
            self._contracts.pop(next(iter(self._contracts)))
        log.info(
            "job_contract",
            job=job_id,
            schema=contract.schema_digest,
            determinism=contract.determinism,
            reason=contract.reason,
        )
        if contract.refused is not None:
            log.warning("job_refused", job=job_id, reason=contract.refused)
        return entry


def claim_threshold(claim_min: str, decimals: int) -> int:
    """``claim_min`` (decimal token units) in the token's smallest unit, rounded down."""
    return int(Decimal(claim_min) * (Decimal(10) ** decimals))


__all__ = ["HALT_POINTS", "Cell", "OracleDaemon", "OracleMetrics", "claim_threshold", "halt"]
