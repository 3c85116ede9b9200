"""The journal on a real SQLite file: WAL mode, watcher state, results, the action state machine,
durability across reopen, and the one-writer lock (checked from a second real process)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.canonical import canonical_bytes, digest
from protocol.store import (
    ActionState,
    InvalidTransition,
    JournalConflict,
    SignedTx,
    Store,
    StoreLocked,
    UnknownAction,
    open_store,
)
from protocol.store.schema import SCHEMA_VERSION
from tests.store.helpers import key_for, signed_tx

pytestmark = pytest.mark.unit

SALT = bytes(range(32))
DIGEST = bytes(range(32, 64))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open_sync(tmp_path / "journal.sqlite")
    yield opened  # type: ignore[misc]
    opened.close()


def test_file_is_wal_with_full_sync_and_current_version(store: Store) -> None:
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    finally:
        other.close()
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_watch_state_round_trip_replaces_the_hash_set(store: Store) -> None:
    async def main() -> None:
        assert await store.load_watch_state() is None
        await store.save_watch_state(100, {98: b"\x01" * 32, 99: b"\x02" * 32, 100: b"\x03" * 32})
        await store.save_watch_state(101, {100: b"\x03" * 32, 101: b"\x04" * 32})
        state = await store.load_watch_state()
        assert state is not None
        assert state.cursor == 101
        assert state.hashes == {100: b"\x03" * 32, 101: b"\x04" * 32}

    trio.run(main)


class WatcherState(BaseModel):
    """The shape of the chain watcher's own state model (protocol.chain.watcher)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cursor: int = Field(ge=-1)
    hashes: dict[int, bytes] = Field(default_factory=dict)


def test_watcher_store_adapter_keeps_named_watchers_apart(store: Store) -> None:
    node, oracle = store.watcher_store(WatcherState, "node"), store.watcher_store(WatcherState, "oracle")

    async def main() -> None:
        assert await node.load() is None
        await node.save(WatcherState(cursor=-1))
        await oracle.save(WatcherState(cursor=9, hashes={9: b"\x09" * 32}))
        await node.save(WatcherState(cursor=3, hashes={2: b"\x02" * 32, 3: b"\x03" * 32}))
        assert await node.load() == WatcherState(cursor=3, hashes={2: b"\x02" * 32, 3: b"\x03" * 32})
        assert await oracle.load() == WatcherState(cursor=9, hashes={9: b"\x09" * 32})
        assert await store.load_watch_state() is None  # the default watcher saw none of it

    trio.run(main)


def test_a_bad_watch_state_is_refused_and_the_old_one_kept(store: Store) -> None:
    store.save_watch_state_sync(7, {7: b"\x07" * 32})
    with pytest.raises(ValidationError):
        store.save_watch_state_sync(8, {8: b"\x08" * 31})
    state = store.load_watch_state_sync()
    assert state is not None and (state.cursor, state.hashes) == (7, {7: b"\x07" * 32})


def test_results_are_stored_under_the_canonical_digest(store: Store) -> None:
    value = {"b": [1, 2.5, "ü"], "a": None}

    async def main() -> None:
        key = await store.put_result(value)
        assert key == digest(value)
        assert await store.get_result(key) == canonical_bytes(value)
        assert await store.put_result(value) == key  # idempotent
        assert await store.get_result(b"\x00" * 32) is None

    trio.run(main)


def test_intent_is_recorded_idempotently_and_never_overwritten(store: Store) -> None:
    key, tx = key_for(1), signed_tx(1, nonce=0)
    action = store.record_intent_sync(key, tx, salt=SALT, digest=DIGEST)
    assert action.state is ActionState.INTENDED
    assert store.record_intent_sync(key, tx, salt=SALT, digest=DIGEST) == action
    with pytest.raises(JournalConflict, match="different salt"):
        store.record_intent_sync(key, tx, salt=b"\xff" * 32, digest=DIGEST)
    with pytest.raises(JournalConflict):
        store.record_intent_sync(key, signed_tx(1, nonce=0, value=2), salt=SALT, digest=DIGEST)
    with pytest.raises(JournalConflict, match="not the participant"):
        store.record_intent_sync(key_for(2), tx, salt=SALT)
    kept = store.get_action_sync(key)
    assert kept is not None and kept.salt == SALT and kept.txs == (tx,)


