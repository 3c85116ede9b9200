"""Typed records of the journal: action keys, signed transactions, actions and the watcher state.

Everything here is a frozen pydantic model with ``extra="forbid"``: rows read back from SQLite are
validated like any other input, so a corrupt or hand-edited file fails loudly instead of acting.
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from protocol.canonical import keccak256
from protocol.types import Address, address_of

SQLITE_INT_MAX = 2**63 - 1
"""Batch ids, nonces and block numbers are stored as SQLite INTEGER (signed 64-bit)."""


def _word(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError(f"expected 32 bytes, got {len(value)}")
    return value


ParticipantAddress = Annotated[Address, AfterValidator(address_of)]
Word = Annotated[bytes, AfterValidator(_word)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActionState(enum.StrEnum):
    """Where an intended transaction stands: ``intended -> sent -> mined_* | dropped``.

    ``intended`` means durable but perhaps not sent: a crash between the send and the
    ``sent`` record leaves it ``intended``, which is why recovery asks the chain.
    """

    INTENDED = "intended"
    SENT = "sent"
    MINED_SUCCESS = "mined_success"
    MINED_REVERTED = "mined_reverted"
    DROPPED = "dropped"

    @property
    def terminal(self) -> bool:
        return self in (ActionState.MINED_SUCCESS, ActionState.MINED_REVERTED, ActionState.DROPPED)


class ActionKey(_Frozen):
    """What an action is for: one per (batch, participant, phase), the daemons' idempotency key.

    ``phase`` is a short lowercase name (``commit``, ``reveal``, ``score_commit`` ...).
    """

    batch: int = Field(ge=0, le=SQLITE_INT_MAX)
    participant: ParticipantAddress
    phase: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")

    def __str__(self) -> str:
        return f"{self.batch}/{self.participant}/{self.phase}"


class SignedTx(_Frozen):
    """A signed raw transaction: ``tx_hash`` must be keccak256 of ``raw`` (checked)."""

    raw: bytes = Field(min_length=1)
    tx_hash: Word
    nonce: int = Field(ge=0, le=SQLITE_INT_MAX)
    sender: ParticipantAddress

    @model_validator(mode="after")
    def _hash_matches(self) -> SignedTx:
        if keccak256(self.raw) != self.tx_hash:
            raise ValueError("tx_hash is not keccak256 of the raw transaction")
        return self


class Action(_Frozen):
    """One journaled action: its secrets, every transaction signed for it and its state.

    ``txs`` lists the signed transactions oldest first (a replacement reuses the nonce);
    ``superseded`` the hashes among them given up after their nonce went to another transaction
    (the action was re-signed with a newer nonce: :meth:`Store.record_resign_sync`);
    ``mined_tx_hash`` / ``block_number`` are set once one of them is mined.
    """

    key: ActionKey
    salt: Word | None
    digest: Word | None
    state: ActionState
    txs: tuple[SignedTx, ...]
    mined_tx_hash: Word | None = None
    block_number: int | None = Field(default=None, ge=0)
    superseded: tuple[Word, ...] = ()

    @property
    def live_txs(self) -> tuple[SignedTx, ...]:
        """The transactions still able to be mined: all of one nonce (the newest signed)."""
        return tuple(t for t in self.txs if t.tx_hash not in self.superseded)

    @property
    def latest_tx(self) -> SignedTx:
        """The newest signed transaction (the one to re-send)."""
        return self.txs[-1]


class WatchState(_Frozen):
    """A chain watcher's persisted position: its cursor (the last block processed, -1 for none;
    the watcher defines it) and the block hashes it remembers (number -> 32-byte hash)."""

    cursor: int = Field(ge=-1, le=SQLITE_INT_MAX)
    hashes: dict[int, Word] = Field(default_factory=dict)
