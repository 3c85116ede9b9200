"""The journal's schema and its migrations, versioned with ``PRAGMA user_version``.

``MIGRATIONS[i]`` moves a database from version ``i`` to ``i + 1``; a new file runs them all.
Each migration runs in the same transaction as its ``user_version`` bump, so a crash mid-way
leaves the previous version intact. Never edit a released migration: append a new one.

* v1: watcher cursors and block hashes (per watcher name), results by digest, actions with one
  inline transaction.
* v2: every transaction signed for an action in ``action_txs`` (fee-bumped replacements share a
  nonce and any of them may be the one mined), ``actions.mined_tx_hash`` names the mined one.
* v3: ``action_txs.superseded``: a transaction given up because its nonce went to another
  transaction before it ever reached the pool; the action was re-signed with a newer nonce.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

V1 = """
CREATE TABLE watch_cursor (
    watcher TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL
);
CREATE TABLE block_hashes (
    watcher TEXT NOT NULL,
    number INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (watcher, number)
);
CREATE TABLE results (
    digest BLOB PRIMARY KEY,
    data BLOB NOT NULL,
    stored_at REAL NOT NULL
);
CREATE TABLE actions (
    batch INTEGER NOT NULL,
    participant TEXT NOT NULL,
    phase TEXT NOT NULL,
    salt BLOB,
    digest BLOB,
    raw_tx BLOB,
    tx_hash BLOB,
    nonce INTEGER,
    sender TEXT,
    state TEXT NOT NULL,
    block_number INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (batch, participant, phase)
);
"""

V2 = """
CREATE TABLE action_txs (
    tx_hash BLOB PRIMARY KEY,
    batch INTEGER NOT NULL,
    participant TEXT NOT NULL,
    phase TEXT NOT NULL,
    seq INTEGER NOT NULL,
    raw BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    sender TEXT NOT NULL,
    FOREIGN KEY (batch, participant, phase) REFERENCES actions (batch, participant, phase),
    UNIQUE (batch, participant, phase, seq)
);
INSERT INTO action_txs (tx_hash, batch, participant, phase, seq, raw, nonce, sender)
    SELECT tx_hash, batch, participant, phase, 0, raw_tx, nonce, sender
    FROM actions WHERE tx_hash IS NOT NULL;
ALTER TABLE actions ADD COLUMN mined_tx_hash BLOB;
UPDATE actions SET mined_tx_hash = tx_hash WHERE state IN ('mined_success', 'mined_reverted');
ALTER TABLE actions DROP COLUMN raw_tx;
ALTER TABLE actions DROP COLUMN tx_hash;
ALTER TABLE actions DROP COLUMN nonce;
ALTER TABLE actions DROP COLUMN sender;
CREATE INDEX actions_unfinished ON actions (state) WHERE state IN ('intended', 'sent');
"""


def _script(sql: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        # executescript() would COMMIT first; run statement by statement inside our transaction.
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(statement)

    return run


V3 = """
ALTER TABLE action_txs ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0;
"""

MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_script(V1), _script(V2), _script(V3))
"""``MIGRATIONS[i]`` upgrades version ``i`` to ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The version this code reads and writes."""


def user_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version`` (0 for a new file)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> list[int]:
    """Apply the migrations from the file's version up to ``target``; returns the versions reached.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Each step is its own
    ``BEGIN IMMEDIATE`` transaction together with its ``user_version`` bump.
    """
    reached: list[int] = []
    while (current := user_version(conn)) < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[current](conn)
            conn.execute(f"PRAGMA user_version = {current + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        reached.append(current + 1)
    return reached
