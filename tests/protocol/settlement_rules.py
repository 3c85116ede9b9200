"""The settlement rule of docs/contracts.md ("Settlement rule"), written independently in plain Python.

The chain tests compute what a batch must pay from this and compare it with the contract's events and
balances, so a wrong median, share, tolerance or refund in either place makes them fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BPS = 10_000


def weighted_median(scores: Sequence[int], weights: Sequence[int]) -> int:
    """The lowest score whose cumulative weight (of scores <= it) reaches half the total weight."""
    total = sum(weights)
    running = 0
    for value, weight in sorted(zip(scores, weights, strict=True)):
        running += weight
        if 2 * running >= total:
            return value
    raise ValueError("no scores")


@dataclass(frozen=True)
class Expected:
    """What one batch's settlement must credit."""

    scored: bool
    medians: bytes
    """Byte ``seat * rows + row``; 0 for unrevealed seats (and everywhere when not scored)."""
    node_paid: tuple[int, ...]
    agreed_mask: int
    validator_reward: int
    refund: int
    junk: tuple[int, ...]
    """Node seats slashed as junk."""


def expected_settlement(
    *,
    rows: int,
    commit_count: int,
    revealed: Sequence[int],
    voter_seats: Sequence[int],
    vectors: Sequence[bytes],
    weights: Sequence[int],
    bounty_per_task: int,
    validator_share_bps: int,
    threshold: int,
    tolerance: int,
    junk_floor: int,
    scored: bool = True,
) -> Expected:
    """Settlement of a batch: ``voter_seats`` / ``vectors`` / ``weights`` are the committee seats that
    revealed in the deciding round, their score vectors and their weights, in seat order; ``scored=False``
    applies the unscored
    fallback (every revealed result paid, the validator pool refunded)."""
    validator_pool_row = bounty_per_task * validator_share_bps // BPS
    node_pool_row = bounty_per_task - validator_pool_row
    node_paid = [0] * commit_count
    medians = bytearray(commit_count * rows)
    if not scored:
        share = node_pool_row // len(revealed)
        for seat in revealed:
            node_paid[seat] = share * rows
        refund = bounty_per_task * rows - sum(node_paid)
        return Expected(False, bytes(medians), tuple(node_paid), 0, 0, refund, ())
    agrees = [True] * len(vectors)
    for row in range(rows):
        accepted = []
        for seat in revealed:
            cell = seat * rows + row
            median = weighted_median([v[cell] for v in vectors], weights)
            medians[cell] = median
            if median >= threshold:
                accepted.append(seat)
            for i, vector in enumerate(vectors):
                if abs(vector[cell] - median) > tolerance:
                    agrees[i] = False
        if accepted:
            for seat in accepted:
                node_paid[seat] += node_pool_row // len(accepted)
    agreed = sum(agrees)
    validator_reward = validator_pool_row * rows // agreed if agreed else 0
    junk = tuple(
        seat for seat in revealed if sum(medians[seat * rows : (seat + 1) * rows]) < junk_floor * rows
    )
    refund = bounty_per_task * rows - sum(node_paid) - validator_reward * agreed
    return Expected(
        scored=True,
        medians=bytes(medians),
        node_paid=tuple(node_paid),
        agreed_mask=sum(1 << seat for seat, ok in zip(voter_seats, agrees, strict=True) if ok),
        validator_reward=validator_reward,
        refund=refund,
        junk=junk,
    )
