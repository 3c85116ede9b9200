// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ITaskMarket
/// @notice Synod's task market: requesters escrow bounties for LLM tasks, staked nodes commit and reveal
/// result digests, a stake-weighted random committee of validators commits and reveals scores, and
/// `finalize` pays the accepted results and the agreeing validators, slashes non-revealers and refunds
/// the rest. Every payment is a pull payment: one balance per account, `claim()` pays it all.
/// @dev Lifecycle of a task (stored phase; transitions at a deadline are applied lazily by the next call,
/// `phaseOf` shows the effective phase):
///   Committing --k commits | deadline with >=1 commit--> Revealing
///   Revealing  --all commits revealed | deadline--> committee draw --> ScoreCommitting
///   ScoreCommitting --all seats committed | deadline--> ScoreRevealing
///   ScoreRevealing --all score commits revealed | deadline--> Finalized
///   Committing --cancel before first commit | deadline with 0 commits--> Refunded
///   Revealing --deadline with 0 reveals | no active validator at the draw--> Refunded
/// The last reveal draws the committee itself; the last score reveal finalizes itself. Only hashes are
/// stored: the workflow and input bytes travel in `JobPosted` / `TaskPosted`, the result bytes p2p.
interface ITaskMarket {
    /// @notice Stored phase of a task.
    enum Phase {
        None,
        Committing,
        Revealing,
        ScoreCommitting,
        ScoreRevealing,
        Finalized,
        Refunded
    }

    /// @notice Why a task's bounty went back to its requester.
    enum RefundReason {
        Cancelled,
        NoCommit,
        NoReveal,
        NoValidator,
        NoDraw
    }

    /// @notice Parameters of a job, shared by all its tasks.
    /// @param model keccak256 of the model name nodes must serve.
    /// @param bountyPerTask Tokens escrowed per task (> 0).
    /// @param k Results wanted per task, 1..MAX_RESULTS.
    /// @param m Validators per committee, 1..MAX_COMMITTEE.
    /// @param threshold Acceptance threshold on the median score, 0..100.
    /// @param tolerance Max distance of a validator's score from each median to be paid, 0..100.
    /// @param validatorShareBps Share of the bounty for the validators, 0..10000 basis points.
    /// @param commitDuration Seconds for result commits (from posting).
    /// @param revealDuration Seconds for result reveals (from the end of commits).
    /// @param scoreCommitDuration Seconds for score commits (from the draw).
    /// @param scoreRevealDuration Seconds for score reveals (from the end of score commits).
    struct JobParams {
        bytes32 model;
        uint96 bountyPerTask;
        uint8 k;
        uint8 m;
        uint8 threshold;
        uint8 tolerance;
        uint16 validatorShareBps;
        uint32 commitDuration;
        uint32 revealDuration;
        uint32 scoreCommitDuration;
        uint32 scoreRevealDuration;
    }

    /// @notice A job as stored (see `job`).
    struct JobView {
        address requester;
        bytes32 workflowHash;
        uint64 firstTaskId;
        uint32 taskCount;
        JobParams params;
    }

    /// @notice A task as stored (see `task`); masks are bit i = slot/seat i.
    struct TaskView {
        uint64 jobId;
        Phase phase;
        uint40 deadline;
        bytes32 inputHash;
        uint8 commitCount;
        uint8 revealCount;
        uint8 committeeSize;
        uint8 scoreCommitCount;
        uint8 scoreRevealCount;
        uint16 revealedMask;
        uint16 scoreRevealedMask;
    }

    // ----------------------------------------------------------------- errors

