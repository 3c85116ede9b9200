// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "../utils/Fixture.sol";
import {MarketHandler} from "./MarketHandler.sol";
import {ITaskMarket} from "../../../contracts/interfaces/ITaskMarket.sol";

/// @notice Money and state-machine invariants of TaskMarket v2 and StakeRegistry under `MarketHandler`'s random
/// actions. Ghost sums come from token balance changes observed by the handler, not from the contracts' views.
contract MarketInvariantTest is Fixture {
    MarketHandler internal handler;

    function setUp() public override {
        super.setUp();
        address[] memory fresh = new address[](4);
        for (uint256 i; i < 4; ++i) {
            fresh[i] = makeAddr(string.concat("newcomer", vm.toString(i)));
            _fund(fresh[i]);
        }
        handler = new MarketHandler(token, registry, market, requester, stranger, nodes, validators, fresh);
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](36);
        selectors[0] = handler.post.selector;
        selectors[1] = handler.cancel.selector;
        selectors[2] = handler.commit.selector;
        selectors[3] = handler.reveal.selector;
        selectors[4] = handler.draw.selector;
        selectors[5] = handler.commitScores.selector;
        selectors[6] = handler.revealScores.selector;
        selectors[7] = handler.settle.selector;
        selectors[8] = handler.claim.selector;
        selectors[9] = handler.warp.selector;
        selectors[10] = handler.register.selector;
        selectors[11] = handler.addStake.selector;
        selectors[12] = handler.beginUnbonding.selector;
        selectors[13] = handler.withdraw.selector;
        selectors[14] = handler.setModels.selector;
        selectors[15] = handler.setP2pAddress.selector;
        selectors[16] = handler.sweepTreasury.selector;
        selectors[17] = handler.internModel.selector;
        selectors[18] = handler.openAccount.selector;
        // The lifecycle steps are drawn more often, so batches reach scoring and settlement.
        selectors[19] = handler.commit.selector;
        selectors[20] = handler.reveal.selector;
        selectors[21] = handler.commitScores.selector;
        selectors[22] = handler.revealScores.selector;
        selectors[23] = handler.draw.selector;
        selectors[24] = handler.settle.selector;
        selectors[25] = handler.advance.selector;
        selectors[26] = handler.commit.selector;
        for (uint256 i = 27; i < 36; ++i) {
            selectors[i] = handler.advance.selector;
        }
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function _sumBalances() internal view returns (uint256 balances, uint256 claimed) {
        address[] memory all = handler.actors();
        for (uint256 i; i < all.length; ++i) {
            balances += market.balanceOf(all[i]);
            claimed += market.claimedOf(all[i]);
        }
    }

    /// (1) The market's tokens are exactly what was paid in minus what was claimed (ghost flows).
    function invariant_marketTokensFollowGhostFlows() public view {
        vm.assertEq(token.balanceOf(address(market)), handler.paidIn() - handler.claimedOut(), "market flows");
    }

    /// (2) Conservation and no double pay: credited balances plus the escrow of batches not yet terminal (ghost)
    /// equal the market's tokens, and the claims recorded equal the ghost claims.
    function invariant_creditsPlusEscrowEqualHoldings() public view {
        (uint256 balances, uint256 claimed) = _sumBalances();
        vm.assertEq(balances + handler.escrow(), token.balanceOf(address(market)), "balances + escrow");
        vm.assertEq(claimed, handler.claimedOut(), "claims");
    }

    /// (3) The registry holds exactly the stakes plus the unswept treasury, and its ghost flows.
    function invariant_registryConservation() public view {
        uint256 held = token.balanceOf(address(registry));
        vm.assertEq(held, handler.stakedIn() - handler.stakeOut(), "registry flows");
        vm.assertEq(held, registry.totalStaked() + registry.treasuryBalance(), "stakes + treasury");
    }

    /// (4) A terminal batch never changes again.
    function invariant_terminalBatchesNeverChange() public view {
        uint256 n = handler.batchCount();
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.batchIds(i);
            if (handler.terminal(id)) vm.assertEq(handler.stateHash(id), handler.terminalState(id), "changed");
        }
    }

    /// (5) Every participant's registry seat count equals the seats it holds in batches not yet terminal (node
    /// seats, and committee seats of the current round): nobody can withdraw from an unsettled batch.
    function invariant_seatLocksMatchOpenBatches() public view {
        address[] memory all = handler.actors();
        uint256[] memory seats = new uint256[](all.length);
        uint256 n = handler.batchCount();
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.batchIds(i);
            if (handler.terminal(id)) continue;
            ITaskMarket.BatchView memory b = market.batch(id);
            for (uint256 s; s < b.commitCount; ++s) {
                (address node,) = market.nodeSeat(id, s);
                seats[_indexOf(all, node)] += 1;
            }
            for (uint256 s; s < b.committeeSize; ++s) {
                (address v,,,,) = market.committeeSeat(id, s);
                seats[_indexOf(all, v)] += 1;
            }
        }
        for (uint256 a; a < all.length; ++a) {
            vm.assertEq(uint256(registry.participant(all[a]).openSeats), seats[a], "seat locks");
        }
    }

    function _indexOf(address[] memory all, address who) internal pure returns (uint256) {
        for (uint256 i; i < all.length; ++i) {
            if (all[i] == who) return i;
        }
        revert("unknown actor");
    }

    /// (6) After every run: every handler action was exercised, and every batch reaches a terminal state with
    /// its whole escrow released (nothing stuck), all seats released.
    function afterInvariant() public {
        log("batches_settled_in_run", handler.settledSeen());
        log("batches_refunded_in_run", handler.refundedSeen());
        for (uint256 a; a < handler.ACTIONS(); ++a) {
            vm.assertGt(handler.callCount(a), 0, "action never exercised");
        }
        vm.assertEq(handler.drain(), 0, "a batch did not reach a terminal state");
        vm.assertEq(handler.escrow(), 0, "escrow left");
        (uint256 balances,) = _sumBalances();
        vm.assertEq(balances, token.balanceOf(address(market)), "everything is claimable");
        address[] memory all = handler.actors();
        for (uint256 i; i < all.length; ++i) {
            vm.assertEq(uint256(registry.participant(all[i]).openSeats), 0, "seat left locked");
        }
    }
}
