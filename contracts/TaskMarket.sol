// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {ITaskMarket} from "./interfaces/ITaskMarket.sol";

/// @title TaskMarket
/// @notice Escrowed LLM tasks: commit-reveal results, stake-weighted random committee, commit-reveal
/// scores, stake-weighted medians, pull payments. See `ITaskMarket` and docs/contracts.md.
/// @dev Storage layout (designed for the gas budget: one task's whole lifecycle at k=3, m=3 <= 1,183,000):
///  - `_jobs[jobId]`: 3 slots. slot0 requester(160) | bountyPerTask(96); slot1 k, m, threshold, tolerance
///    (8 each) | validatorShareBps(16) | 4 durations (24 each) | firstTaskId(64) | taskCount(16) |
///    modelId(32, the registry's interned id of the model); slot2 workflowHash.
///  - `_tasks[taskId]`: 2 slots. slot0 jobId(40) | deadline(40) | phase(8) | commitCount, revealCount,
///    committeeSize, scoreCommitCount, scoreRevealCount (8 each) | revealedMask(16) | scoreRevealedMask(16) |
///    revealOrder(64: nibble r = slot of the r-th reveal) | commitBloom(32: bit id%32 per committed node id,
///    so a commit scans earlier seals for a duplicate only on a bloom hit); slot1 inputHash. Every action
///    rewrites slot0 only; an update of several members is one read and one write (`_bump`, `_enter`, at the
///    bit offsets `_T_*`).
///  - `_seals[taskId][i]`, one slot per result slot i: nodeId(32) | low 224 bits of the result commitment.
///    Storing the committer's registry id beside a 224-bit commitment (binding, 2^112 collision work) saves a
///    slot per commit. At the draw the commitment bits are spent (reveals verified, entropy taken) and
///    committee seat i overwrites them: nodeId(32) | weight(64, stake / 2^32 + 1) | validator(160), so seats
///    cost a rewrite (~5k gas) instead of a new slot (~22k). Seats i >= commitCount use fresh slots.
///  - `_scoreSeals[taskId][seat]`: the score commitment, overwritten at reveal by the packed scores (byte i =
///    score of the i-th revealed result, bit 255 set).
///  - `_accounts[a]`: balance(128) | claimed(120) | open(8); `claimed` keeps a paid-out slot live for the next
///    credit.
/// Loops run over at most MAX_RESULTS / MAX_COMMITTEE (16) entries or over a job's rows (<= MAX_INPUTS).
contract TaskMarket is ITaskMarket, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Most results per task (k).
    uint256 public constant MAX_RESULTS = 16;
    /// @notice Most validators per committee (m).
    uint256 public constant MAX_COMMITTEE = 16;
    /// @notice Most input rows per job.
    uint256 public constant MAX_INPUTS = 256;
    /// @notice Shortest phase, seconds.
    uint256 public constant MIN_PHASE_DURATION = 1;
    /// @notice Longest phase, seconds.
    uint256 public constant MAX_PHASE_DURATION = 30 days;
    /// @notice Highest score, threshold and tolerance.
    uint256 public constant MAX_SCORE = 100;
    /// @notice Basis-point denominator of the validator share.
    uint256 public constant BPS = 10_000;

    uint256 private constant _REVEALED_SCORES_FLAG = 1 << 255;
    uint256 private constant _LOW224 = (1 << 224) - 1;
    uint256 private constant _MASK40 = (1 << 40) - 1;
    /// @dev Bit offsets in slot 0 of `Task` (members are packed from the low bits in declaration order), for
    /// the updates that change several counters and masks of the slot with one read and one write.
    uint256 private constant _T_DEADLINE = 40;
    uint256 private constant _T_PHASE = 80;
    uint256 private constant _T_COMMIT_COUNT = 88;
    uint256 private constant _T_REVEAL_COUNT = 96;
    uint256 private constant _T_SCORE_COMMIT_COUNT = 112;
    uint256 private constant _T_SCORE_REVEAL_COUNT = 120;
    uint256 private constant _T_REVEALED_MASK = 128;
    uint256 private constant _T_SCORE_REVEALED_MASK = 144;
    uint256 private constant _T_REVEAL_ORDER = 160;
    uint256 private constant _T_COMMIT_BLOOM = 224;

    struct Job {
        address requester;
        uint96 bountyPerTask;
        uint8 k;
        uint8 m;
        uint8 threshold;
        uint8 tolerance;
        uint16 validatorShareBps;
        uint24 commitDuration;
        uint24 revealDuration;
        uint24 scoreCommitDuration;
        uint24 scoreRevealDuration;
        uint64 firstTaskId;
        uint16 taskCount;
        uint32 modelId;
        bytes32 workflowHash;
    }

    struct Task {
        uint40 jobId;
        uint40 deadline;
        Phase phase;
        uint8 commitCount;
        uint8 revealCount;
        uint8 committeeSize;
        uint8 scoreCommitCount;
        uint8 scoreRevealCount;
        uint16 revealedMask;
        uint16 scoreRevealedMask;
        uint64 revealOrder;
        uint32 commitBloom;
        bytes32 inputHash;
    }

    /// @dev One slot per account: balance(128) | claimed(120, lifetime total) | open(8). `openAccount` (called
    /// by the registry at registration) and `claimed` keep the slot non-zero, so a task's credits rewrite a
    /// live slot (~5k gas) instead of creating one (~22k): the creation is paid once, at registration.
    struct Account {
        uint128 balance;
        uint120 claimed;
        bool open;
    }

    IStakeRegistry private immutable _registry;
    IERC20 private immutable _token;
    uint256 private immutable _maxLifetime;

    uint64 private _taskCount;
    uint64 private _jobCount;

    mapping(uint256 jobId => Job) private _jobs;
    mapping(uint256 taskId => Task) private _tasks;
    mapping(uint256 taskId => bytes32[16]) private _seals;
    mapping(uint256 taskId => bytes32[16]) private _scoreSeals;
    mapping(address account => Account) private _accounts;
    /// @dev Cache of the registry's interned model ids (saves the registry call when posting).
    mapping(bytes32 model => uint32) private _modelIds;

    /// @param registry_ The stake registry; its token is the payment token and its unbonding delay bounds a
    /// task's lifetime (so a participant stays slashable while any of its tasks is open).
    constructor(IStakeRegistry registry_) {
        if (address(registry_) == address(0)) revert MarketZeroAddress();
        _registry = registry_;
        _token = IERC20(registry_.token());
        _maxLifetime = registry_.unbondingDelay();
    }

    // ----------------------------------------------------------------- requester

    /// @inheritdoc ITaskMarket
    function postJob(JobParams calldata params, bytes calldata workflow, bytes[] calldata inputs)
        external
        nonReentrant
        returns (uint256 jobId, uint256 firstTaskId)
    {
        uint256 n = inputs.length;
        if (n == 0 || n > MAX_INPUTS) revert TaskInputCountOutOfRange(n, MAX_INPUTS);
        (jobId, firstTaskId) = _createJob(params, workflow, n);
        uint256 deadline = block.timestamp + params.commitDuration;
        for (uint256 i; i < n; ++i) {
            _createTask(firstTaskId + i, jobId, deadline, inputs[i]);
        }
        _token.safeTransferFrom(msg.sender, address(this), uint256(params.bountyPerTask) * n);
    }

    /// @inheritdoc ITaskMarket
    function postTask(JobParams calldata params, bytes calldata workflow, bytes calldata input)
        external
        nonReentrant
        returns (uint256 jobId, uint256 taskId)
    {
        (jobId, taskId) = _createJob(params, workflow, 1);
        _createTask(taskId, jobId, block.timestamp + params.commitDuration, input);
        _token.safeTransferFrom(msg.sender, address(this), params.bountyPerTask);
    }

    /// @inheritdoc ITaskMarket
    function cancel(uint256 taskId) external {
        Task storage t = _task(taskId);
        address requester = _jobs[t.jobId].requester;
        if (msg.sender != requester) revert TaskNotRequester(taskId, msg.sender, requester);
        if (t.phase != Phase.Committing) revert TaskWrongPhase(taskId, Phase.Committing, t.phase);
        if (t.commitCount != 0) revert TaskHasCommits(taskId, t.commitCount);
        _refund(taskId, t, RefundReason.Cancelled);
    }

    // ----------------------------------------------------------------- nodes

    /// @inheritdoc ITaskMarket
    function commitResult(uint256 taskId, bytes32 commitment) external returns (uint256 slot) {
        (Task storage t, Job storage j) = _taskAndJob(taskId);
        (Phase phase, uint256 deadline) = _effective(t, j);
        if (phase != Phase.Committing) revert TaskWrongPhase(taskId, Phase.Committing, phase);
        if (block.timestamp > deadline) revert TaskDeadlinePassed(taskId, deadline, block.timestamp);
        if (uint256(commitment) & _LOW224 == 0) revert TaskZeroCommitment(taskId);
        uint256 id = _registry.requireEligibleNode(msg.sender, j.modelId);

        slot = t.commitCount;
        // Bit (id mod 32) of commitBloom marks ids seen; only a hit needs the scan of the stored seals.
        uint256 bloom = t.commitBloom;
        uint256 bit = 1 << (id & 31);
        if (bloom & bit != 0) {
            for (uint256 i; i < slot; ++i) {
                if (uint256(_seals[taskId][i]) >> 224 == id) revert TaskAlreadyCommitted(taskId, msg.sender);
            }
        }
        _seals[taskId][slot] = bytes32((id << 224) | (uint256(commitment) & _LOW224));
        uint256 count = slot + 1;
        // Sets commitBloom bit `id mod 32` (if still clear) and raises commitCount to count <= k <= 16.
        _bump(t, ((bit & ~bloom) << _T_COMMIT_BLOOM) | (1 << _T_COMMIT_COUNT));
        emit ResultCommitted(taskId, msg.sender, slot, commitment, count);

        if (count == j.k) {
            _enter(t, Phase.Revealing, block.timestamp + j.revealDuration);
        }
    }

    /// @inheritdoc ITaskMarket
    function revealResult(uint256 taskId, uint256 slot, bytes32 resultDigest, bytes32 salt) external {
        (Task storage t, Job storage j) = _taskAndJob(taskId);
        (Phase phase, uint256 deadline) = _effective(t, j);
        if (phase != Phase.Revealing) revert TaskWrongPhase(taskId, Phase.Revealing, phase);
        if (block.timestamp > deadline) revert TaskDeadlinePassed(taskId, deadline, block.timestamp);
        if (slot >= t.commitCount) revert TaskNotSlotOwner(taskId, slot, msg.sender);
        uint256 bit = 1 << slot;
        uint256 revealedMask = t.revealedMask;
        if (revealedMask & bit != 0) revert TaskAlreadyRevealed(taskId, slot);
        // The commitment binds msg.sender: a reveal from anyone but the committer's bound address mismatches.
        bytes32 committed = bytes32(uint256(_seals[taskId][slot]) & _LOW224);
        bytes32 computed = _resultCommitment(taskId, msg.sender, resultDigest, salt);
        if (uint256(computed) & _LOW224 != uint256(committed)) {
            revert TaskCommitmentMismatch(taskId, committed, computed);
        }

        if (t.phase != Phase.Revealing) _enterLazily(taskId, t, Phase.Revealing, deadline);
        uint256 order = t.revealCount;
        // Sets revealedMask bit `slot` (clear, checked above) and revealOrder nibble `order` (still zero: one
        // nibble per reveal), and raises revealCount to order + 1 <= commitCount <= 16.
        _bump(t, (bit << _T_REVEALED_MASK) | (slot << (_T_REVEAL_ORDER + 4 * order)) | (1 << _T_REVEAL_COUNT));
        emit ResultRevealed(taskId, msg.sender, slot, order, resultDigest, salt);

        if (order + 1 == t.commitCount) _draw(taskId, t, j, salt, block.timestamp + j.scoreCommitDuration);
    }

    // ----------------------------------------------------------------- validators

    /// @inheritdoc ITaskMarket
    function drawCommittee(uint256 taskId) external {
        (Task storage t, Job storage j) = _taskAndJob(taskId);
        (Phase phase, uint256 deadline) = _effective(t, j);
        if (phase != Phase.Revealing) revert TaskWrongPhase(taskId, Phase.Revealing, phase);
        if (block.timestamp <= deadline) revert TaskDeadlineNotPassed(taskId, deadline, block.timestamp);
        // The committee's deadlines stay where an on-time draw would have put them, so a task's life is
        // bounded by the sum of its four durations however late the draw comes.
        uint256 scoreCommitDeadline = deadline + j.scoreCommitDuration;
        if (block.timestamp > scoreCommitDeadline) {
            revert TaskDeadlinePassed(taskId, scoreCommitDeadline, block.timestamp);
        }
        if (t.revealCount == 0) revert TaskWrongPhase(taskId, Phase.ScoreCommitting, Phase.Revealing);
        _draw(taskId, t, j, blockhash(block.number - 1), scoreCommitDeadline);
    }

    /// @inheritdoc ITaskMarket
    function commitScores(uint256 taskId, uint256 seatIndex, bytes32 commitment) external {
        (Task storage t, Job storage j) = _taskAndJob(taskId);
        (Phase phase, uint256 deadline) = _effective(t, j);
        if (phase != Phase.ScoreCommitting) revert TaskWrongPhase(taskId, Phase.ScoreCommitting, phase);
        if (block.timestamp > deadline) revert TaskDeadlinePassed(taskId, deadline, block.timestamp);
        uint256 size = t.committeeSize;
        if (seatIndex >= size || _seatValidator(taskId, seatIndex) != msg.sender) {
            revert TaskNotCommitteeSeat(taskId, seatIndex, msg.sender);
        }
        if (commitment == bytes32(0)) revert TaskZeroCommitment(taskId);
        if (_scoreSeals[taskId][seatIndex] != bytes32(0)) {
            revert TaskScoresAlreadyCommitted(taskId, seatIndex);
        }

        _scoreSeals[taskId][seatIndex] = commitment;
        uint256 count = t.scoreCommitCount + 1;
        _bump(t, 1 << _T_SCORE_COMMIT_COUNT); // count <= committeeSize <= 16
        emit ScoresCommitted(taskId, msg.sender, seatIndex, commitment);

        if (count == size) {
            _enter(t, Phase.ScoreRevealing, block.timestamp + j.scoreRevealDuration);
        }
    }

    /// @inheritdoc ITaskMarket
    function revealScores(uint256 taskId, uint256 seatIndex, uint8[] calldata scores, bytes32 salt) external {
        (Task storage t, Job storage j) = _taskAndJob(taskId);
        bytes32 committed = _openScoreReveal(taskId, t, j, seatIndex);
        uint256 packed = _packScores(taskId, t.revealCount, scores);
        bytes32 computed = _scoreCommitment(taskId, msg.sender, scores, salt);
        if (computed != committed) revert TaskCommitmentMismatch(taskId, committed, computed);

        _scoreSeals[taskId][seatIndex] = bytes32(packed);
        uint256 count = t.scoreRevealCount + 1;
        // Sets scoreRevealedMask bit `seatIndex` (clear: checked in _openScoreReveal) and raises
        // scoreRevealCount to count <= committeeSize <= 16.
        _bump(t, (1 << (_T_SCORE_REVEALED_MASK + seatIndex)) | (1 << _T_SCORE_REVEAL_COUNT));
        emit ScoresRevealed(taskId, msg.sender, seatIndex, scores);

        if (count == t.scoreCommitCount) _settle(taskId, t, j);
    }

    // ----------------------------------------------------------------- anyone

    /// @inheritdoc ITaskMarket
    function finalize(uint256 taskId) external {
        (Task storage t, Job storage j) = _taskAndJob(taskId);
        (Phase phase, uint256 deadline) = _effective(t, j);
        bool late = block.timestamp > deadline;
        if (phase == Phase.Committing && late && t.commitCount == 0) {
            _refund(taskId, t, RefundReason.NoCommit);
        } else if (phase == Phase.Revealing && late && t.revealCount == 0) {
            _refund(taskId, t, RefundReason.NoReveal);
            _slashNodes(taskId, t);
        } else if (phase == Phase.Revealing) {
            // With no reveal yet, the refund opens right after the reveal deadline; otherwise once the window
            // for `drawCommittee` has closed too.
            uint256 readyAt = t.revealCount == 0 ? deadline : deadline + j.scoreCommitDuration;
            if (block.timestamp <= readyAt) revert TaskNotFinalizable(taskId, phase, readyAt + 1);
            _refund(taskId, t, RefundReason.NoDraw);
            _slashNodes(taskId, t);
        } else if (phase == Phase.ScoreRevealing && (late || t.scoreRevealCount == t.scoreCommitCount)) {
            _settle(taskId, t, j);
        } else {
            uint256 readyAt = deadline + 1;
            if (phase == Phase.ScoreCommitting) readyAt += j.scoreRevealDuration;
            if (phase == Phase.Finalized || phase == Phase.Refunded) readyAt = 0;
            revert TaskNotFinalizable(taskId, phase, readyAt);
        }
    }

    /// @inheritdoc ITaskMarket
    function claim() external nonReentrant returns (uint256 amount) {
        Account storage a = _accounts[msg.sender];
        uint256 word; // balance(128) | claimed(120) | open(8), read and written once
        assembly ("memory-safe") {
            word := sload(a.slot)
        }
        // forge-lint: disable-next-line(unsafe-typecast)
        amount = uint128(word); // the balance field
        if (amount == 0) revert MarketNothingToClaim(msg.sender);
        // Checked uint120 addition, as `a.claimed += uint120(amount)` (amount < 2^128; the lifetime total of one
        // account stays far below 2^120).
        // forge-lint: disable-next-line(unsafe-typecast)
        uint256 claimed = uint120(word >> 128) + uint120(amount);
        word = (word >> 248 << 248) | (claimed << 128); // balance 0, open kept
        assembly ("memory-safe") {
            sstore(a.slot, word)
        }
        emit Claimed(msg.sender, amount);
        // Checks-effects-interactions: the balance is zeroed and the claim recorded before the tokens leave.
        _token.safeTransfer(msg.sender, amount);
    }

    // ----------------------------------------------------------------- views

    /// @inheritdoc ITaskMarket
    function resultCommitment(uint256 taskId, address node, bytes32 resultDigest, bytes32 salt)
        external
        pure
        returns (bytes32)
    {
        return _resultCommitment(taskId, node, resultDigest, salt);
    }

    /// @inheritdoc ITaskMarket
    function scoreCommitment(uint256 taskId, address validator, uint8[] calldata scores, bytes32 salt)
        external
        pure
        returns (bytes32)
    {
        return _scoreCommitment(taskId, validator, scores, salt);
    }

    /// @inheritdoc ITaskMarket
    function phaseOf(uint256 taskId) external view returns (Phase phase, uint256 deadline) {
        Task storage t = _tasks[taskId];
        if (t.phase == Phase.None) return (Phase.None, 0);
        return _effective(t, _jobs[t.jobId]);
    }

    /// @inheritdoc ITaskMarket
    function task(uint256 taskId) external view returns (TaskView memory v) {
        Task storage t = _tasks[taskId];
        v = TaskView({
            jobId: t.jobId,
            phase: t.phase,
            deadline: t.deadline,
            inputHash: t.inputHash,
            commitCount: t.commitCount,
            revealCount: t.revealCount,
            committeeSize: t.committeeSize,
            scoreCommitCount: t.scoreCommitCount,
            scoreRevealCount: t.scoreRevealCount,
            revealedMask: t.revealedMask,
            scoreRevealedMask: t.scoreRevealedMask
        });
    }

    /// @inheritdoc ITaskMarket
    function job(uint256 jobId) external view returns (JobView memory v) {
        Job storage j = _jobs[jobId];
        v.requester = j.requester;
        v.workflowHash = j.workflowHash;
        v.firstTaskId = j.firstTaskId;
        v.taskCount = j.taskCount;
        v.params = JobParams({
            model: _registry.modelName(j.modelId),
            bountyPerTask: j.bountyPerTask,
            k: j.k,
            m: j.m,
            threshold: j.threshold,
            tolerance: j.tolerance,
            validatorShareBps: j.validatorShareBps,
            commitDuration: j.commitDuration,
            revealDuration: j.revealDuration,
            scoreCommitDuration: j.scoreCommitDuration,
            scoreRevealDuration: j.scoreRevealDuration
        });
    }

    /// @inheritdoc ITaskMarket
    function submission(uint256 taskId, uint256 slot) external view returns (address node, bool revealed) {
        Task storage t = _tasks[taskId];
        if (slot >= t.commitCount) return (address(0), false);
        node = _registry.accountOf(_nodeId(taskId, slot));
        revealed = t.revealedMask & (1 << slot) != 0;
    }

    /// @inheritdoc ITaskMarket
    function seat(uint256 taskId, uint256 seatIndex)
        external
        view
        returns (address validator, uint96 weight, bool committed, bool revealed, bytes32 seal)
    {
        if (seatIndex >= MAX_COMMITTEE) return (address(0), 0, false, false, bytes32(0));
        if (seatIndex >= _tasks[taskId].committeeSize) return (address(0), 0, false, false, bytes32(0));
        validator = _seatValidator(taskId, seatIndex);
        // forge-lint: disable-next-line(unsafe-typecast)
        weight = uint96(_seatWeight(taskId, seatIndex)); // < 2^64
        seal = _scoreSeals[taskId][seatIndex];
        committed = seal != bytes32(0);
        revealed = _tasks[taskId].scoreRevealedMask & (1 << seatIndex) != 0;
    }

    /// @inheritdoc ITaskMarket
    function balanceOf(address account) external view returns (uint256) {
        return _accounts[account].balance;
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
    function claimedOf(address account) external view returns (uint256) {
        return _accounts[account].claimed;
    }

    /// @inheritdoc ITaskMarket
    function taskCount() external view returns (uint256) {
        return _taskCount;
    }

    /// @inheritdoc ITaskMarket
    function jobCount() external view returns (uint256) {
        return _jobCount;
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

    function _createJob(JobParams calldata p, bytes calldata workflow, uint256 n)
        private
        returns (uint256 jobId, uint256 firstTaskId)
    {
        _checkParams(p);
        // The only external call (to the trusted registry, and only for a model not seen before) comes before
        // any state is written.
        uint32 modelId = _modelIdOf(p.model);
        jobId = uint256(_jobCount) + 1;
        firstTaskId = uint256(_taskCount) + 1;
        // forge-lint: disable-next-line(unsafe-typecast)
        _jobCount = uint64(jobId); // one job per transaction: 2^64 is out of reach
        // forge-lint: disable-next-line(unsafe-typecast)
        _taskCount = uint64(firstTaskId - 1 + n); // n <= MAX_INPUTS per transaction
        bytes32 workflowHash = keccak256(workflow);
        _storeJob(_jobs[jobId], p, firstTaskId, n, modelId, workflowHash);
        emit JobPosted(
            jobId, msg.sender, p.model, firstTaskId, n, block.timestamp + p.commitDuration, p, workflow
        );
    }

    function _storeJob(
        Job storage j,
        JobParams calldata p,
        uint256 firstTaskId,
        uint256 n,
        uint32 modelId,
        bytes32 workflowHash
    ) private {
        // Each slot in one write (slot 1 packs twelve members; field by field would cost a read and a write
        // each). Offsets follow the declaration order of `Job` (see the layout at the top of the contract).
        // Durations were checked <= MAX_PHASE_DURATION (30 days < 2^24 s); n <= MAX_INPUTS < 2^16.
        uint256 word0 = uint256(uint160(msg.sender)) | (uint256(p.bountyPerTask) << 160);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint256 first = uint64(firstTaskId); // see _taskCount
        uint256 word1 = _packedParams(p) | (first << 144) | (n << 208) | (uint256(modelId) << 224);
        assembly ("memory-safe") {
            sstore(j.slot, word0)
            sstore(add(j.slot, 1), word1)
            sstore(add(j.slot, 2), workflowHash)
        }
    }

    /// @dev The low 144 bits of slot 1 of `Job`: k, m, threshold, tolerance, validatorShareBps (bits 0..47), the
    /// four durations as uint24 (bits 48..143; checked <= MAX_PHASE_DURATION < 2^24 by `_checkParams`).
    function _packedParams(JobParams calldata p) private pure returns (uint256) {
        uint256 durations = uint256(uint24(p.commitDuration)) | (uint256(uint24(p.revealDuration)) << 24)
            | (uint256(uint24(p.scoreCommitDuration)) << 48) | (uint256(uint24(p.scoreRevealDuration)) << 72);
        return uint256(p.k) | (uint256(p.m) << 8) | (uint256(p.threshold) << 16)
            | (uint256(p.tolerance) << 24) | (uint256(p.validatorShareBps) << 32) | (durations << 48);
    }

    /// @dev The registry's id of `model`, through the local cache.
    function _modelIdOf(bytes32 model) private returns (uint32 modelId) {
        modelId = _modelIds[model];
        if (modelId == 0) {
            modelId = _registry.internModel(model);
            _modelIds[model] = modelId;
        }
    }

    function _createTask(uint256 taskId, uint256 jobId, uint256 deadline, bytes calldata input) private {
        bytes32 inputHash = keccak256(input);
        Task storage t = _tasks[taskId];
        // Slot 0 in one write: jobId (one job per transaction: 2^40 jobs is out of reach), deadline, phase.
        uint256 word0 = (jobId & _MASK40) | ((deadline & _MASK40) << _T_DEADLINE)
            | (uint256(Phase.Committing) << _T_PHASE);
        assembly ("memory-safe") {
            sstore(t.slot, word0)
        }
        t.inputHash = inputHash;
        emit TaskPosted(taskId, jobId, input);
    }

    function _checkParams(JobParams calldata p) private view {
        if (p.bountyPerTask == 0) revert TaskZeroBounty();
        if (p.model == bytes32(0)) revert TaskZeroModel();
        if (p.k == 0 || p.k > MAX_RESULTS) revert TaskResultCountOutOfRange(p.k, MAX_RESULTS);
        if (p.m == 0 || p.m > MAX_COMMITTEE) revert TaskCommitteeSizeOutOfRange(p.m, MAX_COMMITTEE);
        if (p.threshold > MAX_SCORE) revert TaskParamOutOfRange(p.threshold, MAX_SCORE);
        if (p.tolerance > MAX_SCORE) revert TaskParamOutOfRange(p.tolerance, MAX_SCORE);
        if (p.validatorShareBps > BPS) revert TaskParamOutOfRange(p.validatorShareBps, BPS);
        _checkDuration(p.commitDuration);
        _checkDuration(p.revealDuration);
        _checkDuration(p.scoreCommitDuration);
        _checkDuration(p.scoreRevealDuration);
        uint256 lifetime =
            uint256(p.commitDuration) + p.revealDuration + p.scoreCommitDuration + p.scoreRevealDuration;
        if (lifetime > _maxLifetime) revert TaskLifetimeTooLong(lifetime, _maxLifetime);
    }

    function _checkDuration(uint256 d) private pure {
        if (d < MIN_PHASE_DURATION || d > MAX_PHASE_DURATION) {
            revert TaskDurationOutOfRange(d, MIN_PHASE_DURATION, MAX_PHASE_DURATION);
        }
    }

    // ----------------------------------------------------------------- internals: lifecycle

    function _task(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.phase == Phase.None) revert TaskNotFound(taskId);
    }

    /// @dev `_task` and its job, from one read of the task's slot 0 (phase and jobId).
    function _taskAndJob(uint256 taskId) private view returns (Task storage t, Job storage j) {
        t = _tasks[taskId];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(t.slot)
        }
        if ((word >> _T_PHASE) & 0xff == uint256(Phase.None)) revert TaskNotFound(taskId);
        j = _jobs[word & _MASK40];
    }

    /// @dev Add `delta` to slot 0 of `t` in one read and one write. Callers only set bits that are clear and
    /// raise counters that stay below their field's maximum, so no carry crosses into the next member.
    function _bump(Task storage t, uint256 delta) private {
        assembly ("memory-safe") {
            sstore(t.slot, add(sload(t.slot), delta))
        }
    }

    /// @dev The phase after applying the deadline transitions that need no action: commits closed with at
    /// least one commit, and score commits closed.
    function _effective(Task storage t, Job storage j) private view returns (Phase phase, uint256 deadline) {
        phase = t.phase;
        deadline = t.deadline;
        if (block.timestamp > deadline) {
            if (phase == Phase.Committing && t.commitCount != 0) {
                phase = Phase.Revealing;
                deadline += j.revealDuration;
            } else if (phase == Phase.ScoreCommitting) {
                phase = Phase.ScoreRevealing;
                deadline += j.scoreRevealDuration;
            }
        }
    }

    /// @dev Store a phase change that the transaction's own event already announces (ResultCommitted with
    /// commitCount == k, CommitteeDrawn, ScoresCommitted completing the committee, TaskRefunded).
    function _enter(Task storage t, Phase phase, uint256 deadline) private {
        // deadline (40 bits at _T_DEADLINE, a timestamp plus at most 4 x 30 days) and phase (8 bits at
        // _T_PHASE) in one read and one write.
        uint256 fields = ((deadline & _MASK40) << _T_DEADLINE) | (uint256(phase) << _T_PHASE);
        uint256 clear = ~(((1 << 48) - 1) << _T_DEADLINE);
        assembly ("memory-safe") {
            sstore(t.slot, or(and(sload(t.slot), clear), fields))
        }
    }

    /// @dev Store a phase change that a passed deadline caused (no other event shows it).
    function _enterLazily(uint256 taskId, Task storage t, Phase phase, uint256 deadline) private {
        _enter(t, phase, deadline);
        emit TaskPhaseChanged(taskId, phase, deadline);
    }

    /// @dev Checks of `revealScores` up to the commitment; applies a pending lazy phase change. Returns the
    /// seat's score commitment.
    function _openScoreReveal(uint256 taskId, Task storage t, Job storage j, uint256 seatIndex)
        private
        returns (bytes32 committed)
    {
        (Phase phase, uint256 deadline) = _effective(t, j);
        if (phase != Phase.ScoreRevealing) revert TaskWrongPhase(taskId, Phase.ScoreRevealing, phase);
        if (block.timestamp > deadline) revert TaskDeadlinePassed(taskId, deadline, block.timestamp);
        // The seat's validator is not re-read: the score commitment it stored binds its address, so only it can
        // open it (anyone else fails with TaskCommitmentMismatch).
        if (seatIndex >= t.committeeSize) revert TaskNotCommitteeSeat(taskId, seatIndex, msg.sender);
        if (t.scoreRevealedMask & (1 << seatIndex) != 0) revert TaskScoresAlreadyRevealed(taskId, seatIndex);
        committed = _scoreSeals[taskId][seatIndex];
        if (committed == bytes32(0)) revert TaskScoresNotCommitted(taskId, seatIndex);
        if (t.phase != Phase.ScoreRevealing) _enterLazily(taskId, t, Phase.ScoreRevealing, deadline);
    }

    /// @dev Byte i = scores[i]; bit 255 set so a revealed all-zero vector is never the empty seal.
    function _packScores(uint256 taskId, uint256 expected, uint8[] calldata scores)
        private
        pure
        returns (uint256 packed)
    {
        uint256 n = scores.length;
        if (n != expected) revert TaskScoreCountMismatch(taskId, expected, n);
        packed = _REVEALED_SCORES_FLAG;
        for (uint256 i; i < n; ++i) {
            uint256 s = scores[i];
            if (s > MAX_SCORE) revert TaskScoreOutOfRange(taskId, i, s);
            packed |= s << (8 * i);
        }
    }

    /// @dev Draw the committee. seed = keccak256(xor of the stored result commitments, `closing` (the salt
    /// of the reveal that closed the phase, or the previous blockhash for `drawCommittee`), prevrandao, taskId).
    function _draw(uint256 taskId, Task storage t, Job storage j, bytes32 closing, uint256 deadline) private {
        uint256 commits = t.commitCount;
        bytes32 entropy = bytes32(0);
        bytes32[16] storage seals = _seals[taskId];
        for (uint256 i; i < commits; ++i) {
            entropy ^= seals[i];
        }
        bytes32 seed = keccak256(abi.encode(entropy, closing, block.prevrandao, taskId));
        (address[] memory validators, uint96[] memory weights) = _registry.drawValidators(seed, j.m);
        uint256 size = validators.length;
        // slither-disable-next-line incorrect-equality
        if (size == 0) {
            _refund(taskId, t, RefundReason.NoValidator);
            _slashNodes(taskId, t);
            return;
        }
        _seat(taskId, commits, validators, weights);
        // forge-lint: disable-next-line(unsafe-typecast)
        t.committeeSize = uint8(size); // size <= m <= MAX_COMMITTEE
        emit CommitteeDrawn(taskId, seed, validators, deadline);
        _enter(t, Phase.ScoreCommitting, deadline);
    }

    /// @dev Write seat i over result seal i, keeping the node id in its top 32 bits.
    function _seat(uint256 taskId, uint256 commits, address[] memory validators, uint96[] memory weights)
        private
    {
        uint256 size = validators.length;
        for (uint256 i; i < size; ++i) {
            uint256 keep = i < commits ? uint256(_seals[taskId][i]) & ~_LOW224 : 0;
            _seals[taskId][i] =
                bytes32(keep | (_scaledWeight(weights[i]) << 160) | uint256(uint160(validators[i])));
        }
    }

    /// @dev A stake as a 64-bit median weight: stake / 2^32 + 1 (never zero; fits since stake < 2^96).
    function _scaledWeight(uint256 stake) private pure returns (uint256) {
        uint256 w = (stake >> 32) + 1;
        return w > type(uint64).max ? type(uint64).max : w;
    }

    function _seatValidator(uint256 taskId, uint256 seatIndex) private view returns (address) {
        return address(uint160(uint256(_seals[taskId][seatIndex])));
    }

    function _seatWeight(uint256 taskId, uint256 seatIndex) private view returns (uint256) {
        return (uint256(_seals[taskId][seatIndex]) >> 160) & type(uint64).max;
    }

    function _nodeId(uint256 taskId, uint256 slot) private view returns (uint32) {
        return uint32(uint256(_seals[taskId][slot]) >> 224);
    }

    /// @dev Outcome of a task's scoring, in memory (keeps `_settle` within the stack).
    struct Tally {
        uint8[] medians;
        uint256 acceptedMask;
        uint256 accepted;
        uint256 agreedMask;
        uint256 agreed;
        uint256 voters;
    }

    /// @dev Medians, acceptance, agreement, credits, slashes. Called once per task, then phase = Finalized.
    function _settle(uint256 taskId, Task storage t, Job storage j) private {
        t.phase = Phase.Finalized;
        Tally memory tally = _tally(taskId, t, j);

        uint256 bounty = j.bountyPerTask;
        uint256 validatorPool = bounty * j.validatorShareBps / BPS;
        uint256 nodeReward = tally.accepted == 0 ? 0 : (bounty - validatorPool) / tally.accepted;
        uint256 validatorReward = tally.agreed == 0 ? 0 : validatorPool / tally.agreed;
        // The integer-division remainders go back to the requester (docs/audit.md, divide-before-multiply).
        // slither-disable-next-line divide-before-multiply
        uint256 refund = bounty - nodeReward * tally.accepted - validatorReward * tally.agreed;

        bytes32[16] storage seals = _seals[taskId];
        if (nodeReward != 0) {
            uint256 order = t.revealOrder;
            uint32[] memory ids = new uint32[](tally.accepted);
            uint256 n = 0;
            for (uint256 r; n < tally.accepted; ++r) {
                if (tally.acceptedMask & (1 << r) != 0) {
                    // forge-lint: disable-next-line(unsafe-typecast)
                    ids[n++] = uint32(uint256(seals[(order >> (4 * r)) & 0xf]) >> 224); // the node id
                }
            }
            address[] memory accounts = _registry.accountsOf(ids);
            for (uint256 i; i < n; ++i) {
                _credit(accounts[i], nodeReward);
            }
        }
        uint256 size = t.committeeSize;
        if (validatorReward != 0) {
            for (uint256 s; s < size; ++s) {
                if (tally.agreedMask & (1 << s) != 0) {
                    _credit(address(uint160(uint256(seals[s]))), validatorReward);
                }
            }
        }
        address requester = j.requester;
        if (refund != 0) _credit(requester, refund);
        emit TaskFinalized(
            taskId,
            requester,
            tally.medians,
            tally.acceptedMask,
            tally.agreedMask,
            nodeReward,
            validatorReward,
            refund
        );

        _slashNodes(taskId, t);
        if (t.scoreCommitCount != tally.voters) _slashValidators(taskId, t);
    }

    /// @dev Slash every seated validator that committed scores and never revealed them.
    function _slashValidators(uint256 taskId, Task storage t) private {
        uint256 size = t.committeeSize;
        uint256 scoreMask = t.scoreRevealedMask;
        bytes32[16] storage seals = _scoreSeals[taskId];
        for (uint256 s; s < size; ++s) {
            if (scoreMask & (1 << s) == 0 && seals[s] != bytes32(0)) {
                _slash(_seatValidator(taskId, s), taskId);
            }
        }
    }

    /// @dev Stake-weighted medians per revealed result, accepted results, agreeing validators.
    function _tally(uint256 taskId, Task storage t, Job storage j) private view returns (Tally memory tally) {
        uint256 size = t.committeeSize;
        uint256 scoreMask = t.scoreRevealedMask;
        uint256[] memory packed = new uint256[](size);
        uint256[] memory weight = new uint256[](size);
        uint256[] memory seatOf = new uint256[](size);
        uint256 voters = 0;
        uint256 totalWeight = 0;
        {
            bytes32[16] storage seals = _scoreSeals[taskId];
            bytes32[16] storage seats = _seals[taskId];
            for (uint256 s; s < size; ++s) {
                if (scoreMask & (1 << s) == 0) continue;
                packed[voters] = uint256(seals[s]);
                uint256 w = (uint256(seats[s]) >> 160) & type(uint64).max; // the seat's weight
                weight[voters] = w;
                seatOf[voters] = s;
                totalWeight += w;
                ++voters;
            }
        }
        tally.voters = voters;

        uint256 results = t.revealCount;
        tally.medians = new uint8[](results);
        uint256 threshold = j.threshold;
        for (uint256 r; r < results; ++r) {
            uint256 med = _weightedMedian(packed, weight, voters, totalWeight, 8 * r);
            tally.medians[r] = uint8(med);
            if (totalWeight != 0 && med >= threshold) {
                tally.acceptedMask |= 1 << r;
                ++tally.accepted;
            }
        }

        uint256 tolerance = j.tolerance;
        for (uint256 v; v < voters; ++v) {
            if (_agrees(packed[v], tally.medians, tolerance)) {
                tally.agreedMask |= 1 << seatOf[v];
                ++tally.agreed;
            }
        }
    }

    /// @dev Whether every score of `packed` lies within `tolerance` of its median.
    function _agrees(uint256 packed, uint8[] memory medians, uint256 tolerance) private pure returns (bool) {
        uint256 results = medians.length;
        for (uint256 r; r < results; ++r) {
            uint256 s = (packed >> (8 * r)) & 0xff;
            uint256 med = medians[r];
            uint256 dist = s > med ? s - med : med - s;
            if (dist > tolerance) return false;
        }
        return true;
    }

    /// @dev Lowest score whose cumulative weight reaches half the total (0 when nobody voted).
    function _weightedMedian(
        uint256[] memory packed,
        uint256[] memory weight,
        uint256 voters,
        uint256 totalWeight,
        uint256 shift
    ) private pure returns (uint256 best) {
        best = type(uint256).max;
        for (uint256 a; a < voters; ++a) {
            uint256 candidate = (packed[a] >> shift) & 0xff;
            if (candidate >= best) continue;
            uint256 below = 0;
            for (uint256 b; b < voters; ++b) {
                if ((packed[b] >> shift) & 0xff <= candidate) below += weight[b];
            }
            if (2 * below >= totalWeight) best = candidate;
        }
        if (best == type(uint256).max) best = 0;
    }

    /// @dev Slash every node that committed and never revealed.
    function _slashNodes(uint256 taskId, Task storage t) private {
        uint256 commits = t.commitCount;
        uint256 missing = commits - t.revealCount;
        if (missing == 0) return;
        uint256 mask = t.revealedMask;
        uint32[] memory ids = new uint32[](missing);
        uint256 n = 0;
        for (uint256 i; i < commits; ++i) {
            if (mask & (1 << i) == 0) ids[n++] = _nodeId(taskId, i);
        }
        address[] memory accounts = _registry.accountsOf(ids);
        for (uint256 i; i < n; ++i) {
            _slash(accounts[i], taskId);
        }
    }

    function _slash(address account, uint256 taskId) private {
        uint256 amount = _registry.slash(account, taskId);
        emit MisconductSlashed(taskId, account, amount);
    }

    function _refund(uint256 taskId, Task storage t, RefundReason reason) private {
        Job storage j = _jobs[t.jobId];
        address requester = j.requester;
        uint256 amount = j.bountyPerTask;
        _enter(t, Phase.Refunded, block.timestamp);
        _credit(requester, amount);
        emit TaskRefunded(taskId, requester, reason, amount);
    }

    function _credit(address account, uint256 amount) private {
        // forge-lint: disable-next-line(unsafe-typecast)
        _accounts[account].balance += uint128(amount); // amount <= a uint96 bounty
    }

    function _resultCommitment(uint256 taskId, address node, bytes32 resultDigest, bytes32 salt)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(taskId, node, resultDigest, salt));
    }

    function _scoreCommitment(uint256 taskId, address validator, uint8[] calldata scores, bytes32 salt)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(taskId, validator, scores, salt));
    }
}
