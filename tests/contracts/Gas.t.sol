// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {ITaskMarket} from "../../contracts/interfaces/ITaskMarket.sol";

/// @notice The gas budgets of protocol v2 at k=3, m=3, every transaction priced as on chain (forge
/// `isolate = true`, see `measureTx`): (1) a 100-task job of 200-byte rows, all transactions (post, commits,
/// reveals, draw, score commits and reveals, settle, every claim) / 100 <= 40,000; (2) one task alone (a batch of
/// one row), claims included, in steady state: <= v1's 1,168,000, the issue's target (~1,161,600 since session 17,
/// down from ~1,424,000 by recycled seat pages, the draw inside the first score commit, seat locks counted in the
/// market's account slots, the settlement inside the last score reveal, one stored input hash per batch in its
/// seat page, the job bounds checked inline and reentrancy guards only where the token is called;
/// docs/contracts.md "Storage and gas"). `FIRST_TASK_CEILING` guards the first lifecycle (its seat page is new:
/// empty slots filled).
contract GasTest is Fixture {
    uint256 internal constant JOB_BUDGET_PER_TASK = 40_000;
    uint256 internal constant TASK_TARGET = 1_168_000;
    uint256 internal constant FIRST_TASK_CEILING = 1_340_000;
    /// @dev EIP-170: the largest runtime code a chain accepts (anvil and every public chain refuse more).
    uint256 internal constant EIP170_LIMIT = 24_576;

    /// @dev A 320-byte workflow.
    function _workflow() internal pure returns (bytes memory w) {
        w = new bytes(320);
        for (uint256 i; i < 320; ++i) {
            w[i] = bytes1(uint8(0x41 + (i % 26)));
        }
    }

    /// @dev `n` rows of `len` bytes each, distinct per `salt`.
    function _rowsOfLen(uint256 n, uint256 len, uint256 salt) internal pure returns (bytes[] memory rows) {
        rows = new bytes[](n);
        for (uint256 r; r < n; ++r) {
            bytes memory row = new bytes(len);
            for (uint256 i; i < len; ++i) {
                row[i] = bytes1(uint8(0x61 + ((i + r + salt) % 26)));
            }
            rows[r] = row;
        }
    }

    function _tx(string memory name, address sender, bytes memory data) internal returns (uint256 g) {
        g = measureTx(sender, address(market), data);
        log(name, g);
    }

    /// @dev Scores for one validator: 80 + (cell % 15), all accepted, within tolerance of each other.
    function _scores(uint256 cells, uint256 seat) internal pure returns (bytes memory v) {
        v = new bytes(cells);
        for (uint256 i; i < cells; ++i) {
            v[i] = bytes1(uint8(80 + ((i + seat) % 15)));
        }
    }

    /// @dev One whole batch lifecycle of `rows` rows (one batch), every transaction summed; the last score reveal
    /// settles (`revealScoresAndSettle`), as the validator daemon sends it.
    function _lifecycle(uint256 rows, uint256 rowLen, uint256 round) internal returns (uint256 total) {
        ITaskMarket.JobParams memory p = _params();
        // forge-lint: disable-next-line(unsafe-typecast)
        p.batchSize = uint16(rows);
        total += _tx(
            "postJob",
            requester,
            abi.encodeCall(market.postJob, (p, _workflow(), _rowsOfLen(rows, rowLen, round)))
        );
        uint256 batchId = market.batchCount();
        for (uint256 i; i < 3; ++i) {
            bytes32 c =
                market.resultCommitment(batchId, nodes[i], _digests(i + round, rows), _salt(i + round));
            total += _tx("commitResult", nodes[i], abi.encodeCall(market.commitResult, (batchId, c)));
        }
        for (uint256 i; i < 3; ++i) {
            total += _tx(
                "revealResult",
                nodes[i],
                abi.encodeCall(market.revealResult, (batchId, i, _digests(i + round, rows), _salt(i + round)))
            );
        }
        vm.roll(block.number + 3);
        // No draw transaction: the first score commit draws the committee (`committeePreview` names it).
        (address[] memory seats,) = market.committeePreview(batchId);
        vm.assertEq(seats.length, 3, "committee of 3");
        bytes[] memory vectors = new bytes[](3);
        for (uint256 s; s < 3; ++s) {
            vectors[s] = _scores(3 * rows, s);
            bytes32 c = market.scoreCommitment(batchId, seats[s], vectors[s], _salt(100 + s));
            total += _tx("commitScores", seats[s], abi.encodeCall(market.commitScores, (batchId, s, c)));
        }
        for (uint256 s; s < 2; ++s) {
            total += _tx(
                "revealScores",
                seats[s],
                abi.encodeCall(market.revealScores, (batchId, s, vectors[s], _salt(100 + s)))
            );
        }
        // No settle transaction: the last reveal settles (`revealScoresAndSettle`).
        total += _tx(
            "revealScoresAndSettle",
            seats[2],
            abi.encodeCall(market.revealScoresAndSettle, (batchId, 2, vectors[2], _salt(102), vectors))
        );
        vm.assertEq(uint256(market.batch(batchId).phase), uint256(ITaskMarket.Phase.Settled));
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

    /// @notice A 100-task job (one batch of 100 rows of 200 bytes), on a live market, for participants who took
    /// part before (steady state).
    function test_job100_k3m3_withinGasBudget() public {
        vm.prank(stranger);
        market.postJob(_params(), WORKFLOW, _rows(1));
        _lifecycle(1, 200, 0);
        uint256 total = _lifecycle(100, 200, 10);
        log("gas_job100_k3_m3_total", total);
        log("gas_per_task_job100_k3_m3", total / 100);
        vm.assertLe(total / 100, JOB_BUDGET_PER_TASK, "100-task job over budget");
    }

    /// @notice One task alone (a batch of one 64-byte row), on a live market, first for participants who never
    /// took part in a batch (their balance slots were opened at registration), then again.
    function test_task_k3m3_withinGasBudget() public {
        vm.prank(stranger);
        market.postJob(_params(), WORKFLOW, _rows(1));
        uint256 first = _lifecycle(1, 64, 0);
        log("gas_per_task_k3_m3_first_task_of_participants", first);
        uint256 again = _lifecycle(1, 64, 10);
        log("gas_per_task_k3_m3", again);
        vm.assertLe(first, FIRST_TASK_CEILING, "first lifecycle over its ceiling");
        vm.assertLe(again, TASK_TARGET, "steady-state task over v1's 1,168,000");
    }

    /// @notice Both contracts deploy on a real chain: their deployed runtime code (as compiled with this
    /// profile's optimizer settings, foundry.toml) is within EIP-170's 24,576 bytes.
    function test_runtimeCode_withinEip170() public view {
        vm.assertLe(address(market).code.length, EIP170_LIMIT, "deployed TaskMarket over EIP-170");
        vm.assertLe(address(registry).code.length, EIP170_LIMIT, "deployed StakeRegistry over EIP-170");
    }
}
