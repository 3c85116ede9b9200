"""Typed calls to StakeRegistry and DevnetToken over the contracts facade."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protocol.chain.contracts import SynodContracts
from protocol.chain.models import Participant, Role, view_value
from protocol.chain.rpc import BlockRef
from protocol.chain.sender import Receipt, TxSender
from protocol.types import Address, address_of

__all__ = ["Registry", "Role"]


class Registry:
    """Staking, registration and the devnet token."""

    def __init__(self, chain: SynodContracts) -> None:
        self.chain = chain
        self._fns = chain.registry.functions

    def _view(self, name: str, block: BlockRef, *args: Any) -> Any:
        return view_value("StakeRegistry", name, self.chain.view("StakeRegistry", name, args, block))

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

    def begin_unbonding(self, sender: TxSender) -> Receipt:
        """Stop taking new work; ``withdraw`` is allowed after the delay and once no seat is open."""
        return sender.transact(self._fns.beginUnbonding(), label="beginUnbonding")

    def withdraw(self, sender: TxSender) -> Receipt:
        """Withdraw the whole remaining stake (``RegistrySeatsOpen`` while a batch still holds a seat)."""
        return sender.transact(self._fns.withdraw(), label="withdraw")

    def participant(self, account: str, block: BlockRef) -> Participant:
        """The registration record of ``account``."""
        result: Participant = self._view("participant", block, address_of(account))
        return result

    def min_stake(self, role: Role, block: BlockRef) -> int:
        """The minimum stake of ``role`` (node or validator)."""
        return int(self._view("minNodeStake" if role is Role.NODE else "minValidatorStake", block))

    def slash_amount(self, role: Role, block: BlockRef) -> int:
        """What one misconduct costs a participant of ``role``."""
        return int(self._view("slashAmount", block, int(role)))

    def token_balance(self, account: str, block: BlockRef) -> int:
        """The ERC-20 balance of ``account``."""
        return int(self.chain.read(self.chain.token.functions.balanceOf(address_of(account)), block))

    def treasury(self, block: BlockRef) -> tuple[Address, int]:
        """The treasury address and the slashed tokens not yet swept to it."""
        address: Address = self._view("treasury", block)
        return address, int(self._view("treasuryBalance", block))

    def total_staked(self, block: BlockRef) -> int:
        """Sum of all stakes held by the registry."""
        return int(self._view("totalStaked", block))
