// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {ITaskMarket} from "../../contracts/interfaces/ITaskMarket.sol";

/// @notice The gas budget of one task's whole lifecycle at k=3, m=3: post, 3 commits, 3 reveals (the last
/// draws the committee), 3 score commits, 3 score reveals (the last finalizes), and every claim. Each
/// transaction is priced as on chain (forge `isolate = true`, see `measureTx`); the figures match anvil
/// receipts.
contract GasTest is Fixture {
    uint256 internal constant BUDGET = 1_183_000;

    function setUp() public override {
        super.setUp();
        vm.prevrandao(bytes32(uint256(7)));
    }

    /// @dev A 320-byte workflow and a 64-byte input row, closer to real specs than the fixture's.
    function _workflow() internal pure returns (bytes memory w) {
        w = new bytes(320);
        for (uint256 i; i < 320; ++i) {
            w[i] = bytes1(uint8(0x41 + (i % 26)));
        }
    }

    function _input(uint256 salt) internal pure returns (bytes memory input) {
        input = new bytes(64);
        for (uint256 i; i < 64; ++i) {
            input[i] = bytes1(uint8(0x61 + ((i + salt) % 26)));
        }
    }

    function _tx(string memory name, address sender, bytes memory data) internal returns (uint256 g) {
        g = measureTx(sender, address(market), data);
        log(name, g);
    }

    /// @dev One whole lifecycle; returns the summed gas of its transactions.
    function _lifecycle(uint256 round) internal returns (uint256 total) {
        ITaskMarket.JobParams memory p = _params();
        total += _tx("postTask", requester, abi.encodeCall(market.postTask, (p, _workflow(), _input(round))));
        uint256 taskId = market.taskCount();
        for (uint256 i; i < 3; ++i) {
            bytes32 c = market.resultCommitment(taskId, nodes[i], _digest(i + round), _salt(i + round));
            total += _tx("commitResult", nodes[i], abi.encodeCall(market.commitResult, (taskId, c)));
        }
        for (uint256 i; i < 3; ++i) {
            total += _tx(
                i == 2 ? "revealResult+draw" : "revealResult",
                nodes[i],
                abi.encodeCall(market.revealResult, (taskId, i, _digest(i + round), _salt(i + round)))
            );
        }
        address[] memory seats = _committee(taskId);
        vm.assertEq(seats.length, 3, "committee of 3");
        uint8[] memory scores = _scores3(80, 90, 70);
        for (uint256 s; s < 3; ++s) {
            bytes32 c = market.scoreCommitment(taskId, seats[s], scores, _salt(100 + s));
            total += _tx("commitScores", seats[s], abi.encodeCall(market.commitScores, (taskId, s, c)));
        }
        for (uint256 s; s < 3; ++s) {
            total += _tx(
                s == 2 ? "revealScores+finalize" : "revealScores",
                seats[s],
                abi.encodeCall(market.revealScores, (taskId, s, scores, _salt(100 + s)))
            );
        }
        vm.assertEq(uint256(market.task(taskId).phase), uint256(ITaskMarket.Phase.Finalized));
        for (uint256 i; i < 3; ++i) {
            total += _tx("claim(node)", nodes[i], abi.encodeCall(market.claim, ()));
        }
        for (uint256 s; s < 3; ++s) {
            total += _tx("claim(validator)", seats[s], abi.encodeCall(market.claim, ()));
        }
        if (market.balanceOf(requester) != 0) {
            total += _tx("claim(requester)", requester, abi.encodeCall(market.claim, ()));
        }
    }

    /// @notice The budget: one task's lifecycle on a live market (another task's escrow is held, as on any used
    /// deployment), first for participants who never took part in a task (their market balance slots were
    /// opened when they registered), then again for the same participants.
    function test_lifecycle_k3m3_withinGasBudget() public {
        vm.prank(stranger);
        market.postTask(_params(), WORKFLOW, INPUT);
        uint256 first = _lifecycle(0);
        log("gas_per_task_k3_m3_first_task_of_participants", first);
        uint256 again = _lifecycle(10);
        log("gas_per_task_k3_m3", again);
        vm.assertLe(first, BUDGET, "first lifecycle over budget");
        vm.assertLe(again, BUDGET, "second lifecycle over budget");
    }

    /// @notice The very first task of a brand-new deployment also creates the market's token balance, its id
    /// counters and its cached model id (~55k gas, once per deployment or per new model): reported, not
    /// budgeted.
    function test_lifecycle_k3m3_firstTaskOfDeployment() public {
        uint256 gas = _lifecycle(0);
        log("gas_per_task_k3_m3_first_task_of_deployment", gas);
        vm.assertLe(gas, BUDGET + 60_000, "one-time deployment costs grew");
    }
}
