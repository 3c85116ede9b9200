"""The node's own durable state, beside the journal in the store directory: ``node.sqlite``.

The journal (:mod:`protocol.store`) holds the watcher cursor, the result bytes by digest and the
transactions (PHASE@BATCH); this file holds what only the node needs to resume a batch after a
crash, each row written before the step that depends on it:

* ``jobs``: a job's workflow bytes, hash and parameters (from ``JobPosted``);
* ``batches``: a batch's rows (from ``BatchPosted``), where it stands (``status``), why it was
  skipped or abandoned (``reason``), its salt (written BEFORE the commit is sent, never replaced),
  its seat once the commit is mined, and the block it was posted in (for reorgs);
* ``tasks``: per row, the digest of the stored result envelope and the failure reason, if any;
* ``speeds``: the moving average of seconds per task of each workflow (the decider's estimate).

One connection, WAL, ``synchronous=FULL``; the store's flock (:class:`protocol.store.Store`) keeps
a second daemon out. Calls are synchronous and short; the daemon runs them in a worker thread.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from protocol.chain.models import JobParams
from protocol.store.sqlite import connect as sqlite_connect
from protocol.store.sqlite import immediate

FILE_NAME = "node.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY,
    workflow BLOB NOT NULL,
    workflow_hash BLOB NOT NULL,
    requester TEXT NOT NULL,
    params TEXT NOT NULL,
    block INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    first_row INTEGER NOT NULL,
    commit_deadline INTEGER NOT NULL,
    rows TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    salt BLOB,
    seat INTEGER,
    block INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    batch_id INTEGER NOT NULL,
    row INTEGER NOT NULL,
    digest BLOB NOT NULL,
    error TEXT,
    seconds REAL NOT NULL,
    PRIMARY KEY (batch_id, row)
);
CREATE INDEX IF NOT EXISTS tasks_by_digest ON tasks (digest);
CREATE TABLE IF NOT EXISTS speeds (
    workflow_hash BLOB PRIMARY KEY,
    seconds REAL NOT NULL,
    samples INTEGER NOT NULL
);
"""


def _params_json(params: JobParams) -> str:
    values = params.model_dump()
    values["model"] = bytes(params.model).hex()
    return json.dumps(values)


def _params_from_json(text: str) -> JobParams:
    values = json.loads(text)
    values["model"] = bytes.fromhex(values["model"])
    return JobParams.model_validate(values)


class BatchStatus(enum.StrEnum):
    """Where a batch stands for this node. ``taken -> computed -> committed -> revealed`` is the
    happy path; ``skipped`` (never taken) and ``abandoned`` (taken, then given up) carry a reason."""

    SKIPPED = "skipped"
    TAKEN = "taken"
    COMPUTED = "computed"
    COMMITTED = "committed"
    REVEALED = "revealed"
    ABANDONED = "abandoned"

    @property
    def open(self) -> bool:
        """Whether the daemon still has work to do for the batch."""
        return self in (BatchStatus.TAKEN, BatchStatus.COMPUTED, BatchStatus.COMMITTED)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobRecord(_Frozen):
    """A job as the node learned it from ``JobPosted``."""

    job_id: int
    workflow: bytes
    workflow_hash: bytes
    requester: str
    params: JobParams
    block: int


class BatchRecord(_Frozen):
    """A batch as the node keeps it; ``rows`` are the posted bytes of each row, in order."""

    batch_id: int
    job_id: int
    first_row: int
    commit_deadline: int
    rows: tuple[bytes, ...]
    status: BatchStatus
    reason: str = ""
    salt: bytes | None = None
    seat: int | None = None
    block: int


class TaskRecord(_Frozen):
    """One row's outcome: the digest of its stored envelope and the failure reason (None = ok)."""

    batch_id: int
    row: int
    digest: bytes
    error: str | None
    seconds: float


