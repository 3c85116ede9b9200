"""An operator's account on chain, for either role: status, an idempotent register, unbond,
withdraw and claim.

``register`` first builds a :class:`RegisterPlan` from the chain's state at the latest block,
then sends only the transactions that differ from what the operator asked for: ``approve`` (only
when the allowance is short, for exactly what is needed), then ``register`` or ``addStake`` (the
difference), ``setModels``, ``setP2pAddress``. Re-running with the same arguments plans nothing.
Everything that cannot work is refused before a transaction is sent, with a sentence that names
the command to run (:class:`AccountStateError`); a revert the checks did not foresee comes back
as the contract's decoded custom error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from web3.contract.contract import ContractFunction

from protocol.chain.errors import ContractRevert
from protocol.chain.market import model_id
from protocol.chain.registry import Role
from protocol.chain.rpc import BlockRef, translated
from protocol.chain.sender import Receipt, TxSender
from protocol.operator.config import OperatorRole
from protocol.operator.connect import OperatorChain
from protocol.operator.errors import AccountStateError
from protocol.types import Address

CHAIN_ROLE = {OperatorRole.NODE: Role.NODE, OperatorRole.VALIDATOR: Role.VALIDATOR}
"""The ``IStakeRegistry.Role`` of each operator role."""


def when(timestamp: int, now: int) -> str:
    """``2026-11-30 10:00:00 UTC (in 2h 5m)`` for a block timestamp, relative to ``now``."""
    shown = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = timestamp - now
    if delta <= 0:
        return f"{shown} (passed)"
    days, rest = divmod(delta, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    parts += [f"{minutes}m"] if not days else []
    if not days and not hours:
        parts.append(f"{seconds}s")
    return f"{shown} (in {' '.join(parts)})"


class ModelEntry(BaseModel):
    """A model the node serves on chain: its id, and its name when the config lists it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str | None


class AccountStatus(BaseModel):
    """Everything ``status`` shows, read at one block. Amounts are integer base units."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: Address
    role: OperatorRole
    """The role this command manages."""
    registered_as: str
    """``none``, ``node`` or ``validator``: the role held on chain."""
    registration_id: int
    stake: int
    min_stake: int
    under_staked_by: int
    """How far the stake is below the role's minimum (0 when it is not, or not registered)."""
    unbonding: bool
    unbonding_end: int | None
    """Timestamp from which ``withdraw`` works (``None`` when not unbonding)."""
    withdrawable: bool
    models: list[ModelEntry]
    p2p_address: str | None
    claimable: int
    """The TaskMarket balance ``claim`` would pay now."""
    claimed: int
    token_balance: int
    allowance: int
    """What the account lets the registry pull."""
    gas_balance_wei: int
    block_number: int
    block_time: int
    decimals: int
    symbol: str

    @property
    def registered(self) -> bool:
        return self.registered_as != "none"


@dataclass(frozen=True)
class PlannedTx:
    """One transaction of a plan: a label, what it does in words, and the call to send."""

    label: str
    detail: str
    call: Callable[[], ContractFunction]


@dataclass(frozen=True)
class RegisterPlan:
    """What ``register`` will send (nothing when the chain already matches)."""

    status: AccountStatus
    steps: list[PlannedTx] = field(default_factory=list)

    @property
    def noop(self) -> bool:
        return not self.steps


