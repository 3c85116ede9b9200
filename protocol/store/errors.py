"""Errors of the journal (:mod:`protocol.store`).

Every one derives from :class:`~protocol.errors.SynodError`::

    SynodError
    └── StoreError                 the journal cannot be used as asked
        ├── StoreLocked            another live process holds the store for writing (its pid)
        ├── SchemaVersionError     the file's schema is newer than this code, or a migration failed
        ├── JournalConflict        an action's salt, digest or transaction would be overwritten
        ├── UnknownAction          no action is journaled under a (batch, participant, phase) key
        ├── InvalidTransition      a state change the action's state machine does not allow
        └── ChainLookupFailed      recovery could not ask the chain (the action is left as it was)
"""

from __future__ import annotations

from protocol.errors import SynodError


class StoreError(SynodError):
    """The journal cannot be used as asked."""


class StoreLocked(StoreError):
    """Another process holds the store for writing; ``pid`` is its process id (``None`` if unknown)."""

    def __init__(self, path: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process (pid unknown)"
        super().__init__(f"store {path} is locked for writing by {holder}")
        self.path = path
        self.pid = pid


class SchemaVersionError(StoreError):
    """The database's ``user_version`` is newer than this code knows, or a migration failed."""


class JournalConflict(StoreError):
    """A write that would replace a journaled salt, digest or transaction with different values."""


class UnknownAction(StoreError, LookupError):
    """No action is journaled under the given key."""


class InvalidTransition(StoreError):
    """A state change that the action state machine does not allow (e.g. out of ``mined_success``)."""


class ChainLookupFailed(StoreError):
    """A chain lookup during recovery failed or timed out; the action is left unchanged."""