def test_signed_tx_hash_must_match_the_raw_bytes() -> None:
    tx = signed_tx(1, nonce=0)
    with pytest.raises(ValidationError, match="keccak256"):
        SignedTx(raw=tx.raw, tx_hash=b"\x00" * 32, nonce=0, sender=tx.sender)


def test_state_machine_sent_then_mined_is_final(store: Store) -> None:
    key, tx = key_for(1), signed_tx(1, nonce=3)
    store.record_intent_sync(key, tx, salt=SALT)
    assert store.mark_sent_sync(key, tx.tx_hash).state is ActionState.SENT
    assert store.mark_sent_sync(key, tx.tx_hash).state is ActionState.SENT
    mined = store.mark_mined_sync(key, tx.tx_hash, block_number=12, success=True)
    assert (mined.state, mined.mined_tx_hash, mined.block_number) == (
        ActionState.MINED_SUCCESS,
        tx.tx_hash,
        12,
    )
    assert store.mark_mined_sync(key, tx.tx_hash, block_number=12, success=True) == mined
    with pytest.raises(InvalidTransition):
        store.mark_mined_sync(key, tx.tx_hash, block_number=13, success=True)
    with pytest.raises(InvalidTransition):
        store.mark_mined_sync(key, tx.tx_hash, block_number=12, success=False)
    with pytest.raises(InvalidTransition):
        store.mark_dropped_sync(key)
    assert store.mark_sent_sync(key, tx.tx_hash) == mined  # a late "sent" changes nothing


def test_replacements_share_the_nonce_and_any_of_them_can_be_mined(store: Store) -> None:
    key = key_for(1)
    first, bumped = signed_tx(1, nonce=5), signed_tx(1, nonce=5, max_fee=4 * 10**9)
    store.record_intent_sync(key, first, salt=SALT)
    with pytest.raises(JournalConflict, match="reuse nonce 5"):
        store.record_replacement_sync(key, signed_tx(1, nonce=6))
    action = store.record_replacement_sync(key, bumped)
    assert [t.tx_hash for t in action.txs] == [first.tx_hash, bumped.tx_hash]
    assert action.latest_tx == bumped
    assert store.record_replacement_sync(key, bumped) == action
    mined = store.mark_mined_sync(key, first.tx_hash, block_number=3, success=False)
    assert mined.state is ActionState.MINED_REVERTED and mined.mined_tx_hash == first.tx_hash
    with pytest.raises(InvalidTransition):
        store.record_replacement_sync(key, signed_tx(1, nonce=5, max_fee=8 * 10**9))


def test_a_resign_with_a_newer_nonce_supersedes_the_old_transactions(store: Store) -> None:
    key = key_for(1)
    first, bumped = signed_tx(1, nonce=5), signed_tx(1, nonce=5, max_fee=4 * 10**9)
    store.record_intent_sync(key, first, salt=SALT, digest=DIGEST)
    store.record_replacement_sync(key, bumped)
    store.mark_sent_sync(key, bumped.tx_hash)
    with pytest.raises(JournalConflict, match="nonce above 5"):
        store.record_resign_sync(key, signed_tx(1, nonce=5, max_fee=9 * 10**9))
    with pytest.raises(JournalConflict, match="not the participant"):
        store.record_resign_sync(key, signed_tx(2, nonce=6))
    new = signed_tx(1, nonce=6)
    action = store.record_resign_sync(key, new)
    assert action.state is ActionState.INTENDED, "the new transaction is not sent yet"
    assert action.superseded == (first.tx_hash, bumped.tx_hash)
    assert action.live_txs == (new,) and action.latest_tx == new
    assert (action.salt, action.digest) == (SALT, DIGEST), "the salt survives a re-sign"
    assert store.record_resign_sync(key, new) == action, "idempotent"
    assert store.get_action_sync(key) == action, "durable"
    # a fee bump now follows the new nonce, not the superseded one
    with pytest.raises(JournalConflict, match="reuse nonce 6"):
        store.record_replacement_sync(key, signed_tx(1, nonce=5, max_fee=8 * 10**9))
    store.record_replacement_sync(key, signed_tx(1, nonce=6, max_fee=4 * 10**9))
    store.mark_mined_sync(key, new.tx_hash, block_number=9, success=True)
    with pytest.raises(InvalidTransition):
        store.record_resign_sync(key, signed_tx(1, nonce=7))


