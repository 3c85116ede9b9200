"""The validator's journal: one SQLite file (WAL, ``synchronous=FULL``) of what it did per batch.

Entries are keyed ``PHASE@BATCH`` (``scored@12``, ``commit@12``, ``reveal@12``, ``settle@12``)
and hold one JSON object each, written once: :meth:`OracleJournal.put` refuses to replace an entry
with different content (:class:`JournalConflict`), so a salt or a score vector, once journaled,
is the one the chain sees. The order the daemon keeps (see :mod:`oracle.daemon.service`):

* ``scored@B`` (the score vector, its salt, every component of every score, the fetch outcome
  per node seat) is written and fsync'd *before* the score commitment is sent;
* ``commit@B`` / ``reveal@B`` record the transaction hash once it is mined.

After a crash the daemon reads ``scored@B`` back, so the vector it reveals is always the one it
computed and committed to; it never recomputes a batch whose scores are journaled. One process
writes a journal at a time (:class:`protocol.store.lock.WriterLock`, a second daemon is refused).

The node's journal (:mod:`protocol.store`) keeps signed transactions; this one keeps scores,
which that schema has no place for, in a file of its own next to it (``oracle.sqlite``).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import trio

from protocol.errors import SynodError
from protocol.log import get_logger
from protocol.store.lock import WriterLock
from protocol.store.sqlite import connect as sqlite_connect
from protocol.store.sqlite import immediate

log = get_logger(__name__)

JOURNAL_FILE = "oracle.sqlite"
LOCK_FILE = "oracle.lock"
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}@[0-9]{1,20}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    batch INTEGER NOT NULL,
    value TEXT NOT NULL,
    written_at REAL NOT NULL
)
"""


class JournalConflict(SynodError):
    """An entry is already journaled under this key with different content."""


def entry_key(phase: str, batch: int) -> str:
    """``PHASE@BATCH``; raises ``ValueError`` for a phase that is not ``[a-z_]`` or a negative batch."""
    key = f"{phase}@{batch}"
    if not _KEY.match(key):
        raise ValueError(f"bad journal key {key!r}")
    return key


class OracleJournal:
    """The journal in ``directory`` (created 0700). Use :meth:`open` (takes the writer lock)."""

    def __init__(self, directory: Path, conn: sqlite3.Connection, lock: WriterLock | None) -> None:
        self.directory = directory
        self._conn = conn
        self._lock = lock
        self._mutex = threading.Lock()
        self._limiter = trio.CapacityLimiter(1)

    @classmethod
    def open(cls, directory: Path, *, read_only: bool = False) -> OracleJournal:
        """Open (creating it unless ``read_only``) the journal in ``directory``.

        Raises :class:`~protocol.store.errors.StoreLocked` when another process writes it, and
        ``FileNotFoundError`` when ``read_only`` and there is no journal.
        """
        path = directory / JOURNAL_FILE
        if read_only:
            if not path.exists():
                raise FileNotFoundError(f"no validator journal at {path}")
            return cls(directory, sqlite_connect(path, read_only=True), None)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = WriterLock(directory / LOCK_FILE, path)
        lock.acquire()
        try:
            conn = sqlite_connect(path)
            conn.execute(_SCHEMA)
        except BaseException:
            lock.release()
            raise
        return cls(directory, conn, lock)

    def close(self) -> None:
        """Close the file and release the writer lock."""
        self._conn.close()
        if self._lock is not None:
            self._lock.release()

    def get_sync(self, key: str) -> dict[str, Any] | None:
        """The entry under ``key`` or ``None``."""
        row = self._conn.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def put_sync(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """Write ``value`` under ``key`` durably (fsync'd before returning); returns the journaled
        value. Writing the same value again is a no-op; a different one raises
        :class:`JournalConflict` (the first write wins: the chain may already hold it)."""
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        batch = int(key.rsplit("@", 1)[1])
        with immediate(self._conn, self._mutex) as conn:
            row = conn.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO entries (key, batch, value, written_at) VALUES (?, ?, ?, ?)",
                    (key, batch, text, time.time()),
                )
        if row is not None and row[0] != text:
            raise JournalConflict(f"journal entry {key} exists with different content")
        log.debug("journal_put", key=key)
        return value

    def batches_sync(self) -> list[int]:
        """Every batch with at least one entry, ascending."""
        return [int(r[0]) for r in self._conn.execute("SELECT DISTINCT batch FROM entries ORDER BY batch")]

    async def get(self, key: str) -> dict[str, Any] | None:
        """:meth:`get_sync` in a worker thread."""
        return await trio.to_thread.run_sync(self.get_sync, key, limiter=self._limiter)

    async def put(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """:meth:`put_sync` in a worker thread (never abandoned: the write completes)."""
        return await trio.to_thread.run_sync(self.put_sync, key, value, limiter=self._limiter)
