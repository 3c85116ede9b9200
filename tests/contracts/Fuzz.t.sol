// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {IStakeRegistry} from "../../contracts/interfaces/IStakeRegistry.sol";
import {ITaskMarket} from "../../contracts/interfaces/ITaskMarket.sol";
import {JobRules} from "../../contracts/libraries/JobRules.sol";

/// @notice Exposes `JobRules.valid` (internal: TaskMarket's inline test) beside the library's `check`.
contract JobRulesHarness {
    function valid(ITaskMarket.JobParams calldata p, uint256 minPhaseDuration) external pure returns (bool) {
        return JobRules.valid(p, minPhaseDuration);
    }

    function check(ITaskMarket.JobParams calldata p, uint256 minPhaseDuration) external pure {
        JobRules.check(p, minPhaseDuration);
    }
}

/// @notice Property tests of TaskMarket v2 and StakeRegistry (forge fuzzing; `bound`, no `assume`).
contract FuzzTest is Fixture {
    function _sum3(address[3] memory a) internal view returns (uint256 s) {
        for (uint256 i; i < 3; ++i) {
            s += market.balanceOf(a[i]);
        }
    }

    /// @notice `JobRules.valid` (TaskMarket's inline test, no library call) accepts exactly the parameters the
    /// library's `check` accepts: each field drawn around its bounds, so both sides of every bound are hit.
    function testFuzz_jobRules_validIffCheckPasses(uint256 seed, uint256 minPhase) public {
        JobRulesHarness h = new JobRulesHarness();
        minPhase = bound(minPhase, 1, 120);
        ITaskMarket.JobParams memory p;
        uint256[12] memory x;
        for (uint256 i; i < 12; ++i) {
            x[i] = uint256(keccak256(abi.encode(seed, i)));
        }
        // forge-lint: disable-start(unsafe-typecast)
        p.model = x[0] % 8 == 0 ? bytes32(0) : MODEL;
        p.bountyPerTask = uint96(x[0] % 7 == 0 ? 0 : 1 + (x[0] >> 8) % 1e18);
        p.batchSize = uint16(bound(x[1], 0, 260));
        p.k = uint8(bound(x[2], 0, 17));
        p.m = uint8(bound(x[3], 0, 17));
        p.threshold = uint8(bound(x[4], 0, 102));
        p.tolerance = uint8(bound(x[5], 95, 102));
        p.junkFloor = uint8(bound(x[6], 0, 102));
        p.validatorShareBps = uint16(bound(x[7], 9_990, 10_010));
        p.commitDuration =
            uint32(x[8] % 5 == 0 ? bound(x[8] >> 8, 0, 2 * minPhase) : bound(x[8] >> 8, minPhase, 31 days));
        p.revealDuration =
            uint32(x[9] % 5 == 0 ? bound(x[9] >> 8, 0, 2 * minPhase) : bound(x[9] >> 8, minPhase, 31 days));
        p.scoreCommitDuration = uint32(
            x[10] % 5 == 0 ? bound(x[10] >> 8, 0, 2 * minPhase) : bound(x[10] >> 8, minPhase, 30 days + 2)
        );
        p.scoreRevealDuration = uint32(
            x[11] % 5 == 0 ? bound(x[11] >> 8, 0, 2 * minPhase) : bound(x[11] >> 8, 30 days - 2, 30 days + 2)
        );
        // forge-lint: disable-end(unsafe-typecast)
        bool ok = h.valid(p, minPhase);
        bool passes = true;
        try h.check(p, minPhase) {}
        catch {
            passes = false;
        }
        vm.assertEq(ok, passes, "valid disagrees with check");
    }

    /// @notice The bounds' exact edges: the largest valid job passes both, one step past any edge fails both.
    function test_jobRules_validAtEveryEdge() public {
        JobRulesHarness h = new JobRulesHarness();
        ITaskMarket.JobParams memory p = _params();
        p.batchSize = 16;
        p.k = 16;
        p.m = 16; // 16 * 16 * 16 = 4096 cells: the most allowed
        p.threshold = 100;
        p.tolerance = 100;
        p.junkFloor = 100;
        p.validatorShareBps = 10_000;
        p.commitDuration = 30 days;
        p.revealDuration = 30;
        vm.assertTrue(h.valid(p, 30), "edges valid");
        h.check(p, 30);
        p.revealDuration = 29;
        vm.assertFalse(h.valid(p, 30), "a duration below the minimum");
        p.revealDuration = 30;
        p.commitDuration = 30 days + 1;
        vm.assertFalse(h.valid(p, 30), "a duration above 30 days");
        p.commitDuration = 30 days;
        p.batchSize = 17;
        vm.assertFalse(h.valid(p, 30), "4352 cells");
        p.batchSize = 16;
        p.junkFloor = 101;
        vm.assertFalse(h.valid(p, 30), "junk floor above the threshold");
        p.junkFloor = 100;
        p.validatorShareBps = 10_001;
        vm.assertFalse(h.valid(p, 30), "share above 100%");
    }

    /// @notice Rows are split in order into ceil(n / B) batches, the last holding the remainder.
    function testFuzz_postJob_batchesCoverEveryRowOnce(uint256 n, uint256 size) public {
        n = bound(n, 1, 40);
        size = bound(size, 1, 16);
        ITaskMarket.JobParams memory p = _params();
        // forge-lint: disable-next-line(unsafe-typecast)
        p.batchSize = uint16(size);
        uint256 first = _postRows(p, n);
        uint256 batches = (n + size - 1) / size;
        vm.assertEq(market.batchCount(), batches);
        uint256 covered = 0;
        for (uint256 i; i < batches; ++i) {
            ITaskMarket.BatchView memory b = market.batch(first + i);
            vm.assertEq(b.firstRow, covered, "contiguous");
            vm.assertEq(b.rows, i + 1 < batches ? size : n - size * (batches - 1));
            covered += b.rows;
        }
        vm.assertEq(covered, n);
        vm.assertEq(token.balanceOf(address(market)), n * uint256(BOUNTY));
        vm.assertEq(market.job(1).rowCount, n);
    }

    /// @notice Whatever the scores and parameters, a scored settlement credits exactly the batch's bounty
    /// (nodes + validators + requester), and only accepted results are paid.
    function testFuzz_settle_creditsExactlyTheBounty(
        uint256 seed,
        uint96 bounty,
        uint16 shareBps,
        uint8 threshold,
        uint8 tolerance,
        uint256 rows
    ) public {
        rows = bound(rows, 1, 4);
        ITaskMarket.JobParams memory p = _params();
        p.bountyPerTask = uint96(bound(bounty, 1, 1e24));
        // forge-lint: disable-next-line(unsafe-typecast)
        p.validatorShareBps = uint16(bound(shareBps, 0, 10_000));
        // forge-lint: disable-next-line(unsafe-typecast)
        p.threshold = uint8(bound(threshold, 0, 100));
        // forge-lint: disable-next-line(unsafe-typecast)
        p.tolerance = uint8(bound(tolerance, 0, 100));
        p.junkFloor = 0;
        // forge-lint: disable-next-line(unsafe-typecast)
        p.batchSize = uint16(rows);
        token.mint(requester, uint256(p.bountyPerTask) * rows);
        uint256 batchId = _postRows(p, rows);
        _toScoring(batchId);
        bytes[] memory vectors = new bytes[](3);
        for (uint256 s; s < 3; ++s) {
            vectors[s] = new bytes(3 * rows);
            for (uint256 c; c < 3 * rows; ++c) {
                vectors[s][c] = bytes1(uint8(uint256(keccak256(abi.encode(seed, s, c))) % 101));
            }
        }
        _score(batchId, vectors);
        _settle(batchId);
        uint256 credited = _sum3([nodes[0], nodes[1], nodes[2]])
            + _sum3([validators[0], validators[1], validators[2]]) + market.balanceOf(requester);
        vm.assertEq(credited, uint256(p.bountyPerTask) * rows, "credits == bounty");
        vm.assertEq(token.balanceOf(address(market)), credited, "market holds exactly the credits");
    }

    /// @notice The median of three votes equals a reference weighted median computed here by sorting.
    function testFuzz_settle_medianMatchesReference(uint8 a, uint8 b, uint8 c, uint96 extraStake) public {
        a = uint8(bound(a, 0, 100));
        b = uint8(bound(b, 0, 100));
        c = uint8(bound(c, 0, 100));
        uint256 extra = bound(extraStake, 0, 1_000e18);
        if (extra != 0) {
            vm.prank(validators[0]);
            registry.addStake(extra);
        }
        uint256 batchId = _toScoring();
        uint8[3] memory byValidator = [a, b, c];
        uint256[3] memory w = [_stake(validators[0]), _stake(validators[1]), _stake(validators[2])];
        address[] memory seats = _committee(batchId);
        bytes[] memory vectors = new bytes[](3);
        for (uint256 s; s < 3; ++s) {
            uint256 idx = seats[s] == validators[0] ? 0 : seats[s] == validators[1] ? 1 : 2;
            vectors[s] = _vec3(byValidator[idx], byValidator[idx], byValidator[idx]);
        }
        _score(batchId, vectors);
        _settle(batchId);
        // Reference: lowest score whose cumulative weight reaches half.
        uint256 total = w[0] + w[1] + w[2];
        uint256 expected = 101;
        for (uint256 i; i < 3; ++i) {
            uint256 below = 0;
            for (uint256 j; j < 3; ++j) {
                if (byValidator[j] <= byValidator[i]) below += w[j];
            }
            if (2 * below >= total && byValidator[i] < expected) expected = byValidator[i];
        }
        uint256 nodePay = market.balanceOf(nodes[0]);
        vm.assertEq(nodePay, expected >= 50 ? 0.8e18 : 0, "accepted iff the reference median >= threshold");
    }

    /// @notice A reveal opens only the exact (batch, node, digests, salt) that was committed.
    function testFuzz_revealResult_onlyTheCommittedOpening(bytes32 salt, bytes32 digest, uint256 flip)
        public
    {
        uint256 batchId = _post();
        bytes32[] memory digests = new bytes32[](1);
        digests[0] = digest;
        bytes32 c = market.resultCommitment(batchId, nodes[0], digests, salt);
        vm.prank(nodes[0]);
        market.commitResult(batchId, c);
        vm.warp(_deadline(batchId) + 1);
        bytes32[] memory wrong = new bytes32[](1);
        wrong[0] = digest ^ bytes32(1 << bound(flip, 0, 255));
        vm.expectRevert();
        vm.prank(nodes[0]);
        market.revealResult(batchId, 0, wrong, salt);
        vm.expectRevert();
        vm.prank(nodes[0]);
        market.revealResult(batchId, 0, digests, salt ^ bytes32(1 << bound(flip, 0, 255)));
        vm.prank(nodes[0]);
        market.revealResult(batchId, 0, digests, salt);
        vm.assertEq(uint256(market.batch(batchId).phase), uint256(ITaskMarket.Phase.Drawing));
    }

    /// @notice Any score byte above 100 is refused with its position and value.
    function testFuzz_revealScores_refusesOutOfRange(uint256 pos, uint8 value) public {
        pos = bound(pos, 0, 2);
        value = uint8(bound(value, 101, 255));
        uint256 batchId = _toScoring();
        bytes memory v = _vec3(0, 0, 0);
        v[pos] = bytes1(value);
        _commitScores(batchId, 0, v);
        _commitScores(batchId, 1, v);
        _commitScores(batchId, 2, v);
        (address v0,,,,) = market.committeeSeat(batchId, 0);
        vm.expectRevert(
            abi.encodeWithSelector(ITaskMarket.BatchScoreOutOfRange.selector, batchId, pos, value)
        );
        vm.prank(v0);
        market.revealScores(batchId, 0, v, _salt(100));
    }

    /// @notice A commit is accepted exactly up to the commit deadline.
    function testFuzz_commitResult_acceptedIffNotLate(uint256 dt) public {
        uint256 batchId = _post();
        uint256 d = _deadline(batchId);
        dt = bound(dt, 0, 2 * PHASE);
        vm.warp(block.timestamp + dt);
        bytes32 c = market.resultCommitment(batchId, nodes[0], _digests(0, 1), _salt(0));
        if (block.timestamp > d) {
            vm.expectRevert(
                abi.encodeWithSelector(ITaskMarket.BatchDeadlinePassed.selector, batchId, d, block.timestamp)
            );
        }
        vm.prank(nodes[0]);
        market.commitResult(batchId, c);
    }

    /// @notice Parameter validation: a post succeeds iff B, k, m and B*k*m are in range, and moves no token
    /// otherwise.
    function testFuzz_postJob_validatesShape(uint16 size, uint8 k, uint8 m) public {
        ITaskMarket.JobParams memory p = _params();
        p.batchSize = uint16(bound(size, 0, 300));
        p.k = uint8(bound(k, 0, 20));
        p.m = uint8(bound(m, 0, 20));
        bool ok = p.batchSize >= 1 && p.batchSize <= 256 && p.k >= 1 && p.k <= 16 && p.m >= 1 && p.m <= 16
            && uint256(p.batchSize) * p.k * p.m <= 4096;
        bytes[] memory rows = _rows(1);
        if (!ok) vm.expectRevert();
        vm.prank(requester);
        market.postJob(p, WORKFLOW, rows);
        vm.assertEq(token.balanceOf(address(market)), ok ? BOUNTY : 0);
    }

    /// @notice `rowsHash` is keccak256 over the concatenated row hashes.
    function testFuzz_rowsHash_matchesFormula(bytes memory a, bytes memory b) public view {
        bytes[] memory rows = new bytes[](2);
        rows[0] = a;
        rows[1] = b;
        vm.assertEq(market.rowsHash(rows), keccak256(abi.encodePacked(keccak256(a), keccak256(b))));
    }

    /// @notice Registry conservation through stake top-ups, a slash and a withdraw: tokens held == stakes +
    /// unswept treasury.
    function testFuzz_registry_conservation(uint96 add, bool slashIt) public {
        uint256 amount = bound(add, 1, 1_000e18);
        vm.prank(nodes[0]);
        registry.addStake(amount);
        uint256 batchId = _post();
        _commit(batchId, 0);
        if (slashIt) {
            vm.warp(block.timestamp + 3 * PHASE);
            market.settle(batchId, new bytes[](0)); // never revealed: slashed
        } else {
            vm.prank(requester);
            vm.expectRevert(abi.encodeWithSelector(ITaskMarket.BatchHasCommits.selector, batchId, 1));
            market.cancel(batchId);
        }
        vm.assertEq(
            token.balanceOf(address(registry)),
            registry.totalStaked() + registry.treasuryBalance(),
            "conservation"
        );
        vm.assertEq(_stake(nodes[0]), MIN_STAKE + amount - (slashIt ? SLASH : 0));
        vm.assertEq(uint256(registry.participant(nodes[0]).role), uint256(IStakeRegistry.Role.Node));
    }
}
