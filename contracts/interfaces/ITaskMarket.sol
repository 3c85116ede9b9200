// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ITaskMarket (protocol v2: batches)
/// @notice Synod's market for LLM work, settled per **batch** of rows. A requester posts a job (one workflow,
/// many input rows) split into batches of `batchSize` rows; per batch, k staked nodes each commit once and
/// reveal once (one result digest per row), a committee of m validators drawn by stake from a seed fixed in a
/// future block commits and reveals one score vector each (one score per row per seated node), and `settle`
/// computes per result the stake-weighted median, pays accepted results and agreeing validators, slashes
/// misconduct, refunds the rest, crediting each participant once per batch. Payments are pull payments.
/// @dev Lifecycle of a batch (stored phase; transitions at a deadline are applied lazily, `phaseOf` shows the
/// effective phase; see docs/contracts.md "v2"):
///   Committing --k commits | deadline with >=1 commit--> Revealing
///   Revealing  --all seats revealed | deadline with >=1 reveal--> Drawing
///   Drawing    --drawCommittee (arm, then draw after the seed block)--> ScoreCommitting
///   ScoreCommitting --all seats committed | deadline--> ScoreRevealing
///   ScoreRevealing  --settle (all revealed | deadline)--> Settled, or (no quorum, round < MAX_ROUNDS) Drawing
///   Committing --cancel (0 commits) | settle after deadline with 0 commits--> Refunded
///   Revealing  --settle after deadline with 0 reveals--> Refunded
///   Drawing    --settle after the draw deadline | no active validator at the draw--> Refunded
/// Only hashes and counters are stored per batch; rows, digests and scores live in calldata and events.
interface ITaskMarket {
    /// @notice Stored phase of a batch.
    enum Phase {
        None,
        Committing,
        Revealing,
        Drawing,
        ScoreCommitting,
        ScoreRevealing,
        Settled,
        Refunded
    }

    /// @notice Why a batch's whole bounty went back to its requester.
    enum RefundReason {
        Cancelled,
        NoCommit,
        NoReveal,
        NoValidator,
        NoDraw
    }

    /// @notice Why a participant was slashed.
    enum SlashReason {
        NoReveal,
        NoScoreCommit,
        NoScoreReveal,
        Junk
    }

    /// @notice Parameters of a job, shared by all its batches.
    /// @param model keccak256 of the model name nodes must serve (non-zero).
    /// @param bountyPerTask Tokens escrowed per row (> 0).
    /// @param batchSize Rows per batch B, 1..MAX_BATCH_SIZE (the last batch holds the remainder).
    /// @param k Node seats per batch, 1..MAX_RESULTS.
    /// @param m Committee seats per batch, 1..MAX_COMMITTEE.
    /// @param threshold A result is accepted when its median score is >= threshold, 0..100.
    /// @param tolerance A validator is paid when every score it gave is within tolerance of the median, 0..100.
    /// @param junkFloor A revealed node whose medians average below junkFloor forfeits a slash, 0..threshold.
    /// @param validatorShareBps Share of each row's bounty for the committee, 0..10000 basis points.
    /// @param commitDuration Seconds for node commits (from posting).
    /// @param revealDuration Seconds for node reveals (from the end of commits).
    /// @param scoreCommitDuration Seconds of the draw window (from the end of reveals) and of score commits (from
    /// the draw).
    /// @param scoreRevealDuration Seconds for score reveals (from the end of score commits).
    /// Every duration lies in `minPhaseDuration()`..MAX_PHASE_DURATION.
    struct JobParams {
        bytes32 model;
        uint96 bountyPerTask;
        uint16 batchSize;
        uint8 k;
        uint8 m;
        uint8 threshold;
        uint8 tolerance;
        uint8 junkFloor;
        uint16 validatorShareBps;
        uint32 commitDuration;
        uint32 revealDuration;
        uint32 scoreCommitDuration;
        uint32 scoreRevealDuration;
    }

