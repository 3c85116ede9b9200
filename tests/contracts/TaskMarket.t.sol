// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {TaskMarket} from "../../contracts/TaskMarket.sol";
import {IStakeRegistry} from "../../contracts/interfaces/IStakeRegistry.sol";
import {ITaskMarket} from "../../contracts/interfaces/ITaskMarket.sol";

contract TaskMarketTest is Fixture {
    struct Balances {
        uint256 market;
        uint256 registry;
        uint256 requester;
        uint256 caller;
    }

    function _balances(address caller) internal view returns (Balances memory b) {
        b.market = token.balanceOf(address(market));
        b.registry = token.balanceOf(address(registry));
        b.requester = token.balanceOf(requester);
        b.caller = token.balanceOf(caller);
    }

    function _assertNoTokenMoved(Balances memory b, address caller) internal view {
        Balances memory a = _balances(caller);
        vm.assertEq(a.market, b.market, "market balance moved");
        vm.assertEq(a.registry, b.registry, "registry balance moved");
        vm.assertEq(a.requester, b.requester, "requester balance moved");
        vm.assertEq(a.caller, b.caller, "caller balance moved");
    }

    function _expectPostRevert(ITaskMarket.JobParams memory p, bytes memory err) internal {
        Balances memory b = _balances(requester);
        vm.expectRevert(err);
        vm.prank(requester);
        market.postTask(p, WORKFLOW, INPUT);
        _assertNoTokenMoved(b, requester);
    }

    function _scoreAll(uint256 taskId, uint8[] memory scores) internal returns (uint256 size) {
        size = market.task(taskId).committeeSize;
        for (uint256 s; s < size; ++s) {
            _commitScores(taskId, s, scores);
        }
        for (uint256 s; s < size; ++s) {
            _revealScores(taskId, s, scores);
        }
    }

    // ----------------------------------------------------------------- posting

    function test_postTask_escrowsBountyAndStoresHashes() public {
        uint256 before = token.balanceOf(address(market));
        uint256 taskId = _post();
        vm.assertEq(taskId, 1);
        vm.assertEq(token.balanceOf(address(market)), before + 3e18);
        ITaskMarket.TaskView memory t = market.task(taskId);
        vm.assertEq(t.inputHash, keccak256(INPUT));
        vm.assertEq(uint256(t.phase), uint256(ITaskMarket.Phase.Committing));
        vm.assertEq(uint256(t.deadline), block.timestamp + PHASE);
        ITaskMarket.JobView memory j = market.job(t.jobId);
        vm.assertEq(j.workflowHash, keccak256(WORKFLOW));
        vm.assertEq(j.requester, requester);
        vm.assertEq(j.params.model, MODEL);
        vm.assertEq(uint256(j.params.bountyPerTask), 3e18);
    }

    function test_postJob_createsSequentialTasksAndEscrowsAll() public {
        bytes[] memory inputs = new bytes[](3);
        inputs[0] = bytes('{"row":0}');
        inputs[1] = bytes('{"row":1}');
        inputs[2] = bytes('{"row":2}');
        _post(); // task 1
        vm.prank(requester);
        (uint256 jobId, uint256 first) = market.postJob(_params(), WORKFLOW, inputs);
        vm.assertEq(jobId, 2);
        vm.assertEq(first, 2);
        vm.assertEq(market.taskCount(), 4);
        vm.assertEq(token.balanceOf(address(market)), 4 * 3e18);
        for (uint256 i; i < 3; ++i) {
            ITaskMarket.TaskView memory t = market.task(first + i);
            vm.assertEq(t.inputHash, keccak256(inputs[i]));
            vm.assertEq(uint256(t.jobId), jobId);
        }
        ITaskMarket.JobView memory j = market.job(jobId);
        vm.assertEq(uint256(j.firstTaskId), 2);
        vm.assertEq(uint256(j.taskCount), 3);
    }

    /// @dev The job and task slots are written as packed words: every member must read back unchanged.
    function test_postTask_storesEveryFieldInItsPlace() public {
        _post(); // task 1 (job 1)
        ITaskMarket.JobParams memory p = ITaskMarket.JobParams({
            model: MODEL,
            bountyPerTask: type(uint96).max - 5,
            k: 16,
            m: 15,
            threshold: 99,
            tolerance: 98,
            validatorShareBps: 9999,
            commitDuration: 1 days + 1,
            revealDuration: 2 days + 2,
            scoreCommitDuration: 3 days + 3,
            scoreRevealDuration: 1 days - 7
        });
        token.mint(requester, p.bountyPerTask);
        vm.prank(requester);
        token.approve(address(market), type(uint256).max);
        uint256 taskId = _post(p);
        ITaskMarket.JobView memory j = market.job(2);
        vm.assertEq(j.requester, requester);
        vm.assertEq(j.workflowHash, keccak256(WORKFLOW));
        vm.assertEq(uint256(j.firstTaskId), taskId);
        vm.assertEq(uint256(j.taskCount), 1);
        vm.assertEq(keccak256(abi.encode(j.params)), keccak256(abi.encode(p)));
        ITaskMarket.TaskView memory t = market.task(taskId);
        vm.assertEq(uint256(t.jobId), 2);
        vm.assertEq(uint256(t.phase), uint256(ITaskMarket.Phase.Committing));
        vm.assertEq(uint256(t.deadline), block.timestamp + p.commitDuration);
        vm.assertEq(t.inputHash, keccak256(INPUT));
        vm.assertEq(uint256(t.commitCount) + t.revealCount + t.committeeSize + t.scoreCommitCount, 0);
        vm.assertEq(uint256(t.scoreRevealCount) + t.revealedMask + t.scoreRevealedMask, 0);
    }

    function test_postJob_revertsForNoInputs() public {
        Balances memory b = _balances(requester);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskInputCountOutOfRange.selector, 0, 256));
        vm.prank(requester);
        market.postJob(_params(), WORKFLOW, new bytes[](0));
        _assertNoTokenMoved(b, requester);
    }

    function test_postTask_revertsForZeroBounty() public {
        ITaskMarket.JobParams memory p = _params();
        p.bountyPerTask = 0;
        _expectPostRevert(p, abi.encodeWithSelector(ITaskMarket.TaskZeroBounty.selector));
    }

    function test_postTask_revertsForZeroK() public {
        ITaskMarket.JobParams memory p = _params();
        p.k = 0;
        _expectPostRevert(p, abi.encodeWithSelector(ITaskMarket.TaskResultCountOutOfRange.selector, 0, 16));
    }

    function test_postTask_revertsForKAboveMax() public {
        ITaskMarket.JobParams memory p = _params();
        p.k = 17;
        _expectPostRevert(p, abi.encodeWithSelector(ITaskMarket.TaskResultCountOutOfRange.selector, 17, 16));
    }

    function test_postTask_revertsForMOutOfRange() public {
        ITaskMarket.JobParams memory p = _params();
        p.m = 0;
        _expectPostRevert(p, abi.encodeWithSelector(ITaskMarket.TaskCommitteeSizeOutOfRange.selector, 0, 16));
        p.m = 17;
        _expectPostRevert(p, abi.encodeWithSelector(ITaskMarket.TaskCommitteeSizeOutOfRange.selector, 17, 16));
    }

    function test_postTask_revertsForZeroDuration() public {
        ITaskMarket.JobParams memory p = _params();
        p.revealDuration = 0;
        _expectPostRevert(
            p, abi.encodeWithSelector(ITaskMarket.TaskDurationOutOfRange.selector, 0, 1, 30 days)
        );
    }

    function test_postTask_revertsForDurationAboveMax() public {
        ITaskMarket.JobParams memory p = _params();
        p.commitDuration = 30 days + 1;
        _expectPostRevert(
            p, abi.encodeWithSelector(ITaskMarket.TaskDurationOutOfRange.selector, 30 days + 1, 1, 30 days)
        );
    }

    function test_postTask_revertsForLifetimeAboveUnbondingDelay() public {
        ITaskMarket.JobParams memory p = _params();
        p.commitDuration = 5 days;
        p.revealDuration = 2 days;
        uint256 lifetime = 7 days + 2 * PHASE;
        _expectPostRevert(
            p, abi.encodeWithSelector(ITaskMarket.TaskLifetimeTooLong.selector, lifetime, UNBONDING)
        );
    }

    function test_postTask_revertsForThresholdToleranceOrShareOutOfRange() public {
        ITaskMarket.JobParams memory p = _params();
        p.threshold = 101;
        _expectPostRevert(p, abi.encodeWithSelector(ITaskMarket.TaskParamOutOfRange.selector, 101, 100));
        p = _params();
        p.tolerance = 200;
        _expectPostRevert(p, abi.encodeWithSelector(ITaskMarket.TaskParamOutOfRange.selector, 200, 100));
        p = _params();
        p.validatorShareBps = 10_001;
        _expectPostRevert(p, abi.encodeWithSelector(ITaskMarket.TaskParamOutOfRange.selector, 10_001, 10_000));
    }

    function test_postTask_revertsForZeroModel() public {
        ITaskMarket.JobParams memory p = _params();
        p.model = bytes32(0);
        _expectPostRevert(p, abi.encodeWithSelector(ITaskMarket.TaskZeroModel.selector));
    }

    // ----------------------------------------------------------------- cancel

    function test_cancel_refundsBeforeFirstCommit() public {
        uint256 taskId = _post();
        vm.prank(requester);
        market.cancel(taskId);
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Refunded));
        vm.assertEq(market.balanceOf(requester), 3e18);
        uint256 before = token.balanceOf(requester);
        vm.prank(requester);
        vm.assertEq(market.claim(), 3e18);
        vm.assertEq(token.balanceOf(requester), before + 3e18);
    }

    function test_cancel_revertsForNonRequester() public {
        uint256 taskId = _post();
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskNotRequester.selector, taskId, stranger, requester)
        );
        vm.prank(stranger);
        market.cancel(taskId);
    }

    function test_cancel_revertsAfterFirstCommit() public {
        uint256 taskId = _post();
        _commit(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskHasCommits.selector, taskId, 1));
        vm.prank(requester);
        market.cancel(taskId);
        vm.assertEq(market.balanceOf(requester), 0);
    }

    // ----------------------------------------------------------------- commit

    function test_commitResult_assignsSequentialSlots() public {
        uint256 taskId = _post();
        vm.assertEq(_commit(taskId, 0), 0);
        vm.assertEq(_commit(taskId, 1), 1);
        (address n, bool revealed) = market.submission(taskId, 1);
        vm.assertEq(n, nodes[1]);
        vm.assertFalse(revealed);
        vm.assertEq(market.task(taskId).commitCount, 2);
    }

    function test_commitResult_kthCommitOpensReveals() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        ITaskMarket.TaskView memory t = market.task(taskId);
        vm.assertEq(uint256(t.phase), uint256(ITaskMarket.Phase.Revealing));
        vm.assertEq(uint256(t.deadline), block.timestamp + PHASE);
    }

    function test_commitResult_revertsForUnregistered() public {
        uint256 taskId = _post();
        Balances memory b = _balances(stranger);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryNotRegistered.selector, stranger));
        vm.prank(stranger);
        market.commitResult(taskId, keccak256("c"));
        _assertNoTokenMoved(b, stranger);
    }

    function test_commitResult_revertsForValidator() public {
        uint256 taskId = _post();
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryNotANode.selector, validators[0]));
        vm.prank(validators[0]);
        market.commitResult(taskId, keccak256("c"));
    }

    function test_commitResult_revertsForUnservedModel() public {
        ITaskMarket.JobParams memory p = _params();
        p.model = OTHER_MODEL;
        uint256 taskId = _post(p);
        vm.expectRevert(
            abi.encodeWithSelector(IStakeRegistry.RegistryModelNotServed.selector, nodes[0], OTHER_MODEL)
        );
        vm.prank(nodes[0]);
        market.commitResult(taskId, keccak256("c"));
    }

    function test_commitResult_revertsForUnbondingNode() public {
        uint256 taskId = _post();
        vm.prank(nodes[0]);
        registry.beginUnbonding();
        vm.expectRevert(
            abi.encodeWithSelector(
                IStakeRegistry.RegistryUnbonding.selector, nodes[0], block.timestamp + UNBONDING
            )
        );
        vm.prank(nodes[0]);
        market.commitResult(taskId, keccak256("c"));
    }

    function test_commitResult_revertsForUnderstakedNode() public {
        // Node 3 commits and never reveals: slashed below the minimum, it may not commit again.
        uint256 taskId = _post();
        _commit(taskId, 3);
        vm.warp(block.timestamp + 2 * PHASE + 1);
        market.finalize(taskId);
        uint256 stake = MIN_STAKE - MIN_STAKE / 10;
        vm.assertEq(registry.participant(nodes[3]).stake, stake);
        uint256 next = _post();
        vm.expectRevert(
            abi.encodeWithSelector(IStakeRegistry.RegistryStakeTooLow.selector, nodes[3], stake, MIN_STAKE)
        );
        vm.prank(nodes[3]);
        market.commitResult(next, keccak256("c"));
    }

    function test_commitResult_revertsForDuplicate() public {
        uint256 taskId = _post();
        _commit(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskAlreadyCommitted.selector, taskId, nodes[0]));
        vm.prank(nodes[0]);
        market.commitResult(taskId, keccak256("again"));
    }

    function test_commitResult_revertsAfterDeadline() public {
        uint256 taskId = _post();
        uint256 deadline = block.timestamp + PHASE;
        vm.warp(deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskDeadlinePassed.selector, taskId, deadline, deadline + 1)
        );
        vm.prank(nodes[0]);
        market.commitResult(taskId, keccak256("late"));
    }

    function test_commitResult_revertsWhenKCommitsReached() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.TaskWrongPhase.selector,
                taskId,
                ITaskMarket.Phase.Committing,
                ITaskMarket.Phase.Revealing
            )
        );
        vm.prank(nodes[3]);
        market.commitResult(taskId, keccak256("fourth"));
    }

    function test_commitResult_revertsForZeroCommitment() public {
        uint256 taskId = _post();
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskZeroCommitment.selector, taskId));
        vm.prank(nodes[0]);
        market.commitResult(taskId, bytes32(0));
    }

    function test_commitResult_revertsForUnknownTask() public {
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskNotFound.selector, 42));
        vm.prank(nodes[0]);
        market.commitResult(42, keccak256("c"));
    }

    // ----------------------------------------------------------------- reveal

    function test_revealResult_revertsForMismatch() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        bytes32 wrong = market.resultCommitment(taskId, nodes[0], keccak256("other"), _salt(0));
        (, bool revealedBefore) = market.submission(taskId, 0);
        vm.assertFalse(revealedBefore);
        bytes32 stored = bytes32(
            uint256(market.resultCommitment(taskId, nodes[0], _digest(0), _salt(0))) & ((1 << 224) - 1)
        );
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskCommitmentMismatch.selector, taskId, stored, wrong)
        );
        vm.prank(nodes[0]);
        market.revealResult(taskId, 0, keccak256("other"), _salt(0));
    }

    function test_revealResult_revertsForAnotherNodesSlot() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        // Node 1 knows node 0's digest and salt, but the commitment binds node 0's address.
        bytes32 stored = bytes32(
            uint256(market.resultCommitment(taskId, nodes[0], _digest(0), _salt(0))) & ((1 << 224) - 1)
        );
        bytes32 computed = market.resultCommitment(taskId, nodes[1], _digest(0), _salt(0));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskCommitmentMismatch.selector, taskId, stored, computed)
        );
        vm.prank(nodes[1]);
        market.revealResult(taskId, 0, _digest(0), _salt(0));
    }

    function test_revealResult_revertsForUncommittedSlot() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskNotSlotOwner.selector, taskId, 3, nodes[3]));
        vm.prank(nodes[3]);
        market.revealResult(taskId, 3, _digest(3), _salt(3));
    }

    function test_revealResult_revertsForDuplicate() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        _reveal(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskAlreadyRevealed.selector, taskId, 0));
        vm.prank(nodes[0]);
        market.revealResult(taskId, 0, _digest(0), _salt(0));
    }

    function test_revealResult_revertsDuringCommits() public {
        uint256 taskId = _post();
        _commit(taskId, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.TaskWrongPhase.selector,
                taskId,
                ITaskMarket.Phase.Revealing,
                ITaskMarket.Phase.Committing
            )
        );
        vm.prank(nodes[0]);
        market.revealResult(taskId, 0, _digest(0), _salt(0));
    }

    function test_revealResult_revertsAfterDeadline() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        uint256 deadline = block.timestamp + PHASE;
        vm.warp(deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskDeadlinePassed.selector, taskId, deadline, deadline + 1)
        );
        vm.prank(nodes[0]);
        market.revealResult(taskId, 0, _digest(0), _salt(0));
    }

    function test_revealResult_fewerThanKCommitsProceedAfterCommitDeadline() public {
        uint256 taskId = _post();
        _commit(taskId, 0);
        _commit(taskId, 1);
        uint256 commitDeadline = block.timestamp + PHASE;
        vm.warp(commitDeadline + 1);
        (ITaskMarket.Phase phase, uint256 deadline) = market.phaseOf(taskId);
        vm.assertEq(uint256(phase), uint256(ITaskMarket.Phase.Revealing));
        vm.assertEq(deadline, commitDeadline + PHASE);
        _reveal(taskId, 0);
        _reveal(taskId, 1); // the last expected reveal draws the committee
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.ScoreCommitting));
        vm.assertGt(market.task(taskId).committeeSize, 0, "committee drawn");
    }

    function test_revealResult_lastRevealDrawsDistinctStakedCommittee() public {
        uint256 taskId = _toScoring();
        ITaskMarket.TaskView memory t = market.task(taskId);
        vm.assertEq(uint256(t.phase), uint256(ITaskMarket.Phase.ScoreCommitting));
        address[] memory seats = _committee(taskId);
        vm.assertGt(seats.length, 0, "seats");
        for (uint256 i; i < seats.length; ++i) {
            vm.assertEq(uint256(registry.participant(seats[i]).role), uint256(IStakeRegistry.Role.Validator));
            (, uint96 weight,,,) = market.seat(taskId, i);
            vm.assertEq(uint256(weight), (uint256(registry.participant(seats[i]).stake) >> 32) + 1);
            for (uint256 j; j < i; ++j) {
                vm.assertTrue(seats[i] != seats[j], "duplicate seat");
            }
        }
    }

    // ----------------------------------------------------------------- draw

    function test_drawCommittee_revertsOnceTheScoreCommitWindowPassed() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        _reveal(taskId, 0);
        uint256 last = block.timestamp + 2 * PHASE;
        vm.warp(last + 1);
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskDeadlinePassed.selector, taskId, last, last + 1)
        );
        market.drawCommittee(taskId);
    }

    function test_drawCommittee_keepsOnTimeDeadlines() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        _reveal(taskId, 0);
        uint256 revealDeadline = block.timestamp + PHASE;
        vm.warp(revealDeadline + PHASE / 2);
        market.drawCommittee(taskId);
        ITaskMarket.TaskView memory t = market.task(taskId);
        vm.assertEq(uint256(t.phase), uint256(ITaskMarket.Phase.ScoreCommitting));
        vm.assertEq(uint256(t.deadline), revealDeadline + PHASE);
    }

    function test_drawCommittee_revertsBeforeRevealDeadline() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        _reveal(taskId, 0);
        uint256 deadline = block.timestamp + PHASE;
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.TaskDeadlineNotPassed.selector, taskId, deadline, block.timestamp
            )
        );
        market.drawCommittee(taskId);
    }

    function test_draw_refundsWhenNoValidatorIsActive() public {
        for (uint256 i; i < validators.length; ++i) {
            vm.prank(validators[i]);
            registry.beginUnbonding();
        }
        uint256 taskId = _toScoring();
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Refunded));
        vm.assertEq(market.balanceOf(requester), 3e18);
    }

    // ----------------------------------------------------------------- scores

    function test_commitScores_revertsForNonMember() public {
        uint256 taskId = _toScoring();
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskNotCommitteeSeat.selector, taskId, 0, nodes[0])
        );
        vm.prank(nodes[0]);
        market.commitScores(taskId, 0, keccak256("s"));
    }

    function test_commitScores_revertsForDuplicate() public {
        uint256 taskId = _toScoring();
        _commitScores(taskId, 0, _scores3(80, 80, 80));
        (address v,,,,) = market.seat(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskScoresAlreadyCommitted.selector, taskId, 0));
        vm.prank(v);
        market.commitScores(taskId, 0, keccak256("again"));
    }

    function test_commitScores_revertsAfterDeadline() public {
        uint256 taskId = _toScoring();
        (address v,,,,) = market.seat(taskId, 0);
        vm.warp(block.timestamp + PHASE + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.TaskWrongPhase.selector,
                taskId,
                ITaskMarket.Phase.ScoreCommitting,
                ITaskMarket.Phase.ScoreRevealing
            )
        );
        vm.prank(v);
        market.commitScores(taskId, 0, keccak256("late"));
    }

    function test_revealScores_revertsForMismatch() public {
        uint256 taskId = _toScoring();
        uint256 size = market.task(taskId).committeeSize;
        for (uint256 s; s < size; ++s) {
            _commitScores(taskId, s, _scores3(80, 80, 80));
        }
        (address v,,,, bytes32 seal) = market.seat(taskId, 0);
        uint8[] memory other = _scores3(10, 80, 80);
        bytes32 computed = market.scoreCommitment(taskId, v, other, _salt(100));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskCommitmentMismatch.selector, taskId, seal, computed)
        );
        vm.prank(v);
        market.revealScores(taskId, 0, other, _salt(100));
    }

    function test_revealScores_revertsForWrongLength() public {
        uint256 taskId = _toScoring();
        _commitScores(taskId, 0, _scores3(80, 80, 80));
        vm.warp(block.timestamp + PHASE + 1);
        (address v,,,,) = market.seat(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskScoreCountMismatch.selector, taskId, 3, 2));
        vm.prank(v);
        market.revealScores(taskId, 0, new uint8[](2), _salt(100));
    }

    function test_revealScores_revertsForScoreAbove100() public {
        uint256 taskId = _toScoring();
        uint8[] memory bad = _scores3(80, 101, 80);
        _commitScores(taskId, 0, bad);
        vm.warp(block.timestamp + PHASE + 1);
        (address v,,,,) = market.seat(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskScoreOutOfRange.selector, taskId, 1, 101));
        vm.prank(v);
        market.revealScores(taskId, 0, bad, _salt(100));
    }

    function test_revealScores_revertsWhenNotCommitted() public {
        uint256 taskId = _toScoring();
        uint256 size = market.task(taskId).committeeSize;
        vm.assertGt(size, 1, "needs two seats");
        _commitScores(taskId, 0, _scores3(80, 80, 80));
        vm.warp(block.timestamp + PHASE + 1);
        (address v,,,,) = market.seat(taskId, 1);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskScoresNotCommitted.selector, taskId, 1));
        vm.prank(v);
        market.revealScores(taskId, 1, _scores3(80, 80, 80), _salt(101));
    }

    // ----------------------------------------------------------------- settlement

    function test_finalize_paysAcceptedResultsAndAgreeingValidators() public {
        uint256 taskId = _toScoring();
        uint256 size = _scoreAll(taskId, _scores3(80, 90, 70));
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Finalized));
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(market.balanceOf(nodes[i]), 0.8e18);
        }
        address[] memory seats = _committee(taskId);
        uint256 each = 0.6e18 / size;
        for (uint256 s; s < size; ++s) {
            vm.assertEq(market.balanceOf(seats[s]), each);
        }
        vm.assertEq(market.balanceOf(requester), 0.6e18 - each * size);
        // Claims empty the market of this task's escrow.
        for (uint256 i; i < 3; ++i) {
            vm.prank(nodes[i]);
            market.claim();
        }
        for (uint256 s; s < size; ++s) {
            vm.prank(seats[s]);
            market.claim();
        }
        vm.assertEq(token.balanceOf(address(market)), market.balanceOf(requester));
    }

    function test_finalize_rejectsResultsBelowThresholdAndRefunds() public {
        uint256 taskId = _toScoring();
        _scoreAll(taskId, _scores3(80, 10, 20));
        // Only the first revealed result (node 0's) is accepted: it takes the whole node share.
        vm.assertEq(market.balanceOf(nodes[0]), 2.4e18);
        vm.assertEq(market.balanceOf(nodes[1]), 0);
        vm.assertEq(market.balanceOf(nodes[2]), 0);
    }

    function test_finalize_medianIsStakeWeighted() public {
        uint256 taskId = _toScoring();
        uint256 size = market.task(taskId).committeeSize;
        vm.assertEq(size, 3, "all three validators seated");
        // The heaviest validator (300 of 600 staked) alone reaches half the weight: its low scores win.
        address[] memory seats = _committee(taskId);
        uint8[][] memory vectors = new uint8[][](3);
        for (uint256 s; s < 3; ++s) {
            vectors[s] = seats[s] == validators[2] ? _scores3(10, 10, 10) : _scores3(90, 90, 90);
        }
        for (uint256 s; s < 3; ++s) {
            _commitScores(taskId, s, vectors[s]);
        }
        for (uint256 s; s < 3; ++s) {
            _revealScores(taskId, s, vectors[s]);
        }
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(market.balanceOf(nodes[i]), 0, "rejected by the weighted median");
        }
        vm.assertEq(market.balanceOf(validators[2]), 0.6e18, "only the median's validator agrees");
        vm.assertEq(market.balanceOf(requester), 2.4e18);
    }

    function test_finalize_slashesNonRevealingNodeAfterDraw() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        _reveal(taskId, 0);
        _reveal(taskId, 1);
        vm.warp(block.timestamp + PHASE + 1);
        market.drawCommittee(taskId);
        uint8[] memory scores = new uint8[](2);
        scores[0] = 90;
        scores[1] = 90;
        uint256 size = market.task(taskId).committeeSize;
        for (uint256 s; s < size; ++s) {
            _commitScores(taskId, s, scores);
        }
        for (uint256 s; s < size; ++s) {
            _revealScores(taskId, s, scores);
        }
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Finalized));
        vm.assertEq(registry.participant(nodes[2]).stake, MIN_STAKE - MIN_STAKE / 10, "slashed");
        vm.assertEq(registry.treasuryBalance(), MIN_STAKE / 10);
        vm.assertEq(market.balanceOf(nodes[0]), 1.2e18);
        vm.assertEq(market.balanceOf(nodes[2]), 0);
        registry.sweepTreasury();
        vm.assertEq(token.balanceOf(treasury), MIN_STAKE / 10);
    }

    function test_finalize_slashesValidatorThatCommittedButNeverRevealed() public {
        uint256 taskId = _toScoring();
        uint256 size = market.task(taskId).committeeSize;
        vm.assertGt(size, 1, "needs two seats");
        for (uint256 s; s < size; ++s) {
            _commitScores(taskId, s, _scores3(80, 80, 80));
        }
        (address silent,,,,) = market.seat(taskId, 0);
        uint256 stake = registry.participant(silent).stake;
        for (uint256 s = 1; s < size; ++s) {
            _revealScores(taskId, s, _scores3(80, 80, 80));
        }
        vm.warp(block.timestamp + PHASE + 1);
        market.finalize(taskId);
        vm.assertEq(registry.participant(silent).stake, stake - MIN_STAKE / 10);
        vm.assertEq(market.balanceOf(silent), 0);
    }

    function test_finalize_refundsWhenNoCommit() public {
        uint256 taskId = _post();
        vm.warp(block.timestamp + PHASE + 1);
        market.finalize(taskId);
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Refunded));
        vm.assertEq(market.balanceOf(requester), 3e18);
    }

    function test_finalize_refundsAndSlashesWhenNoReveal() public {
        uint256 taskId = _post();
        _commit(taskId, 0);
        vm.warp(block.timestamp + 2 * PHASE + 1);
        market.finalize(taskId);
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Refunded));
        vm.assertEq(market.balanceOf(requester), 3e18);
        vm.assertEq(registry.participant(nodes[0]).stake, MIN_STAKE - MIN_STAKE / 10);
    }

    function test_finalize_refundsWhenNobodyDraws() public {
        uint256 taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        _reveal(taskId, 0);
        uint256 revealDeadline = block.timestamp + PHASE;
        uint256 readyAt = revealDeadline + PHASE;
        vm.warp(readyAt);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.TaskNotFinalizable.selector, taskId, ITaskMarket.Phase.Revealing, readyAt + 1
            )
        );
        market.finalize(taskId);
        vm.warp(readyAt + 1);
        market.finalize(taskId);
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Refunded));
        vm.assertEq(registry.participant(nodes[1]).stake, MIN_STAKE - MIN_STAKE / 10);
        vm.assertEq(registry.participant(nodes[0]).stake, MIN_STAKE, "the revealer keeps its stake");
    }

    function test_finalize_revertsWhileCommitting() public {
        uint256 taskId = _post();
        uint256 deadline = block.timestamp + PHASE;
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.TaskNotFinalizable.selector, taskId, ITaskMarket.Phase.Committing, deadline + 1
            )
        );
        market.finalize(taskId);
    }

    function test_finalize_revertsOnceFinalized() public {
        uint256 taskId = _toScoring();
        _scoreAll(taskId, _scores3(80, 90, 70));
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.TaskNotFinalizable.selector, taskId, ITaskMarket.Phase.Finalized, 0
            )
        );
        market.finalize(taskId);
    }

    // ----------------------------------------------------------------- claims and views

    function test_claim_revertsWithNothingToClaim() public {
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.MarketNothingToClaim.selector, stranger));
        vm.prank(stranger);
        market.claim();
    }

    function test_claim_paysOnceAndRecordsTotal() public {
        uint256 taskId = _post();
        vm.prank(requester);
        market.cancel(taskId);
        vm.expectEmit();
        emit ITaskMarket.Claimed(requester, 3e18);
        vm.prank(requester);
        market.claim();
        vm.assertEq(market.claimedOf(requester), 3e18);
        vm.assertEq(market.balanceOf(requester), 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.MarketNothingToClaim.selector, requester));
        vm.prank(requester);
        market.claim();
    }

    function test_resultCommitment_matchesAbiEncoding() public view {
        bytes32 expected =
            keccak256(abi.encode(uint256(7), nodes[0], bytes32(uint256(1)), bytes32(uint256(2))));
        vm.assertEq(market.resultCommitment(7, nodes[0], bytes32(uint256(1)), bytes32(uint256(2))), expected);
        uint8[] memory s = _scores3(1, 2, 3);
        vm.assertEq(
            market.scoreCommitment(7, validators[0], s, bytes32(uint256(9))),
            keccak256(abi.encode(uint256(7), validators[0], s, bytes32(uint256(9))))
        );
    }

    function test_revealScores_revertsForDuplicate() public {
        uint256 taskId = _toScoring();
        uint256 size = market.task(taskId).committeeSize;
        vm.assertGt(size, 1, "needs two seats");
        for (uint256 s; s < size; ++s) {
            _commitScores(taskId, s, _scores3(80, 80, 80));
        }
        _revealScores(taskId, 0, _scores3(80, 80, 80));
        (address v,,,,) = market.seat(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskScoresAlreadyRevealed.selector, taskId, 0));
        vm.prank(v);
        market.revealScores(taskId, 0, _scores3(80, 80, 80), _salt(100));
    }

    function test_revealScores_revertsAfterDeadline() public {
        uint256 taskId = _toScoring();
        _commitScores(taskId, 0, _scores3(80, 80, 80));
        uint256 deadline = block.timestamp + 2 * PHASE;
        vm.warp(deadline + 1);
        (address v,,,,) = market.seat(taskId, 0);
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskDeadlinePassed.selector, taskId, deadline, deadline + 1)
        );
        vm.prank(v);
        market.revealScores(taskId, 0, _scores3(80, 80, 80), _salt(100));
    }

    function test_commitScores_revertsForZeroCommitment() public {
        uint256 taskId = _toScoring();
        (address v,,,,) = market.seat(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskZeroCommitment.selector, taskId));
        vm.prank(v);
        market.commitScores(taskId, 0, bytes32(0));
    }

    function test_finalize_settlesEarlyWhenNoScoreWasCommitted() public {
        uint256 taskId = _toScoring();
        vm.warp(block.timestamp + PHASE + 1);
        market.finalize(taskId);
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Finalized));
        vm.assertEq(market.balanceOf(requester), 3e18, "nothing validated: all refunded");
    }

    function test_phaseOf_reportsLazyTransitions() public {
        uint256 taskId = _post();
        _commit(taskId, 0);
        uint256 commitDeadline = block.timestamp + PHASE;
        vm.warp(commitDeadline + 1);
        (ITaskMarket.Phase phase, uint256 deadline) = market.phaseOf(taskId);
        vm.assertEq(uint256(phase), uint256(ITaskMarket.Phase.Revealing));
        vm.assertEq(deadline, commitDeadline + PHASE);
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Committing), "stored lags");
    }

    function test_constructor_revertsForZeroRegistry() public {
        vm.expectRevert(ITaskMarket.MarketZeroAddress.selector);
        new TaskMarket(IStakeRegistry(address(0)));
    }

    function test_revealScores_revertsForAnotherValidatorsSeat() public {
        uint256 taskId = _toScoring();
        uint256 size = market.task(taskId).committeeSize;
        vm.assertGt(size, 1, "needs two seats");
        for (uint256 s; s < size; ++s) {
            _commitScores(taskId, s, _scores3(80, 80, 80));
        }
        (,,,, bytes32 seal) = market.seat(taskId, 0);
        (address other,,,,) = market.seat(taskId, 1);
        bytes32 computed = market.scoreCommitment(taskId, other, _scores3(80, 80, 80), _salt(100));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskCommitmentMismatch.selector, taskId, seal, computed)
        );
        vm.prank(other);
        market.revealScores(taskId, 0, _scores3(80, 80, 80), _salt(100));
    }
}