    /// @notice Thrown by post when the bounty per task is zero.
    error TaskZeroBounty();
    /// @notice Thrown by post when `k` is outside 1..`maximum`.
    error TaskResultCountOutOfRange(uint256 k, uint256 maximum);
    /// @notice Thrown by post when `m` is outside 1..`maximum`.
    error TaskCommitteeSizeOutOfRange(uint256 m, uint256 maximum);
    /// @notice Thrown by post when a threshold, a tolerance (0..100) or the validator share (0..10000) is out of range.
    error TaskParamOutOfRange(uint256 value, uint256 maximum);
    /// @notice Thrown by post when a phase duration is outside `minimum`..`maximum` seconds.
    error TaskDurationOutOfRange(uint256 duration, uint256 minimum, uint256 maximum);
    /// @notice Thrown by post when the four durations sum above `maximum` (the registry's unbonding delay).
    error TaskLifetimeTooLong(uint256 lifetime, uint256 maximum);
    /// @notice Thrown by post for zero or more than `maximum` input rows.
    error TaskInputCountOutOfRange(uint256 count, uint256 maximum);
    /// @notice Thrown by post when the model id is zero.
    error TaskZeroModel();
    /// @notice Thrown when `taskId` does not exist.
    error TaskNotFound(uint256 taskId);
    /// @notice Thrown when the task's effective phase is `actual` but the call needs `expected`.
    error TaskWrongPhase(uint256 taskId, Phase expected, Phase actual);
    /// @notice Thrown when the phase deadline `deadline` has passed at `nowTime`.
    error TaskDeadlinePassed(uint256 taskId, uint256 deadline, uint256 nowTime);
    /// @notice Thrown when a call needs the deadline `deadline` to have passed (it has not at `nowTime`).
    error TaskDeadlineNotPassed(uint256 taskId, uint256 deadline, uint256 nowTime);
    /// @notice Thrown by `commitResult` when all `k` result slots are taken.
    error TaskCommitsFull(uint256 taskId, uint256 k);
    /// @notice Thrown by `commitResult` when `node` already committed to `taskId`.
    error TaskAlreadyCommitted(uint256 taskId, address node);
    /// @notice Thrown by `commitResult` for a commitment whose low 224 bits are zero.
    error TaskZeroCommitment(uint256 taskId);
    /// @notice Thrown by `revealResult` when `slot` is not a committed slot (a reveal of another node's slot
    /// fails with `TaskCommitmentMismatch`, since commitments bind the node's address).
    error TaskNotSlotOwner(uint256 taskId, uint256 slot, address caller);
    /// @notice Thrown by `revealResult` when `slot` was already revealed.
    error TaskAlreadyRevealed(uint256 taskId, uint256 slot);
    /// @notice Thrown when a reveal does not hash to the stored commitment (for results, `committed` holds the
    /// 224 stored bits and `revealed` the full recomputed commitment).
    error TaskCommitmentMismatch(uint256 taskId, bytes32 committed, bytes32 revealed);
    /// @notice Thrown by `commitScores` when `caller` does not sit at committee `seat` of `taskId`, and by
    /// `revealScores` when `seat` is not a seat (a reveal by anyone but the seat's validator fails with
    /// `TaskCommitmentMismatch`, since the score commitment binds the validator's address).
    error TaskNotCommitteeSeat(uint256 taskId, uint256 seat, address caller);
    /// @notice Thrown by `commitScores` when `seat` already committed.
    error TaskScoresAlreadyCommitted(uint256 taskId, uint256 seat);
    /// @notice Thrown by `revealScores` when `seat` never committed.
    error TaskScoresNotCommitted(uint256 taskId, uint256 seat);
    /// @notice Thrown by `revealScores` when `seat` already revealed.
    error TaskScoresAlreadyRevealed(uint256 taskId, uint256 seat);
    /// @notice Thrown by `revealScores` when the score vector has `actual` entries instead of `expected`
    /// (the number of revealed results).
    error TaskScoreCountMismatch(uint256 taskId, uint256 expected, uint256 actual);
    /// @notice Thrown by `revealScores` when `scores[position]` is `score` > 100.
    error TaskScoreOutOfRange(uint256 taskId, uint256 position, uint256 score);
    /// @notice Thrown by `cancel` when `caller` is not the task's `requester`.
    error TaskNotRequester(uint256 taskId, address caller, address requester);
    /// @notice Thrown by `cancel` once the task has `commitCount` commits.
    error TaskHasCommits(uint256 taskId, uint256 commitCount);
    /// @notice Thrown by `finalize` when the task can not be settled yet; `readyAt` is when it can.
    error TaskNotFinalizable(uint256 taskId, Phase phase, uint256 readyAt);
    /// @notice Thrown by `claim` when `account` has nothing to claim.
    error MarketNothingToClaim(address account);
    /// @notice Thrown by `openAccount` when `caller` is neither the registry nor the account itself.
    error MarketNotRegistry(address caller);
    /// @notice Thrown by the constructor for a zero address.
    error MarketZeroAddress();

    // ----------------------------------------------------------------- events

