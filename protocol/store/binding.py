"""Binding a daemon's store directory to the one chain it was written for.

A journal, a node's state file and a validator's journal hold block numbers, block hashes,
batch ids and signed transactions that only mean something on the chain that produced them. A
devnet restarted with the same chain id (anvil's 31337) or a config pointed at another network
with a reused ``store_dir`` would otherwise resume from a cursor hundreds of blocks ahead of the
new chain, see a "reorg" deeper than any confirmation depth, or re-send journaled transactions
to a different deployment.

The first start writes ``chain.json`` into the store directory: the chain id, the hash of the
chain's genesis block (block 0; a new anvil has a new one, because its genesis carries its start
time) and the market's address. Every later start compares the live chain with that file and
refuses with :class:`ChainMismatch` on any difference, before a store is opened. A directory
written before this file existed is bound on its next start.

The file is written atomically and only if absent (a temporary file, ``fsync``, ``link`` to the
final name, then the directory is ``fsync``'d), so a crash leaves either no binding or a whole
one, and of two first starts at once the second sees the first's binding instead of replacing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from protocol.store.errors import StoreError

BINDING_FILE = "chain.json"
"""The binding's file name inside a store directory."""


class ChainMismatch(StoreError):
    """The store directory was written for another chain (its ``field``: ``chain_id``,
    ``genesis_hash`` or ``market``, with the recorded and the live value)."""

    def __init__(self, directory: Path, field: str, recorded: object, live: object) -> None:
        super().__init__(
            f"refusing to start: the store {directory} was written for a chain with {field} "
            f"{recorded}, but the RPC serves {field} {live}; point store_dir at an empty or "
            f"matching directory, or delete {directory} if its journal is no longer needed "
            "(a devnet's old homes are cleared by `synod devnet up`)"
        )
        self.directory = directory
        self.field = field
        self.recorded = recorded
        self.live = live


class ChainBinding(BaseModel):
    """What identifies a chain and a deployment on it.

    ``chain_id``: EIP-155 chain id; ``genesis_hash``: ``0x`` + 64 lowercase hex digits, the hash of
    block 0; ``market``: the TaskMarket's address, ``0x`` + 40 hex digits (compared case-blind).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain_id: int = Field(ge=1)
    genesis_hash: str = Field(pattern=r"^0x[0-9a-f]{64}$")
    market: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")

    @field_validator("genesis_hash", mode="before")
    @classmethod
    def _lower_hash(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("market", mode="after")
    @classmethod
    def _lower_market(cls, value: str) -> str:
        return value.lower()


def read_binding(directory: Path) -> ChainBinding | None:
    """The binding recorded in ``directory`` (``None`` when there is none yet).

    Raises :class:`StoreError` naming the file when it exists but cannot be read or parsed, or
    when it holds every known field plus unknown ones (a binding written by a newer version).
    """
    path = Path(directory) / BINDING_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
        unknown = sorted(set(data) - set(ChainBinding.model_fields)) if isinstance(data, dict) else []
        if unknown and set(ChainBinding.model_fields) <= set(data):
            raise StoreError(
                f"{path} was written by a newer Synod (fields {', '.join(map(repr, unknown))} are "
                "unknown to this version): upgrade synod to use this store directory"
            )
        return ChainBinding.model_validate(data)
    except (json.JSONDecodeError, ValidationError) as exc:
        detail = str(exc).splitlines()[0]
        raise StoreError(
            f"{path} is not a chain binding ({detail}); restore it, or delete the store "
            "directory if its journal is no longer needed"
        ) from None


def bind_store(directory: Path, live: ChainBinding) -> bool:
    """Check ``directory`` against the ``live`` chain, recording the binding on first use.

    Returns ``True`` when the binding was written now, ``False`` when it already matched. Creates
    ``directory`` (mode 0700) if missing. Raises :class:`ChainMismatch` on a different chain id,
    genesis hash or market (checked in that order), :class:`StoreError` when the file is unreadable
    or cannot be written.
    """
    directory = Path(directory)
    recorded = read_binding(directory)
    if recorded is None:
        if _record(directory, live):
            return True
        # another start bound the directory between our read and our write: check against it
        recorded = read_binding(directory)
        if recorded is None:
            raise StoreError(f"cannot record the chain binding in {directory}: it vanished while written")
    _compare(directory, recorded, live)
    return False


def check_binding(directory: Path, live: ChainBinding) -> None:
    """For a reader of a store (``synod oracle explain``): raise :class:`ChainMismatch` when
    ``directory`` is bound to another chain than ``live``, :class:`StoreError` when its binding
    cannot be read. Writes nothing; a directory with no binding passes (nothing to compare)."""
    recorded = read_binding(Path(directory))
    if recorded is not None:
        _compare(Path(directory), recorded, live)


def _compare(directory: Path, recorded: ChainBinding, live: ChainBinding) -> None:
    for field in ("chain_id", "genesis_hash", "market"):
        if getattr(recorded, field) != getattr(live, field):
            raise ChainMismatch(directory, field, getattr(recorded, field), getattr(live, field))


def _record(directory: Path, live: ChainBinding) -> bool:
    """Write the binding file unless one exists: ``True`` if written, ``False`` if another process
    created it first (``os.link`` of a synced temporary file: an atomic create-if-absent, where a
    ``rename`` would silently replace a binding written since this start read none)."""
    tmp = directory / f".{BINDING_FILE}.{os.getpid()}.tmp"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(live.model_dump_json(indent=2) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, directory / BINDING_FILE)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StoreError(f"cannot record the chain binding in {directory}: {exc.strerror}") from None
    return True
