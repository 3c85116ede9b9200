// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ITaskMarket} from "../interfaces/ITaskMarket.sol";

/// @title JobRules
/// @notice The bounds of a job's parameters (protocol v2) and the check `TaskMarket.postJob` runs on them.
/// @dev An external library (deployed once, linked by forge like `Tally`), so that this code does not count
/// against TaskMarket's EIP-170 size; TaskMarket's public constants of the same names read these.
library JobRules {
    /// @notice Most rows per batch (B).
    uint256 internal constant MAX_BATCH_SIZE = 256;
    /// @notice Most node seats per batch (k).
    uint256 internal constant MAX_RESULTS = 16;
    /// @notice Most committee seats per batch (m).
    uint256 internal constant MAX_COMMITTEE = 16;
    /// @notice Most score cells per batch (batchSize * k * m): bounds settlement gas.
    uint256 internal constant MAX_SCORE_CELLS = 4096;
    /// @notice Longest phase, seconds (fits the 24-bit duration fields).
    uint256 internal constant MAX_PHASE_DURATION = 30 days;
    /// @notice Highest score, threshold and tolerance.
    uint256 internal constant MAX_SCORE = 100;
    /// @notice Basis-point denominator of the validator share.
    uint256 internal constant BPS = 10_000;

    /// @notice Revert with the first violated bound of `p` (the `ITaskMarket` errors `JobZeroBounty`,
    /// `JobZeroModel`, `JobBatchSizeOutOfRange`, `JobResultCountOutOfRange`, `JobCommitteeSizeOutOfRange`,
    /// `JobBatchTooLarge`, `JobParamOutOfRange`, `JobDurationOutOfRange`, in that order).
    /// @param minPhaseDuration The market's shortest phase, seconds.
    function check(ITaskMarket.JobParams calldata p, uint256 minPhaseDuration) external pure {
        if (p.bountyPerTask == 0) revert ITaskMarket.JobZeroBounty();
        if (p.model == bytes32(0)) revert ITaskMarket.JobZeroModel();
        if (p.batchSize == 0 || p.batchSize > MAX_BATCH_SIZE) {
            revert ITaskMarket.JobBatchSizeOutOfRange(p.batchSize, MAX_BATCH_SIZE);
        }
        if (p.k == 0 || p.k > MAX_RESULTS) revert ITaskMarket.JobResultCountOutOfRange(p.k, MAX_RESULTS);
        if (p.m == 0 || p.m > MAX_COMMITTEE) {
            revert ITaskMarket.JobCommitteeSizeOutOfRange(p.m, MAX_COMMITTEE);
        }
        uint256 cells = uint256(p.batchSize) * p.k * p.m;
        if (cells > MAX_SCORE_CELLS) revert ITaskMarket.JobBatchTooLarge(cells, MAX_SCORE_CELLS);
        if (p.threshold > MAX_SCORE) revert ITaskMarket.JobParamOutOfRange(p.threshold, MAX_SCORE);
        if (p.tolerance > MAX_SCORE) revert ITaskMarket.JobParamOutOfRange(p.tolerance, MAX_SCORE);
        if (p.junkFloor > p.threshold) revert ITaskMarket.JobParamOutOfRange(p.junkFloor, p.threshold);
        if (p.validatorShareBps > BPS) revert ITaskMarket.JobParamOutOfRange(p.validatorShareBps, BPS);
        _checkDuration(p.commitDuration, minPhaseDuration);
        _checkDuration(p.revealDuration, minPhaseDuration);
        _checkDuration(p.scoreCommitDuration, minPhaseDuration);
        _checkDuration(p.scoreRevealDuration, minPhaseDuration);
    }

    function _checkDuration(uint256 d, uint256 minPhaseDuration) private pure {
        if (d < minPhaseDuration || d > MAX_PHASE_DURATION) {
            revert ITaskMarket.JobDurationOutOfRange(d, minPhaseDuration, MAX_PHASE_DURATION);
        }
    }
}
