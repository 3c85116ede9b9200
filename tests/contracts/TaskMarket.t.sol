// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {TaskMarket} from "../../contracts/TaskMarket.sol";
import {IStakeRegistry} from "../../contracts/interfaces/IStakeRegistry.sol";
import {ITaskMarket} from "../../contracts/interfaces/ITaskMarket.sol";

/// @notice Unit tests of TaskMarket v2: every entry point, every revert path by selector (with the values it
/// carries, and no token moved), every phase boundary at deadline - 1, deadline, deadline + 1.
contract TaskMarketTest is Fixture {
    // ----------------------------------------------------------------- helpers

    /// @dev Commit and reveal `scores[validator index]` from every seat (seats are drawn in random order).
    function _scoreBy(uint256 batchId, bytes[3] memory byValidator) internal {
        address[] memory seats = _committee(batchId);
        bytes[] memory vectors = new bytes[](seats.length);
        for (uint256 s; s < seats.length; ++s) {
            vectors[s] = byValidator[_validatorIndex(seats[s])];
        }
        _score(batchId, vectors);
    }

    function _validatorIndex(address v) internal view returns (uint256) {
        for (uint256 i; i < validators.length; ++i) {
            if (validators[i] == v) return i;
        }
        revert("not a validator");
    }

    function _expectNoTokenMoved(uint256 marketBefore, uint256 registryBefore) internal view {
        vm.assertEq(token.balanceOf(address(market)), marketBefore, "market balance moved");
        vm.assertEq(token.balanceOf(address(registry)), registryBefore, "registry balance moved");
    }

    function _postExpectRevert(ITaskMarket.JobParams memory p, uint256 rows, bytes memory err) internal {
        uint256 mb = token.balanceOf(address(market));
        uint256 rb = token.balanceOf(requester);
        bytes[] memory r = _rows(rows);
        vm.expectRevert(err);
        vm.prank(requester);
        market.postJob(p, WORKFLOW, r);
        vm.assertEq(token.balanceOf(address(market)), mb, "market balance moved");
        vm.assertEq(token.balanceOf(requester), rb, "requester balance moved");
    }

    // ----------------------------------------------------------------- constructor

    function test_constructor_revertsForZeroRegistry() public {
        vm.expectRevert(ITaskMarket.MarketZeroAddress.selector);
        new TaskMarket(IStakeRegistry(address(0)), 30);
    }

    function test_constructor_revertsForZeroOrHugeMinPhase() public {
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.MarketMinPhaseDurationOutOfRange.selector, 0, 30 days)
        );
        new TaskMarket(registry, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.MarketMinPhaseDurationOutOfRange.selector, 30 days + 1, 30 days
            )
        );
        new TaskMarket(registry, 30 days + 1);
    }

    // ----------------------------------------------------------------- postJob

    function test_postJob_splitsRowsIntoBatchesAndEscrows() public {
        ITaskMarket.JobParams memory p = _params();
        p.batchSize = 2;
        bytes[] memory rows = _rows(5);
        uint256 before = token.balanceOf(requester);
        vm.prank(requester);
        (uint256 jobId, uint256 first) = market.postJob(p, WORKFLOW, rows);
        vm.assertEq(jobId, 1);
        vm.assertEq(first, 1);
        vm.assertEq(market.batchCount(), 3);
        vm.assertEq(token.balanceOf(requester), before - 5 * uint256(BOUNTY));
        vm.assertEq(token.balanceOf(address(market)), 5 * uint256(BOUNTY));
        uint256[3] memory sizes = [uint256(2), 2, 1];
        for (uint256 i; i < 3; ++i) {
            ITaskMarket.BatchView memory b = market.batch(first + i);
            vm.assertEq(b.rows, sizes[i], "rows");
            vm.assertEq(b.firstRow, 2 * i, "first row");
            vm.assertEq(b.jobId, jobId);
            vm.assertEq(uint256(b.phase), uint256(ITaskMarket.Phase.Committing));
            vm.assertEq(b.deadline, block.timestamp + PHASE);
            bytes[] memory slice = new bytes[](sizes[i]);
            for (uint256 r; r < sizes[i]; ++r) {
                slice[r] = rows[2 * i + r];
            }
            // One stored word binds the job's workflow and the batch's rows.
            vm.assertEq(
                b.inputHash, keccak256(abi.encode(keccak256(WORKFLOW), market.rowsHash(slice))), "input hash"
            );
        }
        ITaskMarket.JobView memory j = market.job(jobId);
        vm.assertEq(j.requester, requester);
        vm.assertEq(j.firstBatchId, 1);
        vm.assertEq(j.batchCount, 3);
        vm.assertEq(j.rowCount, 5);
        vm.assertEq(j.params.model, MODEL);
        vm.assertEq(j.params.batchSize, 2);
        vm.assertEq(j.params.junkFloor, 10);
        vm.assertEq(j.params.scoreRevealDuration, PHASE);
    }

    /// @notice The rows and the workflow, taken from the events alone, hash to each batch's stored input hash.
    function test_postJob_emitsRowsOfEachBatch() public {
        ITaskMarket.JobParams memory p = _params();
        p.batchSize = 2;
        bytes[] memory rows = _rows(3);
        vm.recordLogs();
        vm.prank(requester);
        market.postJob(p, WORKFLOW, rows);
        Vm_Log[] memory logs = _logs();
        bytes32 jobTopic = keccak256(
            "JobPosted(uint256,address,bytes32,uint256,uint256,uint256,(bytes32,uint96,uint16,uint8,uint8,uint8,uint8,uint8,uint16,uint32,uint32,uint32,uint32),bytes)"
        );
        bytes32 topic = keccak256("BatchPosted(uint256,uint256,uint256,uint256,bytes32,bytes[])");
        bytes32 workflowHash;
        uint256 seen = 0;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == jobTopic) {
                (,,,, bytes memory workflow) =
                    abi.decode(logs[i].data, (uint256, uint256, uint256, ITaskMarket.JobParams, bytes));
                workflowHash = keccak256(workflow);
                continue;
            }
            if (logs[i].topics[0] != topic) continue;
            (uint256 firstRow,, bytes32 h, bytes[] memory got) =
                abi.decode(logs[i].data, (uint256, uint256, bytes32, bytes[]));
            vm.assertEq(firstRow, 2 * seen);
            for (uint256 r; r < got.length; ++r) {
                vm.assertEq(keccak256(got[r]), keccak256(rows[firstRow + r]), "row bytes");
            }
            vm.assertEq(h, market.rowsHash(got), "event rows hash");
            vm.assertEq(
                keccak256(abi.encode(workflowHash, market.rowsHash(got))),
                market.batch(uint256(logs[i].topics[1])).inputHash,
                "rows and workflow from the events match the stored input hash"
            );
            ++seen;
        }
        vm.assertEq(workflowHash, keccak256(WORKFLOW), "JobPosted seen first");
        vm.assertEq(seen, 2);
    }

    struct Vm_Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function _logs() internal returns (Vm_Log[] memory out) {
        bytes memory raw = abi.encode(vm.getRecordedLogs());
        out = abi.decode(raw, (Vm_Log[]));
    }

    function test_postJob_revertsForNoRows() public {
        _postExpectRevert(_params(), 0, abi.encodeWithSelector(ITaskMarket.JobNoRows.selector));
    }

    function test_postJob_revertsForZeroBounty() public {
        ITaskMarket.JobParams memory p = _params();
        p.bountyPerTask = 0;
        _postExpectRevert(p, 1, abi.encodeWithSelector(ITaskMarket.JobZeroBounty.selector));
    }

    function test_postJob_revertsForZeroModel() public {
        ITaskMarket.JobParams memory p = _params();
        p.model = bytes32(0);
        _postExpectRevert(p, 1, abi.encodeWithSelector(ITaskMarket.JobZeroModel.selector));
    }

    function test_postJob_revertsForBatchSizeOutOfRange() public {
        ITaskMarket.JobParams memory p = _params();
        p.batchSize = 0;
        _postExpectRevert(p, 1, abi.encodeWithSelector(ITaskMarket.JobBatchSizeOutOfRange.selector, 0, 256));
        p.batchSize = 257;
        p.k = 1;
        p.m = 1;
        _postExpectRevert(p, 1, abi.encodeWithSelector(ITaskMarket.JobBatchSizeOutOfRange.selector, 257, 256));
        p.batchSize = 256; // the maximum is accepted
        vm.prank(requester);
        market.postJob(p, WORKFLOW, _rows(1));
    }

    function test_postJob_revertsForKOutOfRange() public {
        ITaskMarket.JobParams memory p = _params();
        p.k = 0;
        _postExpectRevert(p, 1, abi.encodeWithSelector(ITaskMarket.JobResultCountOutOfRange.selector, 0, 16));
        p.k = 17;
        _postExpectRevert(p, 1, abi.encodeWithSelector(ITaskMarket.JobResultCountOutOfRange.selector, 17, 16));
        p.k = 16;
        vm.prank(requester);
        market.postJob(p, WORKFLOW, _rows(1));
    }

    function test_postJob_revertsForMOutOfRange() public {
        ITaskMarket.JobParams memory p = _params();
        p.m = 0;
        _postExpectRevert(
            p, 1, abi.encodeWithSelector(ITaskMarket.JobCommitteeSizeOutOfRange.selector, 0, 16)
        );
        p.m = 17;
        _postExpectRevert(
            p, 1, abi.encodeWithSelector(ITaskMarket.JobCommitteeSizeOutOfRange.selector, 17, 16)
        );
        p.m = 16;
        vm.prank(requester);
        market.postJob(p, WORKFLOW, _rows(1));
    }

    function test_postJob_revertsForTooManyScoreCells() public {
        ITaskMarket.JobParams memory p = _params();
        p.batchSize = 256;
        p.k = 4;
        p.m = 5;
        _postExpectRevert(p, 1, abi.encodeWithSelector(ITaskMarket.JobBatchTooLarge.selector, 5120, 4096));
        p.m = 4; // 4096 cells exactly
        vm.prank(requester);
        market.postJob(p, WORKFLOW, _rows(1));
    }

    function test_postJob_revertsForParamsOutOfRange() public {
        ITaskMarket.JobParams memory p = _params();
        p.threshold = 101;
        _postExpectRevert(p, 1, abi.encodeWithSelector(ITaskMarket.JobParamOutOfRange.selector, 101, 100));
        p = _params();
        p.tolerance = 101;
        _postExpectRevert(p, 1, abi.encodeWithSelector(ITaskMarket.JobParamOutOfRange.selector, 101, 100));
        p = _params();
        p.junkFloor = 51;
        _postExpectRevert(p, 1, abi.encodeWithSelector(ITaskMarket.JobParamOutOfRange.selector, 51, 50));
        p = _params();
        p.validatorShareBps = 10_001;
        _postExpectRevert(
            p, 1, abi.encodeWithSelector(ITaskMarket.JobParamOutOfRange.selector, 10_001, 10_000)
        );
    }

    function test_postJob_revertsForDurationOutOfRange() public {
        ITaskMarket.JobParams memory p = _params();
        p.revealDuration = 29;
        _postExpectRevert(
            p, 1, abi.encodeWithSelector(ITaskMarket.JobDurationOutOfRange.selector, 29, 30, 30 days)
        );
        p = _params();
        p.scoreRevealDuration = 30 days + 1;
        _postExpectRevert(
            p, 1, abi.encodeWithSelector(ITaskMarket.JobDurationOutOfRange.selector, 30 days + 1, 30, 30 days)
        );
        p = _params();
        p.commitDuration = 30; // the minimum is accepted
        p.scoreCommitDuration = 30 days; // the maximum too
        vm.prank(requester);
        market.postJob(p, WORKFLOW, _rows(1));
    }

    function test_postJob_revertsForTooManyRowsOrBatches() public {
        ITaskMarket.JobParams memory p = _params();
        p.batchSize = 8;
        p.k = 1;
        p.m = 1;
        _postExpectRevert(
            p, 1025, abi.encodeWithSelector(ITaskMarket.JobTooLarge.selector, 1025, 129, 1024, 128)
        );
        p.batchSize = 1;
        _postExpectRevert(
            p, 129, abi.encodeWithSelector(ITaskMarket.JobTooLarge.selector, 129, 129, 1024, 128)
        );
        vm.prank(requester);
        (, uint256 first) = market.postJob(p, WORKFLOW, _rows(128)); // 128 batches: the maximum
        vm.assertEq(first + 127, market.batchCount());
    }

    function test_postJob_revertsWithoutAllowance() public {
        vm.prank(requester);
        token.approve(address(market), 0);
        vm.expectRevert();
        vm.prank(requester);
        market.postJob(_params(), WORKFLOW, _rows(1));
        vm.assertEq(market.batchCount(), 0);
    }

    // ----------------------------------------------------------------- cancel

    function test_cancel_refundsWholeBounty() public {
        uint256 batchId = _postBatch(4);
        vm.prank(requester);
        market.cancel(batchId);
        vm.assertEq(uint256(_phase(batchId)), uint256(ITaskMarket.Phase.Refunded));
        vm.assertEq(market.balanceOf(requester), 4 * uint256(BOUNTY));
        vm.prank(requester);
        vm.assertEq(market.claim(), 4 * uint256(BOUNTY));
        vm.assertEq(token.balanceOf(address(market)), 0);
    }

    function test_cancel_revertsForNonRequester() public {
        uint256 batchId = _post();
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchNotRequester.selector, batchId, stranger, requester)
        );
        vm.prank(stranger);
        market.cancel(batchId);
    }

    function test_cancel_revertsAfterCommit() public {
        uint256 batchId = _post();
        _commit(batchId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchHasCommits.selector, batchId, 1));
        vm.prank(requester);
        market.cancel(batchId);
    }

    function test_cancel_revertsWhenRefunded() public {
        uint256 batchId = _post();
        vm.prank(requester);
        market.cancel(batchId);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchWrongPhase.selector,
                batchId,
                ITaskMarket.Phase.Committing,
                ITaskMarket.Phase.Refunded
            )
        );
        vm.prank(requester);
        market.cancel(batchId);
    }

    function test_anyCall_revertsForUnknownBatch() public {
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchNotFound.selector, 7));
        market.cancel(7);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchNotFound.selector, 7));
        vm.prank(nodes[0]);
        market.commitResult(7, bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchNotFound.selector, 7));
        market.drawCommittee(7);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchNotFound.selector, 7));
        market.settle(7, new bytes[](0));
        (ITaskMarket.Phase phase, uint256 deadline) = market.phaseOf(7);
        vm.assertEq(uint256(phase), 0);
        vm.assertEq(deadline, 0);
    }

    // ----------------------------------------------------------------- commitResult

    function test_commitResult_takesSeatsAndLocksThem() public {
        uint256 batchId = _post();
        vm.assertEq(_commit(batchId, 0), 0);
        vm.assertEq(_commit(batchId, 1), 1);
        vm.assertEq(uint256(registry.participant(nodes[0]).openSeats), 1);
        (address n, bool revealed) = market.nodeSeat(batchId, 1);
        vm.assertEq(n, nodes[1]);
        vm.assertFalse(revealed);
        vm.assertEq(uint256(_phase(batchId)), uint256(ITaskMarket.Phase.Committing));
        uint256 t = block.timestamp;
        _commit(batchId, 2); // the k-th commit opens reveals at once
        ITaskMarket.BatchView memory b = market.batch(batchId);
        vm.assertEq(uint256(b.phase), uint256(ITaskMarket.Phase.Revealing));
        vm.assertEq(b.deadline, t + PHASE);
        vm.assertEq(b.commitCount, 3);
    }

    function test_commitResult_revertsWhenSeatsFull() public {
        uint256 batchId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(batchId, i);
        }
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchSeatsFull.selector, batchId, 3));
        vm.prank(nodes[3]);
        market.commitResult(batchId, bytes32(uint256(1)));
    }

    function test_commitResult_revertsForDuplicateNode() public {
        uint256 batchId = _post();
        _commit(batchId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchAlreadyCommitted.selector, batchId, nodes[0]));
        vm.prank(nodes[0]);
        market.commitResult(batchId, bytes32(uint256(2)));
    }

    function test_commitResult_revertsForZeroCommitment() public {
        uint256 batchId = _post();
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchZeroCommitment.selector, batchId));
        vm.prank(nodes[0]);
        market.commitResult(batchId, bytes32(uint256(0xabc) << 224)); // low 224 bits zero
    }

    function test_commitResult_revertsForIneligibleCallers() public {
        uint256 batchId = _post();
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryNotRegistered.selector, stranger));
        vm.prank(stranger);
        market.commitResult(batchId, bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryNotANode.selector, validators[0]));
        vm.prank(validators[0]);
        market.commitResult(batchId, bytes32(uint256(1)));
        bytes32[] memory other = new bytes32[](1);
        other[0] = OTHER_MODEL;
        vm.prank(nodes[0]);
        registry.setModels(other);
        vm.expectRevert(
            abi.encodeWithSelector(IStakeRegistry.RegistryModelNotServed.selector, nodes[0], MODEL)
        );
        vm.prank(nodes[0]);
        market.commitResult(batchId, bytes32(uint256(1)));
    }

    function test_commitResult_boundaryAtDeadline() public {
        uint256 batchId = _post();
        uint256 d = _deadline(batchId);
        vm.warp(d - 1);
        _commit(batchId, 0);
        vm.warp(d);
        _commit(batchId, 1); // the deadline itself is still open
        vm.assertEq(uint256(_phase(batchId)), uint256(ITaskMarket.Phase.Committing));
        vm.warp(d + 1);
        // Commits closed with 2 of 3 seats: Revealing, until commitDeadline + revealDuration.
        (ITaskMarket.Phase phase, uint256 deadline) = market.phaseOf(batchId);
        vm.assertEq(uint256(phase), uint256(ITaskMarket.Phase.Revealing));
        vm.assertEq(deadline, d + PHASE);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchWrongPhase.selector,
                batchId,
                ITaskMarket.Phase.Committing,
                ITaskMarket.Phase.Revealing
            )
        );
        vm.prank(nodes[2]);
        market.commitResult(batchId, bytes32(uint256(1)));
    }

    function test_commitResult_revertsAfterDeadlineWithoutCommits() public {
        uint256 batchId = _post();
        uint256 d = _deadline(batchId);
        vm.warp(d + 1);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchDeadlinePassed.selector, batchId, d, d + 1));
        vm.prank(nodes[0]);
        market.commitResult(batchId, bytes32(uint256(1)));
    }

    // ----------------------------------------------------------------- revealResult

    function test_revealResult_emitsDigestsAndArmsSeedOnLastReveal() public {
        uint256 batchId = _postBatch(4);
        for (uint256 i; i < 3; ++i) {
            _commit(batchId, i);
        }
        _reveal(batchId, 0);
        (, bool revealed) = market.nodeSeat(batchId, 0);
        vm.assertTrue(revealed);
        _reveal(batchId, 1);
        vm.assertEq(uint256(_phase(batchId)), uint256(ITaskMarket.Phase.Revealing));
        vm.recordLogs();
        _reveal(batchId, 2);
        Vm_Log[] memory logs = _logs();
        bool sawDigests = false;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == keccak256("ResultRevealed(uint256,address,uint256,bytes32[],bytes32)")) {
                (uint256 seat, bytes32[] memory digests,) =
                    abi.decode(logs[i].data, (uint256, bytes32[], bytes32));
                vm.assertEq(seat, 2);
                vm.assertEq(digests.length, 4);
                vm.assertEq(digests[3], _digests(2, 4)[3]);
                sawDigests = true;
            }
        }
        vm.assertTrue(sawDigests, "digests in the event");
        ITaskMarket.BatchView memory b = market.batch(batchId);
        vm.assertEq(uint256(b.phase), uint256(ITaskMarket.Phase.Drawing));
        vm.assertEq(b.seedBlock, block.number + 2);
        vm.assertEq(b.deadline, block.timestamp + PHASE);
        vm.assertEq(b.revealedMask, 7);
    }

    /// @notice Reveals may come in any order; each marks its own seat (not its position in the reveal order).
    function test_revealResult_outOfOrderMarksItsOwnSeat() public {
        uint256 batchId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(batchId, i);
        }
        _reveal(batchId, 2);
        ITaskMarket.BatchView memory b = market.batch(batchId);
        vm.assertEq(b.revealedMask, 4, "seat 2's bit");
        vm.assertEq(b.revealCount, 1);
        (, bool revealed0) = market.nodeSeat(batchId, 0);
        (, bool revealed2) = market.nodeSeat(batchId, 2);
        vm.assertFalse(revealed0);
        vm.assertTrue(revealed2);
        bytes32[] memory digests = _digests(2, 1);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchAlreadyRevealed.selector, batchId, 2));
        vm.prank(nodes[2]);
        market.revealResult(batchId, 2, digests, _salt(2));
        _reveal(batchId, 0);
        vm.assertEq(market.batch(batchId).revealedMask, 5);
    }

    function test_revealResult_revertsForUntakenSeat() public {
        uint256 batchId = _post();
        _commit(batchId, 0);
        vm.warp(_deadline(batchId) + 1);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchNotNodeSeat.selector, batchId, 1, nodes[1]));
        vm.prank(nodes[1]);
        market.revealResult(batchId, 1, _digests(1, 1), _salt(1));
    }

    function test_revealResult_revertsWhenAlreadyRevealed() public {
        uint256 batchId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(batchId, i);
        }
        _reveal(batchId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchAlreadyRevealed.selector, batchId, 0));
        vm.prank(nodes[0]);
        market.revealResult(batchId, 0, _digests(0, 1), _salt(0));
    }

    function test_revealResult_revertsForWrongDigestCount() public {
        uint256 batchId = _postBatch(3);
        for (uint256 i; i < 3; ++i) {
            _commit(batchId, i);
        }
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchDigestCountMismatch.selector, batchId, 3, 2));
        vm.prank(nodes[0]);
        market.revealResult(batchId, 0, _digests(0, 2), _salt(0));
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchDigestCountMismatch.selector, batchId, 3, 4));
        vm.prank(nodes[0]);
        market.revealResult(batchId, 0, _digests(0, 4), _salt(0));
    }

    function test_revealResult_revertsForWrongSaltOrDigestOrSender() public {
        uint256 batchId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(batchId, i);
        }
        bytes32 stored = bytes32(
            uint256(market.resultCommitment(batchId, nodes[0], _digests(0, 1), _salt(0))) & ((1 << 224) - 1)
        );
        bytes32 wrongSalt = market.resultCommitment(batchId, nodes[0], _digests(0, 1), _salt(9));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchCommitmentMismatch.selector, batchId, stored, wrongSalt)
        );
        vm.prank(nodes[0]);
        market.revealResult(batchId, 0, _digests(0, 1), _salt(9));
        // Node 1 copying node 0's reveal into node 0's seat: the commitment binds node 0.
        bytes32 copied = market.resultCommitment(batchId, nodes[1], _digests(0, 1), _salt(0));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchCommitmentMismatch.selector, batchId, stored, copied)
        );
        vm.prank(nodes[1]);
        market.revealResult(batchId, 0, _digests(0, 1), _salt(0));
        bytes32 otherDigest = market.resultCommitment(batchId, nodes[0], _digests(5, 1), _salt(0));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchCommitmentMismatch.selector, batchId, stored, otherDigest)
        );
        vm.prank(nodes[0]);
        market.revealResult(batchId, 0, _digests(5, 1), _salt(0));
    }

    function test_revealResult_revertsWhileCommitting() public {
        uint256 batchId = _post();
        _commit(batchId, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchWrongPhase.selector,
                batchId,
                ITaskMarket.Phase.Revealing,
                ITaskMarket.Phase.Committing
            )
        );
        vm.prank(nodes[0]);
        market.revealResult(batchId, 0, _digests(0, 1), _salt(0));
    }

    function test_revealResult_lazyRevealingAfterCommitDeadline() public {
        uint256 batchId = _post();
        _commit(batchId, 0);
        _commit(batchId, 1);
        uint256 d = _deadline(batchId);
        vm.warp(d + 1);
        vm.expectEmit();
        emit ITaskMarket.BatchPhaseChanged(batchId, ITaskMarket.Phase.Revealing, d + PHASE);
        _reveal(batchId, 0);
        vm.assertEq(uint256(market.batch(batchId).phase), uint256(ITaskMarket.Phase.Revealing));
        _reveal(batchId, 1); // all taken seats revealed: reveals close early
        vm.assertEq(uint256(market.batch(batchId).phase), uint256(ITaskMarket.Phase.Drawing));
    }

    function test_revealResult_boundaryAtDeadline() public {
        uint256 batchId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(batchId, i);
        }
        uint256 d = _deadline(batchId);
        vm.warp(d - 1);
        _reveal(batchId, 0);
        vm.warp(d);
        _reveal(batchId, 1);
        vm.warp(d + 1);
        // One seat unrevealed, reveals closed with 2 reveals: Drawing (not armed) until d + scoreCommitDuration.
        (ITaskMarket.Phase phase, uint256 deadline) = market.phaseOf(batchId);
        vm.assertEq(uint256(phase), uint256(ITaskMarket.Phase.Drawing));
        vm.assertEq(deadline, d + PHASE);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchWrongPhase.selector,
                batchId,
                ITaskMarket.Phase.Revealing,
                ITaskMarket.Phase.Drawing
            )
        );
        vm.prank(nodes[2]);
        market.revealResult(batchId, 2, _digests(2, 1), _salt(2));
    }

    function test_revealResult_revertsAfterDeadlineWithoutReveals() public {
        uint256 batchId = _post();
        _commit(batchId, 0);
        uint256 d = _deadline(batchId) + PHASE; // lazily: commit deadline + reveal duration
        vm.warp(d + 1);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchDeadlinePassed.selector, batchId, d, d + 1));
        vm.prank(nodes[0]);
        market.revealResult(batchId, 0, _digests(0, 1), _salt(0));
    }

    // ----------------------------------------------------------------- drawCommittee

    function test_drawCommittee_drawsAfterSeedBlockAndLocksSeats() public {
        uint256 batchId = _post();
        _toDrawing(batchId);
        uint256 seedBlock = market.batch(batchId).seedBlock;
        vm.roll(seedBlock);
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchSeedNotReady.selector, batchId, seedBlock, seedBlock)
        );
        market.drawCommittee(batchId);
        vm.roll(seedBlock + 1);
        vm.setBlockhash(seedBlock, keccak256("mined"));
        vm.assertTrue(market.drawCommittee(batchId));
        ITaskMarket.BatchView memory b = market.batch(batchId);
        vm.assertEq(uint256(b.phase), uint256(ITaskMarket.Phase.ScoreCommitting));
        vm.assertEq(b.committeeSize, 3);
        vm.assertEq(b.deadline, block.timestamp + PHASE);
        uint256 weights = 0;
        for (uint256 s; s < 3; ++s) {
            (address v, uint96 w, bool committed, bool revealed,) = market.committeeSeat(batchId, s);
            vm.assertEq(uint256(w), _stake(v), "raw stake weight");
            vm.assertFalse(committed || revealed);
            vm.assertEq(uint256(registry.participant(v).openSeats), 1);
            weights += w;
        }
        vm.assertEq(weights, 600e18);
        (address none,,,,) = market.committeeSeat(batchId, 3);
        vm.assertEq(none, address(0));
    }

    /// @notice The first score commit draws the committee itself when the batch is still in Drawing with a usable
    /// seed: the same committee `committeePreview` named and `drawCommittee` would have drawn (same seed).
    function test_commitScores_drawsThePreviewedCommittee() public {
        uint256 batchId = _post();
        _toDrawing(batchId);
        uint256 seedBlock = market.batch(batchId).seedBlock;
        vm.roll(seedBlock); // the seed block is not mined yet: no preview, no draw
        (address[] memory none,) = market.committeePreview(batchId);
        vm.assertEq(none.length, 0, "no preview before the seed block");
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchWrongPhase.selector,
                batchId,
                ITaskMarket.Phase.ScoreCommitting,
                ITaskMarket.Phase.Drawing
            )
        );
        vm.prank(validators[0]);
        market.commitScores(batchId, 0, bytes32(uint256(1)));
        vm.roll(seedBlock + 1);
        vm.setBlockhash(seedBlock, keccak256("mined"));
        (address[] memory preview, uint96[] memory weights) = market.committeePreview(batchId);
        vm.assertEq(preview.length, 3);
        // What drawCommittee would draw, from a snapshot.
        uint256 snap = vm.snapshotState();
        vm.assertTrue(market.drawCommittee(batchId));
        address[] memory drawn = _committee(batchId);
        vm.revertToState(snap);
        bytes32 c = market.scoreCommitment(batchId, preview[1], _vec3(80, 80, 80), _salt(101));
        vm.prank(preview[1]);
        market.commitScores(batchId, 1, c);
        ITaskMarket.BatchView memory b = market.batch(batchId);
        vm.assertEq(uint256(b.phase), uint256(ITaskMarket.Phase.ScoreCommitting));
        vm.assertEq(b.committeeSize, 3);
        vm.assertEq(b.scoreCommitMask, 2, "seat 1 committed in the same call");
        vm.assertEq(b.deadline, block.timestamp + PHASE);
        for (uint256 s; s < 3; ++s) {
            (address v, uint96 w,,,) = market.committeeSeat(batchId, s);
            vm.assertEq(v, preview[s], "seat as previewed");
            vm.assertEq(v, drawn[s], "seat as drawCommittee draws");
            vm.assertEq(uint256(w), uint256(weights[s]));
            vm.assertEq(uint256(registry.participant(v).openSeats), 1, "seat locked");
        }
        (,,,, bytes32 seal) = market.committeeSeat(batchId, 1);
        vm.assertEq(seal, c);
    }

    /// @notice A commit that would draw but is not from the previewed seat's validator reverts, draw included;
    /// past the 256-block window (or the draw deadline) a commit does not draw.
    function test_commitScores_drawRevertsForWrongSeatAndStaleSeed() public {
        uint256 batchId = _post();
        _toDrawing(batchId);
        uint256 seedBlock = market.batch(batchId).seedBlock;
        vm.roll(seedBlock + 1);
        (address[] memory preview,) = market.committeePreview(batchId);
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchNotCommitteeSeat.selector, batchId, 0, preview[1])
        );
        vm.prank(preview[1]);
        market.commitScores(batchId, 0, bytes32(uint256(1)));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchNotCommitteeSeat.selector, batchId, 0, stranger)
        );
        vm.prank(stranger);
        market.commitScores(batchId, 0, bytes32(uint256(1)));
        vm.assertEq(market.batch(batchId).committeeSize, 0, "nothing drawn");
        vm.assertEq(uint256(registry.participant(preview[0]).openSeats), 0, "nothing locked");
        vm.roll(seedBlock + 257); // blockhash(seedBlock) is gone
        (address[] memory stale,) = market.committeePreview(batchId);
        vm.assertEq(stale.length, 0, "no preview out of the window");
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchWrongPhase.selector,
                batchId,
                ITaskMarket.Phase.ScoreCommitting,
                ITaskMarket.Phase.Drawing
            )
        );
        vm.prank(preview[0]);
        market.commitScores(batchId, 0, bytes32(uint256(1)));
    }

    /// @notice Seat pages are recycled: a batch posted after another ended reuses its page, and the old words
    /// never show through (seats, duplicate checks and seals follow the new batch's counters and masks); the
    /// ended batch's seat views return the zero address.
    function test_seatPage_reusedWithoutStaleWords() public {
        uint256 first = _settled(80, 80, 80); // nodes 0, 1, 2 at seats 0, 1, 2; three seals
        (address gone, bool wasRevealed) = market.nodeSeat(first, 0);
        vm.assertEq(gone, address(0), "ended batch: seat word recycled");
        vm.assertTrue(wasRevealed, "flags stay");
        (address v,,, bool revealed, bytes32 oldSeal) = market.committeeSeat(first, 0);
        vm.assertEq(v, address(0));
        vm.assertTrue(revealed);
        vm.assertEq(oldSeal, bytes32(0));

        uint256 next = _post(); // takes the freed page
        vm.assertEq(_commit(next, 3), 0);
        vm.assertEq(_commit(next, 0), 1, "node 0 held seat 0 of the old batch: no false duplicate");
        (address n2,) = market.nodeSeat(next, 2);
        vm.assertEq(n2, address(0), "an untaken seat shows nothing of the old batch");
        vm.assertEq(_commit(next, 1), 2);
        (address n0,) = market.nodeSeat(next, 0);
        (address n1,) = market.nodeSeat(next, 1);
        vm.assertEq(n0, nodes[3]);
        vm.assertEq(n1, nodes[0]);
        for (uint256 s; s < 3; ++s) {
            _reveal(next, s);
        }
        _draw(next);
        for (uint256 s; s < 3; ++s) {
            (,, bool committed,, bytes32 seal) = market.committeeSeat(next, s);
            vm.assertFalse(committed);
            vm.assertEq(seal, bytes32(0), "no old seal shows through");
        }
        _score(next, _same3(_vec3(90, 90, 90)));
        _settle(next);
        vm.assertEq(uint256(_phase(next)), uint256(ITaskMarket.Phase.Settled));
    }

    /// @notice The input hash lives in the batch's seat page: stored while the batch is open, zero in the view
    /// once it ended (and unchanged after), and the next batch on the recycled page shows its own hash, not the
    /// old one nor the free-list link.
    function test_inputHash_storedWhileOpen_zeroOnceEnded_pageReused() public {
        bytes[] memory rowsA = _rows(2);
        uint256 a = _postBatch(2);
        bytes32 expectedA = keccak256(abi.encode(keccak256(WORKFLOW), market.rowsHash(rowsA)));
        vm.assertEq(market.batch(a).inputHash, expectedA, "open batch: stored");
        vm.prank(requester);
        market.cancel(a);
        vm.assertEq(market.batch(a).inputHash, bytes32(0), "ended: the page serves another batch");

        ITaskMarket.JobParams memory p = _params();
        p.batchSize = 3;
        bytes[] memory rowsB = new bytes[](3);
        for (uint256 r; r < 3; ++r) {
            rowsB[r] = abi.encodePacked("other row ", r);
        }
        vm.prank(requester);
        (, uint256 b) = market.postJob(p, WORKFLOW, rowsB);
        bytes32 expectedB = keccak256(abi.encode(keccak256(WORKFLOW), market.rowsHash(rowsB)));
        vm.assertTrue(expectedB != expectedA);
        vm.assertEq(market.batch(b).inputHash, expectedB, "recycled page: the new batch's hash");
        vm.assertEq(market.batch(a).inputHash, bytes32(0), "the ended batch's view does not change");
        uint256 c = _postBatch(1); // a fresh page (b holds the only free one): its hash as well
        vm.assertEq(
            market.batch(c).inputHash, keccak256(abi.encode(keccak256(WORKFLOW), market.rowsHash(_rows(1))))
        );
    }

    function test_drawCommittee_armsWhenRevealsClosedByDeadline() public {
        uint256 batchId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(batchId, i);
        }
        _reveal(batchId, 0);
        vm.warp(_deadline(batchId) + 1);
        vm.assertFalse(market.drawCommittee(batchId), "only armed");
        uint256 seedBlock = market.batch(batchId).seedBlock;
        vm.assertEq(seedBlock, block.number + 2);
        vm.assertEq(uint256(market.batch(batchId).phase), uint256(ITaskMarket.Phase.Drawing));
        vm.roll(seedBlock + 1);
        vm.assertTrue(market.drawCommittee(batchId));
    }

    function test_drawCommittee_rearmsAfterBlockhashWindow() public {
        uint256 batchId = _post();
        _toDrawing(batchId);
        uint256 seedBlock = market.batch(batchId).seedBlock;
        vm.roll(seedBlock + 257); // blockhash(seedBlock) is gone
        vm.assertFalse(market.drawCommittee(batchId), "re-armed");
        vm.assertEq(market.batch(batchId).seedBlock, seedBlock + 259);
        vm.assertEq(market.batch(batchId).committeeSize, 0);
    }

    function test_drawCommittee_drawsAtLastBlockOfWindow() public {
        uint256 batchId = _post();
        _toDrawing(batchId);
        uint256 seedBlock = market.batch(batchId).seedBlock;
        vm.roll(seedBlock + 256);
        vm.setBlockhash(seedBlock, keccak256("still visible"));
        vm.assertTrue(market.drawCommittee(batchId));
    }

    function test_drawCommittee_revertsInWrongPhase() public {
        uint256 batchId = _post();
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchWrongPhase.selector,
                batchId,
                ITaskMarket.Phase.Drawing,
                ITaskMarket.Phase.Committing
            )
        );
        market.drawCommittee(batchId);
    }

    function test_drawCommittee_boundaryAtDeadline() public {
        uint256 batchId = _post();
        _toDrawing(batchId);
        uint256 d = _deadline(batchId);
        uint256 snap = vm.snapshotState();
        vm.warp(d - 1);
        vm.roll(block.number + 3);
        vm.assertTrue(market.drawCommittee(batchId));
        vm.revertToState(snap);
        vm.warp(d);
        vm.roll(block.number + 3);
        vm.assertTrue(market.drawCommittee(batchId));
        vm.revertToState(snap);
        vm.warp(d + 1);
        vm.roll(block.number + 3);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchDeadlinePassed.selector, batchId, d, d + 1));
        market.drawCommittee(batchId);
    }

    function test_drawCommittee_refundsWithoutActiveValidator() public {
        uint256 batchId = _post();
        _toDrawing(batchId);
        for (uint256 i; i < 3; ++i) {
            vm.prank(validators[i]);
            registry.beginUnbonding();
        }
        vm.roll(block.number + 3);
        vm.assertTrue(market.drawCommittee(batchId));
        vm.assertEq(uint256(_phase(batchId)), uint256(ITaskMarket.Phase.Refunded));
        vm.assertEq(market.balanceOf(requester), BOUNTY);
        vm.assertEq(uint256(registry.participant(nodes[0]).openSeats), 0, "node seats released");
        vm.assertEq(_stake(nodes[0]), MIN_STAKE, "revealed nodes not slashed");
    }

    // ----------------------------------------------------------------- commitScores

    function test_commitScores_lastCommitOpensReveals() public {
        uint256 batchId = _toScoring();
        bytes memory v = _vec3(80, 80, 80);
        _commitScores(batchId, 0, v);
        (,, bool committed,, bytes32 seal) = market.committeeSeat(batchId, 0);
        vm.assertTrue(committed);
        (address v0,,,,) = market.committeeSeat(batchId, 0);
        vm.assertEq(seal, market.scoreCommitment(batchId, v0, v, _salt(100)));
        _commitScores(batchId, 1, v);
        vm.assertEq(uint256(_phase(batchId)), uint256(ITaskMarket.Phase.ScoreCommitting));
        _commitScores(batchId, 2, v);
        ITaskMarket.BatchView memory b = market.batch(batchId);
        vm.assertEq(uint256(b.phase), uint256(ITaskMarket.Phase.ScoreRevealing));
        vm.assertEq(b.deadline, block.timestamp + PHASE);
        vm.assertEq(b.scoreCommitMask, 7);
    }

    function test_commitScores_revertsForWrongSeatOrCaller() public {
        uint256 batchId = _toScoring();
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchNotCommitteeSeat.selector, batchId, 0, stranger)
        );
        vm.prank(stranger);
        market.commitScores(batchId, 0, bytes32(uint256(1)));
        (address v1,,,,) = market.committeeSeat(batchId, 1);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchNotCommitteeSeat.selector, batchId, 0, v1));
        vm.prank(v1);
        market.commitScores(batchId, 0, bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchNotCommitteeSeat.selector, batchId, 3, v1));
        vm.prank(v1);
        market.commitScores(batchId, 3, bytes32(uint256(1)));
    }

    function test_commitScores_revertsForZeroOrDuplicate() public {
        uint256 batchId = _toScoring();
        (address v0,,,,) = market.committeeSeat(batchId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchZeroCommitment.selector, batchId));
        vm.prank(v0);
        market.commitScores(batchId, 0, bytes32(0));
        _commitScores(batchId, 0, _vec3(1, 2, 3));
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchScoresAlreadyCommitted.selector, batchId, 0));
        vm.prank(v0);
        market.commitScores(batchId, 0, bytes32(uint256(5)));
    }

    function test_commitScores_boundaryAtDeadline() public {
        uint256 batchId = _toScoring();
        uint256 d = _deadline(batchId);
        vm.warp(d - 1);
        _commitScores(batchId, 0, _vec3(1, 2, 3));
        vm.warp(d);
        _commitScores(batchId, 1, _vec3(1, 2, 3));
        vm.warp(d + 1);
        (ITaskMarket.Phase phase, uint256 deadline) = market.phaseOf(batchId);
        vm.assertEq(uint256(phase), uint256(ITaskMarket.Phase.ScoreRevealing));
        vm.assertEq(deadline, d + PHASE);
        (address v2,,,,) = market.committeeSeat(batchId, 2);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchWrongPhase.selector,
                batchId,
                ITaskMarket.Phase.ScoreCommitting,
                ITaskMarket.Phase.ScoreRevealing
            )
        );
        vm.prank(v2);
        market.commitScores(batchId, 2, bytes32(uint256(1)));
    }

    // ----------------------------------------------------------------- revealScores

    function test_revealScores_storesHashOfVector() public {
        uint256 batchId = _toScoring();
        _score(batchId, _same3(_vec3(80, 90, 70)));
        (,, bool committed, bool revealed, bytes32 seal) = market.committeeSeat(batchId, 1);
        vm.assertTrue(committed && revealed);
        vm.assertEq(seal, keccak256(_vec3(80, 90, 70)));
        vm.assertEq(market.batch(batchId).scoreRevealMask, 7);
    }

    function test_revealScores_revertsForBadSeatStates() public {
        uint256 batchId = _toScoring();
        _commitScores(batchId, 0, _vec3(1, 2, 3));
        _commitScores(batchId, 1, _vec3(1, 2, 3));
        vm.warp(_deadline(batchId) + 1); // seat 2 never committed
        (address v2,,,,) = market.committeeSeat(batchId, 2);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchScoresNotCommitted.selector, batchId, 2));
        vm.prank(v2);
        market.revealScores(batchId, 2, _vec3(1, 2, 3), _salt(102));
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchNotCommitteeSeat.selector, batchId, 3, v2));
        vm.prank(v2);
        market.revealScores(batchId, 3, _vec3(1, 2, 3), _salt(102));
        _revealScores(batchId, 0, _vec3(1, 2, 3));
        (address v0,,,,) = market.committeeSeat(batchId, 0);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchScoresAlreadyRevealed.selector, batchId, 0));
        vm.prank(v0);
        market.revealScores(batchId, 0, _vec3(1, 2, 3), _salt(100));
    }

    function test_revealScores_revertsForWrongLengthOrRange() public {
        uint256 batchId = _toScoring();
        _score3Commits(batchId);
        (address v0,,,,) = market.committeeSeat(batchId, 0);
        bytes memory short = new bytes(2);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchScoreCountMismatch.selector, batchId, 3, 2));
        vm.prank(v0);
        market.revealScores(batchId, 0, short, _salt(100));
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchScoreCountMismatch.selector, batchId, 3, 4));
        vm.prank(v0);
        market.revealScores(batchId, 0, new bytes(4), _salt(100));
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchScoreOutOfRange.selector, batchId, 1, 101));
        vm.prank(v0);
        market.revealScores(batchId, 0, _vec3(100, 101, 0), _salt(100));
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchScoreOutOfRange.selector, batchId, 2, 255));
        vm.prank(v0);
        market.revealScores(batchId, 0, _vec3(0, 0, 255), _salt(100));
    }

    function _score3Commits(uint256 batchId) internal {
        for (uint256 s; s < 3; ++s) {
            _commitScores(batchId, s, _vec3(100, 0, 50));
        }
    }

    function test_revealScores_revertsForWrongVectorSaltOrSender() public {
        uint256 batchId = _toScoring();
        _score3Commits(batchId);
        (address v0,,,,) = market.committeeSeat(batchId, 0);
        (address v1,,,,) = market.committeeSeat(batchId, 1);
        bytes32 stored = market.scoreCommitment(batchId, v0, _vec3(100, 0, 50), _salt(100));
        bytes32 other = market.scoreCommitment(batchId, v0, _vec3(100, 0, 51), _salt(100));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchCommitmentMismatch.selector, batchId, stored, other)
        );
        vm.prank(v0);
        market.revealScores(batchId, 0, _vec3(100, 0, 51), _salt(100));
        bytes32 salted = market.scoreCommitment(batchId, v0, _vec3(100, 0, 50), _salt(1));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchCommitmentMismatch.selector, batchId, stored, salted)
        );
        vm.prank(v0);
        market.revealScores(batchId, 0, _vec3(100, 0, 50), _salt(1));
        bytes32 foreign = market.scoreCommitment(batchId, v1, _vec3(100, 0, 50), _salt(100));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchCommitmentMismatch.selector, batchId, stored, foreign)
        );
        vm.prank(v1);
        market.revealScores(batchId, 0, _vec3(100, 0, 50), _salt(100));
    }

    function test_revealScores_boundaryAtDeadline() public {
        uint256 batchId = _toScoring();
        _score3Commits(batchId);
        uint256 d = _deadline(batchId);
        vm.warp(d - 1);
        _revealScores(batchId, 0, _vec3(100, 0, 50));
        vm.warp(d);
        _revealScores(batchId, 1, _vec3(100, 0, 50));
        vm.warp(d + 1);
        (address v2,,,,) = market.committeeSeat(batchId, 2);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchDeadlinePassed.selector, batchId, d, d + 1));
        vm.prank(v2);
        market.revealScores(batchId, 2, _vec3(100, 0, 50), _salt(102));
    }

    function test_revealScores_revertsWhileCommitting() public {
        uint256 batchId = _toScoring();
        _commitScores(batchId, 0, _vec3(1, 2, 3));
        (address v0,,,,) = market.committeeSeat(batchId, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchWrongPhase.selector,
                batchId,
                ITaskMarket.Phase.ScoreRevealing,
                ITaskMarket.Phase.ScoreCommitting
            )
        );
        vm.prank(v0);
        market.revealScores(batchId, 0, _vec3(1, 2, 3), _salt(100));
    }

    // ----------------------------------------------------------------- settle: scored

    function test_settle_paysAcceptedResultsAndAgreeingValidators() public {
        uint256 batchId = _settled(80, 90, 70);
        ITaskMarket.BatchView memory b = market.batch(batchId);
        vm.assertEq(uint256(b.phase), uint256(ITaskMarket.Phase.Settled));
        // 3e18 per row: 0.6e18 to the committee (0.2e18 each), 2.4e18 to the 3 accepted results (0.8e18 each).
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(market.balanceOf(nodes[i]), 0.8e18, "node paid");
            vm.assertEq(market.balanceOf(validators[i]), 0.2e18, "validator paid");
            vm.assertEq(uint256(registry.participant(nodes[i]).openSeats), 0, "node released");
            vm.assertEq(uint256(registry.participant(validators[i]).openSeats), 0, "validator released");
        }
        vm.assertEq(market.balanceOf(requester), 0);
        bytes[] memory vs1 = _vectors(batchId);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchNotSettleable.selector, batchId, ITaskMarket.Phase.Settled, 0
            )
        );
        market.settle(batchId, vs1);
    }

    function test_settle_weightedMedianFollowsRawStake() public {
        // Validator 2 tops up to 400: weights 100, 200, 400 (total 700).
        vm.prank(validators[2]);
        registry.addStake(100e18);
        uint256 batchId = _toScoring();
        // Every validator gives one score to all three results: 10 (w100), 20 (w200), 90 (w400).
        _scoreBy(batchId, [_vec3(10, 10, 10), _vec3(20, 20, 20), _vec3(90, 90, 90)]);
        vm.recordLogs();
        _settle(batchId);
        bytes memory medians = _settledMedians();
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(uint256(uint8(medians[i])), 90, "weighted median, not the middle value 20");
        }
        // Tolerance 20: only validator 2 (distance 0) agrees; the whole validator pool is its own.
        vm.assertEq(market.balanceOf(validators[2]), 0.6e18);
        vm.assertEq(market.balanceOf(validators[1]), 0);
        vm.assertEq(market.balanceOf(validators[0]), 0);
    }

    function _settledMedians() internal returns (bytes memory medians) {
        Vm_Log[] memory logs = _logs();
        bytes32 topic =
            keccak256("BatchSettled(uint256,address,uint256,bool,bytes,uint256[],uint256,uint256,uint256)");
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == topic) {
                (,, medians,,,,) =
                    abi.decode(logs[i].data, (uint256, bool, bytes, uint256[], uint256, uint256, uint256));
                return medians;
            }
        }
        revert("no BatchSettled");
    }

    function test_settle_medianAtExactHalfTakesLowerScore() public {
        // Weights 100, 200, 300: 10 (w100) + 20 (w200) is exactly half of 600, so the median is 20, not 90.
        uint256 batchId = _toScoring();
        _scoreBy(batchId, [_vec3(10, 10, 10), _vec3(20, 20, 20), _vec3(90, 90, 90)]);
        vm.recordLogs();
        _settle(batchId);
        vm.assertEq(uint256(uint8(_settledMedians()[0])), 20);
    }

    function test_settle_thresholdIsInclusive() public {
        // threshold 50: medians 50 (accepted), 49 (rejected), 100 (accepted).
        uint256 batchId = _settled(50, 49, 100);
        vm.assertEq(market.balanceOf(nodes[0]), 1.2e18, "half of the node pool");
        vm.assertEq(market.balanceOf(nodes[1]), 0, "below threshold");
        vm.assertEq(market.balanceOf(nodes[2]), 1.2e18);
        vm.assertEq(market.balanceOf(requester), 0);
        vm.assertEq(uint256(market.batch(batchId).phase), uint256(ITaskMarket.Phase.Settled));
    }

    function test_settle_toleranceIsInclusive() public {
        // Medians 50 (weights 100, 200, 300: seat of validator 1 decides). Tolerance 20: 30 agrees, 29 does not.
        uint256 batchId = _toScoring();
        _scoreBy(batchId, [_vec3(30, 30, 30), _vec3(50, 50, 50), _vec3(70, 70, 70)]);
        _settle(batchId);
        vm.assertEq(market.balanceOf(validators[0]), 0.2e18, "distance 20 agrees");
        uint256 batch2 = _toScoring();
        _scoreBy(batch2, [_vec3(29, 29, 29), _vec3(50, 50, 50), _vec3(70, 70, 70)]);
        _settle(batch2);
        vm.assertEq(market.balanceOf(validators[0]), 0.2e18, "distance 21 is not paid");
        vm.assertEq(market.balanceOf(validators[1]), 0.2e18 + 0.3e18);
    }

    function test_settle_refundsRejectedRowsAndDust() public {
        ITaskMarket.JobParams memory p = _params();
        p.batchSize = 2;
        p.bountyPerTask = 1e18 + 1; // pools that do not divide evenly
        uint256 batchId = _postRows(p, 2);
        _toScoring(batchId);
        // cells: seat s row r at s * 2 + r. Row 0 accepted for all seats, row 1 rejected for all.
        bytes memory v = new bytes(6);
        for (uint256 s; s < 3; ++s) {
            v[2 * s] = bytes1(uint8(90));
            v[2 * s + 1] = bytes1(uint8(10));
        }
        _score(batchId, _same3(v));
        _settle(batchId);
        uint256 bounty = 1e18 + 1;
        uint256 vPoolRow = bounty * 2000 / 10_000;
        uint256 nodeShare = (bounty - vPoolRow) / 3;
        uint256 vReward = vPoolRow * 2 / 3;
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(market.balanceOf(nodes[i]), nodeShare, "one accepted row each");
            vm.assertEq(market.balanceOf(validators[i]), vReward);
        }
        vm.assertEq(
            market.balanceOf(requester), 2 * bounty - 3 * nodeShare - 3 * vReward, "the rest refunded"
        );
    }

    function test_settle_slashesAndDoesNotPayNonRevealingNode() public {
        uint256 batchId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(batchId, i);
        }
        _reveal(batchId, 0);
        _reveal(batchId, 1);
        vm.warp(_deadline(batchId) + 1);
        market.drawCommittee(batchId); // arm
        vm.roll(block.number + 3);
        market.drawCommittee(batchId);
        _score(batchId, _same3(_vec3(80, 80, 0))); // seat 2's bytes are ignored
        _settle(batchId);
        vm.assertEq(market.balanceOf(nodes[0]), 1.2e18);
        vm.assertEq(market.balanceOf(nodes[1]), 1.2e18);
        vm.assertEq(market.balanceOf(nodes[2]), 0);
        vm.assertEq(_stake(nodes[2]), MIN_STAKE - SLASH, "non-revealer slashed");
        vm.assertEq(_stake(nodes[0]), MIN_STAKE);
        vm.assertEq(registry.treasuryBalance(), SLASH);
    }

    function test_settle_revertsForWrongVectors() public {
        uint256 batchId = _toScoring();
        _score(batchId, _same3(_vec3(80, 80, 80)));
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchScoreVectorCountMismatch.selector, batchId, 3, 2)
        );
        market.settle(batchId, new bytes[](2));
        bytes[] memory vectors = _vectors(batchId);
        vectors[1] = _vec3(80, 80, 81);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchScoreVectorMismatch.selector,
                batchId,
                1,
                keccak256(_vec3(80, 80, 80)),
                keccak256(_vec3(80, 80, 81))
            )
        );
        market.settle(batchId, vectors);
    }

    function test_settle_readyAtEachPhase() public {
        uint256 batchId = _post();
        uint256 d = _deadline(batchId);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchNotSettleable.selector, batchId, ITaskMarket.Phase.Committing, d + 1
            )
        );
        market.settle(batchId, new bytes[](0));
        _toDrawing(batchId);
        d = _deadline(batchId);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchNotSettleable.selector, batchId, ITaskMarket.Phase.Drawing, d + 1
            )
        );
        market.settle(batchId, new bytes[](0));
        _draw(batchId);
        d = _deadline(batchId);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchNotSettleable.selector,
                batchId,
                ITaskMarket.Phase.ScoreCommitting,
                d + PHASE + 1
            )
        );
        market.settle(batchId, new bytes[](0));
        _score3Commits(batchId);
        _revealScores(batchId, 0, _vec3(100, 0, 50));
        d = _deadline(batchId);
        bytes[] memory vs2 = _vectors(batchId);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchNotSettleable.selector, batchId, ITaskMarket.Phase.ScoreRevealing, d + 1
            )
        );
        market.settle(batchId, vs2);
    }

    function test_settle_boundaryAtScoreRevealDeadline() public {
        uint256 batchId = _toScoring();
        _score3Commits(batchId);
        _revealScores(batchId, 0, _vec3(100, 0, 50));
        _revealScores(batchId, 1, _vec3(100, 0, 50));
        uint256 d = _deadline(batchId);
        vm.warp(d);
        bytes[] memory vs3 = _vectors(batchId);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchNotSettleable.selector, batchId, ITaskMarket.Phase.ScoreRevealing, d + 1
            )
        );
        market.settle(batchId, vs3);
        vm.warp(d + 1);
        (address v2,,,,) = market.committeeSeat(batchId, 2);
        _settle(batchId); // 2 of 3 revealed: a majority
        vm.assertEq(uint256(_phase(batchId)), uint256(ITaskMarket.Phase.Settled));
        vm.assertEq(_stake(v2), _validatorStake(_validatorIndex(v2)) - SLASH, "committed, never revealed");
    }

    /// @notice A majority means more than half the seats: 1 revealed vector of a 2-seat committee is re-scored.
    function test_settle_exactlyHalfTheVotesIsNoMajority() public {
        ITaskMarket.JobParams memory p = _params();
        p.m = 2;
        uint256 batchId = _postRows(p, 1);
        _toScoring(batchId);
        vm.assertEq(market.batch(batchId).committeeSize, 2);
        _commitScores(batchId, 0, _vec3(80, 80, 80));
        _commitScores(batchId, 1, _vec3(80, 80, 80));
        _revealScores(batchId, 0, _vec3(80, 80, 80));
        vm.warp(_deadline(batchId) + 1);
        bytes[] memory vs = _vectors(batchId);
        vm.expectEmit();
        emit ITaskMarket.BatchRescoring(batchId, 0, 1, 2);
        market.settle(batchId, vs);
        vm.assertEq(uint256(market.batch(batchId).phase), uint256(ITaskMarket.Phase.Drawing));
        vm.assertEq(market.balanceOf(nodes[0]), 0, "not paid on half the votes");
    }

    // ----------------------------------------------------------------- revealScoresAndSettle

    /// @dev Seats 0 and 1 commit and reveal `v`, seat 2 commits `v`: the batch waits for seat 2's reveal.
    function _waitingForLastReveal(bytes memory v) internal returns (uint256 batchId) {
        batchId = _toScoring();
        for (uint256 s; s < 3; ++s) {
            _commitScores(batchId, s, v);
        }
        _revealScores(batchId, 0, v);
        _revealScores(batchId, 1, v);
    }

    /// @notice The last reveal settles in its own transaction: same credits, releases and event as `settle`.
    function test_revealScoresAndSettle_lastRevealSettles() public {
        bytes memory v = _vec3(80, 90, 70);
        uint256 batchId = _waitingForLastReveal(v);
        (address v2,,,,) = market.committeeSeat(batchId, 2);
        uint256[] memory paid = new uint256[](3);
        paid[0] = 0.8e18;
        paid[1] = 0.8e18;
        paid[2] = 0.8e18;
        vm.expectEmit();
        emit ITaskMarket.ScoresRevealed(batchId, v2, 2, v);
        vm.expectEmit();
        emit ITaskMarket.BatchSettled(batchId, requester, 0, true, v, paid, 7, 0.2e18, 0);
        vm.prank(v2);
        bool settled = market.revealScoresAndSettle(batchId, 2, v, _salt(102), _same3(v));
        vm.assertTrue(settled, "returns true");
        vm.assertEq(uint256(market.batch(batchId).phase), uint256(ITaskMarket.Phase.Settled));
        vm.assertEq(market.batch(batchId).scoreRevealMask, 7, "the reveal is recorded");
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(market.balanceOf(nodes[i]), 0.8e18, "node paid");
            vm.assertEq(market.balanceOf(validators[i]), 0.2e18, "validator paid");
            vm.assertEq(market.openSeatsOf(nodes[i]), 0, "node released");
            vm.assertEq(market.openSeatsOf(validators[i]), 0, "validator released");
        }
        vm.assertEq(market.balanceOf(requester), 0);
        // Settled once: a later settle is refused as for any ended batch.
        bytes[] memory vs = _same3(v);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchNotSettleable.selector, batchId, ITaskMarket.Phase.Settled, 0
            )
        );
        market.settle(batchId, vs);
    }

    /// @notice A reveal that is not the last only reveals: the vectors are ignored, nothing is credited.
    function test_revealScoresAndSettle_notLastOnlyReveals() public {
        bytes memory v = _vec3(80, 80, 80);
        uint256 batchId = _toScoring();
        for (uint256 s; s < 3; ++s) {
            _commitScores(batchId, s, v);
        }
        _revealScores(batchId, 0, v);
        (address v1,,,,) = market.committeeSeat(batchId, 1);
        vm.prank(v1);
        bool settled = market.revealScoresAndSettle(batchId, 1, v, _salt(101), new bytes[](0));
        vm.assertFalse(settled, "one committed seat has not revealed");
        revealedScores[batchId][1] = v;
        ITaskMarket.BatchView memory b = market.batch(batchId);
        vm.assertEq(uint256(b.phase), uint256(ITaskMarket.Phase.ScoreRevealing));
        vm.assertEq(b.scoreRevealMask, 3, "revealed");
        vm.assertEq(market.balanceOf(nodes[0]), 0, "nothing credited");
        vm.assertEq(market.openSeatsOf(nodes[0]), 1, "seat still held");
        // The last plain reveal, then `settle`, still settle as before.
        _revealScores(batchId, 2, v);
        _settle(batchId);
        vm.assertEq(uint256(market.batch(batchId).phase), uint256(ITaskMarket.Phase.Settled));
        vm.assertEq(market.balanceOf(nodes[0]), 0.8e18);
    }

    /// @notice With a seat that never committed, the last committed seat's reveal ends the round (as `settle`
    /// would): a majority of 2 of 3 settles and slashes the abstainer.
    function test_revealScoresAndSettle_lastCommittedSeatEndsRound() public {
        bytes memory v = _vec3(80, 80, 80);
        uint256 batchId = _toScoring();
        _commitScores(batchId, 0, v);
        _commitScores(batchId, 1, v);
        vm.warp(_deadline(batchId) + 1); // score commits closed: ScoreRevealing, seat 2 abstained
        _revealScores(batchId, 0, v);
        (address v1,,,,) = market.committeeSeat(batchId, 1);
        (address v2,,,,) = market.committeeSeat(batchId, 2);
        uint256 stakeBefore = _stake(v2);
        bytes[] memory vs = new bytes[](2);
        vs[0] = v;
        vs[1] = v;
        vm.prank(v1);
        vm.assertTrue(market.revealScoresAndSettle(batchId, 1, v, _salt(101), vs), "settled");
        vm.assertEq(uint256(market.batch(batchId).phase), uint256(ITaskMarket.Phase.Settled));
        vm.assertEq(_stake(v2), stakeBefore - SLASH, "abstainer slashed");
        vm.assertEq(market.openSeatsOf(v2), 0, "abstainer released");
        vm.assertEq(market.balanceOf(v1), 0.3e18, "the two agreeing validators share the pool");
    }

    /// @notice Wrong vectors with the last reveal revert the whole transaction: the reveal is not kept.
    function test_revealScoresAndSettle_revertsForWrongVectorsAndKeepsNothing() public {
        bytes memory v = _vec3(80, 80, 80);
        uint256 batchId = _waitingForLastReveal(v);
        (address v2,,,,) = market.committeeSeat(batchId, 2);
        bytes[] memory vs = _same3(v);
        vs[0] = _vec3(80, 80, 81);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchScoreVectorMismatch.selector,
                batchId,
                0,
                keccak256(v),
                keccak256(_vec3(80, 80, 81))
            )
        );
        vm.prank(v2);
        market.revealScoresAndSettle(batchId, 2, v, _salt(102), vs);
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchScoreVectorCountMismatch.selector, batchId, 3, 2)
        );
        vm.prank(v2);
        market.revealScoresAndSettle(batchId, 2, v, _salt(102), new bytes[](2));
        vm.assertEq(market.batch(batchId).scoreRevealMask, 3, "reveal rolled back");
        // The same reveal with the right vectors settles.
        vm.prank(v2);
        vm.assertTrue(market.revealScoresAndSettle(batchId, 2, v, _salt(102), _same3(v)));
    }

    /// @notice The reveal's own checks come first (a late reveal reverts `BatchDeadlinePassed`).
    function test_revealScoresAndSettle_boundaryAtScoreRevealDeadline() public {
        bytes memory v = _vec3(80, 80, 80);
        uint256 batchId = _waitingForLastReveal(v);
        uint256 deadline = _deadline(batchId);
        (address v2,,,,) = market.committeeSeat(batchId, 2);
        uint256 snap = vm.snapshotState();
        vm.warp(deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchDeadlinePassed.selector, batchId, deadline, deadline + 1)
        );
        vm.prank(v2);
        market.revealScoresAndSettle(batchId, 2, v, _salt(102), _same3(v));
        vm.revertToState(snap);
        vm.warp(deadline);
        vm.prank(v2);
        vm.assertTrue(market.revealScoresAndSettle(batchId, 2, v, _salt(102), _same3(v)), "at the deadline");
    }

    // ----------------------------------------------------------------- settle: refunds

    function test_settle_refundsWithoutCommits() public {
        uint256 batchId = _postBatch(2);
        uint256 d = _deadline(batchId);
        vm.warp(d);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchNotSettleable.selector, batchId, ITaskMarket.Phase.Committing, d + 1
            )
        );
        market.settle(batchId, new bytes[](0));
        vm.warp(d + 1);
        vm.expectEmit();
        emit ITaskMarket.BatchRefunded(
            batchId, requester, ITaskMarket.RefundReason.NoCommit, 2 * uint256(BOUNTY)
        );
        market.settle(batchId, new bytes[](0));
        vm.assertEq(market.balanceOf(requester), 2 * uint256(BOUNTY));
    }

    function test_settle_refundsWithoutRevealsAndSlashesCommitters() public {
        uint256 batchId = _post();
        _commit(batchId, 0);
        _commit(batchId, 1);
        uint256 d = _deadline(batchId) + PHASE;
        vm.warp(d);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITaskMarket.BatchNotSettleable.selector, batchId, ITaskMarket.Phase.Revealing, d + 1
            )
        );
        market.settle(batchId, new bytes[](0));
        vm.warp(d + 1);
        market.settle(batchId, new bytes[](0));
        vm.assertEq(uint256(_phase(batchId)), uint256(ITaskMarket.Phase.Refunded));
        vm.assertEq(market.balanceOf(requester), BOUNTY);
        vm.assertEq(_stake(nodes[0]), MIN_STAKE - SLASH);
        vm.assertEq(_stake(nodes[1]), MIN_STAKE - SLASH);
        vm.assertEq(uint256(registry.participant(nodes[0]).openSeats), 0);
    }

    function test_settle_refundsWhenNobodyDraws() public {
        uint256 batchId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(batchId, i);
        }
        _reveal(batchId, 0);
        _reveal(batchId, 1);
        uint256 d = _deadline(batchId) + PHASE; // reveal deadline + draw window
        vm.warp(d + 1);
        market.settle(batchId, new bytes[](0));
        vm.assertEq(uint256(_phase(batchId)), uint256(ITaskMarket.Phase.Refunded));
        vm.assertEq(market.balanceOf(requester), BOUNTY);
        vm.assertEq(_stake(nodes[2]), MIN_STAKE - SLASH, "non-revealer slashed");
        vm.assertEq(_stake(nodes[0]), MIN_STAKE);
    }

    // ----------------------------------------------------------------- claim and accounts

    function test_claim_paysBalanceAggregatedAcrossBatches() public {
        _settled(80, 80, 80);
        _settled(80, 80, 80);
        uint256 before = token.balanceOf(nodes[0]);
        vm.expectEmit();
        emit ITaskMarket.Claimed(nodes[0], 1.6e18);
        vm.prank(nodes[0]);
        vm.assertEq(market.claim(), 1.6e18);
        vm.assertEq(token.balanceOf(nodes[0]), before + 1.6e18);
        vm.assertEq(market.balanceOf(nodes[0]), 0);
        vm.assertEq(market.claimedOf(nodes[0]), 1.6e18);
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.MarketNothingToClaim.selector, nodes[0]));
        vm.prank(nodes[0]);
        market.claim();
    }

    function test_openAccount_onlyRegistryOrSelfAndIdempotent() public {
        vm.expectRevert(abi.encodeWithSelector(ITaskMarket.MarketNotRegistry.selector, stranger));
        vm.prank(stranger);
        market.openAccount(requester);
        vm.expectEmit();
        emit ITaskMarket.AccountOpened(requester);
        vm.prank(requester);
        market.openAccount(requester);
        vm.recordLogs();
        vm.prank(requester);
        market.openAccount(requester);
        vm.assertEq(_logs().length, 0, "second open is a no-op");
    }

    function test_views_reportConfiguration() public view {
        vm.assertEq(market.registry(), address(registry));
        vm.assertEq(market.token(), address(token));
        vm.assertEq(market.minPhaseDuration(), 30);
        vm.assertEq(market.jobCount(), 0);
        bytes32[] memory digests = new bytes32[](2);
        digests[0] = bytes32(uint256(1));
        digests[1] = bytes32(uint256(2));
        vm.assertEq(
            market.resultCommitment(3, nodes[0], digests, _salt(1)),
            keccak256(abi.encode(uint256(3), nodes[0], keccak256(abi.encodePacked(digests)), _salt(1)))
        );
        vm.assertEq(
            market.scoreCommitment(3, validators[0], _vec3(1, 2, 3), _salt(1)),
            keccak256(abi.encode(uint256(3), validators[0], keccak256(_vec3(1, 2, 3)), _salt(1)))
        );
    }
}