    /// @notice A job as stored (see `job`). The workflow hash is not stored per job: each batch stores its
    /// `inputHash`, which binds it (the workflow bytes are in `JobPosted`).
    struct JobView {
        address requester;
        uint64 firstBatchId;
        uint32 batchCount;
        uint32 rowCount;
        JobParams params;
    }

    /// @notice A batch as stored (see `batch`). Masks: bit i = node seat i / committee seat i.
    /// @param inputHash `keccak256(abi.encode(keccak256(workflow), rowsHash(rows)))`: the job's workflow bytes and
    /// this batch's rows in one stored word (both travel in `JobPosted` / `BatchPosted`), while the batch is open;
    /// 0 once it is Settled or Refunded (the word lived in its recycled seat page).
    /// @param seedBlock Block whose hash seeds the committee draw (0 while not armed).
    /// @param round Scoring round, 0-based (a round without quorum is re-scored by a new committee once).
    struct BatchView {
        uint64 jobId;
        Phase phase;
        uint40 deadline;
        uint16 rows;
        uint32 firstRow;
        uint8 round;
        uint8 commitCount;
        uint8 revealCount;
        uint16 revealedMask;
        uint8 committeeSize;
        uint16 scoreCommitMask;
        uint16 scoreRevealMask;
        uint40 seedBlock;
        bytes32 inputHash;
    }

    // ----------------------------------------------------------------- errors

    /// @notice Thrown by postJob when the bounty per task is zero.
    error JobZeroBounty();
    /// @notice Thrown by postJob when the model id is zero.
    error JobZeroModel();
    /// @notice Thrown by postJob when `batchSize` is outside 1..`maximum`.
    error JobBatchSizeOutOfRange(uint256 batchSize, uint256 maximum);
    /// @notice Thrown by postJob when `k` is outside 1..`maximum`.
    error JobResultCountOutOfRange(uint256 k, uint256 maximum);
    /// @notice Thrown by postJob when `m` is outside 1..`maximum`.
    error JobCommitteeSizeOutOfRange(uint256 m, uint256 maximum);
    /// @notice Thrown by postJob when batchSize * k * m exceeds `maximum` score cells (settlement gas bound).
    error JobBatchTooLarge(uint256 cells, uint256 maximum);
    /// @notice Thrown by postJob when threshold / tolerance (0..100), junkFloor (0..threshold) or the validator
    /// share (0..10000) is above `maximum`.
    error JobParamOutOfRange(uint256 value, uint256 maximum);
    /// @notice Thrown by postJob when a phase duration is outside `minimum`..`maximum` seconds.
    error JobDurationOutOfRange(uint256 duration, uint256 minimum, uint256 maximum);
    /// @notice Thrown by postJob for zero rows.
    error JobNoRows();
    /// @notice Thrown by postJob when the job needs more than `maxRows` rows or `maxBatches` batches in one
    /// transaction (the gas-safe size); split it into several jobs.
    error JobTooLarge(uint256 rows, uint256 batches, uint256 maxRows, uint256 maxBatches);
    /// @notice Thrown by postJob when the market received `received` tokens instead of `expected`
    /// (fee-on-transfer or rebasing token).
    error MarketPaymentShort(uint256 expected, uint256 received);

