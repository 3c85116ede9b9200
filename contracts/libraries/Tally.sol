// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Tally
/// @notice The arithmetic of a scored settlement (protocol v2): per result the stake-weighted median of the
/// revealed scores, acceptance against the threshold, junk seats, the agreeing validators and every credit.
/// @dev An external library (deployed once, its two entry points `pure`), so that this code does not count
/// against TaskMarket's EIP-170 size. Forge links it at deployment (`scripts/Deploy.s.sol`, tests). Score vectors are read from the
/// library call's own calldata; their hashes were checked by the market before the call.
library Tally {
    /// @notice Basis-point denominator of the validator share.
    uint256 internal constant BPS = 10_000;

    /// @notice The job's rules and the batch's shape.
    /// @param rows Rows of the batch. @param seats Node seats taken (commitCount).
    /// @param revealed Mask of revealed node seats. @param threshold Lowest accepted median (0..100).
    /// @param tolerance Largest distance to the median of an agreeing score. @param junkFloor Junk if a
    /// seat's medians sum below junkFloor * rows. @param bounty Bounty per row (token units).
    /// @param validatorShareBps Validators' share of each row's bounty.
    struct Rules {
        uint256 rows;
        uint256 seats;
        uint256 revealed;
        uint256 threshold;
        uint256 tolerance;
        uint256 junkFloor;
        uint256 bounty;
        uint256 validatorShareBps;
    }

    /// @notice What a settlement pays: `medians[s * rows + r]`, per-seat node pay, the agreeing committee seats,
    /// each agreeing validator's reward, the requester's refund, and the junk seats (slashed, unpaid).
    struct Outcome {
        bool scored;
        bytes medians;
        uint256[] nodePaid;
        uint256 agreedMask;
        uint256 validatorReward;
        uint256 refund;
        uint256 junkMask;
    }

    /// @dev Scores of one round, read from calldata: `offsets[v]` is where voter v's vector starts.
    struct Votes {
        uint256[] offsets;
        uint256[] weights;
        uint256[] seats;
        uint256 total;
        uint256 voters;
        uint256 nodePoolRow;
        uint256 validatorPoolRow;
    }

    /// @notice Tally a round with a majority of revealed vectors.
    /// @param rules The job's rules and the batch's shape.
    /// @param weights Weight (raw stake at the draw) of each revealed committee seat, in seat order.
    /// @param seats The committee seat of each revealed vector.
    /// @param vectors The revealed score vectors (one byte per node seat and row, cell `s * rows + r`), in seat
    /// order, already checked against their seals and lengths.
    /// @return o The outcome; `o.refund` = everything not paid (rejected rows, junk seats' pay, no agreeing
    /// validator, integer-division dust).
    function tally(
        Rules memory rules,
        uint256[] memory weights,
        uint256[] memory seats,
        bytes[] calldata vectors
    ) external pure returns (Outcome memory) {
        return _score(rules, _votes(rules, weights, seats, vectors));
    }

    /// @notice The outcome when no committee reached a majority in the market's last round: every revealed
    /// result is accepted (each row's node pool split evenly among the revealed seats); the validator pool and
    /// the division dust go back to the requester (`o.refund`); nothing is scored (`o.scored` false, medians 0).
    /// @param rules The job's rules and the batch's shape.
    /// @param revealCount Node seats revealed (>= 1: a committee is drawn only after a reveal).
    function fallbackOutcome(Rules memory rules, uint256 revealCount)
        external
        pure
        returns (Outcome memory o)
    {
        uint256 rows = rules.rows;
        uint256 seats = rules.seats;
        o.medians = new bytes(seats * rows);
        o.nodePaid = new uint256[](seats);
        uint256 bounty = rules.bounty;
        uint256 nodePoolRow = bounty - bounty * rules.validatorShareBps / BPS;
        uint256 share = nodePoolRow / revealCount;
        uint256 paid = 0;
        for (uint256 s; s < seats; ++s) {
            if (rules.revealed & (1 << s) != 0) {
                // Rounded down on purpose: the dust is refunded below (docs/audit.md, divide-before-multiply).
                // slither-disable-next-line divide-before-multiply
                o.nodePaid[s] = share * rows;
                // slither-disable-next-line divide-before-multiply
                paid += share * rows;
            }
        }
        o.refund = bounty * rows - paid;
    }

    function _votes(
        Rules memory rules,
        uint256[] memory weights,
        uint256[] memory seats,
        bytes[] calldata vectors
    ) private pure returns (Votes memory votes) {
        uint256 voters = vectors.length;
        votes.offsets = new uint256[](voters);
        votes.weights = weights;
        votes.seats = seats;
        votes.voters = voters;
        for (uint256 v; v < voters; ++v) {
            bytes calldata vec = vectors[v];
            uint256 off;
            assembly ("memory-safe") {
                off := vec.offset
            }
            votes.offsets[v] = off;
            votes.total += weights[v];
        }
        votes.validatorPoolRow = rules.bounty * rules.validatorShareBps / BPS;
        votes.nodePoolRow = rules.bounty - votes.validatorPoolRow;
    }

    function _score(Rules memory rules, Votes memory votes) private pure returns (Outcome memory o) {
        o.scored = true;
        o.medians = new bytes(rules.seats * rules.rows);
        o.nodePaid = new uint256[](rules.seats);
        uint256[] memory medianSum = new uint256[](rules.seats);
        uint256 disagree = 0;
        uint256 paid = 0;
        for (uint256 r; r < rules.rows; ++r) {
            (uint256 d, uint256 p) = _tallyRow(votes, rules, o, medianSum, r);
            disagree |= d;
            paid += p;
        }
        uint256 junkTotal = rules.junkFloor * rules.rows;
        for (uint256 s; s < rules.seats; ++s) {
            if (rules.revealed & (1 << s) != 0 && medianSum[s] < junkTotal) {
                // A junk node is slashed and paid nothing, even for its rows that passed (its pay is refunded).
                o.junkMask |= 1 << s;
                paid -= o.nodePaid[s];
                o.nodePaid[s] = 0;
            }
        }
        uint256 agreed = 0;
        for (uint256 v; v < votes.voters; ++v) {
            if (disagree & (1 << v) == 0) {
                o.agreedMask |= 1 << votes.seats[v];
                ++agreed;
            }
        }
        if (agreed != 0) o.validatorReward = votes.validatorPoolRow * rules.rows / agreed;
        // Integer-division dust and unpaid shares go back to the requester (docs/audit.md, divide-before-multiply).
        // slither-disable-next-line divide-before-multiply
        o.refund = rules.bounty * rules.rows - paid - o.validatorReward * agreed;
    }

    /// @dev One row: the median of each revealed seat's result (written to `o.medians`, added to `medianSum`),
    /// the row's node pool split among its accepted results (added to `o.nodePaid`). Returns the voters that
    /// disagreed on the row (mask) and the tokens paid.
    function _tallyRow(
        Votes memory votes,
        Rules memory rules,
        Outcome memory o,
        uint256[] memory medianSum,
        uint256 r
    ) internal pure returns (uint256 disagree, uint256 paid) {
        uint256 acceptedMask = 0;
        uint256 accepted = 0;
        bytes memory medians = o.medians;
        for (uint256 s; s < rules.seats; ++s) {
            if (rules.revealed & (1 << s) == 0) continue;
            uint256 cell = s * rules.rows + r;
            (uint256 med, uint256 far) = _cell(votes, cell, rules.tolerance);
            assembly ("memory-safe") {
                mstore8(add(add(medians, 0x20), cell), med)
            }
            medianSum[s] += med;
            if (med >= rules.threshold) {
                acceptedMask |= 1 << s;
                ++accepted;
            }
            disagree |= far;
        }
        if (accepted != 0) {
            uint256 share = votes.nodePoolRow / accepted;
            for (uint256 s; s < rules.seats; ++s) {
                if (acceptedMask & (1 << s) != 0) o.nodePaid[s] += share;
            }
            // Rounding down is intended: the remainder goes back to the requester (docs/audit.md).
            // slither-disable-next-line divide-before-multiply
            paid = share * accepted;
        }
    }

    /// @dev One result (`cell` of every revealed vector): its stake-weighted median (the lowest score whose
    /// cumulative weight of scores <= it reaches half the total weight) and the voters (bit mask) farther than
    /// `tolerance` from it. Reads the scores once from calldata (`votes.offsets`, checked against the stored
    /// hashes), packed one byte per voter (<= 16 voters). The vectors' lengths were checked at reveal.
    function _cell(Votes memory votes, uint256 cell, uint256 tolerance)
        internal
        pure
        returns (uint256 med, uint256 far)
    {
        uint256 voters = votes.voters;
        uint256 total = votes.total;
        uint256[] memory offsets = votes.offsets;
        uint256[] memory weights = votes.weights;
        assembly ("memory-safe") {
            let offs := add(offsets, 0x20)
            let ws := add(weights, 0x20)
            let packed := 0
            for { let v := 0 } lt(v, voters) { v := add(v, 1) } {
                let score := byte(0, calldataload(add(mload(add(offs, shl(5, v))), cell)))
                packed := or(packed, shl(shl(3, v), score))
            }
            med := 0x100
            for { let a := 0 } lt(a, voters) { a := add(a, 1) } {
                let candidate := and(shr(shl(3, a), packed), 0xff)
                if lt(candidate, med) {
                    let below := 0
                    for { let c := 0 } lt(c, voters) { c := add(c, 1) } {
                        if iszero(gt(and(shr(shl(3, c), packed), 0xff), candidate)) {
                            below := add(below, mload(add(ws, shl(5, c))))
                        }
                    }
                    if iszero(lt(shl(1, below), total)) { med := candidate }
                }
            }
            for { let v := 0 } lt(v, voters) { v := add(v, 1) } {
                let score := and(shr(shl(3, v), packed), 0xff)
                let dist := sub(score, med)
                if lt(score, med) { dist := sub(med, score) }
                // shl(shift, value): `1 << v`, as intended (slither reads the operands the other way round)
                // slither-disable-next-line incorrect-shift
                if gt(dist, tolerance) { far := or(far, shl(v, 1)) }
            }
        }
    }
}
