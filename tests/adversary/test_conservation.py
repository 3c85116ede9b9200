"""The token-conservation checker (protocol/chain/conservation.py) on hand-made snapshots: every rule
it states catches the bug it exists for, at the exact token, and a consistent history passes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocol.chain.conservation import (
    ZERO_ADDRESS,
    ConservationError,
    Holdings,
    TokenTransfer,
    check_conservation,
)
from protocol.types import Address, address_of

pytestmark = pytest.mark.unit

MARKET = address_of("0x" + "11" * 20)
REGISTRY = address_of("0x" + "22" * 20)
REQUESTER = address_of("0x" + "33" * 20)
NODE = address_of("0x" + "44" * 20)
SLASHED = address_of("0x" + "55" * 20)
STRANGER = address_of("0x" + "66" * 20)


def snapshot(
    block: int,
    tokens: dict[Address, int],
    claimable: dict[Address, int],
    stakes: dict[Address, int],
    treasury: int = 0,
) -> Holdings:
    return Holdings(
        block=block,
        total_supply=sum(tokens.values()),
        market=MARKET,
        registry=REGISTRY,
        tokens=tokens,
        claimable=claimable,
        stakes=stakes,
        total_staked=sum(stakes.values()),
        treasury_unswept=treasury,
    )


BEFORE = snapshot(
    10,
    {REQUESTER: 1000, NODE: 0, SLASHED: 0, MARKET: 0, REGISTRY: 200},
    {REQUESTER: 0, NODE: 0, SLASHED: 0},
    {REQUESTER: 0, NODE: 100, SLASHED: 100},
)
# a batch: the requester escrows 300; settled: node credited 250, requester refunded 50; SLASHED loses
# 10 of stake to the treasury; the node claims its 250
AFTER = snapshot(
    20,
    {REQUESTER: 700, NODE: 250, SLASHED: 0, MARKET: 50, REGISTRY: 200},
    {REQUESTER: 50, NODE: 0, SLASHED: 0},
    {REQUESTER: 0, NODE: 100, SLASHED: 90},
    treasury=10,
)
TRANSFERS = [TokenTransfer(12, REQUESTER, MARKET, 300), TokenTransfer(19, MARKET, NODE, 250)]


def test_a_consistent_history_gives_each_participant_its_worth_delta() -> None:
    deltas = check_conservation(BEFORE, AFTER, TRANSFERS)
    assert deltas == {REQUESTER: -250, NODE: 250, SLASHED: -10}
    assert AFTER.escrow == 0 and BEFORE.escrow == 0


def test_a_transfer_missing_from_the_log_is_caught() -> None:
    with pytest.raises(ConservationError, match="balance changed by 250, its transfers add up to 0"):
        check_conservation(BEFORE, AFTER, TRANSFERS[:1])


def test_one_token_too_many_is_caught() -> None:
    tokens = {**AFTER.tokens, NODE: 251}
    inflated = replace(AFTER, tokens=tokens, total_supply=AFTER.total_supply + 1)
    with pytest.raises(ConservationError) as info:
        check_conservation(BEFORE, inflated, TRANSFERS)
    message = str(info.value)
    assert "supply changed by 1, mints - burns = 0" in message
    assert "its transfers add up to 250" in message


def test_tokens_held_by_an_untracked_account_are_caught() -> None:
    hidden = replace(AFTER, total_supply=AFTER.total_supply + 5)
    with pytest.raises(ConservationError, match=r"\(5 held elsewhere\)"):
        check_conservation(BEFORE, hidden, TRANSFERS)


def test_a_transfer_to_an_untracked_account_is_caught() -> None:
    leak = [*TRANSFERS, TokenTransfer(15, MARKET, STRANGER, 1)]
    with pytest.raises(ConservationError, match="touches untracked account"):
        check_conservation(BEFORE, AFTER, leak)


def test_a_transfer_outside_the_window_is_caught() -> None:
    late = [TRANSFERS[0], replace(TRANSFERS[1], block=21)]
    with pytest.raises(ConservationError, match=r"outside blocks 11\.\.20"):
        check_conservation(BEFORE, AFTER, late)


def test_a_registry_that_holds_less_than_stakes_plus_unswept_slashes_is_caught() -> None:
    # the slash "happened" (stake 100 -> 90) but the treasury was not credited
    lost = replace(AFTER, treasury_unswept=0)
    with pytest.raises(ConservationError) as info:
        check_conservation(BEFORE, lost, TRANSFERS)
    assert "the registry holds 200, stakes 190 + unswept slashes 0 = 190" in str(info.value)
    assert "changed by -10, mints - burns = 0" in str(info.value)


def test_a_market_that_owes_more_than_it_holds_is_caught() -> None:
    owing = replace(AFTER, claimable={**AFTER.claimable, REQUESTER: 51})
    with pytest.raises(ConservationError, match="the market holds 50 but owes 51"):
        check_conservation(BEFORE, owing, TRANSFERS)


def test_stakes_that_disagree_with_total_staked_are_caught() -> None:
    partial = replace(AFTER, total_staked=AFTER.total_staked + 7)
    with pytest.raises(ConservationError, match="tracked stakes sum to 190, totalStaked is 197"):
        check_conservation(BEFORE, partial, TRANSFERS)


def test_mints_are_allowed_and_accounted() -> None:
    minted = replace(
        AFTER, tokens={**AFTER.tokens, STRANGER: 0, NODE: 260}, total_supply=AFTER.total_supply + 10
    )
    before = replace(BEFORE, tokens={**BEFORE.tokens, STRANGER: 0})
    deltas = check_conservation(before, minted, [*TRANSFERS, TokenTransfer(13, ZERO_ADDRESS, NODE, 10)])
    assert deltas[NODE] == 260 and deltas[STRANGER] == 0


def test_snapshots_of_different_accounts_or_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="different accounts"):
        check_conservation(BEFORE, replace(AFTER, tokens={**AFTER.tokens, STRANGER: 0}), TRANSFERS)
    with pytest.raises(ValueError, match="older than"):
        check_conservation(AFTER, BEFORE, [])