    /// @notice Thrown when `batchId` does not exist.
    error BatchNotFound(uint256 batchId);
    /// @notice Thrown when the batch's effective phase is `actual` but the call needs `expected`.
    error BatchWrongPhase(uint256 batchId, Phase expected, Phase actual);
    /// @notice Thrown when the phase deadline `deadline` has passed at `nowTime`.
    error BatchDeadlinePassed(uint256 batchId, uint256 deadline, uint256 nowTime);
    /// @notice Thrown by `commitResult` when all `k` node seats are taken.
    error BatchSeatsFull(uint256 batchId, uint256 k);
    /// @notice Thrown by `commitResult` when `node` already holds a seat of `batchId`.
    error BatchAlreadyCommitted(uint256 batchId, address node);
    /// @notice Thrown by `commitResult` / `commitScores` for a zero commitment (for results: zero low 224 bits).
    error BatchZeroCommitment(uint256 batchId);
    /// @notice Thrown by `revealResult` when `seat` is not a taken node seat (a reveal of another node's seat
    /// fails with `BatchCommitmentMismatch`: the commitment binds the node's address).
    error BatchNotNodeSeat(uint256 batchId, uint256 seat, address caller);
    /// @notice Thrown by `revealResult` when `seat` was already revealed.
    error BatchAlreadyRevealed(uint256 batchId, uint256 seat);
    /// @notice Thrown by `revealResult` when `actual` digests are given for a batch of `expected` rows.
    error BatchDigestCountMismatch(uint256 batchId, uint256 expected, uint256 actual);
    /// @notice Thrown when a reveal does not hash to the stored commitment (for results, `committed` holds the
    /// 224 stored bits and `revealed` the full recomputed commitment).
    error BatchCommitmentMismatch(uint256 batchId, bytes32 committed, bytes32 revealed);
    /// @notice Thrown by `drawCommittee` while the armed seed block `seedBlock` is not yet below `blockNumber`.
    error BatchSeedNotReady(uint256 batchId, uint256 seedBlock, uint256 blockNumber);
    /// @notice Thrown by `commitScores` when `caller` does not sit at committee `seat`, and by `revealScores`
    /// when `seat` is not a committee seat.
    error BatchNotCommitteeSeat(uint256 batchId, uint256 seat, address caller);
    /// @notice Thrown by `commitScores` when `seat` already committed.
    error BatchScoresAlreadyCommitted(uint256 batchId, uint256 seat);
    /// @notice Thrown by `revealScores` when `seat` never committed.
    error BatchScoresNotCommitted(uint256 batchId, uint256 seat);
    /// @notice Thrown by `revealScores` when `seat` already revealed.
    error BatchScoresAlreadyRevealed(uint256 batchId, uint256 seat);
    /// @notice Thrown by `revealScores` when the score vector has `actual` bytes instead of `expected`
    /// (commitCount * rows).
    error BatchScoreCountMismatch(uint256 batchId, uint256 expected, uint256 actual);
    /// @notice Thrown by `revealScores` when `scores[position]` is `score` > 100.
    error BatchScoreOutOfRange(uint256 batchId, uint256 position, uint256 score);
    /// @notice Thrown by `settle` when `actual` score vectors are passed but `expected` seats revealed.
    error BatchScoreVectorCountMismatch(uint256 batchId, uint256 expected, uint256 actual);
    /// @notice Thrown by `settle` when the vector passed for committee `seat` hashes to `given`, not `stored`.
    error BatchScoreVectorMismatch(uint256 batchId, uint256 seat, bytes32 stored, bytes32 given);
    /// @notice Thrown by `cancel` when `caller` is not the batch's `requester`.
    error BatchNotRequester(uint256 batchId, address caller, address requester);
    /// @notice Thrown by `cancel` once the batch has `commitCount` commits.
    error BatchHasCommits(uint256 batchId, uint256 commitCount);
    /// @notice Thrown by `settle` when the batch can not be settled (or refunded) yet; `readyAt` is the first
    /// timestamp it can (0: never again, it is terminal or waits for another action such as the draw).
    error BatchNotSettleable(uint256 batchId, Phase phase, uint256 readyAt);

    /// @notice Thrown by `claim` when `account` has nothing to claim.
    error MarketNothingToClaim(address account);
    /// @notice Thrown by `openAccount` when `caller` is neither the registry nor the account itself.
    error MarketNotRegistry(address caller);
    /// @notice Thrown by the constructor for a zero address.
    error MarketZeroAddress();
    /// @notice Thrown by the constructor when the minimum phase duration is outside 1..`maximum`.
    error MarketMinPhaseDurationOutOfRange(uint256 minimum, uint256 maximum);

    // ----------------------------------------------------------------- events

