// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {ITaskMarket} from "./interfaces/ITaskMarket.sol";
import {JobRules} from "./libraries/JobRules.sol";
import {Tally} from "./libraries/Tally.sol";

/// @title TaskMarket (protocol v2)
/// @notice Jobs of many rows settled per batch: commit-reveal result digests per batch, a committee drawn by raw
/// stake from a future block hash, commit-reveal score vectors, stake-weighted medians per result, pull payments
/// credited once per batch. See `ITaskMarket` and docs/contracts.md ("Protocol v2").
/// @dev Storage (per-row data lives only in calldata and events):
///  - `_jobs[jobId]`: 2 slots. slot0 requester(160) | bountyPerTask(96); slot1 batchSize(16) | k, m, threshold,
///    tolerance, junkFloor (8 each) | validatorShareBps(16) | 4 durations (24 each) | modelId(32, the registry's
///    interned id) | firstBatchId(40) | batchCount(16). The workflow hash is bound in each batch's inputHash.
///  - `_batches[batchId]`: 1 slot. jobId(40) | deadline(40) | phase(8) | rows(16) | round(8) |
///    commitCount(8) | revealCount(8) | revealedMask(16) | committeeSize(8) | scoreCommitMask(16) |
///    scoreRevealMask(16) | seedBlock(40) | page(32, the seat page while the batch is open).
///  - `_pages[page]`, 49 slots, one open batch's words (pages are recycled through a free list whose head is
///    `_freePage`): [s] nodeId(32, registry id) | low 224 bits of the result commitment; [_COMMITTEE + s]
///    weight(96, raw stake at the draw) | validator(160); [_SEALS + s] the score commitment, then keccak256 of the
///    revealed score vector; [_INPUT] the batch's input hash `keccak256(abi.encode(keccak256(workflow),
///    rowsHash))` while the batch is open (one word for the job's workflow and the batch's rows; both travel in
///    the events), `_LINK | next free page` while the page is free. A reused page keeps its old words (so writes
///    rewrite live slots); reads are guarded by commitCount, committeeSize and the masks, never by the words.
///  - `_accounts[a]`: balance(128) | claimed(104) | seats(16, seats held in unended batches) | open(8).
/// Loops run over at most MAX_RESULTS / MAX_COMMITTEE seats, a batch's rows (<= MAX_BATCH_SIZE) or a post's
/// batches (<= MAX_BATCHES_PER_POST); settlement does at most MAX_SCORE_CELLS * MAX_COMMITTEE score reads.
contract TaskMarket is ITaskMarket, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Most rows per batch (B).
    uint256 public constant MAX_BATCH_SIZE = JobRules.MAX_BATCH_SIZE;
    /// @notice Most node seats per batch (k).
    uint256 public constant MAX_RESULTS = JobRules.MAX_RESULTS;
    /// @notice Most committee seats per batch (m).
    uint256 public constant MAX_COMMITTEE = JobRules.MAX_COMMITTEE;
    /// @notice Most score cells per batch (batchSize * k * m): bounds settlement gas.
    uint256 public constant MAX_SCORE_CELLS = JobRules.MAX_SCORE_CELLS;
    /// @notice Most rows one `postJob` accepts (gas-safe size).
    uint256 public constant MAX_ROWS_PER_POST = 1024;
    /// @notice Most batches one `postJob` creates (gas-safe size).
    uint256 public constant MAX_BATCHES_PER_POST = 128;
    /// @notice Longest phase, seconds (fits the 24-bit duration fields).
    uint256 public constant MAX_PHASE_DURATION = JobRules.MAX_PHASE_DURATION;
    /// @notice Highest score, threshold and tolerance.
    uint256 public constant MAX_SCORE = JobRules.MAX_SCORE;
    /// @notice Basis-point denominator of the validator share.
    uint256 public constant BPS = JobRules.BPS;
    /// @notice Blocks between closing the reveals (or arming) and the block whose hash seeds the draw.
    uint256 public constant SEED_DELAY = 2;
    /// @notice Blocks for which `blockhash` is available; a draw later than that re-arms.
    uint256 public constant BLOCKHASH_WINDOW = 256;
    /// @notice Scoring rounds per batch (a round without a majority of revealed vectors is re-scored once).
    uint256 public constant MAX_ROUNDS = 2;

    uint256 private constant _LOW224 = (1 << 224) - 1;
    /// @dev Offsets in a seat page: node seats at 0.., committee seats at _COMMITTEE.., score seals at _SEALS...
    uint256 private constant _COMMITTEE = 16;
    uint256 private constant _SEALS = 32;
    /// @dev The page slot of the open batch's input hash, and of the free-list link while the page is free.
    uint256 private constant _INPUT = 48;
    /// @dev Marks the link word a freed page keeps in slot `_INPUT` (so the slot stays non-zero).
    uint256 private constant _LINK = 1 << 255;

    struct Batch {
        uint40 jobId;
        uint40 deadline;
        Phase phase;
        uint16 rows;
        uint8 round;
        uint8 commitCount;
        uint8 revealCount;
        uint16 revealedMask;
        uint8 committeeSize;
        uint16 scoreCommitMask;
        uint16 scoreRevealMask;
        uint40 seedBlock;
        uint32 page;
    }

    /// @dev One slot per account: balance(128) | claimed(104, lifetime total) | seats(16) | open(8).
    /// `openAccount` and `claimed` keep the slot non-zero, so credits rewrite a live slot. `seats` counts the
    /// seats the account holds in batches not ended yet (the registry's `withdraw` waits for 0): kept here, in
    /// the slot a settlement writes anyway to credit the account, instead of in the registry.
    struct Account {
        uint128 balance;
        uint104 claimed;
        uint16 seats;
        bool open;
    }

    IStakeRegistry private immutable _registry;
    IERC20 private immutable _token;
    uint256 private immutable _minPhaseDuration;

    uint64 private _batchCount;
    uint64 private _jobCount;
    /// @dev Head of the free-page list (0: empty) and the number of pages ever made; same slot as the counters.
    uint32 private _freePage;
    uint32 private _pageCount;

    mapping(uint256 jobId => JobRules.Job) private _jobs;
    mapping(uint256 batchId => Batch) private _batches;
    /// @dev Seat pages (see the storage notes above): a page holds one open batch's seat words and is recycled
    /// when the batch ends, so seat writes rewrite live slots instead of filling empty ones.
    mapping(uint256 page => bytes32[49]) private _pages;
    mapping(address account => Account) private _accounts;
    /// @dev Cache of the registry's interned model ids (saves the registry call when posting).
    mapping(bytes32 model => uint32) private _modelIds;

    /// @param registry_ The stake registry; its token is the payment token.
    /// @param minPhaseDuration_ Shortest phase a job may ask for, seconds (1..MAX_PHASE_DURATION; deployments use
    /// at least 30 so that no phase fits inside one block).
    constructor(IStakeRegistry registry_, uint256 minPhaseDuration_) {
        if (address(registry_) == address(0)) revert MarketZeroAddress();
        if (minPhaseDuration_ == 0 || minPhaseDuration_ > MAX_PHASE_DURATION) {
            revert MarketMinPhaseDurationOutOfRange(minPhaseDuration_, MAX_PHASE_DURATION);
        }
        _registry = registry_;
        _token = IERC20(registry_.token());
        _minPhaseDuration = minPhaseDuration_;
    }

    // ----------------------------------------------------------------- requester

    /// @inheritdoc ITaskMarket
    function postJob(JobParams calldata params, bytes calldata workflow, bytes[] calldata rows)
        external
        nonReentrant
        returns (uint256 jobId, uint256 firstBatchId)
    {
        uint256 n = rows.length;
        if (n == 0) revert JobNoRows();
        // The bounds inline; the library call (which reverts with the precise error) only for a bad job.
        if (!JobRules.valid(params, _minPhaseDuration)) JobRules.check(params, _minPhaseDuration);
        uint256 size = params.batchSize;
        uint256 batches = (n + size - 1) / size;
        if (n > MAX_ROWS_PER_POST || batches > MAX_BATCHES_PER_POST) {
            revert JobTooLarge(n, batches, MAX_ROWS_PER_POST, MAX_BATCHES_PER_POST);
        }
        (jobId, firstBatchId) = _openJob(params, workflow, n, batches);
        _createBatches(
            jobId, firstBatchId, size, block.timestamp + params.commitDuration, keccak256(workflow), rows
        );

        uint256 amount = uint256(params.bountyPerTask) * n;
        uint256 before = _token.balanceOf(address(this));
        _token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = _token.balanceOf(address(this)) - before;
        if (received < amount) revert MarketPaymentShort(amount, received);
    }

    /// @inheritdoc ITaskMarket
    function cancel(uint256 batchId) external {
        (Batch storage b, JobRules.Job storage j) = _batchAndJob(batchId);
        address requester = j.requester;
        if (msg.sender != requester) revert BatchNotRequester(batchId, msg.sender, requester);
        if (b.phase != Phase.Committing) revert BatchWrongPhase(batchId, Phase.Committing, b.phase);
        if (b.commitCount != 0) revert BatchHasCommits(batchId, b.commitCount);
        _refund(batchId, b, j, RefundReason.Cancelled);
    }

    // ----------------------------------------------------------------- nodes

    /// @inheritdoc ITaskMarket
    function commitResult(uint256 batchId, bytes32 commitment) external returns (uint256 seat) {
        (Batch storage b, JobRules.Job storage j) = _batchAndJob(batchId);
        (Phase phase, uint256 deadline) = _effective(b, j);
        seat = b.commitCount;
        if (phase != Phase.Committing) {
            if (phase == Phase.Revealing && seat == j.k) revert BatchSeatsFull(batchId, seat);
            revert BatchWrongPhase(batchId, Phase.Committing, phase);
        }
        if (block.timestamp > deadline) revert BatchDeadlinePassed(batchId, deadline, block.timestamp);
        if (uint256(commitment) & _LOW224 == 0) revert BatchZeroCommitment(batchId);
        uint256 id = _registry.requireEligibleNode(msg.sender, j.modelId);
        for (uint256 i; i < seat; ++i) {
            if (uint256(_page(batchId)[i]) >> 224 == id) {
                revert BatchAlreadyCommitted(batchId, msg.sender);
            }
        }

        _page(batchId)[seat] = bytes32((id << 224) | (uint256(commitment) & _LOW224));
        _accounts[msg.sender].seats += 1;
        uint256 count = seat + 1;
        // forge-lint: disable-next-line(unsafe-typecast)
        b.commitCount = uint8(count); // <= k <= 16
        emit ResultCommitted(batchId, msg.sender, seat, commitment, count);
        if (count == j.k) _enter(b, Phase.Revealing, block.timestamp + j.revealDuration);
    }

    /// @inheritdoc ITaskMarket
    function revealResult(uint256 batchId, uint256 seat, bytes32[] calldata digests, bytes32 salt) external {
        (Batch storage b, JobRules.Job storage j) = _batchAndJob(batchId);
        (Phase phase, uint256 deadline) = _effective(b, j);
        if (phase != Phase.Revealing) revert BatchWrongPhase(batchId, Phase.Revealing, phase);
        if (block.timestamp > deadline) revert BatchDeadlinePassed(batchId, deadline, block.timestamp);
        _checkReveal(batchId, b, seat, digests, salt);

        _applyLazy(batchId, b, phase, deadline);
        uint256 count = b.revealCount + 1;
        // forge-lint: disable-next-line(unsafe-typecast)
        b.revealCount = uint8(count); // <= commitCount <= 16
        // forge-lint: disable-next-line(unsafe-typecast)
        b.revealedMask = uint16(b.revealedMask | (1 << seat)); // seat < 16
        emit ResultRevealed(batchId, msg.sender, seat, digests, salt);
        if (count == b.commitCount) {
            uint256 drawDeadline = block.timestamp + j.scoreCommitDuration;
            _enter(b, Phase.Drawing, drawDeadline);
            _armSeed(batchId, b, drawDeadline);
        }
    }

    /// @dev The checks of `revealResult` after the phase: a taken, unrevealed seat, one digest per row, and a
    /// reveal that hashes to the seat's commitment.
    function _checkReveal(
        uint256 batchId,
        Batch storage b,
        uint256 seat,
        bytes32[] calldata digests,
        bytes32 salt
    ) private view {
        if (seat >= b.commitCount) {
            revert BatchNotNodeSeat(batchId, seat, msg.sender);
        }
        if (b.revealedMask & (1 << seat) != 0) revert BatchAlreadyRevealed(batchId, seat);
        uint256 rows = b.rows;
        if (digests.length != rows) revert BatchDigestCountMismatch(batchId, rows, digests.length);
        // The commitment binds msg.sender: a reveal by anyone but the seat's node mismatches.
        bytes32 committed = bytes32(uint256(_page(batchId)[seat]) & _LOW224);
        bytes32 computed = _resultCommitment(batchId, msg.sender, digests, salt);
        if (uint256(computed) & _LOW224 != uint256(committed)) {
            revert BatchCommitmentMismatch(batchId, committed, computed);
        }
    }

    // ----------------------------------------------------------------- committee

    /// @inheritdoc ITaskMarket
    function drawCommittee(uint256 batchId) external returns (bool drawn) {
        (Batch storage b, JobRules.Job storage j) = _batchAndJob(batchId);
        (Phase phase, uint256 deadline) = _effective(b, j);
        if (phase != Phase.Drawing) revert BatchWrongPhase(batchId, Phase.Drawing, phase);
        if (block.timestamp > deadline) revert BatchDeadlinePassed(batchId, deadline, block.timestamp);
        _applyLazy(batchId, b, phase, deadline);
        uint256 seedBlock = b.seedBlock;
        if (seedBlock == 0 || block.number > seedBlock + BLOCKHASH_WINDOW) {
            _armSeed(batchId, b, deadline);
            return false;
        }
        if (block.number <= seedBlock) revert BatchSeedNotReady(batchId, seedBlock, block.number);
        _drawNow(batchId, b, j, seedBlock);
        return true;
    }

    /// @dev Draw and lock the committee from the armed `seedBlock` (ready: `_seedUsable`); with no active
    /// validator, refund the batch instead. Returns the committee size (0: refunded).
    function _drawNow(uint256 batchId, Batch storage b, JobRules.Job storage j, uint256 seedBlock)
        private
        returns (uint256 size)
    {
        uint256 round = b.round;
        bytes32 seed = _seed(batchId, b, seedBlock);
        (address[] memory validators, uint96[] memory weights) = _registry.drawValidators(seed, j.m);
        size = validators.length;
        // slither-disable-next-line incorrect-equality (an array length the registry produced: docs/audit.md)
        if (size == 0) {
            _refund(batchId, b, j, RefundReason.NoValidator);
            return 0;
        }
        bytes32[49] storage page = _page(batchId);
        for (uint256 i; i < size; ++i) {
            page[_COMMITTEE + i] = bytes32((uint256(weights[i]) << 160) | uint256(uint160(validators[i])));
            _accounts[validators[i]].seats += 1;
        }
        // forge-lint: disable-next-line(unsafe-typecast)
        b.committeeSize = uint8(size); // <= m <= 16
        uint256 scoreCommitDeadline = block.timestamp + j.scoreCommitDuration;
        _enter(b, Phase.ScoreCommitting, scoreCommitDeadline);
        emit CommitteeDrawn(batchId, round, seed, validators, weights, scoreCommitDeadline);
    }

    /// @dev The committee seed of the batch's current round: the armed block's hash mixed with the node seat
    /// words (fixed before any reveal), the batch id and the round.
    function _seed(uint256 batchId, Batch storage b, uint256 seedBlock) private view returns (bytes32) {
        return keccak256(abi.encode(blockhash(seedBlock), _entropy(batchId, b.commitCount), batchId, b.round));
    }

    /// @dev Whether a draw now would use the armed `seedBlock` (mined, and its hash still available).
    function _seedUsable(uint256 seedBlock) private view returns (bool) {
        return seedBlock != 0 && block.number > seedBlock && block.number <= seedBlock + BLOCKHASH_WINDOW;
    }

    /// @inheritdoc ITaskMarket
    function committeePreview(uint256 batchId)
        external
        view
        returns (address[] memory validators, uint96[] memory weights)
    {
        Batch storage b = _batches[batchId];
        if (b.phase == Phase.None) return (validators, weights);
        JobRules.Job storage j = _jobs[b.jobId];
        (Phase phase, uint256 deadline) = _effective(b, j);
        uint256 seedBlock = b.seedBlock;
        if (phase != Phase.Drawing || block.timestamp > deadline || !_seedUsable(seedBlock)) {
            return (validators, weights);
        }
        return _registry.drawValidators(_seed(batchId, b, seedBlock), j.m);
    }

    /// @inheritdoc ITaskMarket
    function commitScores(uint256 batchId, uint256 seat, bytes32 commitment) external {
        (Batch storage b, JobRules.Job storage j) = _batchAndJob(batchId);
        (Phase phase, uint256 deadline) = _effective(b, j);
        if (phase == Phase.Drawing && block.timestamp <= deadline && _seedUsable(b.seedBlock)) {
            // The first score commit draws the committee (as `drawCommittee` would) and then commits.
            _applyLazy(batchId, b, phase, deadline);
            _drawNow(batchId, b, j, b.seedBlock);
            phase = b.phase; // ScoreCommitting, or Refunded (no validator: the seat check below reverts)
            deadline = b.deadline;
            if (phase != Phase.ScoreCommitting) revert BatchNotCommitteeSeat(batchId, seat, msg.sender);
        }
        if (phase != Phase.ScoreCommitting) revert BatchWrongPhase(batchId, Phase.ScoreCommitting, phase);
        if (block.timestamp > deadline) revert BatchDeadlinePassed(batchId, deadline, block.timestamp);
        uint256 size = b.committeeSize;
        if (seat >= size || address(uint160(uint256(_page(batchId)[_COMMITTEE + seat]))) != msg.sender) {
            revert BatchNotCommitteeSeat(batchId, seat, msg.sender);
        }
        if (commitment == bytes32(0)) revert BatchZeroCommitment(batchId);
        uint256 mask = b.scoreCommitMask;
        if (mask & (1 << seat) != 0) revert BatchScoresAlreadyCommitted(batchId, seat);

        _page(batchId)[_SEALS + seat] = commitment;
        mask |= 1 << seat;
        // forge-lint: disable-next-line(unsafe-typecast)
        b.scoreCommitMask = uint16(mask); // seat < 16
        emit ScoresCommitted(batchId, msg.sender, seat, commitment);
        if (mask == (1 << size) - 1) {
            _enter(b, Phase.ScoreRevealing, block.timestamp + j.scoreRevealDuration);
        }
    }

    /// @inheritdoc ITaskMarket
    function revealScores(uint256 batchId, uint256 seat, bytes calldata scores, bytes32 salt) external {
        _revealScores(batchId, seat, scores, salt);
    }

    /// @inheritdoc ITaskMarket
    function revealScoresAndSettle(
        uint256 batchId,
        uint256 seat,
        bytes calldata scores,
        bytes32 salt,
        bytes[] calldata scoreVectors
    ) external returns (bool settled) {
        (Batch storage b, JobRules.Job storage j) = _revealScores(batchId, seat, scores, salt);
        // The reveal checked the deadline: the round ends early exactly when every committed seat has revealed.
        settled = b.scoreRevealMask == b.scoreCommitMask;
        if (settled) _endRound(batchId, b, j, scoreVectors);
    }

    /// @dev `revealScores`; returns the batch and its job.
    function _revealScores(uint256 batchId, uint256 seat, bytes calldata scores, bytes32 salt)
        private
        returns (Batch storage b, JobRules.Job storage j)
    {
        (b, j) = _batchAndJob(batchId);
        (Phase phase, uint256 deadline) = _effective(b, j);
        if (phase != Phase.ScoreRevealing) revert BatchWrongPhase(batchId, Phase.ScoreRevealing, phase);
        if (block.timestamp > deadline) revert BatchDeadlinePassed(batchId, deadline, block.timestamp);
        _checkScoreReveal(batchId, b, seat, scores, salt);

        _applyLazy(batchId, b, phase, deadline);
        _page(batchId)[_SEALS + seat] = keccak256(scores);
        // forge-lint: disable-next-line(unsafe-typecast)
        b.scoreRevealMask = uint16(b.scoreRevealMask | (1 << seat)); // seat < 16
        emit ScoresRevealed(batchId, msg.sender, seat, scores);
    }

    /// @dev The checks of `revealScores` after the phase: a committed, unrevealed seat, one score (0..100) per
    /// node seat and row, and a reveal that hashes to the seat's score commitment.
    function _checkScoreReveal(
        uint256 batchId,
        Batch storage b,
        uint256 seat,
        bytes calldata scores,
        bytes32 salt
    ) private view {
        if (seat >= b.committeeSize) {
            revert BatchNotCommitteeSeat(batchId, seat, msg.sender);
        }
        uint256 bit = 1 << seat;
        if (b.scoreRevealMask & bit != 0) revert BatchScoresAlreadyRevealed(batchId, seat);
        if (b.scoreCommitMask & bit == 0) revert BatchScoresNotCommitted(batchId, seat);
        uint256 expected = uint256(b.commitCount) * b.rows;
        if (scores.length != expected) revert BatchScoreCountMismatch(batchId, expected, scores.length);
        _checkScores(batchId, scores);
        // The commitment binds msg.sender: only the seat's validator can open it.
        bytes32 committed = _page(batchId)[_SEALS + seat];
        bytes32 computed = _scoreCommitment(batchId, msg.sender, scores, salt);
        if (computed != committed) revert BatchCommitmentMismatch(batchId, committed, computed);
    }

    // ----------------------------------------------------------------- anyone

    /// @inheritdoc ITaskMarket
    function settle(uint256 batchId, bytes[] calldata scoreVectors) external {
        (Batch storage b, JobRules.Job storage j) = _batchAndJob(batchId);
        (Phase phase, uint256 deadline) = _effective(b, j);
        bool late = block.timestamp > deadline;
        if (late && phase == Phase.Committing) {
            // Still Committing after the deadline: nobody committed.
            _refund(batchId, b, j, RefundReason.NoCommit);
        } else if (late && phase == Phase.Revealing) {
            // Still Revealing after the deadline: nobody revealed (every committer is slashed).
            _refund(batchId, b, j, RefundReason.NoReveal);
        } else if (late && phase == Phase.Drawing) {
            _refund(batchId, b, j, RefundReason.NoDraw);
        } else if (phase == Phase.ScoreRevealing && (late || b.scoreRevealMask == b.scoreCommitMask)) {
            _endRound(batchId, b, j, scoreVectors);
        } else {
            uint256 readyAt = deadline + 1;
            if (phase == Phase.ScoreCommitting) readyAt += j.scoreRevealDuration;
            if (phase == Phase.Settled || phase == Phase.Refunded) readyAt = 0;
            revert BatchNotSettleable(batchId, phase, readyAt);
        }
    }

    /// @inheritdoc ITaskMarket
    function openAccount(address account) external {
        if (msg.sender != address(_registry) && msg.sender != account) revert MarketNotRegistry(msg.sender);
        Account storage a = _accounts[account];
        if (a.open) return;
        a.open = true;
        emit AccountOpened(account);
    }

    /// @inheritdoc ITaskMarket
    function claim() external nonReentrant returns (uint256 amount) {
        Account storage a = _accounts[msg.sender];
        amount = a.balance;
        if (amount == 0) revert MarketNothingToClaim(msg.sender);
        a.balance = 0;
        // forge-lint: disable-next-line(unsafe-typecast)
        a.claimed += uint104(amount); // a lifetime total far below 2^104 (checked addition)
        emit Claimed(msg.sender, amount);
        // Checks-effects-interactions: the balance is zeroed before the tokens leave.
        _token.safeTransfer(msg.sender, amount);
    }

    // ----------------------------------------------------------------- views

    /// @inheritdoc ITaskMarket
    function resultCommitment(uint256 batchId, address node, bytes32[] calldata digests, bytes32 salt)
        external
        pure
        returns (bytes32)
    {
        return _resultCommitment(batchId, node, digests, salt);
    }

    /// @inheritdoc ITaskMarket
    function scoreCommitment(uint256 batchId, address validator, bytes calldata scores, bytes32 salt)
        external
        pure
        returns (bytes32)
    {
        return _scoreCommitment(batchId, validator, scores, salt);
    }

    /// @inheritdoc ITaskMarket
    function rowsHash(bytes[] calldata rows) external pure returns (bytes32) {
        return _rowsHash(rows);
    }

    /// @inheritdoc ITaskMarket
    function phaseOf(uint256 batchId) external view returns (Phase phase, uint256 deadline) {
        Batch storage b = _batches[batchId];
        if (b.phase == Phase.None) return (Phase.None, 0);
        return _effective(b, _jobs[b.jobId]);
    }

    /// @inheritdoc ITaskMarket
    function batch(uint256 batchId) external view returns (BatchView memory v) {
        Batch storage b = _batches[batchId];
        v = BatchView({
            jobId: b.jobId,
            phase: b.phase,
            deadline: b.deadline,
            rows: b.rows,
            // forge-lint: disable-next-line(unsafe-typecast)
            firstRow: uint32(_firstRow(batchId, b)), // < MAX_ROWS_PER_POST
            round: b.round,
            commitCount: b.commitCount,
            revealCount: b.revealCount,
            revealedMask: b.revealedMask,
            committeeSize: b.committeeSize,
            scoreCommitMask: b.scoreCommitMask,
            scoreRevealMask: b.scoreRevealMask,
            seedBlock: b.seedBlock,
            // An ended batch's page serves another batch now (the inputs are in `JobPosted` / `BatchPosted`).
            inputHash: _ended(b.phase) ? bytes32(0) : _page(batchId)[_INPUT]
        });
    }

    /// @inheritdoc ITaskMarket
    function job(uint256 jobId) external view returns (JobView memory v) {
        JobRules.Job storage j = _jobs[jobId];
        v.requester = j.requester;
        v.firstBatchId = j.firstBatchId;
        v.batchCount = j.batchCount;
        if (j.batchCount != 0) {
            v.rowCount = uint32(
                (uint256(j.batchCount) - 1) * j.batchSize
                    + _batches[uint256(j.firstBatchId) + j.batchCount - 1].rows
            );
        }
        v.params = JobParams({
            model: _registry.modelName(j.modelId),
            bountyPerTask: j.bountyPerTask,
            batchSize: j.batchSize,
            k: j.k,
            m: j.m,
            threshold: j.threshold,
            tolerance: j.tolerance,
            junkFloor: j.junkFloor,
            validatorShareBps: j.validatorShareBps,
            commitDuration: j.commitDuration,
            revealDuration: j.revealDuration,
            scoreCommitDuration: j.scoreCommitDuration,
            scoreRevealDuration: j.scoreRevealDuration
        });
    }

    /// @inheritdoc ITaskMarket
    function nodeSeat(uint256 batchId, uint256 seat) external view returns (address node, bool revealed) {
        Batch storage b = _batches[batchId];
        if (seat >= b.commitCount) return (address(0), false);
        revealed = b.revealedMask & (1 << seat) != 0;
        // An ended batch's page serves another batch now (its seats are in `ResultCommitted` events).
        if (_ended(b.phase)) return (address(0), revealed);
        // forge-lint: disable-next-line(unsafe-typecast)
        node = _registry.accountOf(uint32(uint256(_page(batchId)[seat]) >> 224));
    }

    /// @inheritdoc ITaskMarket
    function committeeSeat(uint256 batchId, uint256 seat)
        external
        view
        returns (address validator, uint96 weight, bool committed, bool revealed, bytes32 seal)
    {
        Batch storage b = _batches[batchId];
        if (seat >= b.committeeSize) return (address(0), 0, false, false, bytes32(0));
        committed = b.scoreCommitMask & (1 << seat) != 0;
        revealed = b.scoreRevealMask & (1 << seat) != 0;
        // An ended batch's page serves another batch now (its committee is in the `CommitteeDrawn` event).
        if (_ended(b.phase)) return (address(0), 0, committed, revealed, bytes32(0));
        bytes32[49] storage page = _page(batchId);
        uint256 word = uint256(page[_COMMITTEE + seat]);
        validator = address(uint160(word));
        // forge-lint: disable-next-line(unsafe-typecast)
        weight = uint96(word >> 160);
        if (committed) seal = page[_SEALS + seat];
    }

    /// @inheritdoc ITaskMarket
    function balanceOf(address account) external view returns (uint256) {
        return _accounts[account].balance;
    }

    /// @inheritdoc ITaskMarket
    function claimedOf(address account) external view returns (uint256) {
        return _accounts[account].claimed;
    }

    /// @inheritdoc ITaskMarket
    function openSeatsOf(address account) external view returns (uint256) {
        return _accounts[account].seats;
    }

    /// @inheritdoc ITaskMarket
    function batchCount() external view returns (uint256) {
        return _batchCount;
    }

    /// @inheritdoc ITaskMarket
    function jobCount() external view returns (uint256) {
        return _jobCount;
    }

    /// @inheritdoc ITaskMarket
    function minPhaseDuration() external view returns (uint256) {
        return _minPhaseDuration;
    }

    /// @inheritdoc ITaskMarket
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc ITaskMarket
    function token() external view returns (address) {
        return address(_token);
    }

    // ----------------------------------------------------------------- internals: posting

    /// @dev Store the job and emit `JobPosted`; returns its id and its first batch id.
    function _openJob(JobParams calldata params, bytes calldata workflow, uint256 n, uint256 batches)
        private
        returns (uint256 jobId, uint256 firstBatchId)
    {
        // The only registry call (for a model the market has not cached) comes before any state is written.
        uint32 modelId = _modelIdOf(params.model);
        jobId = uint256(_jobCount) + 1;
        firstBatchId = uint256(_batchCount) + 1;
        // forge-lint: disable-next-line(unsafe-typecast)
        _jobCount = uint64(jobId); // one job per transaction: 2^64 is out of reach
        // forge-lint: disable-next-line(unsafe-typecast)
        _batchCount = uint64(firstBatchId - 1 + batches); // batches <= MAX_BATCHES_PER_POST per transaction
        _storeJob(jobId, params, modelId, firstBatchId, batches);
        emit JobPosted(jobId, msg.sender, params.model, firstBatchId, batches, n, params, workflow);
    }

    /// @dev Split `rows` in order into batches of `size` rows, ids from `firstBatchId`; `workflowHash` goes into
    /// each batch's input hash.
    function _createBatches(
        uint256 jobId,
        uint256 firstBatchId,
        uint256 size,
        uint256 deadline,
        bytes32 workflowHash,
        bytes[] calldata rows
    ) private {
        uint256 n = rows.length;
        uint256 batchId = firstBatchId;
        for (uint256 lo; lo < n; lo += size) {
            uint256 hi = lo + size;
            if (hi > n) hi = n;
            // Each batch's rows are copied to memory for its event, then the memory is reused by the next batch
            // (nothing allocated in `_createBatch` outlives it), so memory does not grow with the job.
            uint256 freePointer;
            assembly ("memory-safe") {
                freePointer := mload(0x40)
            }
            bytes[] memory slice = new bytes[](hi - lo);
            for (uint256 r = lo; r < hi; ++r) {
                slice[r - lo] = rows[r];
            }
            _createBatch(batchId, jobId, _takePage(), deadline, workflowHash, slice, lo);
            assembly ("memory-safe") {
                mstore(0x40, freePointer)
            }
            ++batchId;
        }
    }

    /// @dev A seat page for a new batch: the head of the free list, else a new one. The counters' slot was
    /// written by `_openJob` in this transaction, so these writes are warm; the link read warms the slot that
    /// `_createBatch` then overwrites with the input hash.
    function _takePage() private returns (uint256 page) {
        page = _freePage;
        if (page != 0) {
            // forge-lint: disable-next-line(unsafe-typecast)
            _freePage = uint32(uint256(_pages[page][_INPUT]) & ~_LINK); // a page id
        } else {
            page = uint256(_pageCount) + 1;
            // forge-lint: disable-next-line(unsafe-typecast)
            _pageCount = uint32(page); // one page per open batch: never near 2^32
        }
    }

    /// @dev The registry's id of `model`, through the local cache.
    function _modelIdOf(bytes32 model) private returns (uint32 modelId) {
        modelId = _modelIds[model];
        if (modelId == 0) {
            modelId = _registry.internModel(model);
            _modelIds[model] = modelId;
        }
    }

    function _storeJob(
        uint256 jobId,
        JobParams calldata p,
        uint32 modelId,
        uint256 firstBatchId,
        uint256 batches
    ) private {
        // Durations were checked <= MAX_PHASE_DURATION < 2^24; batches <= MAX_BATCHES_PER_POST < 2^16; ids < 2^40.
        _jobs[jobId] = JobRules.Job({
            requester: msg.sender,
            bountyPerTask: p.bountyPerTask,
            batchSize: p.batchSize,
            k: p.k,
            m: p.m,
            threshold: p.threshold,
            tolerance: p.tolerance,
            junkFloor: p.junkFloor,
            validatorShareBps: p.validatorShareBps,
            // forge-lint: disable-next-line(unsafe-typecast)
            commitDuration: uint24(p.commitDuration),
            // forge-lint: disable-next-line(unsafe-typecast)
            revealDuration: uint24(p.revealDuration),
            // forge-lint: disable-next-line(unsafe-typecast)
            scoreCommitDuration: uint24(p.scoreCommitDuration),
            // forge-lint: disable-next-line(unsafe-typecast)
            scoreRevealDuration: uint24(p.scoreRevealDuration),
            modelId: modelId,
            // forge-lint: disable-next-line(unsafe-typecast)
            firstBatchId: uint40(firstBatchId),
            // forge-lint: disable-next-line(unsafe-typecast)
            batchCount: uint16(batches)
        });
    }

    function _createBatch(
        uint256 batchId,
        uint256 jobId,
        uint256 page,
        uint256 deadline,
        bytes32 workflowHash,
        bytes[] memory rows,
        uint256 firstRow
    ) private {
        bytes32 h = _rowsHash(rows);
        // forge-lint: disable-start(unsafe-typecast)
        _batches[batchId] = Batch({
            jobId: uint40(jobId), // one job per transaction: 2^40 is out of reach
            deadline: uint40(deadline), // a timestamp plus at most 30 days
            phase: Phase.Committing,
            rows: uint16(rows.length), // <= MAX_BATCH_SIZE
            round: 0,
            commitCount: 0,
            revealCount: 0,
            revealedMask: 0,
            committeeSize: 0,
            scoreCommitMask: 0,
            scoreRevealMask: 0,
            seedBlock: 0,
            page: uint32(page) // a page id
        });
        // forge-lint: disable-end(unsafe-typecast)
        _pages[page][_INPUT] = keccak256(abi.encode(workflowHash, h));
        emit BatchPosted(batchId, jobId, firstRow, deadline, h, rows);
    }

    function _rowsHash(bytes[] memory rows) private pure returns (bytes32) {
        uint256 n = rows.length;
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            hashes[i] = keccak256(rows[i]);
        }
        return keccak256(abi.encodePacked(hashes));
    }

    // ----------------------------------------------------------------- internals: lifecycle

    /// @dev The batch and its job; reverts `BatchNotFound` for an unknown batch.
    function _batchAndJob(uint256 batchId) private view returns (Batch storage b, JobRules.Job storage j) {
        b = _batches[batchId];
        if (b.phase == Phase.None) revert BatchNotFound(batchId);
        j = _jobs[b.jobId];
    }

    /// @dev The seat page of `batchId` (valid while the batch is open).
    function _page(uint256 batchId) private view returns (bytes32[49] storage) {
        return _pages[_batches[batchId].page];
    }

    /// @dev Return an ended batch's page to the free list: its slot `_INPUT` links to the next free page (kept
    /// non-zero by `_LINK`); the other words stay as they are, so the next batch rewrites live slots.
    function _freePageOf(Batch storage b) private {
        uint256 page = b.page;
        _pages[page][_INPUT] = bytes32(_LINK | _freePage);
        // forge-lint: disable-next-line(unsafe-typecast)
        _freePage = uint32(page); // a page id
    }

    function _ended(Phase phase) private pure returns (bool) {
        return phase == Phase.Settled || phase == Phase.Refunded;
    }

    /// @dev Index of the batch's first row in its job.
    function _firstRow(uint256 batchId, Batch storage b) private view returns (uint256) {
        JobRules.Job storage j = _jobs[b.jobId];
        return (batchId - j.firstBatchId) * j.batchSize;
    }

    /// @dev The phase after the deadline transitions that need no action: commits closed with >= 1 commit,
    /// reveals closed with >= 1 reveal, score commits closed.
    function _effective(Batch storage b, JobRules.Job storage j)
        private
        view
        returns (Phase phase, uint256 deadline)
    {
        phase = b.phase;
        deadline = b.deadline;
        if (phase == Phase.Committing && block.timestamp > deadline && b.commitCount != 0) {
            phase = Phase.Revealing;
            deadline += j.revealDuration;
        }
        if (phase == Phase.Revealing && block.timestamp > deadline && b.revealCount != 0) {
            phase = Phase.Drawing;
            deadline += j.scoreCommitDuration;
        }
        if (phase == Phase.ScoreCommitting && block.timestamp > deadline) {
            phase = Phase.ScoreRevealing;
            deadline += j.scoreRevealDuration;
        }
    }

    function _enter(Batch storage b, Phase phase, uint256 deadline) private {
        b.phase = phase;
        // forge-lint: disable-next-line(unsafe-typecast)
        b.deadline = uint40(deadline); // a timestamp plus a few 30-day phases
    }

    /// @dev Store a phase change that a passed deadline caused (no other event shows it).
    function _applyLazy(uint256 batchId, Batch storage b, Phase phase, uint256 deadline) private {
        if (b.phase == phase) return;
        _enter(b, phase, deadline);
        emit BatchPhaseChanged(batchId, phase, deadline);
    }

    /// @dev Fix the seed block of the next draw: a block not mined yet, so nobody acting now knows its hash.
    function _armSeed(uint256 batchId, Batch storage b, uint256 drawDeadline) private {
        uint256 seedBlock = block.number + SEED_DELAY;
        // forge-lint: disable-next-line(unsafe-typecast)
        b.seedBlock = uint40(seedBlock);
        emit CommitteeSeedArmed(batchId, b.round, seedBlock, drawDeadline);
    }

    /// @dev XOR of the node seat words (node ids and commitments, fixed before any reveal).
    function _entropy(uint256 batchId, uint256 seats) private view returns (bytes32 entropy) {
        entropy = bytes32(0);
        for (uint256 i; i < seats; ++i) {
            entropy ^= _page(batchId)[i];
        }
    }

    /// @dev Revert `BatchScoreOutOfRange` at the first score above MAX_SCORE.
    function _checkScores(uint256 batchId, bytes calldata scores) private pure {
        uint256 n = scores.length;
        for (uint256 i; i < n; ++i) {
            uint256 s = uint8(scores[i]);
            if (s > MAX_SCORE) revert BatchScoreOutOfRange(batchId, i, s);
        }
    }

    /// @dev Whole-bounty refund; releases the node seats (slashing every node that never revealed).
    function _refund(uint256 batchId, Batch storage b, JobRules.Job storage j, RefundReason reason) private {
        address requester = j.requester;
        uint256 amount = uint256(j.bountyPerTask) * b.rows;
        b.phase = Phase.Refunded;
        _credit(requester, amount);
        emit BatchRefunded(batchId, requester, reason, amount);
        uint256 commits = b.commitCount;
        address[] memory nodes = _nodeAccounts(batchId, commits);
        _freePageOf(b);
        if (commits != 0) _release(batchId, nodes, _unrevealed(b), 0);
    }

    /// @dev Node seats that were taken but never revealed, as a mask.
    function _unrevealed(Batch storage b) private view returns (uint256) {
        return ((1 << b.commitCount) - 1) & ~uint256(b.revealedMask);
    }

    function _nodeAccounts(uint256 batchId, uint256 seats) private view returns (address[] memory) {
        if (seats == 0) return new address[](0);
        bytes32[49] storage page = _page(batchId);
        uint32[] memory ids = new uint32[](seats);
        for (uint256 i; i < seats; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            ids[i] = uint32(uint256(page[i]) >> 224);
        }
        return _registry.accountsOf(ids);
    }

    /// @dev Release one seat of each of `accounts` (their account slots: usually just credited, so warm), slash
    /// those in `slashMask` through the registry (called only when there is misconduct), and report each slash
    /// with its reason: the 2-bit code at bits 2i..2i+1 of `reasons` (a `SlashReason`; 0 = NoReveal).
    function _release(uint256 batchId, address[] memory accounts, uint256 slashMask, uint256 reasons)
        private
    {
        uint256 n = accounts.length;
        for (uint256 i; i < n; ++i) {
            _accounts[accounts[i]].seats -= 1; // each holds this seat: >= 1
        }
        if (slashMask == 0) return;
        uint256[] memory amounts = _registry.slash(batchId, accounts, slashMask);
        for (uint256 i; i < n; ++i) {
            if (slashMask & (1 << i) == 0) continue;
            emit MisconductSlashed(batchId, accounts[i], SlashReason((reasons >> (2 * i)) & 3), amounts[i]);
        }
    }

    /// @dev End of a scoring round: verify the vectors, then settle, re-score, or settle by the fallback rule.
    function _endRound(uint256 batchId, Batch storage b, JobRules.Job storage j, bytes[] calldata vectors)
        private
    {
        uint256 size = b.committeeSize;
        uint256 revealMask = b.scoreRevealMask;
        uint256 voters = _popcount(revealMask);
        if (vectors.length != voters) revert BatchScoreVectorCountMismatch(batchId, voters, vectors.length);
        uint256 v = 0;
        for (uint256 s; s < size; ++s) {
            if (revealMask & (1 << s) == 0) continue;
            bytes32 stored = _page(batchId)[_SEALS + s];
            bytes32 given = keccak256(vectors[v]);
            if (given != stored) revert BatchScoreVectorMismatch(batchId, s, stored, given);
            ++v;
        }

        if (2 * voters > size) {
            _finish(batchId, b, j, _tally(batchId, b, j, vectors, voters));
        } else if (b.round + 1 < MAX_ROUNDS) {
            _rescore(batchId, b, j, voters);
        } else {
            _finish(batchId, b, j, Tally.fallbackOutcome(_rules(b, j), b.revealCount));
        }
    }

    /// @dev No majority: slash and release the round's committee, arm a new draw.
    function _rescore(uint256 batchId, Batch storage b, JobRules.Job storage j, uint256 voters) private {
        uint256 size = b.committeeSize;
        uint256 round = b.round;
        (address[] memory members, uint256 slashMask, uint256 reasons) = _committeeRelease(batchId, b, 0);
        // forge-lint: disable-next-line(unsafe-typecast)
        b.round = uint8(round + 1); // < MAX_ROUNDS
        b.committeeSize = 0;
        b.scoreCommitMask = 0;
        b.scoreRevealMask = 0;
        uint256 drawDeadline = block.timestamp + j.scoreCommitDuration;
        _enter(b, Phase.Drawing, drawDeadline);
        emit BatchRescoring(batchId, round, voters, size);
        _armSeed(batchId, b, drawDeadline);
        _release(batchId, members, slashMask, reasons);
    }

    /// @dev The committee's accounts starting at position `offset` of the release list, which of them
    /// abstained (never committed: NoScoreCommit; committed, never revealed: NoScoreReveal), and the 2-bit
    /// reason codes at their positions.
    function _committeeRelease(uint256 batchId, Batch storage b, uint256 offset)
        private
        view
        returns (address[] memory members, uint256 slashMask, uint256 reasons)
    {
        uint256 size = b.committeeSize;
        uint256 commitMask = b.scoreCommitMask;
        uint256 revealMask = b.scoreRevealMask;
        members = new address[](size);
        for (uint256 s; s < size; ++s) {
            members[s] = address(uint160(uint256(_page(batchId)[_COMMITTEE + s])));
            uint256 bit = 1 << s;
            if (commitMask & bit == 0) {
                slashMask |= 1 << (offset + s);
                reasons |= uint256(SlashReason.NoScoreCommit) << (2 * (offset + s));
            } else if (revealMask & bit == 0) {
                slashMask |= 1 << (offset + s);
                reasons |= uint256(SlashReason.NoScoreReveal) << (2 * (offset + s));
            }
        }
    }

    /// @dev Credit the outcome, mark the batch Settled, release every seat (slashing misconduct).
    function _finish(uint256 batchId, Batch storage b, JobRules.Job storage j, Tally.Outcome memory o)
        private
    {
        b.phase = Phase.Settled;
        uint256 commits = b.commitCount;
        address[] memory nodes = _nodeAccounts(batchId, commits);
        for (uint256 s; s < commits; ++s) {
            if (o.nodePaid[s] != 0) _credit(nodes[s], o.nodePaid[s]);
        }
        uint256 size = b.committeeSize;
        if (o.validatorReward != 0) {
            for (uint256 s; s < size; ++s) {
                if (o.agreedMask & (1 << s) != 0) {
                    _credit(address(uint160(uint256(_page(batchId)[_COMMITTEE + s]))), o.validatorReward);
                }
            }
        }
        address requester = j.requester;
        if (o.refund != 0) _credit(requester, o.refund);
        emit BatchSettled(
            batchId,
            requester,
            b.round,
            o.scored,
            o.medians,
            o.nodePaid,
            o.agreedMask,
            o.validatorReward,
            o.refund
        );

        // Release list: node seats 0..commits-1, then committee seats.
        (address[] memory members, uint256 slashMask, uint256 reasons) =
            _committeeRelease(batchId, b, commits);
        address[] memory accounts = new address[](commits + size);
        for (uint256 s; s < commits; ++s) {
            accounts[s] = nodes[s];
        }
        for (uint256 s; s < size; ++s) {
            accounts[commits + s] = members[s];
        }
        slashMask |= _unrevealed(b) | o.junkMask;
        for (uint256 s; s < commits; ++s) {
            if (o.junkMask & (1 << s) != 0) reasons |= uint256(SlashReason.Junk) << (2 * s);
        }
        _freePageOf(b);
        _release(batchId, accounts, slashMask, reasons);
    }

    /// @dev Medians, acceptance, agreement and credits of a round with a majority of revealed vectors: the
    /// revealed seats' weights from the page, the arithmetic in the `Tally` library (kept out of this contract's
    /// code size, EIP-170).
    function _tally(
        uint256 batchId,
        Batch storage b,
        JobRules.Job storage j,
        bytes[] calldata vectors,
        uint256 voters
    ) private returns (Tally.Outcome memory) {
        uint256 size = b.committeeSize;
        uint256 revealMask = b.scoreRevealMask;
        bytes32[49] storage page = _page(batchId);
        uint256[] memory weights = new uint256[](voters);
        uint256[] memory seats = new uint256[](voters);
        uint256 v = 0;
        for (uint256 s; s < size; ++s) {
            if (revealMask & (1 << s) == 0) continue;
            weights[v] = uint256(page[_COMMITTEE + s]) >> 160;
            seats[v] = s;
            ++v;
        }
        return Tally.tally(_rules(b, j), weights, seats, vectors);
    }

    /// @dev The job's rules and the batch's shape, for the `Tally` library.
    function _rules(Batch storage b, JobRules.Job storage j) private view returns (Tally.Rules memory) {
        return Tally.Rules({
            rows: b.rows,
            seats: b.commitCount,
            revealed: b.revealedMask,
            threshold: j.threshold,
            tolerance: j.tolerance,
            junkFloor: j.junkFloor,
            bounty: j.bountyPerTask,
            validatorShareBps: j.validatorShareBps
        });
    }

    function _popcount(uint256 x) private pure returns (uint256 n) {
        while (x != 0) {
            x &= x - 1;
            ++n;
        }
    }

    function _credit(address account, uint256 amount) private {
        // forge-lint: disable-next-line(unsafe-typecast)
        _accounts[account].balance += uint128(amount); // amount <= a batch's bounty (< 2^105)
    }

    function _resultCommitment(uint256 batchId, address node, bytes32[] calldata digests, bytes32 salt)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(batchId, node, keccak256(abi.encodePacked(digests)), salt));
    }

    function _scoreCommitment(uint256 batchId, address validator, bytes calldata scores, bytes32 salt)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(batchId, validator, keccak256(scores), salt));
    }
}
