// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "../utils/Fixture.sol";
import {MarketHandler} from "./MarketHandler.sol";
import {ITaskMarket} from "../../../contracts/interfaces/ITaskMarket.sol";

/// @notice Money and state-machine invariants of the market and registry under random actor behaviour.
contract MarketInvariantTest is Fixture {
    MarketHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new MarketHandler(token, registry, market, requester, nodes, validators);
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](18);
        selectors[0] = handler.post.selector;
        selectors[1] = handler.commit.selector;
        selectors[2] = handler.reveal.selector;
        selectors[3] = handler.draw.selector;
        selectors[4] = handler.commitScores.selector;
        selectors[5] = handler.revealScores.selector;
        selectors[6] = handler.finalize.selector;
        selectors[7] = handler.cancel.selector;
        selectors[8] = handler.claim.selector;
        selectors[9] = handler.addStake.selector;
        selectors[10] = handler.sweep.selector;
        selectors[11] = handler.warp.selector;
        // The honest next step is drawn most often, so tasks reach scoring and settlement.
        selectors[12] = handler.advance.selector;
        selectors[13] = handler.advance.selector;
        selectors[14] = handler.advance.selector;
        selectors[15] = handler.advance.selector;
        selectors[16] = handler.advance.selector;
        selectors[17] = handler.advance.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// (a) Conservation: the market holds exactly the open escrows plus the unclaimed balances, the registry
    /// exactly the stakes plus the unswept treasury; and every settled bounty was credited exactly once.
    function invariant_conservation() public view {
        uint256 openEscrow;
        uint256 settled;
        uint256 n = handler.taskCount();
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.taskIds(i);
            uint256 bounty = market.job(market.task(id).jobId).params.bountyPerTask;
            if (handler.isTerminal(id)) settled += bounty;
            else openEscrow += bounty;
        }
        address[] memory all = handler.actors();
        uint256 unclaimed;
        uint256 credited;
        uint256 stakes;
        for (uint256 i; i < all.length; ++i) {
            unclaimed += market.balanceOf(all[i]);
            credited += market.balanceOf(all[i]) + market.claimedOf(all[i]);
            stakes += registry.participant(all[i]).stake;
        }
        vm.assertEq(token.balanceOf(address(market)), openEscrow + unclaimed, "market: escrow + balances");
        vm.assertEq(credited, settled, "credits == settled bounties (no task pays twice)");
        vm.assertEq(stakes, registry.totalStaked(), "stakes");
        vm.assertEq(
            token.balanceOf(address(registry)),
            registry.totalStaked() + registry.treasuryBalance(),
            "registry: stakes + treasury"
        );
    }

    /// (b) A terminal task never changes again (its stored state is frozen once finalized or refunded).
    function invariant_terminalTasksNeverChange() public view {
        uint256 n = handler.taskCount();
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.taskIds(i);
            bytes32 recorded = handler.terminalState(id);
            if (recorded != bytes32(0)) {
                vm.assertEq(handler.stateHash(id), recorded, "terminal task changed");
                vm.assertTrue(handler.isTerminal(id), "left a terminal phase");
            }
        }
    }

    /// (c) Liveness: once a task's last possible deadline has passed, `finalize` (or a prior action) has
    /// brought it, or can bring it, to a terminal state whatever the actors did.
    function invariant_everyExpiredTaskCanTerminate() public {
        uint256 n = handler.taskCount();
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.taskIds(i);
            if (handler.isTerminal(id)) continue;
            if (block.timestamp <= handler.postedAt(id) + handler.lifetime(id)) continue;
            try market.finalize(id) {}
            catch (bytes memory reason) {
                vm.assertEq(keccak256(reason), keccak256(""), "finalize of an expired task reverted");
            }
            vm.assertTrue(handler.isTerminal(id), "expired task not terminal after finalize");
        }
    }

    /// Every action was exercised (a sanity check on the handler, reported by -vv via `calls`).
    function invariant_handlerIsExercised() public view {
        vm.assertLe(handler.taskCount(), 24);
    }
}