    /// @notice Job `jobId` posted by `requester`: batches `firstBatchId`..`firstBatchId + batchCount - 1` over
    /// `rowCount` rows, `params`, and the workflow spec bytes (canonical JSON; their keccak256 is bound in each
    /// batch's stored `inputHash`).
    event JobPosted(
        uint256 indexed jobId,
        address indexed requester,
        bytes32 indexed model,
        uint256 firstBatchId,
        uint256 batchCount,
        uint256 rowCount,
        JobParams params,
        bytes workflow
    );
    /// @notice Batch `batchId` of `jobId` holds the job's rows `firstRow`..`firstRow + rows.length - 1`
    /// (canonical JSON each); `rowsHash` = `rowsHash(rows)`, stored inside the batch's `inputHash` with the job's
    /// workflow hash; commits are due by `commitDeadline`.
    event BatchPosted(
        uint256 indexed batchId,
        uint256 indexed jobId,
        uint256 firstRow,
        uint256 commitDeadline,
        bytes32 rowsHash,
        bytes[] rows
    );
    /// @notice `node` took node `seat` with `commitment`; `commitCount` seats are taken.
    event ResultCommitted(
        uint256 indexed batchId, address indexed node, uint256 seat, bytes32 commitment, uint256 commitCount
    );
    /// @notice `node` at `seat` revealed `digests` (digests[r] = keccak256 of its canonical result for row r of
    /// the batch, bytes served p2p) and its `salt`.
    event ResultRevealed(
        uint256 indexed batchId, address indexed node, uint256 seat, bytes32[] digests, bytes32 salt
    );
    /// @notice A passed deadline moved the stored phase to `phase`, which ends at `deadline` (emitted by the
    /// call that applied it). Other transitions are announced by their own events.
    event BatchPhaseChanged(uint256 indexed batchId, Phase phase, uint256 deadline);
    /// @notice The committee draw of `round` will use the hash of block `seedBlock` (draw once
    /// `block.number > seedBlock`, within 256 blocks, by `drawDeadline`).
    event CommitteeSeedArmed(uint256 indexed batchId, uint256 round, uint256 seedBlock, uint256 drawDeadline);
    /// @notice The committee of `round` was drawn from `seed`: `validators[i]` sits at seat i with median
    /// weight `weights[i]` (its stake at the draw); score commits are due by `scoreCommitDeadline`.
    event CommitteeDrawn(
        uint256 indexed batchId,
        uint256 round,
        bytes32 seed,
        address[] validators,
        uint96[] weights,
        uint256 scoreCommitDeadline
    );
    /// @notice `validator` at `seat` committed `commitment` to its score vector.
    event ScoresCommitted(
        uint256 indexed batchId, address indexed validator, uint256 seat, bytes32 commitment
    );
    /// @notice `validator` at `seat` revealed `scores` (byte s * rows + r scores node seat s's result for row r).
    event ScoresRevealed(uint256 indexed batchId, address indexed validator, uint256 seat, bytes scores);
    /// @notice Round `round` ended with `voters` revealed score vectors out of `committeeSize` seats, short of a
    /// majority: a new committee is armed (`CommitteeSeedArmed` follows).
    event BatchRescoring(uint256 indexed batchId, uint256 round, uint256 voters, uint256 committeeSize);
    /// @notice Batch settled. `scored` is false when no committee reached quorum in MAX_ROUNDS rounds (every
    /// revealed result is then paid, the validator share refunded). `medians` (byte s * rows + r, 0 for an
    /// unrevealed seat or when not scored); `nodePaid[s]` credited to node seat s; committee seats in
    /// `agreedMask` were credited `validatorReward` each; `refund` went to `requester`.
    event BatchSettled(
        uint256 indexed batchId,
        address indexed requester,
        uint256 round,
        bool scored,
        bytes medians,
        uint256[] nodePaid,
        uint256 agreedMask,
        uint256 validatorReward,
        uint256 refund
    );
    /// @notice The whole bounty `amount` of `batchId` went back to `requester` for `reason`.
    event BatchRefunded(
        uint256 indexed batchId, address indexed requester, RefundReason reason, uint256 amount
    );
    /// @notice `account` was slashed `amount` on `batchId` for `reason` (see registry `Slashed`).
    event MisconductSlashed(
        uint256 indexed batchId, address indexed account, SlashReason reason, uint256 amount
    );
    /// @notice `account`'s balance slot was created ahead of its first credit.
    event AccountOpened(address indexed account);
    /// @notice `account` claimed its whole balance, `amount` tokens.
    event Claimed(address indexed account, uint256 amount);

