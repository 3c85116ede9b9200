// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {Fixture} from "./utils/Fixture.sol";
import {StakeRegistry} from "../../contracts/StakeRegistry.sol";
import {IStakeRegistry} from "../../contracts/interfaces/IStakeRegistry.sol";
import {ITaskMarket} from "../../contracts/interfaces/ITaskMarket.sol";

contract StakeRegistryTest is Fixture {
    address internal newcomer;

    function setUp() public override {
        super.setUp();
        newcomer = makeAddr("newcomer");
        _fund(newcomer);
    }

    function _noTokenMoved(uint256 registryBefore, uint256 callerBefore, address caller) internal view {
        vm.assertEq(token.balanceOf(address(registry)), registryBefore, "registry balance moved");
        vm.assertEq(token.balanceOf(caller), callerBefore, "caller balance moved");
    }

    function test_register_nodeStoresStakeModelsAndP2p() public {
        uint256 before = token.balanceOf(address(registry));
        _registerNode(newcomer, 150e18);
        IStakeRegistry.Participant memory p = registry.participant(newcomer);
        vm.assertEq(p.stake, 150e18);
        vm.assertEq(uint256(p.role), uint256(IStakeRegistry.Role.Node));
        vm.assertEq(p.modelCount, 1);
        vm.assertEq(registry.accountOf(p.id), newcomer);
        vm.assertTrue(registry.serves(newcomer, MODEL));
        vm.assertFalse(registry.serves(newcomer, OTHER_MODEL));
        vm.assertEq(keccak256(registry.p2pAddressOf(newcomer)), keccak256(bytes("/ip4/127.0.0.1/tcp/4001")));
        vm.assertEq(token.balanceOf(address(registry)), before + 150e18);
        vm.assertEq(registry.requireEligibleNode(newcomer, registry.modelIdOf(MODEL)), p.id);
    }

    function test_register_validatorJoinsDrawTree() public {
        uint256 total = registry.totalValidatorStake();
        uint256 count = registry.activeValidatorCount();
        _registerValidator(newcomer, 250e18);
        vm.assertEq(registry.totalValidatorStake(), total + 250e18);
        vm.assertEq(registry.activeValidatorCount(), count + 1);
        vm.assertEq(registry.participant(newcomer).treeIndex, 4);
    }

    function test_register_revertsWhenAlreadyRegistered() public {
        address n = nodes[0];
        uint256 rb = token.balanceOf(address(registry));
        uint256 cb = token.balanceOf(n);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStakeRegistry.RegistryAlreadyRegistered.selector, n, IStakeRegistry.Role.Node
            )
        );
        _registerValidator(n, MIN_STAKE);
        _noTokenMoved(rb, cb, n);
    }

    function test_register_revertsWhenStakeTooLow() public {
        uint256 rb = token.balanceOf(address(registry));
        uint256 cb = token.balanceOf(newcomer);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStakeRegistry.RegistryStakeTooLow.selector, newcomer, MIN_STAKE - 1, MIN_STAKE
            )
        );
        _registerNode(newcomer, MIN_STAKE - 1);
        _noTokenMoved(rb, cb, newcomer);
    }

    function test_register_revertsForRoleNone() public {
        vm.expectRevert(
            abi.encodeWithSelector(IStakeRegistry.RegistryInvalidRole.selector, IStakeRegistry.Role.None)
        );
        vm.prank(newcomer);
        registry.register(IStakeRegistry.Role.None, MIN_STAKE, _models(), bytes("/ip4/1.2.3.4"));
    }

    function test_register_revertsForEmptyP2pAddress() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryP2pAddressLength.selector, 0, 256));
        vm.prank(newcomer);
        registry.register(IStakeRegistry.Role.Node, MIN_STAKE, _models(), bytes(""));
    }

    function test_register_revertsForDuplicateModel() public {
        bytes32[] memory models = new bytes32[](2);
        models[0] = MODEL;
        models[1] = MODEL;
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryModelInvalid.selector, MODEL));
        vm.prank(newcomer);
        registry.register(IStakeRegistry.Role.Node, MIN_STAKE, models, bytes("/ip4/1.2.3.4"));
    }

    function test_register_revertsForNodeWithoutModels() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryModelCountOutOfRange.selector, 0, 32));
        vm.prank(newcomer);
        registry.register(IStakeRegistry.Role.Node, MIN_STAKE, new bytes32[](0), bytes("/ip4/1.2.3.4"));
    }

    function test_register_revertsForValidatorWithModels() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryModelCountOutOfRange.selector, 1, 0));
        vm.prank(newcomer);
        registry.register(IStakeRegistry.Role.Validator, MIN_STAKE, _models(), bytes("/ip4/1.2.3.4"));
    }

    function test_addStake_increasesStakeAndDrawWeight() public {
        address v = validators[0];
        uint256 total = registry.totalValidatorStake();
        vm.prank(v);
        registry.addStake(50e18);
        vm.assertEq(registry.participant(v).stake, MIN_STAKE + 50e18);
        vm.assertEq(registry.totalValidatorStake(), total + 50e18);
        vm.assertEq(registry.totalStaked(), token.balanceOf(address(registry)) - registry.treasuryBalance());
    }

    function test_addStake_revertsWhenUnregistered() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryNotRegistered.selector, newcomer));
        vm.prank(newcomer);
        registry.addStake(1e18);
    }

    function test_addStake_revertsForZero() public {
        vm.expectRevert(IStakeRegistry.RegistryZeroAmount.selector);
        vm.prank(nodes[0]);
        registry.addStake(0);
    }

    function test_setModels_replacesList() public {
        bytes32[] memory models = new bytes32[](1);
        models[0] = OTHER_MODEL;
        vm.prank(nodes[0]);
        registry.setModels(models);
        vm.assertFalse(registry.serves(nodes[0], MODEL));
        vm.assertTrue(registry.serves(nodes[0], OTHER_MODEL));
        vm.assertEq(registry.modelsOf(nodes[0]).length, 1);
    }

    function test_setModels_revertsForValidator() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryNotANode.selector, validators[0]));
        vm.prank(validators[0]);
        registry.setModels(_models());
    }

    function test_setP2pAddress_updatesAddress() public {
        vm.prank(nodes[1]);
        registry.setP2pAddress(bytes("/ip4/10.0.0.1/tcp/9000"));
        vm.assertEq(keccak256(registry.p2pAddressOf(nodes[1])), keccak256(bytes("/ip4/10.0.0.1/tcp/9000")));
    }

    function test_beginUnbonding_removesValidatorFromDraw() public {
        address v = validators[2];
        uint256 total = registry.totalValidatorStake();
        vm.prank(v);
        registry.beginUnbonding();
        vm.assertEq(registry.totalValidatorStake(), total - 3 * MIN_STAKE);
        vm.assertEq(registry.activeValidatorCount(), 2);
        (address[] memory drawn,) = registry.drawValidators(keccak256("seed"), 16);
        for (uint256 i; i < drawn.length; ++i) {
            vm.assertTrue(drawn[i] != v, "unbonding validator drawn");
        }
        // Its tree slot is reused by the next validator.
        _registerValidator(newcomer, MIN_STAKE);
        vm.assertEq(registry.participant(newcomer).treeIndex, 3);
    }

    function test_beginUnbonding_revertsWhenAlreadyUnbonding() public {
        vm.prank(nodes[0]);
        registry.beginUnbonding();
        uint256 end = block.timestamp + UNBONDING;
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryUnbonding.selector, nodes[0], end));
        vm.prank(nodes[0]);
        registry.beginUnbonding();
    }

    function test_withdraw_revertsBeforeDelay() public {
        vm.prank(nodes[0]);
        registry.beginUnbonding();
        uint256 end = block.timestamp + UNBONDING;
        vm.warp(end - 1);
        uint256 rb = token.balanceOf(address(registry));
        uint256 cb = token.balanceOf(nodes[0]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStakeRegistry.RegistryUnbondingNotElapsed.selector, nodes[0], end, end - 1
            )
        );
        vm.prank(nodes[0]);
        registry.withdraw();
        _noTokenMoved(rb, cb, nodes[0]);
    }

    function test_withdraw_revertsWhenNotUnbonding() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryNotUnbonding.selector, nodes[0]));
        vm.prank(nodes[0]);
        registry.withdraw();
    }

    function test_withdraw_paysWholeStakeAndUnregisters() public {
        address n = nodes[0];
        uint32 id = registry.participant(n).id;
        vm.prank(n);
        registry.beginUnbonding();
        vm.warp(block.timestamp + UNBONDING);
        uint256 before = token.balanceOf(n);
        vm.prank(n);
        registry.withdraw();
        vm.assertEq(token.balanceOf(n), before + MIN_STAKE);
        vm.assertEq(uint256(registry.participant(n).role), uint256(IStakeRegistry.Role.None));
        vm.assertFalse(registry.serves(n, MODEL));
        vm.assertEq(registry.accountOf(id), n, "ids stay resolvable");
        // It may register again, under a new id.
        _registerNode(n, MIN_STAKE);
        vm.assertTrue(registry.participant(n).id != id);
    }

    function test_slash_revertsWhenNotTaskMarket() public {
        address[] memory accounts = new address[](1);
        accounts[0] = nodes[0];
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryNotTaskMarket.selector, nodes[0]));
        vm.prank(nodes[0]);
        registry.slash(1, accounts, 1);
    }

    /// @notice The market counts a seat per batch (`openSeatsOf`, reported by `participant`); `withdraw` waits
    /// for every seat to be released, even after the unbonding delay (attack 5's closure at the registry level).
    function test_withdraw_revertsWhileSeatsOpen() public {
        ITaskMarket.JobParams memory p = _params();
        p.k = 1;
        uint256 first = _postRows(p, 2); // two batches of one row
        _commit(first, 0);
        _commit(first + 1, 0);
        vm.assertEq(market.openSeatsOf(nodes[0]), 2, "market count");
        vm.assertEq(uint256(registry.participant(nodes[0]).openSeats), 2, "reported by the registry");
        vm.prank(nodes[0]);
        registry.beginUnbonding();
        vm.warp(block.timestamp + UNBONDING + 1);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistrySeatsOpen.selector, nodes[0], 2));
        vm.prank(nodes[0]);
        registry.withdraw();

        // Neither seat revealed: each refund releases one seat and slashes it.
        market.settle(first, new bytes[](0));
        vm.assertEq(uint256(registry.participant(nodes[0]).openSeats), 1);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistrySeatsOpen.selector, nodes[0], 1));
        vm.prank(nodes[0]);
        registry.withdraw();
        market.settle(first + 1, new bytes[](0));
        vm.assertEq(uint256(registry.participant(nodes[0]).openSeats), 0);
        uint256 before = token.balanceOf(nodes[0]);
        vm.prank(nodes[0]);
        registry.withdraw();
        vm.assertEq(token.balanceOf(nodes[0]), before + MIN_STAKE - 2 * SLASH, "slashed twice, then paid");
    }

    function test_slash_cappedAtStakeMovesToTreasuryAndSkipsUnmasked() public {
        address v = validators[0];
        uint256 totalBefore = registry.totalValidatorStake();
        address[] memory accounts = new address[](2);
        accounts[0] = v;
        accounts[1] = validators[1];
        vm.prank(address(market));
        uint256[] memory amounts = registry.slash(7, accounts, 1);
        vm.assertEq(amounts[0], SLASH);
        vm.assertEq(amounts[1], 0, "bit 1 unset: not slashed");
        vm.assertEq(_stake(v), MIN_STAKE - SLASH);
        vm.assertEq(_stake(validators[1]), _validatorStake(1), "untouched");
        vm.assertEq(registry.treasuryBalance(), SLASH);
        vm.assertEq(registry.totalStaked(), 10 * MIN_STAKE - SLASH, "4 nodes + 1+2+3 validators - slash");
        // Below the minimum stake: weight 0 in the draw.
        vm.assertEq(registry.totalValidatorStake(), totalBefore - MIN_STAKE);
        // A stake below the slash amount loses what is left, no more.
        for (uint256 i; i < 9; ++i) {
            vm.prank(address(market));
            registry.slash(8 + i, accounts, 1);
        }
        vm.assertEq(_stake(v), 0, "capped at the stake");
        vm.prank(address(market));
        amounts = registry.slash(20, accounts, 1);
        vm.assertEq(amounts[0], 0, "nothing left to slash");
        registry.sweepTreasury();
        vm.assertEq(token.balanceOf(treasury), MIN_STAKE);
    }

    function test_setTaskMarket_revertsWhenAlreadySet() public {
        vm.expectRevert(
            abi.encodeWithSelector(IStakeRegistry.RegistryTaskMarketAlreadySet.selector, address(market))
        );
        registry.setTaskMarket(address(0xBEEF));
    }

    function test_setTaskMarket_revertsForNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        registry.setTaskMarket(address(0xBEEF));
    }

    function test_sweepTreasury_revertsWhenEmpty() public {
        vm.expectRevert(IStakeRegistry.RegistryZeroAmount.selector);
        registry.sweepTreasury();
    }

    function test_requireEligibleNode_revertsForUnbondingNode() public {
        vm.prank(nodes[0]);
        registry.beginUnbonding();
        uint32 modelId = registry.modelIdOf(MODEL);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStakeRegistry.RegistryUnbonding.selector, nodes[0], block.timestamp + UNBONDING
            )
        );
        registry.requireEligibleNode(nodes[0], modelId);
    }

    function test_drawValidators_isDistinctAndBounded() public view {
        (address[] memory drawn, uint96[] memory weights) = registry.drawValidators(keccak256("x"), 16);
        vm.assertLe(drawn.length, 3);
        vm.assertEq(drawn.length, weights.length);
        for (uint256 i; i < drawn.length; ++i) {
            vm.assertEq(uint256(weights[i]), registry.participant(drawn[i]).stake);
            for (uint256 j; j < i; ++j) {
                vm.assertTrue(drawn[i] != drawn[j], "duplicate seat");
            }
        }
    }

    function test_register_revertsForTooManyModels() public {
        bytes32[] memory models = new bytes32[](33);
        for (uint256 i; i < 33; ++i) {
            models[i] = bytes32(i + 1);
        }
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryModelCountOutOfRange.selector, 33, 32));
        vm.prank(newcomer);
        registry.register(IStakeRegistry.Role.Node, MIN_STAKE, models, bytes("/ip4/1.2.3.4"));
    }

    function test_register_revertsForStakeAboveUint96() public {
        uint256 stake = uint256(type(uint96).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryStakeOverflow.selector, stake));
        vm.prank(newcomer);
        registry.register(IStakeRegistry.Role.Node, stake, _models(), bytes("/ip4/1.2.3.4"));
    }

    function test_register_revertsWhenValidatorSetIsFull() public {
        uint256 free = registry.MAX_VALIDATORS() - registry.activeValidatorCount();
        for (uint256 i; i < free; ++i) {
            address v = address(uint160(0x100000 + i));
            token.mint(v, MIN_STAKE);
            vm.prank(v);
            token.approve(address(registry), MIN_STAKE);
            _registerValidator(v, MIN_STAKE);
        }
        vm.assertEq(registry.activeValidatorCount(), 1024);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryValidatorSetFull.selector, 1024));
        _registerValidator(newcomer, MIN_STAKE);
        // A draw over the full set stays bounded and distinct.
        (address[] memory drawn,) = registry.drawValidators(keccak256("full"), 16);
        vm.assertEq(drawn.length, 16);
    }

    function test_constructor_revertsForZeroTokenOrTreasury() public {
        vm.expectRevert(IStakeRegistry.RegistryZeroAddress.selector);
        new StakeRegistry(IERC20(address(0)), 1, 1, 1, treasury, address(this));
        vm.expectRevert(IStakeRegistry.RegistryZeroAddress.selector);
        new StakeRegistry(IERC20(address(token)), 1, 1, 1, address(0), address(this));
    }

    function test_constructor_revertsForZeroMinimumOrDelay() public {
        vm.expectRevert(IStakeRegistry.RegistryZeroAmount.selector);
        new StakeRegistry(IERC20(address(token)), 0, 1, 1, treasury, address(this));
        vm.expectRevert(IStakeRegistry.RegistryZeroAmount.selector);
        new StakeRegistry(IERC20(address(token)), 1, 1, 0, treasury, address(this));
    }

    function test_internModel_assignsStableIds() public {
        uint32 known = registry.modelIdOf(MODEL);
        vm.assertGt(known, 0);
        vm.assertEq(registry.internModel(MODEL), known);
        bytes32 fresh = keccak256("qwen3:0.6b");
        vm.assertEq(registry.modelIdOf(fresh), 0);
        uint32 id = registry.internModel(fresh);
        vm.assertEq(registry.modelIdOf(fresh), id);
        vm.assertEq(registry.modelName(id), fresh);
        vm.assertFalse(registry.serves(nodes[0], fresh));
    }

    function test_internModel_revertsForZero() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.RegistryModelInvalid.selector, bytes32(0)));
        registry.internModel(bytes32(0));
    }
}