def test_foreign_hashes_and_unknown_keys_are_refused(store: Store) -> None:
    key = key_for(1)
    with pytest.raises(UnknownAction):
        store.mark_sent_sync(key, b"\x01" * 32)
    store.record_intent_sync(key, signed_tx(1, nonce=0))
    with pytest.raises(JournalConflict, match="not one of its transactions"):
        store.mark_mined_sync(key, signed_tx(1, nonce=1).tx_hash, block_number=1, success=True)


def test_unfinished_actions_are_intended_or_sent_in_journal_order(store: Store) -> None:
    keys = [key_for(1, batch=b) for b in (3, 1, 2)]
    txs = [signed_tx(1, nonce=n) for n in range(3)]
    for key, tx in zip(keys, txs, strict=True):
        store.record_intent_sync(key, tx)
    store.mark_sent_sync(keys[1], txs[1].tx_hash)
    store.mark_mined_sync(keys[2], txs[2].tx_hash, block_number=9, success=True)
    unfinished = store.unfinished_actions_sync()
    assert [(a.key.batch, a.state) for a in unfinished] == [(3, ActionState.INTENDED), (1, ActionState.SENT)]


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    key, tx = key_for(2, batch=44, phase="reveal"), signed_tx(2, nonce=1)

    async def write() -> bytes:
        async with open_store(path) as store:
            await store.save_watch_state(5, {5: b"\x05" * 32})
            await store.record_intent(key, tx, salt=SALT, digest=DIGEST)
            await store.mark_sent(key, tx.tx_hash)
            return await store.put_result_bytes(b'{"x":1}')

    async def read(result_key: bytes) -> None:
        async with open_store(path) as store:
            action = await store.get_action(key)
            assert action is not None
            assert (action.state, action.salt, action.digest, action.txs) == (
                ActionState.SENT,
                SALT,
                DIGEST,
                (tx,),
            )
            assert await store.get_result(result_key) == b'{"x":1}'
            state = await store.load_watch_state()
            assert state is not None and state.cursor == 5

    trio.run(read, trio.run(write))


_SECOND_OPENER = """
import sys
from pathlib import Path
from protocol.store import Store, StoreLocked
try:
    Store.open_sync(Path(sys.argv[1])).close()
except StoreLocked as exc:
    print(f"LOCKED {exc.pid} {exc}")
else:
    print("OPENED")
"""


def _second_process(path: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _SECOND_OPENER, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_a_second_writer_process_is_refused_with_our_pid(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    store = Store.open_sync(path)
    try:
        answer = _second_process(path)
        assert answer.startswith(f"LOCKED {os.getpid()} ")
        assert f"locked for writing by process {os.getpid()}" in answer
        with pytest.raises(StoreLocked) as caught:  # in-process too: flock is per open file
            Store.open_sync(path)
        assert caught.value.pid == os.getpid()
        reader = Store.open_sync(path, read_only=True)  # readers need no lock
        assert reader.load_watch_state_sync() is None
        reader.close()
    finally:
        store.close()
    assert _second_process(path) == "OPENED"