    /// @notice Job `jobId` posted by `requester` with tasks `firstTaskId`..`firstTaskId + taskCount - 1`,
    /// `params`, and the workflow spec bytes (canonical JSON; the job stores their keccak256, see `job`).
    /// `commitDeadline` applies to every task of the job.
    event JobPosted(
        uint256 indexed jobId,
        address indexed requester,
        bytes32 indexed model,
        uint256 firstTaskId,
        uint256 taskCount,
        uint256 commitDeadline,
        JobParams params,
        bytes workflow
    );
    /// @notice Task `taskId` of `jobId` posted; `input` is its row (canonical JSON; the task stores its
    /// keccak256, see `task`).
    event TaskPosted(uint256 indexed taskId, uint256 indexed jobId, bytes input);
    /// @notice `node` committed `commitment` in `slot` (pass `slot` to `revealResult`); `commitCount` so far.
    event ResultCommitted(
        uint256 indexed taskId, address indexed node, uint256 slot, bytes32 commitment, uint256 commitCount
    );
    /// @notice `node` revealed `resultDigest` (the keccak256 of its result's canonical bytes, served p2p)
    /// in `slot`; it is the `order`-th revealed result (the index validators score it at).
    event ResultRevealed(
        uint256 indexed taskId,
        address indexed node,
        uint256 slot,
        uint256 order,
        bytes32 resultDigest,
        bytes32 salt
    );
    /// @notice A passed deadline moved the task's stored phase to `phase`, which ends at `deadline` (emitted by
    /// the call that applied it). Other transitions are announced by their own events: `ResultCommitted` with
    /// `commitCount == k` (Revealing until block time + revealDuration), `CommitteeDrawn` (ScoreCommitting until
    /// `scoreCommitDeadline`), the `ScoresCommitted` completing the committee (ScoreRevealing until block time +
    /// scoreRevealDuration), `TaskFinalized`, `TaskRefunded`. `phaseOf` always gives the current phase.
    event TaskPhaseChanged(uint256 indexed taskId, Phase phase, uint256 deadline);
    /// @notice The committee of `taskId` was drawn from `seed`: `validators[i]` sits at seat i (its median
    /// weight is in `seat`); score commits are due by `scoreCommitDeadline`.
    event CommitteeDrawn(
        uint256 indexed taskId, bytes32 seed, address[] validators, uint256 scoreCommitDeadline
    );
    /// @notice `validator` at `seat` committed `commitment` to its score vector.
    event ScoresCommitted(
        uint256 indexed taskId, address indexed validator, uint256 seat, bytes32 commitment
    );
    /// @notice `validator` at `seat` revealed `scores` (scores[i] is for the i-th revealed result).
    event ScoresRevealed(uint256 indexed taskId, address indexed validator, uint256 seat, uint8[] scores);
    /// @notice Task settled. `medians[i]` is the stake-weighted median for the i-th revealed result;
    /// bit i of `acceptedMask` (reveal order) marks results paid `nodeReward` each; bit j of `agreedMask`
    /// (seat) marks validators paid `validatorReward` each; `refund` went back to `requester`.
    event TaskFinalized(
        uint256 indexed taskId,
        address indexed requester,
        uint8[] medians,
        uint256 acceptedMask,
        uint256 agreedMask,
        uint256 nodeReward,
        uint256 validatorReward,
        uint256 refund
    );
    /// @notice The whole bounty `amount` of `taskId` went back to `requester` for `reason`.
    event TaskRefunded(
        uint256 indexed taskId, address indexed requester, RefundReason reason, uint256 amount
    );
    /// @notice `account` was slashed `amount` for not revealing on `taskId` (see registry `Slashed`).
    event MisconductSlashed(uint256 indexed taskId, address indexed account, uint256 amount);
    /// @notice `account`'s balance slot was created ahead of its first credit.
    event AccountOpened(address indexed account);
    /// @notice `account` claimed its whole balance, `amount` tokens (sent to it by the same call); `claimedOf`
    /// totals the claims.
    event Claimed(address indexed account, uint256 amount);

    // ----------------------------------------------------------------- requester

    /// @notice Post a job: one workflow, one task per input row. Pulls `bountyPerTask * inputs.length`.
    /// @return jobId The new job id.
    /// @return firstTaskId Id of the task of `inputs[0]`; the others follow sequentially.
    function postJob(JobParams calldata params, bytes calldata workflow, bytes[] calldata inputs)
        external
        returns (uint256 jobId, uint256 firstTaskId);

