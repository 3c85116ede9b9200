"""Typed ids and hashes shared by every role.

``NewType`` keeps them free at run time and distinct for mypy; the ``*_of`` constructors validate
untrusted input (CLI arguments, wire messages, RPC results) and raise :class:`TypeValidationError`
with the failing value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address
from eth_utils.hexadecimal import is_hex

from protocol.errors import SynodError

JobId = NewType("JobId", int)
"""A job's id on TaskMarket (one workflow, many input rows): uint256, sequential from 1."""

BatchId = NewType("BatchId", int)
"""A batch's id on TaskMarket (the unit of settlement: B rows of one job): uint256, sequential from 1."""

Address = NewType("Address", ChecksumAddress)
"""A 20-byte account address in EIP-55 checksummed hex (a str; web3 takes it as is)."""

Bytes32 = NewType("Bytes32", bytes)
"""Exactly 32 bytes: digests, commitments, salts."""

_UINT256_MAX = 2**256 - 1


class TypeValidationError(SynodError, ValueError):
    """A value that is not a valid id, address or 32-byte word."""


def _uint256(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeValidationError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if not 1 <= value <= _UINT256_MAX:
        raise TypeValidationError(f"{what} must be in 1..2**256-1 (ids start at 1), got {value}")
    return value


def batch_id_of(value: object) -> BatchId:
    """Validate a batch id (a positive uint256)."""
    return BatchId(_uint256(value, "batch id"))


def job_id_of(value: object) -> JobId:
    """Validate a job id (a positive uint256)."""
    return JobId(_uint256(value, "job id"))


@dataclass(frozen=True, slots=True, order=True)
class TaskRef:
    """One task (one input row) in protocol v2: row ``row`` (0-based) of batch ``batch_id``.

    A task has no id of its own on chain: the batch is the unit of settlement, and a task is
    addressed by its batch and its index in the batch (the byte ``seat * rows + row`` of a score
    vector, the entry ``row`` of a node's revealed digests). Its index in the job is
    ``BatchView.firstRow + row``. Raises :class:`TypeValidationError` for a bad batch id or a row
    outside 0..255 (``MAX_BATCH_SIZE`` is 256).
    """

    batch_id: BatchId
    row: int

    def __post_init__(self) -> None:
        batch_id_of(self.batch_id)
        if isinstance(self.row, bool) or not isinstance(self.row, int) or not 0 <= self.row < 256:
            raise TypeValidationError(f"row index must be an int in 0..255, got {self.row!r}")


def address_of(value: object) -> Address:
    """Validate a 20-byte hex address (any case) and return it checksummed."""
    if not isinstance(value, str) or not value.startswith("0x") or not is_hex_address(value):
        raise TypeValidationError(f"not a 0x-prefixed 20-byte hex address: {value!r}")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise TypeValidationError(f"mixed-case address with a wrong EIP-55 checksum: {value!r}")
    return Address(to_checksum_address(value))


def bytes32_of(value: object) -> Bytes32:
    """Validate exactly 32 bytes, given as bytes or 0x-prefixed hex."""
    if isinstance(value, str):
        if not (value.startswith("0x") and is_hex(value) and len(value) == 66):
            raise TypeValidationError(f"not 0x-prefixed 32-byte hex: {value!r}")
        return Bytes32(bytes.fromhex(value[2:]))
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) != 32:
            raise TypeValidationError(f"expected 32 bytes, got {len(raw)}: 0x{raw.hex()}")
        return Bytes32(raw)
    raise TypeValidationError(f"not bytes or hex: {type(value).__name__} {value!r}")


def hex32(value: bytes) -> str:
    """32 bytes as 0x-prefixed lowercase hex (for logs and JSON)."""
    return "0x" + bytes32_of(value).hex()
