// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {ITaskMarket} from "./interfaces/ITaskMarket.sol";
import {StakeTree} from "./libraries/StakeTree.sol";

/// @title StakeRegistry
/// @notice Stakes, roles, models and p2p addresses of Synod's nodes and validators; slashing by the TaskMarket.
/// @dev Storage: `_participants[a]` is one packed slot (see `IStakeRegistry.Participant`). Active validators
/// (registered, not unbonding) own a slot of `_tree` whose weight is their stake when it is at least the
/// minimum, else 0; freed slots are reused, so `_tree.size <= MAX_VALIDATORS`. Conservation:
/// `token.balanceOf(this) == _totalStaked + _treasuryBalance` (for a token without transfer fees).
contract StakeRegistry is IStakeRegistry, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using StakeTree for StakeTree.Tree;

    /// @notice Most validators that can be active at once (bounds the draw's tree).
    uint256 public constant MAX_VALIDATORS = 1024;
    /// @notice Most models a node can serve.
    uint256 public constant MAX_MODELS = 32;
    /// @notice Longest p2p multiaddr accepted, in bytes.
    uint256 public constant MAX_P2P_ADDRESS_LENGTH = 256;
    /// @notice A slash costs the role's minimum stake divided by this.
    uint256 public constant SLASH_DIVISOR = 10;

    IERC20 private immutable _token;
    uint256 private immutable _minNodeStake;
    uint256 private immutable _minValidatorStake;
    uint256 private immutable _unbondingDelay;
    address private immutable _treasury;

    address private _taskMarket;
    uint256 private _totalStaked;
    uint256 private _treasuryBalance;
    uint256 private _activeValidators;
    uint32 private _lastId;

    mapping(address account => Participant) private _participants;
    mapping(address account => bytes32[]) private _models;
    /// @dev Models are interned to 32-bit ids (by node registration or by the first job naming them), so a job
    /// stores its model inside a packed slot instead of a slot of its own.
    mapping(address account => mapping(uint32 modelId => bool)) private _serves;
    mapping(bytes32 model => uint32) private _modelIds;
    mapping(uint32 modelId => bytes32) private _modelNames;
    uint32 private _lastModelId;
    mapping(address account => bytes) private _p2pAddresses;
    mapping(uint32 id => address) private _accountOf;

    StakeTree.Tree private _tree;
    /// @dev Tree slot -> validator(160) | weight(96): one read gives the draw both.
    mapping(uint256 index => bytes32) private _validatorAt;
    uint16[] private _freeIndices;

    /// @param token_ The stake and payment ERC-20.
    /// @param minNodeStake_ Minimum stake of a node (> 0).
    /// @param minValidatorStake_ Minimum stake of a validator (> 0).
    /// @param unbondingDelay_ Least seconds between `beginUnbonding` and `withdraw` (which also waits until the
    /// participant holds no seat of an unsettled batch).
    /// @param treasury_ Receiver of slashed tokens.
    /// @param owner_ May wire the TaskMarket (two-step ownership).
    constructor(
        IERC20 token_,
        uint256 minNodeStake_,
        uint256 minValidatorStake_,
        uint256 unbondingDelay_,
        address treasury_,
        address owner_
    ) Ownable(owner_) {
        if (address(token_) == address(0) || treasury_ == address(0)) {
            revert RegistryZeroAddress();
        }
        if (minNodeStake_ == 0 || minValidatorStake_ == 0 || unbondingDelay_ == 0) {
            revert RegistryZeroAmount();
        }
        if (minNodeStake_ > type(uint96).max) revert RegistryStakeOverflow(minNodeStake_);
        if (minValidatorStake_ > type(uint96).max) revert RegistryStakeOverflow(minValidatorStake_);
        _token = token_;
        _minNodeStake = minNodeStake_;
        _minValidatorStake = minValidatorStake_;
        _unbondingDelay = unbondingDelay_;
        _treasury = treasury_;
    }

    modifier onlyTaskMarket() {
        if (msg.sender != _taskMarket) revert RegistryNotTaskMarket(msg.sender);
        _;
    }

    // ----------------------------------------------------------------- participants

    /// @inheritdoc IStakeRegistry
    function register(Role role, uint256 stake, bytes32[] calldata models, bytes calldata p2pAddress)
        external
        nonReentrant
    {
        Participant storage p = _participants[msg.sender];
        if (p.role != Role.None) revert RegistryAlreadyRegistered(msg.sender, p.role);
        if (role == Role.None) revert RegistryInvalidRole(role);
        uint256 minimum = _minimumOf(role);
        if (stake < minimum) revert RegistryStakeTooLow(msg.sender, stake, minimum);
        if (stake > type(uint96).max) revert RegistryStakeOverflow(stake);
        _checkP2p(p2pAddress);

        uint32 id = _lastId + 1;
        _lastId = id;
        _accountOf[id] = msg.sender;
        // forge-lint: disable-next-line(unsafe-typecast)
        p.stake = uint96(stake); // checked against type(uint96).max above
        p.role = role;
        p.id = id;
        if (role == Role.Node) {
            _setModels(msg.sender, p, models);
        } else {
            if (models.length != 0) revert RegistryModelCountOutOfRange(models.length, 0);
            p.treeIndex = _joinTree(msg.sender, stake);
        }
        _p2pAddresses[msg.sender] = p2pAddress;
        _totalStaked += stake;
        emit ParticipantRegistered(msg.sender, role, id, stake, models, p2pAddress);

        // Pay the participant's market balance slot now, not in its first task's settlement.
        address market = _taskMarket;
        if (market != address(0)) ITaskMarket(market).openAccount(msg.sender);
        _token.safeTransferFrom(msg.sender, address(this), stake);
    }

    /// @inheritdoc IStakeRegistry
    function addStake(uint256 amount) external nonReentrant {
        Participant storage p = _activeParticipant(msg.sender);
        if (amount == 0) revert RegistryZeroAmount();
        uint256 oldStake = p.stake;
        uint256 newStake = oldStake + amount;
        if (newStake > type(uint96).max) revert RegistryStakeOverflow(newStake);
        // forge-lint: disable-next-line(unsafe-typecast)
        p.stake = uint96(newStake); // checked against type(uint96).max above
        if (p.role == Role.Validator) {
            _reweigh(p.treeIndex, oldStake, newStake);
        }
        _totalStaked += amount;
        emit StakeAdded(msg.sender, amount, newStake);

        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IStakeRegistry
    function setModels(bytes32[] calldata models) external {
        Participant storage p = _participants[msg.sender];
        if (p.role == Role.None) revert RegistryNotRegistered(msg.sender);
        if (p.role != Role.Node) revert RegistryNotANode(msg.sender);
        _clearModels(msg.sender);
        _setModels(msg.sender, p, models);
        emit ModelsUpdated(msg.sender, models);
    }

    /// @inheritdoc IStakeRegistry
    function setP2pAddress(bytes calldata p2pAddress) external {
        // slither-disable-next-line incorrect-equality (an enum, not a balance: docs/audit.md)
        if (_participants[msg.sender].role == Role.None) revert RegistryNotRegistered(msg.sender);
        _checkP2p(p2pAddress);
        _p2pAddresses[msg.sender] = p2pAddress;
        emit P2pAddressUpdated(msg.sender, p2pAddress);
    }

    /// @inheritdoc IStakeRegistry
    function beginUnbonding() external {
        Participant storage p = _activeParticipant(msg.sender);
        uint256 end = block.timestamp + _unbondingDelay;
        p.unbondingEnd = SafeCast.toUint40(end);
        // slither-disable-next-line incorrect-equality (an enum, not a balance: docs/audit.md)
        if (p.role == Role.Validator) {
            uint256 index = p.treeIndex;
            _reweigh(index, p.stake, 0);
            _activeValidators -= 1;
            delete _validatorAt[index];
            // forge-lint: disable-next-line(unsafe-typecast)
            _freeIndices.push(uint16(index)); // index <= MAX_VALIDATORS
            p.treeIndex = 0;
        }
        emit UnbondingStarted(msg.sender, p.stake, end);
    }

    /// @inheritdoc IStakeRegistry
    function withdraw() external nonReentrant {
        Participant storage p = _participants[msg.sender];
        if (p.role == Role.None) revert RegistryNotRegistered(msg.sender);
        uint256 end = p.unbondingEnd;
        if (end == 0) revert RegistryNotUnbonding(msg.sender);
        if (block.timestamp < end) revert RegistryUnbondingNotElapsed(msg.sender, end, block.timestamp);
        uint256 seats = _openSeats(msg.sender);
        if (seats != 0) revert RegistrySeatsOpen(msg.sender, seats);
        uint256 amount = p.stake;
        if (p.role == Role.Node) _clearModels(msg.sender);
        delete _participants[msg.sender];
        delete _p2pAddresses[msg.sender];
        _totalStaked -= amount;
        emit Withdrawn(msg.sender, amount);

        if (amount != 0) _token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IStakeRegistry
    function sweepTreasury() external nonReentrant {
        uint256 amount = _treasuryBalance;
        if (amount == 0) revert RegistryZeroAmount();
        _treasuryBalance = 0;
        emit TreasurySwept(_treasury, amount);

        _token.safeTransfer(_treasury, amount);
    }

    // ----------------------------------------------------------------- TaskMarket only

    /// @inheritdoc IStakeRegistry
    function slash(uint256 batchId, address[] calldata accounts, uint256 slashMask)
        external
        onlyTaskMarket
        returns (uint256[] memory amounts)
    {
        uint256 n = accounts.length;
        amounts = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            if (slashMask & (1 << i) == 0) continue;
            address account = accounts[i];
            // A seat holder can not withdraw (the market counts its seat), so it is still registered here.
            amounts[i] = _slash(account, _participants[account], batchId);
        }
    }

    /// @inheritdoc IStakeRegistry
    function setTaskMarket(address market) external onlyOwner {
        if (market == address(0)) revert RegistryZeroAddress();
        if (_taskMarket != address(0)) revert RegistryTaskMarketAlreadySet(_taskMarket);
        _taskMarket = market;
        emit TaskMarketSet(market);
    }

    // ----------------------------------------------------------------- views

    /// @inheritdoc IStakeRegistry
    function requireEligibleNode(address node, uint32 modelId) external view returns (uint32 id) {
        return _requireEligibleNode(node, modelId);
    }

    /// @inheritdoc IStakeRegistry
    function accountOf(uint32 id) external view returns (address) {
        return _accountOf[id];
    }

    /// @inheritdoc IStakeRegistry
    function accountsOf(uint32[] calldata ids) external view returns (address[] memory accounts) {
        uint256 n = ids.length;
        accounts = new address[](n);
        for (uint256 i; i < n; ++i) {
            accounts[i] = _accountOf[ids[i]];
        }
    }

    /// @inheritdoc IStakeRegistry
    function drawValidators(bytes32 seed, uint256 m)
        external
        view
        returns (address[] memory validators, uint96[] memory weights)
    {
        return _draw(seed, m);
    }

    /// @dev Successive stake-weighted sampling without replacement over the stake tree (weights = raw stakes).
    function _draw(bytes32 seed, uint256 m)
        private
        view
        returns (address[] memory validators, uint96[] memory weights)
    {
        // Successive sampling without replacement: draw r over the weight not drawn yet, then map it onto the
        // full range by skipping the drawn ranges (kept sorted by start), so every draw is a new validator.
        uint256 total = _tree.total;
        validators = new address[](m);
        weights = new uint96[](m);
        uint256[] memory starts = new uint256[](m);
        uint256[] memory widths = new uint256[](m);
        uint256 drawnWeight = 0;
        uint256 count = 0;
        while (count < m && drawnWeight < total) {
            uint256 r = uint256(keccak256(abi.encode(seed, count))) % (total - drawnWeight);
            uint256 at = count; // insertion point in the sorted drawn ranges
            for (uint256 j; j < count; ++j) {
                if (starts[j] <= r) {
                    r += widths[j];
                } else {
                    at = j;
                    break;
                }
            }
            (uint256 index, uint256 start) = _tree.find(r);
            uint256 word = uint256(_validatorAt[index]);
            uint256 weight = word >> 160;
            for (uint256 j = count; j > at; --j) {
                starts[j] = starts[j - 1];
                widths[j] = widths[j - 1];
            }
            starts[at] = start;
            widths[at] = weight;
            validators[count] = address(uint160(word));
            // forge-lint: disable-next-line(unsafe-typecast)
            weights[count] = uint96(weight); // the 96-bit weight field
            drawnWeight += weight;
            ++count;
        }
        assembly ("memory-safe") {
            mstore(validators, count)
            mstore(weights, count)
        }
    }

    /// @inheritdoc IStakeRegistry
    function participant(address account) external view returns (Participant memory p) {
        p = _participants[account];
        // forge-lint: disable-next-line(unsafe-typecast)
        p.openSeats = uint16(_openSeats(account)); // the market's 16-bit seat counter
    }

    /// @inheritdoc IStakeRegistry
    function modelsOf(address account) external view returns (bytes32[] memory) {
        return _models[account];
    }

    /// @inheritdoc IStakeRegistry
    function serves(address account, bytes32 model) external view returns (bool) {
        uint32 id = _modelIds[model];
        return id != 0 && _serves[account][id];
    }

    /// @inheritdoc IStakeRegistry
    function internModel(bytes32 model) external returns (uint32 modelId) {
        if (model == bytes32(0)) revert RegistryModelInvalid(model);
        return _intern(model);
    }

    /// @inheritdoc IStakeRegistry
    function modelIdOf(bytes32 model) external view returns (uint32) {
        return _modelIds[model];
    }

    /// @inheritdoc IStakeRegistry
    function modelName(uint32 modelId) external view returns (bytes32) {
        return _modelNames[modelId];
    }

    /// @inheritdoc IStakeRegistry
    function p2pAddressOf(address account) external view returns (bytes memory) {
        return _p2pAddresses[account];
    }

    /// @inheritdoc IStakeRegistry
    function totalValidatorStake() external view returns (uint256) {
        return _tree.total;
    }

    /// @inheritdoc IStakeRegistry
    function activeValidatorCount() external view returns (uint256) {
        return _activeValidators;
    }

    /// @inheritdoc IStakeRegistry
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IStakeRegistry
    function taskMarket() external view returns (address) {
        return _taskMarket;
    }

    /// @inheritdoc IStakeRegistry
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc IStakeRegistry
    function treasuryBalance() external view returns (uint256) {
        return _treasuryBalance;
    }

    /// @inheritdoc IStakeRegistry
    function totalStaked() external view returns (uint256) {
        return _totalStaked;
    }

    /// @inheritdoc IStakeRegistry
    function minNodeStake() external view returns (uint256) {
        return _minNodeStake;
    }

    /// @inheritdoc IStakeRegistry
    function minValidatorStake() external view returns (uint256) {
        return _minValidatorStake;
    }

    /// @inheritdoc IStakeRegistry
    function unbondingDelay() external view returns (uint256) {
        return _unbondingDelay;
    }

    /// @inheritdoc IStakeRegistry
    function slashAmount(Role role) external view returns (uint256) {
        return role == Role.None ? 0 : _minimumOf(role) / SLASH_DIVISOR;
    }

    // ----------------------------------------------------------------- internals

    /// @dev Move min(stake, slashAmount(role)) of `account`'s stake to the treasury.
    function _slash(address account, Participant storage p, uint256 batchId)
        private
        returns (uint256 amount)
    {
        Role role = p.role;
        uint256 oldStake = p.stake;
        amount = _minimumOf(role) / SLASH_DIVISOR;
        if (amount > oldStake) amount = oldStake;
        if (amount == 0) return 0;
        uint256 newStake = oldStake - amount;
        // forge-lint: disable-next-line(unsafe-typecast)
        p.stake = uint96(newStake); // below the old uint96 stake

        if (p.treeIndex != 0) _reweigh(p.treeIndex, oldStake, newStake);
        _totalStaked -= amount;
        uint256 treasuryBalance_ = _treasuryBalance + amount;
        _treasuryBalance = treasuryBalance_;
        emit Slashed(account, batchId, role, amount, treasuryBalance_);
    }

    /// @dev Seats `account` holds in unended batches, as the TaskMarket counts them (0 before it is wired).
    function _openSeats(address account) private view returns (uint256) {
        address market = _taskMarket;
        if (market == address(0)) return 0;
        return ITaskMarket(market).openSeatsOf(account);
    }

    function _minimumOf(Role role) private view returns (uint256) {
        return role == Role.Node ? _minNodeStake : _minValidatorStake;
    }

    function _requireEligibleNode(address node, uint32 modelId) private view returns (uint32) {
        Participant memory p = _participants[node];
        // slither-disable-next-line incorrect-equality (an enum, not a balance: docs/audit.md)
        if (p.role == Role.None) revert RegistryNotRegistered(node);
        if (p.role != Role.Node) revert RegistryNotANode(node);
        if (p.unbondingEnd != 0) revert RegistryUnbonding(node, p.unbondingEnd);
        if (p.stake < _minNodeStake) revert RegistryStakeTooLow(node, p.stake, _minNodeStake);
        if (!_serves[node][modelId]) revert RegistryModelNotServed(node, _modelNames[modelId]);
        return p.id;
    }

    function _activeParticipant(address account) private view returns (Participant storage p) {
        p = _participants[account];
        if (p.role == Role.None) revert RegistryNotRegistered(account);
        if (p.unbondingEnd != 0) revert RegistryUnbonding(account, p.unbondingEnd);
    }

    function _checkP2p(bytes calldata p2pAddress) private pure {
        if (p2pAddress.length == 0 || p2pAddress.length > MAX_P2P_ADDRESS_LENGTH) {
            revert RegistryP2pAddressLength(p2pAddress.length, MAX_P2P_ADDRESS_LENGTH);
        }
    }

    /// @dev Weight in the tree: the stake when at least the validator minimum, else 0.
    function _weight(uint256 stake) private view returns (uint256) {
        return stake >= _minValidatorStake ? stake : 0;
    }

    function _reweigh(uint256 index, uint256 oldStake, uint256 newStake) private {
        uint256 oldWeight = _weight(oldStake);
        uint256 newWeight = _weight(newStake);
        if (newWeight > oldWeight) _tree.add(index, newWeight - oldWeight);
        else if (oldWeight > newWeight) _tree.sub(index, oldWeight - newWeight);
        else return;
        uint256 word = uint256(_validatorAt[index]);
        _validatorAt[index] = bytes32((word & type(uint160).max) | (newWeight << 160));
    }

    function _intern(bytes32 model) private returns (uint32 id) {
        id = _modelIds[model];
        if (id == 0) {
            id = _lastModelId + 1;
            _lastModelId = id;
            _modelIds[model] = id;
            _modelNames[id] = model;
        }
    }

    function _joinTree(address account, uint256 stake) private returns (uint16 index) {
        uint256 free = _freeIndices.length;
        if (free != 0) {
            index = _freeIndices[free - 1];
            _freeIndices.pop();
            _tree.add(index, _weight(stake));
        } else {
            if (_tree.size >= MAX_VALIDATORS) revert RegistryValidatorSetFull(MAX_VALIDATORS);
            // forge-lint: disable-next-line(unsafe-typecast)
            index = uint16(_tree.push(_weight(stake))); // size < MAX_VALIDATORS
        }
        _validatorAt[index] = bytes32(uint256(uint160(account)) | (_weight(stake) << 160));
        _activeValidators += 1;
    }

    function _setModels(address account, Participant storage p, bytes32[] calldata models) private {
        uint256 n = models.length;
        if (n == 0 || n > MAX_MODELS) revert RegistryModelCountOutOfRange(n, MAX_MODELS);
        mapping(uint32 => bool) storage served = _serves[account];
        for (uint256 i; i < n; ++i) {
            bytes32 model = models[i];
            if (model == bytes32(0)) revert RegistryModelInvalid(model);
            uint32 id = _intern(model);
            if (served[id]) revert RegistryModelInvalid(model);
            served[id] = true;
        }
        _models[account] = models;
        // forge-lint: disable-next-line(unsafe-typecast)
        p.modelCount = uint8(n); // n <= MAX_MODELS
    }

    function _clearModels(address account) private {
        bytes32[] storage list = _models[account];
        mapping(uint32 => bool) storage served = _serves[account];
        uint256 n = list.length; // <= MAX_MODELS
        for (uint256 i; i < n; ++i) {
            delete served[_modelIds[list[i]]];
        }
        delete _models[account];
    }
}
