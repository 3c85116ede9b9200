"""Typed calls to StakeRegistry and DevnetToken over the contracts facade."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any

from protocol.chain.contracts import SynodContracts
from protocol.chain.rpc import BlockRef
from protocol.chain.sender import Receipt, TxSender
from protocol.types import Address, address_of


class Role(IntEnum):
    """``IStakeRegistry.Role`` (the ABI carries an enum as its uint8 value only)."""

    NONE = 0
    NODE = 1
    VALIDATOR = 2


class Registry:
    """Staking, registration and the devnet token."""

    def __init__(self, chain: SynodContracts) -> None:
        self.chain = chain
        self._fns = chain.registry.functions

    def mint(self, sender: TxSender, to: str, amount: int) -> Receipt:
        """Mint devnet tokens (DevnetToken only: anyone may mint on a devnet)."""
        return sender.transact(self.chain.token.functions.mint(address_of(to), amount), label="mint")

    def register(
        self, sender: TxSender, role: Role, stake: int, models: Sequence[bytes], p2p_address: bytes
    ) -> list[Receipt]:
        """Approve the registry for ``stake`` if needed, then register; returns every receipt."""
        receipts: list[Receipt] = []
        token = self.chain.token.functions
        spender = self.chain.registry.address
        allowance = int(self.chain.read(token.allowance(sender.address, spender), self.chain.head(0)))
        if allowance < stake:
            receipts.append(sender.transact(token.approve(spender, stake), label="approve"))
        fn = self._fns.register(int(role), stake, list(models), p2p_address)
        receipts.append(sender.transact(fn, label=f"register{role.name.title()}"))
        return receipts

    def participant(self, account: str, block: BlockRef) -> Any:
        """The registration record (a named tuple: ``.stake``, ``.role``, ``.unbondingEnd``, ...)."""
        return self.chain.read(self._fns.participant(address_of(account)), block)

    def min_stake(self, role: Role, block: BlockRef) -> int:
        fn = self._fns.minNodeStake() if role is Role.NODE else self._fns.minValidatorStake()
        return int(self.chain.read(fn, block))

    def token_balance(self, account: str, block: BlockRef) -> int:
        return int(self.chain.read(self.chain.token.functions.balanceOf(address_of(account)), block))

    def treasury(self, block: BlockRef) -> tuple[Address, int]:
        """The treasury address and the slashed tokens not yet swept to it."""
        address = address_of(self.chain.read(self._fns.treasury(), block))
        return address, int(self.chain.read(self._fns.treasuryBalance(), block))
