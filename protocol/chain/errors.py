"""Chain errors, and the contracts' custom errors as Python exceptions built from the ABIs.

::

    SynodError
    └── ChainError                 anything that went wrong talking to the chain
        ├── RpcError               a JSON-RPC request failed after bounded retries
        │   ├── RpcTimeout         no reply within the request timeout (or a hung endpoint)
        │   └── JsonRpcError       the node answered with a JSON-RPC error object (``.code``)
        │       ├── NonceTooLow    the nonce was already used: resynchronise from the chain
        │       └── RangeTooLarge  an ``eth_getLogs`` range/result limit: ask for fewer blocks
        ├── DeploymentError        a deployment file or forge artifact is missing or inconsistent
        ├── SignerError            a keystore that cannot be opened, a dev key off the devnet
        ├── TransactionTimeout     no receipt in time, after every attempt
        ├── TransactionReverted    mined with status 0 (the simulation had passed)
        └── ContractRevert         revert data decoded against the ABIs: ``.name``, ``.args`` dict
            ├── <one subclass per custom error in the ABIs, e.g. ``TaskMarketZeroBounty``>
            ├── Error / Panic      Solidity's built-in ``Error(string)`` and ``Panic(uint256)``
            └── UnknownRevert      revert data that matches no known error

The per-error subclasses are created by :class:`RevertCatalog` from forge's ABI output (never a
selector by hand) and are reachable by name: ``except catalog.TaskWrongPhase as exc``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import (
    abi_to_signature,
    function_signature_to_4byte_selector,
    get_abi_input_names,
    get_abi_input_types,
)
from eth_utils.address import to_checksum_address

from protocol.errors import SynodError


class ChainError(SynodError):
    """RPC, transaction, deployment and contract errors."""


class RpcError(ChainError):
    """A JSON-RPC request failed (connection, timeout, node error) after bounded retries."""


class RpcTimeout(RpcError):
    """No reply within the request timeout: the endpoint is down, hung or too slow."""


class JsonRpcError(RpcError):
    """The node answered with a JSON-RPC error object.

    ``code`` and ``rpc_message`` are the error object's fields, ``data`` its raw ``data`` member
    (revert data for ``execution reverted`` when it is hex), ``method`` the request's method.
    """

    def __init__(self, method: str, code: int, rpc_message: str, data: Any = None) -> None:
        super().__init__(f"{method}: node error {code}: {rpc_message}")
        self.method = method
        self.code = code
        self.rpc_message = rpc_message
        self.data = data


class NonceTooLow(JsonRpcError):
    """The node refused a transaction whose nonce is already used ("nonce too low").

    The sender's local nonce is stale (another process used the key, or an earlier transaction
    of ours was mined): read the account's nonce from the chain again before signing anew.
    """


class RangeTooLarge(JsonRpcError):
    """The node refused an ``eth_getLogs`` query as too large (block range or result count)."""


class DeploymentError(ChainError):
    """A deployment file or forge artifact is missing, malformed or for another chain."""


class SignerError(ChainError):
    """A key that cannot be used: unreadable keystore, wrong password, dev key off the devnet."""


class TransactionTimeout(ChainError):
    """No receipt for a sent transaction within the timeout, after every attempt.

    The outcome is unknown: the node may still mine ``tx_hash`` later, so check the chain (the
    handlers are idempotent) before doing the same thing again.
    """

    def __init__(self, message: str, tx_hash: str) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class TransactionReverted(ChainError):
    """A transaction that passed simulation but reverted when mined (state moved in between).

    ``revert`` is the custom error the replay at the mined block decoded (``None`` when the
    replay did not revert, e.g. a later transaction of the same block changed the state back),
    ``block_number`` the block it was mined in.
    """

    def __init__(
        self,
        message: str,
        tx_hash: str,
        gas_used: int,
        revert: ContractRevert | None = None,
        block_number: int | None = None,
    ) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash
        self.gas_used = gas_used
        self.revert = revert
        self.block_number = block_number


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def _normalise(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type == "address[]":
        return tuple(to_checksum_address(v) for v in value)
    return value


class ContractRevert(ChainError):
    """A revert decoded against the contracts' ABIs.

    ``name`` is the Solidity error's name, ``args`` its arguments by parameter name (addresses
    checksummed, ``bytesN`` as bytes), ``data`` the raw revert data, ``function`` the contract
    function that was called, when known.
    """

    name: ClassVar[str] = "ContractRevert"
    signature: ClassVar[str] = ""
    selector: ClassVar[bytes] = b""
    input_names: ClassVar[tuple[str, ...]] = ()
    input_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, fields: Mapping[str, Any], data: bytes, function: str | None = None) -> None:
        self.fields = dict(fields)
        self.data = data
        self.function = function
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.fields.items())
        where = f" in {function}" if function else ""
        super().__init__(f"{self.name}({shown}){where}")

    @property
    def args(self) -> dict[str, Any]:  # type: ignore[override]
        """The error's arguments by parameter name (BaseException's tuple stays the message)."""
        return self.fields


class UnknownRevert(ContractRevert):
    """Revert data that matches no error of the ABIs (``args == {"data": <bytes>}``)."""

    name: ClassVar[str] = "UnknownRevert"


_BUILTIN_ERRORS: tuple[dict[str, Any], ...] = (
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
)


class RevertCatalog:
    """Every custom error of a set of ABIs as a :class:`ContractRevert` subclass.

    Errors that several ABIs share (same signature) map to one class. Two different errors with
    one name would be ambiguous by name and raise :class:`DeploymentError`. The classes belong to
    their catalog (one per :class:`~protocol.chain.contracts.SynodContracts`): catch them through
    that catalog, or catch :class:`ContractRevert` and look at ``.name``.
    """

    def __init__(self, abis: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        self._by_selector: dict[bytes, type[ContractRevert]] = {}
        self._by_name: dict[str, type[ContractRevert]] = {}
        entries: list[tuple[str, Mapping[str, Any]]] = [("builtin", e) for e in _BUILTIN_ERRORS]
        for contract, abi in abis.items():
            entries += [(contract, e) for e in abi if e.get("type") == "error"]
        for contract, entry in entries:
            signature = abi_to_signature(entry)  # type: ignore[arg-type]
            selector = function_signature_to_4byte_selector(signature)
            if selector in self._by_selector:
                continue
            name = str(entry["name"])
            if name in self._by_name:
                raise DeploymentError(
                    f"error name {name} has two signatures: {self._by_name[name].signature} and "
                    f"{signature} ({contract}); cannot map it by name"
                )
            cls = type(
                name,
                (ContractRevert,),
                {
                    "__module__": __name__,
                    "__qualname__": name,
                    "__doc__": f"Custom error ``{signature}`` (first seen in {contract}).",
                    "name": name,
                    "signature": signature,
                    "selector": selector,
                    "input_names": tuple(get_abi_input_names(entry)),  # type: ignore[arg-type]
                    "input_types": tuple(get_abi_input_types(entry)),  # type: ignore[arg-type]
                },
            )
            self._by_selector[selector] = cls
            self._by_name[name] = cls

    @property
    def names(self) -> frozenset[str]:
        """The names of every known error."""
        return frozenset(self._by_name)

    def __getitem__(self, name: str) -> type[ContractRevert]:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no custom error named {name!r} in the ABIs") from None

    def __getattr__(self, name: str) -> type[ContractRevert]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._by_name[name]
        except KeyError:
            raise AttributeError(f"no custom error named {name!r} in the ABIs") from None

    def decode(self, data: bytes, function: str | None = None) -> ContractRevert:
        """The exception for raw revert ``data`` (an :class:`UnknownRevert` if nothing matches)."""
        cls = self._by_selector.get(data[:4])
        if cls is None:
            return UnknownRevert({"data": data}, data, function)
        try:
            values = abi_decode(list(cls.input_types), data[4:])
        except Exception:  # eth_abi raises several unrelated types for malformed data
            return UnknownRevert({"data": data}, data, function)
        fields = {
            (n or f"arg{i}"): _normalise(t, v)
            for i, (n, t, v) in enumerate(zip(cls.input_names, cls.input_types, values, strict=True))
        }
        return cls(fields, data, function)