class NodeState:
    """``node.sqlite`` (see the module docstring). Thread-safe: one lock around one connection."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path

    @classmethod
    def open(cls, store_dir: Path) -> NodeState:
        """Open (creating) ``store_dir / node.sqlite``."""
        store_dir.mkdir(parents=True, exist_ok=True)
        path = store_dir / FILE_NAME
        conn = sqlite_connect(path)
        conn.executescript(_SCHEMA)
        return cls(conn, path)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with immediate(self._conn, self._lock) as conn:
            yield conn

    # ------------------------------------------------------------------ jobs and batches

    def put_job(self, job: JobRecord) -> None:
        """Record a job (idempotent: a replayed event changes nothing)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                (
                    job.job_id,
                    job.workflow,
                    job.workflow_hash,
                    job.requester,
                    _params_json(job.params),
                    job.block,
                ),
            )

    def job(self, job_id: int) -> JobRecord | None:
        """The recorded job or ``None``."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return JobRecord(
            job_id=row[0],
            workflow=row[1],
            workflow_hash=row[2],
            requester=row[3],
            params=_params_from_json(row[4]),
            block=row[5],
        )

    def put_batch(self, batch: BatchRecord) -> bool:
        """Record a newly seen batch; ``False`` (nothing changed) if it is already known."""
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO batches (batch_id, job_id, first_row, commit_deadline, rows, "
                "status, reason, salt, seat, block, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch.batch_id,
                    batch.job_id,
                    batch.first_row,
                    batch.commit_deadline,
                    json.dumps([r.hex() for r in batch.rows]),
                    batch.status.value,
                    batch.reason,
                    batch.salt,
                    batch.seat,
                    batch.block,
                    time.time(),
                ),
            )
            return cursor.rowcount == 1

    def _batch(self, conn: sqlite3.Connection, batch_id: int) -> BatchRecord | None:
        row = conn.execute(
            "SELECT batch_id, job_id, first_row, commit_deadline, rows, status, reason, salt, seat, block "
            "FROM batches WHERE batch_id = ?",
            (batch_id,),
        ).fetchone()
        if row is None:
            return None
        return BatchRecord(
            batch_id=row[0],
            job_id=row[1],
            first_row=row[2],
            commit_deadline=row[3],
            rows=tuple(bytes.fromhex(r) for r in json.loads(row[4])),
            status=BatchStatus(row[5]),
            reason=row[6],
            salt=row[7],
            seat=row[8],
            block=row[9],
        )

    def batch(self, batch_id: int) -> BatchRecord | None:
        """The recorded batch or ``None``."""
        with self._lock:
            return self._batch(self._conn, batch_id)

    def open_batches(self) -> list[BatchRecord]:
        """Every batch the daemon still has work for (taken, computed, committed), oldest first."""
        with self._lock:
            ids = [
                r[0]
                for r in self._conn.execute(
                    "SELECT batch_id FROM batches WHERE status IN ('taken', 'computed', 'committed') "
                    "ORDER BY batch_id"
                )
            ]
            return [b for b in (self._batch(self._conn, i) for i in ids) if b is not None]

    def set_status(self, batch_id: int, status: BatchStatus, reason: str = "") -> None:
        """Move a batch to ``status`` (with ``reason`` for skipped/abandoned)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE batches SET status = ?, reason = ?, updated_at = ? WHERE batch_id = ?",
                (status.value, reason, time.time(), batch_id),
            )

    def ensure_salt(self, batch_id: int, fresh: bytes) -> bytes:
        """The batch's salt: the recorded one if any, else ``fresh`` (recorded durably first)."""
        with self._tx() as conn:
            row = conn.execute("SELECT salt FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
            if row is None:
                raise KeyError(f"batch {batch_id} is not recorded")
            if row[0] is not None:
                return bytes(row[0])
            conn.execute("UPDATE batches SET salt = ? WHERE batch_id = ?", (fresh, batch_id))
            return fresh

    def set_seat(self, batch_id: int, seat: int) -> None:
        """Record the node seat taken by the mined commit (status ``committed``)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE batches SET seat = ?, status = 'committed', updated_at = ? WHERE batch_id = ?",
                (seat, time.time(), batch_id),
            )

    def forget_above(self, fork_block: int) -> list[int]:
        """A reorg: forget the jobs and batches posted above ``fork_block`` (and their tasks);
        returns the forgotten batch ids. If the new chain posts them again, they are new."""
        with self._tx() as conn:
            ids = [r[0] for r in conn.execute("SELECT batch_id FROM batches WHERE block > ?", (fork_block,))]
            conn.execute(
                "DELETE FROM tasks WHERE batch_id IN (SELECT batch_id FROM batches WHERE block > ?)",
                (fork_block,),
            )
            conn.execute("DELETE FROM batches WHERE block > ?", (fork_block,))
            conn.execute("DELETE FROM jobs WHERE block > ?", (fork_block,))
            return ids

    # ------------------------------------------------------------------ tasks and speeds

    def put_task(self, task: TaskRecord) -> None:
        """Record a row's outcome (its envelope bytes must already be in the result store)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?)",
                (task.batch_id, task.row, task.digest, task.error, task.seconds),
            )

    def put_tasks(
        self, tasks: Sequence[TaskRecord], speeds: Sequence[tuple[bytes, float, float]] = ()
    ) -> None:
        """Record several rows' outcomes and fold ``speeds`` (``(workflow_hash, seconds, alpha)``,
        in order, as :meth:`record_speed`) in ONE transaction (one fsync): the node's group commit
        of the rows finished together. Their envelopes must already be in the result store."""
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?)",
                [(t.batch_id, t.row, t.digest, t.error, t.seconds) for t in tasks],
            )
            for workflow_hash, seconds, alpha in speeds:
                self._fold_speed(conn, workflow_hash, seconds, alpha)

    def tasks(self, batch_id: int) -> dict[int, TaskRecord]:
        """The recorded outcomes of a batch's rows, by row index."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT batch_id, row, digest, error, seconds FROM tasks WHERE batch_id = ?", (batch_id,)
            ).fetchall()
        return {
            r[1]: TaskRecord(batch_id=r[0], row=r[1], digest=r[2], error=r[3], seconds=r[4]) for r in rows
        }

    def batches_of_digest(self, digest: bytes) -> list[int]:
        """The batches whose rows have a result with ``digest`` (for the p2p access rule)."""
        with self._lock:
            return [
                r[0]
                for r in self._conn.execute(
                    "SELECT DISTINCT batch_id FROM tasks WHERE digest = ?", (bytes(digest),)
                )
            ]

    def speed(self, workflow_hash: bytes) -> float | None:
        """The moving average of seconds per task of a workflow, or ``None`` before any."""
        with self._lock:
            row = self._conn.execute(
                "SELECT seconds FROM speeds WHERE workflow_hash = ?", (workflow_hash,)
            ).fetchone()
        return None if row is None else float(row[0])

    def record_speed(self, workflow_hash: bytes, seconds: float, alpha: float) -> float:
        """Fold one measurement into the workflow's exponential moving average; returns it."""
        with self._tx() as conn:
            return self._fold_speed(conn, workflow_hash, seconds, alpha)

    @staticmethod
    def _fold_speed(conn: sqlite3.Connection, workflow_hash: bytes, seconds: float, alpha: float) -> float:
        row = conn.execute(
            "SELECT seconds, samples FROM speeds WHERE workflow_hash = ?", (workflow_hash,)
        ).fetchone()
        value = seconds if row is None else alpha * seconds + (1 - alpha) * float(row[0])
        samples = 1 if row is None else int(row[1]) + 1
        conn.execute("INSERT OR REPLACE INTO speeds VALUES (?, ?, ?)", (workflow_hash, value, samples))
        return value
