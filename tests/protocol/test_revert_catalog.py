"""RevertCatalog: custom errors from an ABI become exceptions, decoded with their argument values."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from protocol.chain.errors import ChainError, ContractRevert, DeploymentError, RevertCatalog, UnknownRevert
from protocol.errors import SynodError

pytestmark = pytest.mark.unit

ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "post", "inputs": [], "outputs": [], "stateMutability": "nonpayable"},
    {
        "type": "error",
        "name": "MarketWrongPhase",
        "inputs": [
            {"name": "taskId", "type": "uint256", "internalType": "uint256"},
            {"name": "actual", "type": "uint8", "internalType": "enum Phase"},
            {"name": "who", "type": "address", "internalType": "address"},
        ],
    },
    {"type": "error", "name": "MarketZeroBounty", "inputs": []},
    {
        "type": "error",
        "name": "MarketBadReveal",
        "inputs": [
            {"name": "expected", "type": "bytes32", "internalType": "bytes32"},
            {"name": "scores", "type": "uint8[]", "internalType": "uint8[]"},
        ],
    },
]
WHO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def test_one_subclass_per_error_named_from_the_abi() -> None:
    catalog = RevertCatalog({"TaskMarket": ABI})
    assert {"MarketWrongPhase", "MarketZeroBounty", "MarketBadReveal", "Error", "Panic"} <= catalog.names
    cls = catalog.MarketWrongPhase
    assert cls is catalog["MarketWrongPhase"]
    assert issubclass(cls, ContractRevert) and issubclass(cls, ChainError) and issubclass(cls, SynodError)
    assert cls.__name__ == "MarketWrongPhase"
    assert cls.signature == "MarketWrongPhase(uint256,uint8,address)"
    assert cls.selector == _selector("MarketWrongPhase(uint256,uint8,address)")


def test_decode_gives_the_values_by_name() -> None:
    catalog = RevertCatalog({"TaskMarket": ABI})
    data = _selector("MarketWrongPhase(uint256,uint8,address)") + encode(
        ["uint256", "uint8", "address"], [42, 3, WHO.lower()]
    )
    exc = catalog.decode(data, "commitResult")
    assert isinstance(exc, catalog.MarketWrongPhase)
    assert exc.name == "MarketWrongPhase"
    assert exc.args == {"taskId": 42, "actual": 3, "who": WHO}
    assert exc.function == "commitResult" and exc.data == data
    assert str(exc) == f"MarketWrongPhase(taskId=42, actual=3, who='{WHO}') in commitResult"
    with pytest.raises(catalog.MarketWrongPhase):
        raise exc


def test_decode_arrays_bytes_and_no_args() -> None:
    catalog = RevertCatalog({"TaskMarket": ABI})
    word = bytes(range(32))
    data = _selector("MarketBadReveal(bytes32,uint8[])") + encode(["bytes32", "uint8[]"], [word, [1, 2]])
    exc = catalog.decode(data)
    assert exc.args == {"expected": word, "scores": (1, 2)}
    empty = catalog.decode(_selector("MarketZeroBounty()"))
    assert isinstance(empty, catalog.MarketZeroBounty) and empty.args == {}


def test_builtin_error_and_panic() -> None:
    catalog = RevertCatalog({})
    err = catalog.decode(_selector("Error(string)") + encode(["string"], ["nope"]))
    assert err.name == "Error" and err.args == {"message": "nope"}
    panic = catalog.decode(_selector("Panic(uint256)") + encode(["uint256"], [0x11]))
    assert isinstance(panic, catalog.Panic) and panic.args == {"code": 0x11}


def test_unknown_and_malformed_data() -> None:
    catalog = RevertCatalog({"TaskMarket": ABI})
    unknown = catalog.decode(b"\xde\xad\xbe\xef")
    assert isinstance(unknown, UnknownRevert) and unknown.args == {"data": b"\xde\xad\xbe\xef"}
    truncated = catalog.decode(_selector("MarketWrongPhase(uint256,uint8,address)") + b"\x00" * 5)
    assert isinstance(truncated, UnknownRevert)
    with pytest.raises(AttributeError, match="NoSuchError"):
        _ = catalog.NoSuchError
    with pytest.raises(KeyError, match="NoSuchError"):
        _ = catalog["NoSuchError"]


def test_shared_errors_dedupe_and_ambiguous_names_refused() -> None:
    twice = RevertCatalog({"A": ABI, "B": ABI})
    assert twice.MarketZeroBounty.signature == "MarketZeroBounty()"
    clash: list[dict[str, Any]] = [
        {"type": "error", "name": "MarketZeroBounty", "inputs": [{"name": "x", "type": "uint256"}]}
    ]
    with pytest.raises(DeploymentError, match="two signatures"):
        RevertCatalog({"A": ABI, "B": clash})
