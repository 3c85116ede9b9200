"""The journal (:class:`~protocol.store.Store`) behind the chain layer's two durability hooks.

* :func:`journal_watcher_store`: the chain watcher's :class:`~protocol.chain.watcher.WatcherStore`
  (cursor + remembered block hashes, saved atomically) kept in the journal under a watcher name,
  so a restarted daemon resumes right after the last range its handlers acknowledged.
* :class:`JournalTxLog`: the transaction writer's :class:`~protocol.chain.writer.TxJournal`.
  ``intend`` records the signed transaction in the journal (state ``intended``, durable when it
  returns, so before the writer sends it); a fee-bumped replacement (``replaces`` set) is added to
  the same action; ``settle`` records the outcome (``mined`` -> ``mined_success``, ``reverted`` ->
  ``mined_reverted``, ``refused``/``failed`` after an intent -> ``dropped``).

The journal keys actions by (batch, participant, phase); the writer knows a request only by its
label. :func:`action_key_from_label` reads the key from labels of the form ``PHASE@BATCH`` (e.g.
``commit@12``; the participant is the transaction's sender); pass another ``key_of`` to
:class:`JournalTxLog` for other conventions.

A request re-signed with a NEW nonce after its nonce went to another transaction (the writer's
"nonce too low" resync; the intent's ``supersedes`` is set) is journaled with
:meth:`~protocol.store.Store.record_resign`: the old transactions are marked superseded and the
new one is the action's live transaction, under the same key. Anything else that does not fit
the journaled action raises :class:`~protocol.store.errors.JournalConflict`, which stops the
writer: nothing is ever sent that the journal does not hold.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from protocol.chain.watcher import WatcherState
from protocol.chain.writer import TxIntent, TxOutcome
from protocol.log import get_logger
from protocol.store.db import DEFAULT_WATCHER, JournalWatcherStore, Store
from protocol.store.errors import JournalConflict
from protocol.store.models import ActionKey, SignedTx

log = get_logger(__name__)

_LABEL = re.compile(r"^(?P<phase>[a-z][a-z0-9_]{0,31})@(?P<batch>[0-9]{1,19})$")


def journal_watcher_store(store: Store, watcher: str = DEFAULT_WATCHER) -> JournalWatcherStore[WatcherState]:
    """The watcher's ``WatcherStore`` for watcher ``watcher`` (e.g. ``"node"``) in ``store``."""
    return store.watcher_store(WatcherState, watcher)


def action_key_from_label(intent: TxIntent) -> ActionKey:
    """``PHASE@BATCH`` (``commit@12``) -> ``ActionKey(batch=12, participant=sender, phase="commit")``.

    Raises :class:`ValueError` for any other label (the writer stops: the request cannot be
    journaled, so it is not sent).
    """
    match = _LABEL.match(intent.label)
    if match is None:
        raise ValueError(f"transaction label {intent.label!r} is not PHASE@BATCH: cannot journal it")
    return ActionKey(batch=int(match["batch"]), participant=intent.sender, phase=match["phase"])


class JournalTxLog:
    """:class:`~protocol.chain.writer.TxJournal` over the journal (see the module docstring).

    ``key_of`` maps an intent to its journal key (default :func:`action_key_from_label`). Request ids
    are remembered in memory only to route ``settle`` to the key of the request's intent: after a
    restart, outcomes of earlier requests come from :mod:`protocol.store.recovery`, not from here.
    """

    def __init__(self, store: Store, key_of: Callable[[TxIntent], ActionKey] = action_key_from_label) -> None:
        self._store = store
        self._key_of = key_of
        self._keys: dict[int, ActionKey] = {}

    async def intend(self, intent: TxIntent) -> None:
        """Journal the signed transaction durably (first intent, a same-nonce replacement, or a
        re-sign with a newer nonce that supersedes the old one).

        Raises :class:`ValueError` (label), :class:`JournalConflict` (a different transaction for
        a key already journaled, or a nonce that does not fit) or a store error.
        """
        key = self._key_of(intent)
        tx = SignedTx(raw=intent.raw, tx_hash=intent.tx_hash, nonce=intent.nonce, sender=intent.sender)
        known = self._keys.get(intent.request_id)
        if known is not None and known != key:
            raise JournalConflict(f"request {intent.request_id} moved from {known} to {key}")
        if intent.supersedes is not None:  # a re-sign with a newer nonce after a resync
            await self._store.record_resign(key, tx)
        elif intent.replaces is None and known is None:
            await self._store.record_intent(key, tx)
        else:  # a fee bump (same nonce)
            await self._store.record_replacement(key, tx)
        self._keys[intent.request_id] = key

    async def settle(self, outcome: TxOutcome) -> None:
        """Record the outcome of a journaled request; requests never intended leave no row."""
        key = self._keys.pop(outcome.request_id, None)
        if key is None:
            log.info("journal_settle_without_intent", request_id=outcome.request_id, status=outcome.status)
            return
        if outcome.status in ("mined", "reverted"):
            if outcome.tx_hash is None or outcome.block_number is None:
                raise ValueError(f"{key}: a {outcome.status} outcome without its hash and block")
            await self._store.mark_mined(
                key, outcome.tx_hash, outcome.block_number, success=outcome.status == "mined"
            )
        else:
            await self._store.mark_dropped(key)
