// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../utils/Vm.sol";
import {DevnetToken} from "../../../contracts/DevnetToken.sol";
import {StakeRegistry} from "../../../contracts/StakeRegistry.sol";
import {TaskMarket} from "../../../contracts/TaskMarket.sol";
import {ITaskMarket} from "../../../contracts/interfaces/ITaskMarket.sol";

/// @notice Drives the market with bounded random actions of the fixture's actors, keeping ghost records:
/// the post time and lifetime of every task and the task's state when it first became terminal.
contract MarketHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    DevnetToken internal immutable token;
    StakeRegistry internal immutable registry;
    TaskMarket internal immutable market;
    address internal immutable requester;
    address[] internal nodes;
    address[] internal validators;

    uint256[] public taskIds;
    mapping(uint256 taskId => uint256) public postedAt;
    mapping(uint256 taskId => uint256) public lifetime;
    mapping(uint256 taskId => bytes32) public terminalState;
    mapping(bytes4 selector => uint256) public calls;

    constructor(
        DevnetToken token_,
        StakeRegistry registry_,
        TaskMarket market_,
        address requester_,
        address[] memory nodes_,
        address[] memory validators_
    ) {
        token = token_;
        registry = registry_;
        market = market_;
        requester = requester_;
        nodes = nodes_;
        validators = validators_;
    }

    // ----------------------------------------------------------------- ghost helpers

    function taskCount() external view returns (uint256) {
        return taskIds.length;
    }

    function actors() external view returns (address[] memory all) {
        all = new address[](nodes.length + validators.length + 1);
        uint256 n;
        for (uint256 i; i < nodes.length; ++i) {
            all[n++] = nodes[i];
        }
        for (uint256 i; i < validators.length; ++i) {
            all[n++] = validators[i];
        }
        all[n] = requester;
    }

    function stateHash(uint256 taskId) public view returns (bytes32) {
        return keccak256(abi.encode(market.task(taskId)));
    }

    function isTerminal(uint256 taskId) public view returns (bool) {
        ITaskMarket.Phase p = market.task(taskId).phase;
        return p == ITaskMarket.Phase.Finalized || p == ITaskMarket.Phase.Refunded;
    }

    /// @dev Record the state of every task the first time it is seen terminal.
    function _record() internal {
        for (uint256 i; i < taskIds.length; ++i) {
            uint256 id = taskIds[i];
            if (terminalState[id] == bytes32(0) && isTerminal(id)) terminalState[id] = stateHash(id);
        }
    }

    function _task(uint256 seed) internal view returns (uint256) {
        return taskIds[seed % taskIds.length];
    }

    function _digest(uint256 taskId, address node) internal pure returns (bytes32) {
        return keccak256(abi.encode("digest", taskId, node));
    }

    function _salt(uint256 taskId, address who) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", taskId, who));
    }

    function _scores(uint256 taskId, address validator, uint256 n) internal pure returns (uint8[] memory s) {
        s = new uint8[](n);
        for (uint256 i; i < n; ++i) {
            s[i] = uint8(uint256(keccak256(abi.encode(taskId, validator, i))) % 101);
        }
    }

    // ----------------------------------------------------------------- actions

    function post(uint256 seed) external {
        calls[this.post.selector]++;
        if (taskIds.length >= 24) return;
        uint32 d = uint32(30 + seed % 300);
        ITaskMarket.JobParams memory p = ITaskMarket.JobParams({
            model: keccak256("gemma3:270m"),
            bountyPerTask: uint96(1e15 + (seed % 1e18)),
            k: uint8(1 + (seed >> 8) % 3),
            m: uint8(1 + (seed >> 16) % 3),
            threshold: uint8((seed >> 24) % 101),
            tolerance: uint8((seed >> 32) % 101),
            validatorShareBps: uint16((seed >> 40) % 10_001),
            commitDuration: d,
            revealDuration: d,
            scoreCommitDuration: d,
            scoreRevealDuration: d
        });
        vm.prank(requester);
        (, uint256 taskId) = market.postTask(p, bytes("{}"), abi.encode(seed));
        taskIds.push(taskId);
        postedAt[taskId] = block.timestamp;
        lifetime[taskId] = 4 * uint256(d);
    }

    function commit(uint256 taskSeed, uint256 nodeSeed) external {
        calls[this.commit.selector]++;
        if (taskIds.length == 0) return;
        uint256 taskId = _task(taskSeed);
        address node = nodes[nodeSeed % nodes.length];
        bytes32 c = market.resultCommitment(taskId, node, _digest(taskId, node), _salt(taskId, node));
        vm.prank(node);
        try market.commitResult(taskId, c) {} catch {}
        _record();
    }

    function reveal(uint256 taskSeed, uint256 slotSeed) external {
        calls[this.reveal.selector]++;
        if (taskIds.length == 0) return;
        uint256 taskId = _task(taskSeed);
        uint256 commits = market.task(taskId).commitCount;
        if (commits == 0) return;
        uint256 slot = slotSeed % commits;
        (address node,) = market.submission(taskId, slot);
        vm.prank(node);
        try market.revealResult(taskId, slot, _digest(taskId, node), _salt(taskId, node)) {} catch {}
        _record();
    }

    function draw(uint256 taskSeed) external {
        calls[this.draw.selector]++;
        if (taskIds.length == 0) return;
        try market.drawCommittee(_task(taskSeed)) {} catch {}
        _record();
    }

    function commitScores(uint256 taskSeed, uint256 seatSeed) external {
        calls[this.commitScores.selector]++;
        if (taskIds.length == 0) return;
        uint256 taskId = _task(taskSeed);
        ITaskMarket.TaskView memory t = market.task(taskId);
        if (t.committeeSize == 0) return;
        uint256 seatIndex = seatSeed % t.committeeSize;
        (address v,,,,) = market.seat(taskId, seatIndex);
        bytes32 c = market.scoreCommitment(taskId, v, _scores(taskId, v, t.revealCount), _salt(taskId, v));
        vm.prank(v);
        try market.commitScores(taskId, seatIndex, c) {} catch {}
        _record();
    }

    function revealScores(uint256 taskSeed, uint256 seatSeed) external {
        calls[this.revealScores.selector]++;
        if (taskIds.length == 0) return;
        uint256 taskId = _task(taskSeed);
        ITaskMarket.TaskView memory t = market.task(taskId);
        if (t.committeeSize == 0) return;
        uint256 seatIndex = seatSeed % t.committeeSize;
        (address v,,,,) = market.seat(taskId, seatIndex);
        vm.prank(v);
        try market.revealScores(taskId, seatIndex, _scores(taskId, v, t.revealCount), _salt(taskId, v)) {}
            catch {}
        _record();
    }

    function finalize(uint256 taskSeed) external {
        calls[this.finalize.selector]++;
        if (taskIds.length == 0) return;
        try market.finalize(_task(taskSeed)) {} catch {}
        _record();
    }

    function cancel(uint256 taskSeed) external {
        calls[this.cancel.selector]++;
        if (taskIds.length == 0) return;
        vm.prank(requester);
        try market.cancel(_task(taskSeed)) {} catch {}
        _record();
    }

    function claim(uint256 actorSeed) external {
        calls[this.claim.selector]++;
        address[] memory all = this.actors();
        address who = all[actorSeed % all.length];
        vm.prank(who);
        try market.claim() {} catch {}
    }

    function addStake(uint256 actorSeed, uint256 amount) external {
        calls[this.addStake.selector]++;
        address[] memory all = this.actors();
        address who = all[actorSeed % (all.length - 1)];
        vm.prank(who);
        try registry.addStake(1 + amount % 50e18) {} catch {}
    }

    function sweep() external {
        calls[this.sweep.selector]++;
        try registry.sweepTreasury() {} catch {}
    }

    /// @notice Take the next natural step of a task (the honest path), so deep states are reached often.
    function advance(uint256 taskSeed) external {
        calls[this.advance.selector]++;
        if (taskIds.length == 0) return;
        uint256 taskId = _task(taskSeed);
        (ITaskMarket.Phase phase,) = market.phaseOf(taskId);
        ITaskMarket.TaskView memory t = market.task(taskId);
        if (phase == ITaskMarket.Phase.Committing) {
            for (uint256 i; i < nodes.length; ++i) {
                address node = nodes[i];
                bytes32 c = market.resultCommitment(taskId, node, _digest(taskId, node), _salt(taskId, node));
                vm.prank(node);
                try market.commitResult(taskId, c) {
                    break;
                } catch {}
            }
        } else if (phase == ITaskMarket.Phase.Revealing) {
            bool done;
            for (uint256 slot; slot < t.commitCount && !done; ++slot) {
                if (t.revealedMask & (1 << slot) != 0) continue;
                (address node,) = market.submission(taskId, slot);
                vm.prank(node);
                try market.revealResult(taskId, slot, _digest(taskId, node), _salt(taskId, node)) {
                    done = true;
                } catch {}
            }
            if (!done) try market.drawCommittee(taskId) {} catch {}
        } else if (phase == ITaskMarket.Phase.ScoreCommitting) {
            for (uint256 s; s < t.committeeSize; ++s) {
                (address v,, bool committed,,) = market.seat(taskId, s);
                if (committed) continue;
                bytes32 c =
                    market.scoreCommitment(taskId, v, _scores(taskId, v, t.revealCount), _salt(taskId, v));
                vm.prank(v);
                try market.commitScores(taskId, s, c) {} catch {}
                break;
            }
        } else if (phase == ITaskMarket.Phase.ScoreRevealing) {
            bool done;
            for (uint256 s; s < t.committeeSize && !done; ++s) {
                (address v,, bool committed, bool revealed,) = market.seat(taskId, s);
                if (!committed || revealed) continue;
                vm.prank(v);
                try market.revealScores(taskId, s, _scores(taskId, v, t.revealCount), _salt(taskId, v)) {
                    done = true;
                } catch {}
            }
            if (!done) try market.finalize(taskId) {} catch {}
        }
        _record();
    }

    function warp(uint256 secondsSeed) external {
        calls[this.warp.selector]++;
        vm.warp(block.timestamp + 1 + secondsSeed % 400);
        vm.roll(block.number + 1);
    }
}
