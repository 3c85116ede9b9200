"""The node's group commit of finished rows: :class:`RowWriter`.

Each row a node computes is written twice before the batch can move on: its result envelope into
the result store (:meth:`protocol.store.Store.put_results_bytes_sync`, the bytes served to the
validators and hashed into the commit) and its outcome into ``node.sqlite``
(:meth:`node.state.NodeState.put_tasks`, with the workflow's speed estimate). Done per row, that
was three ``synchronous=FULL`` transactions (three fsyncs) and three thread hops per row. The
writer instead writes every row that finished while the previous write was in progress in one
transaction per database, in one thread hop: under load, one fsync pair for many rows; alone, a
row is written at once (no timer, no added latency).

Guarantee kept: :meth:`RowWriter.store` returns only once its row's envelope and task record are
committed (the envelope before the task record, in that order, as before), so nothing that
depends on a row (the batch's ``computed`` status, its commit) can happen before the row is
durable. A write that fails raises in every row of its group (and of the rows waiting behind it):
none of them is reported stored. The idea is the classic database group commit (e.g. PostgreSQL's
``commit_delay`` / WAL group flush), without the delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from node.state import NodeState, TaskRecord
from node.work import TaskOutcome
from protocol.canonical import keccak256
from protocol.store import Store


class RowWriteFailed(Exception):
    """The group write holding this row failed (the cause is chained); the row is not stored."""


@dataclass
class _Row:
    data: bytes
    digest: bytes
    task: TaskRecord
    speed: tuple[bytes, float, float] | None
    done: trio.Event = field(default_factory=trio.Event)
    wake: trio.Event = field(default_factory=trio.Event)
    """Set when the row is done, or when its caller is to write the next group (the hand-off)."""
    error: BaseException | None = None


class RowWriter:
    """Stores finished rows for one node (one ``store`` + ``state`` pair), in groups.

    Not a background task: the first caller that finds no write in progress writes the group
    (itself and every row queued meanwhile); the rows queued during that write wait, and the
    writer hands the next write to the caller of the first of them (a leader writes ONE group and
    returns once its own row is durable: it is never held writing other batches' rows while rows
    keep finishing). Trio-only (one event loop); the SQL runs in a worker thread.
    """

    def __init__(self, store: Store, state: NodeState) -> None:
        self._store = store
        self._state = state
        self._pending: list[_Row] = []
        self._writing = False
        self.groups = 0
        """How many group writes ran (for tests and benches)."""

    async def store(
        self, batch_id: int, row: int, outcome: TaskOutcome, workflow_hash: bytes, speed_alpha: float
    ) -> None:
        """Make ``outcome`` (row ``row`` of batch ``batch_id``) durable: its envelope bytes in the
        result store under its digest, then its :class:`TaskRecord`, and (a success only) fold its
        seconds into ``workflow_hash``'s speed estimate with ``speed_alpha``. Returns once both are
        committed. Raises :class:`RowWriteFailed` if the write failed. The write itself is never
        cancelled half-way (it runs shielded); a cancelled caller still sees its row written (at
        most the write in progress and its own) before the cancellation takes effect.
        """
        item = _Row(
            data=outcome.data,
            digest=outcome.digest,
            task=TaskRecord(
                batch_id=batch_id,
                row=row,
                digest=outcome.digest,
                error=outcome.error,
                seconds=outcome.seconds,
            ),
            speed=(workflow_hash, outcome.seconds, speed_alpha) if outcome.error is None else None,
        )
        self._pending.append(item)
        try:
            await self._until_done(item)
        except trio.Cancelled:
            # the next write may be handed to this caller: finish our part first (at most the
            # write in progress and ours), else the rows queued behind ours would wait for a
            # caller that is gone
            with trio.CancelScope(shield=True):
                await self._until_done(item)
            raise
        if item.error is not None:
            raise RowWriteFailed(
                f"row {row} of batch {batch_id} was not stored: {item.error}"
            ) from item.error

    async def _until_done(self, item: _Row) -> None:
        if not item.done.is_set() and not self._writing:
            await self._write_group()
        while not item.done.is_set():
            await item.wake.wait()
            item.wake = trio.Event()
            if not item.done.is_set() and not self._writing:
                await self._write_group()  # handed the next write: our row is in it

    async def _write_group(self) -> None:
        """Write every queued row in one group (shielded: never cancelled half-way), then hand
        the next write to the caller of the first row queued meanwhile."""
        self._writing = True
        try:
            with trio.CancelScope(shield=True):
                group, self._pending = self._pending, []
                try:
                    await trio.to_thread.run_sync(self._write, group)
                except Exception as exc:  # every row of the group (and behind it) raises
                    for item in (*group, *self._pending):
                        item.error = exc
                        item.done.set()
                        item.wake.set()
                    self._pending = []
                    return
                self.groups += 1
                for item in group:
                    item.done.set()
                    item.wake.set()
        finally:
            self._writing = False
            if self._pending:
                self._pending[0].wake.set()

    def _write(self, group: list[_Row]) -> None:
        for item in group:  # checked before anything is written: a wrong digest is a bug upstream
            if keccak256(item.data) != item.digest:
                raise RowWriteFailed(f"row {item.task.row}: its digest is not the keccak256 of its envelope")
        digests = self._store.put_results_bytes_sync([item.data for item in group])
        assert [bytes(d) for d in digests] == [item.digest for item in group]
        self._state.put_tasks(
            [item.task for item in group], [item.speed for item in group if item.speed is not None]
        )
