// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {ITaskMarket} from "../../contracts/interfaces/ITaskMarket.sol";
import {StakeTree} from "../../contracts/libraries/StakeTree.sol";

/// @dev Exposes the StakeTree library over a plain array it can be checked against.
contract StakeTreeHarness {
    using StakeTree for StakeTree.Tree;

    StakeTree.Tree internal tree;
    uint256[] public weights;

    function push(uint256 w) external {
        tree.push(w);
        weights.push(w);
    }

    function set(uint256 index, uint256 w) external {
        uint256 old = weights[index - 1];
        if (w > old) tree.add(index, w - old);
        else if (old > w) tree.sub(index, old - w);
        weights[index - 1] = w;
    }

    function find(uint256 r) external view returns (uint256 index) {
        uint256 start;
        (index, start) = tree.find(r);
        uint256 before;
        for (uint256 i = 1; i < index; ++i) {
            before += weights[i - 1];
        }
        require(start == before, "start != prefix before index");
    }

    function total() external view returns (uint256) {
        return tree.total;
    }

    function count() external view returns (uint256) {
        return weights.length;
    }
}

contract FuzzTest is Fixture {
    /// The Fenwick search returns the index whose cumulative range holds r, after pushes and updates.
    function testFuzz_stakeTree_findMatchesLinearScan(uint256 seed, uint8 n, uint256 r) public {
        n = uint8(bound(n, 1, 40));
        StakeTreeHarness h = new StakeTreeHarness();
        for (uint256 i; i < n; ++i) {
            h.push(uint256(keccak256(abi.encode(seed, i))) % 1000);
        }
        // Change a few weights (including to zero).
        for (uint256 i; i < 5; ++i) {
            uint256 index = uint256(keccak256(abi.encode(seed, "idx", i))) % n + 1;
            h.set(
                index,
                uint256(keccak256(abi.encode(seed, "w", i))) % 3 == 0
                    ? 0
                    : uint256(keccak256(abi.encode(seed, i))) % 500
            );
        }
        uint256 sum;
        for (uint256 i; i < n; ++i) {
            sum += h.weights(i);
        }
        vm.assertEq(h.total(), sum);
        if (sum == 0) return;
        r = bound(r, 0, sum - 1);
        uint256 expected;
        uint256 acc;
        for (uint256 i; i < n; ++i) {
            acc += h.weights(i);
            if (acc > r) {
                expected = i + 1;
                break;
            }
        }
        vm.assertEq(h.find(r), expected);
    }

    /// Any digest/salt round-trips through commit and reveal; a different digest never does.
    function testFuzz_revealResult_acceptsOnlyTheCommittedPair(bytes32 digest, bytes32 salt, bytes32 other)
        public
    {
        vm.assume(other != digest);
        uint256 taskId = _post();
        bytes32 c = market.resultCommitment(taskId, nodes[0], digest, salt);
        vm.assume(uint256(c) & ((1 << 224) - 1) != 0);
        vm.prank(nodes[0]);
        market.commitResult(taskId, c);
        vm.warp(block.timestamp + PHASE + 1);
        vm.expectRevert();
        vm.prank(nodes[0]);
        market.revealResult(taskId, 0, other, salt);
        vm.prank(nodes[0]);
        market.revealResult(taskId, 0, digest, salt);
        (, bool revealed) = market.submission(taskId, 0);
        vm.assertTrue(revealed);
    }

    /// Posting escrows exactly bounty x rows for any valid parameters, and out-of-range k/m revert.
    function testFuzz_postJob_escrowsExactlyOrReverts(uint96 bounty, uint8 k, uint8 m, uint8 rows, uint32 d)
        public
    {
        bounty = uint96(bound(bounty, 1, 1e21));
        rows = uint8(bound(rows, 1, 8));
        d = uint32(bound(d, 1, UNBONDING / 4));
        ITaskMarket.JobParams memory p = _params();
        p.bountyPerTask = bounty;
        p.k = k;
        p.m = m;
        p.commitDuration = d;
        p.revealDuration = d;
        p.scoreCommitDuration = d;
        p.scoreRevealDuration = d;
        bytes[] memory inputs = new bytes[](rows);
        for (uint256 i; i < rows; ++i) {
            inputs[i] = abi.encode(i);
        }
        uint256 before = token.balanceOf(address(market));
        bool badK = k == 0 || k > 16;
        bool badM = m == 0 || m > 16;
        if (badK) {
            vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskResultCountOutOfRange.selector, k, 16));
        } else if (badM) {
            vm.expectRevert(abi.encodeWithSelector(ITaskMarket.TaskCommitteeSizeOutOfRange.selector, m, 16));
        }
        vm.prank(requester);
        market.postJob(p, WORKFLOW, inputs);
        uint256 expected = badK || badM ? before : before + uint256(bounty) * rows;
        vm.assertEq(token.balanceOf(address(market)), expected);
    }

    /// Whatever the scores, settlement splits exactly the bounty: rewards + refund == bounty.
    function testFuzz_settlement_splitsExactlyTheBounty(
        uint96 bounty,
        uint16 shareBps,
        uint8 threshold,
        uint8 tolerance,
        uint256 scoreSeed
    ) public {
        ITaskMarket.JobParams memory p = _params();
        p.bountyPerTask = uint96(bound(bounty, 1, 1e22));
        p.validatorShareBps = uint16(bound(shareBps, 0, 10_000));
        p.threshold = uint8(bound(threshold, 0, 100));
        p.tolerance = uint8(bound(tolerance, 0, 100));
        uint256 taskId = _post(p);
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        for (uint256 i; i < 3; ++i) {
            _reveal(taskId, i);
        }
        uint256 size = market.task(taskId).committeeSize;
        uint8[][] memory vectors = new uint8[][](size);
        for (uint256 s; s < size; ++s) {
            vectors[s] = new uint8[](3);
            for (uint256 r; r < 3; ++r) {
                vectors[s][r] = uint8(uint256(keccak256(abi.encode(scoreSeed, s, r))) % 101);
            }
            _commitScores(taskId, s, vectors[s]);
        }
        for (uint256 s; s < size; ++s) {
            _revealScores(taskId, s, vectors[s]);
        }
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Finalized));
        uint256 credited = market.balanceOf(requester);
        for (uint256 i; i < nodes.length; ++i) {
            credited += market.balanceOf(nodes[i]);
        }
        for (uint256 i; i < validators.length; ++i) {
            credited += market.balanceOf(validators[i]);
        }
        vm.assertEq(credited, p.bountyPerTask);
        vm.assertEq(token.balanceOf(address(market)), credited);
    }

    /// A score above 100 is always rejected at reveal.
    function testFuzz_revealScores_rejectsScoresAbove100(uint8 bad, uint8 position) public {
        bad = uint8(bound(bad, 101, 255));
        position = uint8(bound(position, 0, 2));
        uint256 taskId = _toScoring();
        uint8[] memory scores = _scores3(50, 50, 50);
        scores[position] = bad;
        _commitScores(taskId, 0, scores);
        vm.warp(block.timestamp + PHASE + 1);
        (address v,,,,) = market.seat(taskId, 0);
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.TaskScoreOutOfRange.selector, taskId, position, bad)
        );
        vm.prank(v);
        market.revealScores(taskId, 0, scores, _salt(100));
    }

    /// The draw never seats a validator twice and never more than m, for any seed.
    function testFuzz_drawValidators_distinctAndBounded(bytes32 seed, uint8 m) public view {
        m = uint8(bound(m, 1, 16));
        (address[] memory drawn, uint96[] memory weights) = registry.drawValidators(seed, m);
        vm.assertLe(drawn.length, m);
        vm.assertLe(drawn.length, registry.activeValidatorCount());
        vm.assertGt(drawn.length, 0);
        for (uint256 i; i < drawn.length; ++i) {
            vm.assertEq(uint256(weights[i]), registry.participant(drawn[i]).stake);
            for (uint256 j; j < i; ++j) {
                vm.assertTrue(drawn[i] != drawn[j], "duplicate seat");
            }
        }
    }
}
