// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IStakeRegistry
/// @notice Registry of Synod's staked participants: compute nodes and validators.
/// @dev One role per address (a validator can therefore never score its own result). Stakes are held
/// by the registry in the same ERC-20 the TaskMarket pays bounties in. Validators live in a Fenwick
/// (binary indexed) tree over at most `MAX_VALIDATORS` slots so the stake-weighted committee draw costs
/// O(m log n) reads. Only the TaskMarket may slash, and only for objective misconduct it proves on
/// chain (a seat never revealed, a drawn committee seat that abstained, a node result scored below the job's
/// junk floor), once per batch; slashed tokens are accounted to the treasury and swept to the `treasury`
/// address by anyone. v2: every seat a participant takes in a batch (node seat at commit, committee seat at
/// the draw) is counted by the TaskMarket (`ITaskMarket.openSeatsOf`, in the account's own balance slot) until
/// the batch releases it; `withdraw` needs it to be 0, so nobody can leave before the batches it sits in are
/// settled. Committee weights are raw stakes.
interface IStakeRegistry {
    /// @notice The role an address registered with.
    enum Role {
        None,
        Node,
        Validator
    }

    /// @notice Registration record, one storage slot:
    /// [0..95] stake | [96..135] unbondingEnd | [136..143] role | [144..159] treeIndex | [160..167] modelCount |
    /// [168..199] id | [200..215] unused (`participant` fills `openSeats` from the TaskMarket)
    /// @param stake Tokens staked (slashable until withdrawn).
    /// @param unbondingEnd 0 while active; otherwise the timestamp from which `withdraw` is allowed.
    /// @param role Node or Validator.
    /// @param treeIndex Validators only: 1-based slot in the stake tree (0 when not in the tree).
    /// @param modelCount Nodes only: number of models served.
    /// @param id Registration id, sequential from 1, never reused (`accountOf(id)` stays valid forever).
    /// @param openSeats Seats held in batches not yet settled (node or committee seats); blocks `withdraw`. Kept
    /// by the TaskMarket (`ITaskMarket.openSeatsOf`); `participant` reports it, the stored field stays 0.
    struct Participant {
        uint96 stake;
        uint40 unbondingEnd;
        Role role;
        uint16 treeIndex;
        uint8 modelCount;
        uint32 id;
        uint16 openSeats;
    }

    // ----------------------------------------------------------------- errors

    /// @notice Thrown by `register` when `account` already holds `role`.
    error RegistryAlreadyRegistered(address account, Role role);
    /// @notice Thrown when `account` is not registered (or registered under another role than required).
    error RegistryNotRegistered(address account);
    /// @notice Thrown by `register` for `Role.None`.
    error RegistryInvalidRole(Role role);
    /// @notice Thrown when a stake is below the role's minimum.
    error RegistryStakeTooLow(address account, uint256 stake, uint256 minimum);
    /// @notice Thrown when an action needs an active participant but `account` is unbonding.
    error RegistryUnbonding(address account, uint256 unbondingEnd);
    /// @notice Thrown by `withdraw` when `account` has not called `beginUnbonding`.
    error RegistryNotUnbonding(address account);
    /// @notice Thrown by `withdraw` before `unbondingEnd`.
    error RegistryUnbondingNotElapsed(address account, uint256 unbondingEnd, uint256 nowTime);
    /// @notice Thrown when node `account` does not serve `model`.
    error RegistryModelNotServed(address account, bytes32 model);
    /// @notice Thrown when a node would serve more than `maximum` models (or none, or a zero model id).
    error RegistryModelCountOutOfRange(uint256 count, uint256 maximum);
    /// @notice Thrown when a model id is zero or already listed.
    error RegistryModelInvalid(bytes32 model);
    /// @notice Thrown when `account` is a validator but the call is for nodes only (models).
    error RegistryNotANode(address account);
    /// @notice Thrown by `register` when all `maximum` validator slots are taken.
    error RegistryValidatorSetFull(uint256 maximum);
    /// @notice Thrown when a p2p address is empty or longer than `maximum` bytes.
    error RegistryP2pAddressLength(uint256 length, uint256 maximum);
    /// @notice Thrown by `withdraw` while `account` holds `openSeats` seats in unsettled batches.
    error RegistrySeatsOpen(address account, uint256 openSeats);
    /// @notice Thrown by TaskMarket-only functions for any other `caller`.
    error RegistryNotTaskMarket(address caller);
    /// @notice Thrown by `setTaskMarket` once the market is set.
    error RegistryTaskMarketAlreadySet(address market);
    /// @notice Thrown for a zero address argument.
    error RegistryZeroAddress();
    /// @notice Thrown for a zero amount.
    error RegistryZeroAmount();
    /// @notice Thrown when an amount does not fit the 96-bit stake field.
    error RegistryStakeOverflow(uint256 stake);

