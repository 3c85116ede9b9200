"""Schema versions: a v1 journal (committed SQL fixture) migrates to v2 with nothing lost; a file
newer than the code, or a migration that fails half-way, leaves the file as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from protocol.store import ActionState, SchemaVersionError, Store
from protocol.store.schema import SCHEMA_VERSION
from tests.store.helpers import key_for, signed_tx

pytestmark = pytest.mark.unit

FIXTURE = Path(__file__).parent / "fixtures" / "journal_v1.sql"


def _load_fixture(path: Path, extra_sql: str = "") -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(FIXTURE.read_text(encoding="utf-8") + extra_sql)
    finally:
        conn.close()


def _version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_v1_fixture_migrates_to_the_current_version_without_losing_anything(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _load_fixture(path)
    assert _version(path) == 1
    store = Store.open_sync(path)
    try:
        assert _version(path) == SCHEMA_VERSION == 3
        state = store.load_watch_state_sync()
        assert state is not None and state.cursor == 1234
        assert state.hashes == {1233: b"\x33" * 32, 1234: b"\x34" * 32}
        assert store.get_result_sync(b"\x99" * 32) == b'{"old":true}'

        mined = store.get_action_sync(key_for(1, batch=7))
        assert mined is not None
        assert mined.state is ActionState.MINED_SUCCESS and mined.block_number == 40
        assert mined.txs == (signed_tx(1, nonce=0),)
        assert mined.mined_tx_hash == signed_tx(1, nonce=0).tx_hash  # filled in by the migration
        assert mined.salt == bytes([7]) * 32 and mined.digest == b"\xdd" * 32

        unfinished = store.unfinished_actions_sync()
        assert {(a.key, a.state, a.txs) for a in unfinished} == {
            (key_for(1, batch=8, phase="reveal"), ActionState.SENT, (signed_tx(1, nonce=1),)),
            (key_for(2, batch=8), ActionState.INTENDED, (signed_tx(2, nonce=0),)),
        }
        assert all(a.mined_tx_hash is None for a in unfinished)
        # v2 behaviour works on migrated rows: a replacement for the v1 transaction
        bumped = signed_tx(2, nonce=0, max_fee=5 * 10**9)
        assert store.record_replacement_sync(key_for(2, batch=8), bumped).latest_tx == bumped
        # v3 behaviour too: a re-sign with a newer nonce supersedes both
        resigned = store.record_resign_sync(key_for(2, batch=8), signed_tx(2, nonce=1))
        assert resigned.superseded == (signed_tx(2, nonce=0).tx_hash, bumped.tx_hash)
        assert resigned.live_txs == (signed_tx(2, nonce=1),)
    finally:
        store.close()


def test_a_fresh_file_is_created_at_the_current_version(tmp_path: Path) -> None:
    Store.open_sync(tmp_path / "new.sqlite").close()
    assert _version(tmp_path / "new.sqlite") == 3


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 4")
    conn.close()
    with pytest.raises(SchemaVersionError, match="schema v4; this code knows up to v3"):
        Store.open_sync(path)
    assert _version(path) == 4
    Store.open_sync(path.with_name("other.sqlite")).close()  # and the lock was released
    with pytest.raises(SchemaVersionError):
        Store.open_sync(path)


def test_a_failing_migration_rolls_back_to_v1(tmp_path: Path) -> None:
    # Two v1 actions claiming the same transaction hash cannot both move into action_txs.
    path = tmp_path / "broken.sqlite"
    duplicate = signed_tx(3, nonce=0)
    p, raw, h = duplicate.sender, duplicate.raw.hex(), duplicate.tx_hash.hex()
    extra = "".join(
        f"INSERT INTO actions VALUES (9, '{p}', '{phase}', NULL, NULL, X'{raw}', X'{h}', 0, '{p}', "
        "'sent', NULL, 1.0, 1.0);\n"
        for phase in ("commit", "reveal")
    )
    _load_fixture(path, extra)
    with pytest.raises(SchemaVersionError, match="migration from v1 failed"):
        Store.open_sync(path)
    assert _version(path) == 1
    conn = sqlite3.connect(path)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(actions)")]
        assert "raw_tx" in columns and "mined_tx_hash" not in columns
        assert conn.execute("SELECT count(*) FROM actions").fetchone()[0] == 5
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "action_txs" not in tables
    finally:
        conn.close()
