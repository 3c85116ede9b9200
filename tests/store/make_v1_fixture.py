"""Builds ``fixtures/journal_v1.sql``: a schema-v1 journal as an older Synod wrote it.

Run once (``python -m tests.store.make_v1_fixture``); the SQL dump is committed and the migration
test loads it, so the fixture never depends on today's code paths for writing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from protocol.store.schema import migrate
from tests.store.helpers import key_for, signed_tx

FIXTURE = Path(__file__).parent / "fixtures" / "journal_v1.sql"


def build() -> str:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn, target=1)
    conn.execute("INSERT INTO watch_cursor (watcher, cursor) VALUES ('default', 1234)")
    conn.executemany(
        "INSERT INTO block_hashes VALUES ('default', ?, ?)", [(1233, b"\x33" * 32), (1234, b"\x34" * 32)]
    )
    conn.execute("INSERT INTO results VALUES (?, ?, ?)", (b"\x99" * 32, b'{"old":true}', 1.0))
    rows = [
        (key_for(1, batch=7), signed_tx(1, nonce=0), "mined_success", 40),
        (key_for(1, batch=8, phase="reveal"), signed_tx(1, nonce=1), "sent", None),
        (key_for(2, batch=8), signed_tx(2, nonce=0), "intended", None),
    ]
    for key, tx, state, block in rows:
        conn.execute(
            "INSERT INTO actions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.batch,
                key.participant,
                key.phase,
                bytes([key.batch]) * 32,
                b"\xdd" * 32,
                tx.raw,
                tx.tx_hash,
                tx.nonce,
                tx.sender,
                state,
                block,
                1.0,
                2.0,
            ),
        )
    dump = "\n".join(conn.iterdump())
    return f"PRAGMA user_version = 1;\n{dump}\n"


if __name__ == "__main__":
    FIXTURE.write_text(build(), encoding="utf-8")
    print(FIXTURE)