    // ----------------------------------------------------------------- events

    /// @notice `account` registered as `role` under registration `id` with `stake`, serving `models`,
    /// reachable at `p2pAddress`.
    event ParticipantRegistered(
        address indexed account,
        Role indexed role,
        uint256 id,
        uint256 stake,
        bytes32[] models,
        bytes p2pAddress
    );
    /// @notice `account` added `amount`; its stake is now `stake`.
    event StakeAdded(address indexed account, uint256 amount, uint256 stake);
    /// @notice Node `account` now serves `models` (the full list).
    event ModelsUpdated(address indexed account, bytes32[] models);
    /// @notice `account` is now reachable at `p2pAddress`.
    event P2pAddressUpdated(address indexed account, bytes p2pAddress);
    /// @notice `account` stopped taking new work; it may withdraw `stake` from `unbondingEnd`.
    event UnbondingStarted(address indexed account, uint256 stake, uint256 unbondingEnd);
    /// @notice `account` withdrew `amount` and is no longer registered.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice TaskMarket slashed `amount` from `account` for misconduct on `batchId`; the treasury now holds
    /// `treasuryBalance` unswept tokens.
    event Slashed(
        address indexed account, uint256 indexed batchId, Role role, uint256 amount, uint256 treasuryBalance
    );
    /// @notice `amount` of slashed tokens were sent to `treasury`.
    event TreasurySwept(address indexed treasury, uint256 amount);
    /// @notice The owner wired the registry to `market` (once).
    event TaskMarketSet(address indexed market);

    // ----------------------------------------------------------------- participants

    /// @notice Register the caller as `role`, pulling `stake` tokens (approve first).
    /// @param role Node or Validator.
    /// @param stake At least `minNodeStake` / `minValidatorStake`.
    /// @param models Nodes: 1..MAX_MODELS distinct non-zero model ids (keccak256 of the model name).
    /// Validators: must be empty.
    /// @param p2pAddress The libp2p multiaddr bytes (1..MAX_P2P_ADDRESS_LENGTH).
    function register(Role role, uint256 stake, bytes32[] calldata models, bytes calldata p2pAddress) external;

    /// @notice Add `amount` to the caller's stake (not while unbonding).
    function addStake(uint256 amount) external;

    /// @notice Replace the caller's model list (nodes only, 1..MAX_MODELS distinct non-zero ids).
    function setModels(bytes32[] calldata models) external;

    /// @notice Update the caller's p2p multiaddr.
    function setP2pAddress(bytes calldata p2pAddress) external;

    /// @notice Stop taking new work; the stake stays slashable until `block.timestamp + unbondingDelay`.
    function beginUnbonding() external;

    /// @notice After the unbonding delay, and once no seat of an unsettled batch is held (`openSeats == 0`),
    /// pay the caller its whole remaining stake and unregister it.
    function withdraw() external;

    /// @notice Send every slashed token accounted so far to `treasury` (anyone may call).
    function sweepTreasury() external;

    // ----------------------------------------------------------------- TaskMarket only