class OperatorAccount:
    """One account of one role on an :class:`OperatorChain` (the address may be read-only)."""

    def __init__(self, op: OperatorChain, address: Address) -> None:
        self.op = op
        self.role = op.config.role
        self.address = address
        self._chain = op.chain
        self._registry = op.chain.registry.functions
        self._token = op.chain.token.functions
        self._market = op.chain.market.functions

    # ------------------------------------------------------------------ reads

    def head(self, latest: bool = False) -> BlockRef:
        """The confirmed head (``chain.confirmations`` behind), or the latest block."""
        return self._chain.head(0 if latest else None)

    def _timestamp(self, block: BlockRef) -> int:
        with translated(self._chain.errors, "eth_getBlockByNumber"):
            return int(self._chain.w3.eth.get_block(block.number)["timestamp"])

    def block_time(self, number: int) -> int:
        """The timestamp of block ``number``."""
        return self._timestamp(BlockRef(number, b""))

    def _gas_balance(self, block: BlockRef) -> int:
        with translated(self._chain.errors, "eth_getBalance"):
            return int(self._chain.w3.eth.get_balance(self.address, block.block_identifier))

    def status(self, block: BlockRef | None = None) -> AccountStatus:
        """The account's registration, balances and claimable reward at ``block`` (default: the
        confirmed head)."""
        ref = block or self.head()
        read = self._chain.read
        record = read(self._registry.participant(self.address), ref)
        on_chain = Role(int(record.role))
        registered_as = {Role.NONE: "none", Role.NODE: "node", Role.VALIDATOR: "validator"}[on_chain]
        stake = int(record.stake)
        min_fn = (
            self._registry.minNodeStake()
            if self.role is OperatorRole.NODE
            else self._registry.minValidatorStake()
        )
        min_stake = int(read(min_fn, ref))
        names: dict[bytes, str] = {bytes(model_id(name)): name for name in self.op.config.models}
        models: list[ModelEntry] = []
        p2p: str | None = None
        if on_chain is not Role.NONE:
            if on_chain is Role.NODE:
                for raw in read(self._registry.modelsOf(self.address), ref):
                    mid = bytes(raw)
                    models.append(ModelEntry(id="0x" + mid.hex(), name=names.get(mid)))
            p2p = bytes(read(self._registry.p2pAddressOf(self.address), ref)).decode("utf-8", "replace")
        now = self._timestamp(ref)
        end = int(record.unbondingEnd)
        return AccountStatus(
            address=self.address,
            role=self.role,
            registered_as=registered_as,
            registration_id=int(record.id),
            stake=stake,
            min_stake=min_stake,
            under_staked_by=max(min_stake - stake, 0) if on_chain is CHAIN_ROLE[self.role] else 0,
            unbonding=end != 0,
            unbonding_end=end or None,
            withdrawable=end != 0 and now >= end,
            models=models,
            p2p_address=p2p,
            claimable=int(read(self._market.balanceOf(self.address), ref)),
            claimed=int(read(self._market.claimedOf(self.address), ref)),
            token_balance=int(read(self._token.balanceOf(self.address), ref)),
            allowance=int(read(self._token.allowance(self.address, self._chain.registry.address), ref)),
            gas_balance_wei=self._gas_balance(ref),
            block_number=ref.number,
            block_time=now,
            decimals=self.op.units.decimals,
            symbol=self.op.units.symbol,
        )

    # ------------------------------------------------------------------ checks

    def _fmt(self, amount: int) -> str:
        return self.op.units.format(amount)

    def _cmd(self, sub: str) -> str:
        return f"`{self.role.command} {sub}`"

    def _require_role(self, status: AccountStatus) -> None:
        if status.registered and status.registered_as != self.role.value:
            other = OperatorRole(status.registered_as)
            raise AccountStateError(
                f"{self.address} is registered as a {other.value}; an address holds one role: manage it "
                f"with `{other.command}`, or use another key for the {self.role.value}"
            )

    def _require_registered(self, status: AccountStatus) -> None:
        self._require_role(status)
        if not status.registered:
            raise AccountStateError(
                f"{self.address} is not registered as a {self.role.value}: run "
                f"{self._cmd('register --stake AMOUNT')} first"
            )

    def _require_funds(self, status: AccountStatus, needed: int, what: str) -> None:
        if status.token_balance < needed:
            raise AccountStateError(
                f"{self.address} holds {self._fmt(status.token_balance)}, "
                f"{self._fmt(needed - status.token_balance)} "
                f"short of the {self._fmt(needed)} {what}: send it tokens first"
            )

    # ------------------------------------------------------------------ register

    def plan_register(self, stake: int, models: Sequence[str], p2p_address: str) -> RegisterPlan:
        """What ``register`` must send so the chain holds ``stake`` (base units), ``models`` and
        ``p2p_address`` for this role. Raises :class:`AccountStateError` for what cannot be done."""
        if self.role is OperatorRole.VALIDATOR and models:
            raise AccountStateError(
                "a validator serves no models: drop --models (and `models` in the config)"
            )
        if self.role is OperatorRole.NODE and not models:
            raise AccountStateError("a node must serve at least one model: pass --models NAME ...")
        status = self.status(self.head(latest=True))
        self._require_role(status)
        if status.unbonding:
            assert status.unbonding_end is not None
            raise AccountStateError(
                f"{self.address} is unbonding (withdrawable from "
                f"{when(status.unbonding_end, status.block_time)}) "
                f"and takes no new stake or work: run {self._cmd('withdraw')} then, and register again"
            )
        ids = [model_id(name) for name in models]
        p2p = p2p_address.encode("utf-8")
        registry = self._chain.registry.address
        steps: list[PlannedTx] = []

        def approve(amount: int) -> None:
            if status.allowance < amount:
                steps.append(
                    PlannedTx(
                        "approve",
                        f"let the registry pull {self._fmt(amount)}",
                        lambda: self._token.approve(registry, amount),
                    )
                )

        if not status.registered:
            if stake < status.min_stake:
                raise AccountStateError(
                    f"a {self.role.value} stakes at least {self._fmt(status.min_stake)}: --stake "
                    f"{self.op.units.format(stake, symbol=False)} is "
                    f"{self._fmt(status.min_stake - stake)} short"
                )
            self._require_funds(status, stake, "stake")
            approve(stake)
            chain_role = int(CHAIN_ROLE[self.role])
            steps.append(
                PlannedTx(
                    "register",
                    f"register as {self.role.value} with {self._fmt(stake)}",
                    lambda: self._registry.register(chain_role, stake, ids, p2p),
                )
            )
            return RegisterPlan(status, steps)

        if stake < status.stake:
            raise AccountStateError(
                f"the stake is already {self._fmt(status.stake)}, more than --stake "
                f"{self.op.units.format(stake, symbol=False)}; stakes only grow on chain: to lower it, run "
                f"{self._cmd('unbond')}, {self._cmd('withdraw')} after the delay, then register again"
            )
        if stake < status.min_stake:
            raise AccountStateError(
                f"the stake {self._fmt(status.stake)} is under the minimum {self._fmt(status.min_stake)} by "
                f"{self._fmt(status.min_stake - status.stake)}: run "
                f"{self._cmd('register --stake ' + self.op.units.format(status.min_stake, symbol=False))}"
            )
        if stake > status.stake:
            extra = stake - status.stake
            self._require_funds(status, extra, "extra stake")
            approve(extra)
            steps.append(
                PlannedTx(
                    "addStake",
                    f"add {self._fmt(extra)} (stake {self._fmt(stake)})",
                    lambda: self._registry.addStake(extra),
                )
            )
        if self.role is OperatorRole.NODE and {m.id for m in status.models} != {"0x" + i.hex() for i in ids}:
            steps.append(
                PlannedTx("setModels", f"serve {', '.join(models)}", lambda: self._registry.setModels(ids))
            )
        if status.p2p_address is None or status.p2p_address.encode("utf-8") != p2p:
            steps.append(
                PlannedTx(
                    "setP2pAddress", f"reachable at {p2p_address}", lambda: self._registry.setP2pAddress(p2p)
                )
            )
        return RegisterPlan(status, steps)

    def execute(self, plan: RegisterPlan, sender: TxSender) -> list[Receipt]:
        """Send a plan's transactions in order; returns their receipts."""
        self._check_sender(sender)
        return [sender.transact(step.call(), label=step.label) for step in plan.steps]

    # ------------------------------------------------------------------ unbond / withdraw / claim

    def _check_sender(self, sender: TxSender) -> None:
        if sender.address != self.address:
            raise AccountStateError(f"the key signs for {sender.address}, not {self.address}")

    def unbond(self, sender: TxSender) -> tuple[int, Receipt]:
        """``beginUnbonding``; returns the timestamp from which ``withdraw`` works and the receipt."""
        self._check_sender(sender)
        status = self.status(self.head(latest=True))
        self._require_registered(status)
        if status.unbonding:
            assert status.unbonding_end is not None
            raise AccountStateError(
                f"{self.address} is already unbonding: run {self._cmd('withdraw')} from "
                f"{when(status.unbonding_end, status.block_time)}"
            )
        receipt = sender.transact(self._registry.beginUnbonding(), label="beginUnbonding")
        ends = [
            int(e["args"]["unbondingEnd"])
            for e in self._chain.decode_logs(receipt.raw)
            if e["event"] == "UnbondingStarted"
        ]
        return ends[0], receipt

    def withdraw(self, sender: TxSender) -> tuple[int, Receipt]:
        """``withdraw`` after the unbonding delay; returns the amount paid and the receipt."""
        self._check_sender(sender)
        status = self.status(self.head(latest=True))
        self._require_registered(status)
        if not status.unbonding:
            delay = int(self._chain.read(self._registry.unbondingDelay(), self.head(latest=True)))
            raise AccountStateError(
                f"{self.address} is not unbonding: run {self._cmd('unbond')} first, then withdraw after the "
                f"unbonding delay ({delay} s)"
            )
        assert status.unbonding_end is not None
        if not status.withdrawable:
            raise AccountStateError(
                f"the unbonding delay ends at {when(status.unbonding_end, status.block_time)}: run "
                f"{self._cmd('withdraw')} then"
            )
        try:
            receipt = sender.transact(self._registry.withdraw(), label="withdraw")
        except ContractRevert as exc:
            if exc.name == "RegistrySeatsOpen":  # protocol v2: seats of unsettled batches lock the stake
                seats = int(exc.args.get("openSeats", 0))
                raise AccountStateError(
                    f"cannot withdraw yet: {self.address} holds {seats} seat(s) in batches that are not "
                    "settled (the stake stays locked until they settle or are refunded, so a missed reveal "
                    f"can still be slashed); run {self._cmd('withdraw')} again after they end"
                ) from None
            raise
        amounts = [
            int(e["args"]["amount"])
            for e in self._chain.decode_logs(receipt.raw)
            if e["event"] == "Withdrawn"
        ]
        return (amounts[0] if amounts else status.stake), receipt

    def claim(self, sender: TxSender) -> tuple[int, Receipt]:
        """Claim the whole TaskMarket balance; returns the amount and the receipt."""
        self._check_sender(sender)
        status = self.status(self.head(latest=True))
        if status.claimable == 0:
            raise AccountStateError(
                f"{self.address} has nothing to claim; `{self.role.command} rewards` shows what it earned"
            )
        receipt = sender.transact(self._market.claim(), label="claim")
        amounts = [
            int(e["args"]["amount"]) for e in self._chain.decode_logs(receipt.raw) if e["event"] == "Claimed"
        ]
        return (amounts[0] if amounts else status.claimable), receipt
