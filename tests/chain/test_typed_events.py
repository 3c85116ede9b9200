"""Typed events and views generated from forge's ABIs, checked against web3's own decoding of
real logs from Anvil and against hand-declared models."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import event_abi_to_log_topic
from pydantic import Field
from web3 import Web3

from protocol.chain.aio import AsyncRpc
from protocol.chain.errors import DeploymentError
from protocol.chain.events import ChainEvent, EventCatalog, EventDecodeError, ViewDecoder
from protocol.chain.wire import RawLog
from protocol.types import Address
from tests.chain.helpers import DEPLOYER, OTHER, abi, deploy, mint, send_tx

CONTRACTS = ("DevnetToken", "StakeRegistry", "TaskMarket", "EventSpammer")


class Transfer(ChainEvent):
    """A hand-declared model, checked against the ABI by the catalog."""

    __event_signature__ = "Transfer(address,address,uint256)"
    from_: Address = Field(alias="from")
    to: Address
    value: int


@pytest.mark.unit
def test_every_abi_event_gets_a_model_with_the_abis_topic(built: Path) -> None:
    abis = {name: abi(name) for name in CONTRACTS}
    catalog = EventCatalog(abis)
    expected = {
        entry["name"]: bytes(event_abi_to_log_topic(entry))  # type: ignore[arg-type]
        for entries in abis.values()
        for entry in entries
        if entry["type"] == "event" and not entry.get("anonymous")
    }
    assert catalog.names == frozenset(expected)
    for name, topic in expected.items():
        model = catalog[name]
        assert issubclass(model, ChainEvent)
        assert model.topic == topic and model.event_name == name
    assert set(catalog.topics) == set(expected.values())
    fields = catalog["Transfer"].model_fields
    assert [(n, f.alias) for n, f in fields.items() if n not in ChainEvent.model_fields] == [
        ("from_", "from"),
        ("to", "to"),
        ("value", "value"),
    ]


@pytest.mark.unit
def test_declared_models_are_checked_against_the_abi(built: Path) -> None:
    catalog = EventCatalog({"DevnetToken": abi("DevnetToken")}, declared=[Transfer])
    assert catalog["Transfer"] is Transfer

    class WrongTransfer(ChainEvent):
        __event_signature__ = "Transfer(address,address,uint256)"
        from_: Address = Field(alias="from")
        to: Address
        value: str  # the ABI says uint256

    with pytest.raises(DeploymentError, match="does not match"):
        EventCatalog({"DevnetToken": abi("DevnetToken")}, declared=[WrongTransfer])

    class Missing(ChainEvent):
        __event_signature__ = "Nope(uint256)"

    with pytest.raises(DeploymentError, match="not in the ABIs"):
        EventCatalog({"DevnetToken": abi("DevnetToken")}, declared=[Missing])


@pytest.mark.unit
def test_malformed_logs_are_refused_and_unknown_topics_skipped(built: Path) -> None:
    catalog = EventCatalog({"DevnetToken": abi("DevnetToken")})
    base = {
        "address": DEPLOYER,
        "blockNumber": "0x1",
        "blockHash": "0x" + "11" * 32,
        "transactionHash": "0x" + "22" * 32,
        "logIndex": "0x0",
    }
    topic = "0x" + catalog["Transfer"].topic.hex()
    word = "0x" + "00" * 12 + DEPLOYER[2:].lower()
    short = RawLog.model_validate({**base, "topics": [topic, word], "data": "0x"})
    with pytest.raises(EventDecodeError, match="topics"):
        catalog.decode(short)
    bad_data = RawLog.model_validate({**base, "topics": [topic, word, word], "data": "0x01"})
    with pytest.raises(EventDecodeError, match="undecodable"):
        catalog.decode(bad_data)
    unknown = RawLog.model_validate({**base, "topics": ["0x" + "33" * 32], "data": "0x"})
    assert catalog.decode(unknown) is None
    good = RawLog.model_validate(
        {**base, "topics": [topic, word, word], "data": "0x" + abi_encode(["uint256"], [5]).hex()}
    )
    event = catalog.decode(good)
    assert event is not None and event.args() == {"from": DEPLOYER, "to": DEPLOYER, "value": 5}
    # the fast path builds exactly what pydantic's validation builds
    assert event == type(event).model_validate(event.model_dump())
    # like eth_abi's strict mode: an address word with non-zero padding is refused
    dirty = "0x" + "01" + "00" * 11 + DEPLOYER[2:].lower()
    padded = RawLog.model_validate(
        {**base, "topics": [topic, dirty, word], "data": "0x" + abi_encode(["uint256"], [5]).hex()}
    )
    with pytest.raises(EventDecodeError, match="padding"):
        catalog.decode(padded)


@pytest.mark.integration
def test_real_logs_decode_like_web3_does(anvil_url: str) -> None:
    async def scenario() -> tuple[list[RawLog], Address]:
        async with AsyncRpc.open(anvil_url, 5.0) as rpc:
            token = await deploy(rpc, "DevnetToken")
            await mint(rpc, token, OTHER, 12345)
            await send_tx(
                rpc, token, ViewDecoder(abi("DevnetToken")).encode("approve", OTHER, 2**255), DEPLOYER
            )
            await mint(rpc, token, DEPLOYER, 1)
            head = await rpc.block_number()
            return await rpc.get_logs(0, head, (token,)), token

    logs, token = trio.run(scenario)
    catalog = EventCatalog({"DevnetToken": abi("DevnetToken")}, declared=[Transfer])
    contract = Web3().eth.contract(address=token, abi=abi("DevnetToken"))
    events = [catalog.decode(entry) for entry in logs]
    assert [type(e).__name__ for e in events] == ["Transfer", "Approval", "Transfer"]
    for entry, event in zip(logs, events, strict=True):
        assert event is not None
        name = type(event).__name__
        reference = contract.events[name]().process_log(
            {
                "address": entry.address,
                "topics": list(entry.topics),
                "data": entry.data,
                "blockNumber": entry.block_number,
                "blockHash": entry.block_hash,
                "transactionHash": entry.transaction_hash,
                "logIndex": entry.log_index,
                "transactionIndex": 0,
            }
        )
        assert event.args() == dict(reference["args"])
        assert event.position == (entry.block_number, entry.log_index)
        assert event.block_hash == entry.block_hash
    first = events[0]
    assert isinstance(first, Transfer) and first.value == 12345 and first.to == OTHER
    assert first.from_ == "0x0000000000000000000000000000000000000000"
    assert events[1].args()["value"] == 2**255  # type: ignore[union-attr]


@pytest.mark.unit
def test_views_decode_into_typed_models(built: Path) -> None:
    views = ViewDecoder(abi("DevnetToken"), "DevnetToken")
    assert views.encode("balanceOf", OTHER)[:4] == bytes.fromhex("70a08231")
    balance = views.decode("balanceOf", abi_encode(["uint256"], [77]))
    assert balance.value == 77  # type: ignore[attr-defined]
    name = views.decode("name", abi_encode(["string"], ["Synod"]))
    assert name.model_dump() == {"value": "Synod"}
    with pytest.raises(EventDecodeError):
        views.decode("balanceOf", b"\x01")
    with pytest.raises(KeyError):
        views.encode("nope")
