"""The journal: a durable SQLite store shared by the node and the validator daemons.

:func:`open_store` / :class:`Store` (watcher cursor + block hashes, results by digest, the
write-ahead action journal), the models in :mod:`protocol.store.models`, crash recovery in
:mod:`protocol.store.recovery`, errors in :mod:`protocol.store.errors`.
"""

from protocol.store.db import Store, open_store
from protocol.store.errors import (
    InvalidTransition,
    JournalConflict,
    SchemaVersionError,
    StoreError,
    StoreLocked,
    UnknownAction,
)
from protocol.store.models import Action, ActionKey, ActionState, SignedTx, WatchState

__all__ = [
    "Action",
    "ActionKey",
    "ActionState",
    "InvalidTransition",
    "JournalConflict",
    "SchemaVersionError",
    "SignedTx",
    "Store",
    "StoreError",
    "StoreLocked",
    "UnknownAction",
    "WatchState",
    "open_store",
]
