"""The JSON-RPC shapes Synod reads (blocks, logs, receipts) as validated pydantic models.

Quantities arrive as ``0x``-hex strings and data as ``0x``-hex bytes (Ethereum JSON-RPC spec,
https://ethereum.org/en/developers/docs/apis/json-rpc/#hex-encoding); the models turn them into
``int`` and ``bytes`` once, at the edge, and reject anything else (a malformed reply from a hostile
endpoint is a :class:`pydantic.ValidationError`, which the client reports as an ``RpcError``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from protocol.types import Address, TypeValidationError, address_of


def _quantity(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a quantity, not a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return int(value, 16)
    raise ValueError(f"expected a 0x-hex quantity, got {value!r}")


def _data(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return bytes.fromhex(value[2:])
    raise ValueError(f"expected 0x-hex data, got {value!r}")


def _hash32(value: Any) -> bytes:
    data = _data(value)
    if len(data) != 32:
        raise ValueError(f"expected 32 bytes, got {len(data)}")
    return data


def _address(value: Any) -> Address:
    try:
        return address_of(value)
    except TypeValidationError as exc:
        raise ValueError(str(exc)) from None


Quantity = Annotated[int, BeforeValidator(_quantity)]
"""An unsigned integer sent as ``0x``-hex."""
HexData = Annotated[bytes, BeforeValidator(_data)]
"""Bytes sent as ``0x``-hex."""
Hash32 = Annotated[bytes, BeforeValidator(_hash32)]
"""A 32-byte hash sent as ``0x``-hex."""
WireAddress = Annotated[Address, BeforeValidator(_address)]
"""An address in any 0x-hex spelling, checksummed."""


def hex_quantity(value: int) -> str:
    """``value`` as a JSON-RPC quantity (``0x``-hex, no leading zeros)."""
    return hex(value)


def hex_data(value: bytes) -> str:
    """``value`` as JSON-RPC data (``0x``-hex)."""
    return "0x" + value.hex()


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class BlockHeader(_Wire):
    """The fields of ``eth_getBlockBy*`` Synod uses."""

    number: Quantity
    hash: Hash32
    parent_hash: Hash32 = Field(alias="parentHash")
    timestamp: Quantity
    base_fee_per_gas: Quantity | None = Field(default=None, alias="baseFeePerGas")


class RawLog(_Wire):
    """One entry of ``eth_getLogs`` / a receipt's ``logs`` (``removed`` true after a reorg)."""

    address: WireAddress
    topics: tuple[Hash32, ...]
    data: HexData
    block_number: Quantity = Field(alias="blockNumber")
    block_hash: Hash32 = Field(alias="blockHash")
    transaction_hash: Hash32 = Field(alias="transactionHash")
    log_index: Quantity = Field(alias="logIndex")
    removed: bool = False

    @property
    def position(self) -> tuple[int, int]:
        """``(block_number, log_index)``: the chain's order of logs."""
        return (self.block_number, self.log_index)


class WireReceipt(_Wire):
    """The fields of ``eth_getTransactionReceipt`` Synod uses."""

    transaction_hash: Hash32 = Field(alias="transactionHash")
    block_number: Quantity = Field(alias="blockNumber")
    block_hash: Hash32 = Field(alias="blockHash")
    status: Quantity
    gas_used: Quantity = Field(alias="gasUsed")
    effective_gas_price: Quantity | None = Field(default=None, alias="effectiveGasPrice")
    contract_address: WireAddress | None = Field(default=None, alias="contractAddress")
    logs: tuple[RawLog, ...] = ()
