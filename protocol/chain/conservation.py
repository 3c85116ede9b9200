"""Token conservation across every account of a Synod deployment, checked from chain reads alone.

::

    before = holdings(chain, accounts, chain.head(0))
    ...                                   # post, commit, reveal, score, settle, claim, slash
    after = holdings(chain, accounts, chain.head(0))
    deltas = check_conservation(before, after, token_transfers(chain, before.block + 1, after.block))

A participant's **worth** is what it could take home: its ERC-20 balance, plus its claimable balance in
the TaskMarket, plus its stake in the StakeRegistry. :func:`check_conservation` proves, between two
snapshots, that

1. every token of the supply is held by a tracked account at both blocks (nobody holds tokens the check
   cannot see: pass every account that ever held any, the contracts and the treasury included);
2. the registry holds exactly the stakes plus the slashed tokens not yet swept (``treasuryBalance``),
   and its ``totalStaked`` equals the sum of the tracked stakes;
3. the market holds at least what it owes in claimable balances (the rest is open escrow);
4. every change of an ERC-20 balance is explained by a ``Transfer`` event between the two blocks, no
   transfer touches an untracked account, and the supply changed only by mints and burns;
5. the sum of the worth deltas, plus the change of the escrow and of the unswept treasury, equals the
   tokens minted minus those burned (no token created or destroyed by the protocol).

It returns the worth delta of every tracked account, so a test can compare each participant's gain or
loss with what the rules of docs/contracts.md say it must be. The idea is the ghost-sum invariant of
the forge suite (solmate's ``BalanceSum``), evaluated here against a real chain, from the outside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ChainError
from protocol.chain.rpc import BlockRef, translated
from protocol.types import Address, address_of

__all__ = [
    "ZERO_ADDRESS",
    "ConservationError",
    "Holdings",
    "TokenTransfer",
    "check_conservation",
    "holdings",
    "token_transfers",
]

ZERO_ADDRESS = address_of("0x" + "00" * 20)
"""The ERC-20 mint/burn counterparty."""


class ConservationError(ChainError):
    """Tokens appeared, vanished or moved without a trace; the message lists every broken rule."""


@dataclass(frozen=True)
class TokenTransfer:
    """One ERC-20 ``Transfer`` of the payment token (``sender``/``receiver`` 0x0 for a mint/burn)."""

    block: int
    sender: Address
    receiver: Address
    value: int


@dataclass(frozen=True)
class Holdings:
    """What every tracked account holds at one block, in token base units."""

    block: int
    total_supply: int
    market: Address
    registry: Address
    tokens: Mapping[Address, int]
    """ERC-20 balance of every tracked account, the market and the registry included."""
    claimable: Mapping[Address, int]
    """``TaskMarket.balanceOf``: credited, not yet claimed."""
    stakes: Mapping[Address, int]
    """``StakeRegistry.participant(..).stake`` (0 for an account that is not registered)."""
    total_staked: int
    treasury_unswept: int
    """Slashed tokens still in the registry (``treasuryBalance``)."""

    @property
    def escrow(self) -> int:
        """Tokens the market holds beyond the claimable balances: bounties of unsettled batches."""
        return self.tokens[self.market] - sum(self.claimable.values())

    def worth(self, account: str) -> int:
        """ERC-20 balance + claimable balance + stake of ``account``."""
        key = address_of(account)
        return self.tokens.get(key, 0) + self.claimable.get(key, 0) + self.stakes.get(key, 0)

    @property
    def participants(self) -> tuple[Address, ...]:
        """The tracked accounts other than the two contracts."""
        return tuple(a for a in self.tokens if a not in (self.market, self.registry))


def holdings(chain: SynodContracts, accounts: Iterable[str], block: BlockRef) -> Holdings:
    """Read the holdings of ``accounts`` (the market, the registry and the treasury are added) at
    ``block``. Raises :class:`~protocol.chain.errors.ChainError` subclasses on RPC failure."""
    token, registry, market = chain.token.functions, chain.registry.functions, chain.market.functions
    treasury = address_of(chain.read(registry.treasury(), block))
    tracked = dict.fromkeys(address_of(a) for a in (*accounts, treasury))
    contracts = (address_of(chain.market.address), address_of(chain.registry.address))
    for contract in contracts:
        tracked.pop(contract, None)
    participants = list(tracked)
    tokens = {a: int(chain.read(token.balanceOf(a), block)) for a in (*participants, *contracts)}
    claimable = {a: int(chain.read(market.balanceOf(a), block)) for a in participants}
    stakes = {a: int(chain.read(registry.participant(a), block)[0]) for a in participants}
    return Holdings(
        block=block.number,
        total_supply=int(chain.read(token.totalSupply(), block)),
        market=contracts[0],
        registry=contracts[1],
        tokens=tokens,
        claimable=claimable,
        stakes=stakes,
        total_staked=int(chain.read(registry.totalStaked(), block)),
        treasury_unswept=int(chain.read(registry.treasuryBalance(), block)),
    )


def token_transfers(chain: SynodContracts, from_block: int, to_block: int) -> list[TokenTransfer]:
    """Every ``Transfer`` of the payment token in blocks ``from_block..to_block`` (inclusive), in
    chain order. An empty list when ``from_block > to_block``."""
    if from_block > to_block:
        return []
    with translated(chain.errors, "eth_getLogs"):
        logs = chain.token.events.Transfer.get_logs(from_block=from_block, to_block=to_block)
    ordered = sorted(logs, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
    out: list[TokenTransfer] = []
    for entry in ordered:
        args = entry["args"]
        out.append(
            TokenTransfer(
                block=int(entry["blockNumber"]),
                sender=address_of(args["from"]),
                receiver=address_of(args["to"]),
                value=int(args["value"]),
            )
        )
    return out


def _snapshot_rules(h: Holdings) -> list[str]:
    broken: list[str] = []
    held = sum(h.tokens.values())
    if held != h.total_supply:
        broken.append(
            f"block {h.block}: tracked accounts hold {held} of a supply of {h.total_supply} "
            f"({h.total_supply - held} held elsewhere)"
        )
    stakes = sum(h.stakes.values())
    if stakes != h.total_staked:
        broken.append(f"block {h.block}: tracked stakes sum to {stakes}, totalStaked is {h.total_staked}")
    if h.tokens[h.registry] != h.total_staked + h.treasury_unswept:
        broken.append(
            f"block {h.block}: the registry holds {h.tokens[h.registry]}, stakes {h.total_staked} + "
            f"unswept slashes {h.treasury_unswept} = {h.total_staked + h.treasury_unswept}"
        )
    if h.escrow < 0:
        broken.append(
            f"block {h.block}: the market holds {h.tokens[h.market]} but owes "
            f"{sum(h.claimable.values())} in claimable balances"
        )
    return broken


def check_conservation(
    before: Holdings, after: Holdings, transfers: Sequence[TokenTransfer]
) -> dict[Address, int]:
    """Check the five rules of the module docstring between ``before`` and ``after`` (the same
    accounts, ``transfers`` = :func:`token_transfers` of the blocks after ``before`` up to ``after``).

    Returns the worth delta (after - before) of every tracked participant (contracts excluded).
    Raises :class:`ConservationError` naming every broken rule, or ``ValueError`` if the two
    snapshots track different accounts or are out of order.
    """
    if set(before.tokens) != set(after.tokens):
        raise ValueError("the two snapshots track different accounts")
    if after.block < before.block:
        raise ValueError(f"snapshot of block {after.block} is older than block {before.block}")
    broken = _snapshot_rules(before) + _snapshot_rules(after)
    flow: dict[Address, int] = dict.fromkeys(before.tokens, 0)
    minted = burned = 0
    for t in transfers:
        if not before.block < t.block <= after.block:
            broken.append(f"transfer in block {t.block} is outside blocks {before.block + 1}..{after.block}")
        for end in (t.sender, t.receiver):
            if end != ZERO_ADDRESS and end not in flow:
                broken.append(f"transfer of {t.value} in block {t.block} touches untracked account {end}")
                flow[end] = 0
        if t.sender == ZERO_ADDRESS:
            minted += t.value
        else:
            flow[t.sender] -= t.value
        if t.receiver == ZERO_ADDRESS:
            burned += t.value
        else:
            flow[t.receiver] += t.value
    for account in before.tokens:
        change = after.tokens[account] - before.tokens[account]
        if change != flow[account]:
            broken.append(f"{account}: balance changed by {change}, its transfers add up to {flow[account]}")
    supply_change = after.total_supply - before.total_supply
    if supply_change != minted - burned:
        broken.append(f"supply changed by {supply_change}, mints - burns = {minted - burned}")
    deltas = {a: after.worth(a) - before.worth(a) for a in before.participants}
    system = (
        sum(deltas.values())
        + (after.escrow - before.escrow)
        + (after.treasury_unswept - before.treasury_unswept)
    )
    if system != minted - burned:
        broken.append(
            f"worth + escrow + unswept slashes changed by {system}, mints - burns = {minted - burned}"
        )
    if broken:
        raise ConservationError("token conservation broken: " + "; ".join(broken))
    return deltas