    // ----------------------------------------------------------------- requester

    /// @notice Post a job: `rows` split in order into batches of `params.batchSize`. Pulls
    /// `bountyPerTask * rows.length` and reverts with `MarketPaymentShort` unless all of it arrived.
    /// At most MAX_ROWS_PER_POST rows and MAX_BATCHES_PER_POST batches per call (`JobTooLarge`).
    /// @return jobId The new job id.
    /// @return firstBatchId Id of the batch holding `rows[0]`; the others follow sequentially.
    function postJob(JobParams calldata params, bytes calldata workflow, bytes[] calldata rows)
        external
        returns (uint256 jobId, uint256 firstBatchId);

    /// @notice Refund a batch before its first commit (requester only, stored phase Committing).
    function cancel(uint256 batchId) external;

    // ----------------------------------------------------------------- nodes

    /// @notice Take a node seat: `commitment = resultCommitment(batchId, msg.sender, digests, salt)`. Only an
    /// active node serving the job's model; it stays locked in the registry (no withdraw) until settlement.
    /// @return seat The node seat to reveal in.
    function commitResult(uint256 batchId, bytes32 commitment) external returns (uint256 seat);

    /// @notice Reveal one digest per row of the batch (`digests.length == rows`). The last expected reveal
    /// closes reveals and arms the committee seed.
    function revealResult(uint256 batchId, uint256 seat, bytes32[] calldata digests, bytes32 salt) external;

    // ----------------------------------------------------------------- committee

    /// @notice Anyone, phase Drawing, by the draw deadline. Arms the seed (`seedBlock = block.number +
    /// SEED_DELAY`) when not armed or when the armed block left the 256-block window; otherwise, once
    /// `block.number > seedBlock`, draws the committee from
    /// `keccak256(abi.encode(blockhash(seedBlock), entropy, batchId, round))` and locks its seats.
    /// @return drawn True when the committee was drawn (false: only armed).
    function drawCommittee(uint256 batchId) external returns (bool drawn);

    /// @notice Commit to a score vector: `commitment = scoreCommitment(batchId, msg.sender, scores, salt)`.
    /// Sent while the batch is still in phase Drawing (before the draw deadline) with a usable seed (its block
    /// mined, within the 256-block window), it first draws the committee exactly as `drawCommittee` would
    /// (same seed, same events), saving the separate draw transaction; see `committeePreview`.
    function commitScores(uint256 batchId, uint256 seat, bytes32 commitment) external;
    /// @notice The committee a draw in this block would seat (`committeePreview` order = seat order), so that
    /// a drawn validator can send the first `commitScores`, which draws the committee itself when the batch is
    /// still in phase Drawing with a usable seed. Empty when no draw would happen now. A stake change before
    /// the draw can change the committee (the commit then reverts `BatchNotCommitteeSeat`).
    function committeePreview(uint256 batchId)
        external
        view
        returns (address[] memory validators, uint96[] memory weights);

    /// @notice Reveal the score vector committed at `seat`: `commitCount * rows` bytes, each 0..100; byte
    /// s * rows + r scores node seat s's digest for row r (bytes of unrevealed seats are ignored).
    function revealScores(uint256 batchId, uint256 seat, bytes calldata scores, bytes32 salt) external;

    /// @notice `revealScores`, then, when this reveal is the round's last (every committed seat has revealed),
    /// `settle` in the same transaction: one transaction less per batch, paid by the last revealer. When other
    /// committed seats have not revealed yet it only reveals (and returns false); `scoreVectors` is then ignored.
    /// @param scoreVectors As for `settle`: the round's revealed vectors in committee-seat order, this one included.
    /// @return settled Whether the round ended (settled, re-scored or settled by the fallback rule, as `settle`).
    function revealScoresAndSettle(
        uint256 batchId,
        uint256 seat,
        bytes calldata scores,
        bytes32 salt,
        bytes[] calldata scoreVectors
    ) external returns (bool settled);

