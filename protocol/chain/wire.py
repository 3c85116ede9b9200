"""The JSON-RPC shapes Synod reads (blocks, logs, receipts) as validated pydantic models.

Quantities arrive as ``0x``-hex strings and data as ``0x``-hex bytes (Ethereum JSON-RPC spec,
https://ethereum.org/en/developers/docs/apis/json-rpc/#hex-encoding); the models turn them into
``int`` and ``bytes`` once, at the edge, and reject anything else (a malformed reply from a hostile
endpoint is a :class:`pydantic.ValidationError`, which the client reports as an ``RpcError``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SkipValidation

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
    if not isinstance(value, str):
        raise ValueError(f"expected a 0x-hex address, got {value!r}")
    return _checked_address(value)


@lru_cache(maxsize=4096)
def _checked_address(value: str) -> Address:
    # cached: checksumming costs a keccak, and a log stream repeats a handful of addresses
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


M = TypeVar("M", bound=BaseModel)


def construct_checked(cls: type[M], values: dict[str, Any]) -> M:
    """An instance of ``cls`` from ``values`` that were ALREADY validated into the exact field
    types (every field given, by field name). It is what pydantic's ``model_construct`` does
    (pydantic 2.x: ``__dict__`` + fields set, no extra, no private), minus its per-field default
    handling: a third of the cost, for the watcher's hot path. Anything else uses
    ``model_validate``."""
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class BlockHeader(_Wire):
    """The fields of ``eth_getBlockBy*`` Synod uses."""

    number: Quantity
    hash: Hash32
    parent_hash: Hash32 = Field(alias="parentHash")
    timestamp: Quantity
    base_fee_per_gas: Quantity | None = Field(default=None, alias="baseFeePerGas")


class RawLog(NamedTuple):
    """One entry of ``eth_getLogs`` / a receipt's ``logs`` (``removed`` true after a reorg).

    An immutable named tuple rather than a pydantic model: the watcher builds thousands per reply
    and a tuple is the cheapest immutable record to build; :meth:`from_rpc` validates every field
    by hand as strictly as a model would (it is the constructor for untrusted input;
    ``model_validate`` is its alias for symmetry).
    """

    address: Address
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    log_index: int
    removed: bool = False

    @property
    def position(self) -> tuple[int, int]:
        """``(block_number, log_index)``: the chain's order of logs."""
        return (self.block_number, self.log_index)

    @classmethod
    def from_rpc(cls, raw: Any) -> RawLog:
        """The same validation as ``model_validate`` written out by hand, several times faster
        (the watcher's hot path: thousands of logs per reply). Raises ``ValueError`` on bad input."""
        if not isinstance(raw, dict):
            raise ValueError(f"a log must be an object, got {type(raw).__name__}")
        try:
            topics = raw["topics"]
            removed = raw.get("removed", False)
            if not isinstance(topics, list) or not isinstance(removed, bool):
                raise ValueError("topics must be a list and removed a bool")
            words = []
            for topic in topics:
                if type(topic) is not str or len(topic) != 66 or topic[:2] != "0x":
                    raise ValueError(f"a topic must be 32 bytes of 0x-hex, got {topic!r:.80}")
                words.append(bytes.fromhex(topic[2:]))
            block_hash, tx_hash, data = raw["blockHash"], raw["transactionHash"], raw["data"]
            if type(block_hash) is not str or len(block_hash) != 66 or block_hash[:2] != "0x":
                raise ValueError(f"blockHash must be 32 bytes of 0x-hex, got {block_hash!r:.80}")
            if type(tx_hash) is not str or len(tx_hash) != 66 or tx_hash[:2] != "0x":
                raise ValueError(f"transactionHash must be 32 bytes of 0x-hex, got {tx_hash!r:.80}")
            if type(data) is not str or data[:2] != "0x":
                raise ValueError(f"data must be 0x-hex, got {data!r:.80}")
            return cls(
                _address(raw["address"]),
                tuple(words),
                bytes.fromhex(data[2:]),
                _quantity(raw["blockNumber"]),
                bytes.fromhex(block_hash[2:]),
                bytes.fromhex(tx_hash[2:]),
                _quantity(raw["logIndex"]),
                removed,
            )
        except KeyError as exc:
            raise ValueError(f"log without {exc.args[0]}") from None

    @classmethod
    def model_validate(cls, raw: Any) -> RawLog:
        """Alias of :meth:`from_rpc`."""
        return cls.from_rpc(raw)


def _logs(value: Any) -> tuple[RawLog, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError("logs must be a list")
    return tuple(v if isinstance(v, RawLog) else RawLog.from_rpc(v) for v in value)


class WireReceipt(_Wire):
    """The fields of ``eth_getTransactionReceipt`` Synod uses."""

    transaction_hash: Hash32 = Field(alias="transactionHash")
    block_number: Quantity = Field(alias="blockNumber")
    block_hash: Hash32 = Field(alias="blockHash")
    status: Quantity
    gas_used: Quantity = Field(alias="gasUsed")
    effective_gas_price: Quantity | None = Field(default=None, alias="effectiveGasPrice")
    contract_address: WireAddress | None = Field(default=None, alias="contractAddress")
    logs: Annotated[tuple[RawLog, ...], SkipValidation, BeforeValidator(_logs)] = ()
