"""Opening a daemon's SQLite file and writing to it, the one way every Synod store does.

A writer's connection runs in autocommit mode (``isolation_level=None``) with WAL journaling,
``synchronous=FULL`` (a committed transaction survives a power cut), a 5 s busy timeout and
foreign keys on; a reader opens the file read-only (``mode=ro``) and never creates it. Writes
are explicit ``BEGIN IMMEDIATE`` transactions under the caller's mutex (one connection is shared
by the daemon's worker threads). Used by :mod:`protocol.store.db` (the journal), the node's
state file and the validator's journal. Source: SQLite's "Write-Ahead Logging" and "PRAGMA
synchronous" documentation.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from protocol.store.errors import StoreError

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for another connection's lock before SQLite gives up (ms)."""


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the SQLite file at ``path`` with the settings above.

    Raises :class:`StoreError` (one sentence naming the file) when SQLite cannot open it, when it
    is read-only and missing, or when SQLite refuses WAL mode.
    """
    try:
        if read_only:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not read_only:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                conn.close()
                raise StoreError(f"{path}: SQLite refused WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {exc}") from None
    return conn


@contextmanager
def immediate(conn: sqlite3.Connection, mutex: threading.Lock) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction on ``conn`` under ``mutex``: committed (and, with
    ``synchronous=FULL``, fsync'd) when the block ends normally, rolled back when it raises."""
    with mutex:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