    // ----------------------------------------------------------------- anyone

    /// @notice Settle, re-score or refund a batch whose phase allows it (see `BatchNotSettleable`).
    /// @param scoreVectors The revealed score vectors of the current round in committee-seat order (one per
    /// seat in `scoreRevealMask`; empty for the refund paths); each is checked against its stored hash.
    function settle(uint256 batchId, bytes[] calldata scoreVectors) external;

    /// @notice Create `account`'s balance slot ahead of its first credit (the registry at registration, or the
    /// account itself). Idempotent.
    function openAccount(address account) external;

    /// @notice Pay the caller its whole balance; emits `Claimed`.
    /// @return amount Tokens sent.
    function claim() external returns (uint256 amount);

    // ----------------------------------------------------------------- views

    /// @notice `keccak256(abi.encode(batchId, node, keccak256(abi.encodePacked(digests)), salt))`.
    function resultCommitment(uint256 batchId, address node, bytes32[] calldata digests, bytes32 salt)
        external
        pure
        returns (bytes32);

    /// @notice `keccak256(abi.encode(batchId, validator, keccak256(scores), salt))`.
    function scoreCommitment(uint256 batchId, address validator, bytes calldata scores, bytes32 salt)
        external
        pure
        returns (bytes32);

    /// @notice `keccak256(abi.encodePacked(keccak256(rows[0]), ..., keccak256(rows[n-1])))`.
    function rowsHash(bytes[] calldata rows) external pure returns (bytes32);

    /// @notice The effective phase of `batchId` now (deadline transitions applied) and when it ends.
    function phaseOf(uint256 batchId) external view returns (Phase phase, uint256 deadline);
    /// @notice The stored state of `batchId`.
    function batch(uint256 batchId) external view returns (BatchView memory);
    /// @notice The stored job `jobId`.
    function job(uint256 jobId) external view returns (JobView memory);
    /// @notice Node seat `seat` of `batchId`: the node and whether it revealed. Once the batch is Settled or
    /// Refunded its seat page serves another batch: `node` is then the zero address (see `ResultCommitted`).
    function nodeSeat(uint256 batchId, uint256 seat) external view returns (address node, bool revealed);
    /// @notice Committee seat `seat` of `batchId` (current round): validator, weight (stake at the draw),
    /// flags, and seal (the score commitment, then keccak256 of the revealed scores; 0 before the commit). Once the
    /// batch is Settled or Refunded: zero validator, weight and seal, the flags only (see `CommitteeDrawn`).
    function committeeSeat(uint256 batchId, uint256 seat)
        external
        view
        returns (address validator, uint96 weight, bool committed, bool revealed, bytes32 seal);
    /// @notice Claimable balance of `account`.
    function balanceOf(address account) external view returns (uint256);
    /// @notice Total `account` has claimed so far.
    function claimedOf(address account) external view returns (uint256);
    /// @notice Seats `account` holds in batches not ended yet (a node seat from its commit, a committee seat from
    /// the draw, each released when the batch settles, re-scores or is refunded). The registry's `withdraw`
    /// waits for 0, and `IStakeRegistry.participant` reports it as `openSeats`.
    function openSeatsOf(address account) external view returns (uint256);
    /// @notice Number of batches posted so far (ids 1..batchCount).
    function batchCount() external view returns (uint256);
    /// @notice Number of jobs posted so far (ids 1..jobCount).
    function jobCount() external view returns (uint256);
    /// @notice Shortest phase duration accepted, seconds (set at deployment, >= 1; 30 by default).
    function minPhaseDuration() external view returns (uint256);
    /// @notice The stake registry.
    function registry() external view returns (address);
    /// @notice The payment token (the registry's token).
    function token() external view returns (address);
}
