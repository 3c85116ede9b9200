// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../utils/Vm.sol";
import {DevnetToken} from "../../../contracts/DevnetToken.sol";
import {StakeRegistry} from "../../../contracts/StakeRegistry.sol";
import {TaskMarket} from "../../../contracts/TaskMarket.sol";
import {IStakeRegistry} from "../../../contracts/interfaces/IStakeRegistry.sol";
import {ITaskMarket} from "../../../contracts/interfaces/ITaskMarket.sol";

/// @notice Drives every state-changing entry point of TaskMarket and StakeRegistry with random actors, right and
/// wrong senders, right and wrong salts, out-of-range scores and out-of-order reveals, and keeps ghost sums from
/// token balance changes alone (never from the contracts' own accounting views):
/// `paidIn` / `claimedOut` (market), `stakedIn` / `stakeOut` (registry), `escrow` (bounties of batches not yet
/// terminal, released when the handler sees a batch turn terminal). Every call first runs the next action not
/// exercised yet in this run (`_cover`), so a run of depth >= ACTIONS exercises all of them.
contract MarketHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 public constant ACTIONS = 20;
    uint256 internal constant A_POST = 0;
    uint256 internal constant A_CANCEL = 1;
    uint256 internal constant A_COMMIT = 2;
    uint256 internal constant A_REVEAL = 3;
    uint256 internal constant A_DRAW = 4;
    uint256 internal constant A_COMMIT_SCORES = 5;
    uint256 internal constant A_REVEAL_SCORES = 6;
    uint256 internal constant A_SETTLE = 7;
    uint256 internal constant A_CLAIM = 8;
    uint256 internal constant A_WARP = 9;
    uint256 internal constant A_REGISTER = 10;
    uint256 internal constant A_ADD_STAKE = 11;
    uint256 internal constant A_UNBOND = 12;
    uint256 internal constant A_WITHDRAW = 13;
    uint256 internal constant A_SET_MODELS = 14;
    uint256 internal constant A_SET_P2P = 15;
    uint256 internal constant A_SWEEP = 16;
    uint256 internal constant A_INTERN = 17;
    uint256 internal constant A_OPEN_ACCOUNT = 18;
    uint256 internal constant A_ADVANCE = 19;

    bytes32 internal constant MODEL = keccak256("gemma3:270m");
    uint32 internal constant PHASE = 1 hours;

    DevnetToken internal immutable token;
    StakeRegistry internal immutable registry;
    TaskMarket internal immutable market;
    address internal immutable requester;

    /// @dev Every address that ever acts (fixture actors, newcomers, requester, stranger).
    address[] internal everyone;
    address[] internal newcomers;

    uint256[] public batchIds;
    mapping(uint256 batchId => uint256) public bountyOf;
    mapping(uint256 batchId => bool) public terminal;
    mapping(uint256 batchId => bytes32) public terminalState;
    /// @dev Score vectors committed per (batch, round, seat), and whether revealed.
    mapping(uint256 batchId => mapping(uint256 round => mapping(uint256 seat => bytes))) internal vectors;

    uint256[ACTIONS] public calls;
    uint256 public paidIn;
    uint256 public claimedOut;
    uint256 public stakedIn;
    uint256 public stakeOut;
    uint256 public escrow;
    /// @dev Batches seen turning Settled / Refunded during the run (before `drain`): evidence the campaign
    /// reaches settlement, logged by the suite.
    uint256 public settledSeen;
    uint256 public refundedSeen;
    bool internal draining;

    constructor(
        DevnetToken token_,
        StakeRegistry registry_,
        TaskMarket market_,
        address requester_,
        address stranger_,
        address[] memory nodes_,
        address[] memory validators_,
        address[] memory newcomers_
    ) {
        token = token_;
        registry = registry_;
        market = market_;
        requester = requester_;
        for (uint256 i; i < nodes_.length; ++i) {
            everyone.push(nodes_[i]);
        }
        for (uint256 i; i < validators_.length; ++i) {
            everyone.push(validators_[i]);
        }
        for (uint256 i; i < newcomers_.length; ++i) {
            everyone.push(newcomers_[i]);
            newcomers.push(newcomers_[i]);
        }
        everyone.push(requester_);
        everyone.push(stranger_);
        stakedIn = token_.balanceOf(address(registry_));
        paidIn = token_.balanceOf(address(market_));
    }

    // ----------------------------------------------------------------- views for the invariant suite

    function batchCount() external view returns (uint256) {
        return batchIds.length;
    }

    function actors() external view returns (address[] memory) {
        return everyone;
    }

    function stateHash(uint256 batchId) public view returns (bytes32) {
        return keccak256(abi.encode(market.batch(batchId)));
    }

    function callCount(uint256 action) external view returns (uint256) {
        return calls[action];
    }

    // ----------------------------------------------------------------- actions (fuzzer entry points)

    function post(uint256 seed) external {
        _step(A_POST, seed);
    }

    function cancel(uint256 seed) external {
        _step(A_CANCEL, seed);
    }

    function commit(uint256 seed) external {
        _step(A_COMMIT, seed);
    }

    function reveal(uint256 seed) external {
        _step(A_REVEAL, seed);
    }

    function draw(uint256 seed) external {
        _step(A_DRAW, seed);
    }

    function commitScores(uint256 seed) external {
        _step(A_COMMIT_SCORES, seed);
    }

    function revealScores(uint256 seed) external {
        _step(A_REVEAL_SCORES, seed);
    }

    function settle(uint256 seed) external {
        _step(A_SETTLE, seed);
    }

    function claim(uint256 seed) external {
        _step(A_CLAIM, seed);
    }

    function warp(uint256 seed) external {
        _step(A_WARP, seed);
    }

    function register(uint256 seed) external {
        _step(A_REGISTER, seed);
    }

    function addStake(uint256 seed) external {
        _step(A_ADD_STAKE, seed);
    }

    function beginUnbonding(uint256 seed) external {
        _step(A_UNBOND, seed);
    }

    function withdraw(uint256 seed) external {
        _step(A_WITHDRAW, seed);
    }

    function setModels(uint256 seed) external {
        _step(A_SET_MODELS, seed);
    }

    function setP2pAddress(uint256 seed) external {
        _step(A_SET_P2P, seed);
    }

    function sweepTreasury(uint256 seed) external {
        _step(A_SWEEP, seed);
    }

    function internModel(uint256 seed) external {
        _step(A_INTERN, seed);
    }

    function openAccount(uint256 seed) external {
        _step(A_OPEN_ACCOUNT, seed);
    }

    /// @notice The honest next step of a random batch (so batches reach scoring and settlement).
    function advance(uint256 seed) external {
        _step(A_ADVANCE, seed);
    }

    /// @notice Drive every open batch to a terminal state (used by `afterInvariant`): advance past every deadline,
    /// draw, score honestly where a committee sits, settle; repeat. Returns the number of batches still open.
    function drain() external returns (uint256 open) {
        draining = true;
        for (uint256 pass; pass < 10; ++pass) {
            open = 0;
            for (uint256 i; i < batchIds.length; ++i) {
                uint256 id = batchIds[i];
                (ITaskMarket.Phase phase,) = market.phaseOf(id);
                if (phase == ITaskMarket.Phase.Settled || phase == ITaskMarket.Phase.Refunded) continue;
                ++open;
                if (phase == ITaskMarket.Phase.Drawing) {
                    _tryDraw(id);
                    _tryDraw(id);
                }
                _settleWithRecordedVectors(id);
            }
            _observe();
            if (open == 0) return 0;
            vm.warp(block.timestamp + 3 * PHASE + 1);
            vm.roll(block.number + 3);
        }
        open = 0;
        for (uint256 i; i < batchIds.length; ++i) {
            if (!terminal[batchIds[i]]) ++open;
        }
    }

    // ----------------------------------------------------------------- dispatch

    function _step(uint256 action, uint256 seed) internal {
        // The fuzzer favours small and edge values; every action derives its choices from a hash of them.
        seed = uint256(keccak256(abi.encode(seed, action)));
        _cover(seed);
        _run(action, seed);
        _observe();
    }

    /// @dev Run the first action not exercised yet in this run, if any.
    function _cover(uint256 seed) internal {
        for (uint256 a; a < ACTIONS; ++a) {
            if (calls[a] == 0) {
                _run(a, uint256(keccak256(abi.encode(seed, a))));
                return;
            }
        }
    }

    function _run(uint256 action, uint256 seed) internal {
        ++calls[action];
        if (action == A_POST) _post(seed);
        else if (action == A_CANCEL) _cancel(seed);
        else if (action == A_COMMIT) _commit(seed);
        else if (action == A_REVEAL) _reveal(seed);
        else if (action == A_DRAW) _draw(seed);
        else if (action == A_COMMIT_SCORES) _commitScores(seed);
        else if (action == A_REVEAL_SCORES) _revealScores(seed);
        else if (action == A_SETTLE) _settle(seed);
        else if (action == A_CLAIM) _claim(seed);
        else if (action == A_WARP) _warp(seed);
        else if (action == A_REGISTER) _register(seed);
        else if (action == A_ADD_STAKE) _addStake(seed);
        else if (action == A_UNBOND) _unbond(seed);
        else if (action == A_WITHDRAW) _withdraw(seed);
        else if (action == A_SET_MODELS) _setModels(seed);
        else if (action == A_SET_P2P) _setP2p(seed);
        else if (action == A_SWEEP) _sweep();
        else if (action == A_INTERN) _intern(seed);
        else if (action == A_OPEN_ACCOUNT) _openAccount(seed);
        else _advance(seed);
    }

    /// @dev Release the escrow of batches that turned terminal and freeze their state.
    function _observe() internal {
        for (uint256 i; i < batchIds.length; ++i) {
            uint256 id = batchIds[i];
            if (terminal[id]) continue;
            ITaskMarket.Phase phase = market.batch(id).phase;
            if (phase == ITaskMarket.Phase.Settled || phase == ITaskMarket.Phase.Refunded) {
                terminal[id] = true;
                terminalState[id] = stateHash(id);
                if (!draining) {
                    if (phase == ITaskMarket.Phase.Settled) ++settledSeen;
                    else ++refundedSeen;
                }
                escrow -= bountyOf[id];
            }
        }
    }

    // ----------------------------------------------------------------- helpers

    function _pick(uint256 seed, uint256 n) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, "pick"))) % n;
    }

    function _actor(uint256 seed) internal view returns (address) {
        return everyone[_pick(seed, everyone.length)];
    }

    function _batch(uint256 seed) internal view returns (uint256) {
        // Mostly a posted batch; sometimes one that does not exist.
        if (batchIds.length == 0 || seed % 16 == 0) return 1_000 + seed % 7;
        return batchIds[_pick(seed, batchIds.length)];
    }

    function _salt(uint256 batchId, address who) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", batchId, who));
    }

    function _digests(uint256 batchId, address node, uint256 rows)
        internal
        pure
        returns (bytes32[] memory d)
    {
        d = new bytes32[](rows);
        for (uint256 r; r < rows; ++r) {
            d[r] = keccak256(abi.encode("digest", batchId, node, r));
        }
    }

    // ----------------------------------------------------------------- market actions

    function _post(uint256 seed) internal {
        uint256 n = 1 + seed % 5;
        bytes[] memory rows = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            rows[i] = abi.encode("row", seed, i);
        }
        ITaskMarket.JobParams memory p = ITaskMarket.JobParams({
            model: MODEL,
            bountyPerTask: uint96(1e15 + (seed >> 8) % 1e18),
            batchSize: uint16(1 + (seed >> 16) % 3),
            k: uint8((seed >> 24) % 4), // 0 is invalid on purpose
            m: uint8(1 + (seed >> 32) % 3),
            threshold: uint8((seed >> 40) % 101),
            tolerance: uint8((seed >> 48) % 101),
            junkFloor: 0,
            validatorShareBps: uint16((seed >> 56) % 10_001),
            commitDuration: PHASE,
            revealDuration: PHASE,
            scoreCommitDuration: PHASE,
            scoreRevealDuration: PHASE
        });
        p.junkFloor = uint8((seed >> 64) % (uint256(p.threshold) + 1));
        uint256 before = token.balanceOf(address(market));
        vm.prank(requester);
        try market.postJob(p, abi.encode("workflow"), rows) returns (uint256, uint256 first) {
            uint256 batches = (n + p.batchSize - 1) / p.batchSize;
            for (uint256 i; i < batches; ++i) {
                uint256 id = first + i;
                batchIds.push(id);
                uint256 rowsIn = market.batch(id).rows;
                bountyOf[id] = uint256(p.bountyPerTask) * rowsIn;
                escrow += bountyOf[id];
            }
        } catch {}
        paidIn += token.balanceOf(address(market)) - before;
    }

    function _cancel(uint256 seed) internal {
        uint256 id = _batch(seed);
        address sender = seed % 3 == 0 ? _actor(seed) : requester;
        vm.prank(sender);
        try market.cancel(id) {} catch {}
    }

    function _commit(uint256 seed) internal {
        uint256 id = _batch(seed);
        address node = _actor(seed >> 8); // nodes, validators, strangers alike
        uint256 rows = market.batch(id).rows;
        bytes32 c = market.resultCommitment(id, node, _digests(id, node, rows), _salt(id, node));
        vm.prank(node);
        try market.commitResult(id, c) {} catch {}
    }

    function _reveal(uint256 seed) internal {
        uint256 id = _batch(seed);
        ITaskMarket.BatchView memory b = market.batch(id);
        uint256 seat = (seed >> 8) % 4; // any order, sometimes past the taken seats
        (address node,) = market.nodeSeat(id, seat);
        if (node == address(0)) node = _actor(seed >> 16);
        uint256 mode = (seed >> 24) % 8; // 0: wrong salt, 1: wrong length, 2: wrong sender, else right
        uint256 rows = mode == 1 ? b.rows + 1 : b.rows;
        bytes32 salt = mode == 0 ? bytes32(seed) : _salt(id, node);
        address sender = mode == 2 ? _actor(seed >> 32) : node;
        bytes32[] memory digests = _digests(id, node, rows);
        vm.prank(sender);
        try market.revealResult(id, seat, digests, salt) {} catch {}
    }

    function _draw(uint256 seed) internal {
        vm.roll(block.number + seed % 4);
        _tryDraw(_batch(seed));
    }

    function _tryDraw(uint256 id) internal {
        try market.drawCommittee(id) {} catch {}
        vm.roll(block.number + 3);
    }

    function _commitScores(uint256 seed) internal {
        uint256 id = _batch(seed);
        uint256 seat = (seed >> 8) % 4;
        (address v,,,,) = market.committeeSeat(id, seat);
        address sender = seed % 7 == 0 || v == address(0) ? _actor(seed >> 16) : v;
        _commitScoresAs(id, seat, sender, seed, seed % 9 == 0);
    }

    /// @dev Commit a score vector for `seat` of `id` from `sender`: scores near a base drawn from `seed`, the first
    /// byte out of range when `outOfRange`; recorded for the reveal and the settlement.
    function _commitScoresAs(uint256 id, uint256 seat, address sender, uint256 seed, bool outOfRange)
        internal
    {
        ITaskMarket.BatchView memory b = market.batch(id);
        uint256 cells = uint256(b.commitCount) * b.rows;
        bytes memory scores = new bytes(cells);
        uint256 base = (seed >> 24) % 101;
        for (uint256 c; c < cells; ++c) {
            uint256 s = (base + uint256(keccak256(abi.encode(seed, c))) % 21) % 101;
            if (c == 0 && outOfRange) s = 101 + seed % 155;
            scores[c] = bytes1(uint8(s));
        }
        bytes32 commitment = market.scoreCommitment(id, sender, scores, _salt(id, sender));
        vm.prank(sender);
        try market.commitScores(id, seat, commitment) {
            vectors[id][b.round][seat] = scores;
        } catch {}
    }

    function _revealScores(uint256 seed) internal {
        uint256 id = _batch(seed);
        ITaskMarket.BatchView memory b = market.batch(id);
        uint256 seat = (seed >> 8) % 4;
        (address v,,,,) = market.committeeSeat(id, seat);
        uint256 mode = (seed >> 16) % 6; // 0: wrong salt, 1: wrong sender, else right
        address sender = mode == 1 || v == address(0) ? _actor(seed >> 24) : v;
        bytes32 salt = mode == 0 ? bytes32(seed) : _salt(id, v);
        bytes memory scores = vectors[id][b.round][seat];
        vm.prank(sender);
        if (mode < 4) {
            try market.revealScores(id, seat, scores, salt) {} catch {}
        } else {
            // The combined entry point, with the round's vectors as they will be once this seat revealed.
            bytes[] memory vs = _roundVectors(id, b, b.scoreRevealMask | (1 << seat));
            try market.revealScoresAndSettle(id, seat, scores, salt, vs) {} catch {}
        }
    }

    /// @dev The recorded vectors of the seats in `mask`, in seat order (what `settle` takes).
    function _roundVectors(uint256 id, ITaskMarket.BatchView memory b, uint256 mask)
        internal
        view
        returns (bytes[] memory vs)
    {
        uint256 n = 0;
        for (uint256 s; s < b.committeeSize; ++s) {
            if (mask & (1 << s) != 0) ++n;
        }
        vs = new bytes[](n);
        uint256 i = 0;
        for (uint256 s; s < b.committeeSize; ++s) {
            if (mask & (1 << s) != 0) vs[i++] = vectors[id][b.round][s];
        }
    }

    function _settle(uint256 seed) internal {
        uint256 id = _batch(seed);
        if (seed % 5 == 0) {
            try market.settle(id, new bytes[](1)) {} catch {} // wrong vectors
        } else {
            _settleWithRecordedVectors(id);
        }
    }

    function _settleWithRecordedVectors(uint256 id) internal {
        if (id > market.batchCount()) {
            try market.settle(id, new bytes[](0)) {} catch {}
            return;
        }
        ITaskMarket.BatchView memory b = market.batch(id);
        bytes[] memory vs = _roundVectors(id, b, b.scoreRevealMask);
        try market.settle(id, vs) {} catch {}
    }

    function _claim(uint256 seed) internal {
        address who = _actor(seed);
        uint256 before = token.balanceOf(address(market));
        vm.prank(who);
        try market.claim() {} catch {}
        claimedOut += before - token.balanceOf(address(market));
    }

    function _warp(uint256 seed) internal {
        vm.warp(block.timestamp + seed % (3 * PHASE));
        vm.roll(block.number + 1 + (seed >> 8) % 300);
    }

    function _openAccount(uint256 seed) internal {
        address who = _actor(seed);
        vm.prank(seed % 2 == 0 ? who : _actor(seed >> 8));
        try market.openAccount(who) {} catch {}
    }

    /// @dev Carry a random batch through its current phase honestly (every seat acts), or settle it.
    function _advance(uint256 seed) internal {
        uint256 id = _batch(seed);
        if (id > market.batchCount()) return;
        ITaskMarket.BatchView memory b = market.batch(id);
        (ITaskMarket.Phase phase,) = market.phaseOf(id);
        if (phase == ITaskMarket.Phase.Committing) {
            for (uint256 i; i < everyone.length; ++i) {
                address node = everyone[(seed + i) % everyone.length];
                bytes32 c = market.resultCommitment(id, node, _digests(id, node, b.rows), _salt(id, node));
                vm.prank(node);
                try market.commitResult(id, c) {} catch {}
            }
        } else if (phase == ITaskMarket.Phase.Revealing) {
            for (uint256 s; s < b.commitCount; ++s) {
                // Out of order: start at a random seat.
                uint256 seat = (s + seed) % b.commitCount;
                (address node,) = market.nodeSeat(id, seat);
                bytes32[] memory digests = _digests(id, node, b.rows);
                vm.prank(node);
                try market.revealResult(id, seat, digests, _salt(id, node)) {} catch {}
            }
        } else if (phase == ITaskMarket.Phase.Drawing) {
            _tryDraw(id);
            _tryDraw(id);
        } else if (phase == ITaskMarket.Phase.ScoreCommitting) {
            for (uint256 s; s < b.committeeSize; ++s) {
                (address v,,,,) = market.committeeSeat(id, s);
                _commitScoresAs(id, s, v, seed, false);
            }
        } else if (phase == ITaskMarket.Phase.ScoreRevealing) {
            for (uint256 s; s < b.committeeSize; ++s) {
                if (b.scoreCommitMask & (1 << s) != 0 && b.scoreRevealMask & (1 << s) == 0) {
                    (address v,,,,) = market.committeeSeat(id, s);
                    bytes memory scores = vectors[id][b.round][s];
                    vm.prank(v);
                    try market.revealScores(id, s, scores, _salt(id, v)) {} catch {}
                }
            }
        }
        // Whatever the phase: settle (or refund) when it is due; a no-op revert otherwise.
        _settleWithRecordedVectors(id);
    }

    // ----------------------------------------------------------------- registry actions

    function _registryIn(address who, bytes memory call) internal {
        uint256 before = token.balanceOf(address(registry));
        vm.prank(who);
        (bool ok,) = address(registry).call(call);
        ok;
        uint256 afterBalance = token.balanceOf(address(registry));
        if (afterBalance > before) stakedIn += afterBalance - before;
        else stakeOut += before - afterBalance;
    }

    function _register(uint256 seed) internal {
        address who = seed % 4 == 0 ? _actor(seed >> 8) : newcomers[_pick(seed, newcomers.length)];
        bool node = (seed >> 16) % 2 == 0;
        uint256 stake = 90e18 + (seed >> 24) % 100e18; // sometimes below the 100-token minimum
        bytes32[] memory models = new bytes32[](node ? 1 : 0);
        if (node) models[0] = MODEL;
        _registryIn(
            who,
            abi.encodeCall(
                registry.register,
                (
                    node ? IStakeRegistry.Role.Node : IStakeRegistry.Role.Validator,
                    stake,
                    models,
                    bytes("/ip4/1")
                )
            )
        );
    }

    function _addStake(uint256 seed) internal {
        _registryIn(_actor(seed), abi.encodeCall(registry.addStake, ((seed >> 8) % 50e18)));
    }

    function _unbond(uint256 seed) internal {
        // Rarely: unbonding empties the active sets quickly.
        if (seed % 3 != 0) return;
        _registryIn(_actor(seed >> 8), abi.encodeCall(registry.beginUnbonding, ()));
    }

    function _withdraw(uint256 seed) internal {
        _registryIn(_actor(seed), abi.encodeCall(registry.withdraw, ()));
    }

    function _setModels(uint256 seed) internal {
        bytes32[] memory models = new bytes32[](1 + seed % 2);
        models[0] = seed % 5 == 0 ? keccak256("other-model") : MODEL;
        if (models.length == 2) models[1] = keccak256(abi.encode("model", seed));
        _registryIn(_actor(seed >> 8), abi.encodeCall(registry.setModels, (models)));
    }

    function _setP2p(uint256 seed) internal {
        _registryIn(
            _actor(seed),
            abi.encodeCall(registry.setP2pAddress, (seed % 4 == 0 ? bytes("") : bytes("/ip4/2")))
        );
    }

    function _sweep() internal {
        _registryIn(address(this), abi.encodeCall(registry.sweepTreasury, ()));
    }

    function _intern(uint256 seed) internal {
        _registryIn(
            _actor(seed), abi.encodeCall(registry.internModel, (keccak256(abi.encode("m", seed % 4))))
        );
    }
}
