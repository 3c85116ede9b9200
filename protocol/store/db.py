"""The journal: one SQLite file in WAL mode, used from trio through worker threads.

What it keeps (schema in :mod:`protocol.store.schema`):

* each chain watcher's cursor and remembered block hashes (:class:`WatchState`), saved
  atomically; :meth:`Store.watcher_store` adapts it to the watcher's ``WatcherStore``;
* result bytes by digest (keccak256 of the canonical bytes, :mod:`protocol.canonical`);
* a write-ahead journal of intended actions keyed by (batch, participant, phase): the salt, the
  digest and the signed transaction are committed (``synchronous=FULL``: the WAL is fsync'd on
  every commit) *before* the caller sends anything, so after a crash the journal knows every
  transaction that might be on the chain; :mod:`protocol.store.recovery` reconciles it.

One process writes a store at a time (:class:`~protocol.store.lock.WriterLock`); a second one is
refused with :class:`StoreLocked` naming the holder's pid. Every call runs in a worker thread
behind a limiter of one, so the single connection is never used by two threads at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import trio

from protocol.canonical import Digest, canonical_bytes, keccak256
from protocol.log import get_logger
from protocol.store.errors import (
    InvalidTransition,
    JournalConflict,
    SchemaVersionError,
    UnknownAction,
)
from protocol.store.lock import WriterLock
from protocol.store.models import Action, ActionKey, ActionState, SignedTx, WatchState
from protocol.store.schema import SCHEMA_VERSION, migrate, user_version
from protocol.store.sqlite import connect as sqlite_connect
from protocol.store.sqlite import immediate

log = get_logger(__name__)

T = TypeVar("T")

_KEY_WHERE = "batch = ? AND participant = ? AND phase = ?"

DEFAULT_WATCHER = "default"
"""The watcher name used when a daemon runs one watcher."""


class CursorState(Protocol):
    """Any watcher state with a ``cursor`` and remembered block ``hashes``."""

    @property
    def cursor(self) -> int: ...

    @property
    def hashes(self) -> Mapping[int, bytes]: ...


S = TypeVar("S", bound=CursorState)


def _key_params(key: ActionKey) -> tuple[int, str, str]:
    return (key.batch, key.participant, key.phase)


class Store:
    """An open journal. Build it with :func:`open_store` (or :meth:`open` + :meth:`close`).

    Every public ``async`` method runs its SQL in a worker thread and returns validated models;
    the ``*_sync`` twins are for code that is not on trio (scripts, tests, the recovery CLI).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: WriterLock | None) -> None:
        self.path = path
        self._conn = conn
        self._lock = lock
        self._mutex = threading.Lock()
        self._limiter = trio.CapacityLimiter(1)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open_sync(cls, path: Path, *, read_only: bool = False) -> Store:
        """Open (creating and migrating if needed) the store at ``path``.

        Raises :class:`StoreLocked` if another process writes it, :class:`SchemaVersionError` if
        the file is newer than this code (or, read-only, older), :class:`StoreError` if SQLite
        cannot open it in WAL mode.
        """
        path = Path(path)
        lock: WriterLock | None = None
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = WriterLock(path.with_name(path.name + ".lock"), path)
            lock.acquire()
        try:
            conn = sqlite_connect(path, read_only=read_only)
            try:
                _check_version(conn, path, read_only)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        log.info("store_opened", path=str(path), version=SCHEMA_VERSION, read_only=read_only)
        return cls(path, conn, lock)

    @classmethod
    async def open(cls, path: Path, *, read_only: bool = False) -> Store:
        """:meth:`open_sync` in a worker thread."""
        return await trio.to_thread.run_sync(partial(cls.open_sync, path, read_only=read_only))

    def close(self) -> None:
        """Close the connection and release the writer lock (idempotent)."""
        with self._mutex:
            self._conn.close()
        if self._lock is not None:
            self._lock.release()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(partial(fn, *args), limiter=self._limiter)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed (and fsync'd) on success."""
        with immediate(self._conn, self._mutex) as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ watcher state

    def load_watch_state_sync(self, watcher: str = DEFAULT_WATCHER) -> WatchState | None:
        """The cursor and block hashes last saved for ``watcher``, or ``None`` before the first save."""
        with self._read() as conn:
            row = conn.execute("SELECT cursor FROM watch_cursor WHERE watcher = ?", (watcher,)).fetchone()
            if row is None:
                return None
            hashes = dict(
                conn.execute("SELECT number, hash FROM block_hashes WHERE watcher = ?", (watcher,)).fetchall()
            )
        return WatchState(cursor=row[0], hashes=hashes)

    def save_watch_state_sync(
        self, cursor: int, hashes: Mapping[int, bytes], watcher: str = DEFAULT_WATCHER
    ) -> WatchState:
        """Replace ``watcher``'s cursor and its whole set of remembered hashes in one transaction."""
        state = WatchState(cursor=cursor, hashes=dict(hashes))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO watch_cursor (watcher, cursor) VALUES (?, ?) "
                "ON CONFLICT (watcher) DO UPDATE SET cursor = excluded.cursor",
                (watcher, state.cursor),
            )
            conn.execute("DELETE FROM block_hashes WHERE watcher = ?", (watcher,))
            conn.executemany(
                "INSERT INTO block_hashes (watcher, number, hash) VALUES (?, ?, ?)",
                [(watcher, number, value) for number, value in state.hashes.items()],
            )
        return state

    async def load_watch_state(self, watcher: str = DEFAULT_WATCHER) -> WatchState | None:
        """Async :meth:`load_watch_state_sync`."""
        return await self._run(self.load_watch_state_sync, watcher)

    async def save_watch_state(
        self, cursor: int, hashes: Mapping[int, bytes], watcher: str = DEFAULT_WATCHER
    ) -> WatchState:
        """Async :meth:`save_watch_state_sync` (atomic: a crash keeps the old or the new state)."""
        return await self._run(self.save_watch_state_sync, cursor, hashes, watcher)

    def watcher_store(
        self, build: Callable[..., S], watcher: str = DEFAULT_WATCHER
    ) -> JournalWatcherStore[S]:
        """The chain watcher's ``WatcherStore`` (``load()`` / ``save(state)``) kept in this journal.

        ``build(cursor=..., hashes=...)`` makes the watcher's own state model from what was saved
        (e.g. ``store.watcher_store(WatcherState, "node")``).
        """
        return JournalWatcherStore(self, build, watcher)

    # ------------------------------------------------------------------ results

    def put_result_bytes_sync(self, data: bytes) -> Digest:
        """Store ``data`` (already canonical bytes) under keccak256(data); idempotent."""
        key = keccak256(data)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO results (digest, data, stored_at) VALUES (?, ?, ?) "
                "ON CONFLICT (digest) DO NOTHING",
                (key, data, time.time()),
            )
        return key

    def put_results_bytes_sync(self, items: Sequence[bytes]) -> list[Digest]:
        """Store each of ``items`` (canonical bytes) under its keccak256 in ONE transaction (one
        fsync for all: the node's group commit of the rows finished together); idempotent. Returns
        the digests in order. All or none are stored (a failure rolls the transaction back)."""
        now = time.time()
        keyed = [(keccak256(data), data) for data in items]
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO results (digest, data, stored_at) VALUES (?, ?, ?) "
                "ON CONFLICT (digest) DO NOTHING",
                [(key, data, now) for key, data in keyed],
            )
        return [key for key, _ in keyed]

    def get_result_sync(self, digest: bytes) -> bytes | None:
        """The bytes stored under ``digest`` or ``None``."""
        with self._read() as conn:
            row = conn.execute("SELECT data FROM results WHERE digest = ?", (bytes(digest),)).fetchone()
        return None if row is None else bytes(row[0])

    async def put_result(self, value: Any) -> Digest:
        """Canonicalise a JSON ``value`` and store its bytes; returns their digest."""
        return await self._run(self.put_result_bytes_sync, canonical_bytes(value))

    async def put_result_bytes(self, data: bytes) -> Digest:
        """Async :meth:`put_result_bytes_sync`."""
        return await self._run(self.put_result_bytes_sync, data)

    async def get_result(self, digest: bytes) -> bytes | None:
        """Async :meth:`get_result_sync`."""
        return await self._run(self.get_result_sync, digest)

    # ------------------------------------------------------------------ the action journal

    def _load_action(self, conn: sqlite3.Connection, key: ActionKey) -> Action | None:
        row = conn.execute(
            f"SELECT salt, digest, state, mined_tx_hash, block_number FROM actions WHERE {_KEY_WHERE}",
            _key_params(key),
        ).fetchone()
        if row is None:
            return None
        txs = conn.execute(
            f"SELECT raw, tx_hash, nonce, sender, superseded FROM action_txs WHERE {_KEY_WHERE} ORDER BY seq",
            _key_params(key),
        ).fetchall()
        return Action(
            key=key,
            salt=row[0],
            digest=row[1],
            state=ActionState(row[2]),
            mined_tx_hash=row[3],
            block_number=row[4],
            txs=tuple(SignedTx(raw=r[0], tx_hash=r[1], nonce=r[2], sender=r[3]) for r in txs),
            superseded=tuple(r[1] for r in txs if r[4]),
        )

    def _require(self, conn: sqlite3.Connection, key: ActionKey) -> Action:
        action = self._load_action(conn, key)
        if action is None:
            raise UnknownAction(f"no action journaled for {key}")
        return action

    def _set_state(
        self,
        conn: sqlite3.Connection,
        key: ActionKey,
        state: ActionState,
        mined_tx_hash: bytes | None = None,
        block_number: int | None = None,
    ) -> None:
        conn.execute(
            f"UPDATE actions SET state = ?, mined_tx_hash = ?, block_number = ?, updated_at = ? "
            f"WHERE {_KEY_WHERE}",
            (state.value, mined_tx_hash, block_number, time.time(), *_key_params(key)),
        )

    def _add_tx(self, conn: sqlite3.Connection, key: ActionKey, tx: SignedTx, seq: int) -> None:
        conn.execute(
            "INSERT INTO action_txs (tx_hash, batch, participant, phase, seq, raw, nonce, sender) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (tx.tx_hash, *_key_params(key), seq, tx.raw, tx.nonce, tx.sender),
        )

    def record_intent_sync(
        self, key: ActionKey, tx: SignedTx, *, salt: bytes | None = None, digest: bytes | None = None
    ) -> Action:
        """Journal an action and its signed transaction (state ``intended``) before it is sent.

        Idempotent: recording the same salt, digest and transaction again returns the journaled
        action. Raises :class:`JournalConflict` if ``key`` is journaled with anything different
        (a salt, once written, is never replaced: the chain may already hold its commitment).
        """
        if tx.sender != key.participant:
            raise JournalConflict(f"{key}: transaction sender {tx.sender} is not the participant")
        candidate = Action(key=key, salt=salt, digest=digest, state=ActionState.INTENDED, txs=(tx,))
        with self._write() as conn:
            existing = self._load_action(conn, key)
            if existing is not None:
                if (existing.salt, existing.digest, existing.txs[:1]) == (salt, digest, (tx,)):
                    return existing
                raise JournalConflict(f"{key} is already journaled with a different salt, digest or tx")
            now = time.time()
            conn.execute(
                "INSERT INTO actions (batch, participant, phase, salt, digest, state, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*_key_params(key), salt, digest, ActionState.INTENDED.value, now, now),
            )
            self._add_tx(conn, key, tx, 0)
        log.info("journal_intent", key=str(key), tx_hash=tx.tx_hash, nonce=tx.nonce)
        return candidate

    def record_replacement_sync(self, key: ActionKey, tx: SignedTx) -> Action:
        """Journal a replacement (e.g. fee-bumped) transaction for an unfinished action.

        It must reuse the nonce of the first one, so at most one of them can be mined.
        Raises :class:`UnknownAction`, :class:`InvalidTransition` (finished action) or
        :class:`JournalConflict` (another nonce or sender). Idempotent for a known hash.
        """
        with self._write() as conn:
            action = self._require(conn, key)
            if any(t.tx_hash == tx.tx_hash for t in action.txs):
                return action
            if action.state.terminal:
                raise InvalidTransition(f"{key} is {action.state.value}: nothing to replace")
            first = action.live_txs[0]
            if (tx.nonce, tx.sender) != (first.nonce, first.sender):
                raise JournalConflict(
                    f"{key}: a replacement must reuse nonce {first.nonce} of {first.sender}"
                )
            self._add_tx(conn, key, tx, len(action.txs))
            updated = self._require(conn, key)
        log.info("journal_replacement", key=str(key), tx_hash=tx.tx_hash, nonce=tx.nonce)
        return updated

    def record_resign_sync(self, key: ActionKey, tx: SignedTx) -> Action:
        """Journal ``tx``, a re-sign of an unfinished action with a NEWER nonce, after the nonce of
        its live transactions went to another transaction before any of them reached the pool
        (the writer's "nonce too low" resync). The live transactions are marked superseded (they
        can never be mined: their nonce is used) and ``tx`` becomes the live one, state
        ``intended`` again, salt and digest unchanged.

        Raises :class:`UnknownAction`, :class:`InvalidTransition` (a finished action: one of its
        transactions was mined, or it was dropped) or :class:`JournalConflict` (another sender,
        or a nonce not above the superseded one). Idempotent for a known hash.
        """
        with self._write() as conn:
            action = self._require(conn, key)
            if any(t.tx_hash == tx.tx_hash for t in action.txs):
                return action
            if action.state.terminal:
                raise InvalidTransition(f"{key} is {action.state.value}: nothing to re-sign")
            live = action.live_txs
            if tx.sender != key.participant:
                raise JournalConflict(f"{key}: transaction sender {tx.sender} is not the participant")
            if tx.nonce <= live[0].nonce:
                raise JournalConflict(
                    f"{key}: a re-sign must use a nonce above {live[0].nonce} (got {tx.nonce})"
                )
            for old in live:
                conn.execute("UPDATE action_txs SET superseded = 1 WHERE tx_hash = ?", (old.tx_hash,))
            self._add_tx(conn, key, tx, len(action.txs))
            self._set_state(conn, key, ActionState.INTENDED)
            updated = self._require(conn, key)
        log.warning(
            "journal_superseded",
            key=str(key),
            old_nonce=live[0].nonce,
            old_tx_hash=live[-1].tx_hash,
            tx_hash=tx.tx_hash,
            nonce=tx.nonce,
        )
        return updated

    def mark_sent_sync(self, key: ActionKey, tx_hash: bytes) -> Action:
        """Record that ``tx_hash`` (one of the action's transactions) was handed to the chain.

        ``intended -> sent`` and ``sent -> sent``; a finished action is returned unchanged.
        """
        with self._write() as conn:
            action = self._require(conn, key)
            _own_tx(action, tx_hash)
            if action.state.terminal or action.state is ActionState.SENT:
                return action
            self._set_state(conn, key, ActionState.SENT)
            return self._require(conn, key)

    def mark_mined_sync(self, key: ActionKey, tx_hash: bytes, block_number: int, success: bool) -> Action:
        """Record that ``tx_hash`` was mined in ``block_number`` (``success`` = receipt status 1).

        Idempotent for the same outcome; raises :class:`InvalidTransition` if the action already
        finished differently (another hash, block or status, or dropped).
        """
        state = ActionState.MINED_SUCCESS if success else ActionState.MINED_REVERTED
        with self._write() as conn:
            action = self._require(conn, key)
            _own_tx(action, tx_hash)
            if action.state.terminal:
                if (action.state, action.mined_tx_hash, action.block_number) == (
                    state,
                    bytes(tx_hash),
                    block_number,
                ):
                    return action
                raise InvalidTransition(f"{key} is already {action.state.value}; cannot become {state.value}")
            self._set_state(conn, key, state, bytes(tx_hash), block_number)
            updated = self._require(conn, key)
        log.info("journal_mined", key=str(key), tx_hash=bytes(tx_hash), block=block_number, state=state.value)
        return updated

    def mark_dropped_sync(self, key: ActionKey) -> Action:
        """Record that none of the action's transactions can be mined any more (nonce taken).

        Raises :class:`InvalidTransition` if one of them was recorded as mined.
        """
        with self._write() as conn:
            action = self._require(conn, key)
            if action.state is ActionState.DROPPED:
                return action
            if action.state.terminal:
                raise InvalidTransition(f"{key} is {action.state.value}; cannot become dropped")
            self._set_state(conn, key, ActionState.DROPPED)
            updated = self._require(conn, key)
        log.warning("journal_dropped", key=str(key), nonce=action.txs[0].nonce)
        return updated

    def forget_batch_sync(self, batch: int, participant: str) -> int:
        """A reorg removed batch ``batch``: delete ``participant``'s actions for it (and their
        transactions), so that if the new chain posts a batch under the same id it starts afresh.
        Returns how many actions were deleted. Only for batches the chain no longer has: their
        transactions can never be mined (the calls they make would revert, or they are gone)."""
        with self._write() as conn:
            conn.execute("DELETE FROM action_txs WHERE batch = ? AND participant = ?", (batch, participant))
            cursor = conn.execute(
                "DELETE FROM actions WHERE batch = ? AND participant = ?", (batch, participant)
            )
            count = cursor.rowcount
        if count:
            log.warning("journal_forgot_batch", batch=batch, participant=participant, actions=count)
        return count

    def get_action_sync(self, key: ActionKey) -> Action | None:
        """The action journaled under ``key`` or ``None``."""
        with self._read() as conn:
            return self._load_action(conn, key)

    def unfinished_actions_sync(self) -> list[Action]:
        """Every action still ``intended`` or ``sent``, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT batch, participant, phase FROM actions WHERE state IN ('intended', 'sent') "
                "ORDER BY created_at, batch, participant, phase"
            ).fetchall()
            keys = [ActionKey(batch=r[0], participant=r[1], phase=r[2]) for r in rows]
            return [self._require(conn, k) for k in keys]

    async def record_intent(
        self, key: ActionKey, tx: SignedTx, *, salt: bytes | None = None, digest: bytes | None = None
    ) -> Action:
        """Async :meth:`record_intent_sync`: durable when it returns."""
        return await self._run(partial(self.record_intent_sync, key, tx, salt=salt, digest=digest))

    async def record_replacement(self, key: ActionKey, tx: SignedTx) -> Action:
        """Async :meth:`record_replacement_sync`."""
        return await self._run(self.record_replacement_sync, key, tx)

    async def record_resign(self, key: ActionKey, tx: SignedTx) -> Action:
        """Async :meth:`record_resign_sync`."""
        return await self._run(self.record_resign_sync, key, tx)

    async def mark_sent(self, key: ActionKey, tx_hash: bytes) -> Action:
        """Async :meth:`mark_sent_sync`."""
        return await self._run(self.mark_sent_sync, key, tx_hash)

    async def mark_mined(self, key: ActionKey, tx_hash: bytes, block_number: int, success: bool) -> Action:
        """Async :meth:`mark_mined_sync`."""
        return await self._run(self.mark_mined_sync, key, tx_hash, block_number, success)

    async def mark_dropped(self, key: ActionKey) -> Action:
        """Async :meth:`mark_dropped_sync`."""
        return await self._run(self.mark_dropped_sync, key)

    async def forget_batch(self, batch: int, participant: str) -> int:
        """Async :meth:`forget_batch_sync`."""
        return await self._run(self.forget_batch_sync, batch, participant)

    async def get_action(self, key: ActionKey) -> Action | None:
        """Async :meth:`get_action_sync`."""
        return await self._run(self.get_action_sync, key)

    async def unfinished_actions(self) -> list[Action]:
        """Async :meth:`unfinished_actions_sync`."""
        return await self._run(self.unfinished_actions_sync)


class JournalWatcherStore(Generic[S]):
    """A watcher's durable state in the journal: ``load()`` and an atomic ``save(state)``."""

    def __init__(self, store: Store, build: Callable[..., S], watcher: str) -> None:
        self._store = store
        self._build = build
        self.watcher = watcher

    async def load(self) -> S | None:
        """The last saved state (built with ``build``), or ``None``."""
        saved = await self._store.load_watch_state(self.watcher)
        return None if saved is None else self._build(cursor=saved.cursor, hashes=dict(saved.hashes))

    async def save(self, state: S) -> None:
        """Replace the saved cursor and hashes with ``state``'s, in one transaction."""
        await self._store.save_watch_state(state.cursor, state.hashes, self.watcher)


def _own_tx(action: Action, tx_hash: bytes) -> None:
    if not any(t.tx_hash == bytes(tx_hash) for t in action.txs):
        raise JournalConflict(f"{action.key}: 0x{bytes(tx_hash).hex()} is not one of its transactions")


def _check_version(conn: sqlite3.Connection, path: Path, read_only: bool) -> None:
    version = user_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has schema v{version}; this code knows up to v{SCHEMA_VERSION}: upgrade Synod"
        )
    if version == SCHEMA_VERSION:
        return
    if read_only:
        raise SchemaVersionError(f"{path} has schema v{version}; open it for writing once to migrate")
    try:
        reached = migrate(conn)
    except sqlite3.Error as exc:
        raise SchemaVersionError(f"{path}: migration from v{version} failed: {exc}") from None
    log.info("store_migrated", path=str(path), versions=reached)


@asynccontextmanager
async def open_store(path: Path, *, read_only: bool = False) -> AsyncIterator[Store]:
    """``async with open_store(path) as store``: open, yield, always close (and unlock)."""
    store = await Store.open(path, read_only=read_only)
    try:
        yield store
    finally:
        store.close()
