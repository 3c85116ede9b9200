// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {DeployLib} from "../../../scripts/DeployLib.sol";
import {DevnetToken} from "../../../contracts/DevnetToken.sol";
import {StakeRegistry} from "../../../contracts/StakeRegistry.sol";
import {TaskMarket} from "../../../contracts/TaskMarket.sol";
import {IStakeRegistry} from "../../../contracts/interfaces/IStakeRegistry.sol";
import {ITaskMarket} from "../../../contracts/interfaces/ITaskMarket.sol";

/// @title Fixture
/// @notice Shared test base: deploys through `DeployLib` (the path `Deploy.s.sol` takes), registers actors
/// (4 nodes serving MODEL, 3 validators), and drives a task through its lifecycle step by step.
abstract contract Fixture is Test {
    bytes32 internal constant MODEL = keccak256("gemma3:270m");
    bytes32 internal constant OTHER_MODEL = keccak256("llama3:8b");
    uint256 internal constant MIN_STAKE = 100e18;
    uint256 internal constant UNBONDING = 7 days;
    uint256 internal constant FUNDS = 10_000e18;
    uint256 internal constant NODE_COUNT = 4;
    uint256 internal constant VALIDATOR_COUNT = 3;
    uint32 internal constant PHASE = 1 hours;

    DevnetToken internal token;
    StakeRegistry internal registry;
    TaskMarket internal market;
    address internal treasury;
    address internal requester;
    address internal stranger;
    address[] internal nodes;
    address[] internal validators;

    bytes internal constant WORKFLOW = bytes('{"steps":[{"id":"gen","op":"generate"}],"version":1}');
    bytes internal constant INPUT = bytes('{"topic":"tides"}');

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        treasury = makeAddr("treasury");
        requester = makeAddr("requester");
        stranger = makeAddr("stranger");
        DeployLib.Params memory p = DeployLib.defaults(address(this));
        p.minNodeStake = MIN_STAKE;
        p.minValidatorStake = MIN_STAKE;
        p.unbondingDelay = UNBONDING;
        p.treasury = treasury;
        DeployLib.Deployment memory d = DeployLib.deploy(p);
        token = DevnetToken(address(d.token));
        registry = d.registry;
        market = d.market;

        _fund(requester);
        _fund(stranger);
        for (uint256 i; i < NODE_COUNT; ++i) {
            address n = makeAddr(string.concat("node", vm.toString(i)));
            _fund(n);
            _registerNode(n, MIN_STAKE);
            nodes.push(n);
        }
        for (uint256 i; i < VALIDATOR_COUNT; ++i) {
            address v = makeAddr(string.concat("validator", vm.toString(i)));
            _fund(v);
            _registerValidator(v, MIN_STAKE * (i + 1));
            validators.push(v);
        }
    }

    // ----------------------------------------------------------------- actors

    function _fund(address who) internal {
        token.mint(who, FUNDS);
        vm.prank(who);
        token.approve(address(registry), type(uint256).max);
        vm.prank(who);
        token.approve(address(market), type(uint256).max);
    }

    function _models() internal pure returns (bytes32[] memory models) {
        models = new bytes32[](1);
        models[0] = MODEL;
    }

    function _registerNode(address who, uint256 stake) internal {
        vm.prank(who);
        registry.register(IStakeRegistry.Role.Node, stake, _models(), bytes("/ip4/127.0.0.1/tcp/4001"));
    }

    function _registerValidator(address who, uint256 stake) internal {
        vm.prank(who);
        registry.register(
            IStakeRegistry.Role.Validator, stake, new bytes32[](0), bytes("/ip4/127.0.0.1/tcp/4101")
        );
    }

    // ----------------------------------------------------------------- task helpers

    function _params() internal pure returns (ITaskMarket.JobParams memory) {
        return ITaskMarket.JobParams({
            model: MODEL,
            bountyPerTask: 3e18,
            k: 3,
            m: 3,
            threshold: 50,
            tolerance: 20,
            validatorShareBps: 2000,
            commitDuration: PHASE,
            revealDuration: PHASE,
            scoreCommitDuration: PHASE,
            scoreRevealDuration: PHASE
        });
    }

    function _post(ITaskMarket.JobParams memory p) internal returns (uint256 taskId) {
        vm.prank(requester);
        (, taskId) = market.postTask(p, WORKFLOW, INPUT);
    }

    function _post() internal returns (uint256) {
        return _post(_params());
    }

    function _digest(uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encode("result", i));
    }

    function _salt(uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", i));
    }

    function _commit(uint256 taskId, uint256 nodeIndex) internal returns (uint256 slot) {
        address n = nodes[nodeIndex];
        bytes32 c = market.resultCommitment(taskId, n, _digest(nodeIndex), _salt(nodeIndex));
        vm.prank(n);
        slot = market.commitResult(taskId, c);
    }

    function _reveal(uint256 taskId, uint256 slot) internal {
        (address n,) = market.submission(taskId, slot);
        uint256 nodeIndex = _nodeIndex(n);
        vm.prank(n);
        market.revealResult(taskId, slot, _digest(nodeIndex), _salt(nodeIndex));
    }

    function _nodeIndex(address n) internal view returns (uint256) {
        for (uint256 i; i < nodes.length; ++i) {
            if (nodes[i] == n) return i;
        }
        revert("not a node");
    }

    /// @dev Post, k commits by nodes 0..k-1, all reveals: the committee is drawn by the last reveal.
    function _toScoring() internal returns (uint256 taskId) {
        taskId = _post();
        for (uint256 i; i < 3; ++i) {
            _commit(taskId, i);
        }
        for (uint256 i; i < 3; ++i) {
            _reveal(taskId, i);
        }
    }

    function _committee(uint256 taskId) internal view returns (address[] memory seats) {
        uint256 size = market.task(taskId).committeeSize;
        seats = new address[](size);
        for (uint256 s; s < size; ++s) {
            (seats[s],,,,) = market.seat(taskId, s);
        }
    }

    function _scores3(uint8 a, uint8 b, uint8 c) internal pure returns (uint8[] memory s) {
        s = new uint8[](3);
        s[0] = a;
        s[1] = b;
        s[2] = c;
    }

    function _commitScores(uint256 taskId, uint256 seatIndex, uint8[] memory scores) internal {
        (address v,,,,) = market.seat(taskId, seatIndex);
        bytes32 c = market.scoreCommitment(taskId, v, scores, _salt(100 + seatIndex));
        vm.prank(v);
        market.commitScores(taskId, seatIndex, c);
    }

    function _revealScores(uint256 taskId, uint256 seatIndex, uint8[] memory scores) internal {
        (address v,,,,) = market.seat(taskId, seatIndex);
        vm.prank(v);
        market.revealScores(taskId, seatIndex, scores, _salt(100 + seatIndex));
    }

    /// @dev Sum of what the two contracts owe: open escrows are checked by the invariant suite.
    function _held() internal view returns (uint256) {
        return token.balanceOf(address(market)) + token.balanceOf(address(registry));
    }
}
