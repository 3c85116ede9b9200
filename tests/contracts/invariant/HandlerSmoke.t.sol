// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "../utils/Fixture.sol";
import {MarketHandler} from "./MarketHandler.sol";

/// @notice The invariant handler itself: its honest path settles batches, and every action can be exercised.
contract HandlerSmokeTest is Fixture {
    function test_handler_advanceSettlesABatchAndCoversEveryAction() public {
        address[] memory fresh = new address[](1);
        fresh[0] = makeAddr("newcomer");
        _fund(fresh[0]);
        MarketHandler h = new MarketHandler(token, registry, market, requester, stranger, nodes, validators, fresh);
        for (uint256 i; i < 1200 && h.settledSeen() == 0; ++i) {
            if (i % 12 == 0) h.post(i * 7919);
            h.advance(i * 31 + 1);
            if (i % 4 == 3) h.warp((i * 997) % 1800);
        }
        // Each call first runs the next action not exercised yet: ACTIONS calls cover them all.
        for (uint256 a; a < h.ACTIONS(); ++a) {
            h.claim(a);
        }
        log("settled", h.settledSeen());
        log("refunded", h.refundedSeen());
        vm.assertGt(h.settledSeen(), 0, "a batch settled");
        for (uint256 a; a < h.ACTIONS(); ++a) {
            vm.assertGt(h.callCount(a), 0, "every action exercised");
        }
    }
}