    /// @notice Post a single task (a job with one row).
    function postTask(JobParams calldata params, bytes calldata workflow, bytes calldata input)
        external
        returns (uint256 jobId, uint256 taskId);

    /// @notice Refund a task before its first commit (requester only).
    function cancel(uint256 taskId) external;

    // ----------------------------------------------------------------- nodes

    /// @notice Commit to a result: `commitment = resultCommitment(taskId, msg.sender, resultDigest, salt)`.
    /// Only an active registered node serving the job's model, at most `k` per task, before the deadline.
    /// @return slot The slot to reveal in.
    function commitResult(uint256 taskId, bytes32 commitment) external returns (uint256 slot);

    /// @notice Reveal the result committed in `slot`. The last expected reveal draws the committee.
    function revealResult(uint256 taskId, uint256 slot, bytes32 resultDigest, bytes32 salt) external;

    // ----------------------------------------------------------------- validators

    /// @notice Draw the committee once the reveal deadline passed and before `revealDeadline +
    /// scoreCommitDuration` (anyone). Needed only when not every commitment was revealed (otherwise the last
    /// reveal already drew). Score commits are then due by `revealDeadline + scoreCommitDuration`.
    function drawCommittee(uint256 taskId) external;

    /// @notice Commit to a score vector: `commitment = scoreCommitment(taskId, msg.sender, scores, salt)`.
    function commitScores(uint256 taskId, uint256 seatIndex, bytes32 commitment) external;

    /// @notice Reveal the score vector committed at `seat`; the last expected reveal finalizes the task.
    function revealScores(uint256 taskId, uint256 seatIndex, uint8[] calldata scores, bytes32 salt) external;

    // ----------------------------------------------------------------- anyone

    /// @notice Settle a task whose last deadline passed (or whose scores are all in): pays, slashes,
    /// refunds, or refunds outright when nothing could be validated.
    function finalize(uint256 taskId) external;

    /// @notice Create `account`'s balance slot ahead of its first credit, so settlements that pay it only
    /// rewrite a live slot. The registry calls it at registration; anyone may call it for themselves.
    /// Idempotent.
    function openAccount(address account) external;

    /// @notice Pay the caller its whole balance (rewards and refunds); emits `Claimed`. `claimedOf` totals
    /// the claims.
    /// @return amount Tokens sent.
    function claim() external returns (uint256 amount);

    // ----------------------------------------------------------------- views

    /// @notice The result commitment a node must submit.
    function resultCommitment(uint256 taskId, address node, bytes32 resultDigest, bytes32 salt)
        external
        pure
        returns (bytes32);

    /// @notice The score commitment a validator must submit.
    function scoreCommitment(uint256 taskId, address validator, uint8[] calldata scores, bytes32 salt)
        external
        pure
        returns (bytes32);

    /// @notice The effective phase of `taskId` now (deadline transitions applied) and when it ends.
    function phaseOf(uint256 taskId) external view returns (Phase phase, uint256 deadline);
    /// @notice The stored state of `taskId`.
    function task(uint256 taskId) external view returns (TaskView memory);
    /// @notice The stored job `jobId`.
    function job(uint256 jobId) external view returns (JobView memory);
    /// @notice Result slot `slot` of `taskId`: the node that committed it and whether it was revealed.
    function submission(uint256 taskId, uint256 slot) external view returns (address node, bool revealed);
    /// @notice Committee seat `seat` of `taskId`: validator, median weight (its stake at the draw / 2^32 + 1),
    /// commit/reveal flags and seal (the score commitment, then the packed scores: byte i = score of the i-th
    /// revealed result, bit 255 set).
    function seat(uint256 taskId, uint256 seatIndex)
        external
        view
        returns (address validator, uint96 weight, bool committed, bool revealed, bytes32 seal);
    /// @notice Claimable balance of `account`.
    function balanceOf(address account) external view returns (uint256);
    /// @notice Total `account` has claimed so far.
    function claimedOf(address account) external view returns (uint256);
    /// @notice Number of tasks posted so far (ids are 1..taskCount).
    function taskCount() external view returns (uint256);
    /// @notice Number of jobs posted so far (ids are 1..jobCount).
    function jobCount() external view returns (uint256);
    /// @notice The stake registry.
    function registry() external view returns (address);
    /// @notice The payment token (the registry's token).
    function token() external view returns (address);
}
