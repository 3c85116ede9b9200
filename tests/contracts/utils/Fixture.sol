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
/// (4 nodes serving MODEL, 3 validators staking 100, 200, 300), and drives a batch through its lifecycle step by
/// step. Node i reveals `_digests(i, rows)` with `_salt(i)`; validators reveal vectors the test chooses (kept
/// per batch and seat so `_settle` can hand them back).
abstract contract Fixture is Test {
    bytes32 internal constant MODEL = keccak256("gemma3:270m");
    bytes32 internal constant OTHER_MODEL = keccak256("llama3:8b");
    uint256 internal constant MIN_STAKE = 100e18;
    uint256 internal constant SLASH = MIN_STAKE / 10;
    uint256 internal constant UNBONDING = 7 days;
    uint256 internal constant FUNDS = 10_000e18;
    uint256 internal constant NODE_COUNT = 4;
    uint256 internal constant VALIDATOR_COUNT = 3;
    uint32 internal constant PHASE = 1 hours;
    uint96 internal constant BOUNTY = 3e18;

    DevnetToken internal token;
    StakeRegistry internal registry;
    TaskMarket internal market;
    address internal treasury;
    address internal requester;
    address internal stranger;
    address[] internal nodes;
    address[] internal validators;

    /// @dev Revealed score vectors by batch and committee seat (what a settler collects from ScoresRevealed).
    mapping(uint256 batchId => mapping(uint256 seat => bytes)) internal revealedScores;

    bytes internal constant WORKFLOW = bytes('{"steps":[{"id":"gen","op":"generate"}],"version":1}');

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        vm.roll(100);
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
            _registerValidator(v, _validatorStake(i));
            validators.push(v);
        }
    }

    // ----------------------------------------------------------------- actors

    /// @dev Stake of fixture validator i (100, 200, 300 tokens unless a suite overrides it).
    function _validatorStake(uint256 i) internal view virtual returns (uint256) {
        return MIN_STAKE * (i + 1);
    }

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

    // ----------------------------------------------------------------- batch helpers

    function _params() internal pure returns (ITaskMarket.JobParams memory) {
        return ITaskMarket.JobParams({
            model: MODEL,
            bountyPerTask: BOUNTY,
            batchSize: 1,
            k: 3,
            m: 3,
            threshold: 50,
            tolerance: 20,
            junkFloor: 10,
            validatorShareBps: 2000,
            commitDuration: PHASE,
            revealDuration: PHASE,
            scoreCommitDuration: PHASE,
            scoreRevealDuration: PHASE
        });
    }

    function _rows(uint256 n) internal pure returns (bytes[] memory rows) {
        rows = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            rows[i] = abi.encodePacked('{"topic":"tides","i":', bytes32(i), "}");
        }
    }

    /// @dev Post a job of `n` rows; returns its first batch id.
    function _postRows(ITaskMarket.JobParams memory p, uint256 n) internal returns (uint256 firstBatchId) {
        vm.prank(requester);
        (, firstBatchId) = market.postJob(p, WORKFLOW, _rows(n));
    }

    /// @dev Post one batch of `rows` rows (batchSize = rows).
    function _postBatch(uint256 rows) internal returns (uint256 batchId) {
        ITaskMarket.JobParams memory p = _params();
        // forge-lint: disable-next-line(unsafe-typecast)
        p.batchSize = uint16(rows);
        return _postRows(p, rows);
    }

    function _post() internal returns (uint256) {
        return _postBatch(1);
    }

    function _digests(uint256 nodeIndex, uint256 rows) internal pure returns (bytes32[] memory d) {
        d = new bytes32[](rows);
        for (uint256 r; r < rows; ++r) {
            d[r] = keccak256(abi.encode("result", nodeIndex, r));
        }
    }

    function _salt(uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", i));
    }

    function _rowsOf(uint256 batchId) internal view returns (uint256) {
        return market.batch(batchId).rows;
    }

    function _commit(uint256 batchId, uint256 nodeIndex) internal returns (uint256 seat) {
        address n = nodes[nodeIndex];
        bytes32 c = market.resultCommitment(batchId, n, _digests(nodeIndex, _rowsOf(batchId)), _salt(nodeIndex));
        vm.prank(n);
        seat = market.commitResult(batchId, c);
    }

    function _reveal(uint256 batchId, uint256 seat) internal {
        (address n,) = market.nodeSeat(batchId, seat);
        uint256 nodeIndex = _nodeIndex(n);
        bytes32[] memory digests = _digests(nodeIndex, _rowsOf(batchId));
        vm.prank(n);
        market.revealResult(batchId, seat, digests, _salt(nodeIndex));
    }

    function _nodeIndex(address n) internal view returns (uint256) {
        for (uint256 i; i < nodes.length; ++i) {
            if (nodes[i] == n) return i;
        }
        revert("not a node");
    }

    /// @dev Nodes 0..k-1 commit and all reveal: the last reveal arms the seed (phase Drawing).
    function _toDrawing(uint256 batchId) internal {
        uint256 k = market.job(market.batch(batchId).jobId).params.k;
        for (uint256 i; i < k; ++i) {
            _commit(batchId, i);
        }
        for (uint256 i; i < k; ++i) {
            _reveal(batchId, i);
        }
    }

    /// @dev Mine past the armed seed block and draw.
    function _draw(uint256 batchId) internal {
        uint256 seedBlock = market.batch(batchId).seedBlock;
        if (block.number <= seedBlock) vm.roll(seedBlock + 1);
        vm.assertTrue(market.drawCommittee(batchId), "drawn");
    }

    function _toScoring(uint256 batchId) internal {
        _toDrawing(batchId);
        _draw(batchId);
    }

    /// @dev Post a one-row batch and carry it to ScoreCommitting.
    function _toScoring() internal returns (uint256 batchId) {
        batchId = _post();
        _toScoring(batchId);
    }

    function _committee(uint256 batchId) internal view returns (address[] memory seats) {
        uint256 size = market.batch(batchId).committeeSize;
        seats = new address[](size);
        for (uint256 s; s < size; ++s) {
            (seats[s],,,,) = market.committeeSeat(batchId, s);
        }
    }

    /// @dev A vector giving `score` to every cell of the batch.
    function _flat(uint256 batchId, uint8 score) internal view returns (bytes memory v) {
        ITaskMarket.BatchView memory b = market.batch(batchId);
        v = new bytes(uint256(b.commitCount) * b.rows);
        for (uint256 i; i < v.length; ++i) {
            v[i] = bytes1(score);
        }
    }

    function _vec3(uint8 a, uint8 b, uint8 c) internal pure returns (bytes memory v) {
        v = new bytes(3);
        v[0] = bytes1(a);
        v[1] = bytes1(b);
        v[2] = bytes1(c);
    }

    function _commitScores(uint256 batchId, uint256 seat, bytes memory scores) internal {
        (address v,,,,) = market.committeeSeat(batchId, seat);
        bytes32 c = market.scoreCommitment(batchId, v, scores, _salt(100 + seat));
        vm.prank(v);
        market.commitScores(batchId, seat, c);
    }

    function _revealScores(uint256 batchId, uint256 seat, bytes memory scores) internal {
        (address v,,,,) = market.committeeSeat(batchId, seat);
        vm.prank(v);
        market.revealScores(batchId, seat, scores, _salt(100 + seat));
        revealedScores[batchId][seat] = scores;
    }

    /// @dev Every seat commits and reveals `scores[seat]`.
    function _score(uint256 batchId, bytes[] memory scores) internal {
        for (uint256 s; s < scores.length; ++s) {
            _commitScores(batchId, s, scores[s]);
        }
        for (uint256 s; s < scores.length; ++s) {
            _revealScores(batchId, s, scores[s]);
        }
    }

    function _same3(bytes memory v) internal pure returns (bytes[] memory out) {
        out = new bytes[](3);
        out[0] = v;
        out[1] = v;
        out[2] = v;
    }

    /// @dev The vectors revealed in the current round, in seat order (what `settle` takes).
    function _vectors(uint256 batchId) internal view returns (bytes[] memory out) {
        ITaskMarket.BatchView memory b = market.batch(batchId);
        uint256 n = 0;
        for (uint256 s; s < b.committeeSize; ++s) {
            if (b.scoreRevealMask & (1 << s) != 0) ++n;
        }
        out = new bytes[](n);
        uint256 i = 0;
        for (uint256 s; s < b.committeeSize; ++s) {
            if (b.scoreRevealMask & (1 << s) != 0) out[i++] = revealedScores[batchId][s];
        }
    }

    function _settle(uint256 batchId) internal {
        market.settle(batchId, _vectors(batchId));
    }

    /// @dev A one-row batch through its whole scored lifecycle with scores (a, b, c) from every validator.
    function _settled(uint8 a, uint8 b, uint8 c) internal returns (uint256 batchId) {
        batchId = _toScoring();
        _score(batchId, _same3(_vec3(a, b, c)));
        _settle(batchId);
    }

    function _phase(uint256 batchId) internal view returns (ITaskMarket.Phase phase) {
        (phase,) = market.phaseOf(batchId);
    }

    function _deadline(uint256 batchId) internal view returns (uint256 deadline) {
        (, deadline) = market.phaseOf(batchId);
    }

    function _stake(address who) internal view returns (uint256) {
        return registry.participant(who).stake;
    }

    function _held() internal view returns (uint256) {
        return token.balanceOf(address(market)) + token.balanceOf(address(registry));
    }
}
