"""Shared helpers of the chain tests: forge artifacts, deploying from them, Anvil cheat calls.

Contracts that will not change under Protocol v2 are used on purpose: DevnetToken (ERC-20
Transfer/Approval) and tests/contracts/utils/EventSpammer.sol (many Transfers per transaction).
Deployment sends the artifact's creation bytecode with ``eth_sendTransaction`` from Anvil's
unlocked dev account 0 (no deploy script needed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from protocol.chain.aio import AsyncRpc
from protocol.chain.events import EventCatalog, ViewDecoder
from protocol.chain.wire import WireReceipt, hex_data, hex_quantity
from protocol.types import Address, address_of
from scripts.devnet import ROOT

DEPLOYER = address_of("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266")
"""Anvil dev account 0 (unlocked on Anvil: ``eth_sendTransaction`` works from it)."""

OTHER = address_of("0x70997970c51812dc3a010c7d01b50e0d17dc79c8")
"""Anvil dev account 1."""


def artifact(name: str, root: Path = ROOT) -> dict[str, Any]:
    """forge's artifact of contract ``name`` (``out/<name>.sol/<name>.json``)."""
    data: dict[str, Any] = json.loads((root / "out" / f"{name}.sol" / f"{name}.json").read_text())
    return data


def abi(name: str) -> list[dict[str, Any]]:
    """The forge ABI of contract ``name``."""
    entries: list[dict[str, Any]] = artifact(name)["abi"]
    return entries


def token_catalog() -> EventCatalog:
    """Typed events of DevnetToken (Transfer, Approval): EventSpammer's Transfer decodes too."""
    return EventCatalog({"DevnetToken": abi("DevnetToken")})


async def wait_receipt(rpc: AsyncRpc, tx_hash: str, patience: float = 10.0) -> WireReceipt:
    """Poll for a receipt (Anvil mines at once with automine on)."""
    with trio.fail_after(patience):
        while True:
            receipt = await rpc.receipt(bytes.fromhex(tx_hash[2:]))
            if receipt is not None:
                return receipt
            await trio.sleep(0.02)


async def send_tx(rpc: AsyncRpc, to: Address | None, data: bytes, sender: Address = DEPLOYER) -> str:
    """``eth_sendTransaction`` from an unlocked Anvil account; returns the hash (not waited)."""
    tx: dict[str, Any] = {"from": sender, "data": hex_data(data)}
    if to is not None:
        tx["to"] = to
    result: str = await rpc.request("eth_sendTransaction", [tx])
    return result


async def deploy(rpc: AsyncRpc, name: str) -> Address:
    """Deploy contract ``name`` from its forge artifact; returns its address."""
    bytecode = artifact(name)["bytecode"]["object"]
    receipt = await wait_receipt(rpc, await send_tx(rpc, None, bytes.fromhex(bytecode.removeprefix("0x"))))
    assert receipt.status == 1 and receipt.contract_address is not None
    return receipt.contract_address


async def mint(rpc: AsyncRpc, token: Address, to: Address, value: int, wait: bool = True) -> str:
    """DevnetToken.mint(to, value): one Transfer(0x0, to, value)."""
    data = ViewDecoder(abi("DevnetToken")).encode("mint", to, value)
    tx_hash = await send_tx(rpc, token, data)
    if wait:
        await wait_receipt(rpc, tx_hash)
    return tx_hash


async def spam(rpc: AsyncRpc, spammer: Address, first_value: int, count: int, wait: bool = True) -> str:
    """EventSpammer.spam: ``count`` Transfers with values ``first_value``..."""
    data = ViewDecoder(abi("EventSpammer")).encode("spam", OTHER, first_value, count)
    tx_hash = await send_tx(rpc, spammer, data)
    if wait:
        await wait_receipt(rpc, tx_hash)
    return tx_hash


async def mine(rpc: AsyncRpc, blocks: int = 1) -> None:
    """Mine ``blocks`` empty blocks."""
    await rpc.request("anvil_mine", [hex_quantity(blocks)])


async def automine(rpc: AsyncRpc, on: bool) -> None:
    """Anvil's automine on or off."""
    await rpc.request("evm_setAutomine", [on])


async def canonical_values(rpc: AsyncRpc, addresses: Sequence[Address], to_block: int) -> list[int]:
    """The ``value`` of every Transfer of ``addresses`` in blocks 0..``to_block`` straight from
    Anvil (no watcher), in chain order: what a watcher must have delivered exactly once."""
    catalog = token_catalog()
    logs = await rpc.get_logs(0, to_block, addresses, [[catalog["Transfer"].topic]])
    values: list[int] = []
    for entry in sorted(logs, key=lambda e: e.position):
        event = catalog.decode(entry)
        assert event is not None
        values.append(int(event.value))  # type: ignore[attr-defined]
    return values
