// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ITaskMarket} from "../interfaces/ITaskMarket.sol";

/// @title JobRules
/// @notice A stored job (protocol v2): its layout, and the bounds of its parameters with the checks
/// `TaskMarket.postJob` runs on them.
/// @dev `valid` is internal (inlined into `TaskMarket.postJob`: a valid job costs no library call); `check` is
/// external (deployed once, linked by forge like `Tally`; its error encoding stays out of TaskMarket's EIP-170
/// size) and runs only when `valid` is false, to revert with the precise error. Both test the same bounds
/// (`testFuzz_jobRules_validIffCheckPasses`). TaskMarket's public constants of the same names read these.
library JobRules {
    /// @notice A job as TaskMarket stores it, 2 slots: slot0 requester(160) | bountyPerTask(96); slot1
    /// batchSize(16) | k, m, threshold, tolerance, junkFloor (8 each) | validatorShareBps(16) | 4 durations
    /// (24 each) | modelId(32, the registry's interned id) | firstBatchId(40) | batchCount(16). The workflow hash
    /// is not kept here: each batch's `inputHash` binds it.
    struct Job {
        address requester;
        uint96 bountyPerTask;
        uint16 batchSize;
        uint8 k;
        uint8 m;
        uint8 threshold;
        uint8 tolerance;
        uint8 junkFloor;
        uint16 validatorShareBps;
        uint24 commitDuration;
        uint24 revealDuration;
        uint24 scoreCommitDuration;
        uint24 scoreRevealDuration;
        uint32 modelId;
        uint40 firstBatchId;
        uint16 batchCount;
    }

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

    /// @notice Whether `p` lies within every bound `check` enforces (the same bounds, without the errors).
    /// @param minPhaseDuration The market's shortest phase, seconds.
    function valid(ITaskMarket.JobParams calldata p, uint256 minPhaseDuration) internal pure returns (bool) {
        uint256 size = p.batchSize;
        uint256 k = p.k;
        uint256 m = p.m;
        return p.bountyPerTask != 0 && p.model != bytes32(0) && size != 0 && size <= MAX_BATCH_SIZE && k != 0
            && k <= MAX_RESULTS && m != 0 && m <= MAX_COMMITTEE && size * k * m <= MAX_SCORE_CELLS
            && p.threshold <= MAX_SCORE && p.tolerance <= MAX_SCORE && p.junkFloor <= p.threshold
            && p.validatorShareBps <= BPS && _durationValid(p.commitDuration, minPhaseDuration)
            && _durationValid(p.revealDuration, minPhaseDuration)
            && _durationValid(p.scoreCommitDuration, minPhaseDuration)
            && _durationValid(p.scoreRevealDuration, minPhaseDuration);
    }

    function _durationValid(uint256 d, uint256 minPhaseDuration) private pure returns (bool) {
        return d >= minPhaseDuration && d <= MAX_PHASE_DURATION;
    }

    function _checkDuration(uint256 d, uint256 minPhaseDuration) private pure {
        if (d < minPhaseDuration || d > MAX_PHASE_DURATION) {
            revert ITaskMarket.JobDurationOutOfRange(d, minPhaseDuration, MAX_PHASE_DURATION);
        }
    }
}
