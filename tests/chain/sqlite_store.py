"""A sqlite3-backed WatcherStore and keyed-effects table for the restart tests.

Stands in for the shared journal (protocol/store.py, written elsewhere): the same contract, one
file, each write one transaction, run through ``trio.to_thread`` as the journal will be.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import trio

from protocol.chain.watcher import WatcherState


class SqliteWatcherStore:
    """:class:`~protocol.chain.watcher.WatcherStore` in one sqlite file (WAL), plus an
    ``effects`` table: the transfer values a handler applied, keyed, with their block."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS cursor (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, block INTEGER NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS applied (n INTEGER)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None)

    def _load(self) -> WatcherState | None:
        with self._connect() as db:
            row = db.execute("SELECT state FROM cursor WHERE id = 1").fetchone()
        if row is None:
            return None
        raw = json.loads(row[0])
        return WatcherState(
            cursor=raw["cursor"], hashes={int(k): bytes.fromhex(v) for k, v in raw["hashes"].items()}
        )

    def _save(self, state: WatcherState) -> None:
        text = json.dumps(
            {"cursor": state.cursor, "hashes": {str(k): v.hex() for k, v in state.hashes.items()}}
        )
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO cursor (id, state) VALUES (1, ?)", (text,))

    async def load(self) -> WatcherState | None:
        """The saved state."""
        return await trio.to_thread.run_sync(self._load)

    async def save(self, state: WatcherState) -> None:
        """Save ``state`` in one transaction."""
        await trio.to_thread.run_sync(self._save, state)

    def _apply(self, keys: list[tuple[str, int]]) -> int:
        """Insert the new keys in one transaction; returns how many were new."""
        db = self._connect()
        try:
            db.execute("BEGIN")
            new = 0
            for key, block in keys:
                new += db.execute(
                    "INSERT OR IGNORE INTO effects (key, block) VALUES (?, ?)", (key, block)
                ).rowcount
            db.execute("INSERT INTO applied (n) VALUES (?)", (len(keys),))
            db.execute("COMMIT")
            return new
        finally:
            db.close()

    async def apply(self, keys: list[tuple[str, int]]) -> int:
        """Record the effects of a delivery (idempotent by key)."""
        return await trio.to_thread.run_sync(self._apply, keys)

    def _rewind(self, fork_block: int) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM effects WHERE block > ?", (fork_block,))

    async def rewind(self, fork_block: int) -> None:
        """Drop the effects of blocks above ``fork_block``."""
        await trio.to_thread.run_sync(self._rewind, fork_block)

    def effects(self) -> list[str]:
        """Every applied key."""
        with self._connect() as db:
            return [row[0] for row in db.execute("SELECT key FROM effects ORDER BY key")]

    def deliveries_seen(self) -> int:
        """How many events were handed to the handler in total (replays included)."""
        with self._connect() as db:
            row = db.execute("SELECT COALESCE(SUM(n), 0) FROM applied").fetchone()
        return int(row[0])