    /// @notice Slash account i of `accounts` (seat holders of unsettled batch `batchId`) when bit i of
    /// `slashMask` is set: min(stake, slashAmount(role)) goes to the treasury. Seat locks themselves are counted by
    /// the TaskMarket (`ITaskMarket.openSeatsOf`), which calls this only when a batch it ends has misconduct.
    /// @dev Only the TaskMarket. `accounts.length <= 256`. Works on unbonding participants too.
    /// @return amounts The tokens slashed from each account (0 where not slashed).
    function slash(uint256 batchId, address[] calldata accounts, uint256 slashMask)
        external
        returns (uint256[] memory amounts);

    /// @notice Wire the TaskMarket (owner, once).
    function setTaskMarket(address market) external;

    // ----------------------------------------------------------------- views

    /// @notice Revert with the precise registry error unless `node` may take a node seat for model `modelId` now.
    /// @return id The node's registration id.
    function requireEligibleNode(address node, uint32 modelId) external view returns (uint32 id);

    /// @notice The 32-bit id of `model` (keccak256 of its name), assigning the next id if it has none.
    /// Ids are assigned when a node registers a model or a job first names it (anyone may call; idempotent).
    function internModel(bytes32 model) external returns (uint32 modelId);
    /// @notice The id of `model`, 0 if never interned.
    function modelIdOf(bytes32 model) external view returns (uint32);
    /// @notice The model of id `modelId` (zero if none).
    function modelName(uint32 modelId) external view returns (bytes32);

    /// @notice Draw min(m, validators with weight) distinct active validators, weighted by their raw stake (no
    /// scaling: a 6-decimal token weighs as an 18-decimal one), from `seed`. A view: the TaskMarket seats this committee.
    /// @dev Successive sampling without replacement: draw i takes `keccak256(abi.encode(seed, i))` modulo the
    /// weight not drawn yet, maps it past the drawn ranges and finds its validator with a Fenwick search:
    /// O(m log n) reads, m <= 16, n <= 1024. Empty when no validator is active.
    /// @return validators The drawn validators in draw order.
    /// @return weights Their stakes at the draw.
    function drawValidators(bytes32 seed, uint256 m)
        external
        view
        returns (address[] memory validators, uint96[] memory weights);

    /// @notice The account that registered under `id` (zero if none); valid after it withdrew.
    function accountOf(uint32 id) external view returns (address);
    /// @notice `accountOf` for many ids.
    function accountsOf(uint32[] calldata ids) external view returns (address[] memory accounts);
    /// @notice The registration record of `account`.
    function participant(address account) external view returns (Participant memory);
    /// @notice The models node `account` serves.
    function modelsOf(address account) external view returns (bytes32[] memory);
    /// @notice Whether node `account` serves `model`.
    function serves(address account, bytes32 model) external view returns (bool);
    /// @notice The p2p multiaddr of `account`.
    function p2pAddressOf(address account) external view returns (bytes memory);
    /// @notice Total stake of active validators (the draw's weight).
    function totalValidatorStake() external view returns (uint256);
    /// @notice Number of active validators.
    function activeValidatorCount() external view returns (uint256);
    /// @notice The stake and payment token.
    function token() external view returns (address);
    /// @notice The TaskMarket allowed to slash (zero until set).
    function taskMarket() external view returns (address);
    /// @notice Where slashed tokens go.
    function treasury() external view returns (address);
    /// @notice Slashed tokens not yet swept to the treasury.
    function treasuryBalance() external view returns (uint256);
    /// @notice Sum of all stakes held (conservation: token balance == totalStaked + treasuryBalance).
    function totalStaked() external view returns (uint256);
    /// @notice Minimum stake of a node.
    function minNodeStake() external view returns (uint256);
    /// @notice Minimum stake of a validator.
    function minValidatorStake() external view returns (uint256);
    /// @notice Least delay between `beginUnbonding` and `withdraw` (withdraw also waits for `openSeats == 0`).
    function unbondingDelay() external view returns (uint256);
    /// @notice Tokens one misconduct costs a participant of `role` (a tenth of the role's minimum stake).
    function slashAmount(Role role) external view returns (uint256);
}
